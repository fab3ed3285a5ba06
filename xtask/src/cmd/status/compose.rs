//! `status` of a compose project on this engine (the dev stack, the single-host prod stack).

use anyhow::Result;
use serde_json::json;
use xshell::Shell;

use super::{Row, Status};
use crate::{
    docker::{self, Engine, container::Health},
    stack::StackKind,
};

pub fn status(sh: &Shell, kind: StackKind, project: &str) -> Result<Status> {
    let containers = docker::containers(sh, project)?;
    let names: Vec<String> = containers
        .iter()
        .filter(|c| c.is_running())
        .map(|c| c.name.clone())
        .collect();
    let usage = docker::memory_bytes(sh, &Engine::configured(), &names);
    let node = crate::host::hostname();
    let rows: Vec<Row> = containers
        .iter()
        .map(|c| Row {
            service: c.service.clone(),
            task: c.name.clone(),
            node: node.clone(),
            state: c.status.word().to_string(),
            health: match c.health {
                Health::None => "-",
                Health::Starting => "starting",
                Health::Healthy => "healthy",
                Health::Unhealthy => "unhealthy",
            }
            .to_string(),
            image: c.image.clone(),
            restarts: c.restart_count.max(0) as u64,
            memory: usage.iter().find(|(n, _)| *n == c.name).map(|(_, b)| *b),
            limit: (c.memory_limit > 0).then_some(c.memory_limit as u64),
            healthy: c.ready(),
        })
        .collect();
    let mut problems: Vec<String> = containers
        .iter()
        .filter(|c| !c.ready())
        .map(|c| format!("{} ({}): {}", c.service, c.name, c.state_word()))
        .collect();
    for service in kind.services() {
        if !rows.iter().any(|r| r.service == *service) {
            problems.push(format!("{service}: no container ({})", start_hint(kind)));
        }
    }
    let app = rows
        .iter()
        .find(|r| r.service == "app")
        .map(|r| r.image.clone());
    let release = match app {
        Some(image) => {
            let (id, tags) = image_identity(sh, &image);
            json!({"line": format!("{image} (image {id}{tags})"), "app": image, "image_id": id})
        }
        None => json!(null),
    };
    Ok(Status {
        release,
        rows,
        problems,
        ..Default::default()
    })
}

fn start_hint(kind: StackKind) -> &'static str {
    match kind {
        StackKind::Dev => "start it: cargo xtask dev",
        StackKind::Prod => "start it: docker compose -f docker-compose.prod.yml up -d",
    }
}

/// The image's short id and, when it has them, its other tags (`build-prod`'s `<stage>-<rev>`
/// names the revision): `("1a2b3c4d5e6f", ", also axion-hub:runner-949536cdcf65")`.
fn image_identity(sh: &Shell, image: &str) -> (String, String) {
    let out = Engine::configured()
        .read(
            sh,
            &[
                "image",
                "inspect",
                "--format",
                "{{.Id}}\t{{join .RepoTags \" \"}}",
                image,
            ],
        )
        .unwrap_or_default();
    let (id, tags) = out.trim().split_once('\t').unwrap_or((out.trim(), ""));
    let id = id.trim_start_matches("sha256:").chars().take(12).collect();
    let others: Vec<&str> = tags.split_whitespace().filter(|t| *t != image).collect();
    let tags = if others.is_empty() {
        String::new()
    } else {
        format!(", also {}", others.join(" "))
    };
    (id, tags)
}
