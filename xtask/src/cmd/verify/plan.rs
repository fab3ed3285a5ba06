//! verify's plan: everything a run will do, decided before anything runs. The run follows it
//! and `--dry-run` prints it, so the two cannot drift apart.

use std::{path::PathBuf, time::Duration};

use crate::{
    docker::{
        compose::{UpOpts, build_args, shell_quote, teardown_args, up_args},
        events::events_args,
        label_filter,
    },
    env_file::EnvSource,
    flags,
    images::Resolution,
    integrity::Policy,
    paths::log_path,
    readiness::ReadySpec,
    stack::{Ports, Stack, StackKind, TIMEOUT_BUILD, TIMEOUT_HEALTHY, TIMEOUT_HTTP},
};

pub struct Plan {
    pub stack: Stack,
    pub images: Resolution,
    pub policy: Policy,
    /// How `up` runs; the run passes it to `lifecycle::up_and_wait`, which spells the same argv
    /// `render` prints (`up_args`); the build and the teardown likewise (`build_args(&[])`,
    /// `teardown_args`).
    pub up: UpOpts,
    pub timeout_build: Duration,
    pub spec: ReadySpec,
    pub keep: bool,
    pub log: PathBuf,
}

impl Plan {
    /// A run of its own: a throw-away project and the given (free) ports.
    pub fn new(
        o: &flags::Verify,
        env: &EnvSource,
        images: Resolution,
        ports: Ports,
        root: &std::path::Path,
    ) -> Plan {
        let kind = StackKind::from_prod(o.prod);
        let mut stack = Stack::throwaway(kind, "verify", env, &images.set, ports);
        if o.keep {
            // A stack kept for inspection is not a dead run's: no later command may reap it.
            stack.compose.env.retain(|(k, _)| k != "AXION_OWNER");
        }
        let log = log_path(root, &format!("{}-build.log", stack.project()));
        Plan {
            policy: Policy::for_run(o.cold, o.no_verify.clone()),
            up: UpOpts::default(),
            timeout_build: o.timeout_build.unwrap_or(TIMEOUT_BUILD),
            spec: ReadySpec {
                services: kind.services().iter().map(|s| s.to_string()).collect(),
                app_port: ports.app,
                timeout_healthy: o.timeout_healthy.unwrap_or(TIMEOUT_HEALTHY),
                timeout_http: o.timeout_http.unwrap_or(TIMEOUT_HTTP),
            },
            keep: o.keep,
            log,
            stack,
            images,
        }
    }

