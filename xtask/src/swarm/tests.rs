use super::*;
use crate::docker;
use stack_file::bytes;

/// What `docker compose config --format json` prints for a trimmed prod + swarm model.
fn model() -> Value {
    json!({
        "name": "axion-hub-prod",
        "services": {
            "app": {
                "build": {"context": "/r/app"},
                "depends_on": {"db": {"condition": "service_healthy", "required": true}},
                "restart": "unless-stopped",
                "security_opt": ["no-new-privileges:true"],
                "command": null,
                "entrypoint": null,
                "read_only": true,
                "tmpfs": ["/tmp:size=64m"],
                "volumes": [{"type": "tmpfs", "target": "/app/.next/cache", "tmpfs": {"size": "268435456"}}],
                "networks": {"edge": null, "backend": null},
                "secrets": [{"source": "app_db_password", "target": "/run/secrets/app_db_password"}],
                "deploy": {"replicas": 2, "endpoint_mode": "dnsrr"}
            },
            "proxy": {
                "ports": [{"mode": "host", "target": 8080, "published": "3000", "protocol": "tcp"}],
                "configs": [{"source": "proxy.cfg", "target": "/usr/local/etc/haproxy/haproxy.cfg"}],
                "networks": {"edge": null}
            }
        },
        "networks": {
            "edge": {"name": "axion-hub-prod_edge", "driver": "overlay"},
            "backend": {"name": "axion-hub-prod_backend", "driver": "overlay", "internal": true}
        },
        "volumes": {"pgdata": {"name": "axion-hub-prod_pgdata"}},
        "secrets": {
            "app_db_password": {"name": "axion-hub-prod_app_db_password", "file": "/r/secrets/app_db_password"},
            "extra_ca": {"name": "axion-hub-prod_extra_ca", "file": "/dev/null"}
        },
        "configs": {"proxy.cfg": {"name": "axion-hub-prod_proxy.cfg", "file": "/r/docker/swarm/haproxy.cfg"}}
    })
}

fn read(_kind: &str, f: &str) -> Result<Vec<u8>> {
    Ok(format!("content of {f}").into_bytes())
}

#[test]
fn compose_only_keys_go_and_nulls_with_them() {
    let s = to_stack(model(), "axion", read).unwrap();
    assert!(s.get("name").is_none());
    let app = &s["services"]["app"];
    for k in [
        "build",
        "depends_on",
        "restart",
        "security_opt",
        "command",
        "entrypoint",
        "tmpfs",
    ] {
        assert!(app.get(k).is_none(), "{k} left in {app}");
    }
    assert_eq!(app["read_only"], json!(true));
    assert_eq!(app["networks"], json!({"edge": {}, "backend": {}}));
}

