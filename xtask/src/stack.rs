//! A running stack: where readiness gets decided, how progress is shown, how a failure is
//! diagnosed, and the guard that tears a throw-away stack down whatever happens.

use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Result, bail};
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::{
    compose::{Container, Stack, UpOpts, parse_inspect, up_args},
    diagnose::known_problems,
    proc::tail,
    util::{http_get, note, secs, timestamp},
};

/// How often readiness is sampled when `docker events` cannot be followed: one
/// `docker inspect` costs about 30 ms here, so a service is noticed within ~150 ms.
pub const POLL_EVERY: Duration = Duration::from_millis(100);
/// With the event stream, how often `up`'s exit is checked (no docker call, just try_wait).
const UP_CHECK_EVERY: Duration = Duration::from_millis(25);
/// With the event stream, the longest time between two samples: a safety net for an event
/// that arrived before the stream started.
const FALLBACK_SAMPLE: Duration = Duration::from_secs(1);

/// A project's container events (`docker events`), so readiness is sampled when something
/// happens rather than on a tight poll: each `docker inspect` costs ~30 ms of CPU on a 2-core
/// machine that is busy starting the stack, and an event arrives within milliseconds.
struct Events {
    reader: std::sync::Arc<duct::ReaderHandle>,
    rx: std::sync::mpsc::Receiver<()>,
    pending: std::cell::Cell<bool>,
    ended: std::cell::Cell<bool>,
}

impl Events {
    fn start(project: &str) -> Option<Events> {
        use std::io::BufRead;
        let filter = format!("label=com.docker.compose.project={project}");
        // Only what changes readiness, not the exec events each health probe makes.
        let mut args = vec![
            "events",
            "--format",
            "{{.Status}}",
            "--filter",
            "type=container",
            "--filter",
            &filter,
        ];
        for event in [
            "event=start",
            "event=die",
            "event=health_status",
            "event=oom",
        ] {
            args.push("--filter");
            args.push(event);
        }
        let reader = std::sync::Arc::new(
            duct::cmd("docker", args)
                .stderr_null()
                .unchecked()
                .reader()
                .ok()?,
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let r = reader.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(&*r).lines() {
                if line.is_err() || tx.send(()).is_err() {
                    break;
                }
            }
        });
        Some(Events {
            reader,
            rx,
            pending: Default::default(),
            ended: Default::default(),
        })
    }
    /// Blocks until an event or the timeout; remembers an event for `pending`. A stream that
    /// ended (the engine went away) turns into plain polling.
    fn wait(&self, timeout: Duration) {
        match self.rx.recv_timeout(timeout) {
            Ok(()) => self.pending.set(true),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                self.ended.set(true);
                std::thread::sleep(POLL_EVERY);
            }
        }
    }
    /// Whether events arrived since the last call (draining them); always once the stream ended.
    fn pending(&self) -> bool {
        let mut any = self.pending.replace(false) || self.ended.get();
        while self.rx.try_recv().is_ok() {
            any = true;
        }
        any
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.reader.kill();
    }
}

/// While waiting for HTTP, how often the containers are checked for a crash.
const CRASH_CHECK_EVERY: Duration = Duration::from_secs(1);
/// One HTTP probe: the dev server compiles a route on its first request (about 5 s on 2 cores).
const HTTP_PROBE: Duration = Duration::from_secs(30);

/// The containers of a project, running or not.
pub fn containers(sh: &Shell, project: &str) -> Result<Vec<Container>> {
    let filter = format!("label=com.docker.compose.project={project}");
    let ids = cmd!(sh, "docker ps -aq --filter {filter}").quiet().read()?;
    let ids: Vec<String> = ids.split_whitespace().map(String::from).collect();
    inspect(sh, &ids)
}

fn inspect(sh: &Shell, ids: &[String]) -> Result<Vec<Container>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let json = cmd!(sh, "docker inspect {ids...}").quiet().read()?;
    let mut cs = parse_inspect(&json)?;
    cs.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(cs)
}

