//! The registry-free stand-in images: minimal Debian roots (mmdebstrap piped into `docker
//! import`), then bun, PostgreSQL and Redis built on them, and for `verify --swarm` a
//! Docker-in-Docker node, a registry and haproxy. Built once, rebuilt when their recipe changes
//! (a content hash in a label).

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result, bail};
use xshell::Shell;

use crate::docker::build::Build;
use crate::{
    docker::{self},
    host,
    images::{ImageSet, STANDIN},
    util::{secs, tail},
};

const RECIPE_LABEL: &str = "org.axion-hub.recipe";
/// Stand-ins are rebuilt (with a fresh Debian root and no layer cache, so apt takes the
/// suite's current packages) once they are older than this: Debian publishes security
/// updates within days of a disclosure, and a rebuild costs about a minute a week.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The files of a stand-in's recipe, in docker/standin/<name>/ (those present).
const RECIPE_FILES: [&str; 3] = ["Dockerfile", "docker-entrypoint.sh", "config.yml"];

/// The swarm proof's own stand-ins (`verify --swarm`), built only when it runs.
pub const SWARM_NODE: &str = "axion-hub-standin/swarm-node:trixie";
pub const REGISTRY: &str = "axion-hub-standin/registry:2";
pub const HAPROXY: &str = "axion-hub-standin/haproxy:3.0";

struct Standin {
    name: &'static str,
    base: &'static str,
    tags: Vec<String>,
}

fn swarm_standins() -> Vec<Standin> {
    [
        ("swarm-node", SWARM_NODE),
        ("registry", REGISTRY),
        ("haproxy", HAPROXY),
    ]
    .into_iter()
    .map(|(name, tag)| Standin {
        name,
        base: "trixie",
        tags: vec![tag.to_string()],
    })
    .collect()
}

fn standins() -> Vec<Standin> {
    let s = ImageSet::standin();
    vec![
        Standin {
            name: "bun",
            base: "trixie",
            tags: vec![s.bun, s.bun_slim],
        },
        Standin {
            name: "postgres",
            base: "trixie",
            tags: vec![s.postgres],
        },
        Standin {
            name: "redis",
            base: "bookworm",
            tags: vec![s.redis],
        },
    ]
}

/// A stand-in to (re)build, with its recipe's hash.
struct Stale {
    standin: Standin,
    dir: PathBuf,
    hash: String,
}

/// Builds what is missing, stale or older than MAX_AGE and reuses the rest: a warm call costs
/// one `docker image inspect`.
pub fn ensure(sh: &Shell) -> Result<()> {
    let (stale, too_old) = stale(sh, standins(), false)?;
    rebuild(sh, stale, too_old)
}

/// The swarm proof's stand-ins (node, registry, haproxy), the same way.
pub fn ensure_swarm(sh: &Shell) -> Result<()> {
    let (stale, too_old) = stale(sh, swarm_standins(), false)?;
    rebuild(sh, stale, too_old)
}

/// Only the named swarm stand-ins (`deploy` needs haproxy alone).
pub fn ensure_only(sh: &Shell, names: &[&str]) -> Result<()> {
    let set = swarm_standins()
        .into_iter()
        .filter(|s| names.contains(&s.name))
        .collect();
    let (stale, too_old) = stale(sh, set, false)?;
    rebuild(sh, stale, too_old)
}

/// `provision --refresh`: every stand-in and its Debian root rebuilt now, without cache.
pub fn refresh(sh: &Shell) -> Result<()> {
    let all = standins().into_iter().chain(swarm_standins()).collect();
    let (stale, _) = stale(sh, all, true)?;
    rebuild(sh, stale, true)
}

fn rebuild(sh: &Shell, stale: Vec<Stale>, fresh_bases: bool) -> Result<()> {
    if stale.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let mut suites: Vec<&str> = stale.iter().map(|s| s.standin.base).collect();
    suites.sort();
    suites.dedup();
    if fresh_bases {
        eprintln!(
            "stand-in: rebuilding with the Debian suites' current packages (older than {} days, or asked)",
            MAX_AGE.as_secs() / 86_400
        );
        for suite in &suites {
            docker::remove_image(sh, &format!("{STANDIN}/debian:{suite}"));
        }
    }
    // Where a registry answers and our Debian roots are missing (GitHub's runners: no root for
    // mmdebstrap), Debian's own images are the base; our mmdebstrap roots otherwise.
    let upstream_bases = suites
        .iter()
        .any(|s| !docker::image_exists(sh, &format!("{STANDIN}/debian:{s}")))
        && crate::images::registry_reachable();
    if !upstream_bases {
        ensure_debian_bases(sh, &suites)?;
    }
    build(sh, &stale, fresh_bases, upstream_bases)?;
    eprintln!("stand-in images ready in {}", secs(started.elapsed()));
    Ok(())
}

