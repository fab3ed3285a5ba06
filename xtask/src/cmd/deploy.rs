//! `cargo xtask deploy`: the prod stack on the swarm this engine manages (or the one DOCKER_HOST
//! or the docker context points at): the runner built, every image pushed to `--registry` and
//! deployed by digest (local tags on a one-node swarm), then watched until every task is
//! healthy. Run again with a new revision, it is a rolling update (start-first, health-gated,
//! rolled back automatically on failure: docker-compose.swarm.yml).

use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use serde_json::json;
use xshell::Shell;

use crate::{
    docker, engine,
    env_file::EnvSource,
    flags, images,
    integrity::Policy,
    lifecycle,
    progress::Progress,
    stack::{Ports, Stack, StackKind, TIMEOUT_BUILD, TIMEOUT_HEALTHY, log_path, prepare_files},
    standin,
    swarm::TIMEOUT_UPDATE,
    swarm::{self, DATA_LABEL, Membership, StackImages},
    util::{note, secs},
};

impl flags::Deploy {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let started = Instant::now();
        let stack_name = self
            .stack
            .clone()
            .unwrap_or_else(|| swarm::DEFAULT_STACK.into());
        check_stack_name(&stack_name)?;
        self.check_flags()?;
        let root = sh.current_dir();
        let env = EnvSource::resolve(&root)?;
        engine::preflight()?;
        let target = self
            .manager
            .as_deref()
            .map_or_else(docker::Engine::configured, docker::Engine::host);
        let member = self.membership(sh, &target)?;
        if self.registry.is_none() && (member.nodes > 1 || self.manager.is_some()) {
            bail!(
                "{}, and a node can run only images it can pull.\n  \
                 fix: cargo xtask deploy --registry HOST:PORT (a registry every node reaches; the images are pushed there and deployed by digest)",
                if self.manager.is_some() {
                    "the swarm is on another engine (--manager)".to_string()
                } else {
                    format!("this swarm has {} nodes", member.nodes)
                }
            );
        }
        ensure_data_node(sh, &target, &member)?;

        let set = images::choose(sh, self.images, &env)?.set;
        prepare_files(&root, StackKind::Prod, &env)?;
        let ports = Ports::from_env(&env)?;
        let t = Instant::now();
        let app = match &self.image {
            Some(image) => {
                if !docker::image_exists(sh, image) {
                    bail!(
                        "--image {image}: no such image on this engine (`docker image ls` lists them)"
                    );
                }
                image.clone()
            }
            None => build_runner(sh, &root, &env, &set, ports)?,
        };
        let built = t.elapsed();
        let proxy = match std::env::var("EDGE_IMAGE") {
            Ok(v) if !v.is_empty() => v,
            _ if set.standin => {
                standin::ensure_only(sh, &["haproxy"])?;
                standin::HAPROXY.to_string()
            }
            _ => "haproxy:3.0".to_string(),
        };
        let locals = [
            (app, "axion-hub/app".to_string()),
            (set.postgres.clone(), "axion-hub/postgres".into()),
            (set.redis.clone(), "axion-hub/redis".into()),
            (proxy, "axion-hub/haproxy".into()),
        ];

        let t = Instant::now();
        // Without a registry (a one-node swarm on this engine, checked above) the node runs the
        // local tags.
        let (refs, local) = match &self.registry {
            Some(registry) => {
                let nodes = self.node_registry.as_deref().unwrap_or(registry);
                (by_digest(sh, &locals, registry, nodes)?, false)
            }
            None => (locals.iter().map(|(l, _)| l.clone()).collect(), true),
        };
        let pushed = t.elapsed();
        let images = StackImages {
            app: refs[0].clone(),
            postgres: refs[1].clone(),
            redis: refs[2].clone(),
            proxy: refs[3].clone(),
        };

