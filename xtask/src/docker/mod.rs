//! The one docker layer: every `docker` and `docker compose` child is spawned here, and every
//! piece of JSON docker prints is parsed here.

pub mod build;
pub mod compose;
pub mod container;
pub mod events;
mod exec;
mod images;
pub mod resources;
pub mod run;
pub mod swarm;

use std::process::{Command, Output, Stdio};

use anyhow::{Result, bail};
use xshell::Shell;

pub use container::Container;
pub use exec::*;
pub use images::*;

/// Which engine a docker call talks to: the one the client is configured for (DOCKER_HOST,
/// context), or another by address (`--manager`, a node of the throw-away cluster's socket).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Engine(Option<String>);

impl Engine {
    pub fn configured() -> Engine {
        Engine(None)
    }
    /// `tcp://…`, `ssh://user@host`, `unix://…`: what `docker -H` takes.
    pub fn host(h: &str) -> Engine {
        Engine(Some(h.to_string()))
    }
    /// The address, for a child command's `--manager`.
    pub fn address(&self) -> Option<&str> {
        self.0.as_deref()
    }
    /// `docker [-H host] <rest>`.
    pub fn args(&self, rest: &[&str]) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(h) = &self.0 {
            a.extend(["-H".to_string(), h.clone()]);
        }
        a.extend(words(rest));
        a
    }
    /// Its stdout; a failure carries the command and docker's stderr.
    pub fn read(&self, sh: &Shell, rest: &[&str]) -> Result<String> {
        let out = cmd(sh, &self.args(rest)).quiet().ignore_status().output()?;
        if !out.status.success() {
            bail!(
                "docker {}: {}",
                rest.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A one-shot `docker <args>` (xshell: checked exit status, quiet by default at call sites).
pub fn cmd<'a>(sh: &'a Shell, args: &[String]) -> xshell::Cmd<'a> {
    sh.cmd("docker").args(args)
}

/// A long-running `docker <args>` child (duct).
pub fn expr(args: &[String]) -> duct::Expression {
    duct::cmd("docker", args)
}

/// `docker <args>` with `input` on its stdin, stdout dropped; a failure carries `what` and
/// docker's stderr.
fn run_with_input(args: &[String], input: &[u8], what: &str) -> Result<()> {
    let out = expr(args)
        .stdin_bytes(input)
        .stdout_null()
        .stderr_capture()
        .unchecked()
        .run()?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Runs several `docker` commands at once (each CLI start costs 20-150 ms; preflight and
/// cleanup checks do not depend on each other) and returns their outputs in order.
pub fn run_all(calls: &[Vec<String>]) -> Vec<std::io::Result<Output>> {
    let children: Vec<_> = calls
        .iter()
        .map(|args| {
            Command::new("docker")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.and_then(|c| c.wait_with_output()))
        .collect()
}

/// The ids a listing (`ps -aq …`, `image ls -q …`) prints; none when it fails.
pub fn ids(sh: &Shell, args: &[String]) -> Vec<String> {
    cmd(sh, args)
        .quiet()
        .read()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// The filter that selects everything compose made for a project.
pub fn label_filter(project: &str) -> String {
    format!("label=com.docker.compose.project={project}")
}

fn words(w: &[&str]) -> Vec<String> {
    compose::words(w)
}

/// The containers of a project, running or not, sorted by service.
pub fn containers(sh: &Shell, project: &str) -> Result<Vec<Container>> {
    let ids = cmd(
        sh,
        &words(&["ps", "-aq", "--filter", &label_filter(project)]),
    )
    .quiet()
    .read()?;
    let ids: Vec<String> = ids.split_whitespace().map(String::from).collect();
    inspect(sh, &ids)
}

pub fn inspect(sh: &Shell, ids: &[String]) -> Result<Vec<Container>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut args = words(&["inspect"]);
    args.extend(ids.iter().cloned());
    let json = cmd(sh, &args).quiet().read()?;
    let mut cs = container::parse_inspect(&json)?;
    cs.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(cs)
}

/// The last `n` lines a container printed (stdout and stderr).
pub fn logs_tail(sh: &Shell, id: &str, n: usize) -> String {
    let args = words(&["logs", "--tail", &n.to_string(), id]);
    match cmd(sh, &args).quiet().ignore_status().output() {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("(docker logs failed: {e})"),
    }
}

/// Names of the project's volumes.
pub fn volumes(sh: &Shell, project: &str) -> Result<Vec<String>> {
    let args = words(&["volume", "ls", "-q", "--filter", &label_filter(project)]);
    let out = cmd(sh, &args).quiet().read()?;
    Ok(out.split_whitespace().map(String::from).collect())
}

/// Containers, volumes and networks still labelled with the project.
pub fn leftovers(project: &str) -> Result<Vec<String>> {
    let filter = label_filter(project);
    let kinds = ["container", "volume", "network"];
    let calls: Vec<Vec<String>> = [
        &["ps", "-aq"][..],
        &["volume", "ls", "-q"],
        &["network", "ls", "-q"],
    ]
    .iter()
    .map(|c| {
        let mut a = words(c);
        a.extend(["--filter".into(), filter.clone()]);
        a
    })
    .collect();
    let mut left = Vec::new();
    for (kind, out) in kinds.iter().zip(run_all(&calls)) {
        let out = out?;
        if !out.status.success() {
            bail!(
                "listing {kind}s: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        left.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(|id| format!("{kind} {id}")),
        );
    }
    Ok(left)
}

/// How many containers, networks and volumes the engine has (everyone's).
pub fn counts(sh: &Shell) -> (usize, usize, usize) {
    let count = |args: &[&str]| {
        cmd(sh, &words(args))
            .quiet()
            .read()
            .map_or(0, |o| o.lines().count())
    };
    (
        count(&["ps", "-aq"]),
        count(&["network", "ls", "-q"]),
        count(&["volume", "ls", "-q"]),
    )
}

/// The container publishing a host port, if docker knows one.
pub fn publisher_of(port: u16) -> Option<String> {
    let args = words(&[
        "ps",
        "--filter",
        &format!("publish={port}"),
        "--format",
        "{{.Names}}",
    ]);
    let out = run_all(&[args]).pop()?.ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// Whether a network is `internal` (no route out).
pub fn network_internal(sh: &Shell, network: &str) -> Result<bool> {
    let args = words(&["network", "inspect", "--format", "{{.Internal}}", network]);
    Ok(cmd(sh, &args).quiet().read()?.trim() == "true")
}

/// Whether an engine answers (`docker info` succeeds).
pub fn daemon_answers(sh: &Shell) -> bool {
    cmd(sh, &words(&["info", "--format", "{{.ServerVersion}}"]))
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// The engine's version, if it answers.
pub fn server_version(sh: &Shell, engine: &Engine) -> Option<String> {
    engine
        .read(sh, &["version", "--format", "{{.Server.Version}}"])
        .ok()
        .map(|v| v.trim().to_string())
}

/// The engine's operating system as it names itself (`Docker Desktop` on macOS and Windows).
pub fn engine_os(sh: &Shell) -> String {
    cmd(sh, &words(&["info", "--format", "{{.OperatingSystem}}"]))
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default()
}
