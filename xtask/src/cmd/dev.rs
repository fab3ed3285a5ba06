//! `cargo xtask dev`: preflight, build, start, prove ready, then follow the logs with
//! dependency changes picked up; Ctrl-C stops the stack and keeps its volumes.

use std::{
    fs,
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Result, bail};
use xshell::Shell;

use crate::startup::{Needs, Start};
use crate::{
    docker::{
        self,
        compose::{UpOpts, up_args, words},
    },
    env_file::ensure_dotenv,
    flags, http,
    integrity::Policy,
    lifecycle,
    paths::log_path,
    ports,
    progress::Progress,
    readiness::{Ready, ReadySpec},
    stack::{Ports, Stack, StackKind, TIMEOUT_BUILD, TIMEOUT_HEALTHY, TIMEOUT_HTTP},
    util::{note, poll, secs},
};

/// How often package.json and bun.lock are checked for changes while following logs.
const WATCH_EVERY: Duration = Duration::from_millis(500);

impl flags::Dev {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let t0 = Instant::now();
        let stack = self.prepare(sh)?;
        let preflight = t0.elapsed();
        let build = if self.no_build {
            Duration::ZERO
        } else {
            build_app(sh, &stack, self.repair_lock)?
        };
        let spec = ReadySpec {
            services: StackKind::Dev
                .services()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            app_port: stack.ports.app,
            timeout_healthy: TIMEOUT_HEALTHY,
            timeout_http: TIMEOUT_HTTP,
        };
        let opts = UpOpts {
            renew_anon_volumes: true,
            no_deps: false,
        };
        let (ready, up_after) =
            lifecycle::up_and_wait(sh, &stack.compose, opts, &spec, &mut Progress::new(false))?;
        let ready = ready.or_else(|e| {
            eprintln!("{}", lifecycle::failure_dump(sh, stack.project(), e.service.as_deref()));
            bail!(
                "the dev stack did not become ready: {}\n  it is left running for inspection: `docker compose logs`; \
                 stop it with `cargo xtask down`",
                e.message
            )
        })?;
        let phases = [
            ("preflight", preflight),
            ("build", build),
            ("start", up_after),
            ("healthy", ready.healthy_after),
            ("first 200", ready.first_200_after),
        ];
        print_summary(&stack, &ready, t0.elapsed(), &phases);
        if self.detach {
            eprintln!("running detached; stop it with `cargo xtask down` (volumes are kept)");
            return Ok(());
        }
        eprintln!("following logs; Ctrl-C stops the stack (volumes are kept)\n");
        follow(sh, &stack)
    }

    /// Engine, .env, free ports (unless our own stack holds them), images, source tree.
    fn prepare(&self, sh: &Shell) -> Result<Stack> {
        if ensure_dotenv(&sh.current_dir())? {
            eprintln!(
                "created .env from .env.example (edit it to change ports, passwords, images)"
            );
        }
        let needs = Needs {
            install: true,
            images: self.images,
            files: Some(StackKind::Dev),
        };
        let start = Start::new(sh, needs)?;
        eprintln!("docker: {}", crate::engine::describe(&start.versions));
        let (_root, env) = (start.root.clone(), &start.env);
        let ports = Ports::from_env(env)?;
        let project = StackKind::Dev.project();
        // Our own running dev stack holds these ports legitimately: `up` reuses it.
        let running = docker::containers(sh, &project)?
            .iter()
            .any(|c| c.is_running());
        if !running {
            ports::check_free(&ports.named())?;
        }
        let mut stack = Stack::new(StackKind::Dev, project, env, start.set(), ports);
        let (sync, why) = sync_mode(self.edits(), &docker::engine_os(sh));
        eprintln!(
            "edits reach the app by {} ({why})",
            if sync {
                "`compose watch` sync"
            } else {
                "a bind mount of app/"
            }
        );
        if sync {
            stack.compose.overlays.push(SYNC_OVERLAY.into());
        }
        Ok(stack)
    }
}

/// The overlay that drops the bind mount: edits are synced by `docker compose watch`.
const SYNC_OVERLAY: &str = "docker-compose.sync.yml";

