//! bun's lockfile integrity: the install flags a build uses, and what to do when a build fails
//! with `IntegrityCheckFailed`: diagnose against the registry, and fail with the finding. The
//! lock is rewritten only when a person asked for it (`cargo xtask dev --repair-lock`), saw the
//! change and said yes at a terminal: a tampering mirror or TLS proxy serves both the tarball and
//! the registry's answer, so no run may trust that answer on its own.

use std::{path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::{
    known_errors::{integrity_failures, known_problems},
    proc::{Finished, run_logged},
    stack::StackKind,
    util::tail,
};

/// How `bun install` runs for a build.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// A warm cache hides a bad lock entry, so CI also installs cold: with an empty cache, in a
    /// throw-away container (`cold_check`), before the image build. Inside the build a cold
    /// install left a new 457 MB layer in the build cache on every run.
    pub cold: bool,
    /// `--no-verify`, allowed only with a person's reason, which the report records.
    pub no_verify: Option<String>,
    /// `dev --repair-lock`: a person may accept, at a terminal, a repair of lock entries the
    /// registry contradicts. Never set by verify, ci, or any other command.
    pub repair_lock: bool,
}

impl Policy {
    /// A run's policy: cold when asked or when CI=true (a warm cache hides a bad lock entry).
    pub fn for_run(cold: bool, no_verify: Option<String>) -> Policy {
        Policy::new(cold || crate::host::in_ci(), no_verify)
    }
    pub fn new(cold: bool, no_verify: Option<String>) -> Policy {
        Policy {
            cold,
            no_verify,
            repair_lock: false,
        }
    }
    /// BUN_INSTALL_FLAGS for the image build.
    pub fn flags(&self) -> String {
        let mut f = String::from("--frozen-lockfile");
        if self.no_verify.is_some() {
            f.push_str(" --no-verify");
        }
        f
    }
    pub fn describe(&self) -> String {
        let mut d = String::from("bun install --frozen-lockfile, integrity checks on");
        if self.cold {
            d.push_str(
                ", cold (every tarball downloaded and checked in a throw-away container first)",
            );
        }
        if let Some(r) = &self.no_verify {
            d = format!(
                "bun install --frozen-lockfile --no-verify (integrity checks OFF for every package; reason: {r})"
            );
        }
        d
    }
}

/// The cold install: `bun install --frozen-lockfile` of app/package.json and app/bun.lock with
/// an empty cache in a throw-away container of the build's bun image, so every tarball is
/// downloaded and checked against the lock. The host's extra CAs are mounted for it (the
/// container is removed; no image keeps them). Nothing persists: no layer, no cache.
pub fn cold_check(bun_image: &str, log: &Path, timeout: Duration) -> Result<Finished> {
    let root = crate::util::project_root();
    let ca = crate::host::extra_ca_file(&root)?;
    let app = root.join("app");
    let script = "mkdir -p /tmp/cold && cp /check/package.json /check/bun.lock /tmp/cold/ && cd /tmp/cold \
                  && if [ -s /run/secrets/extra_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/extra_ca; fi \
                  && bun install --frozen-lockfile --ignore-scripts --no-progress --cache-dir=/tmp/cold-cache";
    // tmpfs: the 470 MB install is written and dropped in memory (5 s on the overlay disk, 1.4 s here).
    let mounts: Vec<String> = [
        (app.join("package.json"), "/check/package.json"),
        (app.join("bun.lock"), "/check/bun.lock"),
        (ca, "/run/secrets/extra_ca"),
    ]
    .iter()
    .map(|(src, dst)| format!("{}:{dst}:ro", src.display()))
    .collect();
    let mut options = vec!["--tmpfs", "/tmp:exec,size=2g", "--entrypoint", "sh"];
    for m in &mounts {
        options.extend(["--volume", m.as_str()]);
    }
    run_logged(
        crate::docker::run_rm_expr(&options, bun_image, &["-c", script]),
        "the cold install check",
        log,
        timeout,
    )
}

/// What a build ended with, and the policy that actually applied (a dev retry changes it).
pub struct Built {
    pub finished: Finished,
    pub policy: String,
    /// How long the cold install check took, when the policy asked for one.
    pub cold_check: Option<Duration>,
}

