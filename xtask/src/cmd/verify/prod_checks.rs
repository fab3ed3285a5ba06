//! What `verify --prod` asserts on the running prod stack beyond "it answers": hardening of
//! every service, secrets only in files, least privilege in PostgreSQL and Redis, and a runner
//! image without escalation paths or the build host's trust. Each check is named in the report.

use xshell::Shell;

use crate::{
    docker::{self, Container},
    host,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// False: nothing to check in this app (no ISR route, no image); `ok` stays true.
    pub applicable: bool,
    pub detail: String,
}

impl Check {
    pub fn not_applicable(name: impl Into<String>, why: impl Into<String>) -> Check {
        Check {
            applicable: false,
            ..check(name, true, why)
        }
    }
}

pub(super) fn check(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        applicable: true,
        detail: detail.into(),
    }
}

/// The capabilities each service keeps (after `cap_drop: [ALL]`), and why: README's table.
pub const CAPS: [(&str, &[&str]); 4] = [
    ("app", &[]),
    (
        "db",
        &["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"],
    ),
    ("redis", &["CHOWN", "SETGID", "SETUID"]),
    ("cache", &["SETGID", "SETUID"]),
];

/// Every check of the stack, static ones from `docker inspect`, then the live probes; the app's
/// own (its routes, ISR, images) are in app_checks.
pub fn run(sh: &Shell, cs: &[Container]) -> Vec<Check> {
    let mut out: Vec<Check> = cs.iter().flat_map(static_checks).collect();
    out.push(no_secret_in_inspect(sh, cs));
    for c in cs.iter().filter(|c| c.service != "app") {
        out.push(internal_only(sh, c));
    }
    let find = |s: &str| cs.iter().find(|c| c.service == s);
    if let Some(redis) = find("redis") {
        out.extend(redis_checks(sh, &redis.name, redis.memory_limit));
    }
    if let Some(db) = find("db") {
        out.extend(db_checks(sh, &db.name));
    }
    if let Some(app) = find("app") {
        out.extend(runner_checks(sh, &app.image));
    }
    out
}

fn normalize_cap(c: &str) -> String {
    c.trim_start_matches("CAP_").to_ascii_uppercase()
}

/// What `docker inspect` alone can tell about one service.
pub fn static_checks(c: &Container) -> Vec<Check> {
    let s = &c.service;
    let h = &c.hardening;
    let allowed: &[&str] = CAPS.iter().find(|(n, _)| n == s).map_or(&[], |(_, a)| a);
    let extra: Vec<String> = h
        .cap_add
        .iter()
        .map(|x| normalize_cap(x))
        .filter(|x| !allowed.contains(&x.as_str()))
        .collect();
    let leaked: Vec<&str> = h
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, v)| k.contains("PASSWORD") && !k.ends_with("_FILE") && !v.is_empty())
        .map(|(k, _)| k)
        .collect();
    let mut out = vec![
        check(
            format!("{s}: memory limit"),
            c.memory_limit > 0,
            format!("{} bytes", c.memory_limit),
        ),
        check(
            format!("{s}: restart policy"),
            !matches!(c.restart_policy.as_str(), "" | "no"),
            c.restart_policy.clone(),
        ),
        check(
            format!("{s}: no-new-privileges"),
            h.security_opt
                .iter()
                .any(|o| o.starts_with("no-new-privileges") && !o.ends_with("false")),
            h.security_opt.join(","),
        ),
        check(
            format!("{s}: capabilities"),
            h.cap_drop.iter().any(|x| normalize_cap(x) == "ALL") && extra.is_empty(),
            format!(
                "drop {:?}, add {:?}; not allowed: {extra:?}",
                h.cap_drop, h.cap_add
            ),
        ),
        check(format!("{s}: read-only root filesystem"), h.read_only, ""),
        check(
            format!("{s}: pids limit"),
            h.pids_limit > 0,
            h.pids_limit.to_string(),
        ),
        check(
            format!("{s}: log rotation"),
            h.log_driver != "json-file"
                || (!h.log_max_size.is_empty() && !h.log_max_file.is_empty()),
            format!(
                "{} max-size={} max-file={}",
                h.log_driver, h.log_max_size, h.log_max_file
            ),
        ),
        check(
            format!("{s}: no password in its environment"),
            leaked.is_empty(),
            leaked.join(", "),
        ),
    ];
    if s == "app" {
        let uid = h.user.split(':').next().unwrap_or("");
        out.push(check(
            "app: numeric non-root user",
            uid.parse::<u32>().is_ok_and(|u| u != 0),
            format!("user {:?}", h.user),
        ));
    } else {
        out.push(check(
            format!("{s}: no published port"),
            h.published.is_empty(),
            h.published.join(", "),
        ));
    }
    out
}