        let file = crate::stack::work_dir(&root, "deploy").join(format!("{stack_name}.stack.json"));
        let mut vars = swarm::stack_vars(&root);
        vars.extend(ports.named().map(|(k, p)| (k.to_string(), p.to_string())));
        swarm::render(sh, &root, &stack_name, &images, &vars, &file)?;
        let app_service = format!("{stack_name}_app");
        let before = swarm::update_status(sh, &target, &app_service).unwrap_or_default();
        let previous = swarm::service_image(sh, &target, &app_service).ok();
        let t = Instant::now();
        swarm::stack_deploy(sh, &target, &stack_name, &file, local)?;
        let mut progress = Progress::new(self.json);
        let mut update = None;
        if previous.is_some_and(|p| p != images.app) {
            // A new app image: a rolling update, which ends completed or rolled back.
            let (status, took) =
                swarm::wait_update(sh, &target, &app_service, &before, TIMEOUT_UPDATE)?;
            if status.state != "completed" {
                bail!(
                    "the app's update to {} ended {} ({}): the previous image keeps serving.\n  its tasks (`docker service ps {app_service}`):\n{}",
                    images.app,
                    status.state,
                    status.message,
                    swarm::task_errors(sh, &target, &app_service)
                );
            }
            update = Some(took);
        }
        let converged =
            swarm::wait_converged(sh, &target, &stack_name, TIMEOUT_HEALTHY, &mut progress)?;
        let deployed = t.elapsed();
        let report = json!({
            "stack": stack_name,
            "file": file.display().to_string(),
            "images": images.env().iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "registry": self.registry,
            "rolling_update_seconds": update.map(|d| d.as_secs_f64()),
            "seconds": {"build": built.as_secs_f64(), "push": pushed.as_secs_f64(), "deploy": deployed.as_secs_f64(), "total": started.elapsed().as_secs_f64()},
            "converged": converged.iter().map(swarm::Converged::to_json).collect::<Vec<_>>(),
        });
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            eprintln!(
                "deploy: stack {stack_name} healthy in {} ({}, push {}, deploy {}{}); every node answers on port {}\n  stack file: {}",
                secs(started.elapsed()),
                match &self.image {
                    Some(i) => format!("image {i}"),
                    None => format!("build {}", secs(built)),
                },
                secs(pushed),
                secs(deployed),
                update.map_or(String::new(), |d| format!(
                    ", of which the rolling update {}",
                    secs(d)
                )),
                ports.app,
                file.display()
            );
        }
        Ok(())
    }

    /// What the flags say together, before anything is built or asked of an engine.
    fn check_flags(&self) -> Result<()> {
        for r in [&self.registry, &self.node_registry].into_iter().flatten() {
            check_registry(r)?;
        }
        if self.node_registry.is_some() && self.registry.is_none() {
            bail!(
                "--node-registry names how the nodes reach --registry: give --registry HOST:PORT too"
            );
        }
        if let Some(m) = &self.manager {
            let tls = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| v == "1");
            check_manager(m, tls)?;
        }
        match (self.init, &self.advertise_addr) {
            (true, None) => bail!(
                "deploy --init would make the swarm listen on every address of this host.\n  fix: name the one \
                 the other nodes reach it by (a private network, not the internet): --advertise-addr <IP>"
            ),
            (false, Some(_)) => bail!(
                "--advertise-addr is for --init (a swarm that exists already keeps its addresses)"
            ),
            _ => Ok(()),
        }
    }

    /// The swarm membership of the target engine; `--init` makes this engine a one-node swarm.
    fn membership(&self, sh: &Shell, target: &docker::Engine) -> Result<Membership> {
        let member = swarm::membership(sh, target)?;
        if member.state == "active" || !self.init {
            if !member.manager {
                bail!("{}", not_in_a_swarm(&member));
            }
            return Ok(member);
        }
        note(
            "deploy --init: making this engine a one-node swarm. Switching an engine into swarm mode \
             can break name resolution in compose stacks already running on it (until they are \
             recreated: `cargo xtask down` then `cargo xtask dev`).",
        );
        let addr = self.advertise_addr.as_deref().unwrap_or_default();
        let listen = format!("{addr}:2377");
        let args = [
            "swarm",
            "init",
            "--advertise-addr",
            addr,
            "--listen-addr",
            &listen,
        ];
        target.read(sh, &args).map_err(|e| {
            anyhow!("{e:#}\n  fix: --advertise-addr must be an address of this engine's host")
        })?;
        swarm::membership(sh, target)
    }
}

