//! A stack running beside the proof on the host engine, whose name resolution must survive
//! it (switching an engine's swarm mode once broke a running compose stack's here).

use anyhow::{Result, bail};
use xshell::Shell;

use crate::{
    docker::{
        self,
        resources::Resources,
        run::{self, Detached},
    },
    images,
    stack::StackKind,
};

/// A stack running beside the proof on the host engine, whose name resolution must survive it:
/// the dev stack when it runs, else two containers on a network of their own.
pub struct Neighbour {
    /// `container`, and the names it must resolve.
    probe: (String, Vec<&'static str>),
    what: String,
    /// What the proof made for it (nothing when it is the dev stack).
    made: Resources,
}

impl Neighbour {
    pub fn start(sh: &Shell, project: &str) -> Result<Neighbour> {
        let dev = docker::containers(sh, &StackKind::Dev.project()).unwrap_or_default();
        if let Some(app) = dev.iter().find(|c| c.service == "app" && c.is_running()) {
            return Ok(Neighbour {
                probe: (app.id.clone(), vec!["db", "redis"]),
                what: "the dev stack".into(),
                made: Resources::default(),
            });
        }
        let net = format!("{project}-neighbour");
        let owner = crate::owner::Owner::current().label();
        // A project of its own: the proof's leftover check must not count it.
        let labels = vec![
            format!("{}={owner}", crate::owner::LABEL),
            format!("com.docker.compose.project={net}"),
        ];
        run::network_create(&net, &labels)?;
        let mut n = Neighbour {
            probe: (format!("{net}-app"), vec!["db"]),
            what: "a two-container stack beside it (no dev stack was running)".into(),
            made: Resources {
                networks: vec![net.clone()],
                ..Default::default()
            },
        };
        let containers: Vec<Detached> = ["db", "app"]
            .iter()
            .map(|name| Detached {
                name: format!("{net}-{name}"),
                image: format!("{}/debian:trixie", images::STANDIN),
                command: vec!["sleep".into(), "infinity".into()],
                network: Some(net.clone()),
                alias: Some(name.to_string()),
                remove_on_exit: true,
                labels: labels.clone(),
                ..Default::default()
            })
            .collect();
        n.made.containers = containers.iter().map(|c| c.name.clone()).collect();
        run::start_all(&containers)?;
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

    /// Removes what it made (nothing when it was the dev stack).
    pub fn stop(&mut self) {
        let _ = std::mem::take(&mut self.made).remove();
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        self.stop();
    }
}
