//! What `verify --swarm` reports: phases and their times, the nodes, the load's figures during
//! the update and the rollback, the host engine after; as JSON or for a person.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{proof::load::Summary, swarm, util::secs};

#[derive(Default)]
pub struct Report {
    pub ok: bool,
    pub error: Option<String>,
    pub phases: Vec<(String, Duration)>,
    pub nodes: Vec<Value>,
    pub pushes: Option<(Duration, Vec<String>)>,
    pub converged: Vec<swarm::Converged>,
    pub app_nodes: Vec<String>,
    pub first_answers: Vec<String>,
    /// The TLS edge per node: the redirect, the verified certificate, HSTS.
    pub edge: Vec<String>,
    /// The moves between releases (the update, the way back): build ids, assets, writes, the
    /// browser tab, the cache's coherence.
    pub moves: Vec<super::figures::Figures>,
    pub update: Option<(Duration, Summary)>,
    /// The way back to the first release by `deploy`.
    pub back: Option<(Duration, Summary)>,
    pub rollback: Option<(Duration, String, Summary)>,
    /// status, logs, `deploy --rollback`, pruning after a certificate renewal.
    pub operate: super::operate::Operate,
    /// The fault drills, one entry each.
    pub faults: Vec<super::drills::Fault>,
    pub host: Vec<(String, String)>,
    pub neighbour: Option<String>,
    pub total: Duration,
}

impl Report {
    pub fn phase(&mut self, name: &str, d: Duration) {
        self.phases.push((name.to_string(), d));
    }

    pub fn to_json(&self) -> Value {
        json!({
            "ok": self.ok,
            "error": self.error,
            "nodes": self.nodes,
            "phases": self.phases.iter().map(|(n, d)| json!({"phase": n, "seconds": d.as_secs_f64()})).collect::<Vec<_>>(),
            "push": self.pushes.as_ref().map(|(d, refs)| json!({"seconds": d.as_secs_f64(), "images": refs})),
            "converged": self.converged.iter().map(swarm::Converged::to_json).collect::<Vec<_>>(),
            "app_replica_nodes": self.app_nodes,
            "first_answers": self.first_answers,
            "edge": self.edge,
            "release": (!self.moves.is_empty()).then(|| super::figures::release_json(&self.moves)),
            "rolling_update": self.update.as_ref().map(|(d, s)| json!({"seconds": d.as_secs_f64(), "load": s.to_json()})),
            "back_to_first": self.back.as_ref().map(|(d, s)| json!({"seconds": d.as_secs_f64(), "load": s.to_json()})),
            "rollback": self.rollback.as_ref().map(|(d, state, s)| json!({"seconds": d.as_secs_f64(), "final_state": state, "load": s.to_json()})),
            "operate": self.operate.to_json(),
            "faults": self.faults.iter().map(super::drills::Fault::to_json).collect::<Vec<_>>(),
            "host_engine_after": self.host.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "neighbour_dns": self.neighbour,
            "total_seconds": self.total.as_secs_f64(),
        })
    }

    pub fn human(&self) -> String {
        let mut s = format!(
            "\nverify --swarm: {} in {}\n",
            if self.ok { "OK" } else { "FAILED" },
            secs(self.total)
        );
        if !self.nodes.is_empty() {
            let nodes: Vec<String> = self
                .nodes
                .iter()
                .map(|n| {
                    format!(
                        "{} {} ({})",
                        n["node"].as_str().unwrap_or(""),
                        n["ip"].as_str().unwrap_or(""),
                        n["role"].as_str().unwrap_or("")
                    )
                })
                .collect();
            s.push_str(&format!("  nodes: {}\n", nodes.join(", ")));
        }
        for (name, d) in &self.phases {
            s.push_str(&format!("  {name:<40} {}\n", secs(*d)));
        }
        if let Some((d, refs)) = &self.pushes {
            s.push_str(&format!(
                "  images pushed ({}) in {}:\n",
                refs.len(),
                secs(*d)
            ));
            for r in refs {
                s.push_str(&format!("    {r}\n"));
            }
        }
        if !self.converged.is_empty() {
            let c: Vec<String> = self.converged.iter().map(swarm::Converged::line).collect();
            s.push_str(&format!("  every task healthy: {}\n", c.join(", ")));
        }
        if !self.app_nodes.is_empty() {
            s.push_str(&format!(
                "  app replicas on: {}\n",
                self.app_nodes.join(", ")
            ));
        }
        s.push_str(&self.release_lines());
        s.push_str(&self.operate.lines());
        for f in &self.faults {
            s.push_str(&format!("  drill {}\n", f.line()));
            for n in &f.notes {
                s.push_str(&format!("    {n}\n"));
            }
        }
        for (k, v) in &self.host {
            s.push_str(&format!("  host engine after: {k}: {v}\n"));
        }
        if let Some(n) = &self.neighbour {
            s.push_str(&format!("  {n}\n"));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("  error: {e}\n"));
        }
        s
    }

    /// The edge, the first answers, the update and the rollback under load, the assets.
    fn release_lines(&self) -> String {
        let mut s = String::new();
        for m in &self.moves {
            s.push_str(&m.lines());
        }
        for e in &self.edge {
            s.push_str(&format!("  edge: {e}\n"));
        }
        for a in &self.first_answers {
            s.push_str(&format!("  {a}\n"));
        }
        if let Some((d, l)) = &self.update {
            s.push_str(&format!(
                "  rolling update: {} under load: {}, {:.0} req/s\n",
                secs(*d),
                l.line(),
                l.rps()
            ));
        }
        if let Some((d, state, l)) = &self.rollback {
            s.push_str(&format!(
                "  rollback of an unhealthy image: {state} after {}; under load: {}\n",
                secs(*d),
                l.line()
            ));
        }
        if let Some((d, l)) = &self.back {
            s.push_str(&format!(
                "  back to the first release: {} under load: {}\n",
                secs(*d),
                l.line()
            ));
        }
        s
    }
}
