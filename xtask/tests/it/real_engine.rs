//! The real commands against the real Docker engine. Each is `#[ignore]`d (a plain `cargo test`
//! shows it as ignored); `cargo xtask ci` runs them all, and without an engine they fail.

use std::{
    fs,
    io::{BufRead, BufReader},
    net::TcpListener,
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::support::{project_root, signal, text, xtask_bin};

/// The engine tests share app/ and the image tags: one at a time.
static ENGINE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The start of every real-engine test (each is `#[ignore]`d, so a plain `cargo test` lists it
/// as ignored, never as passed; `cargo xtask ci` runs them with `--include-ignored`): the
/// engine to itself, one test at a time. Without an engine the test fails, naming the fix.
pub(crate) fn engine_test() -> std::sync::MutexGuard<'static, ()> {
    let guard = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "no Docker engine answers: run `cargo xtask provision`");
    guard
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn docker_lines(args: &[&str]) -> Vec<String> {
    let o = Command::new("docker").args(args).output().unwrap();
    assert!(o.status.success(), "docker {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .filter(|l| !l.is_empty())
        .collect()
}

pub(crate) fn project_resources(project: &str) -> Vec<String> {
    let f = format!("label=com.docker.compose.project={project}");
    let mut all = docker_lines(&["ps", "-aq", "--filter", &f]);
    all.extend(docker_lines(&["volume", "ls", "-q", "--filter", &f]));
    all.extend(docker_lines(&["network", "ls", "-q", "--filter", &f]));
    all
}

pub(crate) fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, raw))
}

pub(crate) fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A dev stack of the test's own (project and ports), removed whatever happens.
pub(crate) struct DevStack {
    pub(crate) project: String,
    pub(crate) ports: [u16; 3],
}

impl DevStack {
    pub(crate) fn new(tag: &str) -> DevStack {
        DevStack {
            project: format!("axion-it-{tag}-{}", std::process::id()),
            ports: [free_port(), free_port(), free_port()],
        }
    }
    pub(crate) fn xtask(&self, args: &[&str]) -> Output {
        Command::new(xtask_bin())
            .args(args)
            .env("AXION_DEV_PROJECT", &self.project)
            .env("APP_PORT", self.ports[0].to_string())
            .env("DB_PORT", self.ports[1].to_string())
            .env("REDIS_PORT", self.ports[2].to_string())
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    }
}

