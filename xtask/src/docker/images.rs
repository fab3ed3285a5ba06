//! Images: whether they exist, their fields and sizes, builds from a text Dockerfile, a look
//! inside one, their history, removal and the engine's build cache.

use anyhow::Result;
use xshell::Shell;

use super::{cmd, compose::words};

/// A Go template printing an image label, or nothing: `index` on an image without any label
/// (`.Config.Labels` is nil) fails the whole `docker image inspect`.
pub fn image_label(key: &str) -> String {
    format!("{{{{with .Config.Labels}}}}{{{{index . \"{key}\"}}}}{{{{end}}}}")
}

pub fn image_exists(sh: &Shell, image: &str) -> bool {
    cmd(sh, &words(&["image", "inspect", "--format", "x", image]))
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// One `docker image inspect --format <f>` line per image, or None when some image is missing.
fn image_field(sh: &Shell, format: &str, images: &[String]) -> Option<Vec<String>> {
    if images.is_empty() {
        return Some(vec![]);
    }
    let all = image_rows(sh, format, images).ok()?;
    let lines: Vec<String> = all.lines().map(String::from).collect();
    (lines.len() == images.len()).then_some(lines)
}

/// Sizes in bytes as the engine reports them, in one call (0 where an image is missing).
pub fn image_sizes(sh: &Shell, images: &[String]) -> Vec<u64> {
    match image_field(sh, "{{.Size}}", images) {
        Some(lines) => lines
            .iter()
            .map(|l| l.trim().parse().unwrap_or(0))
            .collect(),
        None => vec![0; images.len()],
    }
}

/// One `--format` line of several images in one call when all exist (the warm case);
/// otherwise one call per image to know which is missing (None).
pub fn image_lines(sh: &Shell, format: &str, images: &[String]) -> Vec<Option<String>> {
    if let Some(lines) = image_field(sh, format, images) {
        return lines.into_iter().map(Some).collect();
    }
    images
        .iter()
        .map(|i| image_field(sh, format, std::slice::from_ref(i)).and_then(|mut l| l.pop()))
        .collect()
}

/// `docker build` of a Dockerfile given as text (no context), tagged `tag`, with labels
/// (`key=value`).
pub fn build_from_stdin(tag: &str, labels: &[String], dockerfile: &str) -> Result<()> {
    let mut args = words(&["build", "--quiet", "-t", tag]);
    for l in labels {
        args.extend(["--label".to_string(), l.clone()]);
    }
    args.push("-".into());
    super::run_with_input(&args, dockerfile.as_bytes(), "docker build")
}

/// A throw-away container of `image` running `sh -c <script>` as root without a network: for
/// looking inside an image (a file scan), never for serving.
pub fn inspect_image_with(sh: &Shell, image: &str, script: &str) -> Result<String> {
    let args = words(&[
        "run",
        "--rm",
        "--user",
        "0",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        image,
        "-c",
        script,
    ]);
    Ok(cmd(sh, &args).quiet().ignore_stderr().read()?)
}

/// The commands that made each layer of an image (`docker history`), unabridged.
pub fn history(sh: &Shell, image: &str) -> Result<String> {
    let args = words(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", image]);
    Ok(cmd(sh, &args).quiet().read()?)
}

/// Pulls an image from its registry; a failure carries docker's stderr.
pub fn pull(sh: &Shell, image: &str) -> Result<()> {
    super::Engine::configured().read(sh, &["pull", "--quiet", image])?;
    Ok(())
}

/// An image's id (`sha256:…`).
pub fn image_id(sh: &Shell, image: &str) -> Result<String> {
    let args = words(&["image", "inspect", "--format", "{{.Id}}", image]);
    Ok(cmd(sh, &args).quiet().read()?.trim().to_string())
}

/// Removes an image tag (and the image when it was the last); a missing one is no error.
pub fn remove_image(sh: &Shell, image: &str) {
    let _ = cmd(sh, &words(&["image", "rm", image]))
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run();
}

/// Removes images by id or name (`force`: also those tagged more than once).
pub fn remove_images(sh: &Shell, images: &[String], force: bool) -> Result<()> {
    let mut args = words(&["image", "rm"]);
    if force {
        args.push("--force".into());
    }
    args.extend(images.iter().cloned());
    cmd(sh, &args).quiet().ignore_stdout().run()?;
    Ok(())
}

/// Every `repository:tag` of a repository on this engine.
pub fn repository_tags(sh: &Shell, repository: &str) -> Result<Vec<String>> {
    let args = words(&[
        "image",
        "ls",
        repository,
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    Ok(cmd(sh, &args)
        .quiet()
        .read()?
        .lines()
        .map(String::from)
        .collect())
}

/// Prunes the engine's build cache down to `keep` (`10GB`); buildx's total line.
pub fn prune_build_cache(sh: &Shell, keep: &str) -> Result<String> {
    let args = words(&["buildx", "prune", "--force", "--keep-storage", keep]);
    let out = cmd(sh, &args).quiet().read()?;
    Ok(out.lines().last().unwrap_or("").replace('\t', " "))
}

/// The ids of the engine's dangling images (untagged: a tag moved to a new build).
pub fn dangling_images(sh: &Shell) -> Result<Vec<String>> {
    let args = words(&[
        "image",
        "ls",
        "-q",
        "--no-trunc",
        "--filter",
        "dangling=true",
    ]);
    Ok(cmd(sh, &args)
        .quiet()
        .read()?
        .split_whitespace()
        .map(String::from)
        .collect())
}

/// One `--format` line per image, in one `docker image inspect` (every image must exist).
pub fn image_rows(sh: &Shell, format: &str, images: &[String]) -> Result<String> {
    let mut args = words(&["image", "inspect", "--format", format]);
    args.extend(images.iter().cloned());
    Ok(cmd(sh, &args).quiet().ignore_stderr().read()?)
}
