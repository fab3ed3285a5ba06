//! The fault table's rows a real engine cannot produce on demand (README: "Fault table"),
//! through the scripted fake docker: an engine restart under `dev`, a full disk during a build,
//! a malformed `.env`.

use std::{
    io::{Read, Write},
    net::TcpListener,
    time::Duration,
};

use crate::support::{FakeDocker, signal, text};

fn container(service: &str, status: &str, health: &str, exit: i64) -> String {
    format!(
        r#"{{"Id":"id-{service}","Name":"/p-{service}-1","State":{{"Status":"{status}","ExitCode":{exit},"OOMKilled":false,"Health":{{"Status":"{health}","Log":[]}}}},"Config":{{"Image":"i","Labels":{{"com.docker.compose.service":"{service}"}}}},"HostConfig":{{"Memory":0,"RestartPolicy":{{"Name":"no"}}}}}}"#
    )
}

fn stack(status: &str, exit: i64) -> String {
    let health = if status == "running" { "healthy" } else { "" };
    format!(
        "[{},{},{}]",
        container("app", status, "", exit),
        container("db", status, health, exit),
        container("redis", status, health, exit)
    )
}

/// A stand-in app on a free port: 200 and a healthy body for every request.
fn serve_healthy() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let body = r#"{"status":"ok","checks":{"db":{"ok":true,"ms":1},"redis":{"ok":true,"ms":1}},"failed":[]}"#;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Row 5: the engine restarts while `dev` follows the logs. dev notices the log stream end,
/// waits for the engine, sees the stack stopped with it, and exits non-zero saying how to go on.
#[test]
fn row5_engine_restart_under_dev_is_named_with_how_to_go_on() {
    let running = stack("running", 0);
    let mut rules: Vec<(&str, i32, &str)> = vec![
        (
            "logs --follow",
            1,
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n",
        ),
        (
            "once:info --format {{.ServerVersion}}",
            1,
            "Cannot connect to the Docker daemon\n",
        ),
        ("ps -aq", 0, "id-app\nid-db\nid-redis\n"),
        ("inspect id-", 0, &running),
        (" build app", 0, ""),
        (" up --detach", 0, ""),
        ("info --format {{.ServerVersion}}", 0, "26.1.5\n"),
    ];
    rules.extend(FakeDocker::engine_rules());
    let fake = FakeDocker::new("engine-restart", &rules);
    let app = serve_healthy();
    let env = [
        ("APP_PORT", app.to_string()),
        ("DB_PORT", free_port().to_string()),
        ("REDIS_PORT", free_port().to_string()),
    ];
    let watcher = {
        let fake_dir = fake.dir.clone();
        std::thread::spawn(move || {
            // When dev starts following logs, the engine "restarts": the stack is stopped.
            for _ in 0..600 {
                let calls = std::fs::read_to_string(fake_dir.join("calls.log")).unwrap_or_default();
                if calls.contains("logs --follow") {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            false
        })
    };
    let handle = {
        let fake_ptr = &fake;
        std::thread::scope(|scope| {
            let run = scope.spawn(|| fake_ptr.xtask_with(&["dev"], &env));
            if watcher.join().unwrap() {
                fake_ptr.set_output(3, &stack("exited", 255));
            }
            run.join().unwrap()
        })
    };
    let all = text(&handle);
    assert!(!handle.status.success(), "{all}");
    assert!(all.contains("dev stack ready"), "it got that far: {all}");
    assert!(
        all.contains("the Docker engine stopped answering"),
        "{all}\n{:#?}\n{}",
        fake.calls(),
        std::fs::read_to_string(fake.dir.join("docker")).unwrap()
    );
    assert!(all.contains("the Docker engine answers again"), "{all}");
    assert!(
        all.contains("the dev stack stopped underneath `dev`")
            && all.contains("`cargo xtask dev` starts it again"),
        "{all}"
    );
}

/// Row 6: the disk fills during a build: named, non-zero, the run's stack torn down.
#[test]
fn row6_a_full_disk_during_the_build_is_named() {
    let mut rules = vec![(
        " build |",
        1,
        "#12 [deps 2/2] RUN bun install\n#12 ERROR: failed to copy files: write /var/lib/docker/overlay2/x/diff/app/node_modules/next/dist/a.js: no space left on device\n",
    )];
    rules.extend(FakeDocker::engine_rules());
    let fake = FakeDocker::new("diskfull", &rules);
    let out = fake.xtask(&["verify"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("cause: the disk is full"), "{all}");
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.contains(" down --volumes --remove-orphans")),
        "teardown ran"
    );
    assert!(
        fake.calls().iter().all(|c| !c.contains(" up ")),
        "nothing started"
    );
}

/// Row 7: a malformed `.env`: each fault names its line; nothing starts.
#[test]
fn row7_a_malformed_env_file_names_the_line() {
    for (name, env, want) in [
        (
            "badport",
            "APP_PORT=30o0\n",
            "APP_PORT=30o0 is not a port number (1-65535): fix line 1 of .env",
        ),
        (
            "quote",
            "APP_PORT=3000\nPOSTGRES_PASSWORD=\"unterminated\n",
            "line 2: the value of `POSTGRES_PASSWORD` opens a quote that never closes",
        ),
        (
            "typo",
            "# mine\nPOSTGRES_PASWORD=secret-but-misspelt\n",
            "line 2: `POSTGRES_PASWORD` is not a variable the stacks read; did you mean `POSTGRES_PASSWORD`?",
        ),
    ] {
        let fake = FakeDocker::new(&format!("env-{name}"), &FakeDocker::engine_rules());
        std::fs::write(fake.project.join(".env"), env).unwrap();
        let out = fake.xtask(&["dev", "--detach"]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {all}");
        assert!(all.contains(want), "{name}: {all}");
        assert!(
            fake.calls()
                .iter()
                .all(|c| !c.contains(" up ") && !c.contains(" build")),
            "{name}: nothing built or started"
        );
        assert_eq!(
            std::fs::read_to_string(fake.project.join(".env")).unwrap(),
            env,
            "{name}: .env untouched"
        );
    }
}

/// Teardown under further signals: the second Ctrl-C says what is still being removed, the
/// third abandons it and prints the exact command that finishes it. (A fake `compose down`
/// that hangs: a real one is too quick to interrupt on demand.)
#[test]
fn further_ctrl_c_during_teardown_reports_then_abandons_with_the_command() {
    use std::process::{Command, Stdio};
    let mut rules = vec![
        (" up --detach", 1, "boom\n"),
        (" down --volumes --remove-orphans", 0, ""),
        (" build |", 0, ""),
    ];
    rules.extend(FakeDocker::engine_rules());
    let fake = FakeDocker::new("teardown-signals", &rules);
    // Rule 1 prints a FIFO: `cat` blocks until the test writes to it, so `down` hangs.
    let fifo = fake.dir.join("out1");
    std::fs::remove_file(&fifo).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let child = Command::new(crate::support::xtask_bin())
        .arg("verify")
        .env("PATH", format!("{}:/usr/bin:/bin", fake.dir.display()))
        .env("AXION_IMAGES", "upstream")
        .env("AXION_PROJECT_ROOT", &fake.project)
        .env_remove("CI")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let calls = fake.dir.join("calls.log");
    let down_started = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .contains(" down --volumes")
    });
    assert!(down_started, "teardown never started");
    let pid = child.id().to_string();
    signal("INT", &pid);
    std::thread::sleep(Duration::from_millis(300));
    signal("INT", &pid);
    let out = child.wait_with_output().unwrap();
    // Release the hung fake `down` (its own process group kept it alive).
    let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("still removing axion-verify-dev-"), "{err}");
    assert!(err.contains("teardown abandoned"), "{err}");
    assert!(
        err.contains("docker compose -f docker-compose.yml -p axion-verify-dev-")
            && err.contains("down --volumes --remove-orphans"),
        "prints the command: {err}"
    );
}