/// No secret's value (as written, or percent-encoded as in a URL) anywhere in `docker inspect`
/// of the stack's containers: environment, labels, commands, mounts.
fn no_secret_in_inspect(sh: &Shell, cs: &[Container]) -> Check {
    let ids: Vec<String> = cs.iter().map(|c| c.id.clone()).collect();
    let name = "stack: no password in `docker inspect` of any container";
    match docker::inspect_raw(sh, &ids) {
        Ok(text) => {
            let leaked = crate::secrets::leaked_in(&crate::util::project_root(), &text);
            check(
                name,
                leaked.is_empty(),
                format!("secrets found: {leaked:?}"),
            )
        }
        Err(e) => check(name, false, e.to_string()),
    }
}

/// db and redis sit only on `internal: true` networks: no egress.
fn internal_only(sh: &Shell, c: &Container) -> Check {
    let open: Vec<&String> = c
        .hardening
        .networks
        .iter()
        .filter(|n| !docker::network_internal(sh, n).unwrap_or(false))
        .collect();
    check(
        format!("{}: internal networks only", c.service),
        open.is_empty() && !c.hardening.networks.is_empty(),
        format!("networks {:?}; with egress: {open:?}", c.hardening.networks),
    )
}

fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Unauthenticated PING is refused; the app's ACL user may not reconfigure or wipe Redis;
/// protected mode on; maxmemory below the container's limit with `noeviction` (BullMQ).
fn redis_checks(sh: &Shell, name: &str, limit: i64) -> Vec<Check> {
    let as_app = |cmd: &str| {
        let script = format!(
            "REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" redis-cli --user app {cmd}"
        );
        docker::exec(sh, name, &["sh", "-c", &script])
            .map(|o| output_text(&o))
            .unwrap_or_else(|e| e.to_string())
    };
    let denied: Vec<String> = [
        "CONFIG SET maxmemory-policy allkeys-lru",
        "FLUSHALL",
        "ACL LIST",
    ]
    .iter()
    .map(|c| format!("{c}: {}", as_app(c).trim()))
    .collect();
    let app_ping = as_app("PING");
    let noauth = docker::exec(sh, name, &["redis-cli", "ping"]).map(|o| output_text(&o));
    let noauth = noauth.unwrap_or_else(|e| e.to_string());
    let script = "REDISCLI_AUTH=\"$(cat /run/secrets/redis_admin_password)\" redis-cli config get maxmemory maxmemory-policy protected-mode";
    let conf = docker::exec(sh, name, &["sh", "-c", script]).map(|o| output_text(&o));
    let conf = conf.unwrap_or_else(|e| e.to_string());
    let pairs: Vec<&str> = conf.lines().map(str::trim).collect();
    let get = |k: &str| {
        pairs
            .windows(2)
            .find(|w| w[0] == k)
            .map(|w| w[1].to_string())
            .unwrap_or_default()
    };
    let maxmemory: i64 = get("maxmemory").parse().unwrap_or(0);
    vec![
        check(
            "redis: requires authentication",
            noauth.contains("NOAUTH"),
            format!("unauthenticated PING answered {:?}", noauth.trim()),
        ),
        check(
            "redis: the app user may not reconfigure or wipe it",
            app_ping.contains("PONG") && denied.iter().all(|d| d.contains("NOPERM")),
            format!("as `app`: PING {}; {}", app_ping.trim(), denied.join("; ")),
        ),
        check(
            "redis: protected mode",
            get("protected-mode") == "yes",
            get("protected-mode"),
        ),
        check(
            "redis: maxmemory below the container limit, noeviction",
            maxmemory > 0 && maxmemory < limit && get("maxmemory-policy") == "noeviction",
            format!(
                "maxmemory {maxmemory} of a {limit} byte limit, policy {}",
                get("maxmemory-policy")
            ),
        ),
    ]
}

/// The app role is not a superuser, cannot act as one, does not own the database; the app's
/// connections use it.
fn db_checks(sh: &Shell, name: &str) -> Vec<Check> {
    let as_app = "psql -U \"$APP_DB_USER\" -d \"$POSTGRES_DB\" -XtAc";
    let rolsuper = format!("{as_app} 'select rolsuper from pg_roles where rolname = current_user'");
    let alter = format!("{as_app} 'ALTER SYSTEM SET work_mem = 1024'");
    let alter_db = format!("{as_app} \"ALTER DATABASE \\\"$POSTGRES_DB\\\" CONNECTION LIMIT 0\"");
    let sessions = "psql -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -XtAc \"select usename from pg_stat_activity \
                    where backend_type = 'client backend' and pid <> pg_backend_pid() and datname = current_database()\"";
    let run = |script: &str| {
        docker::exec(sh, name, &["sh", "-c", script])
            .map(|o| output_text(&o))
            .unwrap_or_else(|e| e.to_string())
    };
    let rolsuper = run(&rolsuper);
    let alter = run(&alter);
    let alter_db = run(&alter_db);
    let sessions = run(sessions);
    let app_user = run("printf %s \"$APP_DB_USER\"");
    let users: Vec<&str> = sessions
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    vec![
        check(
            "db: app role is not superuser",
            rolsuper.trim() == "f",
            rolsuper.trim().to_string(),
        ),
        check(
            "db: app role cannot run a superuser command",
            alter.contains("permission denied") || alter.contains("must be superuser"),
            format!("ALTER SYSTEM as the app role: {}", alter.trim()),
        ),
        check(
            "db: app role does not own the database",
            alter_db.contains("must be owner"),
            format!(
                "ALTER DATABASE … CONNECTION LIMIT 0 as the app role: {}",
                alter_db.trim()
            ),
        ),
        check(
            "db: the app connects as its own role",
            !users.is_empty() && users.iter().all(|u| *u == app_user),
            format!("sessions of {users:?}, app role {app_user:?}"),
        ),
    ]
}

