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

/// CI sets CI=true: there a cold install catches a bad lock entry a warm cache would hide.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The CAs this host trusts beyond the distribution's (a TLS-intercepting proxy's, a corporate
/// root), as one PEM bundle. Images that download over HTTPS need them too.
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
        .filter(|s| s.contains("BEGIN CERTIFICATE"))
        .collect::<Vec<_>>()
        .join("\n")
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
    fn os_release() {
        let os = OsRelease::parse("ID=\"ubuntu\"\nID_LIKE=debian\nVERSION_CODENAME=noble\n");
        assert!(os.is_debian_like());
        assert_eq!(os.codename, "noble");
        assert!(!OsRelease::parse("ID=fedora\n").is_debian_like());
    }
}
