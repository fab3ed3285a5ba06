//! `cargo xtask bench --load`: a throw-away prod stack driven at 100 connections by wrk (Debian's
//! package: installs in seconds, reports latency percentiles), each URL in turn, with
//! PostgreSQL connections and memory sampled while the load runs.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xshell::Shell;

use crate::startup::Start;
use crate::{
    docker::{self, compose::words},
    flags, install,
    lifecycle::{self, Teardown},
    paths::log_path,
    progress::Progress,
    readiness::ReadySpec,
    stack::{
        LOAD_CONNECTIONS, LOAD_DURATION, Ports, Stack, StackKind, TIMEOUT_BUILD, TIMEOUT_HEALTHY,
        TIMEOUT_HTTP,
    },
    util::secs,
};

/// The app's PostgreSQL pool (app/lib/connections.ts DB_POOL_MAX): its connections may not exceed it.
const POOL_MAX: u32 = 5;
/// Goals on 2 cores for /api/health (a report, not an assertion: speed is measured).
const GOAL_RPS: f64 = 1500.0;
const GOAL_P99_MS: f64 = 150.0;
const URLS: [&str; 2] = ["/", "/api/health"];

/// What wrk measured for one URL.
#[derive(Debug, Default, PartialEq)]
pub struct Load {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Socket errors plus non-2xx/3xx answers.
    pub errors: u64,
}

pub fn run(sh: &Shell, o: &flags::Bench, start: &Start) -> Result<()> {
    let wrk = ensure_wrk(sh)?;
    let (root, env, images) = (&start.root, &start.env, start.set());
    let kind = StackKind::Prod;
    let stack = Stack::throwaway(kind, "bench-load", env, images, Ports::free()?);
    let _guard = Teardown {
        sh,
        stack: &stack,
        keep: false,
        quiet: false,
    };
    let log = log_path(root, &format!("{}-build.log", stack.project()));
    let policy = crate::integrity::Policy::for_run(false, None);
    lifecycle::build(sh, &stack.compose, kind, &policy, &[], &log, TIMEOUT_BUILD)?;
    let spec = ReadySpec {
        services: kind.services().iter().map(|s| s.to_string()).collect(),
        app_port: stack.ports.app,
        timeout_healthy: TIMEOUT_HEALTHY,
        timeout_http: TIMEOUT_HTTP,
    };
    let (ready, _) = lifecycle::up_and_wait(
        sh,
        &stack.compose,
        Default::default(),
        &spec,
        &mut Progress::new(false),
    )?;
    ready.map_err(|e| anyhow::anyhow!(e.message))?;
    let cs = docker::containers(sh, stack.project())?;
    let db = cs
        .iter()
        .find(|c| c.service == "db")
        .context("no db container")?;
    let duration = o.duration.unwrap_or(LOAD_DURATION);

    eprintln!(
        "\nload: {LOAD_CONNECTIONS} connections, {} per URL, wrk with 2 threads on the same 2 cores",
        secs(duration)
    );
    let mut problems = Vec::new();
    for path in URLS {
        let url = format!("http://127.0.0.1:{}{path}", stack.ports.app);
        problems.extend(one_url(
            sh,
            &wrk,
            &url,
            path,
            duration,
            &db.name,
            stack.project(),
        )?);
    }
    if !problems.is_empty() {
        bail!("under load: {}", problems.join("; "));
    }
    Ok(())
}

