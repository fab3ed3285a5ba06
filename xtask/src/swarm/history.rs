//! The swarm's release history: every successful `deploy` records a release in the swarm itself,
//! as a config object (`<stack>_release-00001`, its data one JSON line), so any manager reads it
//! and `docker stack rm` removes it with the stack. A record names every service's image as the
//! nodes pull it, the git revision and Next.js build id, when and by whom. `deploy --rollback`
//! reads it; `status` shows the running release. The last KEEP_RELEASES are kept.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use xshell::Shell;

use super::StackImages;
use crate::docker::{self, Engine};

/// The label every release record carries (its value: the release number).
pub const RELEASE_LABEL: &str = "axion-hub.release";
/// How many releases the swarm keeps a record of: what `deploy --rollback N` can go back to.
pub const KEEP_RELEASES: usize = 10;

/// One release as the swarm recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub release: u32,
    /// RFC 3339, UTC.
    pub time: String,
    /// `user@host` of whoever ran the deploy.
    pub by: String,
    pub revision: String,
    /// Next.js's build id in the app image.
    pub build_id: String,
    pub images: StackImages,
    /// The release a `deploy --rollback` went back to.
    pub rollback_to: Option<u32>,
}

impl Record {
    pub fn to_json(&self) -> Value {
        json!({
            "release": self.release,
            "time": self.time,
            "by": self.by,
            "revision": self.revision,
            "build_id": self.build_id,
            "images": {
                "app": self.images.app,
                "postgres": self.images.postgres,
                "redis": self.images.redis,
                "proxy": self.images.proxy,
            },
            "rollback_to": self.rollback_to,
        })
    }

    pub fn from_json(v: &Value) -> Option<Record> {
        let s = |v: &Value| v.as_str().map(String::from);
        let i = &v["images"];
        Some(Record {
            release: u32::try_from(v["release"].as_u64()?).ok()?,
            time: s(&v["time"]).unwrap_or_default(),
            by: s(&v["by"]).unwrap_or_default(),
            revision: s(&v["revision"]).unwrap_or_default(),
            build_id: s(&v["build_id"]).unwrap_or_default(),
            images: StackImages {
                app: s(&i["app"])?,
                postgres: s(&i["postgres"])?,
                redis: s(&i["redis"])?,
                proxy: s(&i["proxy"])?,
            },
            rollback_to: v["rollback_to"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok()),
        })
    }

    /// `release 3 (rev 1a2b3c4d5e6f, 2026-12-02T02:15:00Z by root@host)`.
    pub fn line(&self) -> String {
        let back = self
            .rollback_to
            .map(|n| format!(", a rollback to release {n}"))
            .unwrap_or_default();
        format!(
            "release {} (rev {}, build {}, {} by {}{back})",
            self.release, self.revision, self.build_id, self.time, self.by
        )
    }
}

/// Whether two references name one image: by their digests when both have one (a tag may be
/// written beside it), else as written.
pub fn same_image(a: &str, b: &str) -> bool {
    match (a.split_once("@sha256:"), b.split_once("@sha256:")) {
        (Some((_, x)), Some((_, y))) => x == y,
        _ => a == b,
    }
}

fn config_name(stack: &str, release: u32) -> String {
    format!("{stack}_release-{release:05}")
}

/// Every release recorded for `stack`, oldest first.
pub fn list(sh: &Shell, target: &Engine, stack: &str) -> Result<Vec<Record>> {
    let names = record_names(sh, target, stack)?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec![
        "config",
        "inspect",
        "--format",
        "{{printf \"%s\" .Spec.Data}}",
    ];
    args.extend(names.iter().map(String::as_str));
    let out = target
        .read(sh, &args)
        .context("reading the swarm's release history")?;
    Ok(parse(&out))
}

/// The records in `docker config inspect`'s output (one JSON line each), oldest first; a line
/// that is not a record is skipped.
pub fn parse(out: &str) -> Vec<Record> {
    let mut records: Vec<Record> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .filter_map(|v: Value| Record::from_json(&v))
        .collect();
    records.sort_by_key(|r| r.release);
    records
}

fn record_names(sh: &Shell, target: &Engine, stack: &str) -> Result<Vec<String>> {
    let out = target.read(
        sh,
        &[
            "config",
            "ls",
            "--filter",
            &format!("label={RELEASE_LABEL}"),
            "--filter",
            &format!("label=com.docker.stack.namespace={stack}"),
            "--format",
            "{{.Name}}",
        ],
    )?;
    Ok(out.lines().map(str::to_string).collect())
}

