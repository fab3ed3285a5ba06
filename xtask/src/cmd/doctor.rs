//! `cargo xtask doctor`: every prerequisite with its version, OK or the fix (`--json`: one
//! report on stdout).

use std::fs;

use anyhow::{Result, bail};
use serde_json::json;
use xshell::{Shell, cmd};

use crate::{
    docker,
    engine::{self, ENGINE_FOR_START_INTERVAL},
    env_file::EnvSource,
    flags, host,
    images::{self, BUN_VERSION},
    ports,
    stack::{Ports, StackKind},
    util::version_at_least,
};

/// Below this much free disk, a cold build plus images (about 3 GB) risks "no space left".
const MIN_FREE_DISK_GB: f64 = 5.0;
const FIX_ENGINE: &str = "run `cargo xtask provision` as root (Debian/Ubuntu), or install Docker Engine >= 25 with buildx and Compose v2";

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

fn row(what: &'static str, found: impl Into<String>, verdict: Verdict) -> Row {
    Row {
        what,
        found: found.into(),
        verdict,
    }
}

impl flags::Doctor {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let root = sh.current_dir();
        let mut rows = engine_rows();
        let docker_ok = rows.iter().all(|r| !matches!(r.verdict, Verdict::Fail(_)));
        rows.extend(env_and_port_rows(sh, &root, docker_ok));
        rows.push(disk_row(sh, &root));
        rows.push(bun_pin_row(&root));
        rows.extend(image_rows(sh, docker_ok));
        if docker_ok {
            rows.push(swarm_row(sh));
            rows.extend(leftover_rows(sh));
        }
        let failed = rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Fail(_)))
            .count();
        if self.json {
            println!("{}", serde_json::to_string_pretty(&to_json(&rows))?);
        } else {
            print_rows(&rows);
        }
        if failed > 0 {
            bail!("{failed} prerequisite(s) missing");
        }
        Ok(())
    }
}

fn engine_rows() -> Vec<Row> {
    let docker = match engine::docker_path() {
        Ok(p) => row("docker CLI", p.display().to_string(), Verdict::Ok),
        Err(_) => {
            return vec![row(
                "docker CLI",
                "not on PATH",
                Verdict::Fail(FIX_ENGINE.into()),
            )];
        }
    };
    let v = match engine::versions() {
        Ok(v) => v,
        Err(e) => {
            return vec![
                docker,
                row("engine", "not answering", Verdict::Fail(format!("{e}"))),
            ];
        }
    };
    let engine_verdict = if version_at_least(&v.engine, ENGINE_FOR_START_INTERVAL) {
        Verdict::Ok
    } else {
        Verdict::Warn(format!(
            "Engine < {ENGINE_FOR_START_INTERVAL} ignores health-check start_interval: start-up is slower. Upgrade the engine"
        ))
    };
    let buildx = match &v.buildx {
        Some(b) => row("buildx", b.clone(), Verdict::Ok),
        None => row(
            "buildx",
            "missing",
            Verdict::Fail("install docker-buildx (or `cargo xtask provision`)".into()),
        ),
    };
    let compose = match &v.compose {
        Some(c) if version_at_least(c, "2.20.2") => row("compose v2", c.clone(), Verdict::Ok),
        Some(c) => row(
            "compose v2",
            c.clone(),
            Verdict::Warn("Compose < 2.20.2 ignores start_interval; upgrade".into()),
        ),
        None if which::which("docker-compose").is_ok() => row(
            "compose v2",
            "only a legacy `docker-compose` (v1)",
            Verdict::Fail(
                "install Compose v2 (`docker-compose` on Debian >= 13, `docker-compose-v2` on Ubuntu)"
                    .into(),
            ),
        ),
        None => row(
            "compose v2",
            "missing",
            Verdict::Fail("install Compose v2, or `cargo xtask provision`".into()),
        ),
    };
    let found = format!("{} (API {}), client {}", v.engine, v.api, v.client);
    vec![
        docker,
        row("engine", found, engine_verdict),
        loopback_row(&v.engine),
        buildx,
        compose,
    ]
}

