//! A steady load for the length of an event (a rolling update, a rollback): a few threads, each
//! sending GETs one after another, round robin over the entry points and URLs, every answer
//! timed and judged. It runs until told to stop, which wrk cannot (it takes a fixed duration),
//! and it keeps every failure's text, which wrk does not. Written by hand: a loop over
//! `http::get_at` is smaller than any client crate.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::http;

/// Each request's limit: a request the proxy holds longer than this has failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests in flight at once. On 2 cores beside three engines, more only queue.
pub const WORKERS: usize = 6;
/// Failures kept verbatim for the report.
const KEEP_FAILURES: usize = 20;

/// One answer: which URL, how long, and a failure's text (`None`: a 200).
#[derive(Debug, Clone)]
struct Sample {
    url: usize,
    took: Duration,
    failure: Option<String>,
    server_error: bool,
}

/// A load running in the background.
pub struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    threads: Vec<thread::JoinHandle<()>>,
    started: Instant,
    paths: Vec<String>,
}

impl Load {
    /// Starts `workers` threads sending GETs of `paths` to `entries` in turn.
    pub fn start(entries: &[SocketAddr], paths: &[&str], workers: usize) -> Load {
        Load::start_timed(entries, paths, workers, REQUEST_TIMEOUT)
    }

    /// The same, each request given `timeout` to answer.
    pub fn start_timed(
        entries: &[SocketAddr],
        paths: &[&str],
        workers: usize,
        timeout: Duration,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..workers)
            .map(|w| {
                let (stop, samples) = (stop.clone(), samples.clone());
                let entries = entries.to_vec();
                let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
                thread::spawn(move || {
                    let mut mine = Vec::new();
                    let mut k = w;
                    while !stop.load(Ordering::Relaxed) {
                        let (entry, url) = (entries[k % entries.len()], k % paths.len());
                        k += 1;
                        let t = Instant::now();
                        let answer = http::get_at(entry, &paths[url], timeout);
                        let server_error = matches!(&answer, Ok(r) if r.status >= 500);
                        let failure = match answer {
                            Ok(r) if r.status == 200 => None,
                            Ok(r) => Some(format!("{entry}{}: {}", paths[url], r.describe())),
                            Err(e) => Some(format!("{entry}{}: {e}", paths[url])),
                        };
                        mine.push(Sample {
                            url,
                            took: t.elapsed(),
                            failure,
                            server_error,
                        });
                    }
                    samples.lock().unwrap().extend(mine);
                })
            })
            .collect();
        Load {
            stop,
            samples,
            threads,
            started: Instant::now(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// Stops the load (requests in flight finish) and sums it up.
    pub fn finish(self) -> Summary {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let duration = self.started.elapsed();
        let samples = std::mem::take(&mut *self.samples.lock().unwrap());
        Summary::of(&samples, &self.paths, duration)
    }
}

/// What a load saw, in all and per URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub duration: Duration,
    pub total: Stats,
    pub per_url: Vec<(String, Stats)>,
    /// The first failures, verbatim.
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub requests: u64,
    pub failed: u64,
    /// Of the failed, those answered 5xx.
    pub server_errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    fn of<'a>(samples: impl Iterator<Item = &'a Sample>) -> Stats {
        let mut ms: Vec<f64> = Vec::new();
        let (mut failed, mut server_errors) = (0, 0);
        for s in samples {
            ms.push(s.took.as_secs_f64() * 1000.0);
            failed += u64::from(s.failure.is_some());
            server_errors += u64::from(s.server_error);
        }
        ms.sort_by(f64::total_cmp);
        Stats {
            requests: ms.len() as u64,
            failed,
            server_errors,
            p50_ms: percentile(&ms, 0.50),
            p99_ms: percentile(&ms, 0.99),
            max_ms: ms.last().copied().unwrap_or(0.0),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests, "failed": self.failed, "server_errors": self.server_errors,
            "p50_ms": round1(self.p50_ms), "p99_ms": round1(self.p99_ms), "max_ms": round1(self.max_ms),
        })
    }
}

