//! Docker Swarm as the docker CLI spells it: membership, nodes, services, tasks, stacks and
//! image pushes by digest, on any engine (`Engine`). The xtask's own swarm logic (the stack
//! file, waiting for convergence) is in `crate::swarm`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use xshell::Shell;

use super::{Engine, compose::words, run_all};

/// `docker stack deploy` of a rendered file. Images are references by digest, or local tags on
/// a one-node swarm (`resolve_local`: no registry to ask).
pub fn stack_deploy(
    sh: &Shell,
    target: &Engine,
    stack: &str,
    file: &Path,
    local: bool,
) -> Result<()> {
    let file = file.display().to_string();
    let mut rest = vec![
        "stack",
        "deploy",
        "--detach=true",
        "--prune",
        "--with-registry-auth",
        "-c",
        &file,
    ];
    if local {
        rest.extend(["--resolve-image", "never"]);
    }
    rest.push(stack);
    target.read(sh, &rest).map(|_| ())
}

/// Pushes local images to a registry, all at once, and returns each as a reference by digest
/// with the registry named as the nodes reach it (`pull_prefix`; the same as `push_prefix`
/// unless this host reaches the registry by another address). `images` pairs a local image with
/// its `repository:tag` there; every tag made is added to `tags_made`. Images that share layers
/// should share a repository and be pushed in a later call: the registry then has the layers.
pub fn push(
    sh: &Shell,
    images: &[(String, String)],
    push_prefix: &str,
    pull_prefix: &str,
    tags_made: &mut Vec<String>,
) -> Result<Vec<String>> {
    let mut pushes = Vec::new();
    for (local, name) in images {
        let remote = format!("{push_prefix}/{name}");
        super::cmd(sh, &words(&["tag", local, &remote]))
            .quiet()
            .run()
            .with_context(|| format!("tagging {local} as {remote}"))?;
        tags_made.push(remote.clone());
        pushes.push(words(&["push", "--quiet", &remote]));
    }
    for (args, out) in pushes.iter().zip(run_all(&pushes)) {
        let out = out?;
        if !out.status.success() {
            bail!(
                "docker {}: {}\n  (is the registry reachable from this host, and does the engine trust its certificate? \
                 https://docs.docker.com/engine/security/certificates/)",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    images
        .iter()
        .map(|(_, name)| {
            let remote = format!("{push_prefix}/{name}");
            let repo = name.rsplit_once(':').map_or(name.as_str(), |(r, _)| r);
            let digest = digest_in(sh, &remote, &format!("{push_prefix}/{repo}"))?
                .with_context(|| format!("no digest of {remote} after its push"))?;
            Ok(format!("{pull_prefix}/{repo}@{digest}"))
        })
        .collect()
}

/// The `sha256:…` of `repo` in an image's RepoDigests (JSON list of `repo@sha256:…`).
pub fn digest_for(repo_digests: &str, repo: &str) -> Option<String> {
    let list: Vec<String> = serde_json::from_str(repo_digests.trim()).ok()?;
    list.iter()
        .find_map(|d| d.strip_prefix(&format!("{repo}@")).map(String::from))
}

/// What `docker info` says of the engine's swarm membership.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// inactive, pending, active, error, locked.
    pub state: String,
    pub manager: bool,
    pub nodes: u64,
}

pub fn membership(sh: &Shell, target: &Engine) -> Result<Membership> {
    let out = target.read(sh, &["info", "--format", "{{json .Swarm}}"])?;
    parse_membership(&out)
}

pub fn parse_membership(json: &str) -> Result<Membership> {
    let v: Value = serde_json::from_str(json.trim()).context("reading docker info's Swarm")?;
    Ok(Membership {
        state: v["LocalNodeState"].as_str().unwrap_or("").to_string(),
        manager: v["ControlAvailable"].as_bool().unwrap_or(false),
        nodes: v["Nodes"].as_u64().unwrap_or(0),
    })
}

/// One service of a stack as `docker service ls` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRow {
    /// Without the stack prefix.
    pub service: String,
    pub running: u64,
    pub desired: u64,
    pub image: String,
}

pub fn services(sh: &Shell, target: &Engine, stack: &str) -> Result<Vec<ServiceRow>> {
    let filter = format!("label=com.docker.stack.namespace={stack}");
    let out = target.read(
        sh,
        &[
            "service",
            "ls",
            "--filter",
            &filter,
            "--format",
            "{{json .}}",
        ],
    )?;
    Ok(parse_services(&out, stack))
}

pub fn parse_services(text: &str, stack: &str) -> Vec<ServiceRow> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let name = v["Name"].as_str()?;
            // "2/2", "0/3", "1/1 (max 1 per node)"
            let replicas = v["Replicas"].as_str()?.split_whitespace().next()?;
            let (running, desired) = replicas.split_once('/')?;
            Some(ServiceRow {
                service: name
                    .strip_prefix(&format!("{stack}_"))
                    .unwrap_or(name)
                    .to_string(),
                running: running.parse().ok()?,
                desired: desired.parse().ok()?,
                image: v["Image"].as_str().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// A service's last update as `docker service inspect` shows it (all empty before the first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateStatus {
    /// `updating`, `completed`, `paused`, `rollback_started`, `rollback_completed`, …
    pub state: String,
    pub message: String,
    /// Tells this update from the previous one.
    pub started_at: String,
}

impl UpdateStatus {
    pub fn finished(&self) -> bool {
        matches!(
            self.state.as_str(),
            "completed" | "paused" | "rollback_completed" | "rollback_paused"
        )
    }
}

pub fn update_status(sh: &Shell, target: &Engine, service: &str) -> Result<UpdateStatus> {
    let out = target.read(
        sh,
        &[
            "service",
            "inspect",
            "--format",
            "{{json .UpdateStatus}}",
            service,
        ],
    )?;
    let v: Value = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    let field = |k: &str| v[k].as_str().unwrap_or("").to_string();
    Ok(UpdateStatus {
        state: field("State"),
        message: field("Message"),
        started_at: field("StartedAt"),
    })
}

/// The image a service's spec names now.
pub fn service_image(sh: &Shell, target: &Engine, service: &str) -> Result<String> {
    Ok(target
        .read(
            sh,
            &[
                "service",
                "inspect",
                "--format",
                "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                service,
            ],
        )?
        .trim()
        .to_string())
}

/// A service's task template (`Spec.TaskTemplate` as JSON): what a change of rolls its tasks.
pub fn task_template(sh: &Shell, target: &Engine, service: &str) -> Result<String> {
    target.read(
        sh,
        &[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.TaskTemplate}}",
            service,
        ],
    )
}

