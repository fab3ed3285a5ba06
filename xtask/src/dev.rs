//! `cargo xtask dev`: preflight, build, start, prove ready, then follow the logs with
//! dependency changes picked up; Ctrl-C stops the stack and keeps its volumes.

use std::{
    fs,
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result, bail};
use xshell::Shell;

use crate::{
    compose::{Stack, UpOpts, up_args},
    engine,
    env_file::{EnvFile, ensure_dotenv},
    flags,
    images::{self, ImageSet},
    integrity::{self, Kind, Policy},
    ports,
    proc::run_logged,
    stack::{Progress, ReadySpec, SERVICES, diagnose, up_and_wait},
    util::secs,
    verify::{TIMEOUT_BUILD, TIMEOUT_HEALTHY, TIMEOUT_HTTP},
};

/// The dev stack's compose project; AXION_DEV_PROJECT renames it (the tests run their own).
pub fn dev_project() -> String {
    std::env::var("AXION_DEV_PROJECT")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "axion-hub".into())
}
const DEV_FILE: &str = "docker-compose.yml";
/// How often package.json and bun.lock are checked for changes while following logs.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// The environment every stack command gives compose: base images, the host user (so the dev
/// server's files in app/ are theirs), the host's extra CAs for bun install, plain build logs.
pub fn stack_env(images: &ImageSet) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = images
        .env()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("HOST_UID".into(), engine::uid().to_string()));
    env.push(("HOST_GID".into(), engine::gid().to_string()));
    env.push(("BUILDKIT_PROGRESS".into(), "plain".into()));
    let ca = images::extra_ca_pem();
    if !ca.is_empty() {
        env.push(("EXTRA_CA_CERTS".into(), ca));
    }
    env
}

/// Docker creates missing bind-mount targets as root; creating the anonymous volumes' mount
/// points first keeps root-owned directories out of the user's tree.
pub fn prepare_source_tree(root: &Path) -> Result<()> {
    for d in ["app/node_modules", "app/.next"] {
        fs::create_dir_all(root.join(d)).with_context(|| format!("creating {d}"))?;
    }
    Ok(())
}

pub fn dev_stack(sh: &Shell, images: &ImageSet) -> Stack {
    let env_file = sh.current_dir().join(".env");
    Stack {
        file: DEV_FILE.into(),
        project: dev_project(),
        env_file: env_file.exists().then(|| ".env".into()),
        env: stack_env(images),
    }
}

impl flags::Dev {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let t0 = Instant::now();
        let root = sh.current_dir();
        let v = engine::ensure(sh)?;
        eprintln!("docker: {}", engine::describe(&v));
        if ensure_dotenv(&root)? {
            eprintln!(
                "created .env from .env.example (edit it to change ports, passwords, images)"
            );
        }
        let env = EnvFile::load(&root.join(".env"))?;
        let app_port = env.port("APP_PORT", 3000)?;
        let db_port = env.port("DB_PORT", 5432)?;
        let redis_port = env.port("REDIS_PORT", 6379)?;
        // Our own running dev stack holds these ports legitimately: `up` reuses it.
        let running = dev_stack(sh, &ImageSet::upstream())
            .ps(sh)?
            .iter()
            .any(|c| c.state == "running");
        if !running {
            ports::check_free(&[
                ("APP_PORT", app_port),
                ("DB_PORT", db_port),
                ("REDIS_PORT", redis_port),
            ])?;
        }
        let images = images::choose(sh, self.images, &env)?;
        prepare_source_tree(&root)?;
        let stack = dev_stack(sh, &images);
        let preflight = t0.elapsed();

        let build_time = if self.no_build {
            Duration::ZERO
        } else {
            build_app(sh, &stack)?
        };

