//! What a person does with the stack after deploying it, on the proof's cluster, by the same
//! functions the commands run: `status` after the first deploy (every task named and healthy,
//! the release recorded), `logs app` (every replica's lines, merged from their nodes),
//! `deploy --rollback` under load (`steps::back_to_first`), then a certificate renewal and a
//! deploy: the old secret is left only where a service's previous spec needs it, and one no
//! service needs (planted as an older stack version would have left it) is removed.

use std::{collections::BTreeSet, time::Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::{STACK, steps::Run};
use crate::{
    cmd::{
        logs,
        status::{self, Target},
    },
    proof::{cluster::Cluster, edge},
    swarm::{self, prune},
};

/// The `operate` report.
#[derive(Debug, Clone, Default)]
pub struct Operate {
    pub status_healthy: bool,
    pub status_s: f64,
    pub status_tasks: usize,
    pub release: String,
    /// The app tasks whose lines `logs app` showed.
    pub log_tasks: Vec<String>,
    pub rollback_failed_requests: Option<u64>,
    pub rollback_s: Option<f64>,
    pub rollback_to: Option<u32>,
    /// What the deploy after the renewal removed (`secret NAME`, …).
    pub pruned: Vec<String>,
    /// Secrets and configs no service needs, after that deploy.
    pub unused_secrets_after_rotation: Option<usize>,
    /// Those a service's previous spec still names (what `docker service rollback` needs).
    pub kept_for_rollback: Vec<String>,
}

impl Operate {
    pub fn to_json(&self) -> Value {
        json!({
            "status_healthy": self.status_healthy,
            "status_seconds": self.status_s,
            "status_tasks": self.status_tasks,
            "release": self.release,
            "log_tasks": self.log_tasks,
            "rollback_failed_requests": self.rollback_failed_requests,
            "rollback_seconds": self.rollback_s,
            "rollback_to": self.rollback_to,
            "pruned": self.pruned,
            "unused_secrets_after_rotation": self.unused_secrets_after_rotation,
            "kept_for_rollback": self.kept_for_rollback,
        })
    }

    pub fn lines(&self) -> String {
        let mut s = format!(
            "  status: {} tasks, {} in {:.1} s; running {}\n  logs app: lines of {}\n",
            self.status_tasks,
            if self.status_healthy {
                "all healthy"
            } else {
                "NOT all healthy"
            },
            self.status_s,
            self.release,
            self.log_tasks.join(", ")
        );
        if let (Some(f), Some(t), Some(to)) = (
            self.rollback_failed_requests,
            self.rollback_s,
            self.rollback_to,
        ) {
            s.push_str(&format!(
                "  deploy --rollback to release {to}: {t:.1} s, {f} failed requests\n"
            ));
        }
        if let Some(n) = self.unused_secrets_after_rotation {
            s.push_str(&format!(
                "  certificate renewed + deploy: removed {}; {n} unused left; kept for `docker service rollback`: {}\n",
                self.pruned.join(", "),
                self.kept_for_rollback.join(", ")
            ));
        }
        s
    }
}

/// `status` and `logs app` after the first deploy.
pub fn status_and_logs(run: &Run, cluster: &Cluster, op: &mut Operate) -> Result<()> {
    let target = Target::Swarm {
        stack: STACK.into(),
        engine: cluster.manager(),
    };
    let t = Instant::now();
    let st = status::status(run.sh, &target)?;
    op.status_s = t.elapsed().as_secs_f64();
    op.status_healthy = st.healthy();
    op.status_tasks = st.rows.len();
    op.release = st.release["line"].as_str().unwrap_or_default().to_string();
    let desired: u64 = swarm::services(run.sh, &cluster.manager(), STACK)?
        .iter()
        .map(|s| s.desired)
        .sum();
    if !st.healthy() || st.rows.len() as u64 != desired {
        bail!(
            "status after the first deploy named {} tasks of {desired}:\n{}",
            st.rows.len(),
            st.text()
        );
    }
    if !op.release.starts_with("release 1 ") {
        bail!(
            "status after the first deploy names no release 1: {}",
            op.release
        );
    }
    let app = format!("{STACK}_app");
    let lines = logs::swarm_lines(&cluster.manager(), &[app], None)?;
    op.log_tasks = tasks_in(&lines);
    let replicas = st.rows.iter().filter(|r| r.service == "app").count();
    if op.log_tasks.len() < replicas {
        bail!(
            "logs app showed lines of {:?}, not of all {replicas} replicas",
            op.log_tasks
        );
    }
    Ok(())
}

/// The distinct tasks (`axion_app.1`) that lines of `docker service logs` name.
pub fn tasks_in(lines: &[String]) -> Vec<String> {
    let tasks: BTreeSet<String> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().find(|w| w.contains('@')))
        .filter_map(|w| {
            let task = w.split('@').next()?;
            let mut parts = task.splitn(3, '.');
            Some(format!("{}.{}", parts.next()?, parts.next()?))
        })
        .collect();
    tasks.into_iter().collect()
}

/// A renewed certificate deployed with the app as it runs (`app`, a local image): the old
/// certificate's secret is kept only for the proxy's previous spec; a secret of the stack no
/// service names is removed; nothing else no service needs is left.
pub fn renewal(
    run: &Run,
    cluster: &mut Cluster,
    tls: &edge::Material,
    app: &str,
    op: &mut Operate,
) -> Result<()> {
    let sh = run.sh;
    let manager = cluster.manager();
    let stale = format!("{STACK}_left-by-an-older-stack-{:x}", crate::util::nanos());
    let args = manager.args(&[
        "secret",
        "create",
        "--label",
        &format!("com.docker.stack.namespace={STACK}"),
        &stale,
        "-",
    ]);
    crate::docker::cmd(sh, &args)
        .stdin("x")
        .quiet()
        .ignore_stdout()
        .run()?;
    let ips: Vec<String> = cluster.nodes.iter().map(|n| n.ip.clone()).collect();
    let renewed = tls.renew(&ips)?;
    let rel = super::steps::deploy_with(run, cluster, &renewed, Some(app), false)?;
    op.pruned = rel.pruned.clone();
    let left = prune::unneeded(sh, &manager, STACK)?;
    op.unused_secrets_after_rotation = Some(left.len());
    op.kept_for_rollback = prune::kept_for_rollback(sh, &manager, STACK)?;
    if !op.pruned.contains(&format!("secret {stale}")) {
        bail!(
            "the deploy after the renewal left {stale}, which no service names: it removed {:?}",
            op.pruned
        );
    }
    if !left.is_empty() {
        bail!("after the renewal's deploy the swarm holds what no service needs: {left:?}");
    }
    if !op.kept_for_rollback.iter().any(|k| k.contains("tls.pem")) {
        bail!(
            "the renewed certificate's predecessor is not kept for the proxy's previous spec: {:?}",
            op.kept_for_rollback
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tasks_of_service_logs_lines_are_named_once_each() {
        let lines = [
            "2026-12-02T02:00:01.0Z axion_app.1.k3j2h@node2    | ▲ Next.js 16.4.6",
            "2026-12-02T02:00:02.0Z axion_app.2.x9y8z@node3    | ✓ Ready in 180ms",
            "2026-12-02T02:00:03.0Z axion_app.1.k3j2h@node2    | ✓ Ready in 201ms",
            "error from daemon",
        ]
        .map(String::from);
        assert_eq!(tasks_in(&lines), ["axion_app.1", "axion_app.2"]);
    }
}
