//! A stack running beside the proof on the host engine, whose name resolution must survive
//! it (switching an engine's swarm mode once broke a running compose stack's here).

use anyhow::{Result, bail};
use xshell::Shell;

use crate::{
    docker::{self, compose::words},
    images,
    stack::StackKind,
};

/// A stack running beside the proof on the host engine, whose name resolution must survive it:
/// the dev stack when it runs, else two containers on a network of their own.
pub struct Neighbour {
    /// `container`, and the names it must resolve.
    probe: (String, Vec<&'static str>),
    what: String,
    made: Vec<String>,
    network: Option<String>,
}

impl Neighbour {
    pub fn start(sh: &Shell, project: &str) -> Result<Neighbour> {
        let dev = docker::containers(sh, &StackKind::Dev.project()).unwrap_or_default();
        if let Some(app) = dev.iter().find(|c| c.service == "app" && c.is_running()) {
            return Ok(Neighbour {
                probe: (app.id.clone(), vec!["db", "redis"]),
                what: "the dev stack".into(),
                made: vec![],
                network: None,
            });
        }
        let net = format!("{project}-neighbour");
        let base = format!("{}/debian:trixie", images::STANDIN);
        let owner = format!(
            "{}={}",
            crate::owner::LABEL,
            crate::owner::Owner::current().label()
        );
        // A project of its own: the proof's leftover check must not count it.
        let proj = format!("com.docker.compose.project={net}");
        docker::cmd(
            sh,
            &words(&[
                "network", "create", "--label", &owner, "--label", &proj, &net,
            ]),
        )
        .quiet()
        .ignore_stdout()
        .run()?;
        let mut n = Neighbour {
            probe: (format!("{net}-app"), vec!["db"]),
            what: "a two-container stack beside it (no dev stack was running)".into(),
            made: vec![],
            network: Some(net.clone()),
        };
        for (name, alias) in [("db", "db"), ("app", "app")] {
            let container = format!("{net}-{name}");
            docker::cmd(
                sh,
                &words(&[
                    "run",
                    "-d",
                    "--rm",
                    "--label",
                    &owner,
                    "--label",
                    &proj,
                    "--name",
                    &container,
                    "--network",
                    &net,
                    "--network-alias",
                    alias,
                    &base,
                    "sleep",
                    "infinity",
                ]),
            )
            .quiet()
            .ignore_stdout()
            .run()?;
            n.made.push(container);
        }
        Ok(n)
    }

    /// `getent hosts` of each name inside the probe container.
    pub fn check(&self, sh: &Shell) -> Result<String> {
        let (container, names) = &self.probe;
        for name in names {
            let out = docker::exec(sh, container, &["getent", "hosts", name])?;
            if !out.status.success() {
                bail!("{}: `{name}` does not resolve any more", self.what);
            }
        }
        let verb = if names.len() == 1 {
            "resolves"
        } else {
            "resolve"
        };
        Ok(format!("{}: {} still {verb}", self.what, names.join(", ")))
    }

    pub fn stop(&mut self, sh: &Shell) {
        if !self.made.is_empty() {
            let mut a = words(&["rm", "--force"]);
            a.append(&mut self.made);
            let _ = docker::cmd(sh, &a)
                .quiet()
                .ignore_status()
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
        if let Some(n) = self.network.take() {
            let _ = docker::cmd(sh, &words(&["network", "rm", &n]))
                .quiet()
                .ignore_status()
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        if let Ok(sh) = Shell::new() {
            self.stop(&sh);
        }
    }
}
