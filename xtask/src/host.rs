//! Facts about the host the xtask runs on: its user, the CAs it trusts beyond the
//! distribution's, its OS release, and whether this is a CI run.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// The real user id: from the kernel, so it cannot silently fall back to root.
pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

pub fn gid() -> u32 {
    // SAFETY: getgid has no preconditions and cannot fail.
    unsafe { libc::getgid() }
}

pub fn is_root() -> bool {
    uid() == 0
}

/// This machine's name (the kernel's), `localhost` when unreadable.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Who runs this: `user@host` (the login name from the environment, else /etc/passwd's name
/// for the uid, else the uid).
pub fn who() -> String {
    let uid = uid().to_string();
    let from_passwd = || {
        let passwd = fs::read_to_string("/etc/passwd").ok()?;
        passwd.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid).then(|| name.to_string())
        })
    };
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(from_passwd)
        .unwrap_or_else(|| format!("uid{uid}"));
    format!("{user}@{}", hostname())
}

/// A Chromium to drive headless: AXION_CHROMIUM, else Debian's (`apt-get install chromium`).
pub fn chromium() -> Option<String> {
    std::env::var("AXION_CHROMIUM").ok().or_else(|| {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .map(|p| p.to_string())
    })
}

/// CI sets CI=true: there a cold install catches a bad lock entry a warm cache would hide.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The CAs this host trusts beyond the distribution's (a TLS-intercepting proxy's, a corporate
/// root), as one PEM bundle of certificate blocks only (a key pasted into the same file stays
/// out). Builds that download over HTTPS need them; images never keep them.
pub fn extra_ca_pem() -> String {
    let mut files: Vec<PathBuf> = Vec::new();
    collect_crts(Path::new("/usr/local/share/ca-certificates"), &mut files);
    if let Ok(extra) = std::env::var("AXION_EXTRA_CA_CERTS") {
        files.push(PathBuf::from(extra));
    }
    files.sort();
    files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .flat_map(|text| certificate_blocks(&text))
        .collect::<Vec<_>>()
        .join("")
}

/// The `-----BEGIN CERTIFICATE-----` ... `-----END CERTIFICATE-----` blocks of a PEM text.
pub fn certificate_blocks(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find(BEGIN) {
        let Some(e) = rest[b..].find(END) else { break };
        out.push(format!("{}\n", &rest[b..b + e + END.len()]));
        rest = &rest[b + e + END.len()..];
    }
    out
}

/// The extra CAs as the file a BuildKit secret mount reads (`extra_ca`): written fresh, mode
/// 0600, empty when the host has none. Never a build argument: those sit on docker's argv and
/// in the image's history.
pub fn extra_ca_file(root: &Path) -> anyhow::Result<PathBuf> {
    let path = crate::paths::extra_ca(root);
    fs::create_dir_all(path.parent().unwrap_or(root))?;
    crate::util::write_atomic(&path, extra_ca_pem().as_bytes(), 0o600)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(path)
}

fn collect_crts(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_crts(&p, out);
        } else if p.extension().is_some_and(|x| x == "crt") {
            out.push(p);
        }
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct OsRelease {
    pub id: String,
    pub id_like: String,
    pub codename: String,
}

impl OsRelease {
    pub fn read() -> OsRelease {
        Self::parse(&fs::read_to_string("/etc/os-release").unwrap_or_default())
    }
    pub fn parse(text: &str) -> OsRelease {
        let mut os = OsRelease::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').to_string();
            match k.trim() {
                "ID" => os.id = v,
                "ID_LIKE" => os.id_like = v,
                "VERSION_CODENAME" => os.codename = v,
                _ => {}
            }
        }
        os
    }
    pub fn is_debian_like(&self) -> bool {
        self.id == "debian" || self.id == "ubuntu" || self.id_like.split(' ').any(|i| i == "debian")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_kernel() {
        let out = std::process::Command::new("id").arg("-u").output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            uid().to_string()
        );
    }

    #[test]
    fn only_certificate_blocks_are_taken() {
        let pem = "junk\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n\
                   -----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n\
                   -----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----";
        let blocks = certificate_blocks(pem);
        assert_eq!(blocks.len(), 2);
        assert!(blocks.concat().contains("BBB") && !blocks.concat().contains("SECRET"));
    }

    #[test]
    fn os_release() {
        let os = OsRelease::parse("ID=\"ubuntu\"\nID_LIKE=debian\nVERSION_CODENAME=noble\n");
        assert!(os.is_debian_like());
        assert_eq!(os.codename, "noble");
        assert!(!OsRelease::parse("ID=fedora\n").is_debian_like());
    }
}