impl Summary {
    fn of(samples: &[Sample], paths: &[String], duration: Duration) -> Summary {
        Summary {
            duration,
            total: Stats::of(samples.iter()),
            per_url: paths
                .iter()
                .enumerate()
                .map(|(i, p)| (p.clone(), Stats::of(samples.iter().filter(|s| s.url == i))))
                .collect(),
            failures: samples
                .iter()
                .filter_map(|s| s.failure.clone())
                .take(KEEP_FAILURES)
                .collect(),
        }
    }

    pub fn rps(&self) -> f64 {
        self.total.requests as f64 / self.duration.as_secs_f64().max(0.001)
    }

    pub fn to_json(&self) -> Value {
        let per_url: serde_json::Map<String, Value> = self
            .per_url
            .iter()
            .map(|(p, s)| (p.clone(), s.to_json()))
            .collect();
        json!({
            "seconds": round1(self.duration.as_secs_f64()),
            "requests_per_second": round1(self.rps()),
            "total": self.total.to_json(),
            "per_url": per_url,
            "failures": self.failures,
        })
    }

    /// An error naming the failures, when any request failed `during` an event.
    pub fn no_failures(&self, during: &str) -> anyhow::Result<()> {
        if self.total.failed > 0 {
            anyhow::bail!(
                "{} of {} requests failed during {during}: {}",
                self.total.failed,
                self.total.requests,
                self.failures.join("; ")
            );
        }
        Ok(())
    }

    /// `4210 requests (/ 2105, /api/health 2105), 0 failed, p50 7 ms, p99 56 ms`
    pub fn line(&self) -> String {
        let per: Vec<String> = self
            .per_url
            .iter()
            .map(|(p, s)| format!("{p} {}", s.requests))
            .collect();
        format!(
            "{} requests ({}), {} failed, p50 {:.0} ms, p99 {:.0} ms",
            self.total.requests,
            per.join(", "),
            self.total.failed,
            self.total.p50_ms,
            self.total.p99_ms
        )
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(url: usize, ms: u64, fail: bool) -> Sample {
        Sample {
            url,
            took: Duration::from_millis(ms),
            failure: fail.then(|| "10.0.0.1:3000/: connection refused".to_string()),
            server_error: false,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn a_summary_counts_each_url_and_keeps_failures() {
        let samples = vec![
            sample(0, 5, false),
            sample(1, 7, false),
            sample(0, 9, true),
            sample(1, 11, false),
        ];
        let paths = vec!["/".to_string(), "/api/health".to_string()];
        let s = Summary::of(&samples, &paths, Duration::from_secs(2));
        assert_eq!(s.total.requests, 4);
        assert_eq!(s.total.failed, 1);
        assert_eq!(s.per_url[0].1.requests, 2);
        assert_eq!(s.per_url[0].1.failed, 1);
        assert_eq!(s.per_url[1].1.failed, 0);
        assert_eq!(s.failures, vec!["10.0.0.1:3000/: connection refused"]);
        assert_eq!(s.rps(), 2.0);
        assert_eq!(s.total.max_ms, 11.0);
        assert!(
            s.line()
                .starts_with("4 requests (/ 2, /api/health 2), 1 failed")
        );
    }

    #[test]
    fn a_load_against_a_closed_port_fails_every_request() {
        // Nothing listens on port 1 of loopback: every request is refused and counted.
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let load = Load::start(&[addr], &["/"], 2);
        thread::sleep(Duration::from_millis(50));
        let s = load.finish();
        assert!(s.total.requests > 0);
        assert_eq!(s.total.failed, s.total.requests);
        assert!(
            s.failures[0].contains("connection refused"),
            "{:?}",
            s.failures
        );
    }
}
