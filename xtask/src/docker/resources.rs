//! Sets of engine resources removed together, in the order the engine allows, and the image
//! names a registry push leaves behind.

use std::net::SocketAddr;

use super::{compose::words, run_all};

/// Resources to remove together. Containers go first (with their anonymous volumes): until
/// then their networks and volumes are in use. Image names go by name: removing a name never
/// removes an image that has others.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Resources {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    pub images: Vec<String>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.networks.is_empty()
            && self.volumes.is_empty()
            && self.images.is_empty()
    }

    /// Removes all of it (each step's calls at once); what docker refused, one line each.
    pub fn remove(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let mut step = |calls: Vec<(&[&str], &Vec<String>)>| {
            let calls: Vec<Vec<String>> = calls
                .into_iter()
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(cmd, ids)| [words(cmd), ids.clone()].concat())
                .collect();
            for out in run_all(&calls) {
                match out {
                    Ok(o) if o.status.success() => {}
                    Ok(o) => failures.push(String::from_utf8_lossy(&o.stderr).trim().to_string()),
                    Err(e) => failures.push(e.to_string()),
                }
            }
        };
        step(vec![(&["rm", "--force", "--volumes"], &self.containers)]);
        let mut images = self.images.clone();
        images.sort();
        images.dedup();
        step(vec![
            (&["network", "rm"], &self.networks),
            (&["volume", "rm", "--force"], &self.volumes),
            (&["image", "rm", "--force"], &images),
        ]);
        failures
    }
}

/// What kind of engine resource a listed one is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Container,
    Network,
    Volume,
    Image,
}

/// A resource carrying a label, with its compose project and that label's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    pub kind: Kind,
    pub id: String,
    pub project: String,
    pub value: String,
}

impl Resources {
    pub fn add(&mut self, kind: Kind, id: String) {
        match kind {
            Kind::Container => self.containers.push(id),
            Kind::Network => self.networks.push(id),
            Kind::Volume => self.volumes.push(id),
            Kind::Image => self.images.push(id),
        }
    }
}

/// Every container, network, volume and image carrying `label`, listed at once.
pub fn labelled(sh: &xshell::Shell, label: &str) -> anyhow::Result<Vec<Labelled>> {
    let kinds = [Kind::Container, Kind::Network, Kind::Volume];
    let calls: Vec<Vec<String>> = kinds.iter().map(|k| listing(*k, label)).collect();
    let mut rows = Vec::new();
    for (kind, out) in kinds.into_iter().zip(run_all(&calls)) {
        let out = out?;
        if !out.status.success() {
            anyhow::bail!(
                "listing {kind:?}s: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        rows.extend(parse_rows(&String::from_utf8_lossy(&out.stdout), kind));
    }
    rows.extend(labelled_images(sh, label));
    Ok(rows)
}

/// One line a resource: `id \t project \t label value`.
fn listing(kind: Kind, label: &str) -> Vec<String> {
    let fmt = format!(
        "{{{{.{}}}}}\t{{{{.Label \"com.docker.compose.project\"}}}}\t{{{{.Label \"{label}\"}}}}",
        if kind == Kind::Volume { "Name" } else { "ID" }
    );
    let filter = format!("label={label}");
    match kind {
        Kind::Container => words(&["ps", "-a", "--filter", &filter, "--format", &fmt]),
        Kind::Network => words(&["network", "ls", "--filter", &filter, "--format", &fmt]),
        _ => words(&["volume", "ls", "--filter", &filter, "--format", &fmt]),
    }
}

fn parse_rows(text: &str, kind: Kind) -> Vec<Labelled> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            let (id, project, value) = (f.next()?, f.next()?, f.next()?);
            Some(Labelled {
                kind,
                id: id.to_string(),
                project: project.to_string(),
                value: value.to_string(),
            })
        })
        .collect()
}

/// Images carrying `label` (image listings print no labels: one inspect of them all).
fn labelled_images(sh: &xshell::Shell, label: &str) -> Vec<Labelled> {
    let ids = super::ids(
        sh,
        &words(&["image", "ls", "-q", "--filter", &format!("label={label}")]),
    );
    if ids.is_empty() {
        return vec![];
    }
    let fmt = format!(
        "{{{{.Id}}}}\t{}\t{}",
        super::image_label("com.docker.compose.project"),
        super::image_label(label)
    );
    let out = super::image_rows(sh, &fmt, &ids).unwrap_or_default();
    parse_rows(&out, Kind::Image)
}

/// Where a container publishes `port` (`5000/tcp`) on the host, if it exists and does.
pub fn published_at(container: &str, port: &str) -> Option<SocketAddr> {
    let out = run_all(&[words(&["port", container, port])]).pop()?.ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next()?.trim().parse().ok()
}

/// The image names (tags, digest references) on this engine under `prefix/`: what pushing to
/// a registry at `prefix` leaves (a `repo@sha256:…` keeps an image alive after its tags go).
pub fn names_under(prefix: &str) -> Vec<String> {
    let listing = words(&[
        "image",
        "ls",
        "--digests",
        "--format",
        "{{.Repository}}|{{.Tag}}|{{.Digest}}",
    ]);
    let listed = match run_all(&[listing]).pop() {
        Some(Ok(out)) => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => String::new(),
    };
    registry_names(&listed, prefix)
}

/// The image names under `prefix/` in `image ls --digests` lines (`repo|tag|digest`).
fn registry_names(listed: &str, prefix: &str) -> Vec<String> {
    if prefix.is_empty() {
        return vec![];
    }
    let mut out = Vec::new();
    for line in listed.lines() {
        let mut f = line.split('|');
        let (Some(repo), Some(tag), Some(digest)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if !repo.starts_with(&format!("{prefix}/")) {
            continue;
        }
        if tag != "<none>" {
            out.push(format!("{repo}:{tag}"));
        }
        if digest != "<none>" {
            out.push(format!("{repo}@{digest}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_names_are_tags_and_digest_references_under_the_prefix() {
        let listed = "127.0.0.1:5/axion-hub/app|<none>|sha256:aa\n\
                      127.0.0.1:5/axion-hub/postgres|abc123|sha256:bb\n\
                      axion-hub-standin/postgres|17|<none>\n\
                      127.0.0.1:55/other|x|<none>\n";
        assert_eq!(
            super::registry_names(listed, "127.0.0.1:5"),
            vec![
                "127.0.0.1:5/axion-hub/app@sha256:aa",
                "127.0.0.1:5/axion-hub/postgres:abc123",
                "127.0.0.1:5/axion-hub/postgres@sha256:bb",
            ]
        );
        assert!(super::registry_names(listed, "").is_empty());
    }

    #[test]
    fn labelled_listings_parse() {
        use super::*;
        let rows = parse_rows(
            "abc\taxion-verify-dev-1-2\thost=h pid=1 start=2 boot=b\nbad line\n",
            Kind::Container,
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].project, "axion-verify-dev-1-2");
        assert!(listing(Kind::Volume, "l").join(" ").contains("{{.Name}}"));
    }
}
