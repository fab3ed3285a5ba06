//! The data tasks killed (SIGKILL: no shutdown of their own) while clients write: the app's form
//! submitted in a loop (rows in PostgreSQL) and a counter incremented in the queue's Redis. Swarm
//! starts them again on the data node with their volumes; every write that was acknowledged
//! must be there after: each acknowledged submission's row, and the counter at least at the
//! highest value Redis answered (its append-only file is written before it replies).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use super::{Ctx, Fault, container_on, redis_admin, replaced_since, task_ids, until_200};
use crate::docker::Engine;
use crate::proof::{
    cluster::Cluster,
    load::{Load, WORKERS},
    swarm::{STACK, release, writes},
};

/// Writes before the kill, and after the data is back.
const WRITING: Duration = Duration::from_secs(2);

pub fn drill(ctx: &Ctx, cluster: &Cluster, fault: &mut Fault) -> Result<()> {
    let sh = ctx.run.sh;
    let manager = cluster.manager();
    let app_before = task_ids(sh, &manager, "app")?;
    let run_id = format!("axk{:x}", crate::util::nanos());
    let form = writes::find_form(ctx.entries[0], &release::pages(&ctx.release.build));
    let writers = form
        .as_ref()
        .map(|(path, _)| writes::Writers::start(ctx.entries, path, &run_id, 2));
    let counter = Counter::start(&manager, &format!("axion:drill:{run_id}"));
    let load = Load::start(ctx.entries, &ctx.served(), WORKERS);
    thread::sleep(WRITING);

    let t = Instant::now();
    let killed = ["db", "redis"].map(|s| container_on(sh, &manager, s));
    for id in killed.iter().flatten() {
        manager.read(sh, &["kill", id])?;
    }
    let back =
        until_200(ctx.entries[0], "/api/health", Duration::from_secs(90)).map(|_| t.elapsed());
    thread::sleep(WRITING);
    let summary = load.finish();
    let posts = writers.map(|w| w.finish()).unwrap_or_default();
    let (acked, counted) = counter.finish(&manager);

    fault.recovery_s = Some(back?.as_secs_f64());
    fault.requests = summary.total.requests;
    fault.failed_requests = summary.total.failed;
    fault.tasks_replaced = replaced_since(sh, &manager, &app_before)?;
    let rows = writes::rows_per_marker(sh, &manager, &format!("{STACK}_db"), &run_id)?;
    let w = writes::Writes::judge(&posts, &rows);
    let counted = counted?;
    fault.lost_writes = w.lost_writes + w.duplicate_writes + acked.saturating_sub(counted) as usize;
    fault.notes.push(format!(
        "killed {} data tasks; forms: {}; redis counter: highest acknowledged {acked}, read back {counted}",
        killed.iter().flatten().count(),
        w.line()
    ));
    fault.no_failed_requests("for pages that need neither", &summary.failures)?;
    if fault.lost_writes > 0 {
        bail!(
            "{} acknowledged writes are gone or doubled: {}; redis counter {counted} after {acked} acknowledged",
            fault.lost_writes,
            w.line()
        );
    }
    Ok(())
}

/// A client incrementing a Redis counter, one `INCR` at a time, keeping the highest answer.
struct Counter {
    stop: Arc<AtomicBool>,
    highest: Arc<Mutex<u64>>,
    thread: thread::JoinHandle<()>,
    key: String,
}

impl Counter {
    fn start(manager: &Engine, key: &str) -> Counter {
        let (stop, highest) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(0)));
        let (manager, k) = (manager.clone(), key.to_string());
        let (s, h) = (stop.clone(), highest.clone());
        let thread = thread::spawn(move || {
            let Ok(sh) = xshell::Shell::new() else {
                return;
            };
            while !s.load(Ordering::Relaxed) {
                match redis_admin(&sh, &manager, &format!("INCR {k}")).map(|v| v.parse::<u64>()) {
                    Ok(Ok(n)) => *h.lock().unwrap() = n,
                    _ => thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        Counter {
            stop,
            highest,
            thread,
            key: key.to_string(),
        }
    }

    /// Stops; the highest value acknowledged, and the counter as Redis has it now.
    fn finish(self, manager: &Engine) -> (u64, Result<u64>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let acked = *self.highest.lock().unwrap();
        let sh = xshell::Shell::new();
        let now = sh.map_err(anyhow::Error::from).and_then(|sh| {
            let v = redis_admin(&sh, manager, &format!("GET {}", self.key))?;
            Ok(v.parse::<u64>().unwrap_or(0))
        });
        (acked, now)
    }
}
