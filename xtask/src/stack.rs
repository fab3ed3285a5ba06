//! The facts of a stack, each in one place: its kind (dev or prod) with compose file and
//! project name, its services, ports and their defaults, the environment compose gets, the
//! timeouts with their reasons, and where the xtask keeps its logs and work files.

use std::{
    fs,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};

use crate::{docker::compose::Compose, env_file::EnvSource, host, images::ImageSet};

/// A cold build on 2 cores takes about 1 min (bun install ~10 s, next build ~15 s, base layers);
/// a slow mirror or a first pull of base images can take several times that.
pub const TIMEOUT_BUILD: Duration = Duration::from_secs(20 * 60);
/// Health checks: a first start runs initdb (3-5 s on 2 cores); a check may then fail 5 times,
/// 5 s apart, after its 60 s start period before Docker calls it unhealthy.
pub const TIMEOUT_HEALTHY: Duration = Duration::from_secs(150);
/// The dev server compiles `/` and `/api/health` on first request (5-10 s on 2 cores).
pub const TIMEOUT_HTTP: Duration = Duration::from_secs(120);

/// `bench --load`: long enough for a steady state (the first second warms the pools), short
/// enough for a routine run.
pub const LOAD_DURATION: Duration = Duration::from_secs(15);
/// `bench --load`: the concurrency the prod health endpoint is held to.
pub const LOAD_CONNECTIONS: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackKind {
    Dev,
    Prod,
}

impl StackKind {
    pub fn from_prod(prod: bool) -> StackKind {
        if prod {
            StackKind::Prod
        } else {
            StackKind::Dev
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            StackKind::Dev => "dev",
            StackKind::Prod => "prod",
        }
    }
    /// The services of its compose file, sorted (a unit test holds the files to it): prod adds
    /// the Next.js cache every replica shares (dev's server caches nothing).
    pub fn services(self) -> &'static [&'static str] {
        match self {
            StackKind::Dev => &["app", "db", "redis"],
            StackKind::Prod => &["app", "cache", "db", "redis"],
        }
    }
    /// `dev`, `prod`.
    pub fn word(self) -> &'static str {
        match self {
            StackKind::Dev => "dev",
            StackKind::Prod => "prod",
        }
    }
    pub fn compose_file(self) -> &'static str {
        match self {
            StackKind::Dev => "docker-compose.yml",
            StackKind::Prod => "docker-compose.prod.yml",
        }
    }
    /// The long-lived project a person starts; AXION_DEV_PROJECT and AXION_PROD_PROJECT rename
    /// them (the tests run their own; `docker compose -p` names another).
    pub fn project(self) -> String {
        match self {
            StackKind::Dev => std::env::var("AXION_DEV_PROJECT")
                .ok()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "axion-hub".into()),
            StackKind::Prod => std::env::var("AXION_PROD_PROJECT")
                .ok()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "axion-hub-prod".into()),
        }
    }
    /// A project of one run (verify, bench): unique per process and moment, so runs never
    /// share containers, volumes or networks.
    pub fn throwaway_project(self, purpose: &str) -> String {
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            % 1_000_000_000;
        format!(
            "axion-{purpose}-{}-{}-{nonce}",
            self.name(),
            std::process::id()
        )
    }
}

/// Host ports of a stack (db and redis are published in dev only, on 127.0.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub app: u16,
    pub db: u16,
    pub redis: u16,
}

impl Default for Ports {
    fn default() -> Ports {
        let [(_, app), (_, db), (_, redis)] = Ports::DEFAULTS;
        Ports { app, db, redis }
    }
}

