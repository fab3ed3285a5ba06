//! The second release the proof rolls out: the user's app rebuilt with a change to every page's
//! client code and an id of its own, so that, as in a real release, its chunk hashes, BUILD_ID
//! and deploymentId differ from the first release's. The change is an `instrumentation-client`
//! module (Next.js runs it in every page before hydration), made or appended to, so it needs
//! nothing of the demo. Built exactly as the first release (a compose build of the prod file:
//! the same secrets, base images and lockfile policy) from a copy of app/ under target/xtask,
//! with the first release's build id and `-2`.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::{
    docker,
    integrity::Policy,
    lifecycle,
    paths::{log_path, work_dir},
    stack::{Stack, StackKind},
};

/// What the copy leaves out: what app/.dockerignore keeps out of any build anyway.
const SKIP: [&str; 3] = ["node_modules", ".next", ".git"];
const MARK: &str = "\n// Added by `cargo xtask verify --swarm` to its copy: the second release's change.\n\
                    globalThis.__axionProofRelease = 2;\n";

/// The image built and how long its build took.
type Built = (String, Duration);

/// The second release's image tag.
pub fn tag(stack: &Stack) -> String {
    format!("{}-second", stack.app_image())
}

/// The second release, built in the background (beside the cluster's start and the first
/// deploy, which mostly wait) until the update needs it.
pub struct Pending {
    handle: Mutex<Option<JoinHandle<Result<Built>>>>,
    done: OnceLock<Result<Built, String>>,
}

impl Pending {
    /// `first`: the first release's image, whose build id the second's extends.
    pub fn start(stack: &Stack, policy: Policy, timeout: Duration, first: &str) -> Pending {
        let (stack, first) = (stack.clone(), first.to_string());
        let handle = std::thread::spawn(move || {
            let t = Instant::now();
            let sh = Shell::new()?;
            sh.change_dir(crate::util::project_root());
            let image = build(&sh, &stack, &policy, timeout, &first)?;
            Ok((image, t.elapsed()))
        });
        Pending {
            handle: Mutex::new(Some(handle)),
            done: OnceLock::new(),
        }
    }

    /// Its image and how long its build took, once built.
    pub fn wait(&self) -> Result<Built> {
        let done = self.done.get_or_init(|| {
            let handle = self.handle.lock().unwrap().take();
            match handle.map(JoinHandle::join) {
                Some(Ok(r)) => r.map_err(|e| format!("{e:#}")),
                Some(Err(_)) => Err("the second release's build panicked".into()),
                None => Err("the second release's build was already taken".into()),
            }
        });
        done.clone().map_err(|e| anyhow::anyhow!(e))
    }
}

/// Waits for the build, whatever happened: a thread left running would make its image after
/// the cluster's teardown.
impl Drop for Pending {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// Builds the second release's runner; its image tag.
fn build(
    sh: &Shell,
    stack: &Stack,
    policy: &Policy,
    timeout: Duration,
    first: &str,
) -> Result<String> {
    let root = crate::util::project_root();
    let dir = work_dir(&root, &format!("{}-second", stack.project()));
    let _ = fs::remove_dir_all(&dir);
    let app = dir.join("app");
    copy_tree(&root.join("app"), &app).context("copying app/ for the second release")?;
    fs::create_dir_all(dir.join("docker"))?;
    fs::copy(
        root.join("docker/Dockerfile"),
        dir.join("docker/Dockerfile"),
    )?;
    change_client_code(&app)?;

    let first_id = docker::inspect_image_with(sh, first, "cat /app/.next/BUILD_ID")
        .with_context(|| format!("reading {first}'s build id"))?;
    let image = tag(stack);
    let mut compose = stack.compose.clone();
    compose
        .env
        .retain(|(k, _)| !matches!(k.as_str(), "AXION_APP_IMAGE" | "AXION_BUILD_ID"));
    compose.env.extend([
        ("AXION_APP_IMAGE".to_string(), image.clone()),
        (
            "AXION_BUILD_ID".to_string(),
            format!("{}-2", first_id.trim()),
        ),
        ("AXION_APP_CONTEXT".to_string(), app.display().to_string()),
    ]);
    let log = log_path(&root, &format!("{}-second-build.log", stack.project()));
    let built = lifecycle::build(
        sh,
        &compose,
        StackKind::Prod,
        policy,
        &["app"],
        &log,
        timeout,
    );
    let _ = fs::remove_dir_all(&dir);
    built.context("building the second release")?;
    Ok(image)
}

/// Appends to the app's `instrumentation-client` module, or makes one beside its `app/`
/// directory (the project root, or `src/`).
fn change_client_code(app: &Path) -> Result<()> {
    let base = if app.join("src/app").is_dir() {
        app.join("src")
    } else {
        app.to_path_buf()
    };
    let existing = ["ts", "js", "mjs", "tsx", "jsx"]
        .iter()
        .map(|ext| base.join(format!("instrumentation-client.{ext}")))
        .find(|p| p.is_file());
    let file = existing.unwrap_or_else(|| base.join("instrumentation-client.js"));
    let mut text = fs::read_to_string(&file).unwrap_or_default();
    text.push_str(MARK);
    fs::write(&file, text).with_context(|| format!("writing {}", file.display()))
}

fn copy_tree(from: &Path, to: &PathBuf) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if SKIP.iter().any(|s| name == *s) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_goes_beside_the_app_directory() {
        let d = std::env::temp_dir().join(format!("xtask-second-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("app")).unwrap();
        change_client_code(&d).unwrap();
        let made = fs::read_to_string(d.join("instrumentation-client.js")).unwrap();
        assert!(made.contains("__axionProofRelease = 2"));

        // A src/ layout with its own module: appended to, nothing else made.
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("src/app")).unwrap();
        fs::write(d.join("src/instrumentation-client.ts"), "init();\n").unwrap();
        change_client_code(&d).unwrap();
        let text = fs::read_to_string(d.join("src/instrumentation-client.ts")).unwrap();
        assert!(text.starts_with("init();\n") && text.contains("__axionProofRelease"));
        assert!(!d.join("instrumentation-client.js").exists());
        fs::remove_dir_all(&d).unwrap();
    }
}
