//! `cargo xtask verify`: build, start, prove healthy and tear down a throw-away stack under its
//! own project name and free ports; exit 0 only if it works.

mod app_checks;
mod cache_checks;
mod plan;
mod prod_checks;
mod report;

use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::json;
use xshell::Shell;

use crate::startup::{Needs, Start};
use crate::{
    docker,
    env_file::EnvSource,
    flags, images,
    lifecycle::{self, Teardown},
    progress::Progress,
    stack::{Ports, StackKind},
};
use plan::Plan;
use report::Report;

impl flags::Verify {
    pub fn run(self, sh: &Shell) -> Result<()> {
        if self.swarm {
            return crate::proof::swarm::run(sh, &self);
        }
        let root = sh.current_dir();
        let env = EnvSource::resolve(&root)?;
        if self.dry_run {
            // The same resolution as a run, without the docker calls a dry run may not make.
            let choice = images::effective_choice(self.images)?;
            let images = images::resolve(choice, &env, None, images::registry_reachable);
            print!(
                "{}",
                Plan::new(&self, &env, images, Ports::free()?, &root).render()
            );
            return Ok(());
        }

        let started = Instant::now();
        let kind = StackKind::from_prod(self.prod);
        let needs = Needs {
            images: self.images,
            files: Some(kind),
            ..Default::default()
        };
        let start = Start::new(sh, needs)?;
        let plan = Plan::new(&self, &env, start.images.clone(), Ports::free()?, &root);
        let mut report = Report::new(&plan, &start.versions);
        report.phase("preflight", started.elapsed());
        if !self.json {
            eprintln!(
                "verify: {} as project {} (app on 127.0.0.1:{})",
                plan.stack.compose.file,
                plan.stack.project(),
                plan.stack.ports.app
            );
        }

        let guard = Teardown {
            sh,
            stack: &plan.stack,
            keep: plan.keep,
            quiet: self.json,
        };
        let outcome = run_checks(sh, &plan, &mut report, self.json);
        if let Err(e) = &outcome {
            report.error = Some(format!("{e:#}"));
            report.diagnosis =
                lifecycle::failure_dump(sh, plan.stack.project(), report.failed_service.as_deref());
        }
        let t = Instant::now();
        drop(guard);
        if !plan.keep {
            report.phase("teardown", t.elapsed());
        }
        report.total = started.elapsed();

        if self.json {
            println!("{}", serde_json::to_string_pretty(&report.to_json())?);
        } else {
            eprint!("{}", report.human());
        }
        outcome.map_err(|e| e.context(format!("verify of {} failed", plan.stack.compose.file)))
    }
}

fn run_checks(sh: &Shell, p: &Plan, report: &mut Report, quiet: bool) -> Result<()> {
    let c = &p.stack.compose;
    let built = lifecycle::build(sh, c, p.stack.kind, &p.policy, &[], &p.log, p.timeout_build)?;
    if let Some(d) = built.cold_check {
        report.phase("cold check", d);
    }
    report.phase("build", built.finished.elapsed);
    report.lockfile_policy = built.policy;

    let (ready, up_after) =
        lifecycle::up_and_wait(sh, c, p.up, &p.spec, &mut Progress::new(quiet))?;
    let ready = ready.map_err(|e| {
        report.failed_service = e.service.clone();
        anyhow::anyhow!(e.message)
    })?;
    report.phase("start", up_after);
    report.phase("healthy", ready.healthy_after);
    report.phase("first 200", ready.first_200_after);
    report.health = ready.health_body.clone();
    report.services = ready.services.clone();

    // What the containers really got: images, limits, restart policies.
    let cs = docker::containers(sh, &c.project)?;
    for c in &cs {
        report.containers.push(json!({
            "service": c.service, "image": c.image, "state": c.state_word(),
            "memory_limit_bytes": c.memory_limit, "restart_policy": c.restart_policy,
        }));
    }
    if p.stack.kind == StackKind::Prod {
        let t = std::time::Instant::now();
        report.checks = prod_checks::run(sh, &cs);
        report.phase("prod checks", t.elapsed());
        if let Some(app) = cs.iter().find(|c| c.service == "app") {
            let t = std::time::Instant::now();
            let release = p
                .stack
                .compose
                .env
                .iter()
                .find(|(k, _)| k == "AXION_BUILD_ID");
            let release = release.map_or("", |(_, v)| v.as_str());
            let cache = cs.iter().find(|c| c.service == "cache");
            let cache = cache.map(|c| c.name.as_str());
            let (checks, routes) =
                app_checks::run(sh, &app.name, cache, p.stack.ports.app, release);
            report.checks.extend(checks);
            report.routes = routes;
            report.phase("app checks", t.elapsed());
        }
        let failed: Vec<&prod_checks::Check> = report.checks.iter().filter(|c| !c.ok).collect();
        if let Some(first) = failed.first() {
            report.failed_service = first.name.split(':').next().map(String::from);
            let list: Vec<String> = failed
                .iter()
                .map(|c| format!("{} ({})", c.name, c.detail))
                .collect();
            bail!(
                "{} of {} prod checks failed: {}",
                failed.len(),
                report.checks.len(),
                list.join("; ")
            );
        }
    }
    let mut used: Vec<String> = cs.iter().map(|c| c.image.clone()).collect();
    used.sort();
    used.dedup();
    let sizes = docker::image_sizes(sh, &used);
    report.images = used.into_iter().zip(sizes).collect();
    Ok(())
}
