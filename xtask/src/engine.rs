//! The Docker engine: finding it, checking it (preflight), and installing it (`provision`).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::util::{docker_all, poll, version_at_least};

/// dockerd on 2 cores answers `docker info` 2-5 s after start; a first start that also
/// initialises /var/lib/docker can take longer.
const DAEMON_START: Duration = Duration::from_secs(90);
/// Compose >= 2.37 refuses buildx < 0.17 ("compose build requires buildx 0.17 or later").
const COMPOSE_NEEDS_NEW_BUILDX: &str = "2.37";
/// Health-check `start_interval` needs Engine 25 (API 1.44); older engines ignore it and probe
/// only every `interval`, which makes every start-up several seconds slower.
pub const ENGINE_FOR_START_INTERVAL: &str = "25";
/// Where a bookworm machine gets an Engine >= 25 with matching plugins: Debian's stable suite.
/// Its versions do not drift the way testing's (forky) do.
const SIDE_SUITE: &str = "trixie";

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
    let calls: Vec<Vec<String>> = [
        vec![
            "version",
            "--format",
            "{{.Client.Version}}|{{.Server.Version}}|{{.Server.APIVersion}}",
        ],
        vec!["buildx", "version"],
        vec!["compose", "version", "--short"],
    ]
    .iter()
    .map(|c| c.iter().map(|s| s.to_string()).collect())
    .collect();
    let [version, buildx, compose]: [std::io::Result<std::process::Output>; 3] = docker_all(&calls)
        .try_into()
        .map_err(|_| anyhow::anyhow!("docker_all"))?;
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

/// Preflight, provisioning first when nothing usable is installed and this machine is one
/// `provision` knows how to set up (Debian/Ubuntu as root): the README's commands start bare.
pub fn ensure(sh: &Shell) -> Result<Versions> {
    match preflight() {
        Ok(v) => Ok(v),
        Err(e) if is_root() && OsRelease::read()?.is_debian_like() => {
            eprintln!(
                "{e:#}
provisioning a Docker engine (Debian packages) ..."
            );
            provision(sh)
        }
        Err(e) => Err(e),
    }
}

/// `cargo xtask provision`: an engine with buildx and Compose v2, installed from Debian packages
/// and started without systemd. Idempotent: a healthy setup is left alone.
pub fn provision(sh: &Shell) -> Result<Versions> {
    if let Ok(v) = preflight() {
        eprintln!("docker: {} (already provisioned)", describe(&v));
        return Ok(v);
    }
    let os = OsRelease::read()?;
    if !os.is_debian_like() || !is_root() {
        bail!(
            "no usable Docker engine, and `provision` installs one only on Debian or Ubuntu as root (this is {} {}, uid {}).\n  \
             fix: install Docker Engine >= 25 with buildx and Compose v2: https://docs.docker.com/engine/install/",
            os.id,
            os.codename,
            uid()
        );
    }
    let started = Instant::now();
    let plan = install_plan(&os);
    let missing: Vec<&str> = plan
        .all_packages()
        .into_iter()
        .filter(|p| !dpkg_installed(sh, p))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "provision: installing {} ({} {})",
            missing.join(" "),
            os.id,
            os.codename
        );
        apt_install(sh, &plan)?;
    }
    start_daemon(sh)?;
    let v = preflight().context("after installing the engine")?;
    eprintln!(
        "provision: {} ready in {:.1}s",
        describe(&v),
        started.elapsed().as_secs_f64()
    );
    if !version_at_least(&v.engine, ENGINE_FOR_START_INTERVAL) {
        eprintln!(
            "warning: engine {} < {ENGINE_FOR_START_INTERVAL}: health checks ignore start_interval, start-up is slower",
            v.engine
        );
    }
    Ok(v)
}

/// Which packages come from where. On bookworm the engine (20.10) is too old for
/// `start_interval` and its `docker-compose` is v1, so engine, client and plugins come from
/// trixie through a side apt configuration (the host's sources stay untouched); their only
/// hard dependency, libc6 >= 2.34, bookworm satisfies (2.36), and the rest (containerd, runc,
/// tini, iptables) come from the host's own suite.
#[derive(Debug, PartialEq)]
pub struct InstallPlan {
    pub host: Vec<&'static str>,
    pub side: Vec<&'static str>,
}

impl InstallPlan {
    fn all_packages(&self) -> Vec<&'static str> {
        self.host.iter().chain(&self.side).copied().collect()
    }
}

pub fn install_plan(os: &OsRelease) -> InstallPlan {
    match (os.id.as_str(), os.codename.as_str()) {
        ("debian", "bookworm") => InstallPlan {
            host: vec![
                "containerd",
                "runc",
                "tini",
                "iptables",
                "ca-certificates",
                "adduser",
            ],
            side: vec!["docker.io", "docker-cli", "docker-buildx", "docker-compose"],
        },
        ("ubuntu", _) => InstallPlan {
            host: vec!["docker.io", "docker-buildx", "docker-compose-v2"],
            side: vec![],
        },
        _ => InstallPlan {
            host: vec!["docker.io", "docker-cli", "docker-buildx", "docker-compose"],
            side: vec![],
        },
    }
}