impl Ports {
    pub const DEFAULTS: [(&'static str, u16); 3] =
        [("APP_PORT", 3000), ("DB_PORT", 5432), ("REDIS_PORT", 6379)];

    /// From the environment, then the env file, then the defaults.
    pub fn from_env(env: &EnvSource) -> Result<Ports> {
        let [app, db, redis] = Self::DEFAULTS.map(|(var, default)| env.port(var, default));
        Ok(Ports {
            app: app?,
            db: db?,
            redis: redis?,
        })
    }

    /// Three distinct free ephemeral ports (all three listeners are held at once so the
    /// kernel cannot hand out one port twice).
    pub fn free() -> Result<Ports> {
        let ls: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<_>>()
            .context("picking free ports")?;
        let p: Vec<u16> = ls
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<_>>()?;
        Ok(Ports {
            app: p[0],
            db: p[1],
            redis: p[2],
        })
    }

    pub fn named(&self) -> [(&'static str, u16); 3] {
        [
            ("APP_PORT", self.app),
            ("DB_PORT", self.db),
            ("REDIS_PORT", self.redis),
        ]
    }
}

/// A stack as the xtask drives it: its kind, the compose invocation, and its ports.
#[derive(Debug, Clone)]
pub struct Stack {
    pub kind: StackKind,
    pub compose: Compose,
    pub ports: Ports,
}

impl Stack {
    /// `project` is the kind's own or a throw-away one; the ports go to compose explicitly so
    /// what the xtask checks is what compose publishes.
    pub fn new(
        kind: StackKind,
        project: String,
        env: &EnvSource,
        images: &ImageSet,
        ports: Ports,
    ) -> Stack {
        let mut vars = compose_env(images, &crate::util::project_root());
        vars.extend(ports.named().map(|(k, p)| (k.to_string(), p.to_string())));
        Stack {
            kind,
            compose: Compose {
                file: kind.compose_file().into(),
                overlays: vec![],
                project,
                env_file: env.path.clone(),
                env: vars,
            },
            ports,
        }
    }
    /// A stack of one run (verify, bench): a project of its own, its owner named on every
    /// resource (so a run that dies without its teardown can be reaped), and its own app image
    /// tag (so it never changes what the dev stack runs).
    pub fn throwaway(
        kind: StackKind,
        purpose: &str,
        env: &EnvSource,
        images: &ImageSet,
        ports: Ports,
    ) -> Stack {
        let project = kind.throwaway_project(purpose);
        let mut stack = Stack::new(kind, project, env, images, ports);
        let image = format!("axion-hub-run:{}", stack.project());
        stack.compose.env.extend([
            (
                "AXION_OWNER".to_string(),
                crate::owner::Owner::current().label(),
            ),
            ("AXION_APP_IMAGE".to_string(), image),
        ]);
        stack
    }
    pub fn project(&self) -> &str {
        &self.compose.project
    }
    /// The app image this stack runs: the run's own tag, or the kind's (the compose files'
    /// default).
    pub fn app_image(&self) -> String {
        match self
            .compose
            .env
            .iter()
            .find(|(k, _)| k == "AXION_APP_IMAGE")
        {
            Some((_, image)) => image.clone(),
            None => match self.kind {
                StackKind::Dev => "axion-hub:dev".into(),
                StackKind::Prod => "axion-hub:runner".into(),
            },
        }
    }
}

/// The environment every stack command gives compose: base images, the host user (so the dev
/// server's files in app/ are theirs), the file of the host's extra CAs (a build secret for bun
/// install), where prod's secrets live, plain build logs.
pub fn compose_env(images: &ImageSet, root: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = images
        .env()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("HOST_UID".into(), host::uid().to_string()));
    env.push(("HOST_GID".into(), host::gid().to_string()));
    env.push(("BUILDKIT_PROGRESS".into(), "plain".into()));
    // The prod build's Next.js build id and deploymentId (empty: Next.js picks its own).
    let release = crate::images::release_id(root).unwrap_or_default();
    env.push(("AXION_BUILD_ID".into(), release));
    env.push((
        "AXION_ACTIONS_KEY_ID".into(),
        crate::secrets::actions_key_id(root),
    ));
    env.push((
        "AXION_EXTRA_CA_FILE".into(),
        crate::paths::extra_ca(root).display().to_string(),
    ));
    env.push((
        "AXION_APP_ENV_FILE".into(),
        crate::app_env::file(root).display().to_string(),
    ));
    env.push((
        "AXION_SECRETS_DIR".into(),
        crate::secrets::dir(root).display().to_string(),
    ));
    env
}

/// The files a stack needs on the host before compose runs. Docker creates missing bind-mount
/// targets as root, so the anonymous volumes' mount points are made first (keeping
/// root-owned directories out of the user's tree); the extra-CA file a build secret reads; the
/// app's own variables (`app_env`); and for prod, its secrets (made when missing, refused when
/// weak).
pub fn prepare_files(root: &Path, kind: StackKind, env: &EnvSource) -> Result<()> {
    for d in ["app/node_modules", "app/.next"] {
        fs::create_dir_all(root.join(d)).with_context(|| format!("creating {d}"))?;
    }
    host::extra_ca_file(root)?;
    crate::app_env::check(root, env)?;
    crate::app_env::write(root, env)?;
    if kind == StackKind::Prod {
        crate::secrets::ensure(root)?;
        readable_by_all(&root.join("docker/postgres-init"))?;
    }
    Ok(())
}

/// The init scripts are bind-mounted and run as `postgres`: a checkout made under a strict umask
/// (027, 077) leaves them unreadable to it, and initdb then fails once and never runs them again
/// on the initialised volume. They hold no secret: readable (and the directory searchable) by all.
fn readable_by_all(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.is_dir() {
        return Ok(()); // compose names the missing mount itself
    }
    let add = |p: &Path, bits: u32| -> Result<()> {
        let mode = fs::metadata(p)?.permissions().mode();
        if mode & bits != bits {
            fs::set_permissions(p, fs::Permissions::from_mode(mode | bits))
                .with_context(|| format!("making {} readable", p.display()))?;
        }
        Ok(())
    };
    add(dir, 0o555)?;
    for e in fs::read_dir(dir)?.flatten() {
        add(&e.path(), 0o444)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_files_define_exactly_the_known_services() {
        for kind in [StackKind::Dev, StackKind::Prod] {
            let file = kind.compose_file();
            let text = fs::read_to_string(crate::util::project_root().join(file)).unwrap();
            // From `services:` to the next top-level key.
            let body = text.split("\nservices:\n").nth(1).unwrap();
            let mut names: Vec<&str> = body
                .lines()
                .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
                .filter(|l| {
                    l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':')
                })
                .map(|l| l.trim().trim_end_matches(':'))
                .collect();
            names.sort();
            assert_eq!(names, kind.services(), "{file}");
        }
    }

    #[test]
    fn port_defaults_match_env_example() {
        let example = fs::read_to_string(crate::util::project_root().join(".env.example")).unwrap();
        for (var, port) in Ports::DEFAULTS {
            assert!(example.contains(&format!("\n{var}={port}\n")), "{var}");
        }
    }

    #[test]
    fn throwaway_stacks_name_their_owner_and_their_own_image() {
        let env = EnvSource {
            path: ".env.example".into(),
            file: crate::env_file::EnvFile::default(),
        };
        let images = ImageSet::standin();
        let s = Stack::throwaway(StackKind::Dev, "verify", &env, &images, Ports::default());
        let get = |k: &str| {
            s.compose
                .env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            get("AXION_APP_IMAGE"),
            Some(format!("axion-hub-run:{}", s.project()))
        );
        let owner = crate::owner::Owner::parse(&get("AXION_OWNER").unwrap()).unwrap();
        assert_eq!(owner.pid, std::process::id());
        let dev = Stack::new(
            StackKind::Dev,
            StackKind::Dev.project(),
            &env,
            &images,
            Ports::default(),
        );
        assert_eq!(dev.app_image(), "axion-hub:dev");
        assert!(!dev.compose.env.iter().any(|(k, _)| k == "AXION_OWNER"));
    }

    #[test]
    fn throwaway_projects_and_ports_differ_per_run() {
        let a = StackKind::Prod.throwaway_project("verify");
        std::thread::sleep(Duration::from_millis(2));
        let b = StackKind::Prod.throwaway_project("verify");
        assert!(a.starts_with("axion-verify-prod-") && a != b, "{a} {b}");
        let p = Ports::free().unwrap();
        assert!(p.app != p.db && p.db != p.redis && p.app != p.redis);
    }
}
