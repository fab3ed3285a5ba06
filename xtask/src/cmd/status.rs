//! `cargo xtask status`: what runs, for a person at a terminal and for cron. Every service of
//! the dev stack (`--prod`: the single-host prod stack, `--stack NAME`: a swarm's), each of
//! its containers or tasks with its node, state, health, image, restarts and memory against
//! its limit, and the release that runs (a swarm's from its release history). Exits 1 when
//! something is not healthy, naming it.

use anyhow::{Result, bail};
use serde_json::{Value, json};
use xshell::Shell;

use crate::{docker::Engine, flags, stack::StackKind, swarm::history};

mod compose;
mod tasks;

/// Which stack a command looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A compose project on this engine (the dev or the single-host prod stack).
    Compose { kind: StackKind, project: String },
    /// A swarm stack, on the manager `engine`.
    Swarm { stack: String, engine: Engine },
}

impl Target {
    pub fn from_flags(prod: bool, stack: Option<&str>, manager: Option<&str>) -> Result<Target> {
        match (prod, stack, manager) {
            (true, Some(_), _) => {
                bail!("--prod and --stack exclude each other: one stack at a time")
            }
            (_, None, Some(_)) => bail!("--manager names a swarm's engine: give --stack NAME too"),
            (_, Some(s), m) => {
                crate::cmd::deploy::check_stack_name(s)?;
                Ok(Target::Swarm {
                    stack: s.to_string(),
                    engine: m.map_or_else(Engine::configured, Engine::host),
                })
            }
            (prod, None, None) => {
                let kind = if prod {
                    StackKind::Prod
                } else {
                    StackKind::Dev
                };
                Ok(Target::Compose {
                    kind,
                    project: kind.project(),
                })
            }
        }
    }

    /// A swarm target's engine must be a manager: only managers list services and tasks.
    pub fn check_reachable(&self, sh: &Shell) -> Result<()> {
        let Target::Swarm { stack, engine } = self else {
            return Ok(());
        };
        let m = crate::swarm::membership(sh, engine)?;
        if !m.manager {
            bail!(
                "stack {stack}: this engine is {}; a swarm's stacks are read on a manager.\n  \
                 fix: --manager ssh://USER@MANAGER (or DOCKER_HOST naming one)",
                if m.state == "active" {
                    "a swarm worker".to_string()
                } else {
                    format!("not part of a swarm (swarm state: {})", m.state)
                }
            );
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        match self {
            Target::Compose { kind, project } => format!("the {} stack {project}", kind.word()),
            Target::Swarm { stack, engine } => format!(
                "swarm stack {stack}{}",
                engine
                    .address()
                    .map(|a| format!(" (manager {a})"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// One container (compose) or task (swarm).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub service: String,
    /// The container's or the task's name.
    pub task: String,
    pub node: String,
    pub state: String,
    pub health: String,
    pub image: String,
    /// Restarts by its policy (compose); failed tasks its slot replaced (swarm).
    pub restarts: u64,
    pub memory: Option<u64>,
    pub limit: Option<u64>,
    pub healthy: bool,
}

impl Row {
    fn to_json(&self) -> Value {
        json!({
            "service": self.service, "task": self.task, "node": self.node,
            "state": self.state, "health": self.health, "image": self.image,
            "restarts": self.restarts, "memory_bytes": self.memory,
            "limit_bytes": self.limit, "healthy": self.healthy,
        })
    }
}

/// What `status` found.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub target: String,
    /// The running release: a swarm's record, or the app image a compose stack runs.
    pub release: Value,
    pub rows: Vec<Row>,
    /// What is not as it should be, a line each (a service short of tasks, a task unhealthy).
    pub problems: Vec<String>,
}

impl Status {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty() && !self.rows.is_empty()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "target": self.target,
            "healthy": self.healthy(),
            "release": self.release,
            "tasks": self.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
            "problems": self.problems,
        })
    }

    /// A table a person reads, then the verdict.
    pub fn text(&self) -> String {
        let mut out = format!("status: {}\n", self.target);
        if let Some(line) = self.release["line"].as_str() {
            out.push_str(&format!("  running: {line}\n"));
        }
        let mut table = vec![
            [
                "SERVICE", "TASK", "NODE", "STATE", "HEALTH", "RESTARTS", "MEMORY", "IMAGE",
            ]
            .map(String::from),
        ];
        for r in &self.rows {
            table.push([
                r.service.clone(),
                r.task.clone(),
                r.node.clone(),
                r.state.clone(),
                r.health.clone(),
                r.restarts.to_string(),
                memory(r.memory, r.limit),
                r.image.clone(),
            ]);
        }
        if !self.rows.is_empty() {
            out.push_str(&crate::util::columns(&table));
        }
        if self.healthy() {
            out.push_str(&format!(
                "healthy: {} of {} running\n",
                self.rows.len(),
                self.rows.len()
            ));
        } else if self.rows.is_empty() && self.problems.is_empty() {
            out.push_str("NOT healthy: nothing runs\n");
        } else {
            out.push_str(&format!("NOT healthy:\n  {}\n", self.problems.join("\n  ")));
        }
        out
    }
}

/// `181 MiB / 512 MiB`, `-` where unknown.
fn memory(used: Option<u64>, limit: Option<u64>) -> String {
    let mib = |b: u64| format!("{} MiB", b / (1 << 20));
    match (used, limit) {
        (Some(u), Some(l)) => format!("{} / {}", mib(u), mib(l)),
        (Some(u), None) => mib(u),
        (None, Some(l)) => format!("? / {}", mib(l)),
        (None, None) => "-".into(),
    }
}

impl flags::Status {
    pub fn run(self, sh: &Shell) -> Result<()> {
        crate::engine::preflight()?;
        let target = Target::from_flags(self.prod, self.stack.as_deref(), self.manager.as_deref())?;
        let status = status(sh, &target)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&status.to_json())?);
        } else {
            print!("{}", status.text());
        }
        if !status.healthy() {
            bail!("{} is not healthy", target.describe());
        }
        Ok(())
    }
}

/// What runs in `target`, and how it is.
pub fn status(sh: &Shell, target: &Target) -> Result<Status> {
    target.check_reachable(sh)?;
    let mut status = match target {
        Target::Compose { kind, project } => compose::status(sh, *kind, project)?,
        Target::Swarm { stack, engine } => {
            let mut s = tasks::status(sh, engine, stack)?;
            let records = history::list(sh, engine, stack)?;
            s.release = release_of(&records, &s.rows);
            s
        }
    };
    status.target = target.describe();
    Ok(status)
}

/// The newest release whose app image the app's tasks run, or what they run when no record
/// has it.
fn release_of(records: &[history::Record], rows: &[Row]) -> Value {
    let app = rows
        .iter()
        .find(|r| r.service == "app")
        .map(|r| r.image.as_str());
    match records
        .iter()
        .rev()
        .find(|r| Some(r.images.app.as_str()) == app)
    {
        Some(r) => {
            let mut v = r.to_json();
            v["line"] = json!(r.line());
            v
        }
        None => json!({
            "line": format!("an app image no release records ({})", app.unwrap_or("none")),
            "app": app,
        }),
    }
}

#[cfg(test)]
mod tests;
