//! The one start-up every command that builds or runs a stack goes through, in one order: the
//! engine (checked, or installed where the command may install it), the reaper (what dead runs
//! left), the env file, the base images (stand-ins built when no registry answers), the
//! stack's prepared files. No command re-assembles it; every build's install policy is
//! `integrity::Policy::for_run` (cold under `CI=true`).

use std::path::PathBuf;

use anyhow::Result;
use xshell::Shell;

use crate::{
    engine::{self, Versions},
    env_file::EnvSource,
    images::{self, ImageChoice, ImageSet, Resolution},
    install,
    stack::{StackKind, prepare_files},
};

/// What a command needs before it starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// Install and start the engine when there is none (`dev`, `ci`: what a person or CI
    /// types first on a bare machine); otherwise a missing engine is an error naming the fix.
    pub install: bool,
    /// The images flag (`--standin`, `--upstream`, auto).
    pub images: ImageChoice,
    /// The stack whose files (secrets, the app's env file) are prepared.
    pub files: Option<StackKind>,
}

/// Where a command starts from.
pub struct Start {
    pub root: PathBuf,
    pub env: EnvSource,
    pub versions: Versions,
    pub images: Resolution,
}

impl Start {
    pub fn new(sh: &Shell, needs: Needs) -> Result<Start> {
        let root = sh.current_dir();
        let env = EnvSource::resolve(&root)?;
        let versions = if needs.install {
            install::ensure(sh)?
        } else {
            engine::preflight()?
        };
        crate::reap::reap(sh);
        let images = choose_images(sh, needs.images, &env)?;
        if let Some(kind) = needs.files {
            prepare_files(&root, kind, &env)?;
        }
        Ok(Start {
            root,
            env,
            versions,
            images,
        })
    }

    pub fn set(&self) -> &ImageSet {
        &self.images.set
    }
}

/// The base images a run uses, resolved from the flag, AXION_IMAGES and what answers; the
/// stand-ins are built (once) when they are the choice.
pub fn choose_images(sh: &Shell, flag: ImageChoice, env: &EnvSource) -> Result<Resolution> {
    let r = images::resolve_here(sh, flag, env)?;
    if r.set.standin {
        crate::standin::ensure(sh)?;
    }
    Ok(r)
}
