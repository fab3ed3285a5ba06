//! `cargo xtask ci`: the whole test run from a bare machine: engine, images, unit and
//! integration tests, then the real-engine verify of the dev and the prod stack.

use std::{process::Command, time::Instant};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::{env_file::EnvSource, flags::ImageChoice, images, install, util::secs};

pub fn run(sh: &Shell) -> Result<()> {
    let t0 = Instant::now();
    let mut times = Vec::new();

    let t = Instant::now();
    install::ensure(sh)?;
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
    // The tests use the same images verify does.
    cmd!(sh, "cargo test --workspace --locked")
        .env("AXION_IMAGES", name)
        .run()
        .context("cargo test --workspace")?;
    times.push(("cargo test --workspace", t.elapsed()));

    // verify as a child, exactly as a person runs it.
    let exe = std::env::current_exe()?;
    for (what, extra) in [("verify (dev)", None), ("verify --prod", Some("--prod"))] {
        let t = Instant::now();
        let status = Command::new(&exe)
            .arg("verify")
            .arg(flag)
            .args(extra)
            .status()
            .with_context(|| format!("running {what}"))?;
        if !status.success() {
            bail!("{what} failed (its report is above)");
        }
        times.push((what, t.elapsed()));
    }

    eprintln!("\nci passed in {}", secs(t0.elapsed()));
    for (what, d) in times {
        eprintln!("  {what:<24} {:>8}", secs(d));
    }
    Ok(())
}
