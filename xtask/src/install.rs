//! Provisioning: a Docker engine with buildx and Compose v2 from Debian packages, started
//! without systemd where there is none. What `provision` and a bare machine's first command do.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::{
    engine,
    host::{self, OsRelease},
    util::{poll, version_at_least},
};

/// dockerd on 2 cores answers `docker info` 2-5 s after start; a first start that also
/// initialises /var/lib/docker can take longer.
const DAEMON_START: Duration = Duration::from_secs(90);
/// Where a bookworm machine gets an Engine >= 25 with matching plugins: Debian's stable suite.
/// Its versions do not drift the way testing's (forky) do.
const SIDE_SUITE: &str = "trixie";

/// Preflight, provisioning first when nothing usable is installed and this machine is one
/// `provision` knows how to set up (Debian/Ubuntu as root): the README's commands start bare.
pub fn ensure(sh: &Shell) -> Result<engine::Versions> {
    match engine::preflight() {
        Ok(v) => Ok(v),
        Err(e) if host::is_root() && OsRelease::read().is_debian_like() => {
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
pub fn provision(sh: &Shell) -> Result<engine::Versions> {
    if let Ok(v) = engine::preflight() {
        eprintln!("docker: {} (already provisioned)", engine::describe(&v));
        return Ok(v);
    }
    let os = OsRelease::read();
    if !os.is_debian_like() || !host::is_root() {
        bail!(
            "no usable Docker engine, and `provision` installs one only on Debian or Ubuntu as root (this is {} {}, uid {}).\n  \
             fix: install Docker Engine >= 25 with buildx and Compose v2: https://docs.docker.com/engine/install/",
            os.id,
            os.codename,
            host::uid()
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
        apt_install(sh, &plan.host).context("installing engine packages")?;
        side_install(sh, &plan.side)?;
    }
    start_daemon(sh)?;
    let v = engine::preflight().context("after installing the engine")?;
    eprintln!(
        "provision: {} ready in {:.1}s",
        engine::describe(&v),
        started.elapsed().as_secs_f64()
    );
    if !version_at_least(&v.engine, engine::ENGINE_FOR_START_INTERVAL) {
        eprintln!(
            "warning: engine {} < {}: health checks ignore start_interval, start-up is slower",
            v.engine,
            engine::ENGINE_FOR_START_INTERVAL
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

/// Installs packages from SIDE_SUITE through a side apt configuration: the host's sources stay
/// untouched, and dpkg installs the downloaded .debs.
fn side_install(sh: &Shell, side: &[&str]) -> Result<()> {
    if side.is_empty() {
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

/// `apt-get install` of host packages, refreshing the package lists only when the install
/// fails without (a fresh machine has none; a warm one saves the update's ~10 s). Another
/// install holding dpkg's lock (`ci` installs Chromium while the stand-ins need mmdebstrap) is
/// waited for.
pub fn apt_install(sh: &Shell, pkgs: &[&str]) -> Result<()> {
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    let wait = ["-o", "DPkg::Lock::Timeout=300"];
    let install = || {
        cmd!(
            sh,
            "apt-get install -y -qq --no-install-recommends {wait...} {pkgs...}"
        )
        .run()
    };
    if install().is_ok() {
        return Ok(());
    }
    cmd!(sh, "apt-get update -qq {wait...}")
        .run()
        .context("apt-get update")?;
    install().with_context(|| format!("apt-get install {}", pkgs.join(" ")))?;
    Ok(())
}

/// Starts `dockerd` when nothing answers. Without systemd (containers, CI sandboxes) it runs
/// detached in its own process group, so a Ctrl-C in this terminal does not stop it.
fn start_daemon(sh: &Shell) -> Result<()> {
    if crate::docker::daemon_answers(sh) {
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
            if crate::docker::daemon_answers(sh) {
                Ok(Some(()))
            } else {
                Ok(None)
            }
        },
    )
    .context("see /var/log/dockerd.log")
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
