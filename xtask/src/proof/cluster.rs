//! A throw-away multi-node swarm on this one engine, for `verify --swarm`: Docker-in-Docker
//! nodes (privileged containers, each its own engine with /var/lib/docker on a volume) and a
//! registry, on a private bridge network. The host engine itself never changes swarm mode
//! (switching it in and out broke name resolution in a running compose stack here).
//!
//! Everything carries the run's compose project and owner labels, so a run that dies without
//! its teardown is reaped like any other (reap.rs, which knows its registry by the name
//! `<project>-registry`); the teardown itself removes all of it.

use std::{
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use xshell::Shell;

use crate::{
    docker::{
        self, Engine,
        resources::{self, Resources},
        run::{self, Detached},
        swarm,
    },
    owner::{LABEL, Owner},
    standin,
    swarm::DATA_LABEL,
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
    /// Everything the run made on the host engine, removed at teardown: containers, volumes,
    /// the network, the run's images and the tags made for pushing.
    pub made: Resources,
    /// The nodes' socket directories (temp_dir/<project>, 0700).
    sockets: Option<PathBuf>,
    torn_down: bool,
}

impl Cluster {
    /// The labels every resource of the run carries (`key=value`).
    pub fn labels(&self) -> Vec<String> {
        vec![
            format!("com.docker.compose.project={}", self.project),
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
            made: Resources {
                images,
                ..Default::default()
            },
            sockets: None,
            torn_down: false,
        };
        standin::ensure_swarm(sh)?;
        let started = Instant::now();
        let sockets = c.start(n)?;
        c.find_nodes(sh, &sockets)?;
        c.wait_engines(sh)?;
        c.timings.push(("nodes answering", started.elapsed()));
        c.trust_registry(sh)?;
        c.form_swarm(sh)?;
        c.timings.push(("swarm formed", started.elapsed()));
        Ok(c)
    }

    /// The network, the volumes, the socket directories, then the registry and node
    /// containers, each recorded before it is asked for (a failure still removes it).
    fn start(&mut self, n: usize) -> Result<PathBuf> {
        let project = self.project.clone();
        let labels = self.labels();
        self.made.networks.push(project.clone());
        run::network_create(&project, &labels)?;
        let volume = |name: &str| format!("{project}-{name}");
        let names: Vec<String> = std::iter::once("registry".to_string())
            .chain((1..=n).map(|i| format!("node{i}")))
            .collect();
        self.made.volumes = names.iter().map(|name| volume(name)).collect();
        run::volumes_create(&self.made.volumes, &labels)?;

        // Each node's engine answers only on a unix socket in a directory only this user may
        // enter (short: a socket path has at most 107 bytes).
        let sockets = std::env::temp_dir().join(&project);
        std::fs::create_dir_all(&sockets)?;
        std::fs::set_permissions(&sockets, std::fs::Permissions::from_mode(0o700))?;
        self.sockets = Some(sockets.clone());
        for i in 1..=n {
            std::fs::create_dir_all(sockets.join(format!("node{i}")))?;
        }
        let common = Detached {
            network: Some(project.clone()),
            labels,
            ..Default::default()
        };
        let mut containers = vec![Detached {
            name: format!("{project}-registry"),
            image: standin::REGISTRY.into(),
            alias: Some("registry".into()),
            env: vec!["AXION_REGISTRY_TLS_NAMES=registry".into()],
            publish: vec!["127.0.0.1::5000".into()],
            volumes: vec![format!("{}:/var/lib/docker-registry", volume("registry"))],
            ..common.clone()
        }];
        let gid = format!("AXION_SOCKET_GID={}", crate::host::gid());
        for i in 1..=n {
            let socket_dir = sockets.join(format!("node{i}"));
            containers.push(Detached {
                name: format!("{project}-node{i}"),
                image: standin::SWARM_NODE.into(),
                hostname: Some(format!("node{i}")),
                privileged: true,
                env: vec![gid.clone()],
                volumes: vec![
                    format!("{}:/var/lib/docker", volume(&format!("node{i}"))),
                    format!("{}:/run/axion", socket_dir.display()),
                ],
                ..common.clone()
            });
        }
        self.made.containers = containers.iter().map(|c| c.name.clone()).collect();
        run::start_all(&containers)?;
        Ok(sockets)
    }

    /// Each node's address on the cluster network and socket; the registry's port on loopback.
    fn find_nodes(&mut self, sh: &Shell, sockets: &Path) -> Result<()> {
        let project = &self.project;
        let ips = run::addresses_on(sh, project, &self.made.containers[1..])?;
        self.nodes = ips
            .into_iter()
            .enumerate()
            .map(|(i, ip)| Node {
                container: format!("{project}-node{}", i + 1),
                hostname: format!("node{}", i + 1),
                ip,
                socket: sockets.join(format!("node{}/docker.sock", i + 1)),
            })
            .collect();
        let registry = &self.made.containers[0];
        let addr = resources::published_at(registry, "5000/tcp")
            .with_context(|| format!("reading the registry's published port ({registry})"))?;
        self.push_prefix = format!("127.0.0.1:{}", addr.port());
        Ok(())
    }

    fn wait_engines(&self, sh: &Shell) -> Result<()> {
        for node in &self.nodes {
            let t = node.target();
            poll(
                &format!("{}'s engine", node.hostname),
                NODE_START,
                Duration::from_millis(200),
                || Ok(docker::server_version(sh, &t).map(|_| ())),
            )?;
        }
        Ok(())
    }

    /// The registry's CA (made at its first start, its key never leaves it), trusted by each
    /// node for the registry's name only.
    fn trust_registry(&self, sh: &Shell) -> Result<()> {
        let registry = &self.made.containers[0];
        let ca = poll(
            "the registry's certificate",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                let out = docker::exec(sh, registry, &["cat", "/certs/ca.crt"])?;
                let pem = String::from_utf8_lossy(&out.stdout).into_owned();
                Ok((out.status.success() && pem.contains("BEGIN CERTIFICATE")).then_some(pem))
            },
        )?;
        let dir = format!("/etc/docker/certs.d/{REGISTRY_NAME}");
        for node in &self.nodes {
            let script = format!("mkdir -p '{dir}' && cat > '{dir}/ca.crt'");
            docker::exec_with_input(&node.container, &["sh", "-c", &script], ca.as_bytes())
                .with_context(|| format!("giving {} the registry's CA", node.hostname))?;
        }
        Ok(())
    }

    /// node1 initialises the swarm and is labelled the data node; the others join as workers.
    fn form_swarm(&self, sh: &Shell) -> Result<()> {
        let manager = self.manager();
        let ip = &self.nodes[0].ip;
        let token = swarm::init_for_workers(sh, &manager, ip)?;
        let workers: Vec<Engine> = self.nodes[1..].iter().map(Node::target).collect();
        swarm::join_all(&workers, &token, &format!("{ip}:2377"))?;
        swarm::label_node(sh, &manager, &self.nodes[0].hostname, DATA_LABEL)?;
        // A node that just joined shows `Unknown` until its first heartbeat.
        let n = self.nodes.len();
        poll(
            &format!("{n} ready nodes"),
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                let ready = swarm::ready_nodes(sh, &manager)?;
                Ok((ready == n).then_some(()))
            },
        )
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
        let mut left = resources::names_under(&self.push_prefix);
        left.extend(
            self.made
                .images
                .iter()
                .filter(|i| docker::image_exists(sh, i))
                .cloned(),
        );
        left
    }

    /// Removes everything the run made; what could not be removed is named.
    pub fn teardown(&mut self) -> Result<Duration> {
        let t = Instant::now();
        self.torn_down = true;
        let mut all = self.made.clone();
        // Every name made by pushing to this run's registry (here and by `deploy`): tags, and
        // the digest references a push leaves.
        all.images.extend(resources::names_under(&self.push_prefix));
        let failures = all.remove();
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