/// The nodes a service's running tasks are on.
pub fn task_nodes(sh: &Shell, target: &Engine, service: &str) -> Result<Vec<String>> {
    let out = target.read(
        sh,
        &[
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}}\t{{.CurrentState}}",
            service,
        ],
    )?;
    Ok(out
        .lines()
        .filter(|l| l.contains("Running"))
        .filter_map(|l| l.split('\t').next().map(String::from))
        .collect())
}

/// Why a service's tasks did not start (the last errors `docker service ps` shows).
pub fn task_errors(sh: &Shell, target: &Engine, service: &str) -> String {
    target
        .read(
            sh,
            &[
                "service",
                "ps",
                "--no-trunc",
                "--format",
                "{{.Node}} {{.CurrentState}} {{.Error}}",
                service,
            ],
        )
        .map(|o| {
            o.lines()
                .take(6)
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The swarm's nodes: `(id, hostname)`.
pub fn nodes(sh: &Shell, target: &Engine) -> Result<Vec<(String, String)>> {
    let out = target.read(sh, &["node", "ls", "--format", "{{.ID}} {{.Hostname}}"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.into(), b.into())))
        .collect())
}

/// Whether a node carries `label=true`.
pub fn node_labelled(sh: &Shell, target: &Engine, node: &str, label: &str) -> Result<bool> {
    let labels = target.read(
        sh,
        &["node", "inspect", "--format", "{{json .Spec.Labels}}", node],
    )?;
    Ok(labels.contains(&format!("\"{label}\":\"true\"")))
}

/// Labels a node `label=true`.
pub fn label_node(sh: &Shell, target: &Engine, node: &str, label: &str) -> Result<()> {
    let add = format!("{label}=true");
    target.read(sh, &["node", "update", "--label-add", &add, node])?;
    Ok(())
}

/// Makes the engine a one-node swarm listening and advertising on `addr` only.
pub fn init(sh: &Shell, target: &Engine, addr: &str) -> Result<()> {
    let listen = format!("{addr}:2377");
    let args = [
        "swarm",
        "init",
        "--advertise-addr",
        addr,
        "--listen-addr",
        &listen,
    ];
    target.read(sh, &args)?;
    Ok(())
}

/// An image's digest in `repo` (`sha256:…`), if it has one there (it was pushed or pulled).
pub fn digest_in(sh: &Shell, image: &str, repo: &str) -> Result<Option<String>> {
    let args = words(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        image,
    ]);
    let digests = super::cmd(sh, &args)
        .quiet()
        .read()
        .with_context(|| format!("image {image} is not on this engine"))?;
    Ok(digest_for(&digests, repo))
}

