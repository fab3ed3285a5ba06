//! Reaping what runs left behind: throw-away projects whose owner is gone (found by the owner
//! label every one of their containers, networks, volumes and images carries) and the
//! project's dangling images. No daemon and no reaper container: every command that touches
//! the engine reaps on its way in, `doctor` lists, `clean` does it on demand.

use anyhow::{Result, bail};
use xshell::Shell;

use crate::{
    docker::{
        self,
        resources::{self, Resources},
    },
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
    pub left: Resources,
}

impl Orphan {
    pub fn summary(&self) -> String {
        let l = &self.left;
        let mut parts = Vec::new();
        for (n, what) in [
            (l.containers.len(), "container"),
            (l.networks.len(), "network"),
            (l.volumes.len(), "volume"),
            (l.images.len(), "image"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}{}", if n == 1 { "" } else { "s" }));
            }
        }
        format!("{} ({}): {}", self.project, self.why, parts.join(", "))
    }
}

/// The project prefix of `verify --swarm` runs, whose registry container
/// (`<project>-registry`, publishing 5000/tcp on loopback) names the tags its pushes left.
pub const SWARM_PROOF: &str = "axion-swarm-";

/// Every throw-away project on this engine whose owner is gone.
pub fn find(sh: &Shell) -> Result<Vec<Orphan>> {
    let here = Owner::current();
    let mut orphans: Vec<Orphan> = Vec::new();
    for r in docker::resources::labelled(sh, LABEL)? {
        // A project name is joined into paths below: only a name compose could have made.
        if !crate::owner::valid_project(&r.project) {
            continue;
        }
        let Some(owner) = Owner::parse(&r.value) else {
            continue; // the dev stack: no owner, never reaped
        };
        let Liveness::Gone(why) = owner.liveness(&here) else {
            continue;
        };
        let i = match orphans.iter().position(|o| o.project == r.project) {
            Some(i) => i,
            None => {
                orphans.push(Orphan {
                    project: r.project.clone(),
                    why,
                    ..Default::default()
                });
                orphans.len() - 1
            }
        };
        orphans[i].left.add(r.kind, r.id);
    }
    Ok(orphans)
}

/// Removes everything of an orphan; what could not be removed is named.
pub fn remove(o: &Orphan) -> Result<()> {
    let mut all = o.left.clone();
    if o.project.starts_with(SWARM_PROOF) {
        // Its pushes left names under its registry's address on this engine; that address is
        // known only while its registry container exists.
        let registry = format!("{}-registry", o.project);
        if let Some(at) = resources::published_at(&registry, "5000/tcp") {
            all.images
                .extend(resources::names_under(&format!("127.0.0.1:{}", at.port())));
        }
        // Its node sockets: a directory of its own in temp_dir; its TLS keys (proof::edge).
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&o.project));
        let edge = format!("{}-edge", o.project);
        let _ =
            std::fs::remove_dir_all(crate::paths::work_dir(&crate::util::project_root(), &edge));
    }
    let failed = all.remove();
    if failed.is_empty() {
        return Ok(());
    }
    // Another command reaping the same run at once (every command reaps on its way in): the
    // engine answers "removal … already in progress" or "has active endpoints". Wait for it,
    // then take whatever is still there.
    let sh = Shell::new()?;
    let waited = crate::util::poll(
        &format!("the other removal of {}", o.project),
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(250),
        || Ok(left_of(&sh, &o.project)?.is_empty().then_some(())),
    );
    if waited.is_ok() {
        return Ok(());
    }
    let again = left_of(&sh, &o.project)?.remove();
    if !again.is_empty() {
        bail!(
            "{}",
            failed
                .into_iter()
                .chain(again)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

/// What is left of a project: its labelled containers, networks, volumes and images.
fn left_of(sh: &Shell, project: &str) -> Result<Resources> {
    let mut left = Resources::default();
    for r in docker::resources::labelled(sh, LABEL)? {
        if r.project == project {
            left.add(r.kind, r.id);
        }
    }
    Ok(left)
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
    let ids = docker::dangling_images(sh)?;
    if ids.is_empty() {
        return Ok(ids);
    }
    let fmt = format!(
        "{{{{.Id}}}}\t{}\t{}",
        docker::image_label(IMAGE_LABEL),
        docker::image_label("com.docker.compose.project")
    );
    let out = docker::image_rows(sh, &fmt, &ids)?;
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
    fn summaries_read() {
        let o = Orphan {
            project: "p".into(),
            why: "pid 9 is gone".into(),
            left: Resources {
                containers: vec!["a".into(), "b".into()],
                volumes: vec!["v".into()],
                ..Default::default()
            },
        };
        assert_eq!(o.summary(), "p (pid 9 is gone): 2 containers, 1 volume");
    }
}
