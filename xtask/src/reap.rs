//! Reaping what runs left behind: throw-away projects whose owner is gone (found by the owner
//! label every one of their containers, networks, volumes and images carries) and the
//! project's dangling images. No daemon and no reaper container: every command that touches
//! the engine reaps on its way in, `doctor` lists, `clean` does it on demand.

use anyhow::{Result, bail};
use xshell::Shell;

use crate::{
    docker::{self, compose::words},
    owner::{LABEL, Liveness, Owner},
    util::note,
};

/// The label on every image the project builds (compose `build.labels`, build-prod): how its
/// dangling images are told from everyone else's.
pub const IMAGE_LABEL: &str = "org.axion-hub.image";

/// A dead run's project and what is left of it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Orphan {
    pub project: String,
    pub why: String,
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    pub images: Vec<String>,
}

impl Orphan {
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.containers.len(), "container"),
            (self.networks.len(), "network"),
            (self.volumes.len(), "volume"),
            (self.images.len(), "image"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}{}", if n == 1 { "" } else { "s" }));
            }
        }
        format!("{} ({}): {}", self.project, self.why, parts.join(", "))
    }
}

/// One line a resource: `id \t project \t owner label`.
fn listing(kind: &str) -> Vec<String> {
    let fmt = format!(
        "{{{{.{}}}}}\t{{{{.Label \"com.docker.compose.project\"}}}}\t{{{{.Label \"{LABEL}\"}}}}",
        if kind == "volume" { "Name" } else { "ID" }
    );
    let filter = format!("label={LABEL}");
    match kind {
        "container" => words(&["ps", "-a", "--filter", &filter, "--format", &fmt]),
        k => words(&[k, "ls", "--filter", &filter, "--format", &fmt]),
    }
}

/// Every throw-away project on this engine whose owner is gone.
pub fn find(sh: &Shell) -> Result<Vec<Orphan>> {
    let kinds = ["container", "network", "volume"];
    let calls: Vec<Vec<String>> = kinds.iter().map(|k| listing(k)).collect();
    let mut rows: Vec<(usize, String, String, String)> = Vec::new();
    for (i, out) in docker::run_all(&calls).into_iter().enumerate() {
        let out = out?;
        if !out.status.success() {
            bail!(
                "listing {}s: {}",
                kinds[i],
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        rows.extend(parse_rows(&String::from_utf8_lossy(&out.stdout), i));
    }
    rows.extend(image_rows(sh));
    let here = Owner::current();
    let mut orphans: Vec<Orphan> = Vec::new();
    for (kind, id, project, label) in rows {
        // A project name is joined into paths below: only a name compose could have made.
        if !crate::owner::valid_project(&project) {
            continue;
        }
        let Some(owner) = Owner::parse(&label) else {
            continue; // the dev stack: no owner, never reaped
        };
        let Liveness::Gone(why) = owner.liveness(&here) else {
            continue;
        };
        let o = match orphans.iter_mut().position(|o| o.project == project) {
            Some(i) => &mut orphans[i],
            None => {
                orphans.push(Orphan {
                    project: project.clone(),
                    why,
                    ..Default::default()
                });
                orphans.last_mut().unwrap()
            }
        };
        match kind {
            0 => o.containers.push(id),
            1 => o.networks.push(id),
            2 => o.volumes.push(id),
            _ => o.images.push(id),
        }
    }
    Ok(orphans)
}

fn parse_rows(text: &str, kind: usize) -> Vec<(usize, String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            let (id, project, label) = (f.next()?, f.next()?, f.next()?);
            Some((kind, id.to_string(), project.to_string(), label.to_string()))
        })
        .collect()
}

/// Images a run built (per-run tags), with their project and owner labels.
fn image_rows(sh: &Shell) -> Vec<(usize, String, String, String)> {
    let ids = docker::ids(
        sh,
        &words(&["image", "ls", "-q", "--filter", &format!("label={LABEL}")]),
    );
    if ids.is_empty() {
        return vec![];
    }
    let fmt = format!(
        "{{{{.Id}}}}\t{}\t{}",
        docker::image_label("com.docker.compose.project"),
        docker::image_label(LABEL)
    );
    let mut args = words(&["image", "inspect", "--format", &fmt]);
    args.extend(ids);
    let out = docker::cmd(sh, &args).quiet().read().unwrap_or_default();
    parse_rows(&out, 3)
}

