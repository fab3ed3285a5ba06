//! The gates prove the user's app, not the demo: a scratch copy of the project whose demo pages
//! are replaced by a typical grown app (xtask/tests/fixtures/grown-app), checked out and verified
//! under a strict umask (the hostile table's row 3), passes `verify --prod`,
//! and then, on that kept prod stack, as the phases after this one will use it:
//! - its pages and routes reach PostgreSQL and Redis through DATABASE_URL and REDIS_URL, with
//!   passwords that need percent-encoding, and no password is in `docker inspect`;
//! - NEXT_PUBLIC_* from the root .env (a declared ARG) and from app/.env.production are in the
//!   page and the client bundle; app/.env.production.local is in no image;
//! - a server action writes a row;
//! - a migration applied the way README says (`axion-start` in a one-off app container, through
//!   DATABASE_URL) is visible to the app;
//! - BullMQ through REDIS_URL: jobs enqueued before a Redis restart are processed after it, and
//!   an enqueue at maxmemory is refused (noeviction), never dropped.

use std::{fs, os::unix::fs::PermissionsExt, path::PathBuf, process::Command};

use crate::{
    real_engine::{docker_lines, engine_test, get},
    support::{RemoveDir, as_if_checked_out_under, copy_tree, mode, project_root, text, xtask_bin},
};

const APP_DB_PASSWORD: &str = "Fx@:/#%?&+=é~-app-0123456789";
const REDIS_PASSWORD: &str = "Rd@:/#%?&+=é~-redis-0123456789";
const ROOT_ENV_NAME: &str = "Grown From Root Env";
const APP_ENV_CHANNEL: &str = "from-app-env-production";
const LOCAL_ONLY: &str = "local-only-must-not-ship";
/// A run-time value with the characters an env file makes hard: `'`, `"`, `$`, `\`.
const MOTTO: &str = r#"it's "quoted" $HOME \back"#;

fn fixtures() -> PathBuf {
    project_root().join("xtask/tests/fixtures")
}

/// The project with the grown app in place of the demo pages, its secrets set by hand.
fn grown_copy() -> PathBuf {
    let dir = crate::support::scratch_project("grown-app");
    for demo in [
        "app/app/page.tsx",
        "app/public/logo.png",
        "app/lib/notes.ts",
    ] {
        fs::remove_file(dir.join(demo)).unwrap();
    }
    for demo in ["app/app/isr", "app/app/config", "app/app/notes"] {
        fs::remove_dir_all(dir.join(demo)).unwrap();
    }
    copy_tree(&fixtures().join("grown-app/app"), &dir.join("app"), &[]);
    // Checked out under a CIS-style `umask 077` (027 takes the same bits from "other", which
    // every service's user is): before, Redis could not open redis.conf, postgres could not
    // read the init script and the runner could not read public/ or a traced source.
    as_if_checked_out_under(&dir, 0o077);
    let mut env = fs::read_to_string(dir.join(".env.example")).unwrap();
    env.push_str(&format!("NEXT_PUBLIC_APP_NAME={ROOT_ENV_NAME}\n"));
    env.push_str(&format!("FIXTURE_MOTTO={MOTTO}\n"));
    fs::write(dir.join(".env"), env).unwrap();
    let secrets = dir.join("secrets");
    fs::create_dir_all(&secrets).unwrap();
    for (name, value) in [
        ("postgres_password", "Pg@:/#%?&+=é~-super-0123456789"),
        ("app_db_password", APP_DB_PASSWORD),
        ("redis_password", REDIS_PASSWORD),
        (
            "redis_admin_password",
            "Ad@:/#%?&+=é~-redis-admin-0123456789",
        ),
    ] {
        // As an editor under that umask writes it: readable by its owner only.
        let file = secrets.join(name);
        fs::write(&file, format!("{value}\n")).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    }
    dir
}

/// Runs the removal command `verify --keep` printed, whatever happens.
struct Removal(String);
impl Drop for Removal {
    fn drop(&mut self) {
        let _ = Command::new("sh").args(["-c", &self.0]).output();
    }
}

