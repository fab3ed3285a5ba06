//! `cargo xtask`: builds, runs, verifies and tears down the AXion Hub stack.

mod bench;
mod build_prod;
mod ci;
mod compose;
mod dev;
mod diagnose;
mod doctor;
mod down;
mod engine;
mod env_file;
mod flags;
mod images;
mod integrity;
mod ports;
mod proc;
mod signals;
mod stack;
mod util;
mod verify;

use anyhow::Result;
use xshell::Shell;

fn main() -> Result<()> {
    signals::install();
    let command = flags::parse(std::env::args().skip(1))?;
    // The process too, not only the Shell: duct children and relative paths (compose's
    // --env-file) resolve against it, and `cargo test` starts us in xtask/.
    std::env::set_current_dir(util::project_root())?;
    let sh = Shell::new()?;
    match command {
        flags::Command::Help => print!("{}", flags::HELP),
        flags::Command::Dev(o) => o.run(&sh)?,
        flags::Command::BuildProd(o) => o.run(&sh)?,
        flags::Command::Verify(o) => o.run(&sh)?,
        flags::Command::Down(o) => o.run(&sh)?,
        flags::Command::Doctor => doctor::run(&sh)?,
        flags::Command::Provision(o) => {
            engine::provision(&sh)?;
            if o.standin {
                images::ensure_standins(&sh)?;
            }
        }
        flags::Command::Ci => ci::run(&sh)?,
        flags::Command::Bench(o) => o.run(&sh)?,
    }
    Ok(())
}
