//! `cargo xtask ci`: the whole test run from a bare machine: engine, images, unit and
//! integration tests, then the real-engine verify of the dev and the prod stack.

use std::time::Instant;

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use crate::{engine, env_file::EnvFile, flags, images, util::secs};

pub fn run(sh: &Shell) -> Result<()> {
    let t0 = Instant::now();
    let mut times = Vec::new();

    let t = Instant::now();
    engine::ensure(sh)?;
    let env = EnvFile::parse(&std::fs::read_to_string(
        sh.current_dir().join(".env.example"),
    )?);
    // Builds the stand-ins now if no registry answers, so the tests below find them.
    let chosen = images::choose(sh, flags::ImageChoice::Auto, &env)?;
    times.push(("engine and images", t.elapsed()));

    let t = Instant::now();
    // The tests use the same images verify does.
    let image_env: Vec<(&str, String)> = [(
        "AXION_IMAGES",
        if chosen.standin {
            "standin"
        } else {
            "upstream"
        }
        .to_string(),
    )]
    .into();
    let mut test = cmd!(sh, "cargo test --workspace --locked");
    for (k, v) in &image_env {
        test = test.env(k, v);
    }
    test.run().context("cargo test --workspace")?;
    times.push(("cargo test --workspace", t.elapsed()));

    for prod in [false, true] {
        let t = Instant::now();
        let images = if chosen.standin {
            flags::ImageChoice::Standin
        } else {
            flags::ImageChoice::Upstream
        };
        flags::Verify {
            prod,
            images,
            ..Default::default()
        }
        .run(sh)?;
        times.push((
            if prod {
                "verify --prod"
            } else {
                "verify (dev)"
            },
            t.elapsed(),
        ));
    }

    eprintln!("\nci passed in {}", secs(t0.elapsed()));
    for (what, d) in times {
        eprintln!("  {what:<24} {:>8}", secs(d));
    }
    Ok(())
}