fn apt_install(sh: &Shell, plan: &InstallPlan) -> Result<()> {
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    let host = &plan.host;
    cmd!(sh, "apt-get update -qq")
        .run()
        .context("apt-get update")?;
    cmd!(
        sh,
        "apt-get install -y -qq --no-install-recommends {host...}"
    )
    .run()
    .context("installing engine packages")?;
    if plan.side.is_empty() {
        return Ok(());
    }
    let dir = PathBuf::from(format!("/var/cache/axion-hub/apt-{SIDE_SUITE}"));
    for sub in ["lists/partial", "cache/archives/partial", "debs"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let sources = dir.join("sources.list");
    fs::write(
        &sources,
        format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian {SIDE_SUITE} main\n"
        ),
    )?;
    let opts = [
        format!("Dir::Etc::SourceList={}", sources.display()),
        "Dir::Etc::SourceParts=/nonexistent".into(),
        format!("Dir::State::Lists={}", dir.join("lists").display()),
        format!("Dir::Cache={}", dir.join("cache").display()),
        "APT::Sandbox::User=root".into(),
    ]
    .map(|o| format!("-o{o}"));
    let opts = &opts;
    cmd!(sh, "apt-get -qq {opts...} update")
        .run()
        .context("apt-get update of the side suite")?;
    let debs = dir.join("debs");
    for f in fs::read_dir(&debs)? {
        fs::remove_file(f?.path())?;
    }
    let side = &plan.side;
    {
        let _cd = sh.push_dir(&debs);
        cmd!(sh, "apt-get -qq {opts...} download {side...}")
            .run()
            .context("downloading engine packages")?;
    }
    let files: Vec<PathBuf> = fs::read_dir(&debs)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    cmd!(sh, "dpkg -i {files...}")
        .quiet()
        .run()
        .context("installing engine packages with dpkg")?;
    Ok(())
}

/// Starts `dockerd` when nothing answers. Without systemd (containers, CI sandboxes) it runs
/// detached in its own process group, so a Ctrl-C in this terminal does not stop it.
fn start_daemon(sh: &Shell) -> Result<()> {
    if daemon_answers(sh) {
        return Ok(());
    }
    let has_systemd = Path::new("/run/systemd/system").exists();
    if has_systemd {
        cmd!(sh, "systemctl start docker").run()?;
    } else {
        use std::os::unix::process::CommandExt;
        let log_path = "/var/log/dockerd.log";
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)?;
        eprintln!("provision: starting dockerd (log: {log_path})");
        Command::new("dockerd")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting dockerd")?;
    }
    poll(
        "the Docker engine to answer",
        DAEMON_START,
        Duration::from_millis(250),
        || {
            if daemon_answers(sh) {
                Ok(Some(()))
            } else {
                Ok(None)
            }
        },
    )
    .context("see /var/log/dockerd.log")
}

pub fn daemon_answers(sh: &Shell) -> bool {
    let format = "{{.ServerVersion}}";
    cmd!(sh, "docker info --format {format}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

fn dpkg_installed(sh: &Shell, pkg: &str) -> bool {
    let format = "${Status}";
    cmd!(sh, "dpkg-query -W -f={format} {pkg}")
        .quiet()
        .ignore_stderr()
        .read()
        .map(|s| s.contains("install ok installed"))
        .unwrap_or(false)
}

pub fn is_root() -> bool {
    uid() == 0
}

pub fn uid() -> u32 {
    id_of("-u")
}

pub fn gid() -> u32 {
    id_of("-g")
}

/// The real user's ids; `id` keeps the xtask free of a libc dependency.
fn id_of(flag: &str) -> u32 {
    Command::new("id")
        .arg(flag)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, Default, PartialEq)]
pub struct OsRelease {
    pub id: String,
    pub id_like: String,
    pub codename: String,
}

impl OsRelease {
    pub fn read() -> Result<OsRelease> {
        let text = fs::read_to_string("/etc/os-release").unwrap_or_default();
        Ok(Self::parse(&text))
    }
    pub fn parse(text: &str) -> OsRelease {
        let mut os = OsRelease::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').to_string();
            match k.trim() {
                "ID" => os.id = v,
                "ID_LIKE" => os.id_like = v,
                "VERSION_CODENAME" => os.codename = v,
                _ => {}
            }
        }
        os
    }
    fn is_debian_like(&self) -> bool {
        self.id == "debian" || self.id == "ubuntu" || self.id_like.split(' ').any(|i| i == "debian")
    }
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

    #[test]
    fn bookworm_side_loads_trixie_engine() {
        let os = OsRelease::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_CODENAME=bookworm\n",
        );
        let plan = install_plan(&os);
        assert!(plan.side.contains(&"docker.io") && plan.side.contains(&"docker-compose"));
        assert!(
            !plan.host.contains(&"docker-compose"),
            "bookworm's docker-compose is v1"
        );
        let ubuntu = OsRelease::parse("ID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n");
        assert!(install_plan(&ubuntu).host.contains(&"docker-compose-v2"));
        assert!(ubuntu.is_debian_like());
        assert!(!OsRelease::parse("ID=fedora\n").is_debian_like());
    }
}