/// Samples a project's containers; once every expected service has one, only `docker inspect`
/// runs (one CLI call a tick instead of two: the app compiling next to it shares 2 cores).
struct Sampler<'a> {
    sh: &'a Shell,
    project: &'a str,
    expected: usize,
    ids: Vec<String>,
}

impl Sampler<'_> {
    fn sample(&mut self) -> Result<Vec<Container>> {
        if self.ids.len() >= self.expected
            && let Ok(cs) = inspect(self.sh, &self.ids)
        {
            return Ok(cs);
        }
        let cs = containers(self.sh, self.project)?;
        self.ids = cs.iter().map(|c| c.id.clone()).collect();
        Ok(cs)
    }
}

/// Live state: one line rewritten in place on a terminal, timestamped lines otherwise (CI).
pub struct Progress {
    tty: bool,
    last: String,
    /// Without a terminal a line is printed only when this changes (not on every tick).
    last_key: String,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            last: String::new(),
            last_key: String::new(),
            quiet,
        }
    }
    pub fn show(&mut self, line: &str) {
        self.show_keyed(line, line);
    }
    /// `key` is the line without its clock, so plain output changes only with the states.
    pub fn show_keyed(&mut self, key: &str, line: &str) {
        if self.quiet || line == self.last || (!self.tty && key == self.last_key) {
            return;
        }
        self.last = line.to_string();
        self.last_key = key.to_string();
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "[{}] {line}", timestamp());
        }
        let _ = err.flush();
    }
    pub fn done(&mut self) {
        if self.tty && !self.quiet && !self.last.is_empty() {
            eprintln!();
        }
        self.last.clear();
        self.last_key.clear();
    }
}

/// What readiness means for a stack, and how long each part may take.
/// The services of both compose files (a unit test holds the files to it).
pub const SERVICES: [&str; 3] = ["app", "db", "redis"];

pub struct ReadySpec {
    pub services: Vec<String>,
    pub app_port: u16,
    pub timeout_healthy: Duration,
    pub timeout_http: Duration,
}

#[derive(Debug, Clone)]
pub struct ServiceReady {
    pub service: String,
    pub state: String,
    /// Time from `started` to ready, as the xtask first saw it.
    pub ready_after: Option<Duration>,
    /// How long after Docker's first passing health probe the xtask noticed it.
    pub notice_delay: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Ready {
    pub services: Vec<ServiceReady>,
    pub healthy_after: Duration,
    pub first_200_after: Duration,
    pub health_body: Value,
}

impl ServiceReady {
    /// `db         healthy    2.2s (noticed 19 ms after its health check passed)`
    pub fn summary(&self) -> String {
        let ready = self.ready_after.map(secs).unwrap_or_else(|| "-".into());
        let noticed = self
            .notice_delay
            .map(|d| {
                format!(
                    " (noticed {} ms after its health check passed)",
                    d.as_millis()
                )
            })
            .unwrap_or_default();
        format!("{:<10} {:<10} {ready}{noticed}", self.service, self.state)
    }
}

/// Why waiting stopped short, with the service to blame when there is one.
#[derive(Debug)]
pub struct NotReady {
    pub service: Option<String>,
    pub message: String,
}

/// Runs `compose up --detach` in the background (it blocks until the dependencies are healthy)
/// while `wait_ready` watches, so progress shows from the first container on. Returns the
/// readiness and when `up` itself returned.
pub fn up_and_wait(
    sh: &Shell,
    stack: &Stack,
    opts: UpOpts,
    spec: &ReadySpec,
    progress: &mut Progress,
) -> Result<(std::result::Result<Ready, NotReady>, Duration)> {
    let started = Instant::now();
    let up = up_args(opts, &[]);
    let up: Vec<&str> = up.iter().map(String::as_str).collect();
    let handle = stack
        .duct(&up)
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .start()?;
    let mut start_after = None;
    let ready = wait_ready(sh, stack, spec, started, progress, || {
        match handle.try_wait()? {
            None => Ok(false),
            Some(out) if out.status.success() => {
                start_after.get_or_insert(started.elapsed());
                Ok(true)
            }
            Some(out) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let hints: String = known_problems(&text)
                    .into_iter()
                    .map(|h| format!("\n  cause: {h}"))
                    .collect();
                bail!("`compose up` failed:{hints}\n{}", tail(&text, 20))
            }
        }
    });
    let _ = handle.kill();
    Ok((ready, start_after.unwrap_or_default()))
}