/// The prod runner, built as the prod stack builds it (`axion-hub:runner`).
fn build_runner(
    sh: &Shell,
    root: &std::path::Path,
    env: &EnvSource,
    set: &images::ImageSet,
    ports: Ports,
) -> Result<String> {
    let stack = Stack::new(StackKind::Prod, StackKind::Prod.project(), env, set, ports);
    let log = log_path(root, "deploy-build.log");
    lifecycle::build(
        sh,
        &stack.compose,
        StackKind::Prod,
        &Policy::for_run(false, None),
        &["app"],
        &log,
        TIMEOUT_BUILD,
    )
    .map_err(|e| anyhow!("{e:#}\n(full build log: {})", log.display()))?;
    Ok(stack.app_image())
}

fn not_in_a_swarm(m: &Membership) -> String {
    if m.state == "active" {
        return "this engine is a swarm worker; stacks are deployed from a manager.\n  \
                fix: build here, deploy there: cargo xtask deploy --manager ssh://USER@MANAGER --registry HOST:PORT"
            .into();
    }
    format!(
        "this engine is not part of a swarm (swarm state: {}).\n  \
         fix: deploy to a manager of your swarm: cargo xtask deploy --manager ssh://USER@MANAGER --registry HOST:PORT\n  \
         or make this engine a one-node swarm: cargo xtask deploy --init (switching an engine into swarm \
         mode can break name resolution in compose stacks running on it until they are recreated)",
        if m.state.is_empty() {
            "unknown"
        } else {
            &m.state
        }
    )
}

