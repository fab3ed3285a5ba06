//! Every path the xtask writes under `target/xtask/` (git-ignored, per checkout), in one place.

use std::path::{Path, PathBuf};

/// `target/xtask/<name>`: a command's own working directory or file.
pub fn work_dir(root: &Path, name: &str) -> PathBuf {
    root.join("target/xtask").join(name)
}

/// `target/xtask/logs/<name>`: full build and run logs a failure points at.
pub fn log_path(root: &Path, name: &str) -> PathBuf {
    work_dir(root, "logs").join(name)
}

/// The app's own variables, as compose reads them (`app_env`).
pub fn app_env(root: &Path) -> PathBuf {
    work_dir(root, "app.env")
}

/// The extra CA certificates builds trust (`host`).
pub fn extra_ca(root: &Path) -> PathBuf {
    work_dir(root, "extra-ca.pem")
}

/// A rendered swarm stack file (`deploy`).
pub fn stack_file(root: &Path, stack: &str) -> PathBuf {
    work_dir(root, "deploy").join(format!("{stack}.stack.json"))
}

/// The npm clients the tests and the swarm proof's browser tab drive (puppeteer-core, the
/// devcontainer CLI, BullMQ), installed from xtask/tests/clients' lock.
pub fn test_clients(root: &Path) -> PathBuf {
    root.join("target/it-clients")
}