/// Engines before 28 let a LAN neighbour reach ports published on 127.0.0.1 (packets to
/// 127.0.0.1 routed to the host: moby/moby#45610); the dev stack publishes db and redis there.
fn loopback_row(engine: &str) -> Row {
    let verdict = if version_at_least(engine, "28") {
        Verdict::Ok
    } else {
        Verdict::Warn(
            "Engine < 28: a host on your LAN can reach ports published on 127.0.0.1 (the dev stack's \
             db and redis; moby/moby#45610). Upgrade the engine, or keep this machine off untrusted networks"
                .into(),
        )
    };
    row("127.0.0.1 ports", format!("engine {engine}"), verdict)
}

/// What `deploy` would meet here: the engine's swarm role, and whether the kernel has IPVS
/// (the routing mesh needs it; the swarm stack's proxy does not). Information, never a failure.
fn swarm_row(sh: &Shell) -> Row {
    let ipvs = if std::path::Path::new("/proc/net/ip_vs").exists() {
        "IPVS present"
    } else {
        "no IPVS (no routing mesh here; the stack's proxy does not need it)"
    };
    let found = match crate::swarm::membership(sh, &crate::docker::Engine::configured()) {
        Ok(m) if m.manager => format!("manager of {} node(s); {ipvs}", m.nodes),
        Ok(m) if m.state == "active" => format!("worker: deploy with --manager; {ipvs}"),
        Ok(m) => format!(
            "{}: deploy with --manager, or --init; {ipvs}",
            if m.state.is_empty() {
                "unknown"
            } else {
                &m.state
            }
        ),
        Err(e) => format!("unknown ({e:#})"),
    };
    row("swarm (deploy)", found, Verdict::Ok)
}

/// The env file by the one rule, and each port it sets: free, held by our own dev stack, or
/// held by a named process.
fn env_and_port_rows(sh: &Shell, root: &std::path::Path, docker_ok: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    let env = match EnvSource::resolve(root) {
        Ok(env) if env.path.as_os_str() == ".env" => {
            rows.push(row(".env", "present", Verdict::Ok));
            env
        }
        Ok(env) => {
            rows.push(row(
                ".env",
                "missing (reading .env.example)",
                Verdict::Warn("`cargo xtask dev` creates it from .env.example".into()),
            ));
            env
        }
        Err(e) => {
            rows.push(row(".env", "unreadable", Verdict::Fail(format!("{e:#}"))));
            return rows;
        }
    };
    let dev_running = docker_ok
        && docker::containers(sh, &StackKind::Dev.project())
            .is_ok_and(|cs| cs.iter().any(|c| c.is_running()));
    let names = ["port APP_PORT", "port DB_PORT", "port REDIS_PORT"];
    for (what, (var, default)) in names.into_iter().zip(Ports::DEFAULTS) {
        rows.push(match env.port(var, default) {
            Err(e) => row(what, "invalid", Verdict::Fail(e.to_string())),
            Ok(p) if !ports::port_taken(p) => row(what, format!("{p} free"), Verdict::Ok),
            Ok(p) if dev_running => row(
                what,
                format!("{p} (held by the running dev stack)"),
                Verdict::Ok,
            ),
            Ok(p) => row(
                what,
                format!("{p} held by {}", ports::holder(p)),
                Verdict::Fail(format!("stop it, or set {var} to a free port in .env")),
            ),
        });
    }
    rows
}

fn disk_row(sh: &Shell, root: &std::path::Path) -> Row {
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
    match free_gb {
        Some(gb) if gb >= MIN_FREE_DISK_GB => row("free disk", format!("{gb:.1} GB"), Verdict::Ok),
        Some(gb) => row(
            "free disk",
            format!("{gb:.1} GB"),
            Verdict::Warn("free space (`docker system prune`)".into()),
        ),
        None => row(
            "free disk",
            "unknown",
            Verdict::Warn("`df` did not answer".into()),
        ),
    }
}

/// One bun version everywhere (oven-sh/bun#15288).
fn bun_pin_row(root: &std::path::Path) -> Row {
    let pkg = fs::read_to_string(root.join("app/package.json")).unwrap_or_default();
    let pinned = package_manager_bun(&pkg);
    let dockerfile = fs::read_to_string(root.join("docker/Dockerfile")).unwrap_or_default();
    let image = dockerfile_bun(&dockerfile);
    let found = format!(
        "package.json {}, Dockerfile {}, xtask {BUN_VERSION}",
        pinned.as_deref().unwrap_or("unpinned"),
        image.as_deref().unwrap_or("unknown")
    );
    if pinned.as_deref() == Some(BUN_VERSION) && image.as_deref() == Some(BUN_VERSION) {
        row("bun pin", found, Verdict::Ok)
    } else {
        row("bun pin", found, Verdict::Fail("use one bun version in app/package.json `packageManager`, docker/Dockerfile `BUN_VERSION` and xtask images.rs (oven-sh/bun#15288)".into()))
    }
}