/// Inside the runner image: no setuid/setgid file, no CA the distribution did not ship, no
/// NODE_EXTRA_CA_CERTS; and no PEM and no secret in its history.
pub fn runner_checks(sh: &Shell, image: &str) -> Vec<Check> {
    const SEP: &str = "@@axion-section@@";
    let script = format!(
        "find / -xdev -perm /6000 -type f 2>/dev/null; echo {SEP}; \
         ls -A /usr/local/share/ca-certificates 2>/dev/null; echo {SEP}; \
         printenv NODE_EXTRA_CA_CERTS; echo {SEP}; \
         cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null"
    );
    let out = docker::inspect_image_with(sh, image, &script).unwrap_or_else(|e| format!("{e:#}"));
    let parts: Vec<&str> = out.split(SEP).collect();
    let part = |i: usize| parts.get(i).map_or("<missing>", |p| p.trim());
    let host_cas = host::certificate_blocks(&host::extra_ca_pem());
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    let bundle = squash(part(3));
    let trusted_host_cas = host_cas
        .iter()
        .filter(|c| bundle.contains(&squash(c)))
        .count();
    let history = docker::history(sh, image).unwrap_or_else(|e| e.to_string());
    vec![
        check(
            "runner: no setuid/setgid files",
            parts.len() == 4 && part(0).is_empty(),
            part(0).replace('\n', " "),
        ),
        check(
            "runner: only the distribution's CAs",
            parts.len() == 4 && part(1).is_empty() && part(2).is_empty() && trusted_host_cas == 0,
            format!(
                "extra CA files {:?}, NODE_EXTRA_CA_CERTS {:?}, {trusted_host_cas} of the build host's {} extra CAs in the bundle",
                part(1),
                part(2),
                host_cas.len()
            ),
        ),
        check(
            "runner: no PEM in its history",
            !history.contains("BEGIN CERTIFICATE") && !history.contains("EXTRA_CA_CERTS="),
            "",
        ),
        no_secret_in_history(&history),
    ]
}

/// No secret's value (the passwords, the server-actions key) in any layer's command: build
/// secrets are mounts, never arguments.
fn no_secret_in_history(history: &str) -> Check {
    let leaked = crate::secrets::leaked_in(&crate::util::project_root(), history);
    check(
        "runner: no secret in its history",
        leaked.is_empty(),
        format!("secrets found: {leaked:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::container::Hardening;

    fn hardened(service: &str, caps: &[&str]) -> Container {
        Container {
            service: service.into(),
            memory_limit: 1 << 28,
            restart_policy: "unless-stopped".into(),
            hardening: Hardening {
                user: if service == "app" {
                    "1000:1000".into()
                } else {
                    String::new()
                },
                cap_drop: vec!["ALL".into()],
                cap_add: caps.iter().map(|c| format!("CAP_{c}")).collect(),
                security_opt: vec!["no-new-privileges:true".into()],
                read_only: true,
                pids_limit: 64,
                log_driver: "json-file".into(),
                log_max_size: "10m".into(),
                log_max_file: "3".into(),
                env: vec!["DB_PASSWORD_FILE=/run/secrets/x".into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn failing(cs: Vec<Check>) -> Vec<String> {
        cs.into_iter().filter(|c| !c.ok).map(|c| c.name).collect()
    }

    #[test]
    fn a_hardened_service_passes() {
        for (s, caps) in CAPS {
            assert_eq!(
                failing(static_checks(&hardened(s, caps))),
                Vec::<String>::new(),
                "{s}"
            );
        }
    }

    #[test]
    fn each_missing_property_is_named() {
        let mut c = hardened("redis", &["CHOWN", "SETGID", "SETUID", "NET_ADMIN"]);
        c.hardening.read_only = false;
        c.hardening.env.push("REDIS_PASSWORD=hunter2".into());
        c.hardening.published = vec!["6379/tcp".into()];
        c.hardening.log_max_size.clear();
        assert_eq!(
            failing(static_checks(&c)),
            [
                "redis: capabilities",
                "redis: read-only root filesystem",
                "redis: log rotation",
                "redis: no password in its environment",
                "redis: no published port"
            ]
        );
        let mut app = hardened("app", &[]);
        app.hardening.user = "bun".into();
        app.hardening.security_opt.clear();
        assert_eq!(
            failing(static_checks(&app)),
            ["app: no-new-privileges", "app: numeric non-root user"]
        );
    }
}
