//! A minimal HTTP/1.1 client for readiness checks and the proofs' loads (GET; POST for the
//! release proof's writes): a client crate would cost more compile time than the whole xtask.
//! Works on bytes: the body is decoded only once whole.

use std::{
    fmt,
    io::{ErrorKind, Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    time::Duration,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    /// `Location`, for a 3xx.
    pub location: Option<String>,
    pub content_type: Option<String>,
    /// Every header, in order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Which generation of a page this is: its ETag (Next.js sends a hash of the body), else a
    /// hash of the body (a route handler may send no ETag).
    pub fn generation(&self) -> String {
        match self.header("etag") {
            Some(t) if !t.is_empty() => t.to_string(),
            _ => format!("body:{:016x}", crate::standin::fnv1a(self.body.as_bytes())),
        }
    }

    /// `200`, `503 {"status":"degraded"...}`, `307 redirect to /login`.
    pub fn describe(&self) -> String {
        match (&self.location, self.status) {
            (Some(l), 300..=399) => format!("{} redirect to {l}", self.status),
            (None, 300..=399) => format!("{} redirect", self.status),
            _ => self.status.to_string(),
        }
    }
}

/// Why a GET got no answer. `Starting` covers what a server that is still booting does to a
/// client (refuses, resets, closes early): it is not a fault yet.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    Starting(String),
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Starting(why) => write!(f, "starting ({why})"),
            Error::Other(why) => f.write_str(why),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        let why = match e.kind() {
            ErrorKind::ConnectionRefused => "connection refused",
            ErrorKind::ConnectionReset => "connection reset",
            ErrorKind::ConnectionAborted => "connection aborted",
            ErrorKind::BrokenPipe => "connection closed while sending",
            ErrorKind::UnexpectedEof => "connection closed early",
            ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                return Error::Other("no answer in time".into());
            }
            _ => return Error::Other(e.to_string()),
        };
        Error::Starting(why.into())
    }
}

pub fn get(port: u16, path: &str, timeout: Duration) -> Result<Response, Error> {
    get_at(SocketAddr::from(([127, 0, 0, 1], port)), path, timeout)
}

/// A GET of `path` at any address (the swarm's entry points).
pub fn get_at(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response, Error> {
    get_with(addr, path, &[], timeout)
}

/// A GET with extra request headers (`name: value`).
pub fn get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Response, Error> {
    send(addr, "GET", path, headers, b"", timeout, Duration::ZERO)
}

/// A POST of `body` (its `Content-Type` among `headers`).
pub fn post_at(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, Error> {
    send(addr, "POST", path, headers, body, timeout, Duration::ZERO)
}

/// A POST whose body goes out in ten parts over `spread`, as a client on a slow link sends
/// it: the request is in flight that long.
pub fn post_slowly(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    spread: Duration,
    timeout: Duration,
) -> Result<Response, Error> {
    send(addr, "POST", path, headers, body, timeout, spread)
}

fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
    spread: Duration,
) -> Result<Response, Error> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    // One write: `write!` straight to the socket sends several small segments, and Nagle's
    // algorithm against the server's delayed ACK then costs 40 ms a request.
    let mut extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    if method != "GET" {
        extra.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n{extra}\r\n"
    )
    .into_bytes();
    if spread.is_zero() {
        request.extend_from_slice(body);
        s.write_all(&request)?;
    } else {
        s.write_all(&request)?;
        let parts = body.chunks(body.len().div_ceil(10).max(1));
        for part in parts {
            std::thread::sleep(spread / 10);
            s.write_all(part)?;
        }
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let _ = s.shutdown(Shutdown::Both);
    if raw.is_empty() {
        return Err(Error::Starting("connection closed before an answer".into()));
    }
    parse(&raw)
}

pub fn parse(raw: &[u8]) -> Result<Response, Error> {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(Error::Other(format!(
            "incomplete HTTP response ({} bytes)",
            raw.len()
        )));
    };
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let Some(status) = status else {
        return Err(Error::Other(format!(
            "not an HTTP response: {:?}",
            head.lines().next().unwrap_or("")
        )));
    };
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        location: header("location"),
        content_type: header("content-type"),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_bodies() {
        let r = parse(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nETag: \"a1\"\r\n\r\n{\"ok\":false}").unwrap();
        assert_eq!((r.status, r.body.as_str()), (503, "{\"ok\":false}"));
        assert_eq!(r.header("etag"), Some("\"a1\""));
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, "Wikipedia");
        assert!(parse(b"garbage").is_err());
    }

    #[test]
    fn a_chunk_boundary_inside_a_multibyte_character() {
        // "é" is C3 A9; the first chunk ends after C3.
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nx\xc3\r\n2\r\n\xa9y\r\n0\r\n\r\n";
        assert_eq!(parse(raw).unwrap().body, "x\u{e9}y");
    }

    #[test]
    fn redirects_are_reported_as_such() {
        let r = parse(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /login\r\n\r\n").unwrap();
        assert_eq!(r.describe(), "307 redirect to /login");
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().describe(), "200");
    }

    #[test]
    fn boot_time_errors_read_as_starting() {
        let e: Error = std::io::Error::from(ErrorKind::ConnectionReset).into();
        assert_eq!(e.to_string(), "starting (connection reset)");
        let e: Error = std::io::Error::from(ErrorKind::BrokenPipe).into();
        assert!(matches!(e, Error::Starting(_)));
        let e: Error = std::io::Error::from(ErrorKind::PermissionDenied).into();
        assert!(matches!(e, Error::Other(_)));
        // Nothing listens on a port we just released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(matches!(
            get(port, "/", Duration::from_secs(1)),
            Err(Error::Starting(_))
        ));
    }
}
