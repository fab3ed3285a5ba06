//! Which base images the stacks use: the upstream ones, or the project's registry-free
//! stand-ins (`standin` builds them). One resolution serves a real run and `--dry-run`.

use std::{
    net::{TcpStream, ToSocketAddrs},
    time::Duration,
};

use anyhow::{Result, bail};
use xshell::Shell;

use crate::{docker, env_file::EnvSource};

/// Which base images a run uses: the upstream ones when a registry answers (`Auto`), or the
/// registry-free stand-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageChoice {
    #[default]
    Auto,
    Standin,
    Upstream,
}

/// The Dockerfile's stages, in build order.
pub const STAGES: [&str; 5] = ["base", "dev", "deps", "builder", "runner"];

/// Pinned once for the host lockfile (`packageManager` in app/package.json) and the images.
pub const BUN_VERSION: &str = "1.4.5";
/// Stand-ins live under their own name: tagging them `postgres:17` would silently replace the
/// image other projects on the machine use.
pub const STANDIN: &str = "axion-hub-standin";
/// DNS plus a TCP handshake to the registry: enough to tell "no registry here" from "maybe".
const REGISTRY_PROBE: Duration = Duration::from_secs(3);
pub const REGISTRY_HOST: &str = "registry-1.docker.io";
/// The variables docker-compose.yml and the Dockerfile read, in `ImageSet::env` order.
const VARS: [&str; 4] = [
    "BUN_IMAGE",
    "BUN_SLIM_IMAGE",
    "POSTGRES_IMAGE",
    "REDIS_IMAGE",
];

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
        let [b, s, p, r] = VARS;
        [
            (b, self.bun.as_str()),
            (s, self.bun_slim.as_str()),
            (p, self.postgres.as_str()),
            (r, self.redis.as_str()),
        ]
    }
    pub fn all(&self) -> [String; 4] {
        [
            self.bun.clone(),
            self.bun_slim.clone(),
            self.postgres.clone(),
            self.redis.clone(),
        ]
    }
    /// A person's overrides (process environment first, then the env file) win over our choice.
    pub fn with_overrides(mut self, env: &EnvSource) -> ImageSet {
        let slots = [
            &mut self.bun,
            &mut self.bun_slim,
            &mut self.postgres,
            &mut self.redis,
        ];
        for (var, slot) in VARS.iter().zip(slots) {
            if let Some(v) = env.get(var) {
                *slot = v;
            }
        }
        self
    }
}

/// The image set and why it was chosen (reports and dry runs say it).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub set: ImageSet,
    pub reason: String,
}

/// `--standin`/`--upstream` win; otherwise AXION_IMAGES; otherwise auto.
pub fn effective_choice(flag: ImageChoice) -> Result<ImageChoice> {
    if flag != ImageChoice::Auto {
        return Ok(flag);
    }
    match std::env::var("AXION_IMAGES").as_deref() {
        Ok("standin") => Ok(ImageChoice::Standin),
        Ok("upstream") => Ok(ImageChoice::Upstream),
        Ok("") | Ok("auto") | Err(_) => Ok(ImageChoice::Auto),
        Ok(other) => bail!("AXION_IMAGES={other}: expected standin, upstream or auto"),
    }
}

/// The decision itself. Auto keeps upstream images when they are already here or a registry
/// answers. `upstream_present` is None where it was not looked at (a dry run calls no docker).
pub fn resolve(
    choice: ImageChoice,
    env: &EnvSource,
    upstream_present: Option<bool>,
    registry: impl FnOnce() -> bool,
) -> Resolution {
    let (set, reason) = match choice {
        ImageChoice::Upstream => (
            ImageSet::upstream(),
            "asked for (--upstream or AXION_IMAGES)",
        ),
        ImageChoice::Standin => (ImageSet::standin(), "asked for (--standin or AXION_IMAGES)"),
        ImageChoice::Auto if upstream_present == Some(true) => {
            (ImageSet::upstream(), "auto: the upstream images are here")
        }
        ImageChoice::Auto if registry() => (ImageSet::upstream(), "auto: a registry answers"),
        ImageChoice::Auto => (
            ImageSet::standin(),
            "auto: no registry answers and the upstream images are not here",
        ),
    };
    let reason = match (choice, upstream_present) {
        (ImageChoice::Auto, None) => format!("{reason} (image presence not checked)"),
        _ => reason.to_string(),
    };
    Resolution {
        set: set.with_overrides(env),
        reason,
    }
}