/// wrk on one URL for `duration`, the app role's PostgreSQL connections and the stack's
/// memory sampled meanwhile; the figures printed, what breaks a limit returned.
fn one_url(
    sh: &Shell,
    wrk: &str,
    url: &str,
    path: &str,
    duration: Duration,
    db: &str,
    project: &str,
) -> Result<Vec<String>> {
    // One second of warm-up: pools fill, the route is compiled and cached.
    wrk_run(wrk, url, Duration::from_secs(1))?;
    let t = Instant::now();
    let child = duct::cmd(wrk, wrk_args(url, duration))
        .stdout_capture()
        .stderr_capture()
        .start()?;
    let mut max_conns = 0;
    let mut memory = String::new();
    while child.try_wait()?.is_none() {
        max_conns = max_conns.max(app_connections(sh, db));
        if memory.is_empty() && t.elapsed() >= duration / 2 {
            memory = memory_use(sh, project);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = child.wait()?;
    let load = parse_wrk(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("reading wrk's report for {path}"))?;
    eprintln!(
        "  {path:<12} {:>8.0} requests/s  p50 {:>6.1} ms  p99 {:>6.1} ms  errors {}  ({} requests)",
        load.rps, load.p50_ms, load.p99_ms, load.errors, load.requests
    );
    eprintln!(
        "               PostgreSQL connections of the app role: at most {max_conns} (pool {POOL_MAX})"
    );
    eprintln!("               memory at half time: {memory}");
    if path == "/api/health" {
        let met = load.rps >= GOAL_RPS && load.p99_ms <= GOAL_P99_MS;
        eprintln!(
            "               goal ({GOAL_RPS:.0} requests/s, p99 <= {GOAL_P99_MS:.0} ms): {}",
            if met { "met" } else { "not met" }
        );
    }
    let mut problems = Vec::new();
    if load.errors > 0 {
        problems.push(format!("{path}: {} errors", load.errors));
    }
    if max_conns > POOL_MAX {
        problems.push(format!(
            "{path}: {max_conns} PostgreSQL connections, more than the pool's {POOL_MAX}"
        ));
    }
    Ok(problems)
}

fn ensure_wrk(sh: &Shell) -> Result<String> {
    if let Ok(p) = which::which("wrk") {
        return Ok(p.display().to_string());
    }
    if !crate::host::is_root() {
        bail!("bench --load drives the stack with wrk.\n  fix: sudo apt-get install wrk");
    }
    eprintln!("bench: installing wrk (Debian package)");
    install::apt_install(sh, &["wrk"])?;
    Ok("wrk".into())
}

fn wrk_args(url: &str, d: Duration) -> Vec<String> {
    words(&[
        "-t2",
        &format!("-c{LOAD_CONNECTIONS}"),
        &format!("-d{}s", d.as_secs().max(1)),
        "--timeout",
        "5s",
        "--latency",
        url,
    ])
}

fn wrk_run(wrk: &str, url: &str, d: Duration) -> Result<()> {
    duct::cmd(wrk, wrk_args(url, d))
        .stdout_null()
        .stderr_null()
        .run()?;
    Ok(())
}

/// Connections the app role holds now.
fn app_connections(sh: &Shell, db: &str) -> u32 {
    let script = "psql -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -XtAc \
                  \"select count(*) from pg_stat_activity where usename = '$APP_DB_USER'\"";
    docker::exec(sh, db, &["sh", "-c", script])
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// `app 61MiB / 512MiB, db 40MiB / 512MiB, ...` from one `docker stats` sample.
fn memory_use(sh: &Shell, project: &str) -> String {
    let Ok(cs) = docker::containers(sh, project) else {
        return "unknown".into();
    };
    let names: Vec<String> = cs.iter().map(|c| c.name.clone()).collect();
    docker::memory_bytes(sh, &docker::Engine::configured(), &names)
        .into_iter()
        .map(|(name, bytes)| {
            let mib = |b: u64| format!("{:.0}MiB", b as f64 / f64::from(1 << 20));
            let c = cs.iter().find(|c| c.name == name);
            let service = c.map_or(name.as_str(), |c| c.service.as_str());
            match c.filter(|c| c.memory_limit > 0) {
                Some(c) => format!("{service} {} / {}", mib(bytes), mib(c.memory_limit as u64)),
                None => format!("{service} {}", mib(bytes)),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// wrk's `--latency` report.
pub fn parse_wrk(text: &str) -> Option<Load> {
    let mut load = Load::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => load.p50_ms = millis(v)?,
            ["99%", v] => load.p99_ms = millis(v)?,
            [n, "requests", "in", ..] => load.requests = n.parse().ok()?,
            ["Requests/sec:", v] => load.rps = v.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => load.errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                load.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    (load.requests > 0).then_some(load)
}

fn millis(v: &str) -> Option<f64> {
    let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_reports_parse() {
        let text = "Running 15s test @ http://127.0.0.1:3000/api/health
  2 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    52.10ms   10.00ms 200.00ms   90.00%
    Req/Sec     0.96k   100.00     1.20k    70.00%
  Latency Distribution
     50%   50.21ms
     75%   55.00ms
     90%   60.00ms
     99%  120.50ms
  28765 requests in 15.00s, 9.87MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   1917.66
Transfer/sec:    673.50KB
";
        let l = parse_wrk(text).unwrap();
        assert_eq!(l.requests, 28765);
        assert_eq!((l.p50_ms, l.p99_ms), (50.21, 120.5));
        assert_eq!(l.errors, 7);
        assert!((l.rps - 1917.66).abs() < 1e-9);
        assert_eq!(millis("850.00us"), Some(0.85));
        assert_eq!(millis("1.50s"), Some(1500.0));
        assert!(parse_wrk("garbage").is_none());
    }
}
