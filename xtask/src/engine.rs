//! The Docker engine as the xtask needs it: found on PATH, answering, with buildx and Compose
//! v2 of versions that work together (preflight). Installing one is `install`'s job.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::{
    docker::{self, compose::words},
    util::version_at_least,
};

/// Compose >= 2.37 refuses buildx < 0.17 ("compose build requires buildx 0.17 or later").
const COMPOSE_NEEDS_NEW_BUILDX: &str = "2.37";
/// Health-check `start_interval` needs Engine 25 (API 1.44); older engines ignore it and probe
/// only every `interval`, which makes every start-up several seconds slower.
pub const ENGINE_FOR_START_INTERVAL: &str = "25";

#[derive(Debug, Clone, Default)]
pub struct Versions {
    pub client: String,
    pub engine: String,
    pub api: String,
    pub buildx: Option<String>,
    pub compose: Option<String>,
}

pub fn docker_path() -> Result<PathBuf> {
    which::which("docker").map_err(|_| {
        anyhow::anyhow!(
            "no `docker` on PATH.\n  fix: on Debian/Ubuntu as root run `cargo xtask provision`; elsewhere install Docker \
             Engine >= 25 with buildx and Compose v2 (https://docs.docker.com/engine/install/)"
        )
    })
}

/// Engine, buildx and compose versions; an error says which piece is missing and how to get it.
pub fn versions() -> Result<Versions> {
    docker_path()?;
    let calls = [
        words(&[
            "version",
            "--format",
            "{{.Client.Version}}|{{.Server.Version}}|{{.Server.APIVersion}}",
        ]),
        words(&["buildx", "version"]),
        words(&["compose", "version", "--short"]),
    ];
    let mut outs = docker::run_all(&calls).into_iter();
    let (version, buildx, compose) = (
        outs.next().context("running `docker version`")?,
        outs.next().context("running `docker buildx version`")?,
        outs.next().context("running `docker compose version`")?,
    );
    let out = version.context("running `docker version`")?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let parts: Vec<&str> = text.split('|').collect();
    if !out.status.success() || parts.len() != 3 || parts[1].is_empty() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let err = if stderr.is_empty() {
            text.clone()
        } else {
            stderr
        };
        bail!(
            "the Docker engine does not answer: {err}\n  fix: start it (`sudo systemctl start docker`, or as root here: \
             `cargo xtask provision`, which starts `dockerd` when there is no systemd)"
        );
    }
    let stdout = |o: std::io::Result<std::process::Output>| {
        o.ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let buildx = stdout(buildx).and_then(|s| parse_buildx_version(&s));
    let compose = stdout(compose)
        .map(|s| s.trim_start_matches('v').to_string())
        .filter(|s| s.starts_with(|c: char| c.is_ascii_digit()));
    Ok(Versions {
        client: parts[0].into(),
        engine: parts[1].into(),
        api: parts[2].into(),
        buildx,
        compose,
    })
}

/// `github.com/docker/buildx 0.13.1+ds1 ...` or `github.com/docker/buildx v0.29.1 ...` -> `0.13.1`.
pub fn parse_buildx_version(s: &str) -> Option<String> {
    let v = s.split_whitespace().nth(1)?.trim_start_matches('v');
    let v: String = v
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!v.is_empty()).then_some(v)
}

/// Preflight: everything the stack commands need from the engine, or the fix.
pub fn preflight() -> Result<Versions> {
    let v = versions()?;
    let Some(buildx) = &v.buildx else {
        bail!(
            "docker buildx is missing: `docker build` with BuildKit and compose builds need it.\n  fix: install the \
             `docker-buildx` package (Debian/Ubuntu), or run `cargo xtask provision` as root"
        );
    };
    let Some(compose) = &v.compose else {
        let legacy = which::which("docker-compose").is_ok();
        bail!(
            "Compose v2 (`docker compose`) is missing{}.\n  fix: install `docker-compose` (Debian >= 13) or \
             `docker-compose-v2` (Ubuntu), or run `cargo xtask provision` as root",
            if legacy {
                "; a legacy `docker-compose` v1 is installed but is not supported"
            } else {
                ""
            }
        );
    };
    if version_at_least(compose, COMPOSE_NEEDS_NEW_BUILDX) && !version_at_least(buildx, "0.17") {
        bail!(
            "compose {compose} needs buildx >= 0.17, found {buildx}.\n  fix: upgrade docker-buildx"
        );
    }
    Ok(v)
}

pub fn describe(v: &Versions) -> String {
    format!(
        "engine {} (API {}), client {}, buildx {}, compose {}",
        v.engine,
        v.api,
        v.client,
        v.buildx.as_deref().unwrap_or("missing"),
        v.compose.as_deref().unwrap_or("missing")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_versions() {
        assert_eq!(
            parse_buildx_version("github.com/docker/buildx 0.13.1+ds1 0.13.1+ds1-3").as_deref(),
            Some("0.13.1")
        );
        assert_eq!(
            parse_buildx_version("github.com/docker/buildx v0.29.1 a1b2c3").as_deref(),
            Some("0.29.1")
        );
        assert_eq!(
            parse_buildx_version("docker: 'buildx' is not a docker command."),
            None
        );
    }
}