        let spec = ReadySpec {
            services: SERVICES.map(String::from).to_vec(),
            app_port,
            timeout_healthy: TIMEOUT_HEALTHY,
            timeout_http: TIMEOUT_HTTP,
        };
        let opts = UpOpts {
            renew_anon_volumes: true,
            no_deps: false,
        };
        let (ready, start_after) = up_and_wait(sh, &stack, opts, &spec, &mut Progress::new(false))?;
        let ready = match ready {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}", diagnose(sh, &stack, e.service.as_deref()));
                bail!(
                    "the dev stack did not become ready: {}\n  it is left running for inspection: `docker compose logs`; \
                     stop it with `cargo xtask down`",
                    e.message
                );
            }
        };

        eprintln!(
            "\ndev stack ready in {} (from `cargo xtask dev`)",
            secs(t0.elapsed())
        );
        eprintln!(
            "  phases: preflight {}  build {}  start {}  healthy {}  first 200 {}",
            secs(preflight),
            secs(build_time),
            secs(start_after),
            secs(ready.healthy_after),
            secs(ready.first_200_after)
        );
        for s in &ready.services {
            eprintln!("  {}", s.summary());
        }
        eprintln!(
            "  app        http://localhost:{app_port}  (health: http://localhost:{app_port}/api/health)"
        );
        eprintln!("  postgres   127.0.0.1:{db_port}");
        eprintln!("  redis      127.0.0.1:{redis_port}");
        if self.detach {
            eprintln!("running detached; stop it with `cargo xtask down` (volumes are kept)");
            return Ok(());
        }
        eprintln!("following logs; Ctrl-C stops the stack (volumes are kept)\n");
        follow(sh, &stack, app_port)
    }
}

/// Builds the dev image under the lockfile policy; returns the build time.
fn build_app(sh: &Shell, stack: &Stack) -> Result<Duration> {
    let log = sh.current_dir().join("target/xtask/logs/dev-build.log");
    let mut progress = Progress::new(false);
    progress.show("building the app image (dev target)...");
    let policy = Policy::new(false, None);
    let built = integrity::build_with_policy(sh, Kind::Dev, &policy, |flags| {
        let mut s = stack.clone();
        s.env.push(("BUN_INSTALL_FLAGS".into(), flags.into()));
        run_logged(
            s.duct(&["build", "app"]),
            "compose build app",
            &log,
            false,
            TIMEOUT_BUILD,
        )
    })
    .with_context(|| format!("build log: {}", log.display()))?;
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
fn follow(sh: &Shell, stack: &Stack, app_port: u16) -> Result<()> {
    let root = sh.current_dir();
    let watched = [root.join("app/package.json"), root.join("app/bun.lock")];
    let stamp = || watched.iter().map(|p| mtime(p)).collect::<Vec<_>>();
    let mut last = stamp();
    let mut logs = stack
        .duct(&["logs", "--follow", "--tail", "20"])
        .unchecked()
        .start()?;
    loop {
        std::thread::sleep(WATCH_EVERY);
        if let Some(sig) = crate::signals::received() {
            let _ = logs.kill();
            crate::util::note(format!(
                "\n{sig}: stopping the dev stack (volumes kept; `cargo xtask dev` starts it again)"
            ));
            let t = Instant::now();
            stack
                .cmd(sh, &["stop", "--timeout", "5"])
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run()?;
            crate::util::note(format!("dev stack stopped in {}", secs(t.elapsed())));
            return Ok(());
        }
        if logs.try_wait()?.is_some() {
            eprintln!("the log stream ended: the stack is no longer running");
            return Ok(());
        }
        let now = stamp();
        if now != last {
            last = now;
            eprintln!(
                "\n[xtask] app/package.json or app/bun.lock changed: rebuilding the app with fresh dependencies"
            );
            let t = Instant::now();
            if let Err(e) = build_app(sh, stack) {
                eprintln!("[xtask] rebuild failed; the running app is unchanged:\n{e:#}");
                continue;
            }
            let up = up_args(
                UpOpts {
                    renew_anon_volumes: true,
                    no_deps: true,
                },
                &["app"],
            );
            let up: Vec<&str> = up.iter().map(String::as_str).collect();
            stack.cmd(sh, &up).quiet().run()?;
            let _ = crate::util::poll(
                "the app to answer",
                TIMEOUT_HTTP,
                Duration::from_millis(200),
                || {
                    Ok(
                        crate::util::http_get(app_port, "/", Duration::from_secs(30))
                            .ok()
                            .filter(|r| r.status == 200),
                    )
                },
            );
            eprintln!(
                "[xtask] app recreated with new dependencies in {}",
                secs(t.elapsed())
            );
            let _ = logs.kill();
            logs = stack
                .duct(&["logs", "--follow", "--tail", "0"])
                .unchecked()
                .start()?;
        }
    }
}
