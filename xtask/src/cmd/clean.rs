//! `cargo xtask clean`: removes what runs that died left (their whole stacks and images), the
//! project's dangling images, and on request the engine's build cache beyond a size. `--dry-run` lists without removing.

use anyhow::Result;
use xshell::Shell;

use crate::{
    docker::{self, compose::words},
    engine, flags, images, reap,
};

impl flags::Clean {
    pub fn run(self, sh: &Shell) -> Result<()> {
        engine::preflight()?;
        let orphans = reap::find(sh)?;
        let dangling = reap::dangling_images(sh)?;
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        if orphans.is_empty() {
            eprintln!("no stack left by a dead run");
        }
        for o in &orphans {
            if !self.dry_run {
                reap::remove(o)?;
            }
            eprintln!("{verb} {}", o.summary());
        }
        if !dangling.is_empty() {
            if !self.dry_run {
                let mut args = words(&["image", "rm", "--force"]);
                args.extend(dangling.iter().cloned());
                docker::cmd(sh, &args).quiet().ignore_stdout().run()?;
            }
            let short: Vec<&str> = dangling
                .iter()
                .map(|id| {
                    let id = id.trim_start_matches("sha256:");
                    &id[..id.len().min(12)]
                })
                .collect();
            eprintln!(
                "{verb} {} dangling image(s) the project built: {}",
                dangling.len(),
                short.join(" ")
            );
        }
        // build-prod tags every build with its revision: those of other revisions pile up.
        let tags = docker::cmd(
            sh,
            &words(&[
                "image",
                "ls",
                "axion-hub",
                "--format",
                "{{.Repository}}:{{.Tag}}",
            ]),
        )
        .quiet()
        .read()?;
        let tags: Vec<String> = tags.lines().map(String::from).collect();
        // Without a revision to name (no git, not a checkout), no tag counts as another's.
        let old = match images::known_revision(sh) {
            Some(rev) => images::stale_revision_tags(&tags, &rev),
            None => {
                eprintln!("build-prod tags kept: git cannot name this checkout's revision");
                vec![]
            }
        };
        if !old.is_empty() {
            if !self.dry_run {
                let mut args = words(&["image", "rm"]);
                args.extend(old.iter().cloned());
                docker::cmd(sh, &args).quiet().ignore_stdout().run()?;
            }
            eprintln!(
                "{verb} {} build-prod tag(s) of other revisions: {}",
                old.len(),
                old.join(" ")
            );
        }
        if let Some(size) = &self.build_cache {
            // BuildKit cannot tell which cache a project made: this bound is engine-wide, and
            // runs only because a person asked for it by name.
            eprintln!(
                "build cache: pruning the engine's build cache down to {size} (all projects share it)"
            );
            if !self.dry_run {
                let args = words(&["buildx", "prune", "--force", "--keep-storage", size]);
                let out = docker::cmd(sh, &args).quiet().read()?;
                let total = out.lines().last().unwrap_or("").replace('\t', " ");
                eprintln!(
                    "build cache: {}",
                    if total.is_empty() {
                        "nothing to prune"
                    } else {
                        total.trim()
                    }
                );
            }
        }
        Ok(())
    }
}
