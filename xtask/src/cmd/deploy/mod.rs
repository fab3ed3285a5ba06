//! `cargo xtask deploy`: the prod stack on the swarm this engine manages (or the one DOCKER_HOST
//! or the docker context points at): the runner built, every image pushed to `--registry` and
//! deployed by digest (local tags on a one-node swarm), then watched until every task is
//! healthy. Run again with a new revision, it is a rolling update (start-first, health-gated,
//! rolled back automatically on failure: docker-compose.swarm.yml). `deploy` does it and
//! returns a typed `Release`; `verify --swarm` calls it as a function.

mod carry;
mod checks;
mod publish;
mod release;
mod rollback;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow, bail};
use xshell::Shell;

pub use carry::own_static_urls;
use checks::not_in_a_swarm;
pub use checks::{check_manager, check_registry, check_stack_name};
pub use release::Release;

use crate::{
    docker::{self, Engine},
    engine,
    env_file::EnvSource,
    flags, images, lifecycle,
    paths::log_path,
    progress::Progress,
    stack::{Ports, Stack, StackKind, TIMEOUT_BUILD, TIMEOUT_HEALTHY},
    standin,
    startup::{Needs, Start},
    swarm::{self, Converged, DATA_LABEL, Membership, StackImages, TIMEOUT_UPDATE},
    util::note,
};

impl flags::Deploy {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let release = deploy(sh, &self)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&release.to_json())?);
        } else {
            eprintln!("{}", release.line());
        }
        Ok(())
    }
}

/// Builds (unless `--image`), pushes, deploys and waits until every task is healthy.
pub fn deploy(sh: &Shell, o: &flags::Deploy) -> Result<Release> {
    let started = Instant::now();
    let stack = o
        .stack
        .clone()
        .unwrap_or_else(|| swarm::DEFAULT_STACK.into());
    check_stack_name(&stack)?;
    o.check_flags()?;
    // The swarm is asked first: a refusal must not wait for stand-in images to build.
    engine::preflight()?;
    let target = o
        .manager
        .as_deref()
        .map_or_else(Engine::configured, Engine::host);
    let member = o.membership(sh, &target)?;
    o.check_registry_reach(&member)?;
    ensure_data_node(sh, &target, &member)?;
    // A rollback's release is found (or refused) before anything is built or started.
    let back = o
        .rollback
        .then(|| rollback::app_of(sh, o, &target, &stack))
        .transpose()?;

    let start = Start::new(
        sh,
        Needs {
            images: o.images,
            files: Some(StackKind::Prod),
            ..Default::default()
        },
    )?;
    let (root, env, set) = (&start.root, &start.env, start.set());
    let ports = Ports::from_env(env)?;
    let t = Instant::now();
    let (app, back_to) = match (&o.image, back) {
        (Some(image), _) => (given_image(sh, image)?, None),
        (None, Some((app, record))) => (app, Some(record.release)),
        (None, None) => (build_runner(sh, root, env, set, ports)?, None),
    };
    let build = t.elapsed();
    let build_id = release::build_id_of(sh, &app);
    let carried = o.carry_previous_assets(sh, &target, &stack, &app)?;
    let app = carried.clone().unwrap_or(app);
    let locals = [
        (app, "axion-hub/app".to_string()),
        (set.postgres.clone(), "axion-hub/postgres".into()),
        (set.redis.clone(), "axion-hub/redis".into()),
        (proxy_image(sh, set)?, "axion-hub/haproxy".into()),
    ];
    let t = Instant::now();
    let (images, local) = o.publish(sh, &locals)?;
    let push = t.elapsed();

    let file = o.render(sh, root, &stack, &images, ports)?;
    let t = Instant::now();
    let mut progress = Progress::new(o.json);
    let (rolling_update, converged) =
        roll_out(sh, &target, &stack, &images, &file, local, &mut progress)?;
    let (recorded, pruned) =
        release::record_and_prune(sh, &target, &stack, &images, build_id, back_to, local)?;
    Ok(Release {
        stack,
        file,
        images,
        registry: o.registry.clone(),
        given_image: o.image.clone(),
        rolling_update,
        build,
        push,
        deploy: t.elapsed(),
        total: started.elapsed(),
        converged,
        carried,
        app_port: ports.app,
        https_port: env.get("HTTPS_PORT").unwrap_or_else(|| "3443".into()),
        recorded: Some(recorded),
        pruned,
    })
}

