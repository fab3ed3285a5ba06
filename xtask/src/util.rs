//! Small generic helpers: the project root, polling with a deadline, version comparison,
//! and text for people (notes, durations, clock, tails).

use std::{
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

/// The checkout the xtask was built from; AXION_PROJECT_ROOT points it at another tree (the
/// fault tests use a scratch copy so a repaired lockfile never touches the real one).
pub fn project_root() -> PathBuf {
    match std::env::var_os("AXION_PROJECT_ROOT") {
        Some(root) if !root.is_empty() => PathBuf::from(root),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf(),
    }
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

/// A line on stderr that never panics: on the way out (a signal, a teardown while unwinding)
/// stderr may be a pipe whose reader is gone, and `eprintln!` would panic there.
pub fn note(msg: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// The bytes in a file of this process beside `path`, with exactly `mode`: set on the open
/// file after creation (fchmod), since the mode given to open(2) passes through the umask
/// (under `umask 027` a 0644 secret became 0640, unreadable to redis).
fn write_temp(
    path: &std::path::Path,
    bytes: &[u8],
    mode: u32,
) -> std::io::Result<std::path::PathBuf> {
    use std::{
        io::Write,
        os::unix::fs::{OpenOptionsExt, PermissionsExt},
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o600)
        .open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    Ok(tmp)
}

/// Writes a file atomically, `mode` from its creation: a temporary file renamed over `path`.
/// Runs at once (two verifies) each write their own, and a reader never sees a half-written or
/// missing file.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = write_temp(path, bytes, mode)?;
    std::fs::rename(&tmp, path)
}

/// Creates `path` whole only if it does not exist (a hard link of a finished temporary file:
/// no replace, no half-written file); false when another process made it first.
pub fn create_atomic(path: &std::path::Path, bytes: &[u8], mode: u32) -> std::io::Result<bool> {
    let tmp = write_temp(path, bytes, mode)?;
    let made = match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_file(&tmp);
    made
}

/// RFC 3986 percent-encoding: every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`) as
/// `%XX`. The runner's entrypoint (app/start.sh) encodes the URLs' passwords the same way.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Nanoseconds since the epoch: a run's markers, unique enough.
pub fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
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

/// Levenshtein distance: how "did you mean" picks the closest name.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The last `n` lines of a text, for error messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// 32 bytes from the kernel's CSPRNG, base64url without padding (43 characters, safe in any
/// URL or config file).
pub fn random_secret() -> Result<String> {
    Ok(base64url(&random_bytes()?))
}

/// 32 bytes from the CSPRNG in standard, padded base64 (44 characters): what `atob` takes
/// (Next.js's server-actions key).
pub fn random_key_base64() -> Result<String> {
    let url = base64url(&random_bytes()?);
    let std = url.replace('-', "+").replace('_', "/");
    Ok(format!("{std}="))
}

fn random_bytes() -> Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| anyhow::anyhow!("reading /dev/urandom: {e}"))?;
    Ok(bytes)
}

fn base64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// The civil UTC date and time of `t`: (year, month, day, hour, minute, second).
fn utc_parts(t: std::time::SystemTime) -> (i64, i64, i64, i64, i64, i64) {
    let s = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let (days, rem) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    // Civil date from days (Howard Hinnant's algorithm, the inverse of container.rs's).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

/// `20261128T074500Z`: sorts by time, safe in a file name.
pub fn utc_stamp(t: std::time::SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = utc_parts(t);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// `2026-11-28T07:45:00Z`.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = utc_parts(t);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// Rows as left-aligned columns two spaces apart, a line each (the last column unpadded).
pub fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i + 1 == N {
                    c.clone()
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64url_matches_rfc4648() {
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(random_secret().unwrap().len(), 43);
        assert_ne!(random_secret().unwrap(), random_secret().unwrap());
        let k = random_key_base64().unwrap();
        assert_eq!(k.len(), 44, "{k}");
        assert!(
            k.ends_with('=') && !k.contains('-') && !k.contains('_'),
            "{k}"
        );
    }

    use super::*;

    #[test]
    fn atomic_writes_replace_and_creates_do_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        assert!(create_atomic(&p, b"one", 0o600).unwrap());
        assert!(
            !create_atomic(&p, b"two", 0o600).unwrap(),
            "an existing file stays"
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"three", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("2.26.1", "2.20.2"));
        assert!(version_at_least("26.1.5+dfsg1", "25"));
        assert!(!version_at_least("20.10.24", "25"));
        assert!(!version_at_least("0.13.1", "0.17"));
        assert!(version_at_least("v2.40.3", "2.37"));
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

    #[test]
    fn stamps_are_utc_and_sortable() {
        let at = |s| crate::docker::container::parse_rfc3339(s).unwrap();
        assert_eq!(utc_stamp(at("2026-11-28T07:45:03Z")), "20261128T074503Z");
        assert_eq!(utc_stamp(std::time::UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(utc_stamp(at("2024-02-29T23:59:59Z")), "20240229T235959Z");
        assert_eq!(rfc3339(at("2024-02-29T23:59:59Z")), "2024-02-29T23:59:59Z");
    }
}