impl Drop for DevStack {
    fn drop(&mut self) {
        let _ = self.xtask(&["down", "--volumes"]);
    }
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// dev --detach, hot reload, a verify beside it, then down keeping and down deleting volumes.
#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn dev_stack_lifecycle() {
    let _engine = engine_test();
    let dev = DevStack::new("dev");
    let out = dev.xtask(&["dev", "--detach"]);
    assert!(out.status.success(), "dev --detach failed:\n{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("dev stack ready in") && all.contains("first 200"),
        "readiness summary: {all}"
    );
    let (status, body) = get(dev.ports[0], "/api/health").expect("app answers");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"db\":{\"ok\":true") && body.contains("\"redis\":{\"ok\":true"),
        "{body}"
    );

    // Files the dev server writes into app/ belong to whoever ran the command.
    let env_dts = project_root().join("app/next-env.d.ts");
    wait_for("next-env.d.ts", Duration::from_secs(30), || {
        env_dts.exists()
    });
    let uid = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(&env_dts).unwrap().uid().to_string(),
        uid.trim(),
        "next-env.d.ts owner"
    );

    // Hot reload: an edit under app/ changes what is served, without a restart.
    let dir = project_root().join("app/app/it-hot-reload");
    let _cleanup = RemoveOnDrop(dir.clone());
    fs::create_dir_all(&dir).unwrap();
    let page = |marker: &str| {
        format!("export default function Page() {{\n  return <p>{marker}</p>;\n}}\n")
    };
    fs::write(dir.join("page.tsx"), page("marker-one")).unwrap();
    wait_for("the new page", Duration::from_secs(90), || {
        get(dev.ports[0], "/it-hot-reload")
            .is_some_and(|(s, b)| s == 200 && b.contains("marker-one"))
    });
    let started_at = docker_lines(&[
        "inspect",
        "--format",
        "{{.State.StartedAt}}",
        &format!("{}-app-1", dev.project),
    ]);
    fs::write(dir.join("page.tsx"), page("marker-two")).unwrap();
    wait_for("the edit to be served", Duration::from_secs(60), || {
        get(dev.ports[0], "/it-hot-reload").is_some_and(|(_, b)| b.contains("marker-two"))
    });
    let after = docker_lines(&[
        "inspect",
        "--format",
        "{{.State.StartedAt}}",
        &format!("{}-app-1", dev.project),
    ]);
    assert_eq!(started_at, after, "the app container was not restarted");

    // verify runs beside the dev stack without touching it.
    let v = Command::new(xtask_bin())
        .args(["verify", "--json"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "verify beside dev failed:\n{}",
        text(&v)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&v.stdout).expect("one JSON report on stdout");
    assert_eq!(report["verdict"], "pass");
    assert!(
        report["phases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "first 200")
    );
    assert!(
        project_resources(report["project"].as_str().unwrap()).is_empty(),
        "verify left resources behind"
    );
    assert_eq!(
        get(dev.ports[0], "/").map(|r| r.0),
        Some(200),
        "the dev stack still serves"
    );

    status_and_logs_of_the_dev_stack(&dev);

    // down keeps the named volumes; --volumes deletes them and says so.
    let out = dev.xtask(&["down"]);
    assert!(out.status.success(), "{}", text(&out));
    let f = format!("label=com.docker.compose.project={}", dev.project);
    assert!(
        docker_lines(&["ps", "-aq", "--filter", &f]).is_empty(),
        "containers gone"
    );
    let volumes = docker_lines(&["volume", "ls", "-q", "--filter", &f]);
    assert_eq!(volumes.len(), 2, "pgdata and redisdata kept: {volumes:?}");
    let out = dev.xtask(&["down", "--volumes"]);
    let all = text(&out);
    assert!(
        volumes
            .iter()
            .all(|v| all.contains(&format!("deleted volume {v}"))),
        "{all}"
    );
    assert!(project_resources(&dev.project).is_empty());
}

/// `status` names every container healthy with its memory, `logs` shows a service's lines, and
/// once a service stops `status` exits 1 naming it.
fn status_and_logs_of_the_dev_stack(dev: &DevStack) {
    let out = dev.xtask(&["status", "--json"]);
    assert!(out.status.success(), "status:\n{}", text(&out));
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert_eq!(st["healthy"], true, "{st}");
    let tasks = st["tasks"].as_array().unwrap();
    assert_eq!(
        crate::support::status_services(&st),
        ["app", "db", "redis"],
        "{st}"
    );
    for t in tasks {
        assert_eq!(t["health"], "healthy", "{t}");
        assert!(
            t["memory_bytes"].as_u64().unwrap_or(0) > 0,
            "memory read: {t}"
        );
        assert!(!t["node"].as_str().unwrap().is_empty(), "{t}");
    }
    assert!(
        st["release"]["line"].as_str().unwrap().contains("(image "),
        "{st}"
    );

    let out = dev.xtask(&["logs", "db", "--since", "30m"]);
    let all = text(&out);
    assert!(out.status.success(), "logs db:\n{all}");
    assert!(all.contains("ready to accept connections"), "{all}");
    let out = dev.xtask(&["logs", "nginx"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("has no service `nginx`"),
        "{}",
        text(&out)
    );

    let redis = format!("{}-redis-1", dev.project);
    docker_lines(&["stop", &redis]);
    let out = dev.xtask(&["status"]);
    let all = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "status with redis stopped:\n{all}"
    );
    assert!(all.contains("NOT healthy") && all.contains(&redis), "{all}");
    docker_lines(&["start", &redis]);
}

/// A taken port is refused before anything starts, naming the process that holds it.
#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn dev_refuses_a_taken_port_and_names_the_holder() {
    let _engine = engine_test();
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut dev = DevStack::new("port");
    dev.ports[0] = held.local_addr().unwrap().port();
    let out = dev.xtask(&["dev", "--detach"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(&format!("APP_PORT={}", dev.ports[0]))
            && all.contains(&format!("pid {}", std::process::id())),
        "{all}"
    );
    assert!(
        project_resources(&dev.project).is_empty(),
        "nothing was started"
    );
}

/// SIGTERM in the middle of a verify: it stops and removes everything of its run.
#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn verify_cleans_up_on_sigterm() {
    let _engine = engine_test();
    let mut child = Command::new(xtask_bin())
        .args(["verify", "--prod"])
        .env_remove("RUST_BACKTRACE")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut project = None;
    let mut rest = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(p) = line.split("as project ").nth(1) {
            project = Some(p.split_whitespace().next().unwrap().to_string());
        }
        // Signal once containers exist: the first readiness line names the services' states.
        if project.is_some() && (line.contains(" starting") || line.contains(" healthy")) {
            break;
        }
        rest.push(line);
    }
    let project =
        project.unwrap_or_else(|| panic!("verify never named its project:\n{}", rest.join("\n")));
    assert!(
        !project_resources(&project).is_empty(),
        "the stack was up when signalled"
    );
    signal("TERM", &child.id().to_string());
    let tail: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(!status.success(), "an interrupted verify is not a pass");
    assert!(
        tail.iter().any(|l| l.contains("SIGTERM")),
        "says why it stopped: {tail:#?}"
    );
    assert!(
        project_resources(&project).is_empty(),
        "left behind after SIGTERM: {:?}",
        project_resources(&project)
    );
}

