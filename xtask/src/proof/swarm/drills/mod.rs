//! Faults at scale, on the proof's cluster after the releases: each drill breaks one thing under
//! load and measures what users and data went through. In order, the harmless first and the
//! node loss last (the cluster is one node short after it):
//! - `memory`: the app's caches and the queue's Redis filled to their bounds: no OOM kill;
//! - `drain`: SIGTERM to an app task with slow requests in flight: they complete;
//! - `outage`: Redis, then PostgreSQL, gone 30 s each: static and cached pages 200 throughout,
//!   no app task replaced, the routes that need them back within 5 s, nothing lost;
//! - `data_kill`: the db and redis tasks killed under writes: nothing acknowledged lost;
//! - `node_loss`: a worker's engine killed: its tasks come back on the others.
//!
//! What users would request is derived from the build: its prerendered pages and static files
//! (served without PostgreSQL or Redis), its other routes (which may need them).

mod data_kill;
mod drain;
mod memory;
mod node_loss;
mod outage;

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use anyhow::{Result, bail};
use serde_json::{Value, json};
use xshell::Shell;

use super::{STACK, release::Known, steps::Run};
use crate::{docker::Engine, http, proof::cluster::Cluster};

/// The stack's per-task probes (app/lib/lifecycle.ts): what a task says of itself, not a route
/// users ask; readiness is 503 on a draining task by design.
const PROBES: [&str; 2] = ["/api/live", "/api/ready"];

/// What one drill came to: the `faults` report's entry.
#[derive(Debug, Clone, Default)]
pub struct Fault {
    pub drill: &'static str,
    /// Requests that should have succeeded and did not (GETs of what the fault leaves
    /// working; for the drain, the requests in flight).
    pub failed_requests: u64,
    pub requests: u64,
    /// App tasks that are not the ones from before, beyond those the drill replaces itself.
    pub tasks_replaced: usize,
    /// From the fault's end (the dependency back, the node gone) to everything answering again.
    pub recovery_s: Option<f64>,
    pub lost_writes: usize,
    pub oom_kills: usize,
    /// What else it measured, a line each.
    pub notes: Vec<String>,
}

impl Fault {
    fn new(drill: &'static str) -> Fault {
        Fault {
            drill,
            ..Default::default()
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "drill": self.drill,
            "failed_requests": self.failed_requests,
            "requests": self.requests,
            "tasks_replaced": self.tasks_replaced,
            "recovery_s": self.recovery_s.map(|s| (s * 10.0).round() / 10.0),
            "lost_writes": self.lost_writes,
            "oom_kills": self.oom_kills,
            "notes": self.notes,
        })
    }

    /// An error naming the failures, when a request that should have worked failed `during`
    /// the fault.
    fn no_failed_requests(&self, during: &str, failures: &[String]) -> Result<()> {
        if self.failed_requests > 0 {
            bail!(
                "{} of {} requests failed {during}: {}",
                self.failed_requests,
                self.requests,
                failures.join("; ")
            );
        }
        Ok(())
    }

    pub fn line(&self) -> String {
        let recovery = self
            .recovery_s
            .map(|s| format!(", recovered in {s:.1} s"))
            .unwrap_or_default();
        format!(
            "{}: {} of {} requests failed, {} app tasks replaced{recovery}, {} lost writes, {} OOM kills",
            self.drill,
            self.failed_requests,
            self.requests,
            self.tasks_replaced,
            self.lost_writes,
            self.oom_kills
        )
    }
}

/// One drill: it fills in its `Fault` as it goes, and fails on what breaks its promise.
type Drill = fn(&Ctx, &Cluster, &mut Fault) -> Result<()>;

/// What the drills need: the run, the cluster, its entry points, the running release.
pub struct Ctx<'a> {
    pub run: &'a Run<'a>,
    pub entries: &'a [SocketAddr],
    pub release: &'a Known,
    /// Pages and files served without PostgreSQL or Redis: the build's prerendered pages
    /// (static and ISR, from the cache service) and a few of its static files.
    pub served: Vec<String>,
    /// The build's other routes without dynamic segments that answered 200 before the drills.
    pub needing: Vec<String>,
}

impl Ctx<'_> {
    /// What a load asks during a fault that leaves the app's dependencies alone: everything.
    fn every_route(&self) -> Vec<&str> {
        self.served
            .iter()
            .chain(&self.needing)
            .map(String::as_str)
            .collect()
    }

    /// What a load asks while PostgreSQL or Redis is gone: what needs neither.
    fn served(&self) -> Vec<&str> {
        self.served.iter().map(String::as_str).collect()
    }
}

