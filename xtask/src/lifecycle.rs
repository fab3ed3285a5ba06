//! A stack's life through the engine: build its images under the lockfile policy, start it
//! while readiness watches (the real probe), dump what a failed service left, and the guard
//! that tears a throw-away stack down whatever happens.

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Result, bail};
use xshell::Shell;

use crate::{
    docker::{
        self, Container,
        compose::{Compose, UpOpts, build_args, teardown_args, up_args},
        events::{Events, Wake},
    },
    http,
    integrity::{self, Built, Policy},
    known_errors::known_problems,
    proc::run_logged,
    progress::Progress,
    readiness::{self, NotReady, Probe, Ready, ReadySpec},
    stack::{Stack, StackKind},
    util::{note, secs, tail},
};

/// While the app boots, how often a prefetch retries its connection.
const PREFETCH_RETRY: Duration = Duration::from_millis(50);
/// One HTTP probe: the dev server compiles a route on its first request (about 5 s on 2 cores).
const HTTP_PROBE: Duration = Duration::from_secs(30);

/// `compose build <services>` under the lockfile policy: a cold run first checks every tarball
/// in a throw-away container, the install flags reach the Dockerfile as BUN_INSTALL_FLAGS, and
/// an integrity failure is diagnosed (and, for dev, perhaps repaired) by `integrity`.
pub fn build(
    sh: &Shell,
    compose: &Compose,
    kind: StackKind,
    policy: &Policy,
    services: &[&str],
    log: &Path,
    timeout: Duration,
) -> Result<Built> {
    let bun_image = compose
        .env
        .iter()
        .find(|(k, _)| k == "BUN_IMAGE")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| crate::images::ImageSet::upstream().bun);
    let started = Instant::now();
    let mut cold_check = None;
    let mut built = integrity::build_with_policy(sh, kind, policy, |flags| {
        if policy.cold {
            let check_log = log.with_extension("cold-check.log");
            let check = integrity::cold_check(&bun_image, &check_log, timeout)?;
            cold_check = Some(check.elapsed);
            if !check.status.success() {
                return Ok(check);
            }
        }
        let expr = compose
            .expr(&build_args(services))
            .env("BUN_INSTALL_FLAGS", flags);
        run_logged(expr, "compose build", log, timeout)
    })
    // Every failure names the whole log: the error carries only its tail.
    .map_err(|e| anyhow::anyhow!("{e:#}\n(full build log: {})", log.display()))?;
    built.cold_check = cold_check;
    built.finished.elapsed = started.elapsed();
    Ok(built)
}

/// Runs `compose up --detach` in the background (it blocks until the dependencies are healthy)
/// while readiness watches, so progress shows from the first container on. Returns the
/// readiness and when `up` itself returned.
pub fn up_and_wait(
    sh: &Shell,
    compose: &Compose,
    opts: UpOpts,
    spec: &ReadySpec,
    progress: &mut Progress,
) -> Result<(Result<Ready, NotReady>, Duration)> {
    let up = compose
        .expr(&up_args(opts, &[]))
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .start()?;
    let mut probe = EngineProbe {
        sh,
        project: &compose.project,
        expected: spec.services.len(),
        ids: vec![],
        up: &up,
        up_after: None,
        events: Events::start(&compose.project),
        app_port: spec.app_port,
        started: Instant::now(),
    };
    let ready = readiness::wait(&mut probe, spec, progress);
    let up_after = probe.up_after.unwrap_or_default();
    drop(probe);
    let _ = up.kill();
    Ok((ready, up_after))
}

/// The real world behind readiness: `compose up`'s exit, `docker events`, `docker inspect`,
/// and HTTP on the app's port.
struct EngineProbe<'a> {
    sh: &'a Shell,
    project: &'a str,
    expected: usize,
    /// Once every service has a container, only `docker inspect` runs (one CLI call a sample
    /// instead of two: the app compiling next to it shares 2 cores).
    ids: Vec<String>,
    up: &'a duct::Handle,
    up_after: Option<Duration>,
    events: Option<Events>,
    app_port: u16,
    started: Instant,
}

impl EngineProbe<'_> {
    /// A container its restart policy brought back looks fine to `inspect`: its OOM kill and
    /// exit code survive only in the event stream, so they are put back here.
    fn remember_crashes(&self, cs: &mut [Container]) {
        let Some(events) = &self.events else { return };
        for e in events.seen() {
            let Some(c) = cs.iter_mut().find(|c| c.name == e.container) else {
                continue;
            };
            match (e.status.as_str(), e.exit_code) {
                ("oom", _) => c.oom_killed = true,
                ("die", Some(code)) if code != 0 && c.restart_count > 0 => c.exit_code = code,
                _ => {}
            }
        }
    }
}

