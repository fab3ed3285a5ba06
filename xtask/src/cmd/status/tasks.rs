//! `status` of a swarm stack, from a manager: each service's tasks (`docker stack ps`), their
//! nodes and states, the failed tasks each slot replaced, and memory where the manager's own
//! engine runs the task (`docker stats` sees one node; the limit is the service's). A task
//! with a health check is `running` only once healthy: swarm holds it in `starting` until then.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::Value;
use xshell::Shell;

use super::{Row, Status};
use crate::{
    docker::{self, Engine},
    swarm,
};

/// One task as `docker stack ps` lists it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Task {
    pub service: String,
    /// `axion_app.1` (a global service's: `axion_proxy.<node id>`).
    pub name: String,
    pub id: String,
    pub node: String,
    pub desired: String,
    /// `Running 2 minutes ago` → `running`.
    pub state: String,
    pub error: String,
    pub image: String,
}

pub fn status(sh: &Shell, engine: &Engine, stack: &str) -> Result<Status> {
    let services = swarm::services(sh, engine, stack)?;
    let listed = engine.read(
        sh,
        &["stack", "ps", "--no-trunc", "--format", "{{json .}}", stack],
    )?;
    let tasks = parse_tasks(&listed, stack);
    let inspect = swarm::inspect_stack_services(sh, engine, stack).unwrap_or_default();
    let specs = specs(&inspect, stack);
    let names: Vec<String> = tasks
        .iter()
        .filter(|t| t.desired == "Running")
        .map(|t| format!("{}.{}", t.name, t.id))
        .collect();
    // Only the containers this engine runs: stats of the others' names fail as a whole.
    let local = engine
        .read(
            sh,
            &[
                "ps",
                "--format",
                "{{.Names}}",
                "--filter",
                &format!("label=com.docker.stack.namespace={stack}"),
            ],
        )
        .unwrap_or_default();
    let here: Vec<String> = names
        .into_iter()
        .filter(|n| local.lines().any(|l| l == n))
        .collect();
    let usage = docker::memory_bytes(sh, engine, &here);
    let rows = rows(&tasks, &specs, &usage);
    let mut problems: Vec<String> = services
        .iter()
        .filter(|s| s.running < s.desired)
        .map(|s| {
            format!(
                "{}: {} of {} tasks running",
                s.service, s.running, s.desired
            )
        })
        .collect();
    problems.extend(rows.iter().filter(|r| !r.healthy).map(|r| {
        let error = tasks
            .iter()
            .find(|t| t.name == r.task && t.desired == "Running")
            .map(|t| t.error.as_str())
            .filter(|e| !e.is_empty())
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        format!("{} on {}: {}{error}", r.task, r.node, r.state)
    }));
    if services.is_empty() {
        problems.push(format!(
            "no stack {stack} on this swarm (`docker stack ls` lists them)"
        ));
    }
    Ok(Status {
        rows,
        problems,
        ..Default::default()
    })
}

/// `docker stack ps --format '{{json .}}'`, a task a line (history included).
pub fn parse_tasks(text: &str, stack: &str) -> Vec<Task> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or_default().trim().to_string();
            let name = s("Name");
            let service = name
                .strip_prefix(&format!("{stack}_"))?
                .split('.')
                .next()?
                .to_string();
            let state = s("CurrentState")
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_lowercase();
            Some(Task {
                service,
                name,
                id: s("ID"),
                node: s("Node"),
                desired: s("DesiredState"),
                state,
                error: s("Error"),
                image: s("Image"),
            })
        })
        .collect()
}

/// What each service's spec says that a row shows: its memory limit and whether it has a
/// health check.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spec {
    pub limit: Option<u64>,
    pub checked: bool,
}

/// The services' specs by service name (without the stack prefix).
pub fn specs(inspect: &str, stack: &str) -> BTreeMap<String, Spec> {
    let services: Vec<Value> = serde_json::from_str(inspect).unwrap_or_default();
    services
        .iter()
        .filter_map(|s| {
            let spec = &s["Spec"];
            let name = spec["Name"].as_str()?.strip_prefix(&format!("{stack}_"))?;
            let t = &spec["TaskTemplate"];
            let test = &t["ContainerSpec"]["Healthcheck"]["Test"];
            Some((
                name.to_string(),
                Spec {
                    limit: t["Resources"]["Limits"]["MemoryBytes"]
                        .as_u64()
                        .filter(|b| *b > 0),
                    checked: test
                        .as_array()
                        .is_some_and(|a| a.first().is_some_and(|c| c != "NONE")),
                },
            ))
        })
        .collect()
}

/// A row per task meant to run; `restarts` counts the failed and rejected tasks its slot had.
pub fn rows(tasks: &[Task], specs: &BTreeMap<String, Spec>, usage: &[(String, u64)]) -> Vec<Row> {
    tasks
        .iter()
        .filter(|t| t.desired == "Running")
        .map(|t| {
            let spec = specs.get(&t.service).copied().unwrap_or_default();
            let running = t.state == "running";
            let failed = tasks
                .iter()
                .filter(|o| o.name == t.name && o.id != t.id)
                .filter(|o| matches!(o.state.as_str(), "failed" | "rejected"))
                .count();
            let container = format!("{}.{}", t.name, t.id);
            Row {
                service: t.service.clone(),
                task: t.name.clone(),
                node: t.node.clone(),
                state: t.state.clone(),
                health: match (running, spec.checked) {
                    (true, true) => "healthy".into(),
                    (true, false) => "-".into(),
                    (false, _) => t.state.clone(),
                },
                image: t.image.clone(),
                restarts: failed as u64,
                memory: usage.iter().find(|(n, _)| *n == container).map(|(_, b)| *b),
                limit: spec.limit,
                healthy: running,
            }
        })
        .collect()
}
