//! Where readiness gets decided: a state machine in two phases (services healthy, then the app
//! answering), driven through a small probe interface so it is unit-tested without an engine.
//! `lifecycle::EngineProbe` is the real probe (docker events, inspect, HTTP).

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::{
    docker::{Container, events::Wake},
    http,
    progress::Progress,
    util::secs,
};

/// Without an event stream, how often the containers are sampled: one `docker inspect` costs
/// about 30 ms here, so a service is noticed within ~150 ms.
pub const POLL_EVERY: Duration = Duration::from_millis(100);
/// With the event stream, how often `up`'s exit is checked (no docker call, just try_wait).
const UP_CHECK_EVERY: Duration = Duration::from_millis(25);
/// With the event stream, the longest time between two samples: a safety net for an event
/// that arrived before the stream started.
const FALLBACK_SAMPLE: Duration = Duration::from_secs(1);
/// While waiting for HTTP, how often the containers are checked for a crash.
const CRASH_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Between two HTTP attempts.
const HTTP_RETRY: Duration = Duration::from_millis(100);

/// What the wait needs from the world. Times are measured from the start of the wait.
pub trait Probe {
    /// Whether `compose up` has returned; an error is `up` failing, with its cause.
    fn up_done(&mut self) -> Result<bool, String>;
    fn containers(&mut self) -> Result<Vec<Container>, String>;
    /// Blocks until the engine reports a change, or `max` passes.
    fn wait(&mut self, max: Duration) -> Wake;
    fn sleep(&mut self, d: Duration);
    /// Starts GETs whose answers nobody waits for (retrying while the server boots): the dev
    /// server compiles those routes meanwhile.
    fn prefetch(&mut self, _paths: &[&str]) {}
    /// One GET of the app, given at most `timeout`.
    fn get(&mut self, path: &str, timeout: Duration) -> Result<http::Response, http::Error>;
    fn elapsed(&self) -> Duration;
    /// The wall clock, to see how late a passing health check was noticed.
    fn now(&self) -> SystemTime;
    /// A signal that asks the xtask to stop.
    fn interrupted(&self) -> Option<String>;
}

/// What readiness means for a stack, and how long each phase may take.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadySpec {
    pub services: Vec<String>,
    pub app_port: u16,
    pub timeout_healthy: Duration,
    pub timeout_http: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceReady {
    pub service: String,
    pub state: String,
    /// Time from the start to ready, as the xtask first saw it.
    pub ready_after: Option<Duration>,
    /// How long after Docker's first passing health probe the xtask noticed it.
    pub notice_delay: Option<Duration>,
}

impl ServiceReady {
    /// `db         healthy    2.2s (noticed 19 ms after its health check passed)`
    pub fn summary(&self) -> String {
        let ready = self.ready_after.map(secs).unwrap_or_else(|| "-".into());
        let noticed = self
            .notice_delay
            .map(|d| {
                format!(
                    " (noticed {} ms after its health check passed)",
                    d.as_millis()
                )
            })
            .unwrap_or_default();
        format!("{:<10} {:<10} {ready}{noticed}", self.service, self.state)
    }
}

#[derive(Debug, Clone)]
pub struct Ready {
    pub services: Vec<ServiceReady>,
    pub healthy_after: Duration,
    pub first_200_after: Duration,
    pub health_body: Value,
}

/// Why waiting stopped short, with the service to blame when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct NotReady {
    pub service: Option<String>,
    pub message: String,
}

impl NotReady {
    fn general(message: impl Into<String>) -> NotReady {
        NotReady {
            service: None,
            message: message.into(),
        }
    }
    fn failed(c: &Container) -> NotReady {
        NotReady {
            service: Some(c.service.clone()),
            message: format!("service `{}` is {}", c.service, c.state_word()),
        }
    }
}

/// Every service ready (healthy, or running when it has no health check), then `GET /` and
/// `GET /api/health` answering 200 with db and redis ok.
pub fn wait(
    probe: &mut impl Probe,
    spec: &ReadySpec,
    progress: &mut Progress,
) -> Result<Ready, NotReady> {
    let mut seen: Vec<ServiceReady> = spec
        .services
        .iter()
        .map(|s| ServiceReady {
            service: s.clone(),
            state: "waiting".into(),
            ready_after: None,
            notice_delay: None,
        })
        .collect();
    let services = wait_services(probe, spec, &mut seen, progress);
    let healthy_after = services.inspect_err(|_| progress.done())?;
    let (first_200_after, health_body) = wait_http(probe, spec, &seen, progress)?;
    progress.done();
    Ok(Ready {
        services: seen,
        healthy_after,
        first_200_after,
        health_body,
    })
}

fn check_interrupt(probe: &impl Probe) -> Result<(), NotReady> {
    match probe.interrupted() {
        Some(sig) => Err(NotReady::general(format!("interrupted by {sig}"))),
        None => Ok(()),
    }
}

