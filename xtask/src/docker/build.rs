//! Image builds as the docker CLI spells them: one `docker build` (typed), `buildx bake` of a
//! bake file, and `docker import` of a root filesystem stream. Callers say what to build; the
//! argv is made here.

use std::path::Path;

use super::{compose::words, expr};

/// One `docker build`.
#[derive(Debug, Clone, Default)]
pub struct Build {
    /// `-f`: the Dockerfile, when not `<context>/Dockerfile`.
    pub file: Option<String>,
    pub target: Option<String>,
    pub tags: Vec<String>,
    pub build_args: Vec<(String, String)>,
    /// `--secret` specs (`id=extra_ca,src=/path`): files a RUN step mounts, never in a layer.
    pub secrets: Vec<String>,
    pub labels: Vec<String>,
    pub no_cache: bool,
    pub pull: bool,
    /// `--progress=plain`: a log a person (and `known_errors`) can read.
    pub plain_progress: bool,
    pub context: String,
}

impl Build {
    pub fn argv(&self) -> Vec<String> {
        let mut v = words(&["build"]);
        let flag = |v: &mut Vec<String>, f: &str, x: String| v.extend([f.to_string(), x]);
        if self.plain_progress {
            v.push("--progress=plain".into());
        }
        for (on, f) in [(self.no_cache, "--no-cache"), (self.pull, "--pull")] {
            if on {
                v.push(f.into());
            }
        }
        if let Some(f) = &self.file {
            flag(&mut v, "-f", f.clone());
        }
        if let Some(t) = &self.target {
            flag(&mut v, "--target", t.clone());
        }
        for t in &self.tags {
            flag(&mut v, "-t", t.clone());
        }
        for (k, val) in &self.build_args {
            flag(&mut v, "--build-arg", format!("{k}={val}"));
        }
        for s in &self.secrets {
            flag(&mut v, "--secret", s.clone());
        }
        for l in &self.labels {
            flag(&mut v, "--label", l.clone());
        }
        v.push(self.context.clone());
        v
    }

    /// The build as a long-running child (its caller logs and times it).
    pub fn expr(&self) -> duct::Expression {
        expr(&self.argv())
    }
}

/// `docker buildx bake` of a bake file's `targets`, as a long-running child.
pub fn bake(file: &Path, targets: &[&str]) -> duct::Expression {
    let mut argv = words(&["buildx", "bake", "--progress=plain", "-f"]);
    argv.push(file.display().to_string());
    argv.extend(targets.iter().map(|s| s.to_string()));
    expr(&argv)
}

/// `docker import` of a root filesystem on stdin as `image`, with `changes` (`CMD …`, `ENV …`).
pub fn import(image: &str, changes: &[&str]) -> duct::Expression {
    let mut argv = words(&["import"]);
    for c in changes {
        argv.extend(["--change".to_string(), c.to_string()]);
    }
    argv.extend(["-".to_string(), image.to_string()]);
    expr(&argv)
}