impl Probe for EngineProbe<'_> {
    fn up_done(&mut self) -> Result<bool, String> {
        match self.up.try_wait().map_err(|e| e.to_string())? {
            None => Ok(false),
            Some(out) if out.status.success() => {
                self.up_after.get_or_insert(self.started.elapsed());
                Ok(true)
            }
            Some(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let hints: String = known_problems(&text)
                    .into_iter()
                    .map(|h| format!("\n  cause: {h}"))
                    .collect();
                Err(format!("`compose up` failed:{hints}\n{}", tail(&text, 20)))
            }
        }
    }
    fn containers(&mut self) -> Result<Vec<Container>, String> {
        if self.ids.len() >= self.expected
            && let Ok(mut cs) = docker::inspect(self.sh, &self.ids)
        {
            self.remember_crashes(&mut cs);
            return Ok(cs);
        }
        let mut cs = docker::containers(self.sh, self.project).map_err(|e| format!("{e:#}"))?;
        self.ids = cs.iter().map(|c| c.id.clone()).collect();
        self.remember_crashes(&mut cs);
        Ok(cs)
    }
    fn wait(&mut self, max: Duration) -> Wake {
        let wake = self.events.as_ref().map_or(Wake::Ended, |e| e.wait(max));
        if wake == Wake::Ended {
            std::thread::sleep(max);
        }
        wake
    }
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
    fn prefetch(&mut self, paths: &[&str]) {
        for path in paths {
            let (port, path) = (self.app_port, path.to_string());
            std::thread::spawn(move || {
                let deadline = Instant::now() + HTTP_PROBE;
                while Instant::now() < deadline {
                    match http::get(port, &path, HTTP_PROBE) {
                        Err(http::Error::Starting(_)) => std::thread::sleep(PREFETCH_RETRY),
                        _ => return,
                    }
                }
            });
        }
    }
    fn get(&mut self, path: &str, timeout: Duration) -> Result<http::Response, http::Error> {
        http::get(self.app_port, path, timeout.min(HTTP_PROBE))
    }
    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn interrupted(&self) -> Option<String> {
        crate::signals::received().map(String::from)
    }
}

/// Everything a person needs to see about a service that failed: state, exit code, OOM, the
/// health check's own log, and the last 50 lines of its output. Without a service named,
/// every container that is not ready.
pub fn failure_dump(sh: &Shell, project: &str, service: Option<&str>) -> String {
    let Ok(cs) = docker::containers(sh, project) else {
        return "could not inspect the containers".into();
    };
    let chosen: Vec<&Container> = match service {
        Some(s) if cs.iter().any(|c| c.service == s) => {
            cs.iter().filter(|c| c.service == s).collect()
        }
        _ => cs.iter().filter(|c| !c.ready()).collect(),
    };
    let mut out = String::new();
    let mut logs = String::new();
    for c in chosen {
        out.push_str(&format!(
            "\n--- service `{}` ({}): {}, exit code {}{}\n",
            c.service,
            c.name,
            c.state_word(),
            c.exit_code,
            if c.oom_killed {
                ", killed for running out of memory"
            } else {
                ""
            }
        ));
        if !c.health_log.is_empty() {
            out.push_str("health check log (.State.Health.Log), oldest first:\n");
            for p in &c.health_log {
                out.push_str(&format!(
                    "  exit {}: {}\n",
                    p.exit_code,
                    p.output.replace('\n', "\n    ")
                ));
            }
        }
        out.push_str("last 50 lines of its log:\n");
        let tail = docker::logs_tail(sh, &c.id, 50);
        out.push_str(&tail);
        logs.push_str(&tail);
    }
    for hint in known_problems(&logs) {
        out.push_str(&format!("cause: {hint}\n"));
    }
    out
}

/// Removes a throw-away stack on every way out: success, error, timeout, Ctrl-C, SIGTERM,
/// SIGHUP (via the signal flag turning into an error) and panic (Drop runs while unwinding).
/// `compose down` runs in a process group of its own; a further Ctrl-C says what is still
/// being removed, and the one after abandons the teardown with the exact command to finish it.
/// What even that cannot cover (SIGKILL, power loss) the next command reaps (`reap`).
pub struct Teardown<'a> {
    pub sh: &'a Shell,
    pub stack: &'a Stack,
    pub keep: bool,
    pub quiet: bool,
}

/// How often a running teardown looks for a further Ctrl-C.
const TEARDOWN_TICK: Duration = Duration::from_millis(50);

impl Teardown<'_> {
    /// The command that removes the stack, as a person would run it from the project root.
    pub fn removal_command(&self) -> String {
        let c = &self.stack.compose;
        format!(
            "cd {} && docker compose -f {} -p {} down --volumes --remove-orphans && docker image rm {}",
            crate::util::project_root().display(),
            c.file,
            c.project,
            self.stack.app_image()
        )
    }

    /// Down (in its own process group), then proof: nothing labelled with the project may
    /// remain; then the run's own app image goes.
    pub fn run(&self) -> Result<()> {
        let c = &self.stack.compose;
        let started_with = crate::signals::count();
        let mut child = c.detached(&teardown_args()).spawn()?;
        let mut told = false;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            let more = crate::signals::count().saturating_sub(started_with);
            if more >= 2 {
                note(format!(
                    "\nteardown abandoned; {} is left. Remove it with:\n  {}\n(or any later `cargo xtask` command reaps it)",
                    c.project,
                    self.removal_command()
                ));
                std::process::exit(130);
            }
            if more == 1 && !told {
                told = true;
                let left = docker::leftovers(&c.project).unwrap_or_default();
                note(format!(
                    "\nstill removing {}: {} (Ctrl-C once more abandons it and prints how to finish)",
                    c.project,
                    if left.is_empty() {
                        "finishing".into()
                    } else {
                        left.join(", ")
                    }
                ));
            }
            std::thread::sleep(TEARDOWN_TICK);
        };
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        let left = docker::leftovers(&c.project)?;
        if !left.is_empty() {
            bail!(
                "teardown of {} ({status}) left {}\n{stderr}",
                c.project,
                left.join(", ")
            );
        }
        docker::remove_image(self.sh, &self.stack.app_image());
        Ok(())
    }
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        if self.keep {
            note(format!(
                "--keep: the stack `{}` stays up. Remove it with:\n  {}",
                self.stack.project(),
                self.removal_command()
            ));
            return;
        }
        let t = Instant::now();
        match self.run() {
            Ok(()) if !self.quiet => note(format!(
                "teardown: {} removed in {}",
                self.stack.project(),
                secs(t.elapsed())
            )),
            Ok(()) => {}
            Err(e) => note(format!("teardown failed: {e:#}")),
        }
    }
}
