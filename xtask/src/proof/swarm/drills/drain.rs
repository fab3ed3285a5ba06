//! A drained task: SIGTERM to one app task (what `docker stop`, a scale down or an update sends)
//! while clients upload forms slowly (each request in flight for several seconds) and a GET
//! load runs. The app's clients here are the proxies, over keep-alive connections they reuse:
//! the task must finish what it took (app/serve.mjs: unready at once, closed after 3 s, requests
//! in flight finished), and the proxies must move the rest to the other task. 0 failures.

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use super::{Ctx, Fault, containers, replaced_since, task_ids};
use crate::{
    http,
    proof::{
        cluster::Cluster,
        html,
        load::{Load, WORKERS},
        swarm::{STACK, release, writes},
    },
    swarm,
};

/// How long each slow upload takes.
const SLOW: Duration = Duration::from_secs(6);
/// Slow uploads at once: with two tasks and round robin, some land on the drained one.
const UPLOADS: usize = 4;
/// When the SIGTERM goes, after the uploads started.
const TERM_AFTER: Duration = Duration::from_millis(1500);

pub fn drill(ctx: &Ctx, cluster: &Cluster, fault: &mut Fault) -> Result<()> {
    let sh = ctx.run.sh;
    let manager = cluster.manager();
    let before = task_ids(sh, &manager, "app")?;
    let Some((node, id)) = containers(sh, cluster, "app").into_iter().next() else {
        bail!("no running app task to drain");
    };
    let paths = ctx.every_route();
    let load = Load::start(ctx.entries, &paths, WORKERS);
    let pages = release::pages(&ctx.release.build);
    let form = writes::find_form(ctx.entries[0], &pages);
    let run_id = format!("axd{:x}", crate::util::nanos());
    // Each upload a form of its own (its own idempotency key, if the app gives one).
    let uploads: Vec<_> = (0..UPLOADS)
        .filter_map(|k| {
            let entry = ctx.entries[k % ctx.entries.len()];
            let (path, form) = writes::find_form(entry, &pages)?;
            let marker = format!("{run_id}-s{k}");
            Some(thread::spawn(move || {
                slow_upload(entry, &path, &form, &marker)
            }))
        })
        .collect();
    thread::sleep(TERM_AFTER);
    let target = cluster.nodes[node].target();
    let t = Instant::now();
    target.read(sh, &["kill", "--signal", "TERM", &id])?;
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    for u in uploads {
        match u
            .join()
            .unwrap_or_else(|_| Err("an upload panicked".into()))
        {
            Ok(marker) => done.push(marker),
            Err(why) => failed.push(why),
        }
    }
    let back = wait_replaced(sh, &manager, &before).map(|()| t.elapsed());
    let summary = load.finish();
    fault.recovery_s = back.as_ref().ok().map(Duration::as_secs_f64);
    fault.requests = summary.total.requests + (done.len() + failed.len()) as u64;
    fault.failed_requests = summary.total.failed + failed.len() as u64;
    fault.tasks_replaced = replaced_since(sh, &manager, &before)?;
    let rows = writes::rows_per_marker(sh, &manager, &format!("{STACK}_db"), &run_id)?;
    fault.lost_writes = done.iter().filter(|m| rows.get(*m) != Some(&1)).count();
    let drained = crate::util::tail(&target.read(sh, &["logs", &id]).unwrap_or_default(), 3);
    fault.notes.push(match &form {
        Some((path, _)) => {
            format!("{UPLOADS} uploads to {path} over {SLOW:?} each, SIGTERM after {TERM_AFTER:?}")
        }
        None => "no server-action form in the build: no slow upload, the GET load only".into(),
    });
    fault.notes.push(format!(
        "the drained task said: {}",
        drained
            .lines()
            .filter(|l| l.contains("drain:"))
            .collect::<Vec<_>>()
            .join(" / ")
    ));
    failed.extend(summary.failures);
    fault.no_failed_requests("while a task drained", &failed)?;
    if fault.lost_writes > 0 {
        bail!(
            "{} slow uploads were answered with success and are not exactly once in the database",
            fault.lost_writes
        );
    }
    back.map(|_| ())
}

/// One form uploaded over SLOW: its marker, or why it failed.
fn slow_upload(
    entry: std::net::SocketAddr,
    path: &str,
    form: &html::ActionForm,
    marker: &str,
) -> Result<String, String> {
    let boundary = format!("axion-proof-{marker}");
    let (ct, body) = html::multipart(&form.filled(marker), &boundary);
    let r = http::post_slowly(
        entry,
        path,
        &[("Content-Type", &ct)],
        &body,
        SLOW,
        Duration::from_secs(30),
    );
    match r {
        Ok(r) if matches!(r.status, 200 | 303) => Ok(marker.to_string()),
        Ok(r) => Err(format!("slow POST {path} ({marker}): {}", r.describe())),
        Err(e) => Err(format!("slow POST {path} ({marker}): {e}")),
    }
}

/// Until the drained task is gone and the app runs all its tasks, healthy, again.
fn wait_replaced(
    sh: &xshell::Shell,
    manager: &crate::docker::Engine,
    before: &std::collections::BTreeSet<String>,
) -> Result<()> {
    crate::util::poll(
        "the app to replace the drained task",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || {
            let now = task_ids(sh, manager, "app")?;
            let rows = swarm::services(sh, manager, STACK)?;
            let all = rows
                .iter()
                .any(|r| r.service == "app" && r.running == r.desired);
            Ok((all && now.len() == before.len() && now != *before).then_some(()))
        },
    )
}