/// Every drill in turn, each one's figures to `faults`; fails after the last, naming every
/// drill that failed.
pub fn run_all(
    run: &Run,
    cluster: &Cluster,
    entries: &[SocketAddr],
    release: &Known,
    faults: &mut Vec<Fault>,
) -> Result<()> {
    let (served, needing) = routes(entries[0], release);
    let ctx = Ctx {
        run,
        entries,
        release,
        served,
        needing,
    };
    let drills: [(&str, Drill); 5] = [
        ("memory", memory::drill),
        ("drain", drain::drill),
        ("dependency outage", outage::drill),
        ("data tasks killed", data_kill::drill),
        ("node loss", node_loss::drill),
    ];
    // Each drill runs whatever the ones before it found, so one failure hides no other.
    let mut failed = Vec::new();
    for (name, drill) in drills {
        let mut fault = Fault::new(name);
        let ooms = oom_kills(run.sh, cluster);
        let mut outcome = drill(&ctx, cluster, &mut fault);
        fault.oom_kills = oom_kills(run.sh, cluster).saturating_sub(ooms);
        if outcome.is_ok() && fault.oom_kills > 0 {
            outcome = Err(anyhow::anyhow!("{} OOM kills", fault.oom_kills));
        }
        eprintln!("verify --swarm: drill {}", fault.line());
        faults.push(fault);
        if let Err(e) = outcome {
            failed.push(format!("the {name} drill: {e:#}"));
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n  "));
    }
    Ok(())
}

/// The build's routes as the drills use them: (served without dependencies, needing them).
fn routes(entry: SocketAddr, release: &Known) -> (Vec<String>, Vec<String>) {
    let build = &release.build;
    let mut served: Vec<String> = build.prerendered.clone();
    served.extend(
        release
            .files
            .iter()
            .filter(|f| f.ends_with(".js"))
            .take(3)
            .cloned(),
    );
    let needing = build
        .routes
        .iter()
        .filter(|r| !r.dynamic() && !build.prerendered.contains(&r.path))
        .filter(|r| !PROBES.contains(&r.path.as_str()))
        .map(|r| r.path.clone())
        .filter(|p| http::get_at(entry, p, Duration::from_secs(10)).is_ok_and(|r| r.status == 200))
        .collect();
    (served, needing)
}

/// How many of the app's tasks from `before` run no more.
pub fn replaced_since(sh: &Shell, manager: &Engine, before: &BTreeSet<String>) -> Result<usize> {
    Ok(before.difference(&task_ids(sh, manager, "app")?).count())
}

/// The running tasks' ids of a service of the stack.
pub fn task_ids(sh: &Shell, manager: &Engine, service: &str) -> Result<BTreeSet<String>> {
    let out = manager.read(
        sh,
        &[
            "service",
            "ps",
            "-q",
            "--filter",
            "desired-state=running",
            &format!("{STACK}_{service}"),
        ],
    )?;
    Ok(out.lines().map(str::to_string).collect())
}

/// The containers of the stack, on every node still up, that were killed for memory.
fn oom_kills(sh: &Shell, cluster: &Cluster) -> usize {
    let filter = format!("label=com.docker.stack.namespace={STACK}");
    cluster
        .nodes
        .iter()
        .filter_map(|n| {
            let ids = n
                .target()
                .read(sh, &["ps", "-aq", "--filter", &filter])
                .ok()?;
            let ids: Vec<&str> = ids.lines().collect();
            if ids.is_empty() {
                return Some(0);
            }
            let mut args = vec!["inspect", "--format", "{{.State.OOMKilled}}"];
            args.extend(ids);
            let out = n.target().read(sh, &args).ok()?;
            Some(out.lines().filter(|l| l.trim() == "true").count())
        })
        .sum()
}

/// The running container of a service on a node, if it has one there.
pub fn container_on(sh: &Shell, node: &Engine, service: &str) -> Option<String> {
    let filter = format!("label=com.docker.swarm.service.name={STACK}_{service}");
    node.read(sh, &["ps", "-q", "--filter", &filter])
        .ok()?
        .lines()
        .next()
        .map(str::to_string)
}

/// The node (index in the cluster) and container of each running task of a service.
pub fn containers(sh: &Shell, cluster: &Cluster, service: &str) -> Vec<(usize, String)> {
    cluster
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| container_on(sh, &n.target(), service).map(|c| (i, c)))
        .collect()
}

/// `redis-cli` in a Redis container on `node`, authenticated with the secret file `secret`
/// (a name in /run/secrets): its answer.
pub fn redis_cli(
    sh: &Shell,
    node: &Engine,
    container: &str,
    secret: &str,
    args: &str,
) -> Result<String> {
    let script = format!("REDISCLI_AUTH=\"$(cat /run/secrets/{secret})\" redis-cli {args}");
    Ok(node
        .read(sh, &["exec", container, "sh", "-c", &script])?
        .trim()
        .to_string())
}

/// `redis-cli` as the admin user in the queue's Redis (on the data node): its answer.
pub fn redis_admin(sh: &Shell, manager: &Engine, args: &str) -> Result<String> {
    let Some(id) = container_on(sh, manager, "redis") else {
        bail!("no running redis task on the data node");
    };
    redis_cli(sh, manager, &id, "redis_admin_password", args)
}

/// Polls `path` through `entry` until it answers 200: how long that took.
pub fn until_200(entry: SocketAddr, path: &str, limit: Duration) -> Result<Duration> {
    let t = std::time::Instant::now();
    crate::util::poll(
        &format!("GET {path} to answer 200"),
        limit,
        Duration::from_millis(100),
        || {
            let r = http::get_at(entry, path, Duration::from_secs(5));
            Ok(r.is_ok_and(|r| r.status == 200).then_some(()))
        },
    )?;
    Ok(t.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drill_reports_every_figure_the_faults_table_has() {
        let mut f = Fault::new("node loss");
        f.requests = 812;
        f.failed_requests = 1;
        f.tasks_replaced = 1;
        f.recovery_s = Some(14.26);
        let v = f.to_json();
        for key in [
            "failed_requests",
            "tasks_replaced",
            "recovery_s",
            "lost_writes",
            "oom_kills",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from {v}");
        }
        assert_eq!(v["recovery_s"], json!(14.3));
        assert_eq!(
            f.line(),
            "node loss: 1 of 812 requests failed, 1 app tasks replaced, recovered in 14.3 s, 0 lost writes, 0 OOM kills"
        );
    }
}