    /// The plan as shell lines: what --dry-run prints.
    pub fn render(&self) -> String {
        let c = &self.stack.compose;
        let images = &self.images.set;
        let filter = label_filter(&c.project);
        let secs = |d: Duration| format!("{:.0}s", d.as_secs_f64());
        let mut s = format!("# verify {} (dry run: nothing is run)\n", c.file);
        s += &format!(
            "# images: {} ({}; {})\n",
            images.env().map(|(_, i)| i).join(", "),
            if images.standin {
                "stand-ins"
            } else {
                "upstream"
            },
            self.images.reason
        );
        s += &format!("# lockfile policy: {}\n", self.policy.describe());
        s += "docker version\ndocker buildx version\ndocker compose version --short\n";
        s += "# reap: the projects of runs whose owner is gone are removed (listed by the org.axion-hub.owner label)\n";
        if images.standin {
            s += "# stand-in images are built first when missing or stale (docker build docker/standin/*)\n";
        }
        if self.policy.cold {
            s += &format!(
                "# cold install check: bun install --frozen-lockfile with an empty cache in a throw-away {} container\n",
                images.bun
            );
        }
        s += &format!(
            "# build, within {} (log: {})\nBUN_INSTALL_FLAGS={} {}\n",
            secs(self.timeout_build),
            self.log.display(),
            shell_quote(&self.policy.flags()),
            c.display(&build_args(&[]))
        );
        s += &format!("{}\n", c.display(&up_args(self.up, &[])));
        s += &format!(
            "# while `up` runs: follow the project's container events, and on each (at least every 1s)\n\
             # inspect its containers, until {} are healthy or running, within {}\ndocker {}\n\
             docker ps -aq --filter {filter}\ndocker inspect <ids>\n",
            self.spec.services.join(", "),
            secs(self.spec.timeout_healthy),
            events_args(&c.project)
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        );
        s += &format!(
            "# GET http://127.0.0.1:{0}/ then http://127.0.0.1:{0}/api/health until 200 with db and redis ok, within {1}\n",
            self.spec.app_port,
            secs(self.spec.timeout_http)
        );
        if self.stack.kind == StackKind::Prod {
            s += "# prod checks: docker inspect of every container (user, capabilities, read-only root, limits, logs, \
                  published ports, no secret), docker exec probes of the database and Redis roles, the image's files \
                  and history\n\
                  # app checks: the build's manifests read from the app container; GET of every static route, \
                  security headers, /_next/image, every ISR route regenerated and read again after docker restart\n";
        }
        if self.keep {
            s += "# --keep: no teardown\n";
        } else {
            s += &format!("{}\n", c.display(&teardown_args()));
            s += &format!("docker image rm {}\n", self.stack.app_image());
            s += &format!(
                "docker ps -aq --filter {filter}\ndocker volume ls -q --filter {filter}\ndocker network ls -q --filter {filter}\n"
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{env_file::EnvFile, images::ImageSet};

    fn plan(prod: bool) -> Plan {
        let o = flags::Verify {
            prod,
            timeout_http: Some(Duration::from_secs(7)),
            ..Default::default()
        };
        let env = EnvSource {
            path: ".env.example".into(),
            file: EnvFile::parse(""),
        };
        let images = Resolution {
            set: ImageSet::standin(),
            reason: "test".into(),
        };
        Plan::new(&o, &env, images, Ports::free().unwrap(), "/repo".as_ref())
    }

    #[test]
    fn plans_are_isolated_per_run() {
        let a = plan(true);
        std::thread::sleep(Duration::from_millis(2));
        let b = plan(true);
        assert_ne!(a.stack.project(), b.stack.project());
        assert_ne!(a.stack.ports, b.stack.ports);
        assert!(a.stack.project().starts_with("axion-verify-prod-"));
        assert_eq!(a.stack.compose.file, "docker-compose.prod.yml");
        for p in [&a, &b] {
            let app = format!("APP_PORT={}", p.stack.ports.app);
            let env: Vec<String> = p
                .stack
                .compose
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            assert!(env.contains(&app), "{env:?}");
            assert!(env.contains(&"POSTGRES_IMAGE=axion-hub-standin/postgres:17".to_string()));
            assert_eq!(p.spec.app_port, p.stack.ports.app);
        }
    }

    #[test]
    fn the_dry_run_prints_the_plan_the_run_follows() {
        let p = plan(false);
        let text = p.render();
        assert!(
            text.contains(&format!(
                "-p {} --env-file .env.example up --detach --no-build",
                p.stack.project()
            )),
            "{text}"
        );
        assert!(text.contains("down --volumes --remove-orphans"), "{text}");
        assert!(text.contains("docker events --format"), "{text}");
        assert!(!text.contains("every 100ms"), "{text}");
        assert!(
            text.contains("within 7s"),
            "the timeouts of this plan: {text}"
        );
        assert!(text.contains("stand-ins; test"), "{text}");
        // What the run does besides compose: the reaper, the run's image removed.
        assert!(text.contains("# reap:"), "{text}");
        assert!(
            text.contains(&format!("docker image rm {}", p.stack.app_image())),
            "{text}"
        );
        assert!(!text.contains("# prod checks"), "{text}");
        let prod = plan(true).render();
        assert!(
            prod.contains("# prod checks") && prod.contains("# app checks"),
            "{prod}"
        );
    }
}
