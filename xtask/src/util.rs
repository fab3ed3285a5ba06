//! Small shared helpers: polling with a deadline, version comparison, ports, a tiny HTTP GET.

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Calls `f` every `every` until it returns `Some`, fails, or `timeout` passes; a timeout
/// reports the last error `f` saw rather than a bare "timed out".
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {:.0}s waiting for {what}",
                timeout.as_secs_f64()
            );
        }
        crate::signals::check()?;
        std::thread::sleep(every);
    }
}

/// Dotted numeric comparison, tolerant of suffixes: `2.26.1-4` >= `2.20.2`.
pub fn version_at_least(have: &str, want: &str) -> bool {
    fn nums(s: &str) -> Vec<u64> {
        s.trim_start_matches('v')
            .split('.')
            .map(|p| {
                p.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0)
            })
            .collect()
    }
    let (h, w) = (nums(have), nums(want));
    for i in 0..h.len().max(w.len()) {
        let (a, b) = (
            h.get(i).copied().unwrap_or(0),
            w.get(i).copied().unwrap_or(0),
        );
        if a != b {
            return a > b;
        }
    }
    true
}

/// Is something listening on 127.0.0.1:port (or on all interfaces)?
pub fn port_taken(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_err() || TcpListener::bind(("127.0.0.1", port)).is_err()
}

pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// A minimal HTTP/1.1 GET for readiness checks on loopback (a full client crate would cost
/// more compile time than the whole xtask). Connection: close, so the body ends at EOF.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Result<HttpResponse> {
    let addr: SocketAddr = ("127.0.0.1", port).to_socket_addrs()?.next().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: */*\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let _ = s.shutdown(Shutdown::Both);
    parse_http_response(&raw)
}

pub fn parse_http_response(raw: &[u8]) -> Result<HttpResponse> {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("incomplete HTTP response ({} bytes)", raw.len())
    };
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let Some(status) = status else {
        bail!(
            "not an HTTP response: {:?}",
            head.lines().next().unwrap_or("")
        )
    };
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(HttpResponse { status, body })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs several `docker` commands at once (each CLI start costs 20-150 ms; preflight and
/// cleanup checks do not depend on each other) and returns their outputs in order.
pub fn docker_all(calls: &[Vec<String>]) -> Vec<std::io::Result<std::process::Output>> {
    use std::process::{Command, Stdio};
    let children: Vec<_> = calls
        .iter()
        .map(|args| {
            Command::new("docker")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.and_then(|c| c.wait_with_output()))
        .collect()
}

/// A line on stderr that never panics: on the way out (a signal, a teardown while unwinding)
/// stderr may be a pipe whose reader is gone, and `eprintln!` would panic there.
pub fn note(msg: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Seconds with one decimal, for reports.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Wall-clock time of day for plain (non-terminal) progress lines.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let s = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("2.26.1", "2.20.2"));
        assert!(version_at_least("26.1.5+dfsg1", "25"));
        assert!(!version_at_least("20.10.24", "25"));
        assert!(!version_at_least("0.13.1", "0.17"));
        assert!(version_at_least("v2.40.3", "2.37"));
    }

    #[test]
    fn http_responses_parse() {
        let r = parse_http_response(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\r\n{\"ok\":false}").unwrap();
        assert_eq!((r.status, r.body.as_str()), (503, "{\"ok\":false}"));
        let r = parse_http_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, "Wikipedia");
        assert!(parse_http_response(b"garbage").is_err());
    }

    #[test]
    fn poll_reports_what_it_waited_for() {
        let e = poll(
            "the moon",
            Duration::from_millis(30),
            Duration::from_millis(10),
            || Ok(None::<()>),
        )
        .unwrap_err();
        assert!(e.to_string().contains("the moon"), "{e}");
        let mut n = 0;
        assert_eq!(
            poll("n", Duration::from_secs(1), Duration::ZERO, || {
                n += 1;
                Ok((n == 3).then_some(n))
            })
            .unwrap(),
            3
        );
    }
}
