//! `cargo xtask doctor`: every prerequisite with its version, OK or the fix.

use std::fs;

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

use crate::{
    dev::dev_project,
    engine::{self, ENGINE_FOR_START_INTERVAL},
    env_file::EnvFile,
    images::{self, BUN_VERSION},
    ports,
    stack::containers,
    util::{port_taken, version_at_least},
};

/// Below this much free disk, a cold build plus images (about 3 GB) risks "no space left".
const MIN_FREE_DISK_GB: f64 = 5.0;

enum Verdict {
    Ok,
    Warn(String),
    Fail(String),
}

struct Row {
    what: &'static str,
    found: String,
    verdict: Verdict,
}

pub fn run(sh: &Shell) -> Result<()> {
    let mut rows = Vec::new();
    let root = sh.current_dir();
    let fix_engine = "run `cargo xtask provision` as root (Debian/Ubuntu), or install Docker Engine >= 25 with buildx and Compose v2";

    let docker = engine::docker_path();
    rows.push(match &docker {
        Ok(p) => Row {
            what: "docker CLI",
            found: p.display().to_string(),
            verdict: Verdict::Ok,
        },
        Err(_) => Row {
            what: "docker CLI",
            found: "not on PATH".into(),
            verdict: Verdict::Fail(fix_engine.into()),
        },
    });
    if docker.is_ok() {
        match engine::versions() {
            Ok(v) => {
                rows.push(Row {
                    what: "engine",
                    found: format!("{} (API {}), client {}", v.engine, v.api, v.client),
                    verdict: if version_at_least(&v.engine, ENGINE_FOR_START_INTERVAL) {
                        Verdict::Ok
                    } else {
                        Verdict::Warn(format!("Engine < {ENGINE_FOR_START_INTERVAL} ignores health-check start_interval: start-up is slower. Upgrade the engine"))
                    },
                });
                rows.push(match &v.buildx {
                    Some(b) => Row {
                        what: "buildx",
                        found: b.clone(),
                        verdict: Verdict::Ok,
                    },
                    None => Row {
                        what: "buildx",
                        found: "missing".into(),
                        verdict: Verdict::Fail(
                            "install docker-buildx (or `cargo xtask provision`)".into(),
                        ),
                    },
                });
                rows.push(match &v.compose {
                    Some(c) if version_at_least(c, "2.20.2") => Row { what: "compose v2", found: c.clone(), verdict: Verdict::Ok },
                    Some(c) => Row { what: "compose v2", found: c.clone(), verdict: Verdict::Warn("Compose < 2.20.2 ignores start_interval; upgrade".into()) },
                    None if which::which("docker-compose").is_ok() => Row {
                        what: "compose v2",
                        found: "only a legacy `docker-compose` (v1)".into(),
                        verdict: Verdict::Fail("install Compose v2 (`docker-compose` on Debian >= 13, `docker-compose-v2` on Ubuntu)".into()),
                    },
                    None => Row { what: "compose v2", found: "missing".into(), verdict: Verdict::Fail("install Compose v2, or `cargo xtask provision`".into()) },
                });
            }
            Err(e) => rows.push(Row {
                what: "engine",
                found: "not answering".into(),
                verdict: Verdict::Fail(format!("{e}")),
            }),
        }
    }

    // .env and ports.
    let env_path = root.join(".env");
    let env = if env_path.exists() {
        match EnvFile::load(&env_path) {
            Ok(e) => {
                rows.push(Row {
                    what: ".env",
                    found: "present".into(),
                    verdict: Verdict::Ok,
                });
                e
            }
            Err(e) => {
                rows.push(Row {
                    what: ".env",
                    found: "unreadable".into(),
                    verdict: Verdict::Fail(format!("{e:#}")),
                });
                EnvFile::default()
            }
        }
    } else {
        rows.push(Row {
            what: ".env",
            found: "missing".into(),
            verdict: Verdict::Warn("`cargo xtask dev` creates it from .env.example".into()),
        });
        EnvFile::parse(&fs::read_to_string(root.join(".env.example")).unwrap_or_default())
    };
    let dev_running = docker.is_ok()
        && containers(sh, &dev_project()).is_ok_and(|cs| cs.iter().any(|c| c.status == "running"));
    for (var, default) in [("APP_PORT", 3000), ("DB_PORT", 5432), ("REDIS_PORT", 6379)] {
        let what = match var {
            "APP_PORT" => "port APP_PORT",
            "DB_PORT" => "port DB_PORT",
            _ => "port REDIS_PORT",
        };
        rows.push(match env.port(var, default) {
            Err(e) => Row {
                what,
                found: "invalid".into(),
                verdict: Verdict::Fail(e.to_string()),
            },
            Ok(p) if !port_taken(p) => Row {
                what,
                found: format!("{p} free"),
                verdict: Verdict::Ok,
            },
            Ok(p) if dev_running => Row {
                what,
                found: format!("{p} (held by the running dev stack)"),
                verdict: Verdict::Ok,
            },
            Ok(p) => Row {
                what,
                found: format!("{p} held by {}", ports::holder(p)),
                verdict: Verdict::Fail(format!("stop it, or set {var} to a free port in .env")),
            },
        });
    }

    // Disk.
    let df = cmd!(sh, "df -Pk {root}").quiet().read().ok();
    let free_gb = df
        .as_deref()
        .and_then(|t| {
            t.lines()
                .nth(1)?
                .split_whitespace()
                .nth(3)?
                .parse::<f64>()
                .ok()
        })
        .map(|kb| kb / 1024.0 / 1024.0);
    rows.push(match free_gb {
        Some(gb) if gb >= MIN_FREE_DISK_GB => Row {
            what: "free disk",
            found: format!("{gb:.1} GB"),
            verdict: Verdict::Ok,
        },
        Some(gb) => Row {
            what: "free disk",
            found: format!("{gb:.1} GB"),
            verdict: Verdict::Warn("free space (`docker system prune`)".into()),
        },
        None => Row {
            what: "free disk",
            found: "unknown".into(),
            verdict: Verdict::Warn("`df` did not answer".into()),
        },
    });

    // One bun version everywhere.
    let pkg = fs::read_to_string(root.join("app/package.json")).unwrap_or_default();
    let pinned = package_manager_bun(&pkg);
    let dockerfile = fs::read_to_string(root.join("docker/Dockerfile")).unwrap_or_default();
    let image = dockerfile_bun(&dockerfile);
    let found = format!(
        "package.json {}, Dockerfile {}, xtask {BUN_VERSION}",
        pinned.as_deref().unwrap_or("unpinned"),
        image.as_deref().unwrap_or("unknown")
    );
    rows.push(if pinned.as_deref() == Some(BUN_VERSION) && image.as_deref() == Some(BUN_VERSION) {
        Row { what: "bun pin", found, verdict: Verdict::Ok }
    } else {
        Row { what: "bun pin", found, verdict: Verdict::Fail("use one bun version in app/package.json `packageManager`, docker/Dockerfile `BUN_VERSION` and xtask images.rs (oven-sh/bun#15288)".into()) }
    });

    // Registry, and the way around it.
    let standins =
        docker.is_ok() && images::image_exists(sh, &images::ImageSet::standin().postgres);
    rows.push(if images::registry_reachable() {
        Row {
            what: "registry",
            found: "registry-1.docker.io answers".into(),
            verdict: Verdict::Ok,
        }
    } else {
        Row {
            what: "registry",
            found: format!(
                "unreachable; stand-in images {}",
                if standins { "built" } else { "not built yet" }
            ),
            verdict: Verdict::Warn(
                "the xtask uses its registry-free stand-ins (built once, ~1 min)".into(),
            ),
        }
    });
    let ca = images::extra_ca_pem();
    let n = ca.matches("BEGIN CERTIFICATE").count();
    rows.push(Row {
        what: "extra CAs",
        found: format!("{n} passed to image builds"),
        verdict: Verdict::Ok,
    });

    let mut failed = 0;
    for r in &rows {
        let (tag, note) = match &r.verdict {
            Verdict::Ok => ("OK  ", String::new()),
            Verdict::Warn(s) => ("WARN", format!("\n        {s}")),
            Verdict::Fail(s) => {
                failed += 1;
                ("FAIL", format!("\n        fix: {s}"))
            }
        };
        println!("{tag}  {:<16} {}{note}", r.what, r.found);
    }
    if failed > 0 {
        bail!("{failed} prerequisite(s) missing");
    }
    Ok(())
}