/// The build host's extra CAs (this machine sits behind a TLS-intercepting proxy) reach bun
/// install as a build secret and nothing else: a cold build through the proxy succeeds, and
/// neither the dev nor the runner image trusts a CA the distribution did not ship, names one
/// in its environment, or holds a PEM in its history.
#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn build_host_trust_stays_in_the_build() {
    let _engine = engine_test();
    let out = Command::new(xtask_bin())
        .args([
            "build-prod",
            "--stage",
            "dev",
            "--stage",
            "runner",
            "--cold",
            "--json",
        ])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(out.status.success(), "cold build failed:\n{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["verdict"], "pass");
    assert!(report["lockfile_policy"].as_str().unwrap().contains("cold"));

    let host_cas: Vec<String> = fs::read_dir("/usr/local/share/ca-certificates")
        .map(|d| {
            d.flatten()
                .filter_map(|e| fs::read_to_string(e.path()).ok())
                .flat_map(|t| {
                    t.split("-----BEGIN CERTIFICATE-----")
                        .skip(1)
                        .map(|b| {
                            b.split("-----END")
                                .next()
                                .unwrap()
                                .split_whitespace()
                                .collect()
                        })
                        .collect::<Vec<String>>()
                })
                .collect()
        })
        .unwrap_or_default();
    eprintln!("the build host trusts {} extra CA(s)", host_cas.len());
    for image in ["axion-hub:dev", "axion-hub:runner"] {
        let extra = docker_lines(&[
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
            "ls -A /usr/local/share/ca-certificates; printenv NODE_EXTRA_CA_CERTS; true",
        ]);
        assert!(extra.is_empty(), "{image} carries {extra:?}");
        let bundle: String = docker_lines(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "cat",
            image,
            "/etc/ssl/certs/ca-certificates.crt",
        ])
        .concat();
        for ca in &host_cas {
            assert!(
                !bundle.contains(ca.as_str()),
                "{image} trusts a build-host CA"
            );
        }
        let history = docker_lines(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", image]);
        assert!(
            !history
                .iter()
                .any(|l| l.contains("BEGIN CERTIFICATE") || l.contains("EXTRA_CA_CERTS=")),
            "{image}'s history holds a PEM"
        );
    }
}

