//! `cargo xtask verify`: build, start, prove and tear down a throw-away stack, beside anything
//! else running (its own project name and host ports), with a report and a diagnosis.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use xshell::Shell;

use crate::{
    compose::{Stack, UpOpts, up_args},
    engine,
    env_file::EnvFile,
    flags::{self, ImageChoice},
    images::{self, ImageSet},
    integrity::{self, Kind, Policy},
    proc::run_logged,
    stack::{Progress, ReadySpec, SERVICES, Teardown, containers, diagnose, up_and_wait},
    util::secs,
};

/// A cold build on 2 cores takes about 1 min (bun install ~10 s, next build ~15 s, base layers);
/// a slow mirror or a first pull of base images can take several times that.
pub const TIMEOUT_BUILD: Duration = Duration::from_secs(20 * 60);
/// Health checks: a first start runs initdb (3-5 s on 2 cores); a check may then fail 5 times,
/// 5 s apart, after its 60 s start period before Docker calls it unhealthy.
pub const TIMEOUT_HEALTHY: Duration = Duration::from_secs(150);
/// The dev server compiles `/` and `/api/health` on first request (5-10 s on 2 cores).
pub const TIMEOUT_HTTP: Duration = Duration::from_secs(120);

pub struct Plan {
    pub stack: Stack,
    pub kind: Kind,
    pub app_port: u16,
    pub policy: Policy,
    pub images: ImageSet,
}

/// Everything verify will run, decided before anything runs (and printed by --dry-run).
pub fn plan(o: &flags::Verify, images: ImageSet, env_file: &str, ports: [u16; 3]) -> Plan {
    let kind = if o.prod { Kind::Prod } else { Kind::Dev };
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        % 1_000_000_000;
    let project = format!(
        "axion-verify-{}-{}-{nonce}",
        if o.prod { "prod" } else { "dev" },
        std::process::id()
    );
    let policy = Policy::new(o.cold || ci(), o.no_verify.clone());
    let mut env = crate::dev::stack_env(&images);
    env.extend([
        ("APP_PORT".to_string(), ports[0].to_string()),
        ("DB_PORT".to_string(), ports[1].to_string()),
        ("REDIS_PORT".to_string(), ports[2].to_string()),
    ]);
    let stack = Stack {
        file: if o.prod {
            "docker-compose.prod.yml"
        } else {
            "docker-compose.yml"
        }
        .into(),
        project,
        env_file: Some(env_file.into()),
        env,
    };
    Plan {
        stack,
        kind,
        app_port: ports[0],
        policy,
        images,
    }
}

/// CI sets CI=true: there a cold install catches a bad lock entry a warm cache would hide.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn distinct_free_ports() -> Result<[u16; 3]> {
    // Hold all three listeners at once so the kernel cannot hand out the same port twice.
    let ls: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    let p: Vec<u16> = ls
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()?;
    Ok([p[0], p[1], p[2]])
}

impl flags::Verify {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let root = sh.current_dir();
        let env_file = if root.join(".env").exists() {
            ".env"
        } else {
            ".env.example"
        };
        let env = EnvFile::load(&root.join(env_file))?;
        let ports = distinct_free_ports()?;

        if self.dry_run {
            // No docker command runs: auto resolves by the registry probe alone.
            let images = match self.images {
                ImageChoice::Standin => ImageSet::standin(),
                ImageChoice::Upstream => ImageSet::upstream(),
                ImageChoice::Auto if images::registry_reachable() => ImageSet::upstream(),
                ImageChoice::Auto => ImageSet::standin(),
            }
            .with_overrides(&env);
            let p = plan(&self, images, env_file, ports);
            print!("{}", dry_run_text(&p, &self));
            return Ok(());
        }

        let started = Instant::now();
        let versions = engine::preflight()?;
        let images = images::choose(sh, self.images, &env)?;
        let p = plan(&self, images, env_file, ports);
        crate::dev::prepare_source_tree(&root)?;
        let mut report = Report::new(&p, &versions);
        report.phase("preflight", started.elapsed());
        if !self.json {
            eprintln!(
                "verify: {} as project {} (app on 127.0.0.1:{})",
                p.stack.file, p.stack.project, p.app_port
            );
        }

        let guard = Teardown {
            sh,
            stack: &p.stack,
            keep: self.keep,
            quiet: self.json,
        };
        let outcome = run_checks(sh, &self, &p, &mut report);
        if let Err(e) = &outcome {
            report.error = Some(format!("{e:#}"));
            report.diagnosis = diagnose(sh, &p.stack, report.failed_service.as_deref());
        }
        let t = Instant::now();
        drop(guard);
        if !self.keep {
            report.phase("teardown", t.elapsed());
        }
        report.total = started.elapsed();