/// Runs `build(flags)`. On `IntegrityCheckFailed` it asks the registry about every failing
/// package and fails with what it found. Only under `dev --repair-lock`, when the registry
/// contradicts the lock for all of them (the known cross-platform lock bug, oven-sh/bun#16282),
/// does it show the change, ask, and on a yes repair exactly those entries and build again with
/// checks on. Integrity checks are never turned off by the xtask itself.
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
            cold_check: None,
        });
    }
    let pkgs = integrity_failures(&first.output);
    if pkgs.is_empty() {
        bail!("{}", build_failure(&first.output));
    }
    let lock_path = sh.current_dir().join("app/bun.lock");
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    let findings: Vec<Finding> = pkgs.iter().map(|p| investigate(sh, &lock, p)).collect();
    let report = format!(
        "bun install failed its integrity check for: {}\n  {}",
        pkgs.join(", "),
        findings
            .iter()
            .map(Finding::describe)
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    let all_lock_wrong = findings
        .iter()
        .all(|f| matches!(f, Finding::LockWrong { .. }));
    let repairable = kind == StackKind::Dev && all_lock_wrong && policy.no_verify.is_none();
    if repairable && policy.repair_lock {
        confirm_repair(&report, &findings)?;
        let repaired = repair(&lock, &findings);
        crate::util::write_atomic(&lock_path, repaired.as_bytes(), 0o644)
            .with_context(|| format!("writing {}", lock_path.display()))?;
        eprintln!(
            "repaired app/bun.lock; building again WITH integrity checks on. Review and commit it (`git diff app/bun.lock`)."
        );
        let second = build(&policy.flags())?;
        if !second.status.success() {
            bail!(
                "the build with the repaired lock failed too:\n{}",
                build_failure(&second.output)
            );
        }
        return Ok(Built {
            cold_check: None,
            finished: second,
            policy: format!(
                "{}; app/bun.lock repaired from the registry for {}",
                policy.describe(),
                pkgs.join(", ")
            ),
        });
    }
    let fix = match kind {
        _ if repairable => {
            "no run rewrites the lock on its own: a tampering mirror or TLS proxy would answer the registry query \
             too. If you trust the registry over the lock (compare `npm view <pkg> dist.integrity` from another \
             network), `cargo xtask dev --repair-lock` shows the change and asks before it writes app/bun.lock"
        }
        StackKind::Prod => {
            "prod builds never change the lock or the checks on their own; repair app/bun.lock as said above, or \
             if you accept the risk rerun with --no-verify \"<reason>\", which the report records"
        }
        StackKind::Dev if all_lock_wrong => {
            "integrity checks were turned off by --no-verify, so nothing was repaired"
        }
        StackKind::Dev => {
            "no automatic repair: for some package the registry agrees with the lock (the download was altered) or could not be asked"
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

/// Shows each entry's change and asks at the terminal; anything but a yes leaves the lock alone.
/// No terminal (CI, a pipe) or CI=true: refused, never assumed.
fn confirm_repair(report: &str, findings: &[Finding]) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let mut diff = String::new();
    for f in findings {
        if let Finding::LockWrong { entry, registry } = f {
            diff += &format!(
                "  {}@{}\n  - {}\n  + {registry}\n",
                entry.name, entry.version, entry.integrity
            );
        }
    }
    if crate::host::in_ci() || !std::io::stdin().is_terminal() {
        bail!(
            "{report}\n  --repair-lock asks before it writes app/bun.lock, and there is no terminal to ask at \
             (or CI=true): nothing was written. The change it would make:\n{diff}"
        );
    }
    eprint!(
        "{report}\n\nThe registry contradicts app/bun.lock for every failing package. The change:\n{diff}\
         A tampering mirror or TLS proxy would answer the registry query too: compare from another network.\n\
         Write this to app/bun.lock? [y/N] "
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("app/bun.lock left as it was (answered {:?})", answer.trim());
    }
    Ok(())
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

/// What the registry says about one failing package.
#[derive(Debug, PartialEq)]
pub enum Finding {
    /// The lock's hash differs from the registry's: the lock entry is wrong.
    LockWrong {
        entry: LockEntry,
        registry: String,
    },
    /// The lock matches the registry: what was downloaded is not what was published.
    Altered {
        spec: String,
    },
    /// The registry could not be asked.
    Unknown {
        spec: String,
        integrity: String,
    },
    NotInLock {
        pkg: String,
    },
    /// The registry answered something other than a sha512 hash (sha1 is broken): not trusted.
    Weak {
        spec: String,
        registry: String,
    },
}

impl Finding {
    pub fn describe(&self) -> String {
        match self {
            Finding::LockWrong { entry, registry } => format!(
                "{}@{}: the lock entry is wrong (lock {}, registry {registry}). Repair: put the registry's value in \
                 app/bun.lock (or delete the `\"{}\"` entry and run `bun install` with bun {}), then commit it",
                entry.name,
                entry.version,
                entry.integrity,
                entry.name,
                crate::images::BUN_VERSION
            ),
            Finding::Altered { spec } => format!(
                "{spec}: the lock entry matches the registry, so the download was altered: a proxy or mirror changed \
                 it, or bun fetched badly (oven-sh/bun#18864). Check the proxy/mirror; never turn checks off for this"
            ),
            Finding::Unknown { spec, integrity } => format!(
                "{spec}: could not ask the registry (npm missing or offline). Compare `npm view {spec} dist.integrity` \
                 with the lock's {integrity}"
            ),
            Finding::NotInLock { pkg } => format!("{pkg}: not found in app/bun.lock"),
            Finding::Weak { spec, registry } => format!(
                "{spec}: the registry answered {registry:?}, not a sha512 hash; sha1 is broken, so it is not trusted \
                 to judge the lock"
            ),
        }
    }
}

/// Compares the lock's hash with the registry's `dist.integrity` (through npm).
fn investigate(sh: &Shell, lock: &str, pkg: &str) -> Finding {
    let Some(entry) = lock_entry(lock, pkg) else {
        return Finding::NotInLock { pkg: pkg.into() };
    };
    let spec = format!("{}@{}", entry.name, entry.version);
    let registry = which::which("npm").ok().and_then(|_| {
        cmd!(sh, "npm view {spec} dist.integrity")
            .quiet()
            .ignore_stderr()
            .read()
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    });
    match registry {
        Some(r) if !r.starts_with("sha512-") => Finding::Weak { spec, registry: r },
        Some(r) if r == entry.integrity => Finding::Altered { spec },
        Some(registry) => Finding::LockWrong { entry, registry },
        None => Finding::Unknown {
            spec,
            integrity: entry.integrity,
        },
    }
}

/// The lock with each wrong entry's hash replaced by the registry's, on that entry's line only.
pub fn repair(lock: &str, findings: &[Finding]) -> String {
    let mut out: Vec<String> = lock.lines().map(String::from).collect();
    for f in findings {
        let Finding::LockWrong { entry, registry } = f else {
            continue;
        };
        let key = format!("\"{}\": [", entry.name);
        if let Some(line) = out.iter_mut().find(|l| l.trim_start().starts_with(&key)) {
            *line = line.replace(&entry.integrity, registry);
        }
    }
    let mut text = out.join("\n");
    if lock.ends_with('\n') {
        text.push('\n');
    }
    text
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
    fn repair_touches_only_the_wrong_entries() {
        let entry = lock_entry(LOCK, "@biomejs/cli-linux-x64-musl").unwrap();
        let findings = [
            Finding::LockWrong {
                entry,
                registry: "sha512-BBB==".into(),
            },
            Finding::Altered {
                spec: "is-number@7.0.0".into(),
            },
        ];
        let fixed = repair(LOCK, &findings);
        assert_eq!(
            lock_entry(&fixed, "@biomejs/cli-linux-x64-musl")
                .unwrap()
                .integrity,
            "sha512-BBB=="
        );
        assert_eq!(
            lock_entry(&fixed, "is-number").unwrap(),
            lock_entry(LOCK, "is-number").unwrap()
        );
        assert_eq!(fixed.lines().count(), LOCK.lines().count());
    }

    #[test]
    fn policy_flags() {
        assert_eq!(Policy::default().flags(), "--frozen-lockfile");
        let policy = Policy::new(true, None);
        assert_eq!(
            policy.flags(),
            "--frozen-lockfile",
            "a cold run changes no build argument: no new layer in the build cache"
        );
        assert!(policy.describe().contains("cold"));
        let nv = Policy::new(false, Some("mirror re-packs".into()));
        assert_eq!(nv.flags(), "--frozen-lockfile --no-verify");
        assert!(nv.describe().contains("reason: mirror re-packs"));
    }
}
