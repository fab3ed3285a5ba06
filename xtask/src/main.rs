//! `cargo xtask`: builds, runs, verifies and tears down the AXion Hub stack.

mod engine;
mod env_file;
mod images;
mod flags;
mod signals;
mod util;

use anyhow::Result;
use xshell::Shell;

fn main() -> Result<()> {
    signals::install();
    let command = flags::parse(std::env::args().skip(1))?;
    let sh = Shell::new()?;
    sh.change_dir(util::project_root());
    match command {
        flags::Command::Help => print!("{}", flags::HELP),
        flags::Command::Provision(o) => {
            engine::provision(&sh)?;
            if o.standin {
                images::ensure_standins(&sh)?;
            }
        }
        _ => todo!(),
    }
    Ok(())
}
