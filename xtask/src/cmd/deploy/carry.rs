//! Skew protection for assets: the new release's image also serves the previous release's own
//! `/_next/static` files (content-hashed names, so the union is safe), so a tab holding a page
//! of the previous release still loads its chunks from any replica, during the rolling update
//! and after it. Only the previous release's own files are carried (its
//! `.next/static-files.txt`, written by docker/Dockerfile's runner stage), never what it carried
//! itself: an image holds at most two releases' assets.

use anyhow::{Context, Result};
use xshell::Shell;

use crate::{docker, images};

/// The new app image with the previous release's own static files laid over it: its tag.
pub fn carry_previous(sh: &Shell, new: &str, previous: &str) -> Result<String> {
    let tag = format!("axion-hub:runner-carry-{}", images::revision(sh));
    // An image built before the list existed: all of its static files, once.
    let dockerfile = format!(
        "FROM {previous} AS previous\n\
         USER 0\n\
         RUN cd /app && if [ ! -f .next/static-files.txt ]; then find .next/static -type f > .next/static-files.txt; fi \\\n \
             && mkdir /carry && xargs -a .next/static-files.txt cp --parents -t /carry\n\
         FROM {new}\n\
         COPY --from=previous /carry/.next/static/ /app/.next/static/\n"
    );
    let labels = [format!("{}=carry", crate::reap::IMAGE_LABEL)];
    docker::build_from_stdin(&tag, &labels, &dockerfile)
        .with_context(|| format!("carrying the static files of {previous} into {new}"))?;
    Ok(tag)
}

/// The static files an image's own build made (`/_next/static/…` URL paths).
pub fn own_static_urls(sh: &Shell, image: &str) -> Result<Vec<String>> {
    let list = docker::inspect_image_with(sh, image, "cat /app/.next/static-files.txt")
        .with_context(|| format!("reading {image}'s .next/static-files.txt"))?;
    Ok(list
        .lines()
        .filter_map(|f| f.trim().strip_prefix(".next/static/"))
        .map(|f| format!("/_next/static/{f}"))
        .collect())
}