/// The registry, the way around it (stand-ins), and the CAs image builds get.
fn image_rows(sh: &Shell, docker_ok: bool) -> Vec<Row> {
    let standins = docker_ok && docker::image_exists(sh, &images::ImageSet::standin().postgres);
    let registry = if images::registry_reachable() {
        row(
            "registry",
            format!("{} answers", images::REGISTRY_HOST),
            Verdict::Ok,
        )
    } else {
        row(
            "registry",
            format!(
                "unreachable; stand-in images {}",
                if standins { "built" } else { "not built yet" }
            ),
            Verdict::Warn("the xtask uses its registry-free stand-ins (built once, ~1 min)".into()),
        )
    };
    let n = host::extra_ca_pem().matches("BEGIN CERTIFICATE").count();
    vec![
        registry,
        row(
            "extra CAs",
            format!("{n} passed to image builds"),
            Verdict::Ok,
        ),
    ]
}

/// Stacks left by runs that died, and how old the stand-ins are.
fn leftover_rows(sh: &Shell) -> Vec<Row> {
    let mut rows = vec![match crate::reap::find(sh) {
        Ok(o) if o.is_empty() => row("left-over runs", "none", Verdict::Ok),
        Ok(o) => row(
            "left-over runs",
            o.iter().map(|o| o.summary()).collect::<Vec<_>>().join("; "),
            Verdict::Warn("runs that died without their teardown; `cargo xtask clean` (or any dev/verify/ci/bench) removes them".into()),
        ),
        Err(e) => row("left-over runs", "unknown", Verdict::Warn(format!("{e:#}"))),
    }];
    let ages = crate::standin::ages(sh);
    let built: Vec<String> = ages
        .iter()
        .filter_map(|(t, a)| a.map(|a| format!("{t} {:.1} days", a.as_secs_f64() / 86_400.0)))
        .collect();
    if !built.is_empty() {
        let max = crate::standin::MAX_AGE;
        let old = ages.iter().any(|(_, a)| a.is_some_and(|a| a > max));
        rows.push(row(
            "stand-in age",
            built.join(", "),
            if old {
                Verdict::Warn("older than 7 days: the next dev/verify/ci rebuilds them (or `cargo xtask provision --refresh`)".into())
            } else {
                Verdict::Ok
            },
        ));
    }
    rows
}

fn print_rows(rows: &[Row]) {
    for r in rows {
        let (tag, note) = match &r.verdict {
            Verdict::Ok => ("OK  ", String::new()),
            Verdict::Warn(s) => ("WARN", format!("\n        {s}")),
            Verdict::Fail(s) => ("FAIL", format!("\n        fix: {s}")),
        };
        println!("{tag}  {:<16} {}{note}", r.what, r.found);
    }
}

fn to_json(rows: &[Row]) -> serde_json::Value {
    let failed = rows.iter().any(|r| matches!(r.verdict, Verdict::Fail(_)));
    let checks: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let (status, fix) = match &r.verdict {
                Verdict::Ok => ("ok", None),
                Verdict::Warn(s) => ("warn", Some(s)),
                Verdict::Fail(s) => ("fail", Some(s)),
            };
            json!({"check": r.what, "found": r.found, "status": status, "fix": fix})
        })
        .collect();
    json!({"verdict": if failed { "fail" } else { "pass" }, "checks": checks})
}

/// `"packageManager": "bun@1.4.5"` -> `1.4.5`.
fn package_manager_bun(package_json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(package_json).ok()?;
    v["packageManager"]
        .as_str()?
        .strip_prefix("bun@")
        .map(String::from)
}

/// `ARG BUN_VERSION=1.4.5` -> `1.4.5`.
fn dockerfile_bun(dockerfile: &str) -> Option<String> {
    dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("ARG BUN_VERSION="))
        .map(|v| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_before_28_are_warned_about_loopback_ports() {
        assert!(
            matches!(loopback_row("26.1.5+dfsg1").verdict, Verdict::Warn(w) if w.contains("moby/moby#45610"))
        );
        assert!(matches!(loopback_row("28.0.1").verdict, Verdict::Ok));
    }

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
