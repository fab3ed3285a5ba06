//! Which base images the stack uses: upstream ones, or the project's registry-free stand-ins,
//! built once from Debian packages (mmdebstrap) and the npm registry's bun, then reused.

use std::{
    fs,
    net::{TcpStream, ToSocketAddrs},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::{env_file::EnvFile, flags::ImageChoice, util::secs};

/// Pinned once for the host lockfile (`packageManager` in app/package.json) and the images.
pub const BUN_VERSION: &str = "1.4.5";
/// Stand-ins live under their own name: tagging them `postgres:17` would silently replace the
/// image other projects on the machine use.
const STANDIN: &str = "axion-hub-standin";
const RECIPE_LABEL: &str = "org.axion-hub.recipe";
/// DNS plus a TCP handshake to the registry: enough to tell "no registry here" from "maybe".
const REGISTRY_PROBE: Duration = Duration::from_secs(3);
const REGISTRY_HOST: &str = "registry-1.docker.io";

/// The four base images, as the variables docker-compose.yml and the Dockerfile read.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub bun: String,
    pub bun_slim: String,
    pub postgres: String,
    pub redis: String,
    pub standin: bool,
}

impl ImageSet {
    pub fn upstream() -> ImageSet {
        ImageSet {
            bun: format!("oven/bun:{BUN_VERSION}"),
            bun_slim: format!("oven/bun:{BUN_VERSION}-slim"),
            postgres: "postgres:17-alpine".into(),
            redis: "redis:7-alpine".into(),
            standin: false,
        }
    }
    pub fn standin() -> ImageSet {
        ImageSet {
            bun: format!("{STANDIN}/bun:{BUN_VERSION}"),
            bun_slim: format!("{STANDIN}/bun:{BUN_VERSION}-slim"),
            postgres: format!("{STANDIN}/postgres:17"),
            redis: format!("{STANDIN}/redis:7"),
            standin: true,
        }
    }
    /// Environment for compose: (variable, image).
    pub fn env(&self) -> [(&'static str, &str); 4] {
        [
            ("BUN_IMAGE", self.bun.as_str()),
            ("BUN_SLIM_IMAGE", self.bun_slim.as_str()),
            ("POSTGRES_IMAGE", self.postgres.as_str()),
            ("REDIS_IMAGE", self.redis.as_str()),
        ]
    }
    /// A person's overrides (process environment first, then `.env`) win over our choice.
    pub fn with_overrides(mut self, env: &EnvFile) -> ImageSet {
        for (var, slot) in [
            ("BUN_IMAGE", &mut self.bun),
            ("BUN_SLIM_IMAGE", &mut self.bun_slim),
            ("POSTGRES_IMAGE", &mut self.postgres),
            ("REDIS_IMAGE", &mut self.redis),
        ] {
            if let Some(v) = std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| env.get(var).map(String::from))
            {
                *slot = v;
            }
        }
        self
    }
}

/// Resolves `--standin` / `--upstream` / auto. Auto keeps upstream images when they are already
/// here or a registry answers, and otherwise says loudly that it switches to stand-ins.
pub fn choose(sh: &Shell, choice: ImageChoice, env: &EnvFile) -> Result<ImageSet> {
    let choice = match choice {
        ImageChoice::Auto => match std::env::var("AXION_IMAGES").as_deref() {
            Ok("standin") => ImageChoice::Standin,
            Ok("upstream") => ImageChoice::Upstream,
            Ok("") | Ok("auto") | Err(_) => ImageChoice::Auto,
            Ok(other) => bail!("AXION_IMAGES={other}: expected standin, upstream or auto"),
        },
        c => c,
    };
    let set = match choice {
        ImageChoice::Upstream => ImageSet::upstream(),
        ImageChoice::Standin => {
            ensure_standins(sh)?;
            ImageSet::standin()
        }
        ImageChoice::Auto => {
            let up = ImageSet::upstream().with_overrides(env);
            let present = [&up.bun, &up.bun_slim, &up.postgres, &up.redis]
                .iter()
                .all(|i| image_exists(sh, i));
            if present || registry_reachable() {
                up
            } else {
                eprintln!(
                    "\n!!! No container registry answers ({REGISTRY_HOST}:443) and the upstream images are not here.\n\
                     !!! Using the project's registry-free stand-in images ({STANDIN}/*), built once from Debian\n\
                     !!! packages and the npm registry. Pass --upstream to insist on upstream images.\n"
                );
                ensure_standins(sh)?;
                ImageSet::standin()
            }
        }
    };
    Ok(set.with_overrides(env))
}

