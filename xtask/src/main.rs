//! `cargo xtask`: builds, runs, verifies and tears down the AXion Hub stack.
//!
//! Map: `flags` (the command line) -> `cmd/*` (one module per operation a person runs) and
//! `proof/*` (what shows the stack holds: `verify --swarm` and its throw-away `cluster` and
//! steady `load`, `bench`; the operations never import it). Every command starts from
//! `startup` (engine, reaper, env file, images, prepared files). Domain modules:
//! `stack` (a stack's facts), `env_file` (which env file), `app_env` (the app's own variables),
//! `secrets` (prod's secret files), `images` + `standin` (base images), `lifecycle` (build, up,
//! teardown), `readiness` (when is it ready), `docker/*` (every docker child is spawned
//! there; `Engine` local or by address, containers, compose, swarm, resource sets removed in
//! order, events; the swarm path, the cluster, reap and clean spell their CLI there too), `engine` + `install` (the engine), `integrity` +
//! `known_errors` (build failures), `owner` + `reap` (who made a throw-away stack, and removing
//! what dead runs left), `swarm` (the stack file for a swarm and waiting on it), `paths` (every
//! `target/xtask` path), `host`, `http`, `ports`, `proc`, `progress`, `signals`, `util`.

mod app_env;
mod build_output;
mod cmd;
mod docker;
mod engine;
mod env_file;
mod flags;
mod host;
mod http;
mod images;
mod install;
mod integrity;
mod known_errors;
mod lifecycle;
mod owner;
mod paths;
mod ports;
mod proc;
mod progress;
mod proof;
mod readiness;
mod reap;
mod secrets;
mod signals;
mod stack;
mod standin;
mod startup;
mod swarm;
mod tls;
mod util;

use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

fn main() -> ExitCode {
    signals::install();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Formatted here, not by anyhow's Debug: no backtrace for a user-facing error even
            // with RUST_BACKTRACE set.
            util::note(format!("error: {e}"));
            for cause in e.chain().skip(1) {
                util::note(format!("  caused by: {cause}"));
            }
            // 128 + signal, as shells report a process a signal stopped.
            match signals::received_number() {
                Some(sig) => ExitCode::from(128 + sig as u8),
                None => ExitCode::FAILURE,
            }
        }
    }
}

fn run() -> Result<()> {
    let command = flags::parse(std::env::args().skip(1))?;
    // The process too, not only the Shell: duct children and relative paths (compose's
    // --env-file) resolve against it, and `cargo test` starts us in xtask/.
    std::env::set_current_dir(util::project_root())?;
    let sh = Shell::new()?;
    match command {
        flags::Command::Help(c) => print!("{}", flags::help(c)),
        flags::Command::Dev(o) => o.run(&sh)?,
        flags::Command::BuildProd(o) => o.run(&sh)?,
        flags::Command::Verify(o) => o.run(&sh)?,
        flags::Command::Down(o) => o.run(&sh)?,
        flags::Command::Clean(o) => o.run(&sh)?,
        flags::Command::Db(o) => o.run(&sh)?,
        flags::Command::Doctor(o) => o.run(&sh)?,
        flags::Command::Provision(o) => o.run(&sh)?,
        flags::Command::Ci => cmd::ci::run(&sh)?,
        flags::Command::Bench(o) => o.run(&sh)?,
        flags::Command::Deploy(o) => o.run(&sh)?,
        flags::Command::Status(o) => o.run(&sh)?,
        flags::Command::Logs(o) => o.run(&sh)?,
    }
    Ok(())
}
