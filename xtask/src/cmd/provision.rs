//! `cargo xtask provision`: a Docker engine with buildx and Compose v2 (Debian/Ubuntu, root),
//! and with `--standin` every registry-free stand-in image (the swarm proof's too).

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
            standin::ensure_swarm(sh)?;
        }
        Ok(())
    }
}
