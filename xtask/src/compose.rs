//! Compose command lines (planned as argv, run elsewhere) and parsing of what docker prints.

use std::{
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};
use serde_json::Value;

/// One compose project: which file, which name, and the environment compose interpolates with.
#[derive(Debug, Clone)]
pub struct Stack {
    pub file: String,
    pub project: String,
    pub env_file: Option<PathBuf>,
    /// Variables for compose's interpolation (they win over the env file).
    pub env: Vec<(String, String)>,
}

impl Stack {
    /// `compose -f <file> -p <project> [--env-file f] <sub...>` (without the leading `docker`).
    pub fn args(&self, sub: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "compose".into(),
            "-f".into(),
            self.file.clone(),
            "-p".into(),
            self.project.clone(),
        ];
        if let Some(f) = &self.env_file {
            a.extend(["--env-file".into(), f.display().to_string()]);
        }
        a.extend(sub.iter().map(|s| s.to_string()));
        a
    }

    /// A one-shot compose command with the stack's environment.
    pub fn cmd<'a>(&self, sh: &'a xshell::Shell, sub: &[&str]) -> xshell::Cmd<'a> {
        let mut c = sh.cmd("docker").args(self.args(sub));
        for (k, v) in &self.env {
            c = c.env(k, v);
        }
        c
    }

    /// A long-running compose child (up in the foreground, logs -f).
    pub fn duct(&self, sub: &[&str]) -> duct::Expression {
        let mut e = duct::cmd("docker", self.args(sub));
        for (k, v) in &self.env {
            e = e.env(k, v);
        }
        e
    }

    /// The project's containers, as compose sees them.
    pub fn ps(&self, sh: &xshell::Shell) -> Result<Vec<PsEntry>> {
        parse_ps(
            &self
                .cmd(sh, &["ps", "--all", "--format", "json"])
                .quiet()
                .read()?,
        )
    }

    /// Shown with --dry-run and in error messages: the environment that differs, then argv.
    pub fn display(&self, sub: &[&str]) -> String {
        let env: Vec<String> = self
            .env
            .iter()
            .filter(|(k, _)| k != "EXTRA_CA_CERTS")
            .map(|(k, v)| format!("{k}={}", shell_quote(v)))
            .collect();
        let argv: Vec<String> = self.args(sub).iter().map(|a| shell_quote(a)).collect();
        let ca = if self
            .env
            .iter()
            .any(|(k, v)| k == "EXTRA_CA_CERTS" && !v.is_empty())
        {
            "EXTRA_CA_CERTS=<pem> "
        } else {
            ""
        };
        format!(
            "{}{ca}docker {}",
            if env.is_empty() {
                String::new()
            } else {
                env.join(" ") + " "
            },
            argv.join(" ")
        )
    }
}

pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What `up` does; planned here so tests can assert on the argv.
#[derive(Debug, Default, Clone, Copy)]
pub struct UpOpts {
    /// Fresh anonymous volumes (node_modules, .next) so a dependency change is never shadowed
    /// by a stale copy (compose keeps anonymous volumes across recreation otherwise).
    pub renew_anon_volumes: bool,
    pub no_deps: bool,
}

pub fn up_args(o: UpOpts, services: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "up".into(),
        "--detach".into(),
        "--no-build".into(),
        "--quiet-pull".into(),
    ];
    if o.renew_anon_volumes {
        a.push("--renew-anon-volumes".into());
    }
    if o.no_deps {
        a.push("--no-deps".into());
    }
    a.extend(services.iter().map(|s| s.to_string()));
    a
}

/// `down` for a stack the xtask owns outright (verify): containers, networks, named and
/// anonymous volumes. Never used on the dev stack unless `--volumes` was asked for.
pub fn teardown_args() -> Vec<String> {
    ["down", "--volumes", "--remove-orphans", "--timeout", "5"]
        .map(String::from)
        .into()
}

/// One container of a compose project, as `docker compose ps --format json` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PsEntry {
    pub service: String,
    pub name: String,
    pub state: String,
    pub health: String,
    pub exit_code: i64,
}

