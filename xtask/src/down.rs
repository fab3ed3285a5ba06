//! `cargo xtask down`: stop the dev stack; its named volumes (the database!) stay unless asked.

use anyhow::Result;
use xshell::{Shell, cmd};

use crate::{
    dev::{dev_project, dev_stack},
    flags,
    images::ImageSet,
};

impl flags::Down {
    pub fn run(self, sh: &Shell) -> Result<()> {
        crate::engine::preflight()?;
        // Images do not matter for stopping; the upstream set keeps compose's interpolation happy.
        let stack = dev_stack(sh, &ImageSet::upstream());
        let filter = format!("label=com.docker.compose.project={}", dev_project());
        let named = cmd!(sh, "docker volume ls -q --filter {filter}")
            .quiet()
            .read()?;
        let named: Vec<&str> = named.split_whitespace().collect();
        // Anonymous volumes (node_modules, .next copies) are caches: remove them with their
        // containers so they do not pile up; named volumes are data.
        stack
            .cmd(sh, &["rm", "--stop", "--force", "--volumes"])
            .quiet()
            .ignore_stdout()
            .run()?;
        if self.volumes {
            stack
                .cmd(sh, &["down", "--volumes", "--remove-orphans"])
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run()?;
            if named.is_empty() {
                eprintln!("dev stack down; it had no volumes");
            }
            for v in named {
                eprintln!("deleted volume {v}");
            }
        } else {
            stack
                .cmd(sh, &["down", "--remove-orphans"])
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run()?;
            eprintln!(
                "dev stack down; volumes kept: {} (`cargo xtask down --volumes` deletes them)",
                if named.is_empty() {
                    "none".to_string()
                } else {
                    named.join(", ")
                }
            );
        }
        Ok(())
    }
}
