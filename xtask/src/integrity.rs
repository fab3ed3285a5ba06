//! bun's lockfile integrity: the install flags a build uses, and what to do when a build fails
//! with `IntegrityCheckFailed` (diagnose against the registry; retry only where it is safe).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use xshell::{Shell, cmd};

use crate::{
    known_errors::{integrity_failures, is_platform_native, known_problems},
    proc::Finished,
    stack::StackKind,
    util::tail,
};

/// How `bun install` runs inside the image build.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Install without the BuildKit cache: a warm cache hides a bad lock entry. Holds the
    /// nonce that makes this run's install cold, fixed once so every stage shares one install.
    pub cold: Option<u128>,
    /// `--no-verify`, allowed only with a person's reason, which the report records.
    pub no_verify: Option<String>,
}

impl Policy {
    /// A run's policy: cold when asked or when CI=true (a warm cache hides a bad lock entry).
    pub fn for_run(cold: bool, no_verify: Option<String>) -> Policy {
        Policy::new(cold || crate::host::in_ci(), no_verify)
    }
    pub fn new(cold: bool, no_verify: Option<String>) -> Policy {
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Policy {
            cold: cold.then_some(nonce),
            no_verify,
        }
    }
    pub fn flags(&self) -> String {
        let mut f = String::from("--frozen-lockfile");
        if let Some(nonce) = self.cold {
            // A cache directory no earlier build used: every tarball is downloaded and checked,
            // and the changed build argument also misses the layer cache.
            f.push_str(&format!(" --cache-dir=/tmp/bun-cold-{nonce}"));
        }
        if self.no_verify.is_some() {
            f.push_str(" --no-verify");
        }
        f
    }
    pub fn describe(&self) -> String {
        let mut d = String::from("bun install --frozen-lockfile, integrity checks on");
        if self.cold.is_some() {
            d.push_str(", cold (no install cache)");
        }
        if let Some(r) = &self.no_verify {
            d = format!(
                "bun install --frozen-lockfile --no-verify (integrity checks OFF for every package; reason: {r})"
            );
        }
        d
    }
}

/// What a build ended with, and the policy that actually applied (a dev retry changes it).
pub struct Built {
    pub finished: Finished,
    pub policy: String,
}

/// Runs `build(flags)`; on `IntegrityCheckFailed` names the packages, says whether the lock or
/// the download is wrong, and for dev builds retries with `--no-verify` when every failing
/// package is a platform-specific native one (the known cross-platform case).
pub fn build_with_policy(
    sh: &Shell,
    kind: StackKind,
    policy: &Policy,
    mut build: impl FnMut(&str) -> Result<Finished>,
) -> Result<Built> {
    let first = build(&policy.flags())?;
    if first.status.success() {
        return Ok(Built {
            finished: first,
            policy: policy.describe(),
        });
    }
    let pkgs = integrity_failures(&first.output);
    if pkgs.is_empty() {
        bail!("{}", build_failure(&first.output));
    }
    let lock = std::fs::read_to_string(sh.current_dir().join("app/bun.lock")).unwrap_or_default();
    let verdicts: Vec<String> = pkgs
        .iter()
        .map(|p| diagnose_package(sh, &lock, p))
        .collect();
    let report = format!(
        "bun install failed its integrity check for: {}\n  {}",
        pkgs.join(", "),
        verdicts.join("\n  ")
    );
    let all_native = pkgs.iter().all(|p| is_platform_native(p));
    if kind == StackKind::Dev && all_native && policy.no_verify.is_none() {
        let bar = "!".repeat(100);
        eprintln!(
            "\n{bar}\n!!! {report}\n!!! Every failing package is a platform-specific native build ({}), the known\n\
             !!! cross-platform case (oven-sh/bun#16282). Retrying this DEV build with --no-verify: integrity checks\n\
             !!! are OFF for every package in this image. Prod builds never do this on their own.\n{bar}\n",
            pkgs.join(", ")
        );
        let retry = Policy {
            cold: policy.cold,
            no_verify: Some(format!(
                "dev retry for platform-native packages {}",
                pkgs.join(", ")
            )),
        };
        let second = build(&retry.flags())?;
        if !second.status.success() {
            bail!(
                "the --no-verify retry failed too:\n{}",
                build_failure(&second.output)
            );
        }
        return Ok(Built {
            finished: second,
            policy: retry.describe(),
        });
    }
    let fix = match kind {
        StackKind::Prod => {
            "prod builds keep integrity checks on; if you accept the risk, rerun with --no-verify \"<reason>\", which the report records"
        }
        StackKind::Dev => {
            "some failing packages are not platform-native builds, so no automatic --no-verify retry"
        }
    };
    bail!(
        "{report}\n  {fix}\n--- build output (last 30 lines)\n{}",
        tail(&first.output, 30)
    );
}