/// Phase 1: samples the containers when the engine reports a change, when `up` returns, and
/// at least every FALLBACK_SAMPLE (every POLL_EVERY once the event stream has ended).
fn wait_services(
    probe: &mut impl Probe,
    spec: &ReadySpec,
    seen: &mut [ServiceReady],
    progress: &mut Progress,
) -> Result<Duration, NotReady> {
    let mut due = true;
    let mut last_sample = Duration::ZERO;
    let mut was_up = false;
    let mut polling = false;
    loop {
        check_interrupt(probe)?;
        let up = probe.up_done().map_err(NotReady::general)?;
        if up && !was_up {
            // The dev server compiles `/` on its first request: start it now, beside the
            // health route its health check compiles, not after that check passes.
            probe.prefetch(&["/"]);
        }
        due |= up != was_up || polling || probe.elapsed() >= last_sample + FALLBACK_SAMPLE;
        was_up = up;
        if due {
            due = false;
            last_sample = probe.elapsed();
            let cs = probe.containers().map_err(NotReady::general)?;
            record(seen, &cs, probe.elapsed(), probe.now());

            progress.show_keyed(
                &status_line(seen, Duration::ZERO),
                &status_line(seen, probe.elapsed()),
            );
            // Until `up` returns, states may be left over from a stopped stack it is
            // restarting; a service failing during `up` makes `up` itself fail.
            if up {
                if let Some(c) = cs.iter().find(|c| c.failed()) {
                    return Err(NotReady::failed(c));
                }
                if seen.iter().all(|s| s.ready_after.is_some()) {
                    return Ok(probe.elapsed());
                }
            }
        }
        if probe.elapsed() > spec.timeout_healthy {
            return Err(NotReady {
                service: seen
                    .iter()
                    .find(|s| s.ready_after.is_none())
                    .map(|s| s.service.clone()),
                message: format!(
                    "not ready within {:.0}s: {} (raise with --timeout-healthy)",
                    spec.timeout_healthy.as_secs_f64(),
                    seen.iter()
                        .map(|s| format!("{} {}", s.service, s.state))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        match probe.wait(if polling { POLL_EVERY } else { UP_CHECK_EVERY }) {
            Wake::Event => due = true,
            Wake::Ended => polling = true,
            Wake::Timeout => {}
        }
    }
}

fn record(seen: &mut [ServiceReady], cs: &[Container], elapsed: Duration, now: SystemTime) {
    for s in seen.iter_mut() {
        let c = cs.iter().find(|c| c.service == s.service);
        s.state = c.map_or("not created".into(), Container::state_word);
        if let Some(c) = c.filter(|c| s.ready_after.is_none() && c.ready()) {
            s.ready_after = Some(elapsed);
            s.notice_delay = c.healthy_since().and_then(|t| now.duration_since(t).ok());
        }
    }
}

/// Phase 2: `/` first (the dev server compiles on first request), then the health route,
/// whose body must say both checks passed. A crash meanwhile ends the wait at once.
fn wait_http(
    probe: &mut impl Probe,
    spec: &ReadySpec,
    seen: &[ServiceReady],
    progress: &mut Progress,
) -> Result<(Duration, Value), NotReady> {
    let start = probe.elapsed();
    // The health route compiles while `/` does (measured: about 0.5 s off a dev start).
    probe.prefetch(&["/api/health"]);
    let mut last = String::from("no answer yet");
    let mut failed_check: Option<String> = None;
    let mut first_200 = None;
    let mut last_crash_check = start;
    loop {
        check_interrupt(probe)?;
        let path = if first_200.is_none() {
            "/"
        } else {
            "/api/health"
        };
        let key = format!("GET {path}: {last}");
        progress.show_keyed(
            &key,
            &format!("{}  {key}", status_line(seen, probe.elapsed())),
        );
        let left = (start + spec.timeout_http).saturating_sub(probe.elapsed());
        if left.is_zero() {
            return Err(http_timeout(spec, path, &last, failed_check));
        }
        let answer = probe.get(path, left);
        match answer {
            Ok(r) if r.status == 200 && path == "/" => {
                first_200 = Some(probe.elapsed());
                last = "waiting".into();
                if probe.elapsed() <= start + spec.timeout_http {
                    continue;
                }
            }
            Ok(r) if path == "/api/health" => match serde_json::from_str::<Value>(&r.body) {
                Ok(body) if r.status == 200 && health_ok(&body) => {
                    return Ok((first_200.unwrap_or_default(), body));
                }
                Ok(body) => {
                    failed_check = body["failed"][0].as_str().map(String::from);
                    last = format!("{} {body}", r.describe());
                }
                Err(_) => {
                    let text: String = r.body.chars().take(200).collect();
                    last = format!("{} (not JSON) {text}", r.describe());
                }
            },
            Ok(r) => last = r.describe(),
            Err(e) => last = e.to_string(),
        }
        if probe.elapsed() >= last_crash_check + CRASH_CHECK_EVERY {
            last_crash_check = probe.elapsed();
            if let Ok(cs) = probe.containers()
                && let Some(c) = cs.iter().find(|c| c.failed())
            {
                return Err(NotReady::failed(c));
            }
        }
        probe.sleep(HTTP_RETRY);
    }
}

/// The HTTP phase ran out of time: blame the check the health route named, else the app.
fn http_timeout(
    spec: &ReadySpec,
    path: &str,
    last: &str,
    failed_check: Option<String>,
) -> NotReady {
    NotReady {
        service: failed_check.or_else(|| Some("app".into())),
        message: format!(
            "GET http://127.0.0.1:{}{path} did not succeed within {:.0}s; last answer: {last} (raise with --timeout-http)",
            spec.app_port,
            spec.timeout_http.as_secs_f64()
        ),
    }
}

/// 200 alone is not enough: the body must say both checks passed.
pub fn health_ok(body: &Value) -> bool {
    body["status"] == "ok"
        && body["checks"]["db"]["ok"] == true
        && body["checks"]["redis"]["ok"] == true
}

pub fn status_line(seen: &[ServiceReady], elapsed: Duration) -> String {
    let parts: Vec<String> = seen
        .iter()
        .map(|s| match s.ready_after {
            Some(t) => format!("{} {} ({})", s.service, s.state, secs(t)),
            None => format!("{} {}", s.service, s.state),
        })
        .collect();
    format!("{:>6}  {}", secs(elapsed), parts.join(" | "))
}

#[cfg(test)]
mod tests;
