//! `cargo xtask down`: stop the dev stack; its named volumes (the database!) stay unless asked.

use anyhow::Result;
use xshell::Shell;

use crate::{
    docker::{self, compose},
    engine,
    env_file::EnvSource,
    flags,
    images::ImageSet,
    stack::{Ports, Stack, StackKind},
};

impl flags::Down {
    pub fn run(self, sh: &Shell) -> Result<()> {
        engine::preflight()?;
        let env = EnvSource::resolve(&sh.current_dir())?;
        // Neither images nor ports matter for stopping; valid values keep compose's
        // interpolation happy even when .env holds a bad port.
        let ports = Ports::from_env(&env).unwrap_or_default();
        let stack = Stack::new(
            StackKind::Dev,
            StackKind::Dev.project(),
            &env,
            &ImageSet::upstream(),
            ports,
        );
        let compose = &stack.compose;
        let named = docker::volumes(sh, &compose.project)?;
        let anonymous = anonymous_volumes(sh, &compose.project);
        // Anonymous volumes (node_modules, .next copies) are caches: remove them with their
        // containers so they do not pile up; named volumes are data.
        compose
            .cmd(sh, &compose::remove_containers_args())
            .quiet()
            .ignore_stdout()
            .run()?;
        compose
            .cmd(sh, &compose::down_args(self.volumes))
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()?;
        // A container `compose watch` recreated (sync mode) keeps anonymous volumes compose's
        // `rm --volumes` without the sync overlay does not remove: remove them by name.
        if !anonymous.is_empty() {
            docker::remove_volumes(sh, &anonymous);
        }
        if !self.volumes {
            let kept = if named.is_empty() {
                "none".to_string()
            } else {
                named.join(", ")
            };
            eprintln!(
                "dev stack down; volumes kept: {kept} (`cargo xtask down --volumes` deletes them)"
            );
        } else if named.is_empty() {
            eprintln!("dev stack down; it had no volumes");
        } else {
            for v in named {
                eprintln!("deleted volume {v}");
            }
        }
        Ok(())
    }
}

/// The anonymous volumes (named by a 64-hex id, never data: node_modules and .next caches)
/// mounted in the project's containers.
fn anonymous_volumes(sh: &Shell, project: &str) -> Vec<String> {
    docker::mounted_volumes(sh, project)
        .into_iter()
        .filter(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit()))
        .collect()
}