/// Waits until every service is ready (healthy, or running when it has no health check), then
/// until `GET /` and `GET /api/health` answer 200 with db and redis ok. `up` is the detached
/// `compose up` still running, whose failure (a port conflict, a pull error) ends the wait.
pub fn wait_ready(
    sh: &Shell,
    stack: &Stack,
    spec: &ReadySpec,
    started: Instant,
    progress: &mut Progress,
    mut up_done: impl FnMut() -> Result<bool>,
) -> std::result::Result<Ready, NotReady> {
    let fail = |service: Option<&str>, message: String| NotReady {
        service: service.map(String::from),
        message,
    };
    let mut seen: Vec<ServiceReady> = spec
        .services
        .iter()
        .map(|s| ServiceReady {
            notice_delay: None,
            service: s.clone(),
            state: "waiting".into(),
            ready_after: None,
        })
        .collect();
    let deadline = started + spec.timeout_healthy;
    let mut sampler = Sampler {
        sh,
        project: &stack.project,
        expected: spec.services.len(),
        ids: vec![],
    };
    let events = Events::start(&stack.project);
    let mut last_sample: Option<Instant> = None;
    let mut was_up = false;
    let healthy_after = loop {
        if let Err(e) = crate::signals::check() {
            return Err(fail(None, e.to_string()));
        }
        let up_finished = up_done().map_err(|e| fail(None, format!("{e:#}")))?;
        // Sample when the engine reports a change, when `up` returns, and at least every
        // FALLBACK_SAMPLE; without an event stream, every POLL_EVERY.
        let due = last_sample.is_none_or(|t| t.elapsed() >= FALLBACK_SAMPLE)
            || up_finished != was_up
            || events.as_ref().is_none_or(|e| e.pending());
        was_up = up_finished;
        if !due {
            match &events {
                Some(e) => e.wait(UP_CHECK_EVERY),
                None => std::thread::sleep(POLL_EVERY),
            }
            continue;
        }
        last_sample = Some(Instant::now());
        let cs = sampler.sample().map_err(|e| fail(None, format!("{e:#}")))?;
        for s in seen.iter_mut() {
            let c = cs.iter().find(|c| c.service == s.service);
            s.state = c.map_or("not created".into(), Container::state_word);
            if let Some(c) = c.filter(|c| s.ready_after.is_none() && c.ready()) {
                s.ready_after = Some(started.elapsed());
                s.notice_delay = c
                    .healthy_since()
                    .and_then(|t| SystemTime::now().duration_since(t).ok());
            }
        }
        progress.show_keyed(
            &status_line(&seen, Duration::ZERO),
            &status_line(&seen, started.elapsed()),
        );
        // Until `up` returns, states may be left over from a stopped stack it is restarting;
        // a service failing during `up` makes `up` itself fail.
        if let Some(c) = cs.iter().find(|c| up_finished && c.failed()) {
            progress.done();
            return Err(fail(
                Some(&c.service),
                format!("service `{}` is {}", c.service, c.state_word()),
            ));
        }
        if up_finished && seen.iter().all(|s| s.ready_after.is_some()) {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            progress.done();
            let blame = seen
                .iter()
                .find(|s| s.ready_after.is_none())
                .map(|s| s.service.clone());
            return Err(NotReady {
                message: format!(
                    "not ready within {:.0}s: {} (raise with --timeout-healthy)",
                    spec.timeout_healthy.as_secs_f64(),
                    seen.iter()
                        .map(|s| format!("{} {}", s.service, s.state))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                service: blame,
            });
        }
        match &events {
            Some(e) => e.wait(UP_CHECK_EVERY),
            None => std::thread::sleep(POLL_EVERY),
        }
    };
    drop(events);

    // The app: `/` first (the dev server compiles on first request), then the health route.
    let http_deadline = Instant::now() + spec.timeout_http;
    let mut last = String::from("no answer yet");
    let mut first_200_after = None;
    let mut last_check = Instant::now();
    loop {
        if let Err(e) = crate::signals::check() {
            return Err(fail(None, e.to_string()));
        }
        let path = if first_200_after.is_none() {
            "/"
        } else {
            "/api/health"
        };
        let key = format!("GET {path}: {last}");
        progress.show_keyed(
            &key,
            &format!("{}  {key}", status_line(&seen, started.elapsed())),
        );
        match http_get(spec.app_port, path, HTTP_PROBE) {
            Ok(r) if r.status == 200 && path == "/" => {
                first_200_after = Some(started.elapsed());
                last = "waiting".into();
                continue;
            }
            Ok(r) if path == "/api/health" => match serde_json::from_str::<Value>(&r.body) {
                Ok(body) if r.status == 200 && health_ok(&body) => {
                    progress.done();
                    return Ok(Ready {
                        services: seen,
                        healthy_after,
                        first_200_after: first_200_after.unwrap(),
                        health_body: body,
                    });
                }
                Ok(body) => last = format!("{} {}", r.status, body),
                Err(_) => {
                    last = format!(
                        "{} (not JSON) {}",
                        r.status,
                        r.body.chars().take(200).collect::<String>()
                    )
                }
            },
            Ok(r) => last = format!("{}", r.status),
            Err(e) => last = e.to_string(),
        }
        // A crash while waiting for HTTP: checked once a second, not every tick.
        let check_containers = last_check.elapsed() >= CRASH_CHECK_EVERY;
        if check_containers {
            last_check = Instant::now();
        }
        if check_containers
            && let Ok(cs) = sampler.sample()
            && let Some(c) = cs.iter().find(|c| c.failed())
        {
            progress.done();
            return Err(fail(
                Some(&c.service),
                format!("service `{}` is {}", c.service, c.state_word()),
            ));
        }
        if Instant::now() > http_deadline {
            progress.done();
            let blame = if last.contains("\"db\"") || last.contains("\"redis\"") {
                failed_check(&last)
            } else {
                Some("app".into())
            };
            return Err(NotReady {
                service: blame,
                message: format!(
                    "GET http://127.0.0.1:{}{path} did not succeed within {:.0}s; last answer: {last} (raise with --timeout-http)",
                    spec.app_port,
                    spec.timeout_http.as_secs_f64()
                ),
            });
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// 200 alone is not enough: the body must say both checks passed.
pub fn health_ok(body: &Value) -> bool {
    body["status"] == "ok"
        && body["checks"]["db"]["ok"] == true
        && body["checks"]["redis"]["ok"] == true
}

fn failed_check(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body.split_once(' ').map_or(body, |(_, b)| b)).ok()?;
    v["failed"].as_array()?.first()?.as_str().map(String::from)
}

pub fn status_line(seen: &[ServiceReady], elapsed: Duration) -> String {
    let parts: Vec<String> = seen
        .iter()
        .map(|s| match s.ready_after {
            Some(t) => format!("{} {} ({})", s.service, s.state, secs(t)),
            None => format!("{} {}", s.service, s.state),
        })
        .collect();
    format!("{:>6}  {}", secs(elapsed), parts.join(" | "))
}

/// Everything a person needs to see about a service that failed: state, exit code, OOM, the
/// health check's own log, and the last 50 lines of its output.
pub fn diagnose(sh: &Shell, stack: &Stack, service: Option<&str>) -> String {
    let Ok(cs) = containers(sh, &stack.project) else {
        return "could not inspect the containers".into();
    };
    let mut out = String::new();
    let chosen: Vec<&Container> = match service {
        Some(s) if cs.iter().any(|c| c.service == s) => {
            cs.iter().filter(|c| c.service == s).collect()
        }
        _ => cs.iter().filter(|c| !c.ready()).collect(),
    };
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
        let id = &c.id;
        let logs = cmd!(sh, "docker logs --tail 50 {id}")
            .quiet()
            .ignore_status()
            .output();
        if let Ok(o) = logs {
            out.push_str("last 50 lines of its log:\n");
            out.push_str(&String::from_utf8_lossy(&o.stdout));
            out.push_str(&String::from_utf8_lossy(&o.stderr));
        }
    }
    out
}

/// Removes a throw-away stack on every way out: success, error, timeout, Ctrl-C, SIGTERM (via
/// the signal flag turning into an error) and panic (Drop runs while unwinding).
pub struct Teardown<'a> {
    pub sh: &'a Shell,
    pub stack: &'a Stack,
    pub keep: bool,
    pub quiet: bool,
}

impl Teardown<'_> {
    /// Down, then proof: nothing labelled with the project may remain.
    pub fn run(&self) -> Result<()> {
        let args = crate::compose::teardown_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self
            .stack
            .cmd(self.sh, &args)
            .quiet()
            .ignore_status()
            .output()?;
        let left = leftovers(&self.stack.project)?;
        if !left.is_empty() {
            bail!(
                "teardown of {} left {}\n{}",
                self.stack.project,
                left.join(", "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        if self.keep {
            note(format!(
                "--keep: the stack `{0}` stays up. Remove it with:\n  docker compose -p {0} down --volumes --remove-orphans",
                self.stack.project
            ));
            return;
        }
        let t = Instant::now();
        match self.run() {
            Ok(()) if !self.quiet => note(format!(
                "teardown: {} removed in {}",
                self.stack.project,
                secs(t.elapsed())
            )),
            Ok(()) => {}
            Err(e) => note(format!("teardown failed: {e:#}")),
        }
    }
}

/// Containers, volumes and networks still labelled with the project.
pub fn leftovers(project: &str) -> Result<Vec<String>> {
    let filter = format!("label=com.docker.compose.project={project}");
    let kinds = ["container", "volume", "network"];
    let calls: Vec<Vec<String>> = [
        &["ps", "-aq"][..],
        &["volume", "ls", "-q"],
        &["network", "ls", "-q"],
    ]
    .iter()
    .map(|c| {
        c.iter()
            .map(|s| s.to_string())
            .chain(["--filter".to_string(), filter.clone()])
            .collect()
    })
    .collect();
    let mut left = Vec::new();
    for (kind, out) in kinds.iter().zip(crate::util::docker_all(&calls)) {
        let out = out?;
        if !out.status.success() {
            bail!(
                "listing {kind}s: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        left.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(|id| format!("{kind} {id}")),
        );
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_files_define_exactly_the_known_services() {
        for file in ["docker-compose.yml", "docker-compose.prod.yml"] {
            let text = std::fs::read_to_string(crate::util::project_root().join(file)).unwrap();
            let body = text
                .split("\nservices:\n")
                .nth(1)
                .unwrap()
                .split("\nvolumes:\n")
                .next()
                .unwrap();
            let mut names: Vec<&str> = body
                .lines()
                .filter(|l| {
                    l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':')
                })
                .map(|l| l.trim().trim_end_matches(':'))
                .collect();
            names.sort();
            assert_eq!(names, SERVICES, "{file}");
        }
    }

    #[test]
    fn health_needs_both_checks() {
        let ok = serde_json::json!({"status":"ok","checks":{"db":{"ok":true},"redis":{"ok":true}}});
        let bad = serde_json::json!({"status":"degraded","checks":{"db":{"ok":true},"redis":{"ok":false}},"failed":["redis"]});
        assert!(health_ok(&ok));
        assert!(!health_ok(&bad));
        assert_eq!(
            failed_check(&format!("503 {bad}")).as_deref(),
            Some("redis")
        );
    }

    #[test]
    fn status_line_shows_each_service() {
        let seen = vec![
            ServiceReady {
                service: "db".into(),
                state: "healthy".into(),
                ready_after: Some(Duration::from_millis(1500)),
                notice_delay: None,
            },
            ServiceReady {
                service: "app".into(),
                state: "starting".into(),
                ready_after: None,
                notice_delay: None,
            },
        ];
        assert_eq!(
            status_line(&seen, Duration::from_secs(2)),
            "  2.0s  db healthy (1.5s) | app starting"
        );
    }
}
