//! Running a long build (compose build, docker build, buildx bake) to completion: its output
//! teed into a log file, with a deadline, and stopped by Ctrl-C or SIGTERM.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::ExitStatus,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

pub struct Finished {
    pub status: ExitStatus,
    /// Everything the child printed (stdout and stderr merged).
    pub output: String,
    /// Each line with the time it arrived (from the start): per-target times in one build graph.
    pub lines: Vec<(Duration, String)>,
    pub elapsed: Duration,
}

/// Runs `expr` to completion, teeing its merged output into `log`. A deadline or a signal
/// kills it; what a compose child started is cleaned up by the caller's guard (`compose
/// down`), since killing the client does not stop it.
pub fn run_logged(
    expr: duct::Expression,
    what: &str,
    log: &Path,
    timeout: Duration,
) -> Result<Finished> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let started = Instant::now();
    let reader = expr
        .stderr_to_stdout()
        .unchecked()
        .reader()
        .with_context(|| format!("starting {what}"))?;
    let reader = std::sync::Arc::new(reader);
    let (tx, rx) = mpsc::channel::<String>();
    let r = reader.clone();
    let pump = std::thread::spawn(move || {
        let mut lines = BufReader::new(&*r);
        let mut line = String::new();
        while matches!(lines.read_line(&mut line), Ok(n) if n > 0) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    let mut output = String::new();
    let mut lines = Vec::new();
    let deadline = started + timeout;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                let _ = file.write_all(line.as_bytes());
                output.push_str(&line);
                lines.push((started.elapsed(), line));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(sig) = crate::signals::received() {
            let _ = reader.kill();
            bail!(crate::signals::Interrupted(sig));
        }
        if Instant::now() > deadline {
            let _ = reader.kill();
            bail!(
                "{what} did not finish within {:.0}s (log: {}); raise the limit if the machine is slow",
                timeout.as_secs_f64(),
                log.display()
            );
        }
    }
    let _ = pump.join();
    let status = loop {
        if let Some(out) = reader.try_wait()? {
            break out.status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(Finished {
        status,
        output,
        lines,
        elapsed: started.elapsed(),
    })
}