/// Bind mount or watch sync: asked for, or by platform. Docker Desktop (macOS, Windows, and its
/// Linux VM) delivers bind-mount file events unreliably and Turbopack does not poll
/// (vercel/next.js#71622); a native Linux engine delivers them.
fn sync_mode(asked: Option<bool>, engine_os: &str) -> (bool, String) {
    match asked {
        Some(true) => (true, "--sync".into()),
        Some(false) => (false, "--bind".into()),
        None if engine_os.contains("Docker Desktop") => {
            (true, format!("the engine is {engine_os}"))
        }
        None if cfg!(any(target_os = "macos", target_os = "windows")) => {
            (true, "a macOS/Windows host".into())
        }
        None => (false, format!("a native engine on {engine_os}")),
    }
}

fn print_summary(stack: &Stack, ready: &Ready, total: Duration, phases: &[(&str, Duration)]) {
    eprintln!(
        "\ndev stack ready in {} (from `cargo xtask dev`)",
        secs(total)
    );
    let phases: Vec<String> = phases
        .iter()
        .map(|(n, d)| format!("{n} {}", secs(*d)))
        .collect();
    eprintln!("  phases: {}", phases.join("  "));
    for s in &ready.services {
        eprintln!("  {}", s.summary());
    }
    let p = stack.ports;
    eprintln!(
        "  app        http://localhost:{0}  (health: http://localhost:{0}/api/health)",
        p.app
    );
    eprintln!("  postgres   127.0.0.1:{}", p.db);
    eprintln!("  redis      127.0.0.1:{}", p.redis);
}

