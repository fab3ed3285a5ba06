//! `cargo xtask clean`: removes what runs that died left (their whole stacks and images), the
//! project's dangling images, and on request the engine's build cache beyond a size. `--dry-run` lists without removing.

use anyhow::Result;
use xshell::Shell;

use crate::{docker, engine, flags, images, reap};

impl flags::Clean {
    pub fn run(self, sh: &Shell) -> Result<()> {
        engine::preflight()?;
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let orphans = reap::find(sh)?;
        if orphans.is_empty() {
            eprintln!("no stack left by a dead run");
        }
        for o in &orphans {
            if !self.dry_run {
                reap::remove(o)?;
            }
            eprintln!("{verb} {}", o.summary());
        }
        self.dangling(sh, verb)?;
        self.old_revisions(sh, verb)?;
        swarm_leftovers(sh);
        if let Some(size) = &self.build_cache {
            self.build_cache(sh, size)?;
        }
        Ok(())
    }

    fn dangling(&self, sh: &Shell, verb: &str) -> Result<()> {
        let dangling = reap::dangling_images(sh)?;
        if dangling.is_empty() {
            return Ok(());
        }
        if !self.dry_run {
            docker::remove_images(sh, &dangling, true)?;
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
        Ok(())
    }

    /// build-prod tags every build with its revision: those of other revisions pile up.
    fn old_revisions(&self, sh: &Shell, verb: &str) -> Result<()> {
        let tags = docker::repository_tags(sh, "axion-hub")?;
        // Without a revision to name (no git, not a checkout), no tag counts as another's.
        let old = match images::known_revision(sh) {
            Some(rev) => images::stale_revision_tags(&tags, &rev),
            None => {
                eprintln!("build-prod tags kept: git cannot name this checkout's revision");
                vec![]
            }
        };
        if old.is_empty() {
            return Ok(());
        }
        if !self.dry_run {
            docker::remove_images(sh, &old, false)?;
        }
        eprintln!(
            "{verb} {} build-prod tag(s) of other revisions: {}",
            old.len(),
            old.join(" ")
        );
        Ok(())
    }

    /// BuildKit cannot tell which cache a project made: this bound is engine-wide, and runs
    /// only because a person asked for it by name.
    fn build_cache(&self, sh: &Shell, size: &str) -> Result<()> {
        eprintln!(
            "build cache: pruning the engine's build cache down to {size} (all projects share it)"
        );
        if self.dry_run {
            return Ok(());
        }
        let total = docker::prune_build_cache(sh, size)?;
        let said = if total.is_empty() {
            "nothing to prune"
        } else {
            total.trim()
        };
        eprintln!("build cache: {said}");
        Ok(())
    }
}

/// On a swarm manager: each stack's secrets and configs that no service needs (listed, not
/// removed: they are the swarm's, and the stack's next `deploy` removes them itself).
fn swarm_leftovers(sh: &Shell) {
    let engine = docker::Engine::configured();
    let manager = crate::swarm::membership(sh, &engine).is_ok_and(|m| m.manager);
    if !manager {
        return;
    }
    let stacks = engine
        .read(sh, &["stack", "ls", "--format", "{{.Name}}"])
        .unwrap_or_default();
    for stack in stacks.lines().map(str::trim).filter(|s| !s.is_empty()) {
        match crate::swarm::prune::unneeded(sh, &engine, stack) {
            Ok(left) if left.is_empty() => {
                eprintln!("swarm stack {stack}: every secret and config is in use")
            }
            Ok(left) => eprintln!(
                "swarm stack {stack} holds what no service needs (its next `cargo xtask deploy --stack {stack}` removes it): {}",
                left.iter()
                    .map(|(kind, name)| format!("{kind} {name}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => eprintln!("swarm stack {stack}: {e:#}"),
        }
    }
}