/// The images a real run uses, resolved against this engine and the registry (the stand-ins
/// are built by `startup::choose_images`). Switching to stand-ins on its own is said loudly.
pub fn resolve_here(sh: &Shell, flag: ImageChoice, env: &EnvSource) -> Result<Resolution> {
    let choice = effective_choice(flag)?;
    let present = (choice == ImageChoice::Auto).then(|| {
        let up = ImageSet::upstream().with_overrides(env);
        up.all().iter().all(|i| docker::image_exists(sh, i))
    });
    let r = resolve(choice, env, present, registry_reachable);
    if r.set.standin && choice == ImageChoice::Auto {
        eprintln!(
            "\n!!! No container registry answers ({REGISTRY_HOST}:443) and the upstream images are not here.\n\
                 !!! Using the project's registry-free stand-in images ({STANDIN}/*), built once from Debian\n\
                 !!! packages and the npm registry. Pass --upstream to insist on upstream images.\n"
        );
    }
    Ok(r)
}

/// The revision build-prod tags carry (`axion-hub:<stage>-<rev>`): the commit, `-dirty`
/// when tracked files changed.
pub fn revision(sh: &Shell) -> String {
    known_revision(sh).unwrap_or_else(|| "norev".into())
}

/// The id of a release built from this checkout: its commit, when git names one and nothing
/// tracked changed. Every replica of one release serves the same Next.js build id (and
/// deploymentId: Next.js's skew protection); a tree with changes gets Next.js's own random id,
/// since two different builds must never share one.
pub fn release_id(root: &std::path::Path) -> Option<String> {
    let (rev, dirty) = revision_at(root)?;
    (!dirty).then_some(rev)
}

/// The checkout's revision (`-dirty` with uncommitted changes), when git can name it.
pub fn known_revision(sh: &Shell) -> Option<String> {
    let (rev, dirty) = revision_at(&sh.current_dir())?;
    Some(if dirty { format!("{rev}-dirty") } else { rev })
}

/// The commit of the checkout at `root`, and whether tracked files changed.
fn revision_at(root: &std::path::Path) -> Option<(String, bool)> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = git(&["rev-parse", "--short=12", "HEAD"]).filter(|r| !r.is_empty())?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some((rev, dirty))
}

/// build-prod's revision tags of other revisions than `current`: `axion-hub:runner-1a2b3c…`.
pub fn stale_revision_tags(tags: &[String], current: &str) -> Vec<String> {
    tags.iter()
        .filter(|t| {
            let Some(tag) = t.strip_prefix("axion-hub:") else {
                return false;
            };
            STAGES.iter().any(|s| {
                tag.strip_prefix(s)
                    .and_then(|r| r.strip_prefix('-'))
                    // deploy's `runner-carry-<rev>` (the previous release's assets carried)
                    .map(|r| r.strip_prefix("carry-").unwrap_or(r))
                    .is_some_and(|rev| !rev.is_empty() && rev != current)
            })
        })
        .cloned()
        .collect()
}

pub fn registry_reachable() -> bool {
    let Ok(mut addrs) = (REGISTRY_HOST, 443).to_socket_addrs() else {
        return false;
    };
    addrs
        .next()
        .is_some_and(|a| TcpStream::connect_timeout(&a, REGISTRY_PROBE).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_file::EnvFile;

    fn env(text: &str) -> EnvSource {
        EnvSource {
            path: ".env".into(),
            file: EnvFile::parse(text),
        }
    }

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
    fn env_file_overrides_win() {
        let set = ImageSet::standin().with_overrides(&env("XTASK_UNUSED=1\n"));
        assert_eq!(set, ImageSet::standin());
        let r = resolve(
            ImageChoice::Standin,
            &env("POSTGRES_IMAGE=postgres:17.2-bookworm\n"),
            None,
            || unreachable!("an explicit choice asks no registry"),
        );
        assert_eq!(r.set.postgres, "postgres:17.2-bookworm");
        assert_eq!(r.set.redis, "axion-hub-standin/redis:7");
    }

    #[test]
    fn old_revision_tags() {
        let tags: Vec<String> = [
            "axion-hub:dev",
            "axion-hub:runner-abc123",
            "axion-hub:runner-def456-dirty",
            "axion-hub:dev-def456-dirty",
            "axion-hub:deps-abc123",
            "other:runner-abc123",
            "axion-hub:runner-carry-abc123",
            "axion-hub:runner-carry-def456-dirty",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            stale_revision_tags(&tags, "def456-dirty"),
            [
                "axion-hub:runner-abc123",
                "axion-hub:deps-abc123",
                "axion-hub:runner-carry-abc123"
            ]
        );
    }

    #[test]
    fn auto_resolution() {
        let e = env("");
        let r = resolve(ImageChoice::Auto, &e, Some(true), || unreachable!());
        assert!(!r.set.standin, "{}", r.reason);
        let r = resolve(ImageChoice::Auto, &e, Some(false), || true);
        assert_eq!(r.reason, "auto: a registry answers");
        let r = resolve(ImageChoice::Auto, &e, Some(false), || false);
        assert!(r.set.standin);
        let r = resolve(ImageChoice::Auto, &e, None, || false);
        assert!(r.set.standin && r.reason.ends_with("(image presence not checked)"));
    }
}