/// The kept prod stack of the copy: compose runs there with the run's app image.
struct Kept {
    dir: PathBuf,
    project: String,
    image: String,
    port: u16,
}

impl Kept {
    fn compose(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .current_dir(&self.dir)
            .args([
                "compose",
                "-f",
                "docker-compose.prod.yml",
                "-p",
                &self.project,
            ])
            .args(args)
            .env("AXION_APP_IMAGE", &self.image)
            .output()
            .unwrap()
    }
    /// `axion-start CMD` in a one-off app container: the app's environment, DATABASE_URL and
    /// REDIS_URL included (README: running a migration).
    fn one_off_output(&self, mounts: &[String], cmd: &[&str]) -> std::process::Output {
        let mut args = vec!["run", "--rm", "--no-deps", "-T"];
        for m in mounts {
            args.extend(["-v", m.as_str()]);
        }
        args.extend(["app", "axion-start"]);
        args.extend(cmd);
        self.compose(&args)
    }
    fn one_off(&self, mounts: &[String], cmd: &[&str]) -> String {
        let out = self.one_off_output(mounts, cmd);
        let all = text(&out);
        assert!(out.status.success(), "{cmd:?}:\n{all}");
        all
    }
    fn redis_cli(&self, args: &str) -> String {
        let script =
            format!("REDISCLI_AUTH=\"$(cat /run/secrets/redis_admin_password)\" redis-cli {args}");
        let out = self.compose(&["exec", "-T", "redis", "sh", "-c", &script]);
        assert!(out.status.success(), "redis-cli {args}: {}", text(&out));
        text(&out)
    }
}