fn build_failure(output: &str) -> String {
    let hints = known_problems(output);
    let hints = if hints.is_empty() {
        String::new()
    } else {
        format!(
            "{}\n",
            hints
                .iter()
                .map(|h| format!("  cause: {h}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    format!(
        "the image build failed\n{hints}--- build output (last 40 lines)\n{}",
        tail(output, 40)
    )
}

/// A lock entry: `"<pkg>": ["<pkg>@<ver>", "", {...}, "sha512-..."],` in the text bun.lock.
#[derive(Debug, PartialEq)]
pub struct LockEntry {
    pub name: String,
    pub version: String,
    pub integrity: String,
}

pub fn lock_entry(lock: &str, pkg: &str) -> Option<LockEntry> {
    let key = format!("\"{pkg}\": [");
    let line = lock.lines().find(|l| l.trim_start().starts_with(&key))?;
    let rest = &line.trim_start()[key.len()..];
    let spec = rest.strip_prefix('"')?.split('"').next()?;
    let (name, version) = spec.rsplit_once('@')?;
    let integrity = line
        .split('"')
        .find(|s| s.starts_with("sha512-") || s.starts_with("sha1-"))?
        .to_string();
    Some(LockEntry {
        name: name.into(),
        version: version.into(),
        integrity,
    })
}

/// Compares the lock's hash with the registry's `dist.integrity`.
fn diagnose_package(sh: &Shell, lock: &str, pkg: &str) -> String {
    let Some(entry) = lock_entry(lock, pkg) else {
        return format!("{pkg}: not found in app/bun.lock");
    };
    let spec = format!("{}@{}", entry.name, entry.version);
    let registry = if which::which("npm").is_ok() {
        cmd!(sh, "npm view {spec} dist.integrity")
            .quiet()
            .ignore_stderr()
            .read()
            .ok()
            .filter(|s| !s.is_empty())
    } else {
        None
    };
    match registry {
        Some(r) if r.trim() == entry.integrity => format!(
            "{spec}: the lock entry matches the registry, so the download was wrong: a proxy or mirror altered it, \
             or bun fetched badly (oven-sh/bun#18864). Check the proxy/mirror; rebuilding may pass"
        ),
        Some(r) => format!(
            "{spec}: the lock entry is wrong (lock {}, registry {}). Repair: delete the `\"{}\"` entry from \
             app/bun.lock and run `bun install` (bun {}), then commit the lockfile",
            entry.integrity,
            r.trim(),
            entry.name,
            crate::images::BUN_VERSION
        ),
        None => format!(
            "{spec}: could not ask the registry (no npm here). Compare `npm view {spec} dist.integrity` with the lock's {}",
            entry.integrity
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"{
  "lockfileVersion": 2,
  "packages": {
    "@biomejs/cli-linux-x64-musl": ["@biomejs/cli-linux-x64-musl@2.6.8", "", { "os": "linux", "cpu": "x64" }, "sha512-AAA=="],
    "is-number": ["is-number@7.0.0", "", {}, "sha512-41Cifkg7e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng=="],
  }
}"#;

    #[test]
    fn lock_entries_scoped_and_plain() {
        let e = lock_entry(LOCK, "@biomejs/cli-linux-x64-musl").unwrap();
        assert_eq!(
            (e.name.as_str(), e.version.as_str(), e.integrity.as_str()),
            ("@biomejs/cli-linux-x64-musl", "2.6.8", "sha512-AAA==")
        );
        assert_eq!(lock_entry(LOCK, "is-number").unwrap().version, "7.0.0");
        assert!(lock_entry(LOCK, "left-pad").is_none());
    }

    #[test]
    fn policy_flags() {
        assert_eq!(Policy::default().flags(), "--frozen-lockfile");
        let policy = Policy::new(true, None);
        let cold = policy.flags();
        assert!(
            cold.starts_with("--frozen-lockfile --cache-dir=/tmp/bun-cold-"),
            "{cold}"
        );
        assert_eq!(
            cold,
            policy.flags(),
            "one cold install per run, shared by every stage"
        );
        let nv = Policy::new(false, Some("mirror re-packs".into()));
        assert_eq!(nv.flags(), "--frozen-lockfile --no-verify");
        assert!(nv.describe().contains("reason: mirror re-packs"));
    }
}