#[test]
fn tmpfs_becomes_mounts_and_sizes_numbers() {
    let s = to_stack(model(), "axion", read).unwrap();
    let vols = s["services"]["app"]["volumes"].as_array().unwrap();
    assert_eq!(vols[0]["tmpfs"]["size"], json!(268435456));
    assert_eq!(
        vols[1],
        json!({"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 67108864}})
    );
    assert_eq!(s["services"]["proxy"]["ports"][0]["published"], json!(3000));
}

#[test]
fn secrets_and_configs_are_named_by_content_and_unused_ones_dropped() {
    let s = to_stack(model(), "axion", read).unwrap();
    let secrets = s["secrets"].as_object().unwrap();
    assert_eq!(
        secrets.len(),
        1,
        "extra_ca is used by no service: {secrets:?}"
    );
    let name = secrets["app_db_password"]["name"].as_str().unwrap();
    assert!(name.starts_with("axion_app_db_password-"), "{name}");
    // A changed file is a new object (swarm's are immutable); the same file the same one.
    let changed = to_stack(model(), "axion", |_, f| Ok(format!("new {f}").into_bytes())).unwrap();
    assert_ne!(
        changed["secrets"]["app_db_password"]["name"]
            .as_str()
            .unwrap(),
        name
    );
    let again = to_stack(model(), "axion", read).unwrap();
    assert_eq!(again["secrets"], s["secrets"]);
    assert!(
        s["configs"]["proxy.cfg"]["name"]
            .as_str()
            .unwrap()
            .starts_with("axion_proxy.cfg-")
    );
    // Networks and volumes take the stack's namespace, not compose's project name.
    assert!(s["networks"]["edge"].get("name").is_none());
    assert!(s["volumes"]["pgdata"].get("name").is_none());
    assert_eq!(s["networks"]["backend"]["internal"], json!(true));
}

#[test]
fn a_secret_file_that_cannot_be_read_is_named() {
    let e = to_stack(model(), "axion", |_, f| bail!("no such file {f}")).unwrap_err();
    assert!(
        format!("{e:#}").contains("secrets.app_db_password"),
        "{e:#}"
    );
}

#[test]
fn tmpfs_options_stack_deploy_cannot_take_are_refused() {
    let mut m = model();
    m["services"]["app"]["tmpfs"] = json!(["/tmp:size=1m,noexec"]);
    let e = to_stack(m, "axion", read).unwrap_err();
    assert!(format!("{e:#}").contains("noexec"), "{e:#}");
    assert_eq!(bytes("2k").unwrap(), 2048);
    assert_eq!(bytes("1g").unwrap(), 1 << 30);
    assert!(bytes("lots").is_err());
}

#[test]
fn membership_and_service_rows_parse() {
    let m = parse_membership(
        r#"{"NodeID":"x","LocalNodeState":"active","ControlAvailable":true,"Nodes":3}"#,
    )
    .unwrap();
    assert_eq!((m.state.as_str(), m.manager, m.nodes), ("active", true, 3));
    let m = parse_membership(r#"{"LocalNodeState":"inactive","ControlAvailable":false}"#).unwrap();
    assert_eq!((m.state.as_str(), m.manager), ("inactive", false));

    let rows = parse_services(
        "{\"Name\":\"axion_app\",\"Replicas\":\"1/2\",\"Image\":\"r/app@sha256:1\"}\n\
         {\"Name\":\"axion_proxy\",\"Replicas\":\"3/3\",\"Image\":\"r/h\"}\n\
         {\"Name\":\"axion_db\",\"Replicas\":\"1/1 (max 1 per node)\",\"Image\":\"r/p\"}\n",
        "axion",
    );
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (rows[0].service.as_str(), rows[0].running, rows[0].desired),
        ("app", 1, 2)
    );
    assert_eq!(rows[2].desired, 1);
}

#[test]
fn digests_are_found_for_their_repository() {
    let d = r#"["127.0.0.1:5000/axion-hub/app@sha256:aa","other/app@sha256:bb"]"#;
    assert_eq!(
        digest_for(d, "127.0.0.1:5000/axion-hub/app").as_deref(),
        Some("sha256:aa")
    );
    assert_eq!(digest_for(d, "other/app").as_deref(), Some("sha256:bb"));
    assert_eq!(digest_for("[]", "x"), None);
}

#[test]
fn targets_name_their_engine() {
    assert_eq!(docker::Engine::configured().args(&["info"]), vec!["info"]);
    assert_eq!(
        docker::Engine::host("unix:///tmp/n1/docker.sock").args(&["node", "ls"]),
        vec!["-H", "unix:///tmp/n1/docker.sock", "node", "ls"]
    );
}

#[test]
fn convergence_reads_in_deploys_json_and_for_a_person() {
    let c = Converged {
        service: "app".into(),
        replicas: 2,
        after: Duration::from_millis(14_200),
    };
    assert_eq!(
        c.to_json(),
        json!({"service": "app", "replicas": 2, "seconds": 14.2})
    );
    assert_eq!(c.line(), "app 2/2 after 14.2s");
}

/// Hostile table, row 5: a secret's object name is keyed (says nothing of the secret), wherever
/// its file is (the TLS key may be outside secrets/); a config's is its content's.
#[test]
fn secret_names_are_keyed_config_names_are_not() {
    let dir = std::env::temp_dir().join(format!("xtask-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("some.pem");
    std::fs::write(&file, "value").unwrap();
    let named =
        |kind: &str, key: &[u8]| super::name_source(kind, file.to_str().unwrap(), key).unwrap();
    assert_eq!(named("configs", b"k1"), b"value");
    assert_eq!(named("secrets", b"k1"), b"k1value");
    assert_ne!(named("secrets", b"k1"), named("secrets", b"k2"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Hostile table, row 7: the proxy terminates TLS from the secret, redirects HTTP, sends HSTS
/// over HTTPS only, appends X-Forwarded-For and sets X-Forwarded-Proto itself.
#[test]
fn the_edge_terminates_tls_redirects_and_forwards_the_client() {
    let root = crate::util::project_root();
    let cfg = std::fs::read_to_string(root.join("docker/swarm/haproxy.cfg")).unwrap();
    let lines: Vec<&str> = cfg.lines().map(str::trim).collect();
    let has = |l: &str| lines.iter().any(|x| x.starts_with(l));
    assert!(has("bind :8443 ssl crt /run/secrets/tls.pem"), "{cfg}");
    assert!(has("option forwardfor"), "{cfg}");
    assert!(
        has("http-request redirect location \"https://") && cfg.contains("code 308 if !{ ssl_fc }")
    );
    assert!(has(
        "http-request set-header X-Forwarded-Proto https if { ssl_fc }"
    ));
    assert!(has(
        "http-request set-header X-Forwarded-Proto http if !{ ssl_fc }"
    ));
    assert!(has(
        "http-response set-header Strict-Transport-Security \"max-age=31536000\" if { ssl_fc }"
    ));
    let stack = std::fs::read_to_string(root.join("docker-compose.swarm.yml")).unwrap();
    assert!(
        stack.contains("file: ${AXION_TLS_PEM:-./secrets/tls.pem}"),
        "the PEM is a secret"
    );
    assert!(stack.contains("published: ${HTTPS_PORT:-3443}"), "{stack}");
}

/// Hostile table, row 6: `--encrypted-overlays` encrypts every overlay network, nothing else.
#[test]
fn encrypted_overlays_are_every_overlay_network() {
    let mut file = json!({"networks": {
        "edge": {"driver": "overlay"},
        "backend": {"driver": "overlay", "internal": true},
        "other": {"driver": "bridge"}
    }});
    stack_file::encrypt_overlays(&mut file);
    assert_eq!(file["networks"]["edge"]["driver_opts"]["encrypted"], "");
    assert_eq!(file["networks"]["backend"]["driver_opts"]["encrypted"], "");
    assert_eq!(file["networks"]["backend"]["internal"], true);
    assert!(file["networks"]["other"].get("driver_opts").is_none());
}

/// A POST that reached a server is never sent again; GET and HEAD are, and so is any request
/// whose connection failed before it was sent.
#[test]
fn the_edge_retries_only_what_is_safe_to_send_twice() {
    let cfg = std::fs::read_to_string(crate::util::project_root().join("docker/swarm/haproxy.cfg"))
        .unwrap();
    let lines: Vec<&str> = cfg.lines().map(str::trim).collect();
    assert!(
        lines.contains(&"http-request disable-l7-retry unless METH_GET || METH_HEAD"),
        "{cfg}"
    );
    let retry_on = lines.iter().find(|l| l.starts_with("retry-on ")).unwrap();
    assert!(retry_on.contains("conn-failure"), "{retry_on}");
}

/// Liveness and readiness apart (issue: faults at scale): what kills a task asks only whether
/// it answers; what routes to it asks only whether it drains; neither asks the shared
/// dependencies, whose outage would otherwise take every replica out at once.
#[test]
fn health_checks_ask_the_task_not_its_dependencies() {
    let root = crate::util::project_root();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let cfg = read("docker/swarm/haproxy.cfg");
    assert!(cfg.contains("option httpchk GET /api/ready"), "{cfg}");
    let dockerfile = read("docker/Dockerfile");
    let healthcheck = dockerfile
        .split("HEALTHCHECK")
        .nth(1)
        .and_then(|r| r.split("\nCMD").next())
        .unwrap();
    assert!(healthcheck.contains("/api/live"), "{healthcheck}");
    let prod = read("docker-compose.prod.yml");
    assert!(
        prod.contains("http://127.0.0.1:3000/api/live"),
        "prod's app health check"
    );
    assert!(
        !prod.contains("127.0.0.1:3000/api/health"),
        "prod's app health check"
    );
    let start = read("app/start.sh");
    assert!(
        start.trim_end().ends_with("exec bun serve.mjs"),
        "the drain's entry point"
    );
}