pub fn registry_reachable() -> bool {
    let Ok(mut addrs) = (REGISTRY_HOST, 443).to_socket_addrs() else {
        return false;
    };
    addrs
        .next()
        .is_some_and(|a| TcpStream::connect_timeout(&a, REGISTRY_PROBE).is_ok())
}

pub fn image_exists(sh: &Shell, image: &str) -> bool {
    cmd!(sh, "docker image inspect --format x {image}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// Sizes in bytes as the engine reports them, in one call (0 where an image is missing).
pub fn image_sizes(sh: &Shell, images: &[String]) -> Vec<u64> {
    let format = "{{.Size}}";
    let all = cmd!(sh, "docker image inspect --format {format} {images...}")
        .quiet()
        .ignore_stderr()
        .ignore_status()
        .read()
        .unwrap_or_default();
    let sizes: Vec<u64> = all.lines().filter_map(|l| l.trim().parse().ok()).collect();
    if sizes.len() == images.len() {
        sizes
    } else {
        vec![0; images.len()]
    }
}

/// The recipe labels of several images in one `docker image inspect` (None where missing).
fn image_labels(sh: &Shell, images: &[String]) -> Vec<Option<String>> {
    let format = format!("{{{{index .Config.Labels \"{RECIPE_LABEL}\"}}}}");
    if let Ok(all) = cmd!(sh, "docker image inspect --format {format} {images...}")
        .quiet()
        .ignore_stderr()
        .read()
    {
        let lines: Vec<Option<String>> = all.lines().map(|l| Some(l.to_string())).collect();
        if lines.len() == images.len() {
            return lines;
        }
    }
    // Some image is missing: ask one by one to know which.
    images
        .iter()
        .map(|i| {
            cmd!(sh, "docker image inspect --format {format} {i}")
                .quiet()
                .ignore_stderr()
                .read()
                .ok()
        })
        .collect()
}

/// The CAs this host trusts beyond the distribution's (a TLS-intercepting proxy's, a corporate
/// root), as one PEM bundle. Images that download over HTTPS need them too.
pub fn extra_ca_pem() -> String {
    let mut files: Vec<PathBuf> = Vec::new();
    collect_crts(Path::new("/usr/local/share/ca-certificates"), &mut files);
    if let Ok(extra) = std::env::var("AXION_EXTRA_CA_CERTS") {
        files.push(PathBuf::from(extra));
    }
    files.sort();
    files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .filter(|s| s.contains("BEGIN CERTIFICATE"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn collect_crts(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_crts(&p, out);
        } else if p.extension().is_some_and(|x| x == "crt") {
            out.push(p);
        }
    }
}

struct Standin {
    name: &'static str,
    base: &'static str,
    tags: Vec<String>,
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

/// Builds what is missing or stale (its recipe label differs from the recipe's hash) and
/// reuses the rest: a warm call costs a few `docker image inspect`s.
pub fn ensure_standins(sh: &Shell) -> Result<()> {
    let started = Instant::now();
    let ca = extra_ca_pem();
    let root = sh.current_dir();
    // One `docker image inspect` for every tag when all exist (the usual, warm case).
    let all_tags: Vec<String> = standins().into_iter().flat_map(|s| s.tags).collect();
    let mut labels = image_labels(sh, &all_tags).into_iter();
    let mut plans = Vec::new();
    for s in standins() {
        let dir = root.join("docker/standin").join(s.name);
        let mut recipe = Vec::new();
        for f in ["Dockerfile", "docker-entrypoint.sh"] {
            recipe.extend(
                fs::read(dir.join(f))
                    .with_context(|| format!("reading {}", dir.join(f).display()))?,
            );
        }
        recipe.extend(ca.as_bytes());
        recipe.extend(s.base.as_bytes());
        let hash = format!("{:016x}", fnv1a(&recipe));
        // Take this image's labels whole (`all` alone would stop early and shift the rest).
        let mine: Vec<Option<String>> = labels.by_ref().take(s.tags.len()).collect();
        let fresh = mine.iter().all(|l| l.as_deref() == Some(hash.as_str()));
        if !fresh {
            plans.push((s, dir, hash));
        }
    }
    if plans.is_empty() {
        return Ok(());
    }
    let mut suites: Vec<&str> = plans.iter().map(|(s, _, _)| s.base).collect();
    suites.dedup();
    ensure_debian_bases(sh, &suites)?;

    let work = root.join("target/xtask/standin");
    let mut running = Vec::new();
    for (s, dir, hash) in &plans {
        let ctx = work.join(s.name);
        let _ = fs::remove_dir_all(&ctx);
        fs::create_dir_all(ctx.join("extra-ca"))?;
        for f in ["Dockerfile", "docker-entrypoint.sh"] {
            fs::copy(dir.join(f), ctx.join(f))?;
        }
        fs::write(ctx.join("extra-ca/extra.crt"), &ca)?;
        let mut args: Vec<String> = vec!["build".into(), "--progress=plain".into()];
        for t in &s.tags {
            args.extend(["-t".into(), t.clone()]);
        }
        args.extend([
            "--label".into(),
            format!("{RECIPE_LABEL}={hash}"),
            "--build-arg".into(),
            format!("BASE={STANDIN}/debian:{}", s.base),
            ctx.display().to_string(),
        ]);
        let log = work.join(format!("{}.log", s.name));
        eprintln!(
            "stand-in: building {} (log: {})",
            s.tags.join(", "),
            log.display()
        );
        let handle = duct::cmd("docker", &args)
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
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            bail!(
                "building the {name} stand-in image failed:\n{}\n(full log: {})",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                log.display()
            );
        }
        eprintln!("stand-in: {name} built in {}", secs(t.elapsed()));
    }
    eprintln!("stand-in images ready in {}", secs(started.elapsed()));
    Ok(())
}

/// Minimal Debian root filesystems from deb.debian.org, imported as images: the only way to a
/// base image when no container registry answers.
fn ensure_debian_bases(sh: &Shell, suites: &[&str]) -> Result<()> {
    let missing: Vec<&str> = suites
        .iter()
        .copied()
        .filter(|s| !image_exists(sh, &format!("{STANDIN}/debian:{s}")))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if which::which("mmdebstrap").is_err() {
        if !crate::engine::is_root() {
            bail!(
                "building the stand-in base images needs mmdebstrap.\n  fix: sudo apt-get install mmdebstrap"
            );
        }
        eprintln!("stand-in: installing mmdebstrap");
        let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
        cmd!(
            sh,
            "apt-get install -y -qq --no-install-recommends mmdebstrap"
        )
        .run()
        .or_else(|_| {
            cmd!(sh, "apt-get update -qq").run()?;
            cmd!(
                sh,
                "apt-get install -y -qq --no-install-recommends mmdebstrap"
            )
            .run()
        })?;
    }
    let mut running = Vec::new();
    for suite in missing {
        let t = Instant::now();
        eprintln!("stand-in: creating {STANDIN}/debian:{suite} with mmdebstrap");
        let handle = duct::cmd("mmdebstrap", mmdebstrap_args(suite))
            .pipe(duct::cmd(
                "docker",
                [
                    "import",
                    "--change",
                    "CMD [\"bash\"]",
                    "--change",
                    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "-",
                    &format!("{STANDIN}/debian:{suite}"),
                ],
            ))
            .stdout_null()
            .start()?;
        running.push((suite, handle, t));
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
    fn standins_never_take_upstream_names() {
        let s = ImageSet::standin();
        for (_, image) in s.env() {
            assert!(image.starts_with("axion-hub-standin/"), "{image}");
        }
        assert_eq!(ImageSet::upstream().bun, format!("oven/bun:{BUN_VERSION}"));
        assert_eq!(
            ImageSet::upstream().bun_slim,
            format!("oven/bun:{BUN_VERSION}-slim")
        );
    }

    #[test]
    fn dotenv_overrides_win() {
        let env = EnvFile::parse("POSTGRES_IMAGE=postgres:17.2-bookworm\n");
        let set = ImageSet::standin().with_overrides(&env);
        assert_eq!(set.postgres, "postgres:17.2-bookworm");
        assert_eq!(set.redis, "axion-hub-standin/redis:7");
    }

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
}
