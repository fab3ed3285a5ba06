//! Failures a real engine cannot be made to produce on demand, through a scripted fake docker.

use crate::support::{FakeDocker, text};

fn rules(extra: &[(&'static str, i32, &'static str)]) -> Vec<(&'static str, i32, &'static str)> {
    let mut r = extra.to_vec();
    r.extend(FakeDocker::engine_rules());
    r
}

#[test]
fn registry_rate_limit_is_named_and_the_stack_is_torn_down() {
    let fake = FakeDocker::new(
        "ratelimit",
        &rules(&[
            (
                " up --detach",
                18,
                "Error response from daemon: toomanyrequests: You have reached your pull rate limit.\n",
            ),
            (" build", 0, ""),
            (" down --volumes", 0, ""),
        ]),
    );
    let out = fake.xtask(&["verify"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("registry rate limit (toomanyrequests)"),
        "{all}"
    );
    assert!(
        all.contains("--standin"),
        "points to the stand-in images: {all}"
    );
    let calls = fake.calls();
    let up = calls
        .iter()
        .position(|c| c.contains(" up --detach"))
        .expect("up ran");
    let down = calls
        .iter()
        .position(|c| c.contains(" down --volumes --remove-orphans"))
        .expect("teardown ran");
    assert!(down > up, "{calls:#?}");
    assert!(
        calls[down].contains("-p axion-verify-dev-"),
        "tears down only its own project: {}",
        calls[down]
    );
}

#[test]
fn unreachable_registry_points_to_the_standins() {
    let fake = FakeDocker::new(
        "offline",
        &rules(&[
            (
                " up --detach",
                1,
                "Error response from daemon: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host\n",
            ),
            (" build", 0, ""),
            (" down --volumes", 0, ""),
        ]),
    );
    let out = fake.xtask(&["verify", "--prod"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("no container registry reachable"), "{all}");
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.contains("docker-compose.prod.yml") && c.contains(" down --volumes"))
    );
}

const NATIVE_INTEGRITY: &str = "#9 [deps 2/2] RUN bun install --frozen-lockfile\n\
    #9 2.1 error: Integrity check failed for tarball: @biomejs/cli-linux-x64-musl\n\
    #9 2.1 error: IntegrityCheckFailed extracting tarball from @biomejs/cli-linux-x64-musl\n\
    #9 ERROR: process \"/bin/sh -c bun install\" did not complete successfully: exit code: 1\n";

fn lock_integrity(fake: &FakeDocker, pkg: &str) -> String {
    let lock = std::fs::read_to_string(fake.project.join("app/bun.lock")).unwrap();
    let line = lock
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("\"{pkg}\": [")))
        .unwrap()
        .to_string();
    line.split('"')
        .find(|s| s.starts_with("sha512-"))
        .unwrap()
        .to_string()
}

/// A scenario of the lockfile row: a dev build whose first `bun install` fails its integrity
/// check for a package the (fake) registry answers `registry` for, then `up` fails (the test
/// stops there). Returns the fake and how many builds ran.
fn lock_scenario(name: &str, registry: &str) -> FakeDocker {
    // `verify` builds every service (`build |`), `dev` the app (`build app |`).
    let fake = FakeDocker::new(
        name,
        &rules(&[
            (
                "once: build | BUN_INSTALL_FLAGS=--frozen-lockfile",
                1,
                NATIVE_INTEGRITY,
            ),
            (
                "once: build app | BUN_INSTALL_FLAGS=--frozen-lockfile",
                1,
                NATIVE_INTEGRITY,
            ),
            // After a repair (said yes to), dev's second build succeeds.
            (" build app |", 0, ""),
            (" up --detach", 1, "boom\n"),
        ]),
    );
    fake.npm(Some(registry));
    fake
}

fn builds(fake: &FakeDocker) -> Vec<String> {
    fake.calls()
        .into_iter()
        .filter(|c| c.contains(" build |") || c.contains(" build app |"))
        .collect()
}

/// Free ports for `dev` (it refuses taken ones before building).
fn dev_ports() -> Vec<(&'static str, String)> {
    ["APP_PORT", "DB_PORT", "REDIS_PORT"]
        .into_iter()
        .map(|k| (k, crate::real_engine::free_port().to_string()))
        .collect()
}

