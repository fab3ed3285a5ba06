//! `cargo xtask down`: stop the dev stack; its named volumes (the database!) stay unless asked.

use anyhow::Result;
use xshell::Shell;

use crate::{
    docker::{self, compose::words},
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
            .cmd(sh, &words(&["rm", "--stop", "--force", "--volumes"]))
            .quiet()
            .ignore_stdout()
            .run()?;
        let mut down = words(&["down", "--remove-orphans"]);
        if self.volumes {
            down.push("--volumes".into());
        }
        compose
            .cmd(sh, &down)
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()?;
        // A container `compose watch` recreated (sync mode) keeps anonymous volumes compose's
        // `rm --volumes` without the sync overlay does not remove: remove them by name.
        if !anonymous.is_empty() {
            let mut rm = words(&["volume", "rm", "--force"]);
            rm.extend(anonymous);
            let _ = docker::cmd(sh, &rm)
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .ignore_status()
                .run();
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
    let ids = docker::ids(
        sh,
        &words(&["ps", "-aq", "--filter", &docker::label_filter(project)]),
    );
    if ids.is_empty() {
        return vec![];
    }
    let mut args = words(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
    ]);
    args.extend(ids);
    let out = docker::cmd(sh, &args).quiet().read().unwrap_or_default();
    out.split_whitespace()
        .filter(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit()))
        .map(String::from)
        .collect()
}
