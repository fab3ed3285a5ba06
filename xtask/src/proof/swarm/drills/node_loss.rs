//! A lost node: a worker that runs an app task has its engine killed (its Docker-in-Docker
//! container, SIGKILL: a machine that lost power), under a load through the other nodes' entry
//! points. The swarm must notice and start its tasks on the others. A request in flight to the
//! lost task gets no answer (its packets go nowhere): the proxy sends a GET again once its
//! `timeout server` (30 s) passes, and its second attempt may wait as long. The load gives each
//! request three of those and some (a browser waits minutes), reports the slowest and, when one
//! waited that long, what the surviving proxies logged of it. The last drill: the cluster is a
//! node short after it.

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::{Ctx, Fault, container_on, replaced_since, task_ids, until_200};
use crate::{
    docker::Engine,
    proof::{
        cluster::Cluster,
        load::{Load, WORKERS},
        swarm::STACK,
    },
    swarm,
};

/// How often a node reports to the managers (default 5 s): a lost node is found after a few.
const HEARTBEAT: &str = "2s";
/// A request's limit under this drill: three of haproxy's `timeout server`, and some. A GET in
/// flight to the lost task waits one before the proxy sends it again; fresh CI runs saw GETs
/// whose second attempt waited a whole timeout too (the proxy logged `0/60008/…/+2`, the second
/// redispatch answering), so 60 s is what a user may wait here.
const PATIENCE: Duration = Duration::from_secs(95);

pub fn drill(ctx: &Ctx, cluster: &Cluster, fault: &mut Fault) -> Result<()> {
    let sh = ctx.run.sh;
    let manager = cluster.manager();
    manager.read(
        sh,
        &["swarm", "update", "--dispatcher-heartbeat", HEARTBEAT],
    )?;
    // A worker (never node 0: the manager and data node) with an app task.
    let victim = (1..cluster.nodes.len())
        .find(|&i| container_on(sh, &cluster.nodes[i].target(), "app").is_some())
        .context("no worker runs an app task")?;
    let lost = cluster.nodes[victim].clone();
    let survivors: Vec<_> = (0..ctx.entries.len())
        .filter(|&i| i != victim)
        .map(|i| ctx.entries[i])
        .collect();
    let before = task_ids(sh, &manager, "app")?;
    let paths = ctx.every_route();
    let load = Load::start_timed(&survivors, &paths, WORKERS, PATIENCE);
    thread::sleep(Duration::from_secs(2));

    let t = Instant::now();
    let since = (crate::util::nanos() / 1_000_000_000).to_string();
    Engine::configured()
        .read(sh, &["kill", &lost.container])
        .with_context(|| format!("killing node {}", lost.hostname))?;
    let down = wait_down(sh, &manager, &lost.hostname).map(|()| t.elapsed());
    let back = down
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .and_then(|_| wait_elsewhere(sh, &manager, &lost.hostname, before.len()))
        .and_then(|()| until_200(survivors[0], "/api/health", Duration::from_secs(30)))
        .map(|_| t.elapsed());
    thread::sleep(Duration::from_secs(2));
    let summary = load.finish();
    fault.requests = summary.total.requests;
    fault.failed_requests = summary.total.failed;
    fault.recovery_s = back.as_ref().ok().map(Duration::as_secs_f64);
    fault.tasks_replaced = replaced_since(sh, &manager, &before)?;
    fault.notes.push(format!(
        "killed {} (a worker with an app task); the swarm saw it down after {}; slowest request {:.0} ms, p99 {:.0} ms",
        lost.hostname,
        down.as_ref()
            .map(|d| format!("{:.1} s", d.as_secs_f64()))
            .unwrap_or_else(|e| format!("never ({e})")),
        summary.total.max_ms,
        summary.total.p99_ms
    ));
    if summary.total.failed > 0 || summary.total.max_ms > PROXY_TIMEOUT_MS {
        // What the proxies saw: which task each slow request went to, its retries, its timers.
        for (node, line) in proxy_log(sh, cluster, victim, &since) {
            fault.notes.push(format!("proxy on {node}: {line}"));
        }
    }
    back?;
    fault.no_failed_requests("while a node was lost", &summary.failures)
}

/// haproxy's `timeout server` (docker/swarm/haproxy.cfg): a slower answer waited for a lost task.
const PROXY_TIMEOUT_MS: f64 = 30_000.0;

/// The lines the surviving nodes' proxies logged since `since` (unix seconds): only what went
/// wrong is logged (`option dontlog-normal`), the last few of each.
fn proxy_log(
    sh: &xshell::Shell,
    cluster: &Cluster,
    lost: usize,
    since: &str,
) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for (_, node) in cluster.nodes.iter().enumerate().filter(|(i, _)| *i != lost) {
        let Some(id) = container_on(sh, &node.target(), "proxy") else {
            continue;
        };
        let Ok(out) = node.target().read(sh, &["logs", "--since", since, &id]) else {
            continue;
        };
        let logged: Vec<&str> = out.lines().filter(|l| l.contains(" app/")).collect();
        lines.extend(
            logged[logged.len().saturating_sub(8)..]
                .iter()
                .map(|l| (node.hostname.clone(), l.to_string())),
        );
    }
    lines
}

/// Until the managers list the node as down.
fn wait_down(sh: &xshell::Shell, manager: &Engine, hostname: &str) -> Result<()> {
    crate::util::poll(
        &format!("the swarm to see {hostname} down"),
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let nodes =
                manager.read(sh, &["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])?;
            Ok(nodes
                .lines()
                .any(|l| l == format!("{hostname} Down"))
                .then_some(()))
        },
    )
}

/// Until `n` app tasks run healthy, none on the lost node.
fn wait_elsewhere(sh: &xshell::Shell, manager: &Engine, lost: &str, n: usize) -> Result<()> {
    crate::util::poll(
        "the app's tasks to run on the other nodes",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || {
            let on = swarm::task_nodes(sh, manager, &format!("{STACK}_app"))?;
            Ok((on.iter().filter(|n| n.as_str() != lost).count() >= n).then_some(()))
        },
    )
}
