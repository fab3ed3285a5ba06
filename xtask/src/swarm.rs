//! Docker Swarm: the prod stack rendered for `docker stack deploy`, its images pushed to a
//! registry and deployed by digest, its convergence watched. `cargo xtask deploy` and
//! `verify --swarm` (on a throw-away Docker-in-Docker cluster, `cluster`) share all of it.
//!
//! Rendering: `docker compose config` merges docker-compose.prod.yml and
//! docker-compose.swarm.yml (so `!reset`/`!override` work and nothing is repeated), then
//! `to_stack` turns compose's output into what `docker stack deploy` accepts and means.

pub mod cluster;
pub mod load;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use xshell::Shell;

use crate::{
    docker::{self, compose::words},
    progress::Progress,
    stack::StackKind,
    standin::fnv1a,
    util::secs,
};

pub const OVERLAY: &str = "docker-compose.swarm.yml";
/// `deploy`'s default stack name.
pub const DEFAULT_STACK: &str = "axion";
/// A rolling update of two start-first tasks takes 20-30 s here, a rollback 30-45 s; a cold
/// node also pulls the image first.
pub const TIMEOUT_UPDATE: Duration = Duration::from_secs(300);
/// The node label db and redis are pinned to (their volumes live there).
pub const DATA_LABEL: &str = "axion-hub.data";

/// Which engine a docker call talks to: the one the client is configured for (DOCKER_HOST,
/// context), or another by address (`--manager`, a node of the throw-away cluster).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Target(Option<String>);

