//! The readiness state machine on a scripted clock: no engine, no sleeping.

use std::time::UNIX_EPOCH;

use super::*;
use crate::docker::container::HealthProbe;

type HttpScript = Box<dyn FnMut(Duration, &str) -> Result<http::Response, http::Error>>;

/// A world in virtual time: containers change at scripted moments, `up` returns at one.
struct Fake {
    t: Duration,
    up_at: Duration,
    up_error: Option<String>,
    /// The containers from each moment on.
    timeline: Vec<(Duration, Vec<Container>)>,
    /// false: the event stream is gone from the start.
    events: bool,
    http: HttpScript,
    samples: usize,
    interrupt_at: Option<Duration>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn c(service: &str, status: &str, health: &str) -> Container {
    Container {
        id: format!("id-{service}"),
        service: service.into(),
        status: crate::docker::container::Status::parse(status),
        health: crate::docker::container::Health::parse(health),
        ..Default::default()
    }
}

fn exited(service: &str, code: i64) -> Container {
    Container {
        exit_code: code,
        ..c(service, "exited", "")
    }
}

fn all_ready() -> Vec<Container> {
    vec![
        c("app", "running", ""),
        c("db", "running", "healthy"),
        c("redis", "running", "healthy"),
    ]
}

fn response(status: u16, body: &str) -> Result<http::Response, http::Error> {
    Ok(http::Response {
        status,
        location: None,
        content_type: None,
        headers: vec![],
        body: body.into(),
    })
}

const HEALTHY: &str = r#"{"status":"ok","checks":{"db":{"ok":true},"redis":{"ok":true}}}"#;

/// `/` refuses connections until `at`, then everything answers 200 with a healthy body.
fn serves_from(at: Duration) -> HttpScript {
    Box::new(move |t, path| {
        if t < at {
            return Err(http::Error::Starting("connection refused".into()));
        }
        response(200, if path == "/" { "<html>" } else { HEALTHY })
    })
}

impl Fake {
    fn new(up_at: Duration, timeline: Vec<(Duration, Vec<Container>)>) -> Fake {
        Fake {
            t: Duration::ZERO,
            up_at,
            up_error: None,
            timeline,
            events: true,
            http: serves_from(Duration::ZERO),
            samples: 0,
            interrupt_at: None,
        }
    }
    fn next_change(&self, max: Duration) -> Option<Duration> {
        self.timeline
            .iter()
            .map(|(from, _)| *from)
            .filter(|from| *from > self.t && *from <= self.t + max)
            .min()
    }
}

impl Probe for Fake {
    fn up_done(&mut self) -> Result<bool, String> {
        match (&self.up_error, self.t >= self.up_at) {
            (_, false) => Ok(false),
            (Some(e), true) => Err(e.clone()),
            (None, true) => Ok(true),
        }
    }
    fn containers(&mut self) -> Result<Vec<Container>, String> {
        self.samples += 1;
        Ok(self
            .timeline
            .iter()
            .rev()
            .find(|(from, _)| *from <= self.t)
            .map(|(_, cs)| cs.clone())
            .unwrap_or_default())
    }
    fn wait(&mut self, max: Duration) -> Wake {
        if !self.events {
            self.t += max;
            return Wake::Ended;
        }
        match self.next_change(max) {
            Some(at) => {
                self.t = at;
                Wake::Event
            }
            None => {
                self.t += max;
                Wake::Timeout
            }
        }
    }
    fn sleep(&mut self, d: Duration) {
        self.t += d;
    }
    fn get(&mut self, path: &str, timeout: Duration) -> Result<http::Response, http::Error> {
        self.t += ms(5).min(timeout);
        (self.http)(self.t, path)
    }
    fn elapsed(&self) -> Duration {
        self.t
    }
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + self.t
    }
    fn interrupted(&self) -> Option<String> {
        self.interrupt_at
            .filter(|at| self.t >= *at)
            .map(|_| "SIGINT (Ctrl-C)".into())
    }
}

fn spec() -> ReadySpec {
    ReadySpec {
        services: ["app", "db", "redis"].map(String::from).to_vec(),
        app_port: 3000,
        timeout_healthy: Duration::from_secs(150),
        timeout_http: Duration::from_secs(120),
    }
}

fn run(fake: &mut Fake) -> Result<Ready, NotReady> {
    wait(fake, &spec(), &mut Progress::new(true))
}

