//! `deploy --rollback [RELEASE]`: the app image of the previous release (the newest one the
//! swarm's history records with another app image than the one running), or of RELEASE, made
//! available here to go through the same steps as any deploy: its static files carried over
//! (clients of the running release keep theirs), the health-gated rolling update, the wait,
//! the report, a new record naming the release it went back to. The other services keep the
//! images and every secret keeps the value of today: a rotated password never comes back.

use anyhow::{Context, Result, bail};
use xshell::Shell;

use crate::{
    docker::{self, Engine},
    flags,
    swarm::{self, history},
};

impl flags::Deploy {
    /// RELEASE, when given: a release number.
    pub(super) fn release_number(&self) -> Result<Option<u32>> {
        let Some(r) = &self.release else {
            return Ok(None);
        };
        if !self.rollback {
            bail!(
                "`deploy {r}`: a release is named only to roll back to it: cargo xtask deploy --rollback {r}"
            );
        }
        r.trim_start_matches('#')
            .parse()
            .map(Some)
            .with_context(|| format!("`--rollback {r}`: a release is a number (`cargo xtask status --stack NAME` shows the running one)"))
    }
}

/// The app image of the release to go back to, as this engine names it (pulled from the
/// registry when needed), and that release's record.
pub fn app_of(
    sh: &Shell,
    o: &flags::Deploy,
    target: &Engine,
    stack: &str,
) -> Result<(String, history::Record)> {
    let records = history::list(sh, target, stack)?;
    let running = swarm::service_image(sh, target, &format!("{stack}_app")).unwrap_or_default();
    let record = history::rollback_target(&records, &running, o.release_number()?)?;
    let image = &record.images.app;
    let here = match &o.registry {
        Some(registry) => {
            let nodes = o.node_registry.as_deref().unwrap_or(registry);
            let Some(path) = image.strip_prefix(&format!("{nodes}/")) else {
                bail!(
                    "release {}'s app image {image} is not in the registry {registry}: deploy --rollback takes images from the registry they were deployed from",
                    record.release
                );
            };
            let here = format!("{registry}/{path}");
            if !docker::image_exists(sh, &here) {
                docker::pull(sh, &here)
                    .with_context(|| format!("pulling release {}'s app image", record.release))?;
            }
            here
        }
        None if docker::image_exists(sh, image) => image.clone(),
        None => bail!(
            "release {}'s app image {image} is no longer on this engine (a one-node swarm deploys local images; `docker image prune` may have removed it)",
            record.release
        ),
    };
    crate::util::note(format!(
        "deploy --rollback: back to {} ({image})",
        record.line()
    ));
    Ok((here, record))
}