/// `compose ps --format json` prints one object per line since v2.21 and one array before.
pub fn parse_ps(text: &str) -> Result<Vec<PsEntry>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(vec![]);
    }
    let values: Vec<Value> = if text.starts_with('[') {
        serde_json::from_str(text).context("parsing `compose ps` JSON array")?
    } else {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).with_context(|| format!("parsing `compose ps` line {l:?}"))
            })
            .collect::<Result<_>>()?
    };
    Ok(values
        .iter()
        .map(|v| PsEntry {
            service: str_field(v, "Service"),
            name: str_field(v, "Name"),
            state: str_field(v, "State"),
            health: str_field(v, "Health"),
            exit_code: v.get("ExitCode").and_then(Value::as_i64).unwrap_or(0),
        })
        .collect())
}

fn str_field(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A container as `docker inspect` describes it: the fields readiness and diagnosis need.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub service: String,
    pub status: String,
    /// "" when the service has no health check.
    pub health: String,
    pub exit_code: i64,
    pub oom_killed: bool,
    pub health_log: Vec<HealthProbe>,
    pub memory_limit: i64,
    pub restart_policy: String,
    pub image: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthProbe {
    pub exit_code: i64,
    pub output: String,
    pub end: Option<SystemTime>,
}

impl Container {
    /// Ready: healthy when it has a health check, running otherwise.
    pub fn ready(&self) -> bool {
        self.status == "running" && (self.health.is_empty() || self.health == "healthy")
    }
    /// A state it will not leave by waiting.
    pub fn failed(&self) -> bool {
        matches!(self.status.as_str(), "exited" | "dead") || self.health == "unhealthy"
    }
    /// When the health check first passed in the current run of passing probes: the moment
    /// the service became ready as Docker saw it.
    pub fn healthy_since(&self) -> Option<SystemTime> {
        let passing = self
            .health_log
            .iter()
            .rev()
            .take_while(|p| p.exit_code == 0)
            .last()?;
        passing.end
    }
    pub fn state_word(&self) -> String {
        match (self.status.as_str(), self.health.as_str()) {
            ("running", "") => "running".into(),
            ("running", h) => h.into(),
            ("exited", _) => format!("exited({})", self.exit_code),
            (s, _) => s.into(),
        }
    }
}

/// `docker inspect <ids...>` output: a JSON array of containers.
pub fn parse_inspect(text: &str) -> Result<Vec<Container>> {
    let values: Vec<Value> =
        serde_json::from_str(text.trim()).context("parsing `docker inspect` JSON")?;
    Ok(values
        .iter()
        .map(|v| {
            let state = &v["State"];
            let health = &state["Health"];
            Container {
                id: str_field(v, "Id"),
                name: str_field(v, "Name").trim_start_matches('/').to_string(),
                service: v["Config"]["Labels"]["com.docker.compose.service"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                status: str_field(state, "Status"),
                health: health["Status"].as_str().unwrap_or_default().to_string(),
                exit_code: state["ExitCode"].as_i64().unwrap_or(0),
                oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
                health_log: health["Log"]
                    .as_array()
                    .map(|log| {
                        log.iter()
                            .map(|p| HealthProbe {
                                exit_code: p["ExitCode"].as_i64().unwrap_or(-1),
                                output: p["Output"].as_str().unwrap_or_default().trim().to_string(),
                                end: p["End"].as_str().and_then(parse_rfc3339),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                memory_limit: v["HostConfig"]["Memory"].as_i64().unwrap_or(0),
                restart_policy: v["HostConfig"]["RestartPolicy"]["Name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                image: v["Config"]["Image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            }
        })
        .collect())
}

/// Docker's timestamps (`2026-11-27T22:37:37.526205326Z`, or with a `+hh:mm` offset), by hand
/// rather than with a date crate: only this one format is ever read.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (clock, offset) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0)
    } else {
        let i = time.rfind(['+', '-'])?;
        let (h, mi) = time[i + 1..].split_once(':')?;
        let sign = if &time[i..i + 1] == "-" { -1 } else { 1 };
        (
            &time[..i],
            sign * (h.parse::<i64>().ok()? * 3600 + mi.parse::<i64>().ok()? * 60),
        )
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (h, mi, sec) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    let nanos: u32 = format!("{:0<9}", &frac[..frac.len().min(9)]).parse().ok()?;
    Some(UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack() -> Stack {
        Stack {
            file: "docker-compose.yml".into(),
            project: "axion-verify-1".into(),
            env_file: Some(".env.example".into()),
            env: vec![("APP_PORT".into(), "40001".into())],
        }
    }

    #[test]
    fn compose_argv_names_file_project_and_env_file() {
        assert_eq!(
            stack().args(&["ps", "--format", "json"]),
            [
                "compose",
                "-f",
                "docker-compose.yml",
                "-p",
                "axion-verify-1",
                "--env-file",
                ".env.example",
                "ps",
                "--format",
                "json"
            ]
        );
        assert_eq!(
            stack().display(&["up"]),
            "APP_PORT=40001 docker compose -f docker-compose.yml -p axion-verify-1 --env-file .env.example up"
        );
    }

    #[test]
    fn up_plans() {
        assert_eq!(
            up_args(UpOpts::default(), &[]),
            ["up", "--detach", "--no-build", "--quiet-pull"]
        );
        assert_eq!(
            up_args(
                UpOpts {
                    renew_anon_volumes: true,
                    no_deps: true
                },
                &["app"]
            ),
            [
                "up",
                "--detach",
                "--no-build",
                "--quiet-pull",
                "--renew-anon-volumes",
                "--no-deps",
                "app"
            ]
        );
        assert!(teardown_args().contains(&"--volumes".to_string()));
    }

    #[test]
    fn ps_json_lines_and_array() {
        let lines = r#"{"Name":"p-db-1","Service":"db","State":"running","Health":"healthy","ExitCode":0}
{"Name":"p-app-1","Service":"app","State":"exited","Health":"","ExitCode":1}"#;
        let array = r#"[{"Name":"p-db-1","Service":"db","State":"running","Health":"healthy","ExitCode":0},{"Name":"p-app-1","Service":"app","State":"exited","Health":"","ExitCode":1}]"#;
        let a = parse_ps(lines).unwrap();
        assert_eq!(a, parse_ps(array).unwrap());
        assert_eq!(a[1].service, "app");
        assert_eq!(a[1].exit_code, 1);
        assert_eq!(parse_ps("").unwrap(), vec![]);
        assert!(parse_ps("{not json").is_err());
    }

    #[test]
    fn docker_timestamps() {
        let t = parse_rfc3339("2026-11-27T22:37:37.526205326Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap(),
            Duration::new(1_795_819_057, 526_205_326)
        );
        assert_eq!(
            parse_rfc3339("2026-11-27T23:37:37.526205326+01:00"),
            Some(t)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn inspect_gives_health_log_and_limits() {
        let text = r#"[{"Id":"abc","Name":"/p-db-1","State":{"Status":"running","ExitCode":0,"OOMKilled":false,
            "Health":{"Status":"unhealthy","FailingStreak":5,"Log":[{"ExitCode":2,"Output":"127.0.0.1:5432 - no response\n"}]}},
            "Config":{"Image":"postgres:17-alpine","Labels":{"com.docker.compose.service":"db"}},
            "HostConfig":{"Memory":536870912,"RestartPolicy":{"Name":"unless-stopped"}}}]"#;
        let c = &parse_inspect(text).unwrap()[0];
        assert_eq!((c.name.as_str(), c.service.as_str()), ("p-db-1", "db"));
        assert!(c.failed() && !c.ready());
        assert_eq!(c.health_log[0].output, "127.0.0.1:5432 - no response");
        assert_eq!(c.healthy_since(), None, "the last probe failed");
        assert_eq!(
            (c.memory_limit, c.restart_policy.as_str()),
            (536870912, "unless-stopped")
        );
        let no_check = Container {
            status: "running".into(),
            ..Default::default()
        };
        assert!(no_check.ready());
        assert_eq!(
            Container {
                status: "exited".into(),
                exit_code: 137,
                ..Default::default()
            }
            .state_word(),
            "exited(137)"
        );
    }
}