        if self.json {
            println!("{}", serde_json::to_string_pretty(&report.to_json())?);
        } else {
            eprint!("{}", report.human());
        }
        match outcome {
            Ok(()) => Ok(()),
            Err(e) => Err(e.context(format!("verify of {} failed", p.stack.file))),
        }
    }
}

fn run_checks(sh: &Shell, o: &flags::Verify, p: &Plan, report: &mut Report) -> Result<()> {
    // Build.
    let log_dir = sh.current_dir().join("target/xtask/logs");
    let log = log_dir.join(format!("{}-build.log", p.stack.project));
    let built = integrity::build_with_policy(sh, p.kind, &p.policy, |flags| {
        let mut stack = p.stack.clone();
        stack.env.push(("BUN_INSTALL_FLAGS".into(), flags.into()));
        run_logged(
            stack.duct(&["build"]),
            "compose build",
            &log,
            false,
            o.timeout_build.unwrap_or(TIMEOUT_BUILD),
        )
    })
    .with_context(|| format!("build log: {}", log.display()))?;
    report.phase("build", built.finished.elapsed);
    report.lockfile_policy = built.policy;

    // Start, and wait for readiness while `up` runs.
    let spec = ReadySpec {
        services: SERVICES.map(String::from).to_vec(),
        app_port: p.app_port,
        timeout_healthy: o.timeout_healthy.unwrap_or(TIMEOUT_HEALTHY),
        timeout_http: o.timeout_http.unwrap_or(TIMEOUT_HTTP),
    };
    let (ready, start_after) = up_and_wait(
        sh,
        &p.stack,
        UpOpts::default(),
        &spec,
        &mut Progress::new(o.json),
    )?;
    let ready = ready.map_err(|e| {
        report.failed_service = e.service.clone();
        anyhow::anyhow!(e.message)
    })?;
    report.phase("start", start_after);
    report.phase("healthy", ready.healthy_after);
    report.phase("first 200", ready.first_200_after);
    report.health = ready.health_body.clone();
    report.services = ready.services.clone();

    // What the containers really got: images, limits, restart policies.
    let cs = containers(sh, &p.stack.project)?;
    for c in &cs {
        report.containers.push(json!({
            "service": c.service, "image": c.image, "state": c.state_word(),
            "memory_limit_bytes": c.memory_limit, "restart_policy": c.restart_policy,
        }));
    }
    if p.kind == Kind::Prod {
        for c in &cs {
            if c.memory_limit <= 0 {
                report.failed_service = Some(c.service.clone());
                bail!("prod service `{}` runs without a memory limit", c.service);
            }
            if c.restart_policy.is_empty() || c.restart_policy == "no" {
                report.failed_service = Some(c.service.clone());
                bail!("prod service `{}` has no restart policy", c.service);
            }
        }
    }
    let mut used: Vec<String> = cs.iter().map(|c| c.image.clone()).collect();
    used.sort();
    used.dedup();
    let sizes = images::image_sizes(sh, &used);
    report.images = used.into_iter().zip(sizes).collect();
    Ok(())
}

fn dry_run_text(p: &Plan, o: &flags::Verify) -> String {
    let build_env = format!(
        "BUN_INSTALL_FLAGS={}",
        crate::compose::shell_quote(&p.policy.flags())
    );
    let up = up_args(UpOpts::default(), &[]);
    let up: Vec<&str> = up.iter().map(String::as_str).collect();
    let down = crate::compose::teardown_args();
    let down: Vec<&str> = down.iter().map(String::as_str).collect();
    let filter = format!("label=com.docker.compose.project={}", p.stack.project);
    let mut s = String::new();
    s.push_str(&format!(
        "# verify {} (dry run: nothing is run)\n",
        p.stack.file
    ));
    s.push_str(&format!(
        "# images: {} ({})\n",
        p.images.env().map(|(_, i)| i).join(", "),
        if p.images.standin {
            "stand-ins"
        } else {
            "upstream"
        }
    ));
    s.push_str(&format!("# lockfile policy: {}\n", p.policy.describe()));
    s.push_str("docker version\ndocker buildx version\ndocker compose version --short\n");
    if p.images.standin {
        s.push_str("# stand-in images are built first when missing or stale (docker build docker/standin/*)\n");
    }
    s.push_str(&format!("{build_env} {}\n", p.stack.display(&["build"])));
    s.push_str(&format!("{}\n", p.stack.display(&up)));
    s.push_str(&format!(
        "# every {}ms until ready:\ndocker ps -aq --filter {filter}\ndocker inspect <ids>\n",
        crate::stack::POLL_EVERY.as_millis()
    ));
    s.push_str(&format!("# GET http://127.0.0.1:{0}/ then http://127.0.0.1:{0}/api/health until 200 with db and redis ok\n", p.app_port));
    if o.keep {
        s.push_str("# --keep: no teardown\n");
    } else {
        s.push_str(&format!("{}\n", p.stack.display(&down)));
        s.push_str(&format!("docker ps -aq --filter {filter}\ndocker volume ls -q --filter {filter}\ndocker network ls -q --filter {filter}\n"));
    }
    s
}

