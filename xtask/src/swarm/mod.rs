//! Docker Swarm: the prod stack rendered for `docker stack deploy`, its images pushed to a
//! registry and deployed by digest, its convergence watched. `cargo xtask deploy` and
//! `verify --swarm` (on a throw-away Docker-in-Docker cluster, `cluster`) share all of it.
//!
//! Rendering: `docker compose config` merges docker-compose.prod.yml and
//! docker-compose.swarm.yml (so `!reset`/`!override` work and nothing is repeated), then
//! `to_stack` turns compose's output into what `docker stack deploy` accepts and means.

pub mod history;
pub mod prune;
mod stack_file;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use xshell::Shell;

pub use crate::docker::swarm::*;
use crate::{docker::Engine, progress::Progress, stack::StackKind, util::secs};
pub use stack_file::to_stack;

pub const OVERLAY: &str = "docker-compose.swarm.yml";

/// `deploy`'s default stack name.
pub const DEFAULT_STACK: &str = "axion";

/// A rolling update of two start-first tasks takes 20-30 s here, a rollback 30-45 s; a cold
/// node also pulls the image first.
pub const TIMEOUT_UPDATE: Duration = Duration::from_secs(300);

/// The node label db and redis are pinned to (their volumes live there).
pub const DATA_LABEL: &str = "axion-hub.data";

/// The images a stack runs, as references every node can pull.
#[derive(Debug, Clone, PartialEq)]
pub struct StackImages {
    pub app: String,
    pub postgres: String,
    pub redis: String,
    pub proxy: String,
}

impl StackImages {
    /// The compose variables that select them.
    pub fn env(&self) -> [(&'static str, &str); 4] {
        [
            ("AXION_APP_IMAGE", &self.app),
            ("POSTGRES_IMAGE", &self.postgres),
            ("REDIS_IMAGE", &self.redis),
            ("EDGE_IMAGE", &self.proxy),
        ]
    }
}

/// What the rendered stack is interpolated with besides its images: the app's own variables
/// and where the secrets are (the same as the prod stack's compose environment).
pub fn stack_vars(root: &std::path::Path, tls_pem: &Path) -> Vec<(String, String)> {
    vec![
        (
            "AXION_APP_ENV_FILE".into(),
            crate::app_env::file(root).display().to_string(),
        ),
        (
            "AXION_SECRETS_DIR".into(),
            crate::secrets::dir(root).display().to_string(),
        ),
        ("AXION_EXTRA_CA_FILE".into(), "/dev/null".into()),
        ("AXION_TLS_PEM".into(), tls_pem.display().to_string()),
    ]
}

/// The rendered stack file: compose's model of the two files with these images, made
/// deployable, written to `out`.
pub fn render(
    sh: &Shell,
    root: &Path,
    stack: &str,
    images: &StackImages,
    extra_env: &[(String, String)],
    encrypted_overlays: bool,
    out: &Path,
) -> Result<Value> {
    let mut env: Vec<(String, String)> = extra_env.to_vec();
    env.extend(images.env().map(|(k, v)| (k.to_string(), v.to_string())));
    let files = [StackKind::Prod.compose_file(), OVERLAY];
    let model = crate::docker::compose::config_json(sh, root, &files, &env)?;
    let key = crate::secrets::name_key(root)?;
    let mut file = to_stack(model, stack, |kind, f| name_source(kind, f, &key))?;
    if encrypted_overlays {
        stack_file::encrypt_overlays(&mut file);
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Only its owner reads what the stack is made of.
    crate::util::write_atomic(out, serde_json::to_string_pretty(&file)?.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(file)
}

/// What an object's name is derived from: a config's content; a secret's content (wherever
/// its file is: the TLS key may live outside secrets/) behind the name key, so the name
/// (visible to anyone who lists the swarm's secrets) says nothing of it.
fn name_source(kind: &str, file: &str, key: &[u8]) -> Result<Vec<u8>> {
    let bytes = std::fs::read(file)?;
    Ok(if kind == "secrets" {
        [key, &bytes].concat()
    } else {
        bytes
    })
}

/// A service that reached all its tasks, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Converged {
    pub service: String,
    /// Tasks running (healthy) of those desired: all of them.
    pub replicas: u64,
    pub after: Duration,
}

impl Converged {
    pub fn to_json(&self) -> Value {
        json!({"service": self.service, "replicas": self.replicas, "seconds": self.after.as_secs_f64()})
    }
    /// `app 2/2 after 14.2s`
    pub fn line(&self) -> String {
        format!(
            "{} {}/{} after {}",
            self.service,
            self.replicas,
            self.replicas,
            secs(self.after)
        )
    }
}

/// Waits until every service of the stack runs all its desired tasks (healthy ones: a task with
/// a health check counts once healthy) and no update is in flight; returns when each service
/// first did.
pub fn wait_converged(
    sh: &Shell,
    target: &Engine,
    stack: &str,
    timeout: Duration,
    progress: &mut Progress,
) -> Result<Vec<Converged>> {
    let started = Instant::now();
    let mut done: Vec<Converged> = Vec::new();
    loop {
        crate::signals::check()?;
        let rows = services(sh, target, stack)?;
        for r in &rows {
            let seen = done.iter().any(|c| c.service == r.service);
            if r.desired > 0 && r.running >= r.desired && !seen {
                done.push(Converged {
                    service: r.service.clone(),
                    replicas: r.desired,
                    after: started.elapsed(),
                });
            }
        }
        let line: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {}/{}", r.service, r.running, r.desired))
            .collect();
        let key = format!("swarm: {}", line.join(", "));
        progress.show_keyed(&key, &format!("{key} ({})", secs(started.elapsed())));
        if !rows.is_empty() && rows.iter().all(|r| r.desired > 0 && r.running == r.desired) {
            progress.done();
            return Ok(done);
        }
        if started.elapsed() > timeout {
            progress.done();
            let lagging: Vec<&ServiceRow> = rows.iter().filter(|r| r.running < r.desired).collect();
            let mut why = String::new();
            for r in &lagging {
                let name = format!("{stack}_{}", r.service);
                why.push_str(&format!(
                    "\n  {name} {}/{}:\n{}",
                    r.running,
                    r.desired,
                    task_errors(sh, target, &name)
                ));
            }
            bail!("the stack did not converge in {}:{why}", secs(timeout));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits for the update that follows `before` (the status read before it was asked for) to
/// end; its final status and how long the wait took.
pub fn wait_update(
    sh: &Shell,
    target: &Engine,
    service: &str,
    before: &UpdateStatus,
    timeout: Duration,
) -> Result<(UpdateStatus, Duration)> {
    let started = Instant::now();
    loop {
        crate::signals::check()?;
        let now = update_status(sh, target, service)?;
        if now.started_at != before.started_at && now.finished() {
            return Ok((now, started.elapsed()));
        }
        if started.elapsed() > timeout {
            bail!(
                "{service}'s update did not finish in {} (state: {} {})",
                secs(timeout),
                now.state,
                now.message
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests;