/// Builds the dev image under the lockfile policy (`--repair-lock`: a person may accept a lock
/// repair); returns the build time.
fn build_app(sh: &Shell, stack: &Stack, repair_lock: bool) -> Result<Duration> {
    let log = log_path(&sh.current_dir(), "dev-build.log");
    let mut progress = Progress::new(false);
    progress.show("building the app image (dev target)...");
    let built = lifecycle::build(
        sh,
        &stack.compose,
        StackKind::Dev,
        &Policy {
            repair_lock,
            ..Policy::new(false, None)
        },
        &["app"],
        &log,
        TIMEOUT_BUILD,
    )?;
    progress.done();
    eprintln!(
        "built axion-hub:dev in {} ({})",
        secs(built.finished.elapsed),
        built.policy
    );
    Ok(built.finished.elapsed)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Follows the logs in the foreground. A change to package.json or bun.lock rebuilds the app
/// image and recreates the app with fresh anonymous volumes, so node_modules is never stale.
fn follow(sh: &Shell, stack: &Stack) -> Result<()> {
    let sync = !stack.compose.overlays.is_empty();
    // Sync mode: `compose watch` copies edits in and rebuilds on package.json/bun.lock itself.
    let watch = if sync {
        Some(stack.compose.expr(&words(&["watch"])).unchecked().start()?)
    } else {
        None
    };
    let followed = follow_logs(sh, stack, sync);
    if let Some(w) = watch {
        let _ = w.kill();
    }
    followed
}

fn follow_logs(sh: &Shell, stack: &Stack, sync: bool) -> Result<()> {
    let root = sh.current_dir();
    let watched = [root.join("app/package.json"), root.join("app/bun.lock")];
    let stamp = || watched.iter().map(|p| mtime(p)).collect::<Vec<_>>();
    let mut last = stamp();
    let logs = |tail: &str| {
        stack
            .compose
            .expr(&words(&["logs", "--follow", "--tail", tail]))
            .unchecked()
            .start()
    };
    let mut follower = logs("20")?;
    let mut attached = Instant::now();
    loop {
        std::thread::sleep(WATCH_EVERY);
        if let Some(sig) = crate::signals::received() {
            let _ = follower.kill();
            return stop(sh, stack, sig);
        }
        if follower.try_wait()?.is_some() {
            // The engine restarted, or the stack was stopped elsewhere: find out which.
            stack_still_running(sh, stack)?;
            if attached.elapsed() < Duration::from_secs(5) {
                bail!(
                    "`docker compose logs --follow` keeps ending although the stack runs; see `docker compose logs`"
                );
            }
            eprintln!("[xtask] the stack runs: following its logs again");
            follower = logs("0")?;
            attached = Instant::now();
            continue;
        }
        let now = stamp();
        if now != last && !sync {
            last = now;
            if recreate_app(sh, stack)? {
                let _ = follower.kill();
                follower = logs("0")?;
            }
        }
    }
}

/// How long `dev` waits for an engine that stopped answering (a restart takes a few seconds).
const ENGINE_BACK: Duration = Duration::from_secs(60);

/// After the log stream ended: Ok when the stack still runs (reattach), otherwise the error
/// that says what happened and how to go on.
fn stack_still_running(sh: &Shell, stack: &Stack) -> Result<()> {
    if !crate::docker::daemon_answers(sh) {
        eprintln!(
            "\n[xtask] the Docker engine stopped answering (restarting?); waiting up to {}s for it",
            ENGINE_BACK.as_secs()
        );
        let back = poll(
            "the Docker engine",
            ENGINE_BACK,
            Duration::from_millis(500),
            || Ok(crate::docker::daemon_answers(sh).then_some(())),
        );
        if back.is_err() {
            bail!(
                "the Docker engine went away and did not come back within {}s.\n  fix: start it (`sudo systemctl start docker`, \
                 or `cargo xtask provision` as root), then `cargo xtask dev` (your data is kept in the stack's volumes)",
                ENGINE_BACK.as_secs()
            );
        }
        eprintln!("[xtask] the Docker engine answers again");
    }
    let cs = docker::containers(sh, stack.project())?;
    let down: Vec<String> = cs
        .iter()
        .filter(|c| !c.is_running())
        .map(|c| format!("{} {}", c.service, c.state_word()))
        .collect();
    if cs.is_empty() || !down.is_empty() {
        let states = if cs.is_empty() {
            "removed".to_string()
        } else {
            down.join(", ")
        };
        bail!(
            "the dev stack stopped underneath `dev` (an engine restart, or a stop elsewhere): {states}.\n  \
             fix: `cargo xtask dev` starts it again (your data is kept in the stack's volumes)"
        );
    }
    Ok(())
}

fn stop(sh: &Shell, stack: &Stack, sig: &str) -> Result<()> {
    note(format!(
        "\n{sig}: stopping the dev stack (volumes kept; `cargo xtask dev` starts it again)"
    ));
    let t = Instant::now();
    stack
        .compose
        .cmd(sh, &crate::docker::compose::stop_args())
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()?;
    note(format!("dev stack stopped in {}", secs(t.elapsed())));
    Ok(())
}

/// Rebuilds the app with the new dependencies and recreates its container; says whether the
/// app came back, and how long that took. Returns whether the container was recreated.
fn recreate_app(sh: &Shell, stack: &Stack) -> Result<bool> {
    eprintln!(
        "\n[xtask] app/package.json or app/bun.lock changed: rebuilding the app with fresh dependencies"
    );
    let t = Instant::now();
    if let Err(e) = build_app(sh, stack, false) {
        eprintln!("[xtask] rebuild failed; the running app is unchanged:\n{e:#}");
        return Ok(false);
    }
    let opts = UpOpts {
        renew_anon_volumes: true,
        no_deps: true,
    };
    stack
        .compose
        .cmd(sh, &up_args(opts, &["app"]))
        .quiet()
        .run()?;
    let answered = poll(
        "the app to answer",
        TIMEOUT_HTTP,
        Duration::from_millis(200),
        || {
            let r = http::get(stack.ports.app, "/", Duration::from_secs(30));
            Ok(r.ok().filter(|r| r.status == 200))
        },
    );
    match answered {
        Ok(_) => eprintln!(
            "[xtask] app recreated with new dependencies; serving again after {}",
            secs(t.elapsed())
        ),
        Err(e) => eprintln!(
            "[xtask] app recreated with new dependencies, but it does not answer: {e:#}\n\
             [xtask] its logs follow; `cargo xtask down` and `cargo xtask dev` start over"
        ),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_on_docker_desktop_bind_on_a_native_engine() {
        assert!(sync_mode(None, "Docker Desktop").0);
        assert!(!sync_mode(None, "Debian GNU/Linux 12 (bookworm)").0 || cfg!(target_os = "macos"));
        assert_eq!(
            sync_mode(Some(false), "Docker Desktop"),
            (false, "--bind".to_string())
        );
        assert!(sync_mode(Some(true), "Debian").0);
    }
}