/// The editors' path: the real devcontainer CLI (npm's @devcontainers/cli) brings up the dev
/// compose's app service from .devcontainer/devcontainer.json; `devcontainer exec` runs bun
/// and reaches PostgreSQL by its service name.
#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn devcontainer_cli_attaches_to_the_dev_stack() {
    let _engine = engine_test();
    let root = project_root();
    let cli = crate::support::npm_clients().join("node_modules/.bin/devcontainer");
    let project = format!("axion-it-devcontainer-{}", std::process::id());
    let ports = [free_port(), free_port(), free_port()];
    let uid = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    let gid = String::from_utf8(Command::new("id").arg("-g").output().unwrap().stdout).unwrap();
    let mut env: Vec<(String, String)> = vec![
        ("COMPOSE_PROJECT_NAME".into(), project.clone()),
        ("APP_PORT".into(), ports[0].to_string()),
        ("DB_PORT".into(), ports[1].to_string()),
        ("REDIS_PORT".into(), ports[2].to_string()),
        ("HOST_UID".into(), uid.trim().into()),
        ("HOST_GID".into(), gid.trim().into()),
        (
            "AXION_EXTRA_CA_FILE".into(),
            root.join("target/xtask/extra-ca.pem").display().to_string(),
        ),
    ];
    if std::env::var("AXION_IMAGES").is_ok_and(|v| v == "standin") {
        for (k, v) in [
            ("BUN_IMAGE", "axion-hub-standin/bun:1.4.5"),
            ("BUN_SLIM_IMAGE", "axion-hub-standin/bun:1.4.5-slim"),
            ("POSTGRES_IMAGE", "axion-hub-standin/postgres:17"),
            ("REDIS_IMAGE", "axion-hub-standin/redis:7"),
        ] {
            env.push((k.into(), v.into()));
        }
    }
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = Command::new("docker")
                .args([
                    "compose",
                    "-p",
                    &self.0,
                    "down",
                    "--volumes",
                    "--remove-orphans",
                ])
                .output();
        }
    }
    let _down = Down(project.clone());
    // `devcontainer <sub> --workspace-folder <root> [command...]`: options before the command.
    let run = |args: &[&str]| {
        Command::new(&cli)
            .arg(args[0])
            .arg("--workspace-folder")
            .arg(&root)
            .args(&args[1..])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    };
    let up = run(&["up"]);
    assert!(up.status.success(), "devcontainer up:\n{}", text(&up));
    assert!(String::from_utf8_lossy(&up.stdout).contains("\"outcome\":\"success\""));
    let bun = run(&["exec", "bun", "--version"]);
    assert!(bun.status.success(), "{}", text(&bun));
    assert_eq!(String::from_utf8_lossy(&bun.stdout).trim(), "1.4.5");
    // The app starts beside db (not after it): PostgreSQL may still be starting.
    let query = || {
        run(&[
            "exec",
            "bun",
            "-e",
            "import postgres from 'postgres'; const sql = postgres(process.env.DATABASE_URL); \
             const [r] = await sql`select 1 + 1 as two`; console.log('db answers', r.two); await sql.end()",
        ])
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut db = query();
    while !String::from_utf8_lossy(&db.stdout).contains("db answers 2") && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(500));
        db = query();
    }
    assert!(
        String::from_utf8_lossy(&db.stdout).contains("db answers 2"),
        "the db by its service name:\n{}",
        text(&db)
    );
}

/// Both ways edits reach the dev server, on this Linux engine: the bind mount and `compose
/// watch` sync (Docker Desktop's default). Each: a new page is served, an edit to it is served
/// without restarting the container; the edit-to-served time is reported (a timing, not a
/// pass/fail threshold).
#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn hot_reload_by_bind_mount_and_by_watch_sync() {
    let _engine = engine_test();
    for mode in ["--bind", "--sync"] {
        let dev = DevStack::new(&format!("mode{}", &mode[2..]));
        let mut child = Command::new(xtask_bin())
            .args(["dev", mode])
            .env("AXION_DEV_PROJECT", &dev.project)
            .env("APP_PORT", dev.ports[0].to_string())
            .env("DB_PORT", dev.ports[1].to_string())
            .env("REDIS_PORT", dev.ports[2].to_string())
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let ready = line.contains("dev stack ready");
            seen.push(line);
            if ready {
                break;
            }
        }
        assert!(
            seen.iter().any(|l| l.contains("dev stack ready")),
            "{mode}: dev never became ready:\n{}",
            seen.join("\n")
        );
        let how = if mode == "--sync" {
            "`compose watch` sync"
        } else {
            "a bind mount"
        };
        assert!(
            seen.iter().any(|l| l.contains(how)),
            "{mode}: says how edits travel"
        );
        // Drain the rest of its output so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});

        let dir = project_root().join(format!("app/app/it-{}", &mode[2..]));
        let _cleanup = RemoveOnDrop(dir.clone());
        fs::create_dir_all(&dir).unwrap();
        let url = format!("/it-{}", &mode[2..]);
        let page =
            |m: &str| format!("export default function Page() {{\n  return <p>{m}</p>;\n}}\n");
        fs::write(dir.join("page.tsx"), page("marker-one")).unwrap();
        wait_for("the new page", Duration::from_secs(90), || {
            get(dev.ports[0], &url).is_some_and(|(s, b)| s == 200 && b.contains("marker-one"))
        });
        let app = format!("{}-app-1", dev.project);
        let started = docker_lines(&["inspect", "--format", "{{.State.StartedAt}}", &app]);
        let mut times = Vec::new();
        for i in 0..3 {
            let marker = format!("marker-edit-{i}");
            let t = Instant::now();
            fs::write(dir.join("page.tsx"), page(&marker)).unwrap();
            let deadline = t + Duration::from_secs(60);
            while !get(dev.ports[0], &url).is_some_and(|(_, b)| b.contains(&marker)) {
                assert!(Instant::now() < deadline, "{mode}: edit {i} never served");
                std::thread::sleep(Duration::from_millis(10));
            }
            times.push(t.elapsed().as_millis());
        }
        eprintln!("hot reload {mode}: edit to served (server side) {times:?} ms");
        assert_eq!(
            started,
            docker_lines(&["inspect", "--format", "{{.State.StartedAt}}", &app]),
            "{mode}: the container was not restarted"
        );
        signal("INT", &child.id().to_string());
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "{mode}: Ctrl-C stops dev cleanly ({status})"
        );
        // `down` removes the app's anonymous volumes too, even those of a container `compose
        // watch` recreated (sync mode).
        let anonymous = docker_lines(&[
            "inspect",
            "--format",
            "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
            &app,
        ])
        .join(" ");
        let anonymous: Vec<&str> = anonymous
            .split_whitespace()
            .filter(|v| v.len() == 64)
            .collect();
        assert!(
            !anonymous.is_empty(),
            "{mode}: the app mounts anonymous volumes"
        );
        let out = dev.xtask(&["down", "--volumes"]);
        assert!(out.status.success(), "{}", text(&out));
        let left: Vec<String> = docker_lines(&["volume", "ls", "-q"])
            .into_iter()
            .filter(|v| anonymous.contains(&v.as_str()))
            .collect();
        assert!(
            left.is_empty(),
            "{mode}: anonymous volumes left after down: {left:?}"
        );
    }
}

