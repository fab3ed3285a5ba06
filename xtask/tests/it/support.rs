//! Test helpers: running the xtask binary, and a fake `docker` that logs its argv and follows a
//! script (xshell's `xecho`, jj's fake-editor).

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

pub fn xtask_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xtask"))
}

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `kill -<sig> <pid>`: a signal to a process the test started (or a container's, from the host).
pub fn signal(sig: &str, pid: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid}");
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fake `docker` in its own directory, first on PATH. Each call appends one line to
/// `calls.log`: the argv joined by spaces, then ` | BUN_INSTALL_FLAGS=<value>`. Rules are
/// `(substring of that line, exit code, output)`; the first match wins, and a rule whose
/// substring starts with `once:` applies to its first match only. After them, an empty
/// engine's listings (EMPTY_ENGINE). No match: exit 97, the call named on stderr and in
/// `unexpected.log`.
/// The xtask runs on a scratch copy of the project (`project`: .env.example and app/bun.lock),
/// so what it writes (a repaired lock, secrets) never touches the checkout.
/// An engine with nothing on it, after the test's own rules: its listings are empty, its event
/// stream ends at once (readiness falls back to polling), it names its OS, and cleanup
/// succeeds (a teardown, removing a run's image). Tests that care about those calls assert on
/// `calls()`. Version probes (`buildx version`, `compose version`) answer empty unless a test
/// gives `engine_rules()`.
const EMPTY_ENGINE: [(&str, i32, &str); 11] = [
    ("ps -a", 0, ""),
    ("volume ls ", 0, ""),
    ("network ls ", 0, ""),
    ("image ls ", 0, ""),
    ("inspect ", 0, "[]"),
    ("events --format", 0, ""),
    (
        "info --format {{.OperatingSystem}}",
        0,
        "Debian GNU/Linux 12 (bookworm)\n",
    ),
    (" down --volumes --remove-orphans", 0, ""),
    ("image rm ", 0, ""),
    ("buildx version", 0, ""),
    ("compose version --short", 0, ""),
];

pub struct FakeDocker {
    pub dir: PathBuf,
    pub project: PathBuf,
}

impl FakeDocker {
    pub fn new(name: &str, rules: &[(&str, i32, &str)]) -> FakeDocker {
        // After the test's own rules: an engine with nothing on it answers its listings empty.
        let rules: Vec<(&str, i32, &str)> = rules.iter().copied().chain(EMPTY_ENGINE).collect();
        let dir = std::env::temp_dir().join(format!("xtask-fake-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut script = String::from(
            "#!/usr/bin/env bash\n\
             dir=$(dirname \"$0\")\n\
             line=\"$* | BUN_INSTALL_FLAGS=${BUN_INSTALL_FLAGS:-}\"\n\
             echo \"$line\" >> \"$dir/calls.log\"\n",
        );
        for (i, (pat, code, out)) in rules.into_iter().enumerate() {
            let out_file = dir.join(format!("out{i}"));
            fs::write(&out_file, out).unwrap();
            let (once, pat) = match pat.strip_prefix("once:") {
                Some(p) => (true, p),
                None => (false, pat),
            };
            let guard = if once {
                format!(" && [ ! -e \"$dir/used{i}\" ]")
            } else {
                String::new()
            };
            let mark = if once {
                format!("touch \"$dir/used{i}\"; ")
            } else {
                String::new()
            };
            script.push_str(&format!(
                "if [[ \"$line\" == *{}* ]]{guard}; then {mark}cat \"{}\"; exit {code}; fi\n",
                shell_quote(pat),
                out_file.display()
            ));
        }
        // Strict: a call no rule expects fails loudly, so a test cannot pass on calls it never
        // thought about.
        script.push_str("echo \"fake docker: no rule for: $line\" >&2\necho \"$line\" >> \"$dir/unexpected.log\"\nexit 97\n");
        let bin = dir.join("docker");
        fs::write(&bin, script).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let project = dir.join("project");
        fs::create_dir_all(project.join("app")).unwrap();
        for f in [".env.example", "app/bun.lock"] {
            fs::copy(project_root().join(f), project.join(f)).unwrap();
        }
        FakeDocker { dir, project }
    }

    /// A fake `npm` beside the fake docker: `npm view <pkg> dist.integrity` prints `answer`,
    /// or fails like an offline npm when it is None.
    pub fn npm(&self, answer: Option<&str>) {
        let script = match answer {
            Some(a) => format!("#!/bin/sh\necho '{a}'\n"),
            None => "#!/bin/sh\necho 'npm error network request failed' >&2\nexit 1\n".into(),
        };
        let bin = self.dir.join("npm");
        fs::write(&bin, script).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The healthy-engine answers every scenario starts from.
    pub fn engine_rules() -> Vec<(&'static str, i32, &'static str)> {
        vec![
            ("version --format", 0, "28.2.2|26.1.5|1.45\n"),
            (
                "buildx version",
                0,
                "github.com/docker/buildx 0.13.1 deadbeef\n",
            ),
            ("compose version --short", 0, "2.26.1\n"),
        ]
    }

    /// Changes what rule `i` prints from now on (a stateful world: the engine "restarts").
    pub fn set_output(&self, i: usize, out: &str) {
        fs::write(self.dir.join(format!("out{i}")), out).unwrap();
    }

    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// Runs the xtask with only the fake docker (and the basic system tools) on PATH.
    /// RUST_BACKTRACE=1 as on this project's machines: errors must read cleanly anyway.
    pub fn xtask(&self, args: &[&str]) -> Output {
        self.xtask_with(args, &[])
    }

    pub fn xtask_with(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        Command::new(xtask_bin())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .env("PATH", format!("{}:/usr/bin:/bin", self.dir.display()))
            .env("AXION_IMAGES", "upstream")
            .env("AXION_PROJECT_ROOT", &self.project)
            .env_remove("CI")
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap()
    }
}

impl Drop for FakeDocker {
    /// A call no rule expected fails the test, even when the xtask tolerated its failure.
    fn drop(&mut self) {
        let unexpected = fs::read_to_string(self.dir.join("unexpected.log")).unwrap_or_default();
        let _ = fs::remove_dir_all(&self.dir);
        if !unexpected.is_empty() && !std::thread::panicking() {
            panic!("the fake docker got calls no rule expects:\n{unexpected}");
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Copies a tree, leaving out entries with the given names at any depth.
pub fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst, skip);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A directory removed when the test ends, however it ends.
pub struct RemoveDir(pub PathBuf);
impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The npm clients the tests drive (the devcontainer CLI, puppeteer-core, BullMQ), installed
/// once per lock into `target/it-clients` with `npm ci --ignore-scripts` from the committed
/// xtask/tests/clients lock: exact versions, every tarball checked against its sha512, no
/// install script run. Returns the directory holding `node_modules`.
pub fn npm_clients() -> PathBuf {
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    let src = project_root().join("xtask/tests/clients");
    let dir = project_root().join("target/it-clients");
    let lock = fs::read(src.join("package-lock.json")).unwrap();
    let stamp = dir.join("installed-lock.json");
    if fs::read(&stamp).ok().as_deref() == Some(lock.as_slice()) {
        return dir;
    }
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for f in ["package.json", "package-lock.json"] {
        fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let out = Command::new("npm")
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--silent",
        ])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("npm (Node.js) is needed for the test clients: {e}"));
    assert!(
        out.status.success(),
        "npm ci of the test clients:\n{}",
        text(&out)
    );
    fs::write(&stamp, lock).unwrap();
    dir
}

/// A scratch copy of the project in temp_dir (`xtask-<name>-<pid>`), as a fresh checkout has
/// it: no build output, secrets, `.env` or the xtask's own sources. The caller removes it
/// (`RemoveDir`).
pub fn scratch_project(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let skip = [
        "target",
        ".git",
        "node_modules",
        ".next",
        "secrets",
        ".env",
        "xtask",
    ];
    copy_tree(&project_root(), &dir, &skip);
    dir
}

/// Every mode in a tree as a checkout under `umask` would have made it.
pub fn as_if_checked_out_under(dir: &Path, umask: u32) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let kind = e.file_type().unwrap();
        if kind.is_symlink() {
            continue;
        }
        if kind.is_dir() {
            as_if_checked_out_under(&p, umask);
        }
        let mode = fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode & !umask)).unwrap();
    }
}

pub fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The services a `status --json` report names, sorted (a service once per container).
pub(crate) fn status_services(report: &serde_json::Value) -> Vec<String> {
    let mut services: Vec<String> = report["tasks"]
        .as_array()
        .map(|tasks| {
            tasks
                .iter()
                .filter_map(|t| t["service"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    services.sort();
    services
}