/// `dev --detach --repair-lock` at a terminal (util-linux `script` gives it a pty) answering
/// `answer`.
fn dev_repair_at_a_terminal(fake: &FakeDocker, answer: &str) -> std::process::Output {
    use std::io::Write;
    let line = format!(
        "{} dev --detach --repair-lock",
        crate::support::xtask_bin().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .envs(dev_ports())
        .env("PATH", format!("{}:/usr/bin:/bin", fake.dir.display()))
        .env("AXION_IMAGES", "upstream")
        .env("AXION_PROJECT_ROOT", &fake.project)
        .env_remove("CI")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs a command at a terminal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Hostile table, row 1: the lock is never rewritten by `verify`, `ci`'s builds or under
/// CI=true, even when the registry contradicts it (a tampering mirror or TLS proxy answers that
/// query too); only `dev --repair-lock` at a terminal, after showing the change and a yes.
#[test]
fn lock_is_rewritten_only_by_a_person_at_a_terminal() {
    const REGISTRY: &str = "sha512-REGISTRY/value==";
    const PKG: &str = "@biomejs/cli-linux-x64-musl";

    let fake = lock_scenario("lock-verify", REGISTRY);
    let before = lock_integrity(&fake, PKG);
    let out = fake.xtask(&["verify"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert_eq!(builds(&fake).len(), 1, "verify: no second build");
    assert_eq!(lock_integrity(&fake, PKG), before, "verify: lock untouched");
    assert!(
        all.contains("the lock entry is wrong") && all.contains("--repair-lock"),
        "{all}"
    );

    let fake = lock_scenario("lock-ci", REGISTRY);
    let mut env = dev_ports();
    env.push(("CI", "true".into()));
    let out = fake.xtask_with(&["dev", "--detach", "--repair-lock"], &env);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert_eq!(
        lock_integrity(&fake, PKG),
        before,
        "CI=true: lock untouched"
    );
    assert!(all.contains("no terminal to ask at"), "{all}");
    assert!(
        all.contains(&format!("+ {REGISTRY}")),
        "shows the change: {all}"
    );

    let fake = lock_scenario("lock-no", REGISTRY);
    let out = dev_repair_at_a_terminal(&fake, "n");
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert_eq!(
        lock_integrity(&fake, PKG),
        before,
        "answered no: lock untouched"
    );
    assert!(all.contains("Write this to app/bun.lock? [y/N]"), "{all}");

    let fake = lock_scenario("lock-yes", REGISTRY);
    let out = dev_repair_at_a_terminal(&fake, "y");
    let all = text(&out);
    assert_eq!(lock_integrity(&fake, PKG), REGISTRY, "answered yes: {all}");
    let b = builds(&fake);
    assert_eq!(b.len(), 2, "one failed build, one after the repair: {b:#?}");
    assert!(
        b.iter().all(|c| !c.contains("--no-verify")),
        "checks stay on: {b:#?}"
    );

    let fake = lock_scenario("lock-sha1", "sha1-abcdefghijklmnopqrstuvwxyz0=");
    let out = dev_repair_at_a_terminal(&fake, "y");
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert_eq!(
        lock_integrity(&fake, PKG),
        before,
        "a sha1 answer: lock untouched"
    );
    assert!(all.contains("sha1 is broken"), "{all}");
}

#[test]
fn no_repair_when_the_registry_agrees_or_cannot_be_asked() {
    for (name, npm) in [("agrees", true), ("offline", false)] {
        let fake = FakeDocker::new(
            &format!("integrity-{name}"),
            &rules(&[(" build |", 1, NATIVE_INTEGRITY)]),
        );
        let lock = lock_integrity(&fake, "@biomejs/cli-linux-x64-musl");
        fake.npm(npm.then_some(lock.as_str()));
        let out = fake.xtask(&["verify"]);
        let all = text(&out);
        assert!(!out.status.success(), "{all}");
        let builds = fake
            .calls()
            .iter()
            .filter(|c| c.contains(" build |"))
            .count();
        assert_eq!(builds, 1, "{name}: no second build");
        assert_eq!(
            lock_integrity(&fake, "@biomejs/cli-linux-x64-musl"),
            lock,
            "{name}: lock untouched"
        );
        let want = if npm {
            "the download was altered"
        } else {
            "could not ask the registry"
        };
        assert!(all.contains(want), "{name}: {all}");
    }
}

#[test]
fn prod_build_never_turns_integrity_off_by_itself() {
    let fake = FakeDocker::new(
        "integrity-prod",
        &rules(&[(" build |", 1, NATIVE_INTEGRITY)]),
    );
    let out = fake.xtask(&["verify", "--prod"]);
    let all = text(&out);
    assert!(!out.status.success());
    let builds = fake
        .calls()
        .into_iter()
        .filter(|c| c.contains(" build |"))
        .count();
    assert_eq!(builds, 1, "no retry for prod");
    assert!(
        all.contains("IntegrityCheckFailed") || all.contains("integrity check"),
        "{all}"
    );
    assert!(
        all.contains("--no-verify \"<reason>\""),
        "says how a person can accept the risk: {all}"
    );
}

#[test]
fn prod_no_verify_needs_and_records_a_reason() {
    let fake = FakeDocker::new(
        "integrity-reason",
        &rules(&[(" up --detach", 1, "boom\n"), (" build |", 0, "")]),
    );
    let out = fake.xtask(&[
        "verify",
        "--prod",
        "--no-verify",
        "mirror re-packs tarballs, INC-42",
    ]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    let builds: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.contains(" build |"))
        .collect();
    assert!(builds[0].contains("--no-verify"), "{builds:#?}");
    assert!(
        all.contains("reason: mirror re-packs tarballs, INC-42"),
        "{all}"
    );
}

#[test]
fn missing_buildx_and_compose_are_named_with_the_fix() {
    let fake = FakeDocker::new(
        "nobuildx",
        &[
            (
                "buildx version",
                1,
                "docker: 'buildx' is not a docker command.\n",
            ),
            ("version --format", 0, "28.2.2|26.1.5|1.45\n"),
        ],
    );
    let out = fake.xtask(&["verify"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("docker buildx is missing") && all.contains("docker-buildx"),
        "{all}"
    );
    assert!(
        fake.calls().iter().all(|c| !c.contains(" up ")),
        "nothing started"
    );

    let fake = FakeDocker::new(
        "nocompose",
        &[
            (
                "compose version",
                1,
                "docker: 'compose' is not a docker command.\n",
            ),
            ("buildx version", 0, "github.com/docker/buildx 0.13.1 x\n"),
            ("version --format", 0, "28.2.2|26.1.5|1.45\n"),
        ],
    );
    let out = fake.xtask(&["build-prod"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("Compose v2 (`docker compose`) is missing"),
        "{all}"
    );
}

#[test]
fn engine_down_is_named_with_the_fix() {
    let fake = FakeDocker::new(
        "nodaemon",
        &[(
            "version --format",
            1,
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n",
        )],
    );
    let out = fake.xtask(&["doctor"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("FAIL") && all.contains("Cannot connect to the Docker daemon"),
        "{all}"
    );
    let out = fake.xtask(&["doctor", "--json"]);
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["verdict"], "fail");
    let engine = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "engine")
        .expect("an engine check");
    assert_eq!(engine["status"], "fail");
}

#[test]
fn dry_run_runs_nothing() {
    let fake = FakeDocker::new("dryrun", &FakeDocker::engine_rules());
    let out = fake.xtask(&[
        "verify",
        "--dry-run",
        "--prod",
        "--upstream",
        "--timeout-http=5",
    ]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        fake.calls().is_empty(),
        "docker was called: {:#?}",
        fake.calls()
    );
    for want in [
        "compose -f docker-compose.prod.yml",
        " build",
        " up --detach --no-build",
        " down --volumes --remove-orphans",
        "docker events",
        "within 5s",
    ] {
        assert!(all.contains(want), "{want} missing from the plan:\n{all}");
    }
}

#[test]
fn bad_arguments_are_refused_before_anything_runs() {
    let fake = FakeDocker::new("badargs", &FakeDocker::engine_rules());
    let out = fake.xtask(&["verify", "--timeout-healthy", "soon"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("expected a number of seconds"));
    let out = fake.xtask(&["build-prod", "--stage", "prod"]);
    assert!(text(&out).contains("unknown stage `prod`"));
    assert!(fake.calls().is_empty());
    let out = fake.xtask(&["verify", "--timeout-htp", "5"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("did you mean `--timeout-http`?"),
        "{}",
        text(&out)
    );
    assert!(fake.calls().is_empty());
    let help = fake.xtask(&[]);
    for cmd in ["dev", "build-prod", "verify", "down", "doctor"] {
        assert!(
            text(&help).contains(&format!("  {cmd} ")),
            "help lists {cmd}"
        );
    }
}

#[test]
fn command_help_prints_that_commands_options_and_exits_0() {
    let fake = FakeDocker::new("help", &FakeDocker::engine_rules());
    let out = fake.xtask(&["verify", "--help"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("Error") && !all.contains("error:"), "{all}");
    for want in [
        "cargo xtask verify [options]",
        "--timeout-http <SECS>",
        "--json",
        "--standin",
    ] {
        assert!(all.contains(want), "{want}:\n{all}");
    }
    assert!(!all.contains("--volumes"), "only verify's options: {all}");
    assert!(fake.calls().is_empty());
}

#[test]
fn errors_read_cleanly_even_with_rust_backtrace_set() {
    let fake = FakeDocker::new(
        "cleanerr",
        &[(
            "version --format",
            1,
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n",
        )],
    );
    let out = fake.xtask(&["verify"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: the Docker engine does not answer"),
        "{err}"
    );
    assert!(
        !err.contains("Stack backtrace") && !err.contains("Caused by:") && !err.contains("Error:"),
        "{err}"
    );
}

#[test]
fn prod_refuses_a_published_or_short_secret_before_building() {
    let fake = FakeDocker::new("weak-secret", &FakeDocker::engine_rules());
    let secrets = fake.project.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("postgres_password"), "axion-dev-password\n").unwrap();
    let out = fake.xtask(&["verify", "--prod"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("postgres_password holds a password published in .env.example"),
        "{all}"
    );
    assert!(
        fake.calls()
            .iter()
            .all(|c| !c.contains(" build") && !c.contains(" up ")),
        "nothing built or started: {:#?}",
        fake.calls()
    );
    // The missing ones were made meanwhile: 256 random bits each, in a 0700 directory.
    let made = std::fs::read_to_string(secrets.join("app_db_password")).unwrap();
    assert_eq!(made.len(), 43, "{made:?}");
    std::fs::write(secrets.join("postgres_password"), "short").unwrap();
    let all = text(&fake.xtask(&["verify", "--prod"]));
    assert!(all.contains("shorter than 16 characters"), "{all}");
}
