//! A throw-away multi-node swarm on this one engine, for `verify --swarm`: Docker-in-Docker
//! nodes (privileged containers, each its own engine with /var/lib/docker on a volume) and a
//! registry, on a private bridge network. The host engine itself never changes swarm mode
//! (switching it in and out broke name resolution in a running compose stack here).
//!
//! Everything carries the run's compose project and owner labels, so a run that dies without
//! its teardown is reaped like any other (reap.rs); the teardown itself removes all of it.

use std::{
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use xshell::Shell;

use super::DATA_LABEL;
use crate::docker::Engine;
use crate::{
    docker::{self, compose::words},
    owner::{LABEL, Owner},
    standin,
    util::poll,
};

/// Where the nodes reach the registry (its alias on the cluster network): the name images are
/// deployed by.
pub const REGISTRY_NAME: &str = "registry:5000";
/// A node's engine answers `docker version` 2-4 s after its container starts.
const NODE_START: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Node {
    /// The container on the host engine.
    pub container: String,
    /// The swarm's name for it.
    pub hostname: String,
    pub ip: String,
    /// Its engine's socket, in a 0700 directory of this run.
    pub socket: PathBuf,
}

impl Node {
    pub fn target(&self) -> Engine {
        docker::Engine::host(&format!("unix://{}", self.socket.display()))
    }
}

pub struct Cluster {
    pub project: String,
    pub nodes: Vec<Node>,
    /// Where this host pushes: the registry's port published on loopback (the engine trusts
    /// loopback registries without configuration, and TLS is still verified by the nodes).
    pub push_prefix: String,
    /// Timings for the report: nodes answering, swarm formed.
    pub timings: Vec<(&'static str, Duration)>,
    containers: Vec<String>,
    volumes: Vec<String>,
    network: Option<String>,
    /// The nodes' socket directories (temp_dir/<project>, 0700).
    sockets: Option<PathBuf>,
    /// Host tags made for pushing (removed at teardown; the images stay).
    pub tags: Vec<String>,
    /// Images made for the run (removed at teardown).
    pub images: Vec<String>,
    torn_down: bool,
}

impl Cluster {
    /// `--label` arguments every resource of the run carries.
    pub fn labels(&self) -> Vec<String> {
        vec![
            "--label".into(),
            format!("com.docker.compose.project={}", self.project),
            "--label".into(),
            format!("{LABEL}={}", Owner::current().label()),
        ]
    }

    /// Creates `n` nodes (the first a manager, the rest workers; the first labelled as the data
    /// node) and a TLS registry they trust. `images` (the run's) are removed with the cluster,
    /// whether or not it could be created.
    pub fn create(sh: &Shell, project: &str, n: usize, images: Vec<String>) -> Result<Cluster> {
        let mut c = Cluster {
            project: project.to_string(),
            nodes: Vec::new(),
            push_prefix: String::new(),
            timings: Vec::new(),
            containers: Vec::new(),
            volumes: Vec::new(),
            network: None,
            sockets: None,
            tags: Vec::new(),
            images,
            torn_down: false,
        };
        standin::ensure_swarm(sh)?;
        let started = Instant::now();
        let labels = c.labels();
        let with_labels = |mut a: Vec<String>, rest: &[&str]| {
            a.extend(labels.iter().cloned());
            a.extend(words(rest));
            a
        };
        run(sh, &with_labels(words(&["network", "create"]), &[project]))?;
        c.network = Some(project.to_string());

        let volume = |name: &str| format!("{project}-{name}");
        let names: Vec<String> = std::iter::once("registry".to_string())
            .chain((1..=n).map(|i| format!("node{i}")))
            .collect();
        let creates: Vec<Vec<String>> = names
            .iter()
            .map(|name| with_labels(words(&["volume", "create"]), &[&volume(name)]))
            .collect();
        run_parallel(&creates)?;
        c.volumes = names.iter().map(|name| volume(name)).collect();

        // Each node's engine answers only on a unix socket in a directory only this user may
        // enter (short: a socket path has at most 107 bytes).
        let sockets = std::env::temp_dir().join(project);
        std::fs::create_dir_all(&sockets)?;
        std::fs::set_permissions(&sockets, std::fs::Permissions::from_mode(0o700))?;
        c.sockets = Some(sockets.clone());
        for i in 1..=n {
            std::fs::create_dir_all(sockets.join(format!("node{i}")))?;
        }
        let gid = format!("AXION_SOCKET_GID={}", crate::host::gid());
        let mut runs = vec![with_labels(
            words(&["run", "-d"]),
            &[
                "--name",
                &format!("{project}-registry"),
                "--network",
                project,
                "--network-alias",
                "registry",
                "-e",
                "AXION_REGISTRY_TLS_NAMES=registry",
                "-p",
                "127.0.0.1::5000",
                "-v",
                &format!("{}:/var/lib/docker-registry", volume("registry")),
                standin::REGISTRY,
            ],
        )];
        for i in 1..=n {
            runs.push(with_labels(
                words(&["run", "-d", "--privileged"]),
                &[
                    "--name",
                    &format!("{project}-node{i}"),
                    "--hostname",
                    &format!("node{i}"),
                    "--network",
                    project,
                    "-v",
                    &format!("{}:/var/lib/docker", volume(&format!("node{i}"))),
                    "-v",
                    &format!("{}:/run/axion", sockets.join(format!("node{i}")).display()),
                    "-e",
                    &gid,
                    standin::SWARM_NODE,
                ],
            ));
        }
        c.containers = names
            .iter()
            .map(|name| format!("{project}-{name}"))
            .collect();
        run_parallel(&runs)?;

        let ips = docker::cmd(
            sh,
            &[
                words(&[
                    "inspect",
                    "--format",
                    &format!("{{{{(index .NetworkSettings.Networks \"{project}\").IPAddress}}}}"),
                ]),
                c.containers[1..].to_vec(),
            ]
            .concat(),
        )
        .quiet()
        .read()?;
        c.nodes = ips
            .lines()
            .enumerate()
            .map(|(i, ip)| Node {
                container: format!("{project}-node{}", i + 1),
                hostname: format!("node{}", i + 1),
                ip: ip.trim().to_string(),
                socket: sockets.join(format!("node{}/docker.sock", i + 1)),
            })
            .collect();
        let port = docker::cmd(sh, &words(&["port", &c.containers[0], "5000/tcp"]))
            .quiet()
            .read()?;
        let addr: SocketAddr = port
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .parse()
            .with_context(|| format!("reading the registry's published port from {port:?}"))?;
        c.push_prefix = format!("127.0.0.1:{}", addr.port());

        for node in &c.nodes {
            let t = node.target();
            poll(
                &format!("{}'s engine", node.hostname),
                NODE_START,
                Duration::from_millis(200),
                || {
                    Ok(t.read(sh, &["version", "--format", "{{.Server.Version}}"])
                        .ok()
                        .map(|_| ()))
                },
            )?;
        }
        c.timings.push(("nodes answering", started.elapsed()));

        // The registry's CA (made at its first start, its key never leaves it), trusted by
        // each node for the registry's name only.
        let registry = c.containers[0].clone();
        let ca = poll(
            "the registry's certificate",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                Ok(
                    docker::cmd(sh, &words(&["exec", &registry, "cat", "/certs/ca.crt"]))
                        .quiet()
                        .ignore_stderr()
                        .read()
                        .ok()
                        .filter(|p| p.contains("BEGIN CERTIFICATE")),
                )
            },
        )?;
        let dir = format!("/etc/docker/certs.d/{REGISTRY_NAME}");
        for node in &c.nodes {
            docker::expr(&words(&[
                "exec",
                "-i",
                &node.container,
                "sh",
                "-c",
                &format!("mkdir -p '{dir}' && cat > '{dir}/ca.crt'"),
            ]))
            .stdin_bytes(ca.clone())
            .stdout_null()
            .run()
            .with_context(|| format!("giving {} the registry's CA", node.hostname))?;
        }

        let manager = c.manager();
        let ip = &c.nodes[0].ip;
        manager.read(sh, &["swarm", "init", "--advertise-addr", ip])?;
        let token = manager.read(sh, &["swarm", "join-token", "-q", "worker"])?;
        let joins: Vec<Vec<String>> = c.nodes[1..]
            .iter()
            .map(|node| {
                node.target().args(&[
                    "swarm",
                    "join",
                    "--token",
                    token.trim(),
                    &format!("{ip}:2377"),
                ])
            })
            .collect();
        run_parallel(&joins)?;
        let data = format!("{DATA_LABEL}=true");
        manager.read(
            sh,
            &["node", "update", "--label-add", &data, &c.nodes[0].hostname],
        )?;
        // A node that just joined shows `Unknown` until its first heartbeat.
        poll(
            &format!("{n} ready nodes"),
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                let ready = manager.read(sh, &["node", "ls", "--format", "{{.Status}}"])?;
                Ok((ready.lines().filter(|l| l.trim() == "Ready").count() == n).then_some(()))
            },
        )?;
        c.timings.push(("swarm formed", started.elapsed()));
        Ok(c)
    }

    /// The manager's engine: where stacks are deployed.
    pub fn manager(&self) -> Engine {
        self.nodes[0].target()
    }

    /// Every node's entry point (the proxy publishes APP_PORT in host mode on each).
    pub fn entry_points(&self, port: u16) -> Result<Vec<SocketAddr>> {
        self.nodes
            .iter()
            .map(|n| {
                format!("{}:{port}", n.ip)
                    .parse()
                    .with_context(|| format!("node address {}", n.ip))
            })
            .collect()
    }

    /// What is left of the run's images after the teardown: names under its registry, and its
    /// own images.
    pub fn leftover_images(&self, sh: &Shell) -> Vec<String> {
        let mut left = names_under(&self.push_prefix);
        left.extend(
            self.images
                .iter()
                .filter(|i| docker::image_exists(sh, i))
                .cloned(),
        );
        left
    }

    /// Removes everything the run made, containers first (their volumes and network are in
    /// use until then); what could not be removed is named.
    pub fn teardown(&mut self) -> Result<Duration> {
        let t = Instant::now();
        self.torn_down = true;
        let mut failures = Vec::new();
        let mut step = |calls: Vec<Vec<String>>| {
            for out in docker::run_all(&calls) {
                match out {
                    Ok(o) if o.status.success() => {}
                    Ok(o) => failures.push(String::from_utf8_lossy(&o.stderr).trim().to_string()),
                    Err(e) => failures.push(e.to_string()),
                }
            }
        };
        let mut first = Vec::new();
        if !self.containers.is_empty() {
            first.push(
                [
                    words(&["rm", "--force", "--volumes"]),
                    self.containers.clone(),
                ]
                .concat(),
            );
        }
        // Every name made by pushing to this run's registry (here and by `deploy` children):
        // tags, and the digest references a push leaves (`repo@sha256:…`, which keep an image
        // alive after its tags are gone). Removing names never removes an image that has others
        // (the stand-ins).
        let mut untag = names_under(&self.push_prefix);
        untag.extend(self.tags.iter().cloned());
        untag.extend(self.images.iter().cloned());
        untag.sort();
        untag.dedup();
        if !untag.is_empty() {
            first.push([words(&["image", "rm", "--force"]), untag].concat());
        }
        step(first);
        let mut second = Vec::new();
        if !self.volumes.is_empty() {
            second.push([words(&["volume", "rm", "--force"]), self.volumes.clone()].concat());
        }
        if let Some(n) = &self.network {
            second.push(words(&["network", "rm", n]));
        }
        step(second);
        if let Some(dir) = self.sockets.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if failures.is_empty() {
            Ok(t.elapsed())
        } else {
            bail!(
                "removing the throw-away swarm {}: {}",
                self.project,
                failures.join("; ")
            )
        }
    }
}