#[test]
#[ignore = "needs a Docker engine: `cargo xtask ci` runs it (or `cargo test -- --include-ignored`)"]
fn a_grown_app_passes_verify_prod_and_works_in_prod() {
    let _engine = engine_test();
    let dir = grown_copy();
    let _cleanup = RemoveDir(dir.clone());
    let out = Command::new("sh")
        .args(["-c", "umask 077 && exec \"$0\" verify --prod --keep --json"])
        .arg(xtask_bin())
        .env("AXION_PROJECT_ROOT", &dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let all = text(&out);
    let removal = all
        .lines()
        .skip_while(|l| !l.contains("stays up. Remove it with:"))
        .nth(1)
        .map(|l| l.trim().to_string());
    let _removal = removal.map(Removal);
    assert!(out.status.success(), "{all}");
    secrets_are_readable_by_the_services(&dir);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kept = Kept {
        dir: dir.clone(),
        project: report["project"].as_str().unwrap().to_string(),
        image: report["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["service"] == "app")
            .unwrap()["image"]
            .as_str()
            .unwrap()
            .to_string(),
        port: 0,
    };
    let port: u16 = docker_lines(&["port", &format!("{}-app-1", kept.project), "3000"])[0]
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let kept = Kept { port, ..kept };

    routes_came_from_the_build(&report);
    data_routes_work(&kept);
    public_env_reaches_the_bundle(&kept);
    no_password_in_the_configuration(&kept);
    a_server_action_writes_a_row(&kept);
    a_browser_uses_the_app(&kept);
    a_migration_is_visible_to_the_app(&kept);
    bullmq_through_redis_url(&kept);
    status_and_logs_of_the_prod_stack(&kept);
    a_5xx_route_fails_verify(&dir);
}

/// `status --prod` and `logs --prod` on the single-host prod stack (this one's project named by
/// AXION_PROD_PROJECT): every service healthy within its memory limit, the image that runs,
/// each service's lines.
fn status_and_logs_of_the_prod_stack(kept: &Kept) {
    let xtask = |args: &[&str]| {
        Command::new(xtask_bin())
            .args(args)
            .env("AXION_PROD_PROJECT", &kept.project)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    };
    let out = xtask(&["status", "--prod", "--json"]);
    assert!(out.status.success(), "status --prod:\n{}", text(&out));
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tasks = st["tasks"].as_array().unwrap();
    assert_eq!(
        crate::support::status_services(&st),
        ["app", "cache", "db", "redis"],
        "{st}"
    );
    for t in tasks {
        let (used, limit) = (t["memory_bytes"].as_u64(), t["limit_bytes"].as_u64());
        assert!(
            used.is_some_and(|u| u > 0) && limit.is_some_and(|l| l >= used.unwrap()),
            "{t}"
        );
    }
    assert!(
        st["release"]["line"]
            .as_str()
            .unwrap()
            .starts_with(&kept.image),
        "{st}"
    );
    let out = xtask(&["logs", "--prod", "db"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ready to accept connections"),
        "{}",
        text(&out)
    );
}

/// The secrets directory is its owner's alone; every file in it, written by hand 0600 or made
/// by the xtask under the umask, is 0644 (compose bind-mounts a file secret with its host mode,
/// and the services read them as other users).
fn secrets_are_readable_by_the_services(dir: &std::path::Path) {
    let secrets = dir.join("secrets");
    assert_eq!(mode(&secrets), 0o700, "the secrets directory");
    for f in [
        "postgres_password",
        "app_db_password",
        "redis_password",
        "redis_admin_password",
        "cache_password",
        "redis.conf",
        "cache.conf",
    ] {
        assert_eq!(mode(&secrets.join(f)), 0o644, "{f}");
    }
}

/// The same app with one route answering 500 (a run-time variable, so no rebuild): verify
/// fails, names the route, and still lists every route it requested.
fn a_5xx_route_fails_verify(dir: &std::path::Path) {
    let mut env = fs::read_to_string(dir.join(".env")).unwrap();
    env.push_str("FIXTURE_BREAK=1\n");
    fs::write(dir.join(".env"), env).unwrap();
    let out = Command::new(xtask_bin())
        .args(["verify", "--prod", "--json"])
        .env("AXION_PROJECT_ROOT", dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("every route of the build answers GET without a 5xx")
            && error.contains("/api/boom"),
        "{error}"
    );
    let routes = report["routes"].as_array().unwrap();
    let boom = routes.iter().find(|r| r["route"] == "/api/boom").cloned();
    assert_eq!(boom.unwrap_or_default()["status"], 500, "{routes:#?}");
    assert!(routes.len() >= 10, "every route still listed: {routes:#?}");
}

/// Every route of the grown app was requested and answered 200; its ISR page and its image
/// were checked, not reported "not applicable".
fn routes_came_from_the_build(report: &serde_json::Value) {
    let routes = report["routes"].as_array().unwrap();
    for r in routes {
        eprintln!(
            "grown app route: {} {} {} ms ({})",
            r["route"], r["status"], r["ms"], r["kind"]
        );
    }
    for p in report["phases"].as_array().unwrap() {
        eprintln!("grown app phase: {} {} s", p["name"], p["seconds"]);
    }
    let answered = |path: &str| {
        routes
            .iter()
            .find(|r| r["route"] == path)
            .and_then(|r| r["status"].as_u64())
    };
    for path in [
        "/",
        "/dashboard",
        "/guestbook",
        "/news",
        "/archive",
        "/env",
        "/api/stats",
        "/api/tables",
        "/api/health",
        "/api/boom",
        "/api/motto",
        "/feed.json",
    ] {
        assert_eq!(answered(path), Some(200), "{path} in {routes:#?}");
    }
    for demo in ["/isr", "/config"] {
        assert_eq!(answered(demo), None, "the demo's {demo} is gone");
    }
    let checks = report["checks"].as_array().unwrap();
    let find = |prefix: &str| {
        checks
            .iter()
            .find(|c| c["check"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} in {checks:#?}"))
    };
    let isr = find("app: every ISR route");
    assert_eq!(
        (&isr["ok"], &isr["applicable"]),
        (&true.into(), &true.into())
    );
    let detail = isr["detail"].as_str().unwrap();
    assert!(
        detail.contains("/news regenerated after its revalidate"),
        "{isr}"
    );
    assert!(detail.contains("/archive regenerated on demand"), "{isr}");
    assert!(
        detail.contains("/feed.json regenerated after its revalidate"),
        "{isr}"
    );
    let headers = find("app: security headers");
    assert_eq!(
        (&headers["ok"], &headers["applicable"]),
        (&true.into(), &true.into()),
        "{headers}"
    );
    let image = find("app: /_next/image");
    assert_eq!(image["applicable"], true);
    assert!(
        image["detail"]
            .as_str()
            .unwrap()
            .contains("brand%2Fmark.png"),
        "{image}"
    );
}

fn body(port: u16, path: &str) -> String {
    let (status, body) = get(port, path).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn data_routes_work(k: &Kept) {
    let page = body(k.port, "/dashboard");
    // React separates text and values with comments in the HTML.
    let plain = page.replace("<!-- -->", "");
    assert!(plain.contains("connected as axion_app to axion"), "{page}");
    let first = body(k.port, "/api/stats");
    let second = body(k.port, "/api/stats");
    let hits = |b: &str| -> u64 {
        let json = &b[b.find('{').unwrap()..];
        let json = &json[..=json.rfind('}').unwrap()];
        serde_json::from_str::<serde_json::Value>(json).unwrap()["hits"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(hits(&second), hits(&first) + 1, "{first}\n{second}");
    let motto = body(k.port, "/api/motto");
    let json = &motto[motto.find('{').unwrap()..=motto.rfind('}').unwrap()];
    let got: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(got["motto"], MOTTO, "a run-time value kept every character");
}

fn public_env_reaches_the_bundle(k: &Kept) {
    let page = body(k.port, "/env");
    assert!(
        page.contains(APP_ENV_CHANNEL),
        "app/.env.production: {page}"
    );
    assert!(page.contains(ROOT_ENV_NAME), "root .env: {page}");
    assert!(!page.contains(LOCAL_ONLY), ".env.production.local: {page}");
    let app = format!("{}-app-1", k.project);
    let grep = |what: &str, under: &str| {
        let out = Command::new("docker")
            .args(["exec", &app, "grep", "-rlF", what, under])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    for value in [APP_ENV_CHANNEL, ROOT_ENV_NAME] {
        assert!(
            !grep(value, "/app/.next/static").is_empty(),
            "{value} is not in the client bundle"
        );
    }
    assert_eq!(
        grep(LOCAL_ONLY, "/app"),
        "",
        "a .env*.local value in the image"
    );
    let token = "fixture-token-must-not-ship";
    assert_eq!(grep(token, "/app"), "", "app/.npmrc in the image");
}

/// Not in `docker inspect` of any container, as written or percent-encoded.
fn no_password_in_the_configuration(k: &Kept) {
    let ids = docker_lines(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={}", k.project),
    ]);
    let mut args = vec!["inspect"];
    args.extend(ids.iter().map(String::as_str));
    let inspect = docker_lines(&args).join("\n");
    for pw in [APP_DB_PASSWORD, REDIS_PASSWORD] {
        // As app/start.sh writes it into the URLs: unreserved bytes kept, the rest %xx.
        let encoded: String = pw
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02x}"),
            })
            .collect();
        assert!(!inspect.contains(pw), "a password in docker inspect");
        assert!(
            !inspect.contains(&pw[..8]),
            "part of a password in docker inspect"
        );
        assert!(!inspect.to_lowercase().contains(&encoded[..12]));
    }
}

/// The guestbook's form, submitted without JavaScript (Next.js's progressive enhancement):
/// the action's id is a hidden field of the rendered form.
fn a_server_action_writes_a_row(k: &Kept) {
    let page = body(k.port, "/guestbook");
    let field = page
        .split("name=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .find(|n| n.starts_with("$ACTION_ID_"))
        .unwrap_or_else(|| panic!("no server action in the form: {page}"))
        .to_string();
    let status = post_form(
        k.port,
        "/guestbook",
        &[(&field, ""), ("name", "signed-by-the-test")],
    );
    assert!(status == 200 || status == 303, "POST /guestbook: {status}");
    let page = body(k.port, "/guestbook");
    assert!(page.contains("signed-by-the-test"), "{page}");
}

/// A browser's submission of a form without JavaScript: multipart/form-data.
fn post_form(port: u16, path: &str, fields: &[(&str, &str)]) -> u16 {
    use std::io::{Read, Write};
    let boundary = "axion-it-boundary-7d1f";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    raw.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("POST {path}: no HTTP answer: {raw:?}"))
}

/// Headless Chromium with JavaScript: the client bundle's NEXT_PUBLIC_* values after
/// hydration, the server action called as Next.js calls it, no console error (a CSP violation
/// would be one).
fn a_browser_uses_the_app(k: &Kept) {
    let chromium = crate::real_engine::ensure_chromium();
    let out = Command::new("node")
        .arg(project_root().join("xtask/tests/it/browser/grown.mjs"))
        .arg(format!("http://127.0.0.1:{}", k.port))
        .arg(&chromium)
        .env("PUPPETEER_DIR", crate::support::npm_clients())
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "the browser run:\n{all}");
    let line = String::from_utf8_lossy(&out.stdout);
    let seen: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(seen["channel"], APP_ENV_CHANNEL, "{seen}");
    assert_eq!(seen["name"], ROOT_ENV_NAME, "{seen}");
    assert_eq!(
        seen["action"], true,
        "the form went through a server action call: {seen}"
    );
    assert_eq!(
        seen["problems"],
        serde_json::json!([]),
        "console errors: {seen}"
    );
    eprintln!("browser: {seen}");
}

fn a_migration_is_visible_to_the_app(k: &Kept) {
    // bun's own PostgreSQL client: the runner holds only the traced files of the app's
    // dependencies, so a migration brings its tool or uses what bun has.
    let migration = "import { SQL } from 'bun'; \
        const sql = new SQL(process.env.DATABASE_URL); \
        await sql`create table if not exists releases (id serial primary key, name text)`; \
        await sql`insert into releases (name) values ('grown-app')`; \
        await sql.close(); console.log('migrated');";
    let out = k.one_off(&[], &["bun", "-e", migration]);
    assert!(out.contains("migrated"), "{out}");
    let tables = body(k.port, "/api/tables");
    assert!(tables.contains("\"releases\""), "{tables}");
}

/// BullMQ from the committed test-client lock, beside the queue script.
fn npm_bullmq() -> PathBuf {
    let dir = crate::support::npm_clients();
    fs::copy(fixtures().join("queue.mjs"), dir.join("queue.mjs")).unwrap();
    dir
}

fn bullmq_through_redis_url(k: &Kept) {
    let dir = npm_bullmq();
    let mount = [format!("{}:/work:ro", dir.display())];
    let produced = k.one_off(&mount, &["bun", "/work/queue.mjs", "produce", "5"]);
    assert!(produced.contains("enqueued 5"), "{produced}");
    let out = Command::new("docker")
        .args(["restart", &format!("{}-redis-1", k.project)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    crate::real_engine::wait_for(
        "redis healthy again",
        std::time::Duration::from_secs(60),
        || {
            docker_lines(&[
                "inspect",
                "--format",
                "{{.State.Health.Status}}",
                &format!("{}-redis-1", k.project),
            ]) == ["healthy"]
        },
    );
    let consumed = k.one_off(&mount, &["bun", "/work/queue.mjs", "consume", "5"]);
    assert!(consumed.contains("processed 5"), "{consumed}");
    assert!(
        consumed.contains("retried 1"),
        "the failing first attempt retried: {consumed}"
    );
    eprintln!("bullmq: enqueued 5 before a redis restart, processed 5 after it (one retried)");

    // At maxmemory: a limit below what Redis holds already.
    k.redis_cli("config set maxmemory 1");
    let out = k.one_off_output(&mount, &["bun", "/work/queue.mjs", "refused"]);
    k.redis_cli("config set maxmemory 200mb");
    let all = text(&out);
    assert!(
        out.status.success() && all.contains("refused: OOM"),
        "{all}"
    );
    eprintln!(
        "bullmq at maxmemory: {}",
        all.lines().find(|l| l.contains("refused")).unwrap_or("")
    );
}
