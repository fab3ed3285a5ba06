//! `cargo xtask verify --swarm`: the prod stack on a throw-away three-node swarm (Docker in
//! Docker; the host engine never changes mode), its images through a registry, then a rolling
//! update under steady load that may not fail a single request, then a rollback of an image
//! whose health check fails, then nothing left behind. Exit 0 only if all of it holds.
//!
//! `steps` (the proof on a formed cluster), `neighbour` (a stack beside it that must keep
//! resolving names), `report`.

mod drills;
mod figures;
mod neighbour;
mod operate;
mod release;
mod report;
mod revalidate;
mod second;
mod steps;
mod tab;
mod writes;

use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;
use xshell::Shell;

use neighbour::Neighbour;
use report::Report;

use crate::startup::{Needs, Start};
use crate::{
    docker::{self, Engine},
    flags, lifecycle,
    paths::log_path,
    proof::cluster::Cluster,
    stack::{Ports, Stack, StackKind, TIMEOUT_BUILD},
    swarm,
};

/// One manager, two workers: the smallest swarm where "spread over nodes" and "a worker" mean
/// something.
const NODES: usize = 3;
/// The stack's name on the throw-away swarm.
const STACK: &str = "axion";
const URLS: [&str; 2] = ["/", "/api/health"];
/// The proxy's port inside the swarm (docker-compose.swarm.yml publishes APP_PORT).
const ENTRY_PORT: u16 = 3000;

pub fn run(sh: &Shell, o: &flags::Verify) -> Result<()> {
    if o.keep || o.dry_run {
        bail!(
            "`verify --swarm` takes neither --keep nor --dry-run: its nodes are throw-away by design.\n  \
             fix: run `cargo xtask deploy` against a swarm you keep"
        );
    }
    let started = Instant::now();
    let mut report = Report::default();
    let outcome = prove(sh, o, &mut report);
    report.total = started.elapsed();
    report.ok = outcome.is_ok();
    if let Err(e) = &outcome {
        report.error = Some(format!("{e:#}"));
    }
    if o.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        eprint!("{}", report.human());
    }
    outcome.context("verify --swarm failed")
}

fn prove(sh: &Shell, o: &flags::Verify, report: &mut Report) -> Result<()> {
    let t = Instant::now();
    let needs = Needs {
        images: o.images,
        files: Some(StackKind::Prod),
        ..Default::default()
    };
    let start = Start::new(sh, needs)?;
    let host_mode = swarm::membership(sh, &Engine::configured())?.state;
    let set = start.set();
    let stack = Stack::throwaway(StackKind::Prod, "swarm", &start.env, set, Ports::free()?);
    let project = stack.project().to_string();
    let mut neighbour = Neighbour::start(sh, &project)?;
    neighbour.check(sh).context("before the proof")?;
    report.phase("preflight", t.elapsed());

    let t = Instant::now();
    let policy = crate::integrity::Policy::for_run(o.cold, o.no_verify.clone());
    let timeout = o.timeout_build.unwrap_or(TIMEOUT_BUILD);
    build_runner(sh, &policy, timeout, &stack)?;
    report.phase("build (runner)", t.elapsed());

    let t = Instant::now();
    let counts_before = host_counts(sh);
    // The run's own image goes with the cluster (and with a reaped run, by its labels).
    let images = vec![stack.app_image(), second::tag(&stack)];
    let mut cluster = Cluster::create(sh, &project, NODES, images)?;
    // Built while the cluster takes the first release (mostly waiting on health checks).
    // Its lockfile is the first build's, installed cold already when the run asked for it.
    let warm = crate::integrity::Policy {
        cold: false,
        ..policy
    };
    let second = second::Pending::start(&stack, warm, timeout, &stack.app_image());
    report.phase("cluster (3 nodes + registry)", t.elapsed());
    report_cluster(&cluster, report);
    let proxy = crate::cmd::deploy::proxy_image(sh, set)?;
    let run = steps::Run {
        sh,
        o,
        standin: set.standin,
        image: stack.app_image(),
        second: &second,
        proxy,
    };
    let outcome = steps::on_cluster(&run, &mut cluster, report);
    // Its image goes with the cluster: never made after the teardown.
    let _ = second.wait();

    let t = Instant::now();
    let teardown = cluster.teardown();
    report.phase("teardown", t.elapsed());
    outcome?;
    teardown?;
    nothing_left(sh, &cluster, report)?;
    host_unchanged(sh, &host_mode, &counts_before, report)?;
    // A stack beside the proof still resolves its services.
    report.neighbour = Some(neighbour.check(sh).context("after the proof")?);
    neighbour.stop();
    Ok(())
}

/// The cluster's timings and its nodes with their roles.
fn report_cluster(cluster: &Cluster, report: &mut Report) {
    for (what, d) in &cluster.timings {
        report.phase(&format!("  {what}"), *d);
    }
    for n in &cluster.nodes {
        let role = if n.hostname == cluster.nodes[0].hostname {
            "manager, data"
        } else {
            "worker"
        };
        report
            .nodes
            .push(json!({"node": n.hostname, "ip": n.ip, "role": role}));
    }
}

/// The host engine's swarm state is what it was before the run; its counts, for the report.
fn host_unchanged(
    sh: &Shell,
    before: &str,
    counts_before: &str,
    report: &mut Report,
) -> Result<()> {
    let after = swarm::membership(sh, &Engine::configured())?.state;
    report
        .host
        .push(("swarm state".into(), format!("{after} (was {before})")));
    // Everyone's, not only the run's: what `docker ps -a`, `network ls`, `volume ls` count.
    let counts = format!("{} (before the cluster: {counts_before})", host_counts(sh));
    report
        .host
        .push(("containers, networks, volumes".into(), counts));
    if after != before {
        bail!("the host engine's swarm state changed from {before} to {after}");
    }
    Ok(())
}

/// The prod runner the proof deploys, built as `verify --prod` builds it.
fn build_runner(
    sh: &Shell,
    policy: &crate::integrity::Policy,
    timeout: std::time::Duration,
    stack: &Stack,
) -> Result<()> {
    let log = log_path(&sh.current_dir(), &format!("{}-build.log", stack.project()));
    lifecycle::build(
        sh,
        &stack.compose,
        StackKind::Prod,
        policy,
        &["app"],
        &log,
        timeout,
    )
    .map(|_| ())
}

/// Nothing of the run is left on the host engine: containers, volumes, networks, images.
fn nothing_left(sh: &Shell, cluster: &Cluster, report: &mut Report) -> Result<()> {
    let mut left = docker::leftovers(&cluster.project)?;
    left.extend(
        cluster
            .leftover_images(sh)
            .into_iter()
            .map(|i| format!("image {i}")),
    );
    if !left.is_empty() {
        bail!(
            "the run left {} behind on the host engine: {}",
            left.len(),
            left.join(", ")
        );
    }
    report.host.push((
        "run's containers, volumes, networks, images left".into(),
        "0".into(),
    ));
    Ok(())
}

/// `3 containers, 5 networks, 6 volumes` on the host engine.
fn host_counts(sh: &Shell) -> String {
    let (c, n, v) = docker::counts(sh);
    format!("{c} containers, {n} networks, {v} volumes")
}
