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
        let verify = |i: usize| -> Result<Duration> {
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
            Ok(d)
        };
        eprintln!("warm-up: one verify builds and caches every image");
        verify(0)?;

        let (mut ours, mut plain) = (Vec::new(), Vec::new());
        for i in 1..=self.run_count() {
            let v = verify(i)?;
            let p = plain_run(sh, kind, env, &chosen, i)?;
            eprintln!("run {i}: verify {}  plain compose {}", secs(v), secs(p));
            ours.push(v);
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
        Ok(())
    }
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