impl Target {
    pub fn configured() -> Target {
        Target(None)
    }
    /// `tcp://…`, `ssh://user@host`, `unix://…`: what `docker -H` takes.
    pub fn host(h: &str) -> Target {
        Target(Some(h.to_string()))
    }
    /// The address, for a child command's `--manager`.
    pub fn address(&self) -> Option<&str> {
        self.0.as_deref()
    }
    /// `docker [-H host] <rest>`.
    pub fn args(&self, rest: &[&str]) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(h) = &self.0 {
            a.extend(["-H".to_string(), h.clone()]);
        }
        a.extend(words(rest));
        a
    }
    pub fn read(&self, sh: &Shell, rest: &[&str]) -> Result<String> {
        let out = docker::cmd(sh, &self.args(rest))
            .quiet()
            .ignore_status()
            .output()?;
        if !out.status.success() {
            bail!(
                "docker {}: {}",
                rest.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The images a stack runs, as references every node can pull.
#[derive(Debug, Clone, PartialEq)]
pub struct StackImages {
    pub app: String,
    pub postgres: String,
    pub redis: String,
    pub proxy: String,
}

impl StackImages {
    /// The compose variables that select them.
    pub fn env(&self) -> [(&'static str, &str); 4] {
        [
            ("AXION_APP_IMAGE", &self.app),
            ("POSTGRES_IMAGE", &self.postgres),
            ("REDIS_IMAGE", &self.redis),
            ("EDGE_IMAGE", &self.proxy),
        ]
    }
}

/// The prod + swarm compose files merged by compose (interpolated with `env`), as JSON.
pub fn compose_config(sh: &Shell, root: &Path, env: &[(String, String)]) -> Result<Value> {
    let mut c = sh.cmd("docker").args(words(&[
        "compose",
        "--project-directory",
        &root.display().to_string(),
        "-f",
        StackKind::Prod.compose_file(),
        "-f",
        OVERLAY,
        "config",
        "--format",
        "json",
    ]));
    for (k, v) in env {
        c = c.env(k, v);
    }
    let out = c.quiet().ignore_status().output()?;
    if !out.status.success() {
        bail!(
            "docker compose config of {} + {OVERLAY} failed:\n{}",
            StackKind::Prod.compose_file(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("reading docker compose config's JSON")
}

/// Compose's merged model turned into a `docker stack deploy` file:
/// - what only compose uses goes (`name`, `build`, `depends_on`, `restart`: swarm restarts by
///   `deploy.restart_policy`; `security_opt`: Engine 26 services have no no-new-privileges);
/// - `tmpfs:` (which stack deploy would silently drop, leaving a read-only /tmp) becomes tmpfs
///   mounts;
/// - numbers compose prints as strings become numbers again, nulls go;
/// - secrets and configs are named after their content (`<stack>_<key>-<hash>`): swarm's are
///   immutable, so a changed file must be a new object, and an unchanged one is reused;
///   secrets no service uses (the build's extra_ca) are not created.
///
/// `read` gives a secret or config file's bytes.
pub fn to_stack(
    mut model: Value,
    stack: &str,
    read: impl Fn(&str) -> Result<Vec<u8>>,
) -> Result<Value> {
    let top = model
        .as_object_mut()
        .context("compose config printed no object")?;
    top.remove("name");
    let mut used = Vec::new();
    let services = top
        .get_mut("services")
        .and_then(Value::as_object_mut)
        .context("compose config has no services")?;
    for (name, s) in services.iter_mut() {
        let s = s
            .as_object_mut()
            .with_context(|| format!("service {name}"))?;
        for k in ["build", "depends_on", "restart", "security_opt"] {
            s.remove(k);
        }
        s.retain(|_, v| !v.is_null());
        if let Some(tmpfs) = s.remove("tmpfs") {
            let mounts = tmpfs_mounts(&tmpfs).with_context(|| format!("service {name}: tmpfs"))?;
            let vols = s.entry("volumes").or_insert_with(|| json!([]));
            if let Some(v) = vols.as_array_mut() {
                v.extend(mounts);
            }
        }
        for v in s
            .get_mut("volumes")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(size) = v.pointer_mut("/tmpfs/size") {
                number_in_place(size);
            }
        }
        for p in s
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            for k in ["published", "target"] {
                if let Some(n) = p.get_mut(k) {
                    number_in_place(n);
                }
            }
        }
        if let Some(nets) = s.get_mut("networks").and_then(Value::as_object_mut) {
            for v in nets.values_mut() {
                if v.is_null() {
                    *v = json!({});
                }
            }
        }
        for kind in ["secrets", "configs"] {
            for r in s.get(kind).and_then(Value::as_array).into_iter().flatten() {
                let source = r.get("source").or(Some(r)).and_then(Value::as_str);
                if let Some(source) = source {
                    used.push((kind, source.to_string()));
                }
            }
        }
    }
    for kind in ["secrets", "configs"] {
        let Some(objs) = top.get_mut(kind).and_then(Value::as_object_mut) else {
            continue;
        };
        objs.retain(|k, _| used.iter().any(|(u, s)| *u == kind && s == k));
        for (key, obj) in objs.iter_mut() {
            let file = obj
                .get("file")
                .and_then(Value::as_str)
                .with_context(|| format!("{kind}.{key} has no file"))?
                .to_string();
            let bytes = read(&file).with_context(|| format!("reading {kind}.{key} ({file})"))?;
            let name = format!("{stack}_{key}-{:08x}", fnv1a(&bytes) as u32);
            *obj = json!({ "name": name, "file": file });
        }
    }
    for kind in ["networks", "volumes"] {
        for obj in top
            .get_mut(kind)
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            if let Some(o) = obj.as_object_mut() {
                o.remove("name");
            }
        }
    }
    Ok(model)
}

fn number_in_place(v: &mut Value) {
    if let Some(n) = v.as_str().and_then(|s| s.parse::<u64>().ok()) {
        *v = json!(n);
    }
}

/// `["/tmp:size=64m"]` as tmpfs mounts.
fn tmpfs_mounts(list: &Value) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for entry in list.as_array().into_iter().flatten() {
        let entry = entry.as_str().context("a tmpfs entry is not a string")?;
        let (target, opts) = entry.split_once(':').unwrap_or((entry, ""));
        let mut tmpfs = Map::new();
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            match opt.split_once('=') {
                Some(("size", v)) => {
                    tmpfs.insert("size".into(), json!(bytes(v)?));
                }
                Some(("mode", v)) => {
                    let mode = u32::from_str_radix(v, 8)
                        .with_context(|| format!("mode {v} is not octal"))?;
                    tmpfs.insert("mode".into(), json!(mode));
                }
                _ => bail!("`{opt}` in `{entry}`: stack deploy takes only size= and mode="),
            }
        }
        out.push(json!({ "type": "tmpfs", "target": target, "tmpfs": tmpfs }));
    }
    Ok(out)
}

/// `64m` -> 67108864.
fn bytes(v: &str) -> Result<u64> {
    let v = v.trim().to_ascii_lowercase();
    let (num, mult) = match v.chars().last() {
        Some('k') => (&v[..v.len() - 1], 1u64 << 10),
        Some('m') => (&v[..v.len() - 1], 1 << 20),
        Some('g') => (&v[..v.len() - 1], 1 << 30),
        _ => (v.as_str(), 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("`{v}` is not a size"))?;
    Ok(n * mult)
}

/// What the rendered stack is interpolated with besides its images: the app's own variables
/// and where the secrets are (the same as the prod stack's compose environment).
pub fn stack_vars(root: &std::path::Path) -> Vec<(String, String)> {
    vec![
        (
            "AXION_APP_ENV_FILE".into(),
            crate::app_env::file(root).display().to_string(),
        ),
        (
            "AXION_SECRETS_DIR".into(),
            crate::secrets::dir(root).display().to_string(),
        ),
        ("AXION_EXTRA_CA_FILE".into(), "/dev/null".into()),
    ]
}

/// The rendered stack file: compose's model of the two files with these images, made
/// deployable, written to `out`.
pub fn render(
    sh: &Shell,
    root: &Path,
    stack: &str,
    images: &StackImages,
    extra_env: &[(String, String)],
    out: &Path,
) -> Result<Value> {
    let mut env: Vec<(String, String)> = extra_env.to_vec();
    env.extend(images.env().map(|(k, v)| (k.to_string(), v.to_string())));
    let model = compose_config(sh, root, &env)?;
    let (secrets, key) = (crate::secrets::dir(root), crate::secrets::name_key(root)?);
    let file = to_stack(model, stack, |f| name_source(f, &secrets, &key))?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Only its owner reads what the stack is made of.
    crate::util::write_atomic(out, serde_json::to_string_pretty(&file)?.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(file)
}

/// What an object's name is derived from: a config's content; a secret's content behind the
/// name key, so the name (visible to anyone who lists the swarm's secrets) says nothing of it.
fn name_source(file: &str, secrets: &Path, key: &[u8]) -> Result<Vec<u8>> {
    let bytes = std::fs::read(file)?;
    Ok(if Path::new(file).starts_with(secrets) {
        [key, &bytes].concat()
    } else {
        bytes
    })
}

/// `docker stack deploy` of a rendered file. Images are references by digest, or local tags on
/// a one-node swarm (`resolve_local`: no registry to ask).
pub fn deploy(sh: &Shell, target: &Target, stack: &str, file: &Path, local: bool) -> Result<()> {
    let file = file.display().to_string();
    let mut rest = vec![
        "stack",
        "deploy",
        "--detach=true",
        "--prune",
        "--with-registry-auth",
        "-c",
        &file,
    ];
    if local {
        rest.extend(["--resolve-image", "never"]);
    }
    rest.push(stack);
    target.read(sh, &rest).map(|_| ())
}

/// Pushes local images to a registry, all at once, and returns each as a reference by digest
/// with the registry named as the nodes reach it (`pull_prefix`; the same as `push_prefix`
/// unless this host reaches the registry by another address). `images` pairs a local image with
/// its `repository:tag` there; every tag made is added to `tags_made`. Images that share layers
/// should share a repository and be pushed in a later call: the registry then has the layers.
pub fn push(
    sh: &Shell,
    images: &[(String, String)],
    push_prefix: &str,
    pull_prefix: &str,
    tags_made: &mut Vec<String>,
) -> Result<Vec<String>> {
    let mut pushes = Vec::new();
    for (local, name) in images {
        let remote = format!("{push_prefix}/{name}");
        docker::cmd(sh, &words(&["tag", local, &remote]))
            .quiet()
            .run()
            .with_context(|| format!("tagging {local} as {remote}"))?;
        tags_made.push(remote.clone());
        pushes.push(words(&["push", "--quiet", &remote]));
    }
    for (args, out) in pushes.iter().zip(docker::run_all(&pushes)) {
        let out = out?;
        if !out.status.success() {
            bail!(
                "docker {}: {}\n  (is the registry reachable from this host, and does the engine trust its certificate? \
                 https://docs.docker.com/engine/security/certificates/)",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    images
        .iter()
        .map(|(_, name)| {
            let remote = format!("{push_prefix}/{name}");
            let repo = name.rsplit_once(':').map_or(name.as_str(), |(r, _)| r);
            let digests = docker::cmd(
                sh,
                &words(&[
                    "image",
                    "inspect",
                    "--format",
                    "{{json .RepoDigests}}",
                    &remote,
                ]),
            )
            .quiet()
            .read()?;
            let digest = digest_for(&digests, &format!("{push_prefix}/{repo}"))
                .with_context(|| format!("no digest of {remote} after its push: {digests}"))?;
            Ok(format!("{pull_prefix}/{repo}@{digest}"))
        })
        .collect()
}

/// The `sha256:…` of `repo` in an image's RepoDigests (JSON list of `repo@sha256:…`).
pub fn digest_for(repo_digests: &str, repo: &str) -> Option<String> {
    let list: Vec<String> = serde_json::from_str(repo_digests.trim()).ok()?;
    list.iter()
        .find_map(|d| d.strip_prefix(&format!("{repo}@")).map(String::from))
}

/// What `docker info` says of the engine's swarm membership.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// inactive, pending, active, error, locked.
    pub state: String,
    pub manager: bool,
    pub nodes: u64,
}

pub fn membership(sh: &Shell, target: &Target) -> Result<Membership> {
    let out = target.read(sh, &["info", "--format", "{{json .Swarm}}"])?;
    parse_membership(&out)
}

pub fn parse_membership(json: &str) -> Result<Membership> {
    let v: Value = serde_json::from_str(json.trim()).context("reading docker info's Swarm")?;
    Ok(Membership {
        state: v["LocalNodeState"].as_str().unwrap_or("").to_string(),
        manager: v["ControlAvailable"].as_bool().unwrap_or(false),
        nodes: v["Nodes"].as_u64().unwrap_or(0),
    })
}

/// One service of a stack as `docker service ls` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRow {
    /// Without the stack prefix.
    pub service: String,
    pub running: u64,
    pub desired: u64,
    pub image: String,
}

pub fn services(sh: &Shell, target: &Target, stack: &str) -> Result<Vec<ServiceRow>> {
    let filter = format!("label=com.docker.stack.namespace={stack}");
    let out = target.read(
        sh,
        &[
            "service",
            "ls",
            "--filter",
            &filter,
            "--format",
            "{{json .}}",
        ],
    )?;
    Ok(parse_services(&out, stack))
}

pub fn parse_services(text: &str, stack: &str) -> Vec<ServiceRow> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let name = v["Name"].as_str()?;
            // "2/2", "0/3", "1/1 (max 1 per node)"
            let replicas = v["Replicas"].as_str()?.split_whitespace().next()?;
            let (running, desired) = replicas.split_once('/')?;
            Some(ServiceRow {
                service: name
                    .strip_prefix(&format!("{stack}_"))
                    .unwrap_or(name)
                    .to_string(),
                running: running.parse().ok()?,
                desired: desired.parse().ok()?,
                image: v["Image"].as_str().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// A service's last update as `docker service inspect` shows it (all empty before the first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateStatus {
    /// `updating`, `completed`, `paused`, `rollback_started`, `rollback_completed`, …
    pub state: String,
    pub message: String,
    /// Tells this update from the previous one.
    pub started_at: String,
}

impl UpdateStatus {
    pub fn finished(&self) -> bool {
        matches!(
            self.state.as_str(),
            "completed" | "paused" | "rollback_completed" | "rollback_paused"
        )
    }
}

pub fn update_status(sh: &Shell, target: &Target, service: &str) -> Result<UpdateStatus> {
    let out = target.read(
        sh,
        &[
            "service",
            "inspect",
            "--format",
            "{{json .UpdateStatus}}",
            service,
        ],
    )?;
    let v: Value = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    let field = |k: &str| v[k].as_str().unwrap_or("").to_string();
    Ok(UpdateStatus {
        state: field("State"),
        message: field("Message"),
        started_at: field("StartedAt"),
    })
}

/// The image a service's spec names now.
pub fn service_image(sh: &Shell, target: &Target, service: &str) -> Result<String> {
    Ok(target
        .read(
            sh,
            &[
                "service",
                "inspect",
                "--format",
                "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                service,
            ],
        )?
        .trim()
        .to_string())
}

/// The nodes a service's running tasks are on.
pub fn task_nodes(sh: &Shell, target: &Target, service: &str) -> Result<Vec<String>> {
    let out = target.read(
        sh,
        &[
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}}\t{{.CurrentState}}",
            service,
        ],
    )?;
    Ok(out
        .lines()
        .filter(|l| l.contains("Running"))
        .filter_map(|l| l.split('\t').next().map(String::from))
        .collect())
}

/// Why a service's tasks did not start (the last errors `docker service ps` shows).
pub fn task_errors(sh: &Shell, target: &Target, service: &str) -> String {
    target
        .read(
            sh,
            &[
                "service",
                "ps",
                "--no-trunc",
                "--format",
                "{{.Node}} {{.CurrentState}} {{.Error}}",
                service,
            ],
        )
        .map(|o| {
            o.lines()
                .take(6)
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// A service that reached all its tasks, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Converged {
    pub service: String,
    /// Tasks running (healthy) of those desired: all of them.
    pub replicas: u64,
    pub after: Duration,
}

impl Converged {
    pub fn to_json(&self) -> Value {
        json!({"service": self.service, "replicas": self.replicas, "seconds": self.after.as_secs_f64()})
    }
    pub fn from_json(v: &Value) -> Option<Converged> {
        Some(Converged {
            service: v["service"].as_str()?.to_string(),
            replicas: v["replicas"].as_u64()?,
            after: Duration::from_secs_f64(v["seconds"].as_f64()?),
        })
    }
    /// `app 2/2 after 14.2s`
    pub fn line(&self) -> String {
        format!(
            "{} {}/{} after {}",
            self.service,
            self.replicas,
            self.replicas,
            secs(self.after)
        )
    }
}

/// Waits until every service of the stack runs all its desired tasks (healthy ones: a task with
/// a health check counts once healthy) and no update is in flight; returns when each service
/// first did.
pub fn wait_converged(
    sh: &Shell,
    target: &Target,
    stack: &str,
    timeout: Duration,
    progress: &mut Progress,
) -> Result<Vec<Converged>> {
    let started = Instant::now();
    let mut done: Vec<Converged> = Vec::new();
    loop {
        crate::signals::check()?;
        let rows = services(sh, target, stack)?;
        for r in &rows {
            let seen = done.iter().any(|c| c.service == r.service);
            if r.desired > 0 && r.running >= r.desired && !seen {
                done.push(Converged {
                    service: r.service.clone(),
                    replicas: r.desired,
                    after: started.elapsed(),
                });
            }
        }
        let line: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {}/{}", r.service, r.running, r.desired))
            .collect();
        let key = format!("swarm: {}", line.join(", "));
        progress.show_keyed(&key, &format!("{key} ({})", secs(started.elapsed())));
        if !rows.is_empty() && rows.iter().all(|r| r.desired > 0 && r.running == r.desired) {
            progress.done();
            return Ok(done);
        }
        if started.elapsed() > timeout {
            progress.done();
            let lagging: Vec<&ServiceRow> = rows.iter().filter(|r| r.running < r.desired).collect();
            let mut why = String::new();
            for r in &lagging {
                let name = format!("{stack}_{}", r.service);
                why.push_str(&format!(
                    "\n  {name} {}/{}:\n{}",
                    r.running,
                    r.desired,
                    task_errors(sh, target, &name)
                ));
            }
            bail!("the stack did not converge in {}:{why}", secs(timeout));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits for the update that follows `before` (the status read before it was asked for) to
/// end; its final status and how long the wait took.
pub fn wait_update(
    sh: &Shell,
    target: &Target,
    service: &str,
    before: &UpdateStatus,
    timeout: Duration,
) -> Result<(UpdateStatus, Duration)> {
    let started = Instant::now();
    loop {
        crate::signals::check()?;
        let now = update_status(sh, target, service)?;
        if now.started_at != before.started_at && now.finished() {
            return Ok((now, started.elapsed()));
        }
        if started.elapsed() > timeout {
            bail!(
                "{service}'s update did not finish in {} (state: {} {})",
                secs(timeout),
                now.state,
                now.message
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests;
