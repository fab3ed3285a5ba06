//! The HTTP phase: what a timeout blames, redirects and boot errors, a slow first answer, the
//! health body.

use super::*;

#[test]
fn an_http_timeout_blames_the_check_the_health_route_names() {
    let mut fake = Fake::new(ms(100), vec![(ms(0), all_ready())]);
    fake.http = Box::new(|_, path| match path {
        "/" => response(200, "<html>"),
        _ => response(503, r#"{"status":"degraded","failed":["db"]}"#),
    });
    let e = run(&mut fake).unwrap_err();
    assert_eq!(e.service.as_deref(), Some("db"));
    assert!(
        e.message
            .contains("/api/health did not succeed within 120s")
            && e.message.contains("503 {"),
        "{}",
        e.message
    );
}

#[test]
fn redirects_and_boot_errors_are_reported_as_what_they_are() {
    let mut fake = Fake::new(ms(100), vec![(ms(0), all_ready())]);
    fake.http = Box::new(|_, _| {
        Ok(http::Response {
            status: 307,
            location: Some("/login".into()),
            content_type: None,
            headers: vec![],
            body: String::new(),
        })
    });
    let e = run(&mut fake).unwrap_err();
    assert!(
        e.message.contains("last answer: 307 redirect to /login"),
        "{}",
        e.message
    );
    assert_eq!(e.service.as_deref(), Some("app"));

    let mut fake = Fake::new(ms(100), vec![(ms(0), all_ready())]);
    fake.http = serves_from(Duration::from_secs(3600));
    let e = run(&mut fake).unwrap_err();
    assert!(
        e.message
            .contains("last answer: starting (connection refused)"),
        "{}",
        e.message
    );
}

#[test]
fn up_failing_and_signals_end_the_wait() {
    let mut fake = Fake::new(ms(200), vec![(ms(0), vec![])]);
    fake.up_error = Some("`compose up` failed: port is already allocated".into());
    let e = run(&mut fake).unwrap_err();
    assert!(e.message.contains("port is already allocated") && e.service.is_none());

    let mut fake = Fake::new(ms(200), vec![(ms(0), vec![c("db", "running", "starting")])]);
    fake.interrupt_at = Some(ms(1000));
    let e = run(&mut fake).unwrap_err();
    assert_eq!(e.message, "interrupted by SIGINT (Ctrl-C)");
}

#[test]
fn notice_delay_is_measured_from_the_health_log() {
    let mut db = c("db", "running", "healthy");
    db.health_log = vec![HealthProbe {
        exit_code: 0,
        output: String::new(),
        end: Some(UNIX_EPOCH + ms(1980)),
    }];
    let mut fake = Fake::new(
        ms(100),
        vec![
            (ms(0), vec![c("db", "running", "starting")]),
            (
                ms(2000),
                vec![
                    c("app", "running", ""),
                    db,
                    c("redis", "running", "healthy"),
                ],
            ),
        ],
    );
    let ready = run(&mut fake).unwrap();
    assert_eq!(ready.services[1].notice_delay, Some(ms(20)));
}

#[test]
fn the_http_timeout_bounds_a_slow_first_answer() {
    // `/` takes 3 s to compile; a 1 s HTTP timeout must fail, not pass once it answers.
    let mut fake = Fake::new(ms(100), vec![(ms(0), all_ready())]);
    fake.http = Box::new(|_, _| response(200, HEALTHY));
    let mut spec = spec();
    spec.timeout_http = Duration::from_secs(1);
    struct Slow(Fake);
    impl Probe for Slow {
        fn up_done(&mut self) -> Result<bool, String> {
            self.0.up_done()
        }
        fn containers(&mut self) -> Result<Vec<Container>, String> {
            self.0.containers()
        }
        fn wait(&mut self, max: Duration) -> Wake {
            self.0.wait(max)
        }
        fn sleep(&mut self, d: Duration) {
            self.0.sleep(d)
        }
        fn get(&mut self, path: &str, timeout: Duration) -> Result<http::Response, http::Error> {
            // The answer would come after 3 s: the probe gives up at its timeout.
            let took = Duration::from_secs(3);
            if took > timeout {
                self.0.t += timeout;
                return Err(http::Error::Other("no answer in time".into()));
            }
            self.0.t += took;
            self.0.get(path, timeout)
        }
        fn elapsed(&self) -> Duration {
            self.0.elapsed()
        }
        fn now(&self) -> SystemTime {
            self.0.now()
        }
        fn interrupted(&self) -> Option<String> {
            self.0.interrupted()
        }
    }
    let mut slow = Slow(fake);
    let e = wait(&mut slow, &spec, &mut Progress::new(true)).unwrap_err();
    assert!(
        e.message.contains("did not succeed within 1s"),
        "{}",
        e.message
    );
    assert!(
        slow.0.t <= Duration::from_millis(1200),
        "bounded: {:?}",
        slow.0.t
    );
}

#[test]
fn health_needs_both_checks() {
    let ok = serde_json::json!({"status":"ok","checks":{"db":{"ok":true},"redis":{"ok":true}}});
    let bad = serde_json::json!({"status":"degraded","checks":{"db":{"ok":true},"redis":{"ok":false}},"failed":["redis"]});
    assert!(health_ok(&ok));
    assert!(!health_ok(&bad));
}