impl Drop for Cluster {
    /// An error or a signal unwinds through here: the run's nodes never outlive it.
    fn drop(&mut self) {
        if !self.torn_down {
            if let Err(e) = self.teardown() {
                crate::util::note(format!("{e:#}"));
            }
        }
    }
}

fn run(sh: &Shell, args: &[String]) -> Result<()> {
    let out = docker::cmd(sh, args).quiet().ignore_status().output()?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs docker commands at once; the first failure is the error.
fn run_parallel(calls: &[Vec<String>]) -> Result<()> {
    for (args, out) in calls.iter().zip(docker::run_all(calls)) {
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

/// The names a swarm proof's pushes left on this engine, found by its registry container's
/// published port (`project` is the proof's; nothing for any other project).
pub fn names_pushed_by(project: &str) -> Vec<String> {
    if !project.starts_with("axion-swarm-") {
        return vec![];
    }
    let port = words(&["port", &format!("{project}-registry"), "5000/tcp"]);
    let Some(Ok(out)) = docker::run_all(&[port]).pop() else {
        return vec![];
    };
    let port = String::from_utf8_lossy(&out.stdout);
    match port.lines().next().map(|l| l.trim().parse::<SocketAddr>()) {
        Some(Ok(addr)) => names_under(&format!("127.0.0.1:{}", addr.port())),
        _ => vec![],
    }
}

/// The image names (tags, digest references) on this engine under `prefix/`.
fn names_under(prefix: &str) -> Vec<String> {
    let listing = words(&[
        "image",
        "ls",
        "--digests",
        "--format",
        "{{.Repository}}|{{.Tag}}|{{.Digest}}",
    ]);
    let listed = match docker::run_all(&[listing]).pop() {
        Some(Ok(out)) => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => String::new(),
    };
    registry_names(&listed, prefix)
}

/// The image names under `prefix/` in `image ls --digests` lines (`repo|tag|digest`).
fn registry_names(listed: &str, prefix: &str) -> Vec<String> {
    if prefix.is_empty() {
        return vec![];
    }
    let mut out = Vec::new();
    for line in listed.lines() {
        let mut f = line.split('|');
        let (Some(repo), Some(tag), Some(digest)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if !repo.starts_with(&format!("{prefix}/")) {
            continue;
        }
        if tag != "<none>" {
            out.push(format!("{repo}:{tag}"));
        }
        if digest != "<none>" {
            out.push(format!("{repo}@{digest}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_names_are_tags_and_digest_references_under_the_prefix() {
        let listed = "127.0.0.1:5/axion-hub/app|<none>|sha256:aa\n\
                      127.0.0.1:5/axion-hub/postgres|abc123|sha256:bb\n\
                      axion-hub-standin/postgres|17|<none>\n\
                      127.0.0.1:55/other|x|<none>\n";
        assert_eq!(
            super::registry_names(listed, "127.0.0.1:5"),
            vec![
                "127.0.0.1:5/axion-hub/app@sha256:aa",
                "127.0.0.1:5/axion-hub/postgres:abc123",
                "127.0.0.1:5/axion-hub/postgres@sha256:bb",
            ]
        );
        assert!(super::registry_names(listed, "").is_empty());
    }
}