/// Hot reload as a person sees it, in a real browser: headless Chromium (Debian's package)
/// loads a dev page, the HMR socket connects, an edit appears in place without a full reload.
/// The edit-to-visible latency is reported (a timing, not a threshold).
#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn a_real_browser_sees_hot_reload_in_place() {
    let _engine = engine_test();
    let chromium = ensure_chromium();
    let root = project_root();
    let prefix = crate::support::npm_clients();
    let dev = DevStack::new("browser");
    let out = dev.xtask(&["dev", "--detach"]);
    assert!(out.status.success(), "dev --detach:\n{}", text(&out));
    let dir = root.join("app/app/it-browser");
    let _cleanup = RemoveOnDrop(dir.clone());
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("page.tsx");
    fs::write(
        &file,
        "export default function Page() {\n  return <p id=\"marker\">marker-one</p>;\n}\n",
    )
    .unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let out = Command::new("node")
            .arg(root.join("xtask/tests/it/browser/hmr.mjs"))
            .arg(format!("http://{host}:{}/it-browser", dev.ports[0]))
            .arg(&file)
            .arg(&chromium)
            .env("PUPPETEER_DIR", &prefix)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{host}: the browser run:\n{}",
            text(&out)
        );
        let report: serde_json::Value = serde_json::from_str(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or(""),
        )
        .unwrap_or_else(|e| panic!("{host}: {e}: {}", text(&out)));
        let sockets = report["sockets"].as_array().unwrap();
        assert!(
            sockets
                .iter()
                .any(|s| s.as_str().unwrap().contains("/_next/"))
                && report["socketsOpened"] != 0,
            "{host}: the HMR socket connected: {report}"
        );
        assert_eq!(
            report["fullReload"], false,
            "{host}: in place, no full reload"
        );
        assert_eq!(report["text"], "marker-four");
        eprintln!(
            "browser ({host}): edit to visible {} ms",
            report["latencyMs"]
        );
        fs::write(
            &file,
            "export default function Page() {\n  return <p id=\"marker\">marker-one</p>;\n}\n",
        )
        .unwrap();
    }
}

/// Debian's Chromium: installed when missing and root (as CI is), else the fix is named.
pub(crate) fn ensure_chromium() -> String {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    assert!(
        root,
        "the browser test needs Chromium: sudo apt-get install chromium"
    );
    let install = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "chromium",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap();
    if !install.status.success() {
        let update = Command::new("apt-get")
            .args(["update", "-qq"])
            .output()
            .unwrap();
        assert!(update.status.success(), "{}", text(&update));
        let again = Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "chromium",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .unwrap();
        assert!(
            again.status.success(),
            "apt-get install chromium:\n{}",
            text(&again)
        );
    }
    "/usr/bin/chromium".into()
}