/// `"packageManager": "bun@1.4.5"` -> `1.4.5`.
pub fn package_manager_bun(package_json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(package_json).ok()?;
    v["packageManager"]
        .as_str()?
        .strip_prefix("bun@")
        .map(String::from)
}

/// `ARG BUN_VERSION=1.4.5` -> `1.4.5`.
pub fn dockerfile_bun(dockerfile: &str) -> Option<String> {
    dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("ARG BUN_VERSION="))
        .map(|v| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_pins_one_bun_version() {
        let root = crate::util::project_root();
        let pkg = fs::read_to_string(root.join("app/package.json")).unwrap();
        let df = fs::read_to_string(root.join("docker/Dockerfile")).unwrap();
        let standin = fs::read_to_string(root.join("docker/standin/bun/Dockerfile")).unwrap();
        assert_eq!(package_manager_bun(&pkg).as_deref(), Some(BUN_VERSION));
        assert_eq!(dockerfile_bun(&df).as_deref(), Some(BUN_VERSION));
        assert_eq!(dockerfile_bun(&standin).as_deref(), Some(BUN_VERSION));
        for compose in ["docker-compose.yml", "docker-compose.prod.yml"] {
            let text = fs::read_to_string(root.join(compose)).unwrap();
            assert!(
                text.contains(&format!("oven/bun:{BUN_VERSION}")),
                "{compose} defaults to another bun"
            );
        }
    }
}
