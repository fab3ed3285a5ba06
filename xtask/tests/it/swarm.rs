//! `deploy` and `verify --swarm` at their edges: refusals (real engine where it can say no,
//! the fake where a swarm's answers are needed), and a proof killed mid-run leaves nothing once
//! reaped. The proof itself runs whole in `cargo xtask ci` (`verify --swarm`).

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    real_engine::{ENGINE, docker_lines, engine_or_named_skip},
    support::{FakeDocker, signal, text, xtask_bin},
};

fn host_swarm_state() -> String {
    docker_lines(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).join("")
}

#[test]
fn deploy_refuses_an_engine_outside_a_swarm_and_leaves_it_so() {
    let _one_at_a_time = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    if !engine_or_named_skip() {
        return;
    }
    assert_eq!(
        host_swarm_state(),
        "inactive",
        "this test needs an engine outside swarm mode (deploy would deploy on a manager)"
    );
    let out = Command::new(xtask_bin())
        .arg("deploy")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("not part of a swarm (swarm state: inactive)"),
        "{all}"
    );
    assert!(
        all.contains("--manager ssh://") && all.contains("deploy --init"),
        "the fixes: {all}"
    );
    assert!(!all.contains("stack backtrace"), "{all}");
    assert_eq!(
        host_swarm_state(),
        "inactive",
        "deploy without --init changes nothing"
    );
}

fn swarm_rules(swarm_json: &'static str) -> Vec<(&'static str, i32, &'static str)> {
    let mut r = vec![("info --format {{json .Swarm}}", 0, swarm_json)];
    r.extend(FakeDocker::engine_rules());
    r
}

#[test]
fn deploy_from_a_worker_or_without_a_registry_is_refused_before_building() {
    let worker = FakeDocker::new(
        "swarm-worker",
        &swarm_rules(r#"{"LocalNodeState":"active","ControlAvailable":false,"Nodes":0}"#),
    );
    let out = worker.xtask(&["deploy"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("swarm worker") && all.contains("--manager ssh://"),
        "{all}"
    );

    let manager = FakeDocker::new(
        "swarm-manager",
        &swarm_rules(r#"{"LocalNodeState":"active","ControlAvailable":true,"Nodes":3}"#),
    );
    let out = manager.xtask(&["deploy", "--stack", "shop"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("has 3 nodes") && all.contains("--registry HOST:PORT"),
        "{all}"
    );
    for fake in [&worker, &manager] {
        let calls = fake.calls();
        assert!(
            !calls
                .iter()
                .any(|c| c.contains(" build") || c.contains("stack deploy")),
            "refused before building or deploying: {calls:#?}"
        );
    }

    let out = manager.xtask(&["deploy", "--registry", "https://r.example:5000"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("is not HOST:PORT"), "{all}");
    let out = manager.xtask(&["verify", "--swarm", "--keep"]);
    assert!(
        text(&out).contains("throw-away by design"),
        "{}",
        text(&out)
    );
}

/// What a run with this pid has on the engine, by its compose project label: containers and
/// volumes; and how many of its registry and last node run.
fn run_resources(pid: u32) -> (Vec<String>, usize) {
    let mine = format!("-{pid}-");
    let label = "{{.Label \"com.docker.compose.project\"}}";
    let mut p = docker_lines(&[
        "ps",
        "-a",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        label,
    ]);
    p.extend(docker_lines(&[
        "volume",
        "ls",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        label,
    ]));
    p.extend(
        docker_lines(&["network", "ls", "--format", "{{.Name}}"])
            .into_iter()
            .filter(|n| n.contains(&mine)),
    );
    p.retain(|l| l.contains(&mine));
    let running = docker_lines(&["ps", "--format", "{{.Names}}"])
        .into_iter()
        .filter(|n| n.contains(&mine))
        .filter(|n| n.ends_with("-registry") || n.ends_with("-node3"))
        .count();
    (p, running)
}

/// Waits until the proof's registry and last node run (the child must still be running).
fn wait_for_nodes(child: &mut std::process::Child) {
    let started = Instant::now();
    while run_resources(child.id()).1 < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the proof never started its nodes: {:?}",
            run_resources(child.id()).0
        );
        assert!(child.try_wait().unwrap().is_none(), "the proof ended early");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// SIGTERM (a CI runner cancelling the job) while the swarm runs: the proof says why it stopped,
/// fails, and its teardown removes every node, volume, network and image before it exits.
#[test]
fn a_terminated_swarm_proof_removes_everything_itself() {
    let _one_at_a_time = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    if !engine_or_named_skip() {
        return;
    }
    let state_before = host_swarm_state();
    let mut child = Command::new(xtask_bin())
        .args(["verify", "--swarm"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    wait_for_nodes(&mut child);
    signal("TERM", &child.id().to_string());
    let status = child.wait().unwrap();
    let err = reader.join().unwrap();
    assert!(
        !status.success(),
        "an interrupted proof is not a pass: {err}"
    );
    assert!(err.contains("SIGTERM"), "says why it stopped: {err}");
    let (left, _) = run_resources(child.id());
    assert!(
        left.is_empty(),
        "left behind after SIGTERM: {left:?}\n{err}"
    );
    let mine = format!("-{}-", child.id());
    let images: Vec<String> =
        docker_lines(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
            .into_iter()
            .filter(|i| i.contains(&mine) || i.starts_with("127.0.0.1:"))
            .collect();
    assert!(images.is_empty(), "images left: {images:?}");
    assert_eq!(host_swarm_state(), state_before);
}

/// A swarm proof SIGKILLed once its nodes run (no teardown can run) leaves privileged nodes,
/// their volumes, a registry and networks: the next command reaps all of it by its labels.
#[test]
fn a_killed_swarm_proof_is_reaped_whole() {
    let _one_at_a_time = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    if !engine_or_named_skip() {
        return;
    }
    let state_before = host_swarm_state();
    let mut child = Command::new(xtask_bin())
        .args(["verify", "--swarm"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let projects = || run_resources(pid).0;
    wait_for_nodes(&mut child);
    signal("KILL", &pid.to_string());
    child.wait().unwrap();
    assert!(!projects().is_empty(), "the killed run left its nodes");

    // Someone else's dangling image without any label must not trip the reaper's listing.
    let tag = format!("axion-test-unlabelled:{pid}");
    let mut made = Vec::new();
    for n in 0..2 {
        let mut b = Command::new("docker")
            .args(["build", "--quiet", "-t", &tag, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let base = "axion-hub-standin/debian:trixie";
        std::io::Write::write_all(
            b.stdin.as_mut().unwrap(),
            format!("FROM {base}\nENV N={pid}{n}\n").as_bytes(),
        )
        .unwrap();
        drop(b.stdin.take());
        assert!(b.wait().unwrap().success());
        made.extend(docker_lines(&[
            "image", "inspect", "--format", "{{.Id}}", &tag,
        ]));
    }
    let out = Command::new(xtask_bin()).arg("clean").output().unwrap();
    let _ = Command::new("docker")
        .args(["image", "rm"])
        .args(&made)
        .output();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains(&format!("pid {pid} is gone")),
        "says what it removed: {all}"
    );
    let left = projects();
    assert!(left.is_empty(), "left after reaping: {left:?}");
    let sockets: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .contains(&format!("-{pid}-"))
        })
        .collect();
    assert!(
        sockets.is_empty(),
        "node socket directories left: {sockets:?}"
    );
    assert_eq!(host_swarm_state(), state_before);
}