/// `docker service inspect` of every service of a stack (their whole definitions).
pub fn inspect_stack_services(sh: &Shell, target: &Engine, stack: &str) -> Result<String> {
    let names = target.read(sh, &["stack", "services", "--format", "{{.Name}}", stack])?;
    let mut args = vec!["service", "inspect"];
    args.extend(names.split_whitespace());
    target.read(sh, &args)
}

/// Pulls an image onto the engine; its size in bytes.
pub fn pull(sh: &Shell, target: &Engine, image: &str) -> Result<u64> {
    target.read(sh, &["pull", "--quiet", image])?;
    let size = target.read(sh, &["image", "inspect", "--format", "{{.Size}}", image])?;
    Ok(size.trim().parse().unwrap_or(0))
}

/// Asks for a service update to `image` with other overrides (`--health-interval 1s`, …),
/// without waiting for it.
pub fn update_image(
    sh: &Shell,
    target: &Engine,
    service: &str,
    image: &str,
    overrides: &[(&str, &str)],
) -> Result<()> {
    let mut args = vec![
        "service",
        "update",
        "--detach=true",
        "--quiet",
        "--image",
        image,
    ];
    for (flag, value) in overrides {
        args.extend([*flag, *value]);
    }
    args.push(service);
    target.read(sh, &args)?;
    Ok(())
}

/// Makes the engine a swarm's first manager advertising `addr`; the token workers join with.
pub fn init_for_workers(sh: &Shell, manager: &Engine, addr: &str) -> Result<String> {
    manager.read(sh, &["swarm", "init", "--advertise-addr", addr])?;
    let token = manager.read(sh, &["swarm", "join-token", "-q", "worker"])?;
    Ok(token.trim().to_string())
}

/// Each engine joins the swarm at `manager_addr` as a worker, all at once.
pub fn join_all(workers: &[Engine], token: &str, manager_addr: &str) -> Result<()> {
    let calls: Vec<Vec<String>> = workers
        .iter()
        .map(|w| w.args(&["swarm", "join", "--token", token, manager_addr]))
        .collect();
    for (w, out) in workers.iter().zip(run_all(&calls)) {
        let out = out?;
        if !out.status.success() {
            bail!(
                "{} joining the swarm: {}",
                w.address().unwrap_or("this engine"),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// How many of the swarm's nodes are `Ready`.
pub fn ready_nodes(sh: &Shell, target: &Engine) -> Result<usize> {
    let out = target.read(sh, &["node", "ls", "--format", "{{.Status}}"])?;
    Ok(out.lines().filter(|l| l.trim() == "Ready").count())
}
