//! `cargo xtask bench`: a timing report of warm `verify` against the same work done by hand
//! (`docker compose up --build --wait`, curl until 200, `down -v`), interleaved, same machine;
//! `--load`: throughput of a prod stack under 100 connections (`load`).

mod load;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use xshell::Shell;

use crate::startup::{Needs, Start};
use crate::{
    docker::{self, compose::words},
    env_file::EnvSource,
    flags, http,
    images::ImageSet,
    stack::{Ports, Stack, StackKind},
    util::secs,
};

/// The plain run may wait this long for the stack and for each URL, like verify's defaults.
const PLAIN_TIMEOUT: Duration = Duration::from_secs(150);

impl flags::Bench {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let kind = StackKind::from_prod(self.prod);
        let needs = Needs {
            images: self.images,
            files: Some(if self.load { StackKind::Prod } else { kind }),
            ..Default::default()
        };
        let start = Start::new(sh, needs)?;
        if self.load {
            return load::run(sh, &self, &start);
        }
        // The env-file rule is the same for the verify child and the plain run below.
        let (env, chosen) = (&start.env, start.set().clone());
        let image_flag = if chosen.standin {
            "--standin"
        } else {
            "--upstream"
        };
        let kind = StackKind::from_prod(self.prod);
        let exe = std::env::current_exe()?;
        // Its total, and the time of the checks plain compose does not do (prod and app checks).
        let verify = |i: usize| -> Result<(Duration, Duration)> {
            let mut c = Command::new(&exe);
            c.args(["verify", "--json", image_flag]).env_remove("CI");
            if self.prod {
                c.arg("--prod");
            }
            let t = Instant::now();
            let out = c.output().context("running verify")?;
            let d = t.elapsed();
            if !out.status.success() {
                bail!(
                    "verify run {i} failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok((d, checks_time(&out.stdout)))
        };
        eprintln!("warm-up: one verify builds and caches every image");
        verify(0)?;

        let (mut ours, mut plain, mut without) = (Vec::new(), Vec::new(), Vec::new());
        for i in 1..=self.run_count() {
            let (v, checks) = verify(i)?;
            let p = plain_run(sh, kind, env, &chosen, i)?;
            eprintln!(
                "run {i}: verify {} (of which prod and app checks {})  plain compose {}",
                secs(v),
                secs(checks),
                secs(p)
            );
            ours.push(v);
            without.push(v.saturating_sub(checks));
            plain.push(p);
        }
        let (mv, mp) = (median(&mut ours), median(&mut plain));
        let (av, ap) = (mean(&ours), mean(&plain));
        println!(
            "{}, {} runs interleaved: cargo xtask verify median {} mean {}  vs  compose up --build --wait \
             + curl + down -v median {} mean {}  (median {:+.1} %, mean {:+.1} %)",
            kind.compose_file(),
            self.run_count(),
            secs(mv),
            secs(av),
            secs(mp),
            secs(ap),
            (mv.as_secs_f64() / mp.as_secs_f64() - 1.0) * 100.0,
            (av.as_secs_f64() / ap.as_secs_f64() - 1.0) * 100.0
        );
        if self.prod {
            let mw = median(&mut without);
            println!(
                "verify with its prod and app checks set aside (plain compose does neither): median {} ({:+.1} % against plain compose)",
                secs(mw),
                (mw.as_secs_f64() / mp.as_secs_f64() - 1.0) * 100.0
            );
        }
        Ok(())
    }
}

/// The seconds verify's JSON report gives its prod and app checks.
fn checks_time(report: &[u8]) -> Duration {
    let v: serde_json::Value = serde_json::from_slice(report).unwrap_or_default();
    let secs: f64 = v["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| matches!(p["name"].as_str(), Some("prod checks" | "app checks")))
        .filter_map(|p| p["seconds"].as_f64())
        .sum();
    Duration::from_secs_f64(secs)
}

/// The hand-written equivalent: what a careful shell script does, without diagnosis.
fn plain_run(
    sh: &Shell,
    kind: StackKind,
    env: &EnvSource,
    images: &ImageSet,
    i: usize,
) -> Result<Duration> {
    let purpose = format!("bench-plain{i}");
    let stack = Stack::throwaway(kind, &purpose, env, images, Ports::free()?);
    let compose = &stack.compose;
    let image = stack.app_image();
    let t = Instant::now();
    let wait = PLAIN_TIMEOUT.as_secs().to_string();
    let up = compose
        .cmd(
            sh,
            &words(&[
                "up",
                "--detach",
                "--build",
                "--wait",
                "--wait-timeout",
                &wait,
            ]),
        )
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run();
    let mut ok = up.is_ok();
    for path in ["/", "/api/health"] {
        let deadline = Instant::now() + PLAIN_TIMEOUT;
        while ok {
            if curl_200(stack.ports.app, path) {
                break;
            }
            if Instant::now() > deadline {
                ok = false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    compose
        .cmd(sh, &crate::docker::compose::down_args(true))
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()?;
    docker::remove_image(sh, &image);
    let d = t.elapsed();
    if !ok {
        bail!("the plain compose run {i} did not reach 200");
    }
    Ok(d)
}

/// curl when it is installed (what a script would use), else the xtask's own GET.
fn curl_200(port: u16, path: &str) -> bool {
    let url = format!("http://127.0.0.1:{port}{path}");
    match Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "30",
            &url,
        ])
        .output()
    {
        Ok(o) => o.stdout == b"200",
        Err(_) => http::get(port, path, Duration::from_secs(30)).is_ok_and(|r| r.status == 200),
    }
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / v.len() as u32
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_checks_plain_compose_does_not_do_are_summed_from_verifys_report() {
        let report = br#"{"phases": [{"name": "build", "seconds": 3.0}, {"name": "prod checks", "seconds": 1.5},
                         {"name": "app checks", "seconds": 2.25}]}"#;
        assert_eq!(super::checks_time(report).as_secs_f64(), 3.75);
        assert_eq!(super::checks_time(b"not json").as_secs_f64(), 0.0);
    }
}