/// `docker stack deploy`, then the rolling update of every service whose task changed (the
/// app's image, the proxy's renewed certificate; each ends completed or rolled back), then
/// every service converged. The app's update time is returned.
fn roll_out(
    sh: &Shell,
    target: &Engine,
    stack: &str,
    images: &StackImages,
    file: &Path,
    local: bool,
    progress: &mut Progress,
) -> Result<(Option<Duration>, Vec<Converged>)> {
    // The app first: its update is the one timed.
    let mut before: Vec<(String, swarm::UpdateStatus, String)> = Vec::new();
    let mut names: Vec<String> = swarm::services(sh, target, stack)
        .unwrap_or_default()
        .into_iter()
        .map(|s| format!("{stack}_{}", s.service))
        .collect();
    names.sort_by_key(|n| !n.ends_with("_app"));
    for name in names {
        let status = swarm::update_status(sh, target, &name).unwrap_or_default();
        let task = swarm::task_template(sh, target, &name).unwrap_or_default();
        before.push((name, status, task));
    }
    swarm::stack_deploy(sh, target, stack, file, local)?;
    let mut app_update = None;
    for (name, status, task) in &before {
        if swarm::task_template(sh, target, name).unwrap_or_default() == *task {
            continue;
        }
        let (after, took) = swarm::wait_update(sh, target, name, status, TIMEOUT_UPDATE)?;
        if after.state != "completed" {
            bail!(
                "the update of {name}{} ended {} ({}): the previous version keeps serving.\n  its tasks (`docker service ps {name}`):\n{}",
                if name.ends_with("_app") {
                    format!(" to {}", images.app)
                } else {
                    String::new()
                },
                after.state,
                after.message,
                swarm::task_errors(sh, target, name)
            );
        }
        if name.ends_with("_app") {
            app_update = Some(took);
        }
    }
    let converged = swarm::wait_converged(sh, target, stack, TIMEOUT_HEALTHY, progress)?;
    Ok((app_update, converged))
}

fn given_image(sh: &Shell, image: &str) -> Result<String> {
    if !docker::image_exists(sh, image) {
        bail!("--image {image}: no such image on this engine (`docker image ls` lists them)");
    }
    Ok(image.to_string())
}

/// The edge proxy: EDGE_IMAGE, else the stand-in or haproxy:3.0 as the other images are.
pub fn proxy_image(sh: &Shell, set: &images::ImageSet) -> Result<String> {
    Ok(match std::env::var("EDGE_IMAGE") {
        Ok(v) if !v.is_empty() => v,
        _ if set.standin => {
            standin::ensure_only(sh, &["haproxy"])?;
            standin::HAPROXY.to_string()
        }
        _ => "haproxy:3.0".to_string(),
    })
}

impl flags::Deploy {
    /// A swarm of more nodes than this one, or on another engine, runs only what it can pull.
    fn check_registry_reach(&self, member: &Membership) -> Result<()> {
        if self.registry.is_none() && (member.nodes > 1 || self.manager.is_some()) {
            bail!(
                "{}, and a node can run only images it can pull.\n  \
                 fix: cargo xtask deploy --registry HOST:PORT (a registry every node reaches; the images are pushed there and deployed by digest)",
                if self.manager.is_some() {
                    "the swarm is on another engine (--manager)".to_string()
                } else {
                    format!("this swarm has {} nodes", member.nodes)
                }
            );
        }
        Ok(())
    }

    /// The app image with the running release's own static files laid over it (`carry`), when
    /// a release runs from this registry; the new tag, or `None`. A one-node swarm deployed from
    /// local tags has no previous image to name (its tag moved to the new build).
    fn carry_previous_assets(
        &self,
        sh: &Shell,
        target: &Engine,
        stack: &str,
        app: &str,
    ) -> Result<Option<String>> {
        let Some(registry) = &self.registry else {
            return Ok(None);
        };
        let Ok(running) = swarm::service_image(sh, target, &format!("{stack}_app")) else {
            return Ok(None); // the first deploy
        };
        let nodes = self.node_registry.as_deref().unwrap_or(registry);
        let Some(path) = running.strip_prefix(&format!("{nodes}/")) else {
            return Ok(None); // a release from another registry: not ours to pull
        };
        let previous = format!("{registry}/{path}");
        if !docker::image_exists(sh, &previous) {
            docker::pull(sh, &previous)?;
        }
        if docker::image_id(sh, &previous)? == docker::image_id(sh, app)? {
            return Ok(None);
        }
        carry::carry_previous(sh, app, &previous).map(Some)
    }

