//! A dependency outage: the queue's Redis gone for 30 s (its service scaled to 0, as a
//! stop-first update or a crash loop takes it away), then PostgreSQL the same, under a load of
//! what needs neither. Each outage is longer than the app's health check would have tolerated
//! when it asked them (5 × 5 s): liveness does not, so no app task may be replaced. During
//! it, `/api/health` must answer 503 within 2 s, and how the routes that may need the
//! dependency answered (status, slowest) is reported; after its return, `/api/health` answers
//! 200 within 5 s and every other route within 30 s (the time is the figure). A row and a queue key written just before are there after.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use xshell::Shell;

use super::{Ctx, Fault, redis_admin, replaced_since, task_ids, until_200};
use crate::{
    docker::Engine,
    http,
    proof::{
        cluster::Cluster,
        load::{Load, WORKERS},
        swarm::{STACK, release, writes},
    },
    swarm,
};

pub const DOWN: Duration = Duration::from_secs(30);
/// How soon after the dependency is back `/api/health` must answer 200.
pub const BACK_WITHIN: Duration = Duration::from_secs(5);
/// How soon after it every other route that answered 200 before must again: past this, the
/// app did not recover.
pub const RECOVER_LIMIT: Duration = Duration::from_secs(30);
/// The slowest answer the stack's deep check may give while a dependency is missing.
pub const FAIL_FAST: Duration = Duration::from_secs(2);
const HEALTH: &str = "/api/health";

pub fn drill(ctx: &Ctx, cluster: &Cluster, fault: &mut Fault) -> Result<()> {
    let sh = ctx.run.sh;
    let manager = cluster.manager();
    let app_before = task_ids(sh, &manager, "app")?;
    let mark = format!("axo{:x}", crate::util::nanos());
    let row = written_row(ctx.entries[0], ctx.release, &mark);
    let key = format!("axion:drill:{mark}");
    redis_admin(sh, &manager, &format!("SET {key} kept"))?;

    let load = Load::start(ctx.entries, &ctx.served(), WORKERS);
    let outages: Result<Vec<Duration>> = ["redis", "db"]
        .iter()
        .map(|dep| {
            // Brought back even when the outage went wrong: the drills after it need it.
            let seen = without(ctx, sh, &manager, dep);
            let back = back(ctx, sh, &manager, dep);
            fault.notes.push(seen?);
            back
        })
        .collect();
    let summary = load.finish();
    fault.requests = summary.total.requests;
    fault.failed_requests = summary.total.failed;
    fault.tasks_replaced = replaced_since(sh, &manager, &app_before)?;
    let recovered = outages?;
    fault.recovery_s = recovered.iter().max().map(Duration::as_secs_f64);

    if redis_admin(sh, &manager, &format!("GET {key}"))? != "kept" {
        fault.lost_writes += 1;
    }
    if let Some(marker) = &row {
        let rows = writes::rows_per_marker(sh, &manager, &format!("{STACK}_db"), &mark)?;
        fault.lost_writes += usize::from(rows.get(marker).copied().unwrap_or(0) == 0);
    }
    fault.notes.push(format!(
        "written before: a queue key{}",
        if row.is_some() { " and a row" } else { "" }
    ));
    judge(fault, &summary.failures)
}

fn judge(fault: &Fault, failures: &[String]) -> Result<()> {
    fault.no_failed_requests("for pages that need neither", failures)?;
    if fault.tasks_replaced > 0 {
        bail!(
            "{} app tasks were replaced during an outage of a dependency",
            fault.tasks_replaced
        );
    }
    if fault.lost_writes > 0 {
        bail!(
            "{} writes made before the outage are gone",
            fault.lost_writes
        );
    }
    Ok(())
}

/// A row written through the app's own form just before, when the build has one: its marker.
fn written_row(entry: SocketAddr, release: &release::Known, mark: &str) -> Option<String> {
    let (path, form) = writes::find_form(entry, &release::pages(&release.build))?;
    let marker = format!("{mark}-kept");
    let post = writes::submit(entry, &path, &form, &marker, false);
    post.failure.is_none().then_some(marker)
}

/// `dep` scaled to 0 for DOWN while the routes that need it are asked: what each answered
/// and its slowest answer.
fn without(ctx: &Ctx, sh: &Shell, manager: &Engine, dep: &str) -> Result<String> {
    let t = Instant::now();
    scale(sh, manager, dep, 0)?;
    let mut seen: Vec<(String, Vec<String>, Duration)> = ctx
        .needing
        .iter()
        .map(|p| (p.clone(), Vec::new(), Duration::ZERO))
        .collect();
    while t.elapsed() < DOWN {
        for (path, statuses, slowest) in &mut seen {
            let asked = Instant::now();
            let status = match http::get_at(ctx.entries[0], path, Duration::from_secs(10)) {
                Ok(r) => r.status.to_string(),
                Err(_) => "no answer".to_string(),
            };
            *slowest = (*slowest).max(asked.elapsed());
            if !statuses.contains(&status) {
                statuses.push(status);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let routes: Vec<String> = seen
        .iter()
        .map(|(p, s, d)| format!("{p} {} (slowest {} ms)", s.join("/"), d.as_millis()))
        .collect();
    let line = format!(
        "{dep} down {:.0} s; the routes that may need it answered {}",
        t.elapsed().as_secs_f64(),
        routes.join(", ")
    );
    // The stack's own deep check must fail fast; the app's other routes are its own code,
    // reported (as verify --prod does) rather than judged.
    if seen.iter().any(|(p, _, d)| p == HEALTH && *d > FAIL_FAST) {
        bail!(
            "{line}: {HEALTH} over {FAIL_FAST:?}, so a monitor waits on a dependency that is not there"
        );
    }
    Ok(line)
}

/// `dep` back to one task, healthy; then how long until every route that needs it answers 200.
fn back(ctx: &Ctx, sh: &Shell, manager: &Engine, dep: &str) -> Result<Duration> {
    scale(sh, manager, dep, 1)?;
    crate::util::poll(
        &format!("{STACK}_{dep} to run a healthy task again"),
        Duration::from_secs(90),
        Duration::from_millis(200),
        || {
            let rows = swarm::services(sh, manager, STACK)?;
            Ok(rows
                .iter()
                .any(|r| r.service == dep && r.running == 1)
                .then_some(()))
        },
    )?;
    // The stack's deep check within BACK_WITHIN; the app's own routes within RECOVER_LIMIT
    // (their clients are the app's: how long they took is the figure).
    let t = Instant::now();
    if ctx.needing.iter().any(|p| p == HEALTH) {
        until_200(ctx.entries[0], HEALTH, BACK_WITHIN)
            .with_context(|| format!("after {dep} was back"))?;
    }
    for path in &ctx.needing {
        until_200(ctx.entries[0], path, RECOVER_LIMIT)
            .with_context(|| format!("after {dep} was back"))?;
    }
    Ok(t.elapsed())
}

fn scale(sh: &Shell, manager: &Engine, dep: &str, n: u32) -> Result<()> {
    manager.read(
        sh,
        &[
            "service",
            "scale",
            "--detach",
            &format!("{STACK}_{dep}={n}"),
        ],
    )?;
    Ok(())
}
