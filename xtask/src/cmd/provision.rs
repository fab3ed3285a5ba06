//! `cargo xtask provision`: a Docker engine with buildx and Compose v2 (Debian/Ubuntu, root),
//! and with `--standin` the registry-free stand-in images.

use anyhow::Result;
use xshell::Shell;

use crate::{flags, install, standin};

impl flags::Provision {
    pub fn run(self, sh: &Shell) -> Result<()> {
        install::provision(sh)?;
        if self.refresh {
            standin::refresh(sh)?;
        } else if self.standin {
            standin::ensure(sh)?;
        }
        Ok(())
    }
}