/// Each stand-in tag with its age, None where missing: what `doctor` shows.
pub fn ages(sh: &Shell) -> Vec<(String, Option<Duration>)> {
    let tags: Vec<String> = standins().into_iter().flat_map(|s| s.tags).collect();
    let created = docker::image_lines(sh, "{{.Created}}", &tags);
    tags.into_iter()
        .zip(created)
        .map(|(t, c)| {
            let age = c
                .and_then(|c| docker::container::parse_rfc3339(c.trim()))
                .and_then(|c| SystemTime::now().duration_since(c).ok());
            (t, age)
        })
        .collect()
}

/// The stand-ins whose recipe label differs from their recipe's hash or that are missing (all
/// of them when `all`), and whether any is older than MAX_AGE (then all are rebuilt).
fn stale(sh: &Shell, set: Vec<Standin>, all: bool) -> Result<(Vec<Stale>, bool)> {
    let root = sh.current_dir();
    let all_tags: Vec<String> = set.iter().flat_map(|s| s.tags.clone()).collect();
    let format = format!("{}|{{{{.Created}}}}", docker::image_label(RECIPE_LABEL));
    let lines = docker::image_lines(sh, &format, &all_tags);
    let too_old = lines.iter().flatten().any(|l| {
        l.split_once('|')
            .and_then(|(_, c)| docker::container::parse_rfc3339(c.trim()))
            .and_then(|c| SystemTime::now().duration_since(c).ok())
            .is_some_and(|age| age > MAX_AGE)
    });
    let mut labels = lines
        .into_iter()
        .map(|l| l.map(|l| l.split('|').next().unwrap_or("").to_string()));
    let mut out = Vec::new();
    for s in set {
        let dir = root.join("docker/standin").join(s.name);
        let mut recipe = Vec::new();
        for f in RECIPE_FILES {
            let path = dir.join(f);
            if f != "Dockerfile" && !path.exists() {
                continue;
            }
            recipe.extend(fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
        }
        recipe.extend(s.base.as_bytes());
        let hash = format!("{:016x}", fnv1a(&recipe));
        // Take this image's labels whole (`all` alone would stop early and shift the rest).
        let mine: Vec<Option<String>> = labels.by_ref().take(s.tags.len()).collect();
        if all || too_old || !mine.iter().all(|l| l.as_deref() == Some(hash.as_str())) {
            out.push(Stale {
                standin: s,
                dir,
                hash,
            });
        }
    }
    Ok((out, too_old))
}

/// `docker build` of a stand-in on `base` (ours, or Debian's own with `--pull`).
fn stand_in_build(
    s: &Standin,
    hash: &str,
    ctx: &Path,
    extra_ca: &Path,
    no_cache: bool,
    upstream_base: bool,
) -> Build {
    let base = if upstream_base {
        format!("debian:{}", s.base)
    } else {
        format!("{STANDIN}/debian:{}", s.base)
    };
    Build {
        tags: s.tags.clone(),
        build_args: vec![("BASE".into(), base)],
        secrets: vec![format!("id=extra_ca,src={}", extra_ca.display())],
        labels: vec![format!("{RECIPE_LABEL}={hash}")],
        no_cache,
        pull: upstream_base,
        plain_progress: true,
        context: ctx.display().to_string(),
        ..Default::default()
    }
}

/// Builds the stale stand-ins in parallel, each from a context of its recipe; the host's extra
/// CAs reach their downloads as a build secret.
fn build(sh: &Shell, stale: &[Stale], no_cache: bool, upstream_base: bool) -> Result<()> {
    let work = crate::paths::work_dir(&sh.current_dir(), "standin");
    let extra_ca = host::extra_ca_file(&sh.current_dir())?;
    let mut running = Vec::new();
    for Stale {
        standin: s,
        dir,
        hash,
    } in stale
    {
        let ctx = work.join(s.name);
        let _ = fs::remove_dir_all(&ctx);
        fs::create_dir_all(&ctx)?;
        for f in RECIPE_FILES {
            if dir.join(f).exists() {
                fs::copy(dir.join(f), ctx.join(f))?;
            }
        }
        let log = work.join(format!("{}.log", s.name));
        eprintln!(
            "stand-in: building {} (log: {})",
            s.tags.join(", "),
            log.display()
        );
        let build = stand_in_build(s, hash, &ctx, &extra_ca, no_cache, upstream_base);
        let handle = build
            .expr()
            .stderr_to_stdout()
            .stdout_path(&log)
            .unchecked()
            .start()?;
        running.push((s.name, handle, log, Instant::now()));
    }
    for (name, handle, log, t) in running {
        let out = handle.wait()?;
        if !out.status.success() {
            let text = fs::read_to_string(&log).unwrap_or_default();
            bail!(
                "building the {name} stand-in image failed:\n{}\n(full log: {})",
                tail(&text, 25),
                log.display()
            );
        }
        eprintln!("stand-in: {name} built in {}", secs(t.elapsed()));
    }
    Ok(())
}

/// Minimal Debian root filesystems from deb.debian.org, imported as images: the only way to a
/// base image when no container registry answers.
fn ensure_debian_bases(sh: &Shell, suites: &[&str]) -> Result<()> {
    let missing: Vec<&str> = suites
        .iter()
        .copied()
        .filter(|s| !docker::image_exists(sh, &format!("{STANDIN}/debian:{s}")))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if which::which("mmdebstrap").is_err() {
        if !host::is_root() {
            bail!(
                "building the stand-in base images needs mmdebstrap.\n  fix: sudo apt-get install mmdebstrap"
            );
        }
        eprintln!("stand-in: installing mmdebstrap");
        crate::install::apt_install(sh, &["mmdebstrap"])?;
    }
    let mut running = Vec::new();
    for suite in missing {
        eprintln!("stand-in: creating {STANDIN}/debian:{suite} with mmdebstrap");
        let import = docker::build::import(
            &format!("{STANDIN}/debian:{suite}"),
            &[
                "CMD [\"bash\"]",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ],
        );
        let handle = duct::cmd("mmdebstrap", mmdebstrap_args(suite))
            .pipe(import)
            .stdout_null()
            .start()?;
        running.push((suite, handle, Instant::now()));
    }
    for (suite, handle, t) in running {
        handle
            .wait()
            .with_context(|| format!("mmdebstrap {suite} | docker import"))?;
        eprintln!("stand-in: debian:{suite} in {}", secs(t.elapsed()));
    }
    Ok(())
}

pub fn mmdebstrap_args(suite: &str) -> Vec<String> {
    let mirror = std::env::var("DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org".into());
    let clean = r#"printf "%s\n" "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true\"; };" "Dir::Cache::pkgcache \"\"; Dir::Cache::srcpkgcache \"\";" > "$1/etc/apt/apt.conf.d/docker-clean""#;
    let mut a: Vec<String> = [
        "--quiet",
        "--variant=minbase",
        "--mode=root",
        "--aptopt=APT::Install-Recommends \"false\"",
        "--aptopt=Acquire::Languages \"none\"",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    ]
    .map(String::from)
    .into();
    a.push(format!("--customize-hook={clean}"));
    a.push(r#"--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log "$1"/var/log/apt/*"#.into());
    a.extend([
        suite.to_string(),
        "-".into(),
        format!("deb {mirror}/debian {suite} main"),
        format!("deb {mirror}/debian {suite}-updates main"),
        format!("deb {mirror}/debian-security {suite}-security main"),
    ]);
    a
}

/// FNV-1a: a stable content hash for recipe labels without a hashing crate (std's hasher is
/// not guaranteed stable across Rust releases).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn mmdebstrap_writes_to_stdout() {
        let a = mmdebstrap_args("trixie");
        let i = a.iter().position(|x| x == "trixie").unwrap();
        assert_eq!(a[i + 1], "-");
        assert!(a.contains(&"--variant=minbase".to_string()));
    }

    #[test]
    fn build_argv_labels_the_recipe() {
        let s = &standins()[2];
        let a = stand_in_build(
            s,
            "00ff",
            Path::new("/ctx"),
            Path::new("/ca.pem"),
            false,
            false,
        )
        .argv()
        .join(" ");
        assert_eq!(
            a,
            "build --progress=plain -t axion-hub-standin/redis:7 --build-arg BASE=axion-hub-standin/debian:bookworm \
             --secret id=extra_ca,src=/ca.pem --label org.axion-hub.recipe=00ff /ctx"
        );
        let up = stand_in_build(
            s,
            "00ff",
            Path::new("/ctx"),
            Path::new("/ca.pem"),
            false,
            true,
        )
        .argv();
        assert!(up.contains(&"--pull".to_string()));
        assert!(up.contains(&"BASE=debian:bookworm".to_string()), "{up:?}");
    }
}
