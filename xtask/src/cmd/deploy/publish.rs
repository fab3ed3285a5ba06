//! The images a deploy names, as every node reaches them: pushed to `--registry` and named by
//! digest, or (a one-node swarm from local images) local names; the app's under a name of its
//! own content either way, so the release history names exactly what ran.

use anyhow::Result;
use xshell::Shell;

use crate::{
    docker, flags, images,
    swarm::{self, StackImages},
};

impl flags::Deploy {
    /// The images as every node reaches them: by digest through `--registry`, or (a one-node
    /// swarm on this engine, checked above) the local tags; and whether they are local.
    pub(super) fn publish(
        &self,
        sh: &Shell,
        locals: &[(String, String); 4],
    ) -> Result<(StackImages, bool)> {
        let (refs, local) = match &self.registry {
            Some(registry) => {
                let nodes = self.node_registry.as_deref().unwrap_or(registry);
                (by_digest(sh, locals, registry, nodes)?, false)
            }
            None => {
                let mut refs: Vec<String> = locals.iter().map(|(l, _)| l.clone()).collect();
                refs[0] = release_tag(sh, &refs[0])?;
                (refs, true)
            }
        };
        let images = StackImages {
            app: refs[0].clone(),
            postgres: refs[1].clone(),
            redis: refs[2].clone(),
            proxy: refs[3].clone(),
        };
        Ok((images, local))
    }
}

/// On a one-node swarm deployed from local images, the app's under a name of its own content
/// (`axion-hub/app:<image id>`): a later build moves `axion-hub:runner`, never this, so the
/// release history names exactly what ran.
fn release_tag(sh: &Shell, image: &str) -> Result<String> {
    let id = docker::image_id(sh, image)?;
    let tag = format!(
        "axion-hub/app:{}",
        id.trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>()
    );
    if tag != image {
        docker::cmd(sh, &docker::compose::words(&["tag", image, &tag]))
            .quiet()
            .run()?;
    }
    Ok(tag)
}

/// Each image by digest: one pulled from a registry keeps its own digest; one built here (the
/// runner, stand-ins) is pushed to `registry` first.
fn by_digest(
    sh: &Shell,
    locals: &[(String, String)],
    registry: &str,
    node_registry: &str,
) -> Result<Vec<String>> {
    let rev = images::revision(sh);
    let mut to_push = Vec::new();
    let mut refs: Vec<Option<String>> = Vec::new();
    for (local, repo) in locals {
        // Named by digest already (a recorded release's, pulled back): as the nodes name it.
        if let Some((name, digest)) = local.split_once('@') {
            let name = name
                .strip_prefix(&format!("{registry}/"))
                .map_or(name.to_string(), |p| format!("{node_registry}/{p}"));
            refs.push(Some(format!("{name}@{digest}")));
            continue;
        }
        let own_repo = local.rsplit_once(':').map_or(local.as_str(), |(r, _)| r);
        match swarm::digest_in(sh, local, own_repo)? {
            Some(d) if !local.starts_with(images::STANDIN) => {
                refs.push(Some(format!("{own_repo}@{d}")))
            }
            _ => {
                refs.push(None);
                to_push.push((local.clone(), format!("{repo}:{rev}")));
            }
        }
    }
    let mut tags = Vec::new();
    let mut pushed = swarm::push(sh, &to_push, registry, node_registry, &mut tags)?.into_iter();
    Ok(refs
        .into_iter()
        .map(|r| r.unwrap_or_else(|| pushed.next().unwrap_or_default()))
        .collect())
}