#[test]
fn ready_once_up_returned_and_the_app_answers() {
    let mut fake = Fake::new(
        ms(2600),
        vec![
            (ms(0), vec![c("db", "running", "starting")]),
            (
                ms(2000),
                vec![
                    c("db", "running", "healthy"),
                    c("redis", "running", "healthy"),
                ],
            ),
            (ms(2500), all_ready()),
        ],
    );
    fake.http = serves_from(ms(4000));
    let ready = run(&mut fake).unwrap();
    assert_eq!(ready.healthy_after, ms(2600), "ready when `up` returned");
    assert!(
        ready.first_200_after >= ms(4000),
        "{:?}",
        ready.first_200_after
    );
    assert_eq!(
        ready.services[1].ready_after,
        Some(ms(2000)),
        "db noticed at its event"
    );
    assert!(health_ok(&ready.health_body));
    // Event-driven: a handful of samples, not one per 25 ms tick.
    assert!(fake.samples <= 8, "{} samples", fake.samples);
}

#[test]
fn a_service_without_a_health_check_is_ready_when_running() {
    let mut fake = Fake::new(ms(100), vec![(ms(0), all_ready())]);
    let ready = run(&mut fake).unwrap();
    let app = &ready.services[0];
    assert_eq!(
        (app.service.as_str(), app.state.as_str()),
        ("app", "running")
    );
    assert!(app.ready_after.is_some());
}

#[test]
fn stale_states_while_up_restarts_a_stack_are_not_failures() {
    // A stopped stack's containers show their old exit until `up` restarts them.
    let stale = vec![exited("app", 137), exited("db", 0), exited("redis", 0)];
    let mut fake = Fake::new(
        ms(3000),
        vec![
            (ms(0), stale),
            (
                ms(1000),
                vec![
                    c("app", "created", ""),
                    c("db", "running", "starting"),
                    c("redis", "running", "starting"),
                ],
            ),
            (ms(2500), all_ready()),
        ],
    );
    let ready = run(&mut fake).unwrap();
    assert_eq!(ready.healthy_after, ms(3000));
}

#[test]
fn a_service_that_failed_after_up_is_blamed() {
    let mut fake = Fake::new(
        ms(500),
        vec![(
            ms(0),
            vec![
                exited("app", 1),
                c("db", "running", "healthy"),
                c("redis", "running", "healthy"),
            ],
        )],
    );
    let e = run(&mut fake).unwrap_err();
    assert_eq!(e.service.as_deref(), Some("app"));
    assert_eq!(e.message, "service `app` is exited(1)");
}

#[test]
fn a_crash_during_the_http_phase_ends_the_wait_and_names_the_service() {
    let mut fake = Fake::new(
        ms(100),
        vec![
            (ms(0), all_ready()),
            (
                ms(5000),
                vec![
                    exited("app", 1),
                    c("db", "running", "healthy"),
                    c("redis", "running", "healthy"),
                ],
            ),
        ],
    );
    fake.http = serves_from(Duration::from_secs(3600));
    let e = run(&mut fake).unwrap_err();
    assert_eq!(e.service.as_deref(), Some("app"));
    assert!(e.message.contains("exited(1)"), "{}", e.message);
    assert!(
        fake.t < ms(7000),
        "noticed within the crash-check interval: {:?}",
        fake.t
    );
}

#[test]
fn a_timeout_blames_the_first_service_not_ready() {
    let mut fake = Fake::new(
        ms(100),
        vec![(
            ms(0),
            vec![
                c("app", "running", ""),
                c("db", "running", "healthy"),
                c("redis", "running", "starting"),
            ],
        )],
    );
    let e = run(&mut fake).unwrap_err();
    assert_eq!(e.service.as_deref(), Some("redis"));
    assert!(
        e.message.contains("not ready within 150s")
            && e.message.contains("redis starting")
            && e.message.contains("--timeout-healthy"),
        "{}",
        e.message
    );
}

#[test]
fn when_the_event_stream_ends_it_polls_and_still_sees_the_change() {
    let mut fake = Fake::new(
        ms(3000),
        vec![
            (ms(0), vec![c("db", "running", "starting")]),
            (ms(3000), all_ready()),
        ],
    );
    fake.events = false;
    let ready = run(&mut fake).unwrap();
    assert!(ready.healthy_after <= ms(3100), "{:?}", ready.healthy_after);
    // Polling every 100 ms: about 30 samples over 3 s.
    assert!(
        (25..=40).contains(&fake.samples),
        "{} samples",
        fake.samples
    );
}

#[test]
fn status_line_shows_each_service() {
    let seen = vec![
        ServiceReady {
            service: "db".into(),
            state: "healthy".into(),
            ready_after: Some(ms(1500)),
            notice_delay: None,
        },
        ServiceReady {
            service: "app".into(),
            state: "starting".into(),
            ready_after: None,
            notice_delay: None,
        },
    ];
    assert_eq!(
        status_line(&seen, Duration::from_secs(2)),
        "  2.0s  db healthy (1.5s) | app starting"
    );
}

mod http_phase;
