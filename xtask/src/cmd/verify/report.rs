//! verify's verdict and its evidence, for people and (`--json`) for machines.

use std::time::Duration;

use serde_json::{Value, json};

use super::{app_checks::RouteProbe, plan::Plan, prod_checks::Check};
use crate::{engine, readiness::ServiceReady, util::secs};

pub struct Report {
    stack: String,
    project: String,
    engine: String,
    images_used: Vec<(String, String)>,
    images_reason: String,
    pub phases: Vec<(String, Duration)>,
    pub services: Vec<ServiceReady>,
    pub containers: Vec<Value>,
    pub images: Vec<(String, u64)>,
    pub lockfile_policy: String,
    /// `--prod` only: hardening, secrets, least privilege, a clean runner.
    pub checks: Vec<Check>,
    /// `--prod` only: every route of the app's build and what it answered.
    pub routes: Vec<RouteProbe>,
    pub health: Value,
    pub error: Option<String>,
    pub failed_service: Option<String>,
    pub diagnosis: String,
    pub total: Duration,
}

impl Report {
    pub fn new(p: &Plan, v: &engine::Versions) -> Report {
        Report {
            stack: p.stack.compose.file.clone(),
            project: p.stack.project().to_string(),
            engine: engine::describe(v),
            images_used: p
                .images
                .set
                .env()
                .map(|(k, i)| (k.to_string(), i.to_string()))
                .to_vec(),
            images_reason: p.images.reason.clone(),
            phases: vec![],
            services: vec![],
            containers: vec![],
            images: vec![],
            lockfile_policy: p.policy.describe(),
            checks: vec![],
            routes: vec![],
            health: Value::Null,
            error: None,
            failed_service: None,
            diagnosis: String::new(),
            total: Duration::ZERO,
        }
    }
    pub fn phase(&mut self, name: &str, d: Duration) {
        self.phases.push((name.into(), d));
    }
    pub fn to_json(&self) -> Value {
        json!({
            "verdict": if self.error.is_none() { "pass" } else { "fail" },
            "stack": self.stack,
            "project": self.project,
            "engine": self.engine,
            "base_images": self.images_used.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "base_images_reason": self.images_reason,
            "lockfile_policy": self.lockfile_policy,
            "phases": self.phases.iter().map(|(n, d)| json!({"name": n, "seconds": round(d)})).collect::<Vec<_>>(),
            "services": self.services.iter().map(|s| json!({
                "service": s.service, "state": s.state,
                "ready_after_seconds": s.ready_after.map(|d| round(&d)),
                "noticed_after_healthy_ms": s.notice_delay.map(|d| d.as_millis() as u64),
            })).collect::<Vec<_>>(),
            "containers": self.containers,
            "checks": self.checks.iter().map(|c| json!({"check": c.name, "ok": c.ok, "applicable": c.applicable, "detail": c.detail})).collect::<Vec<_>>(),
            "routes": self.routes.iter().map(|r| json!({
                "route": r.route.path, "kind": r.route.kind.word(), "status": r.status,
                "ms": r.ms, "probed": r.probed(), "note": r.note,
            })).collect::<Vec<_>>(),
            "images": self.images.iter().map(|(i, s)| json!({"image": i, "size_bytes": s})).collect::<Vec<_>>(),
            "health": self.health,
            "error": self.error,
            "failed_service": self.failed_service,
            "diagnosis": if self.diagnosis.is_empty() { Value::Null } else { json!(self.diagnosis) },
            "total_seconds": round(&self.total),
        })
    }
    pub fn human(&self) -> String {
        let verdict = if self.error.is_none() { "PASS" } else { "FAIL" };
        let mut s = format!(
            "\nverify {verdict}: {} ({}) in {}\n",
            self.stack,
            self.project,
            secs(self.total)
        );
        s += &format!("  {}\n  lockfile: {}\n", self.engine, self.lockfile_policy);
        for (n, d) in &self.phases {
            s += &format!("  {n:<10} {:>7}\n", secs(*d));
        }
        for sr in &self.services {
            s += &format!("  {}\n", sr.summary());
        }
        if !self.checks.is_empty() {
            let passed = self.checks.iter().filter(|c| c.ok).count();
            s += &format!("  prod checks: {passed} of {} passed\n", self.checks.len());
            for c in &self.checks {
                let verdict = match (c.ok, c.applicable) {
                    (false, _) => "FAIL",
                    (true, false) => "n/a ",
                    (true, true) => "ok  ",
                };
                s += &format!("    {verdict} {}\n", c.name);
                if !c.applicable || !c.ok {
                    s += &format!("         {}\n", c.detail);
                }
            }
        }
        if !self.routes.is_empty() {
            s += &format!("  routes of the build: {}\n", self.routes.len());
            for r in &self.routes {
                let status = r.status.map_or("-".to_string(), |s| s.to_string());
                s += &format!(
                    "    {status:>3} {:>6} ms  {} ({}) {}\n",
                    r.ms,
                    r.route.path,
                    r.route.kind.word(),
                    r.note
                );
            }
        }
        for (i, size) in &self.images {
            s += &format!("  image {i}: {:.0} MB\n", *size as f64 / 1e6);
        }
        if let Some(svc) = &self.failed_service {
            s += &format!("failing service: {svc}\n");
        }
        s += &self.diagnosis;
        s
    }
}

pub fn round(d: &Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
