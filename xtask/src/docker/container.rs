//! A container as `docker inspect` describes it, and Docker's timestamps: the one model of
//! "what state is this service in" that readiness, diagnosis and reports share.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::Value;

fn str_field(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `State.Status` as `docker inspect` reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// A word this model does not know (a newer engine).
    #[default]
    Unknown,
}

impl Status {
    pub fn parse(word: &str) -> Status {
        match word {
            "created" => Status::Created,
            "running" => Status::Running,
            "paused" => Status::Paused,
            "restarting" => Status::Restarting,
            "removing" => Status::Removing,
            "exited" => Status::Exited,
            "dead" => Status::Dead,
            _ => Status::Unknown,
        }
    }
    pub fn word(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
            Status::Unknown => "unknown",
        }
    }
}

/// `State.Health.Status`; `None` when the service has no health check.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Health {
    #[default]
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn parse(word: &str) -> Health {
        match word {
            "starting" => Health::Starting,
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            _ => Health::None,
        }
    }
}

/// A container as `docker inspect` describes it: the fields readiness and diagnosis need.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub service: String,
    pub status: Status,
    pub health: Health,
    pub exit_code: i64,
    pub oom_killed: bool,
    /// Restarts by its restart policy (a crash loop shows here).
    pub restart_count: i64,
    pub health_log: Vec<HealthProbe>,
    pub memory_limit: i64,
    pub restart_policy: String,
    pub image: String,
    pub hardening: Hardening,
}

/// What a container may do, as `docker inspect` reports it: the prod checks read this.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hardening {
    pub user: String,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub read_only: bool,
    /// 0 or -1: no limit.
    pub pids_limit: i64,
    pub log_driver: String,
    pub log_max_size: String,
    pub log_max_file: String,
    /// `KEY=value` as the container's environment holds them.
    pub env: Vec<String>,
    /// Host ports published (`HostConfig.PortBindings`).
    pub published: Vec<String>,
    /// The names of the networks it is attached to.
    pub networks: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn parse_hardening(v: &Value) -> Hardening {
    let host = &v["HostConfig"];
    let log = &host["LogConfig"];
    Hardening {
        user: str_field(&v["Config"], "User"),
        cap_add: strings(&host["CapAdd"]),
        cap_drop: strings(&host["CapDrop"]),
        security_opt: strings(&host["SecurityOpt"]),
        read_only: host["ReadonlyRootfs"].as_bool().unwrap_or(false),
        pids_limit: host["PidsLimit"].as_i64().unwrap_or(0),
        log_driver: str_field(log, "Type"),
        log_max_size: str_field(&log["Config"], "max-size"),
        log_max_file: str_field(&log["Config"], "max-file"),
        env: strings(&v["Config"]["Env"]),
        published: host["PortBindings"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(_, b)| b.as_array().is_some_and(|a| !a.is_empty()))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default(),
        networks: keys(&v["NetworkSettings"]["Networks"]),
    }
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
        self.is_running() && matches!(self.health, Health::None | Health::Healthy)
    }
    /// Its process runs (healthy or not).
    pub fn is_running(&self) -> bool {
        self.status == Status::Running
    }
    /// A state it will not leave by waiting: stopped, unhealthy, or crashed at least once
    /// (a restart policy would hide a crash loop behind "restarting"/"running").
    pub fn failed(&self) -> bool {
        matches!(
            self.status,
            Status::Exited | Status::Dead | Status::Restarting
        ) || self.health == Health::Unhealthy
            || self.oom_killed
            || self.restart_count > 0
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
        let mut w = match (&self.status, &self.health) {
            (Status::Running, Health::None) => "running".to_string(),
            (Status::Running, Health::Starting) => "starting".to_string(),
            (Status::Running, Health::Healthy) => "healthy".to_string(),
            (Status::Running, Health::Unhealthy) => "unhealthy".to_string(),
            (Status::Exited | Status::Restarting, _) => {
                format!("{}({})", self.status.word(), self.exit_code)
            }
            (s, _) => s.word().to_string(),
        };
        if self.oom_killed {
            w.push_str(", killed for running out of memory");
        }
        if self.restart_count > 0 {
            w.push_str(&format!(", restarted {} times", self.restart_count));
            if self.is_running() && self.exit_code != 0 {
                w.push_str(&format!(" (last exit {})", self.exit_code));
            }
        }
        w
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
                status: Status::parse(&str_field(state, "Status")),
                health: Health::parse(health["Status"].as_str().unwrap_or_default()),
                exit_code: state["ExitCode"].as_i64().unwrap_or(0),
                oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
                restart_count: v["RestartCount"].as_i64().unwrap_or(0),
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
                hardening: parse_hardening(v),
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
            "Config":{"Image":"postgres:17-alpine","User":"","Env":["POSTGRES_PASSWORD_FILE=/run/secrets/p"],"Labels":{"com.docker.compose.service":"db"}},
            "HostConfig":{"Memory":536870912,"RestartPolicy":{"Name":"unless-stopped"},"CapDrop":["ALL"],"CapAdd":["CHOWN"],
              "SecurityOpt":["no-new-privileges:true"],"ReadonlyRootfs":true,"PidsLimit":256,
              "LogConfig":{"Type":"json-file","Config":{"max-size":"10m","max-file":"3"}},"PortBindings":{"5432/tcp":[]}},
            "NetworkSettings":{"Networks":{"p_backend":{}}}}]"#;
        let c = &parse_inspect(text).unwrap()[0];
        assert_eq!((c.name.as_str(), c.service.as_str()), ("p-db-1", "db"));
        assert!(c.failed() && !c.ready());
        assert_eq!(c.health_log[0].output, "127.0.0.1:5432 - no response");
        assert_eq!(c.healthy_since(), None, "the last probe failed");
        assert_eq!(
            (c.memory_limit, c.restart_policy.as_str()),
            (536870912, "unless-stopped")
        );
        let h = &c.hardening;
        assert_eq!(
            (h.cap_drop.as_slice(), h.cap_add.as_slice()),
            (&["ALL".to_string()][..], &["CHOWN".to_string()][..])
        );
        assert!(
            h.read_only && h.pids_limit == 256 && h.log_max_size == "10m" && h.log_max_file == "3"
        );
        assert!(h.published.is_empty(), "an empty binding publishes nothing");
        assert_eq!(h.networks, ["p_backend"]);
        let no_check = Container {
            status: Status::Running,
            ..Default::default()
        };
        assert!(no_check.ready());
        assert_eq!(
            Container {
                status: Status::Exited,
                exit_code: 137,
                ..Default::default()
            }
            .state_word(),
            "exited(137)"
        );
        let looping = Container {
            status: Status::Restarting,
            exit_code: 137,
            oom_killed: true,
            restart_count: 2,
            ..Default::default()
        };
        assert!(looping.failed());
        assert_eq!(
            looping.state_word(),
            "restarting(137), killed for running out of memory, restarted 2 times"
        );
    }
}