    /// The stack file for these images, rendered with the checkout's secrets, the TLS
    /// certificate and the ports.
    fn render(
        &self,
        sh: &Shell,
        root: &Path,
        stack: &str,
        images: &StackImages,
        ports: Ports,
    ) -> Result<PathBuf> {
        let file = crate::paths::stack_file(root, stack);
        let tls = crate::tls::ensure(root, self.tls_cert.as_deref())?;
        let mut vars = swarm::stack_vars(root, &tls);
        vars.extend(ports.named().map(|(k, p)| (k.to_string(), p.to_string())));
        swarm::render(
            sh,
            root,
            stack,
            images,
            &vars,
            self.encrypted_overlays,
            &file,
        )?;
        Ok(file)
    }

    /// What the flags say together, before anything is built or asked of an engine.
    fn check_flags(&self) -> Result<()> {
        if self.rollback && self.image.is_some() {
            bail!("--rollback takes the image of a recorded release: leave --image out");
        }
        self.release_number()?;
        for r in [&self.registry, &self.node_registry].into_iter().flatten() {
            check_registry(r)?;
        }
        if self.node_registry.is_some() && self.registry.is_none() {
            bail!(
                "--node-registry names how the nodes reach --registry: give --registry HOST:PORT too"
            );
        }
        if let Some(m) = &self.manager {
            let tls = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| v == "1");
            check_manager(m, tls)?;
        }
        match (self.init, &self.advertise_addr) {
            (true, None) => bail!(
                "deploy --init would make the swarm listen on every address of this host.\n  fix: name the one \
                 the other nodes reach it by (a private network, not the internet): --advertise-addr <IP>"
            ),
            (false, Some(_)) => bail!(
                "--advertise-addr is for --init (a swarm that exists already keeps its addresses)"
            ),
            _ => Ok(()),
        }
    }

    /// The swarm membership of the target engine; `--init` makes this engine a one-node swarm.
    fn membership(&self, sh: &Shell, target: &Engine) -> Result<Membership> {
        let member = swarm::membership(sh, target)?;
        if member.state == "active" || !self.init {
            if !member.manager {
                bail!("{}", not_in_a_swarm(&member));
            }
            return Ok(member);
        }
        note(
            "deploy --init: making this engine a one-node swarm. Switching an engine into swarm mode \
             can break name resolution in compose stacks already running on it (until they are \
             recreated: `cargo xtask down` then `cargo xtask dev`).",
        );
        let addr = self.advertise_addr.as_deref().unwrap_or_default();
        swarm::init(sh, target, addr).map_err(|e| {
            anyhow!("{e:#}\n  fix: --advertise-addr must be an address of this engine's host")
        })?;
        swarm::membership(sh, target)
    }
}

/// The prod runner, built as the prod stack builds it (`axion-hub:runner`).
fn build_runner(
    sh: &Shell,
    root: &std::path::Path,
    env: &EnvSource,
    set: &images::ImageSet,
    ports: Ports,
) -> Result<String> {
    let stack = Stack::new(StackKind::Prod, StackKind::Prod.project(), env, set, ports);
    let log = log_path(root, "deploy-build.log");
    lifecycle::build(
        sh,
        &stack.compose,
        StackKind::Prod,
        &crate::integrity::Policy::for_run(false, None),
        &["app"],
        &log,
        TIMEOUT_BUILD,
    )?;
    Ok(stack.app_image())
}

/// db and redis are pinned to the node labelled DATA_LABEL (their volumes stay there). A
/// one-node swarm's node is labelled here; on more nodes, which disk holds the data is the
/// operator's choice.
fn ensure_data_node(sh: &Shell, target: &Engine, m: &Membership) -> Result<()> {
    let nodes = swarm::nodes(sh, target)?;
    for (id, _) in &nodes {
        if swarm::node_labelled(sh, target, id, DATA_LABEL)? {
            return Ok(());
        }
    }
    match nodes.as_slice() {
        [(id, host)] if m.nodes <= 1 => {
            note(format!(
                "deploy: labelling {host} {DATA_LABEL}=true (db and redis run there)"
            ));
            swarm::label_node(sh, target, id, DATA_LABEL)
        }
        _ => bail!(
            "no node is labelled {DATA_LABEL}=true: db and redis are pinned to it, because their volumes stay on one node's disk.\n  \
             fix: docker node update --label-add {DATA_LABEL}=true <NODE> (one of: {})",
            nodes
                .iter()
                .map(|(_, h)| h.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
