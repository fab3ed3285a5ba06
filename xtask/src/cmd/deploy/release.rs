//! What a deploy did (`Release`, its report), and what it leaves in the swarm: the release
//! recorded in the swarm's history (`swarm::history`), secrets and configs no service needs
//! removed (`swarm::prune`).

use std::{path::PathBuf, time::Duration};

use anyhow::Result;
use serde_json::{Value, json};
use xshell::Shell;

use crate::{
    docker::Engine,
    swarm::{Converged, StackImages, history, prune},
    util::secs,
};

/// What a deploy did: for its report, and for `verify --swarm`, which runs it in-process.
#[derive(Debug, Clone)]
pub struct Release {
    pub stack: String,
    pub file: PathBuf,
    pub images: StackImages,
    pub registry: Option<String>,
    /// `--image` when one was given (nothing was built).
    pub given_image: Option<String>,
    /// Set when the app's image changed: how long its rolling update took.
    pub rolling_update: Option<Duration>,
    pub build: Duration,
    pub push: Duration,
    pub deploy: Duration,
    pub total: Duration,
    pub converged: Vec<Converged>,
    /// The image the previous release's static files were carried into (`carry`), if any.
    pub carried: Option<String>,
    pub app_port: u16,
    /// Where every node serves HTTPS (HTTPS_PORT).
    pub https_port: String,
    /// This release as the swarm's history recorded it.
    pub recorded: Option<history::Record>,
    /// Secrets and configs no service needs any more, removed after it (`secret NAME`, …).
    pub pruned: Vec<String>,
}

impl Release {
    pub fn to_json(&self) -> Value {
        json!({
            "stack": self.stack,
            "file": self.file.display().to_string(),
            "images": self.images.env().iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "registry": self.registry,
            "rolling_update_seconds": self.rolling_update.map(|d| d.as_secs_f64()),
            "seconds": {"build": self.build.as_secs_f64(), "push": self.push.as_secs_f64(), "deploy": self.deploy.as_secs_f64(), "total": self.total.as_secs_f64()},
            "converged": self.converged.iter().map(Converged::to_json).collect::<Vec<_>>(),
            "carried_assets_into": self.carried,
            "release": self.recorded.as_ref().map(history::Record::to_json),
            "pruned": self.pruned,
        })
    }

    pub fn line(&self) -> String {
        format!(
            "deploy: stack {} healthy in {} ({}, push {}, deploy {}{}); every node serves HTTPS on port {} (HTTP on {} redirects)\n  stack file: {}",
            self.stack,
            secs(self.total),
            match &self.given_image {
                Some(i) => format!("image {i}"),
                None => format!("build {}", secs(self.build)),
            },
            secs(self.push),
            secs(self.deploy),
            self.rolling_update.map_or(String::new(), |d| format!(
                ", of which the rolling update {}",
                secs(d)
            )),
            self.https_port,
            self.app_port,
            self.file.display()
        ) + &self.recorded_lines()
    }

    fn recorded_lines(&self) -> String {
        let mut out = String::new();
        if let Some(r) = &self.recorded {
            out.push_str(&format!("\n  recorded as {}", r.line()));
        }
        if !self.pruned.is_empty() {
            out.push_str(&format!(
                "\n  removed what no service needs any more: {}",
                self.pruned.join(", ")
            ));
        }
        out
    }
}

/// After a deploy converged: the release recorded in the swarm's history, then the secrets and
/// configs no service needs removed (and, deployed from local images, the release tags no kept
/// record names). The record's images are those the stack file names.
pub fn record_and_prune(
    sh: &Shell,
    target: &Engine,
    stack: &str,
    images: &StackImages,
    build_id: String,
    rollback_to: Option<u32>,
    local: bool,
) -> Result<(history::Record, Vec<String>)> {
    let record = history::Record {
        release: 0,
        time: crate::util::rfc3339(std::time::SystemTime::now()),
        by: crate::host::who(),
        revision: crate::images::revision(sh),
        build_id,
        images: images.clone(),
        rollback_to,
    };
    let recorded = history::record(sh, target, stack, record)?;
    let mut pruned = prune::prune(sh, target, stack)?;
    if local {
        pruned.extend(prune_release_tags(sh, target, stack)?);
    }
    Ok((recorded, pruned))
}

/// On a one-node swarm from local images, each release's app image keeps a tag of its own
/// (`axion-hub/app:<image id>`): the tags no kept record names are removed (an image a task
/// still runs stays, the engine refuses). `image NAME` for each one removed.
fn prune_release_tags(sh: &Shell, target: &Engine, stack: &str) -> Result<Vec<String>> {
    let kept: Vec<String> = history::list(sh, target, stack)?
        .into_iter()
        .map(|r| r.images.app)
        .collect();
    let tags = target.read(
        sh,
        &[
            "image",
            "ls",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "axion-hub/app",
        ],
    )?;
    Ok(tags
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.ends_with(":<none>") && !kept.iter().any(|k| k == t))
        .filter(|t| target.read(sh, &["image", "rm", t]).is_ok())
        .map(|t| format!("image {t}"))
        .collect())
}

/// Next.js's build id in an app image (`.next/BUILD_ID`), empty when it has none.
pub fn build_id_of(sh: &Shell, image: &str) -> String {
    crate::docker::inspect_image_with(sh, image, "cat /app/.next/BUILD_ID 2>/dev/null")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
