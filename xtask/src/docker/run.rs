//! Long-lived containers started outside compose (the swarm proof's nodes and registry, the
//! neighbour stack), their networks and volumes: typed, so callers name what they want and
//! this module spells the CLI.

use anyhow::{Result, bail};
use xshell::Shell;

use super::{compose::words, run_all};

/// `docker run -d` of one container.
#[derive(Debug, Clone, Default)]
pub struct Detached {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub hostname: Option<String>,
    pub network: Option<String>,
    pub alias: Option<String>,
    pub privileged: bool,
    /// Removed by the engine when it stops.
    pub remove_on_exit: bool,
    pub env: Vec<String>,
    /// `127.0.0.1::5000`-style publications.
    pub publish: Vec<String>,
    /// `source:target` mounts.
    pub volumes: Vec<String>,
    /// `key=value` labels.
    pub labels: Vec<String>,
}

impl Detached {
    fn args(&self) -> Vec<String> {
        let mut a = words(&["run", "-d"]);
        let flag = |a: &mut Vec<String>, f: &str, v: &str| a.extend([f.to_string(), v.to_string()]);
        if self.privileged {
            a.push("--privileged".into());
        }
        if self.remove_on_exit {
            a.push("--rm".into());
        }
        flag(&mut a, "--name", &self.name);
        for (f, v) in [
            ("--hostname", &self.hostname),
            ("--network", &self.network),
            ("--network-alias", &self.alias),
        ] {
            if let Some(v) = v {
                flag(&mut a, f, v);
            }
        }
        for (f, vs) in [
            ("--env", &self.env),
            ("--publish", &self.publish),
            ("--volume", &self.volumes),
            ("--label", &self.labels),
        ] {
            for v in vs {
                flag(&mut a, f, v);
            }
        }
        a.push(self.image.clone());
        a.extend(self.command.iter().cloned());
        a
    }
}

/// Starts the containers at once; the first failure is the error.
pub fn start_all(containers: &[Detached]) -> Result<()> {
    let calls: Vec<Vec<String>> = containers.iter().map(Detached::args).collect();
    all_or_first_error(&calls)
}

/// Creates a network with labels.
pub fn network_create(name: &str, labels: &[String]) -> Result<()> {
    all_or_first_error(&[labelled(&["network", "create"], labels, name)])
}

/// Creates volumes with labels, at once.
pub fn volumes_create(names: &[String], labels: &[String]) -> Result<()> {
    let calls: Vec<Vec<String>> = names
        .iter()
        .map(|n| labelled(&["volume", "create"], labels, n))
        .collect();
    all_or_first_error(&calls)
}

/// The addresses of containers on a network, in order.
pub fn addresses_on(sh: &Shell, network: &str, containers: &[String]) -> Result<Vec<String>> {
    let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    let mut args = words(&["inspect", "--format", &format]);
    args.extend(containers.iter().cloned());
    let out = super::cmd(sh, &args).quiet().read()?;
    Ok(out.lines().map(|l| l.trim().to_string()).collect())
}

fn labelled(cmd: &[&str], labels: &[String], name: &str) -> Vec<String> {
    let mut a = words(cmd);
    for l in labels {
        a.extend(["--label".to_string(), l.clone()]);
    }
    a.push(name.to_string());
    a
}

fn all_or_first_error(calls: &[Vec<String>]) -> Result<()> {
    for (args, out) in calls.iter().zip(run_all(calls)) {
        let out = out?;
        if !out.status.success() {
            bail!(
                "docker {}: {}",
                args.iter().take(4).cloned().collect::<Vec<_>>().join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_container_is_spelled_in_full() {
        let d = Detached {
            name: "n1".into(),
            image: "img".into(),
            command: vec!["sleep".into(), "infinity".into()],
            network: Some("net".into()),
            alias: Some("db".into()),
            privileged: true,
            volumes: vec!["v:/data".into()],
            labels: vec!["a=b".into()],
            ..Default::default()
        };
        assert_eq!(
            d.args().join(" "),
            "run -d --privileged --name n1 --network net --network-alias db --volume v:/data --label a=b img sleep infinity"
        );
    }
}
