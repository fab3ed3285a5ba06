//! `deploy` and `verify --swarm` at their edges: refusals (real engine where it can say no,
//! the fake where a swarm's answers are needed), and a proof killed mid-run leaves nothing once
//! reaped. The proof itself runs whole in `cargo xtask ci` (`verify --swarm`).

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    real_engine::{docker_lines, engine_test},
    support::{FakeDocker, signal, text, xtask_bin},
};

fn host_swarm_state() -> String {
    docker_lines(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).join("")
}

#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn deploy_refuses_an_engine_outside_a_swarm_and_leaves_it_so() {
    let _engine = engine_test();
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
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn a_terminated_swarm_proof_removes_everything_itself() {
    let _engine = engine_test();
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
    let prefix = registry_prefix(child.id());
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
            .filter(|i| i.contains(&mine) || i.starts_with(&prefix))
            .collect();
    assert!(images.is_empty(), "images left: {images:?}");
    assert_eq!(host_swarm_state(), state_before);
}

/// A swarm proof SIGKILLed with its children (`deploy`, `docker push`) while it pushes: no
/// teardown can run, so nodes, their volumes, the registry, networks, the run's images and the
/// names its pushes left are all on the engine; the next command reaps every one of them.
#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn a_killed_swarm_proof_is_reaped_whole() {
    use std::os::unix::process::CommandExt;
    let _engine = engine_test();
    let state_before = host_swarm_state();
    let mut child = Command::new(xtask_bin())
        .args(["verify", "--swarm"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    let projects = || run_resources(pid).0;
    wait_for_nodes(&mut child);
    // The names this run pushed: its own registry's (ci runs another proof beside the tests).
    let prefix = registry_prefix(pid);
    let pushed = || -> Vec<String> {
        docker_lines(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
            .into_iter()
            .filter(|i| i.starts_with(&prefix))
            .collect()
    };
    let started = Instant::now();
    while pushed().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the proof never pushed"
        );
        assert!(child.try_wait().unwrap().is_none(), "the proof ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The whole process group, by kill(2): `kill -KILL -PID` from a shell is not portable
    // (here it signalled far more than the group).
    // SAFETY: a plain syscall on the group the test made.
    assert_eq!(unsafe { libc::kill(-(pid as i32), libc::SIGKILL) }, 0);
    child.wait().unwrap();
    assert!(!projects().is_empty(), "the killed run left its nodes");
    assert!(!pushed().is_empty(), "the killed run left its pushed names");

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
    assert!(
        pushed().is_empty(),
        "pushed names left after reaping: {:?}",
        pushed()
    );
    let mine = format!("-{pid}-");
    let images: Vec<String> =
        docker_lines(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
            .into_iter()
            .filter(|i| i.contains(&mine))
            .collect();
    assert!(
        images.is_empty(),
        "the run's images left after reaping: {images:?}"
    );
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

/// A one-node Docker-in-Docker engine of the test's own, removed whatever happens; its engine
/// answers on a unix socket in a 0700 directory.
struct DindNode {
    name: String,
    dir: std::path::PathBuf,
}

impl DindNode {
    fn start(tag: &str) -> DindNode {
        use std::os::unix::fs::PermissionsExt;
        let name = format!("axion-it-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let node = DindNode { name, dir };
        docker_lines(&[
            "run",
            "-d",
            "--privileged",
            "--name",
            &node.name,
            "--label",
            &format!("com.docker.compose.project={}", node.name),
            "-v",
            &format!("{}:/run/axion", node.dir.display()),
            "axion-hub-standin/swarm-node:trixie",
        ]);
        crate::real_engine::wait_for("the node's engine", Duration::from_secs(60), || {
            node.docker(&["version"]).status.success()
        });
        node
    }

    fn host(&self) -> String {
        format!("unix://{}/docker.sock", self.dir.display())
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(self.host())
            .args(args)
            .output()
            .unwrap()
    }

    fn ip(&self) -> String {
        docker_lines(&[
            "inspect",
            "--format",
            "{{.NetworkSettings.IPAddress}}",
            &self.name,
        ])
        .join("")
    }
}

impl Drop for DindNode {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", "--volumes", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The one-node path a developer takes: `deploy` refuses an engine outside a swarm, then
/// `deploy --init` makes it a one-node swarm, labels its node for the data, and runs the local
/// images without a registry (`--resolve-image never`); the stack answers through its proxy.
/// The engine is a throw-away Docker-in-Docker one (the host's never changes mode), given this
/// engine's images by `docker save | docker load`.
#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn deploy_init_runs_the_stack_on_a_one_node_swarm_from_local_images() {
    let _engine = engine_test();
    let state_before = host_swarm_state();
    // The runner to deploy, from these sources (build-prod tags axion-hub:runner; cached when
    // nothing changed, and a tag left by an older checkout is never deployed as this one).
    let out = Command::new(xtask_bin())
        .args(["build-prod", "--stage", "runner"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Every stand-in, the swarm node's and haproxy's too.
    let out = Command::new(xtask_bin())
        .args(["provision", "--standin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let node = DindNode::start("deploy-init");
    let images = [
        "axion-hub:runner",
        "axion-hub-standin/bun:1.4.5",
        "axion-hub-standin/bun:1.4.5-slim",
        "axion-hub-standin/postgres:17",
        "axion-hub-standin/redis:7",
        "axion-hub-standin/haproxy:3.0",
    ];
    let mut save = Command::new("docker")
        .arg("save")
        .args(images)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let load = Command::new("docker")
        .args(["-H", &node.host(), "load", "--quiet"])
        .stdin(save.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(save.wait().unwrap().success(), "docker save failed");
    assert!(load.status.success(), "{}", text(&load));

    let deploy = |extra: &[&str]| {
        Command::new(xtask_bin())
            .arg("deploy")
            .args(extra)
            .args(["--standin", "--image", "axion-hub:runner"])
            .env("DOCKER_HOST", node.host())
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap()
    };
    let refused = deploy(&[]);
    let all = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{all}");
    assert!(all.contains("not part of a swarm"), "{all}");
    let refused = Command::new(xtask_bin())
        .args(["status", "--stack", "axion"])
        .env("DOCKER_HOST", node.host())
        .output()
        .unwrap();
    let all = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{all}");
    assert!(
        all.contains("not part of a swarm") && all.contains("fix: --manager"),
        "{all}"
    );

    // Hostile table, row 6: never a swarm listening on every address.
    let refused = deploy(&["--init"]);
    let all = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{all}");
    assert!(all.contains("--advertise-addr <IP>"), "{all}");
    let ip = docker_lines(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &node.name,
    ])
    .concat();
    let out = deploy(&["--init", "--advertise-addr", &ip]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let addr = docker_lines(&[
        "-H",
        &node.host(),
        "info",
        "--format",
        "{{.Swarm.NodeAddr}}",
    ]);
    assert_eq!(
        addr,
        std::slice::from_ref(&ip),
        "the swarm advertises the address it was given"
    );
    assert!(
        all.contains("one-node swarm") && all.contains("can break name resolution"),
        "warns: {all}"
    );
    assert!(
        all.contains("labelling") && all.contains("axion-hub.data=true"),
        "{all}"
    );
    assert!(all.contains("deploy: stack axion healthy"), "{all}");
    let services = String::from_utf8_lossy(
        &node
            .docker(&[
                "service",
                "ls",
                "--format",
                "{{.Name}} {{.Replicas}} {{.Image}}",
            ])
            .stdout,
    )
    .into_owned();
    for s in [
        // Under a name of its content: a later build moves axion-hub:runner, never this.
        "axion_app 2/2 axion-hub/app:",
        "axion_db 1/1",
        "axion_redis 1/1",
        "axion_proxy 1/1",
    ] {
        assert!(services.contains(s), "{s} in:\n{services}");
    }
    // Through the proxy's host-mode ports on the node: HTTP redirects to HTTPS, which serves
    // the self-signed certificate deploy made in secrets/tls.pem (verified against it, by name).
    let addr: std::net::SocketAddr = format!("{}:3000", node.ip()).parse().unwrap();
    let mut answer = String::new();
    crate::real_engine::wait_for("the proxy's HTTP port", Duration::from_secs(60), || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        answer.clear();
        s.read_to_string(&mut answer).is_ok() && answer.starts_with("HTTP/1.1 308")
    });
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("location: https://x:3443/api/health"),
        "{answer}"
    );
    let pem = crate::support::project_root().join("secrets/tls.pem");
    let resolve = format!("localhost:3443:{}", node.ip());
    let mut https = String::new();
    crate::real_engine::wait_for(
        "/api/health over verified HTTPS",
        Duration::from_secs(60),
        || {
            let out = Command::new("curl")
                .args(["-sS", "--max-time", "10", "-D", "-", "--cacert"])
                .arg(&pem)
                .args(["--resolve", &resolve, "https://localhost:3443/api/health"])
                .output()
                .unwrap();
            https = text(&out);
            out.status.success() && https.starts_with("HTTP/1.1 200")
        },
    );
    assert!(https.contains("\"status\":\"ok\""), "{https}");
    assert!(
        https
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age="),
        "{https}"
    );
    operate_the_one_node_swarm(&node);
    assert_eq!(
        host_swarm_state(),
        state_before,
        "the host engine never changes mode"
    );
}

/// After the first deploy: `status --stack` names every task healthy and release 1 with the
/// image that runs, `logs app` shows both replicas, and `deploy --rollback` refuses, with the
/// fix, while the history holds nothing else.
fn operate_the_one_node_swarm(node: &DindNode) {
    let xtask = |args: &[&str]| {
        Command::new(xtask_bin())
            .args(args)
            .env("DOCKER_HOST", node.host())
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    };
    let out = xtask(&["status", "--stack", "axion", "--json"]);
    assert!(out.status.success(), "status --stack:\n{}", text(&out));
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["healthy"], true, "{st}");
    assert_eq!(st["release"]["release"], 1, "{st}");
    let tasks = st["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 6, "app ×2, cache, db, redis, proxy: {st}");
    let app = st["release"]["images"]["app"].as_str().unwrap();
    assert!(app.starts_with("axion-hub/app:"), "{st}");
    assert!(
        tasks
            .iter()
            .filter(|t| t["service"] == "app")
            .all(|t| t["image"] == app),
        "{st}"
    );
    let out = xtask(&["logs", "app", "--stack", "axion"]);
    let all = text(&out);
    assert!(out.status.success(), "logs app:\n{all}");
    assert!(
        all.contains("axion_app.1.") && all.contains("axion_app.2."),
        "{all}"
    );
    // --follow keeps streaming every service's lines until stopped.
    let mut follow = Command::new(xtask_bin())
        .args(["logs", "--stack", "axion", "--follow"])
        .env("DOCKER_HOST", node.host())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(follow.stdout.take().unwrap()));
    let first = lines.next().expect("a line").unwrap();
    assert!(first.contains("axion_"), "{first}");
    assert!(
        follow.try_wait().unwrap().is_none(),
        "--follow ended by itself"
    );
    let _ = follow.kill();
    let _ = follow.wait();
    // `clean` lists what the swarm holds that no service needs; the next deploy removes it.
    let stale = Command::new("sh")
        .args(["-c", "echo x | docker -H \"$0\" secret create --label com.docker.stack.namespace=axion axion_stale-1 -"])
        .arg(node.host())
        .output()
        .unwrap();
    assert!(stale.status.success(), "{}", text(&stale));
    let out = xtask(&["clean", "--dry-run"]);
    assert!(
        text(&out).contains("swarm stack axion holds what no service needs")
            && text(&out).contains("secret axion_stale-1"),
        "{}",
        text(&out)
    );
    let out = xtask(&["deploy", "--standin", "--rollback"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("nothing to roll back to") && all.contains("fix:"),
        "{all}"
    );
    assert!(!all.contains("stack backtrace"), "{all}");
    let out = xtask(&["deploy", "--standin", "--rollback", "7"]);
    assert!(text(&out).contains("no release 7"), "{}", text(&out));
}

/// `127.0.0.1:PORT/`: where the run of `pid` pushes (its registry container's published port).
fn registry_prefix(pid: u32) -> String {
    let mine = format!("-{pid}-");
    let started = Instant::now();
    loop {
        let registry = docker_lines(&["ps", "--format", "{{.Names}}"])
            .into_iter()
            .find(|n| n.contains(&mine) && n.ends_with("-registry"));
        if let Some(port) = registry.and_then(|r| docker_lines(&["port", &r, "5000"]).pop()) {
            return format!("{}/", port.trim());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run's registry never published its port"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
