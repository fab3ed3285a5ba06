//! `cargo xtask logs [SERVICE] [--follow] [--since T]`: the dev stack's logs (`--prod`: the
//! single-host prod stack's, `--stack NAME`: a swarm's). A compose project's come from
//! `docker compose logs`; a swarm's from `docker service logs`, which gathers every node's
//! tasks, each line naming its task and node (`axion_app.1.<id>@node2`), and with every service
//! asked for, the services' lines are merged in time order (followed: as they come).

use std::io::{BufRead, Write};

use anyhow::{Result, bail};
use xshell::Shell;

use super::status::Target;
use crate::{
    docker::{self, Engine, compose::words},
    flags, swarm,
};

impl flags::Logs {
    pub fn run(self, sh: &Shell) -> Result<()> {
        crate::engine::preflight()?;
        let target = Target::from_flags(self.prod, self.stack.as_deref(), self.manager.as_deref())?;
        let since = self.since.as_deref();
        match &target {
            Target::Compose { kind, project } => {
                if let Some(s) = &self.service
                    && !kind.services().contains(&s.as_str())
                {
                    bail!(
                        "{} has no service `{s}`: its services are {}",
                        target.describe(),
                        kind.services().join(", ")
                    );
                }
                let mut args = words(&["compose", "--project-name", project, "logs"]);
                args.extend(options(self.follow, since));
                args.extend(self.service.clone());
                docker::cmd(sh, &args).run()?;
            }
            Target::Swarm { stack, engine } => {
                target.check_reachable(sh)?;
                let names = service_names(sh, engine, stack, self.service.as_deref())?;
                if self.follow {
                    follow(engine, &names, since)?;
                } else {
                    for line in swarm_lines(engine, &names, since)? {
                        println!("{line}");
                    }
                }
            }
        }
        Ok(())
    }
}

fn options(follow: bool, since: Option<&str>) -> Vec<String> {
    let mut o = vec!["--timestamps".to_string()];
    if follow {
        o.push("--follow".into());
    }
    if let Some(t) = since {
        o.extend(["--since".into(), t.into()]);
    }
    o
}

/// `<stack>_<service>` for the one asked for, or for every service of the stack.
pub fn service_names(
    sh: &Shell,
    engine: &Engine,
    stack: &str,
    service: Option<&str>,
) -> Result<Vec<String>> {
    let all: Vec<String> = swarm::services(sh, engine, stack)?
        .into_iter()
        .map(|s| s.service)
        .collect();
    if all.is_empty() {
        bail!("no stack {stack} on this swarm (`docker stack ls` lists them)");
    }
    match service {
        Some(s) if !all.iter().any(|a| a == s) => bail!(
            "stack {stack} has no service `{s}`: its services are {}",
            all.join(", ")
        ),
        Some(s) => Ok(vec![format!("{stack}_{s}")]),
        None => Ok(all.iter().map(|s| format!("{stack}_{s}")).collect()),
    }
}

/// Every line the services logged (stdout and stderr), merged in time order.
pub fn swarm_lines(
    engine: &Engine,
    services: &[String],
    since: Option<&str>,
) -> Result<Vec<String>> {
    let calls: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let mut rest = words(&["service", "logs"]);
            rest.extend(options(false, since));
            rest.push(s.clone());
            engine.args(&rest.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .collect();
    let mut lines = Vec::new();
    for (out, service) in docker::run_all(&calls).into_iter().zip(services) {
        let out = out?;
        if !out.status.success() {
            bail!(
                "docker service logs {service}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        for stream in [&out.stdout, &out.stderr] {
            lines.extend(String::from_utf8_lossy(stream).lines().map(String::from));
        }
    }
    Ok(merge(lines))
}

/// Lines ordered by their leading timestamp (RFC 3339, so text order is time order); the
/// order among equal stamps and of lines without one is kept.
pub fn merge(mut lines: Vec<String>) -> Vec<String> {
    lines.sort_by(|a, b| stamp(a).cmp(stamp(b)));
    lines
}

fn stamp(line: &str) -> &str {
    line.split_whitespace()
        .next()
        .filter(|w| w.len() > 19 && w.as_bytes()[4] == b'-' && w.contains('T'))
        .unwrap_or("")
}

/// Each service's `docker service logs --follow`, their lines printed as they come, until
/// every one ends (Ctrl-C ends them all).
fn follow(engine: &Engine, services: &[String], since: Option<&str>) -> Result<()> {
    let stdout = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = services
        .iter()
        .map(|s| {
            let mut rest = words(&["service", "logs"]);
            rest.extend(options(true, since));
            rest.push(s.clone());
            let args = engine.args(&rest.iter().map(String::as_str).collect::<Vec<_>>());
            let stdout = stdout.clone();
            std::thread::spawn(move || -> Result<()> {
                let reader = docker::expr(&args).stderr_to_stdout().reader()?;
                for line in std::io::BufReader::new(reader).lines() {
                    let line = line?;
                    let mut out = stdout.lock().unwrap_or_else(|e| e.into_inner());
                    writeln!(out, "{line}")?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        match t.join() {
            Ok(r) => r?,
            Err(_) => bail!("a log reader panicked"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_lines_merge_by_their_timestamps_and_keep_the_rest_in_order() {
        let lines = [
            "2026-12-02T02:00:03.000000000Z axion_app.2.b@node3    | ready",
            "no stamp",
            "2026-12-02T02:00:01.000000000Z axion_app.1.a@node2    | ready",
            "2026-12-02T02:00:02.500000000Z axion_db.1.c@node1    | listening",
        ]
        .map(String::from)
        .to_vec();
        let merged = merge(lines);
        assert_eq!(merged[0], "no stamp");
        assert!(merged[1].contains("axion_app.1.a@node2"));
        assert!(merged[2].contains("axion_db.1"));
        assert!(merged[3].contains("axion_app.2.b@node3"));
    }
}