/// Removes everything of an orphan; what could not be removed is named.
pub fn remove(o: &Orphan) -> Result<()> {
    // A swarm proof's pushes left names under its registry's address on this engine; that
    // address is known only while its registry container exists.
    let pushed = crate::swarm::cluster::names_pushed_by(&o.project);
    let mut calls = Vec::new();
    if !o.containers.is_empty() {
        let mut a = words(&["rm", "--force", "--volumes"]);
        a.extend(o.containers.iter().cloned());
        calls.push(a);
    }
    // Containers first: networks and volumes in use cannot go.
    for out in docker::run_all(&calls) {
        check(out?)?;
    }
    let mut calls = Vec::new();
    for (cmd, ids) in [
        (&["network", "rm"][..], &o.networks),
        (&["volume", "rm", "--force"], &o.volumes),
        (&["image", "rm", "--force"], &o.images),
    ] {
        if !ids.is_empty() {
            let mut a = words(cmd);
            a.extend(ids.iter().cloned());
            calls.push(a);
        }
    }
    for out in docker::run_all(&calls) {
        check(out?)?;
    }
    if !pushed.is_empty() {
        check(
            docker::run_all(&[[words(&["image", "rm", "--force"]), pushed].concat()]).remove(0)?,
        )?;
    }
    // A swarm proof's node sockets (swarm::cluster): a directory of its own in temp_dir.
    if o.project.starts_with("axion-swarm-") {
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&o.project));
    }
    Ok(())
}

fn check(out: std::process::Output) -> Result<()> {
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// What every engine-touching command does on its way in: removes dead runs' projects and
/// says what it removed. A failure here is reported, never fatal.
pub fn reap(sh: &Shell) {
    let orphans = match find(sh) {
        Ok(o) => o,
        Err(e) => return note(format!("reaping left-over runs failed: {e:#}")),
    };
    for o in orphans {
        match remove(&o) {
            Ok(()) => note(format!(
                "removed a run that died without its teardown: {}",
                o.summary()
            )),
            Err(e) => note(format!("could not remove {}: {e:#}", o.summary())),
        }
    }
}

/// Compose projects this project names: the dev and prod stacks, verify and bench runs,
/// the tests' own. Images compose built for them before images carried IMAGE_LABEL are
/// recognised by this.
const OWN_PROJECTS: [&str; 6] = [
    "axion-hub",
    "axion-verify-",
    "axion-bench-",
    "axion-swarm-",
    "axion-it-",
    "axion-hub-prod",
];

/// The project's dangling images (`<none>` left when a tag moved to a new build): labelled
/// IMAGE_LABEL, or built by compose for one of the project's own stacks.
pub fn dangling_images(sh: &Shell) -> Result<Vec<String>> {
    let args = words(&[
        "image",
        "ls",
        "-q",
        "--no-trunc",
        "--filter",
        "dangling=true",
    ]);
    let ids: Vec<String> = docker::cmd(sh, &args)
        .quiet()
        .read()?
        .split_whitespace()
        .map(String::from)
        .collect();
    if ids.is_empty() {
        return Ok(ids);
    }
    let fmt = format!(
        "{{{{.Id}}}}\t{}\t{}",
        docker::image_label(IMAGE_LABEL),
        docker::image_label("com.docker.compose.project")
    );
    let mut a = words(&["image", "inspect", "--format", &fmt]);
    a.extend(ids);
    let out = docker::cmd(sh, &a).quiet().read()?;
    let mut ours: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (id, label, project) = (f.next()?, f.next()?, f.next()?);
            let own = !label.is_empty() || OWN_PROJECTS.iter().any(|p| project.starts_with(p));
            own.then(|| id.to_string())
        })
        .collect();
    ours.dedup();
    Ok(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_parse_and_summaries_read() {
        let rows = parse_rows(
            "abc\taxion-verify-dev-1-2\thost=h pid=1 start=2 boot=b\nbad line\n",
            0,
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].2, "axion-verify-dev-1-2");
        let o = Orphan {
            project: "p".into(),
            why: "pid 9 is gone".into(),
            containers: vec!["a".into(), "b".into()],
            volumes: vec!["v".into()],
            ..Default::default()
        };
        assert_eq!(o.summary(), "p (pid 9 is gone): 2 containers, 1 volume");
        assert!(listing("volume").join(" ").contains("{{.Name}}"));
    }
}
