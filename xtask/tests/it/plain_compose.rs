//! The phase plan's own setup instruction, "Run `docker compose up`", without the xtask: on a
//! copy of the checkout owned by root and (when the test runs as root) by uid 1000, with no
//! HOST_UID set, `docker compose up --build --wait` returns only once the app answers, and the
//! dev server runs as the owner of the sources, so what it writes into app/ is theirs.

use std::{fs, os::unix::fs::MetadataExt, path::Path, process::Command};

use crate::{
    real_engine::{docker_lines, engine_test, free_port, get},
    support::{RemoveDir, text},
};

/// The base images compose should use here: the stand-ins when this machine has them (no
/// registry), else upstream's defaults.
fn base_images() -> Vec<(&'static str, &'static str)> {
    let standin = "axion-hub-standin/bun:1.4.5";
    let have = Command::new("docker")
        .args(["image", "inspect", standin])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        return vec![];
    }
    vec![
        ("BUN_IMAGE", standin),
        ("POSTGRES_IMAGE", "axion-hub-standin/postgres:17"),
        ("REDIS_IMAGE", "axion-hub-standin/redis:7"),
    ]
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn chown_tree(dir: &Path, uid: u32) {
    let out = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "chown: {}", text(&out));
}

/// One owner: up, the app answers, the server's uid and next-env.d.ts's owner, down.
fn up_as_owner(uid: u32) {
    let dir = crate::support::scratch_project(&format!("plain-{uid}"));
    let _cleanup = RemoveDir(dir.clone());
    if is_root() {
        chown_tree(&dir, uid);
    }
    let project = format!("axion-it-plain-{uid}-{}", std::process::id());
    let image = format!("axion-hub-it:plain-{uid}-{}", std::process::id());
    let port = free_port();
    let compose = |args: &[&str]| {
        Command::new("docker")
            .current_dir(&dir)
            .args(["compose", "-p", &project])
            .args(args)
            .envs(base_images())
            .env("AXION_APP_IMAGE", &image)
            .env("APP_PORT", port.to_string())
            .env("DB_PORT", free_port().to_string())
            .env("REDIS_PORT", free_port().to_string())
            // Behind a TLS-intercepting proxy bun install needs its CA: the host's trust store.
            .env("AXION_EXTRA_CA_FILE", "/etc/ssl/certs/ca-certificates.crt")
            .env_remove("HOST_UID")
            .env_remove("HOST_GID")
            .output()
            .unwrap()
    };
    struct Down<F: Fn(&[&str]) -> std::process::Output>(F, String);
    impl<F: Fn(&[&str]) -> std::process::Output> Drop for Down<F> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "--volumes", "--remove-orphans"]);
            let _ = Command::new("docker")
                .args(["image", "rm", &self.1])
                .output();
        }
    }
    let _down = Down(compose, image.clone());
    let compose = &_down.0;

    let up = compose(&["up", "-d", "--build", "--wait", "--wait-timeout", "180"]);
    assert!(
        up.status.success(),
        "owner {uid}: up --wait:\n{}",
        text(&up)
    );
    // --wait returned: the app answers now, not eventually.
    let (status, body) = get(port, "/").unwrap_or_else(|| panic!("owner {uid}: no answer"));
    assert_eq!(status, 200, "owner {uid}: {body}");
    let server = compose(&[
        "exec",
        "-T",
        "app",
        "sh",
        "-c",
        "grep '^Uid:' /proc/1/status",
    ]);
    let server_uid = text(&server)
        .split_whitespace()
        .nth(1)
        .map(String::from)
        .unwrap_or_default();
    assert_eq!(
        server_uid,
        uid.to_string(),
        "owner {uid}: {}",
        text(&server)
    );
    let written = dir.join("app/next-env.d.ts");
    let owner = fs::metadata(&written)
        .unwrap_or_else(|e| panic!("owner {uid}: the dev server did not write {written:?}: {e}"))
        .uid();
    assert_eq!(owner, uid, "owner {uid}: next-env.d.ts");
    let health = docker_lines(&[
        "inspect",
        "--format",
        "{{.State.Health.Status}}",
        &format!("{project}-app-1"),
    ]);
    assert_eq!(
        health,
        ["healthy"],
        "owner {uid}: the dev app's health check"
    );
    eprintln!(
        "plain compose: sources owned by {uid}: healthy, GET / 200, dev server uid {server_uid}"
    );
}

#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn plain_compose_up_works_for_any_owner_of_the_checkout() {
    let _engine = engine_test();
    if is_root() {
        up_as_owner(0);
        up_as_owner(1000);
    } else {
        // Without root no other owner can be made: the one running the test.
        let uid = fs::metadata("/proc/self").unwrap().uid();
        eprintln!("plain compose: not root, so only the owner {uid} is tried");
        up_as_owner(uid);
    }
}