/// Records `r` as the next release of `stack` (its number set here), then removes the records
/// beyond the last KEEP_RELEASES. Returns what was recorded. Another deploy that took the
/// number first (the name exists) moves this one to the next.
pub fn record(sh: &Shell, target: &Engine, stack: &str, mut r: Record) -> Result<Record> {
    let mut tries = 0;
    let past = loop {
        let past = list(sh, target, stack)?;
        r.release = past.last().map_or(1, |p| p.release + 1);
        match create(sh, target, stack, &r) {
            Ok(()) => break past,
            Err(e) if tries < 3 && format!("{e:#}").contains("already exists") => tries += 1,
            Err(e) => return Err(e),
        }
    };
    let drop = (past.len() + 1).saturating_sub(KEEP_RELEASES);
    for old in &past[..drop] {
        target.read(sh, &["config", "rm", &config_name(stack, old.release)])?;
    }
    Ok(r)
}

fn create(sh: &Shell, target: &Engine, stack: &str, r: &Record) -> Result<()> {
    let name = config_name(stack, r.release);
    let args = target.args(&[
        "config",
        "create",
        "--label",
        &format!("com.docker.stack.namespace={stack}"),
        "--label",
        &format!("{RELEASE_LABEL}={}", r.release),
        &name,
        "-",
    ]);
    let out = docker::cmd(sh, &args)
        .stdin(r.to_json().to_string())
        .quiet()
        .ignore_status()
        .output()?;
    if !out.status.success() {
        bail!(
            "recording {name} in the swarm: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The release `deploy --rollback` goes back to: `wanted`, or the newest one whose app image
/// is not the one running. A refusal names what there is.
pub fn rollback_target(
    records: &[Record],
    running_app: &str,
    wanted: Option<u32>,
) -> Result<Record> {
    let listed = || {
        records
            .iter()
            .rev()
            .map(|r| format!("    {}", r.line()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if records.is_empty() {
        bail!(
            "the swarm has no release history for this stack: nothing to roll back to.\n  fix: cargo xtask deploy (each deploy records a release)"
        );
    }
    if let Some(n) = wanted {
        return match records.iter().find(|r| r.release == n) {
            Some(r) if same_image(&r.images.app, running_app) => bail!(
                "release {n} is what runs now: nothing to roll back.\n  the swarm's releases:\n{}",
                listed()
            ),
            Some(r) => Ok(r.clone()),
            None => bail!(
                "no release {n} in the swarm's history (the last {KEEP_RELEASES} are kept):\n{}",
                listed()
            ),
        };
    }
    match records
        .iter()
        .rev()
        .find(|r| !same_image(&r.images.app, running_app))
    {
        Some(r) => Ok(r.clone()),
        None => bail!(
            "every recorded release runs the app image that runs now: nothing to roll back to.\n  the swarm's releases:\n{}\n  fix: deploy another release first; `deploy --rollback N` names one",
            listed()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: u32, app: &str) -> Record {
        Record {
            release: n,
            time: "2026-12-02T02:15:00Z".into(),
            by: "root@ci".into(),
            revision: format!("rev{n}"),
            build_id: format!("build{n}"),
            images: StackImages {
                app: app.into(),
                postgres: "reg/pg@sha256:1".into(),
                redis: "reg/redis@sha256:2".into(),
                proxy: "reg/haproxy@sha256:3".into(),
            },
            rollback_to: None,
        }
    }

    #[test]
    fn a_record_reads_back_as_it_was_written_and_sorts_by_number() {
        let mut back = rec(2, "reg/app@sha256:b");
        back.rollback_to = Some(1);
        let out = format!(
            "{}\nnot a record\n{}\n",
            back.to_json(),
            rec(1, "reg/app@sha256:a").to_json()
        );
        assert_eq!(parse(&out), vec![rec(1, "reg/app@sha256:a"), back]);
    }

    #[test]
    fn rollback_goes_to_the_newest_other_app_image_or_the_named_release() {
        let h = [rec(1, "a"), rec(2, "b"), rec(3, "b")];
        assert_eq!(rollback_target(&h, "b", None).unwrap().release, 1);
        assert_eq!(rollback_target(&h, "a", None).unwrap().release, 3);
        assert_eq!(rollback_target(&h, "b", Some(1)).unwrap().release, 1);
        let e = format!("{:#}", rollback_target(&h, "b", Some(2)).unwrap_err());
        assert!(e.contains("release 2 is what runs now"), "{e}");
        let e = format!("{:#}", rollback_target(&h, "b", Some(7)).unwrap_err());
        assert!(
            e.contains("no release 7") && e.contains("release 3 (rev rev3"),
            "{e}"
        );
        let e = format!("{:#}", rollback_target(&[], "b", None).unwrap_err());
        assert!(
            e.contains("no release history") && e.contains("fix: cargo xtask deploy"),
            "{e}"
        );
        assert!(same_image("reg/app:v2@sha256:ab", "reg/app@sha256:ab"));
        assert!(!same_image("reg/app@sha256:ab", "reg/app@sha256:cd"));
        let e = format!("{:#}", rollback_target(&h[1..], "b", None).unwrap_err());
        assert!(
            e.contains("nothing to roll back to") && e.contains("fix:"),
            "{e}"
        );
    }
}