/// db and redis are pinned to the node labelled DATA_LABEL (their volumes stay there). A
/// one-node swarm's node is labelled here; on more nodes, which disk holds the data is the
/// operator's choice.
fn ensure_data_node(sh: &Shell, target: &docker::Engine, m: &Membership) -> Result<()> {
    let out = target.read(sh, &["node", "ls", "--format", "{{.ID}} {{.Hostname}}"])?;
    let nodes: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.into(), b.into())))
        .collect();
    for (id, _) in &nodes {
        let labels = target.read(
            sh,
            &["node", "inspect", "--format", "{{json .Spec.Labels}}", id],
        )?;
        if labels.contains(&format!("\"{DATA_LABEL}\":\"true\"")) {
            return Ok(());
        }
    }
    match nodes.as_slice() {
        [(id, host)] if m.nodes <= 1 => {
            note(format!(
                "deploy: labelling {host} {DATA_LABEL}=true (db and redis run there)"
            ));
            target.read(
                sh,
                &[
                    "node",
                    "update",
                    "--label-add",
                    &format!("{DATA_LABEL}=true"),
                    id,
                ],
            )?;
            Ok(())
        }
        _ => bail!(
            "no node is labelled {DATA_LABEL}=true: db and redis are pinned to it, because their volumes stay on one node's disk.\n  \
             fix: docker node update --label-add {DATA_LABEL}=true <NODE> (one of: {})",
            nodes
                .iter()
                .map(|(_, h)| h.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Each image by digest: one pulled from a registry keeps its own digest; one built here (the
/// runner, stand-ins) is pushed to `registry` first.
fn by_digest(
    sh: &Shell,
    locals: &[(String, String)],
    registry: &str,
    node_registry: &str,
) -> Result<Vec<String>> {
    let rev = images::revision(sh);
    let mut to_push = Vec::new();
    let mut refs: Vec<Option<String>> = Vec::new();
    for (local, repo) in locals {
        let digests = docker::cmd(
            sh,
            &docker::compose::words(&[
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}}",
                local,
            ]),
        )
        .quiet()
        .read()
        .map_err(|_| anyhow!("image {local} is not on this engine"))?;
        let own_repo = local.rsplit_once(':').map_or(local.as_str(), |(r, _)| r);
        match swarm::digest_for(&digests, own_repo) {
            Some(d) if !local.starts_with(images::STANDIN) => {
                refs.push(Some(format!("{own_repo}@{d}")))
            }
            _ => {
                refs.push(None);
                to_push.push((local.clone(), format!("{repo}:{rev}")));
            }
        }
    }
    let mut tags = Vec::new();
    let mut pushed = swarm::push(sh, &to_push, registry, node_registry, &mut tags)?.into_iter();
    Ok(refs
        .into_iter()
        .map(|r| r.unwrap_or_else(|| pushed.next().unwrap_or_default()))
        .collect())
}

/// Swarm names: letters, digits, `_` and `-`, starting with a letter or digit.
pub fn check_stack_name(name: &str) -> Result<()> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 40;
    if !ok {
        bail!(
            "`{name}` is not a stack name: use letters, digits, `-` and `_` (at most 40, starting with a letter or digit)"
        );
    }
    Ok(())
}

/// What `docker -H` takes; `tcp://` only with TLS verification on (`tls`: DOCKER_TLS_VERIFY=1),
/// since a plain engine port hands root on that host to anyone who reaches it.
pub fn check_manager(m: &str, tls: bool) -> Result<()> {
    if !["tcp://", "ssh://", "unix://"]
        .iter()
        .any(|p| m.starts_with(p))
    {
        bail!(
            "`--manager {m}` is not an engine address: use ssh://USER@HOST, tcp://HOST:PORT (with TLS) or unix:///PATH"
        );
    }
    if m.starts_with("tcp://") && !tls {
        bail!(
            "`--manager {m}` without TLS: anyone who reaches that port is root on the manager, and the \
             deploy's traffic is in clear.\n  fix: --manager ssh://USER@HOST, or DOCKER_TLS_VERIFY=1 with \
             DOCKER_CERT_PATH holding the client certificate and the CA the engine's is signed by"
        );
    }
    Ok(())
}

/// `HOST:PORT` (or `HOST`), no scheme, no path.
pub fn check_registry(r: &str) -> Result<()> {
    let bad = r.is_empty() || r.contains("://") || r.contains('/') || r.contains(' ');
    let port_ok = r
        .rsplit_once(':')
        .is_none_or(|(_, p)| p.parse::<u16>().is_ok_and(|p| p > 0));
    if bad || !port_ok {
        bail!(
            "`--registry {r}` is not HOST:PORT (e.g. registry.example.com:5000, without https:// or a path)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_and_registries_are_checked() {
        check_stack_name("axion").unwrap();
        check_stack_name("axion-hub_2").unwrap();
        assert!(check_stack_name("-x").is_err());
        assert!(check_stack_name("a b").is_err());
        check_registry("registry.example.com:5000").unwrap();
        check_registry("10.0.0.5:5000").unwrap();
        check_registry("ghcr.io").unwrap();
        let e = check_registry("https://r:5000").unwrap_err().to_string();
        assert!(e.contains("HOST:PORT"), "{e}");
        assert!(check_registry("r:99999").is_err());
        assert!(check_registry("r:5000/x").is_err());
        check_manager("ssh://deploy@10.0.0.1", false).unwrap();
        check_manager("tcp://10.0.0.1:2376", true).unwrap();
        let e = check_manager("tcp://10.0.0.1:2375", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("without TLS") && e.contains("DOCKER_TLS_VERIFY=1"),
            "{e}"
        );
        let e = check_manager("10.0.0.1", true).unwrap_err().to_string();
        assert!(e.contains("ssh://USER@HOST, tcp://HOST:PORT"), "{e}");
    }

    #[test]
    fn the_refusal_names_the_fix() {
        let m = Membership {
            state: "inactive".into(),
            manager: false,
            nodes: 0,
        };
        let t = not_in_a_swarm(&m);
        assert!(t.contains("swarm state: inactive"), "{t}");
        assert!(
            t.contains("--init") && t.contains("--manager ssh://"),
            "{t}"
        );
        let w = not_in_a_swarm(&Membership {
            state: "active".into(),
            manager: false,
            nodes: 3,
        });
        assert!(w.contains("worker"), "{w}");
    }
}