/// The verdict and its evidence, for people and (`--json`) for machines.
struct Report {
    stack: String,
    project: String,
    engine: String,
    images_used: Vec<(String, String)>,
    phases: Vec<(String, Duration)>,
    services: Vec<crate::stack::ServiceReady>,
    containers: Vec<Value>,
    images: Vec<(String, u64)>,
    lockfile_policy: String,
    health: Value,
    error: Option<String>,
    failed_service: Option<String>,
    diagnosis: String,
    total: Duration,
}

impl Report {
    fn new(p: &Plan, v: &engine::Versions) -> Report {
        Report {
            stack: p.stack.file.clone(),
            project: p.stack.project.clone(),
            engine: engine::describe(v),
            images_used: p
                .images
                .env()
                .map(|(k, i)| (k.to_string(), i.to_string()))
                .to_vec(),
            phases: vec![],
            services: vec![],
            containers: vec![],
            images: vec![],
            lockfile_policy: p.policy.describe(),
            health: Value::Null,
            error: None,
            failed_service: None,
            diagnosis: String::new(),
            total: Duration::ZERO,
        }
    }
    fn phase(&mut self, name: &str, d: Duration) {
        self.phases.push((name.into(), d));
    }
    fn to_json(&self) -> Value {
        json!({
            "verdict": if self.error.is_none() { "pass" } else { "fail" },
            "stack": self.stack,
            "project": self.project,
            "engine": self.engine,
            "base_images": self.images_used.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "lockfile_policy": self.lockfile_policy,
            "phases": self.phases.iter().map(|(n, d)| json!({"name": n, "seconds": round(d)})).collect::<Vec<_>>(),
            "services": self.services.iter().map(|s| json!({
                "service": s.service, "state": s.state,
                "ready_after_seconds": s.ready_after.map(|d| round(&d)),
                "noticed_after_healthy_ms": s.notice_delay.map(|d| d.as_millis() as u64),
            })).collect::<Vec<_>>(),
            "containers": self.containers,
            "images": self.images.iter().map(|(i, s)| json!({"image": i, "size_bytes": s})).collect::<Vec<_>>(),
            "health": self.health,
            "error": self.error,
            "failed_service": self.failed_service,
            "diagnosis": if self.diagnosis.is_empty() { Value::Null } else { json!(self.diagnosis) },
            "total_seconds": round(&self.total),
        })
    }
    fn human(&self) -> String {
        let mut s = String::new();
        let verdict = if self.error.is_none() { "PASS" } else { "FAIL" };
        s.push_str(&format!(
            "\nverify {verdict}: {} ({}) in {}\n",
            self.stack,
            self.project,
            secs(self.total)
        ));
        s.push_str(&format!(
            "  {}\n  lockfile: {}\n",
            self.engine, self.lockfile_policy
        ));
        for (n, d) in &self.phases {
            s.push_str(&format!("  {n:<10} {:>7}\n", secs(*d)));
        }
        for sr in &self.services {
            s.push_str(&format!("  {}\n", sr.summary()));
        }
        for (i, size) in &self.images {
            s.push_str(&format!("  image {i}: {:.0} MB\n", *size as f64 / 1e6));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("\nerror: {e}\n"));
            if let Some(svc) = &self.failed_service {
                s.push_str(&format!("failing service: {svc}\n"));
            }
            s.push_str(&self.diagnosis);
        }
        s
    }
}

fn round(d: &Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_isolated_per_run() {
        let o = flags::Verify {
            prod: true,
            ..Default::default()
        };
        let a = plan(
            &o,
            ImageSet::standin(),
            ".env.example",
            [40001, 40002, 40003],
        );
        assert!(a.stack.project.starts_with("axion-verify-prod-"));
        assert_eq!(a.stack.file, "docker-compose.prod.yml");
        let env: Vec<String> = a
            .stack
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for want in [
            "APP_PORT=40001",
            "DB_PORT=40002",
            "REDIS_PORT=40003",
            "POSTGRES_IMAGE=axion-hub-standin/postgres:17",
        ] {
            assert!(
                env.contains(&want.to_string()),
                "{want} missing from {env:?}"
            );
        }
        let text = dry_run_text(&a, &o);
        assert!(
            text.contains(&format!(
                "-p {} --env-file .env.example up --detach --no-build",
                a.stack.project
            )),
            "{text}"
        );
        assert!(text.contains("down --volumes --remove-orphans"), "{text}");
    }
}