/// Build failures Next.js-in-Docker users meet, each named with its fix, the build's tail
/// shown once.
#[test]
fn known_build_failures_are_named_with_their_fix() {
    for (name, output, want) in [
        (
            "font",
            "#14 [builder 4/4] RUN bun --bun run build\n#14 2.1 Failed to fetch `Geist` from Google Fonts.\n#14 ERROR: process did not complete successfully: exit code: 1\n",
            "use next/font/local",
        ),
        (
            "prerender",
            "#14 3.2 Error occurred prerendering page \"/\". Read more: https://nextjs.org/docs/messages/prerender-error\n#14 3.2 Error: DATABASE_URL is not set\n",
            "`await connection()`",
        ),
        (
            "frozen",
            "#9 [deps 2/2] RUN bun install\n#9 0.4 error: lockfile had changes, but lockfile is frozen\n",
            "commit app/bun.lock",
        ),
    ] {
        let mut rules = vec![(" build |", 1, output)];
        rules.extend(FakeDocker::engine_rules());
        let fake = FakeDocker::new(&format!("buildfail-{name}"), &rules);
        let out = fake.xtask(&["verify", "--prod"]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {all}");
        assert!(all.contains(want), "{name}: {all}");
        let tail_line = output.lines().last().unwrap();
        assert_eq!(
            all.matches(tail_line).count(),
            1,
            "{name}: the tail once: {all}"
        );
        assert!(!all.contains("stack backtrace"), "{name}: {all}");
    }
}
