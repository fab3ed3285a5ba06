use serde_json::json;

use super::tasks::{Spec, parse_tasks, rows, specs};
use super::*;

const STACK_PS: &str = r#"{"CurrentState":"Running 2 minutes ago","DesiredState":"Running","Error":"","ID":"t2","Image":"reg:5000/axion-hub/app@sha256:aa","Name":"axion_app.1","Node":"node2","Ports":""}
{"CurrentState":"Failed 3 minutes ago","DesiredState":"Shutdown","Error":"task: non-zero exit (1)","ID":"t1","Image":"reg:5000/axion-hub/app@sha256:aa","Name":"axion_app.1","Node":"node2","Ports":""}
{"CurrentState":"Starting 5 seconds ago","DesiredState":"Running","Error":"","ID":"t3","Image":"reg:5000/axion-hub/app@sha256:aa","Name":"axion_app.2","Node":"node3","Ports":""}
{"CurrentState":"Running 9 minutes ago","DesiredState":"Running","Error":"","ID":"t4","Image":"reg:5000/axion-hub/postgres@sha256:bb","Name":"axion_db.1","Node":"node1","Ports":""}"#;

#[test]
fn swarm_rows_show_each_running_task_its_restarts_and_memory_where_readable() {
    let tasks = parse_tasks(STACK_PS, "axion");
    assert_eq!(tasks.len(), 4);
    let specs = [
        (
            "app".to_string(),
            Spec {
                limit: Some(512 << 20),
                checked: true,
            },
        ),
        (
            "db".to_string(),
            Spec {
                limit: Some(512 << 20),
                checked: false,
            },
        ),
    ]
    .into_iter()
    .collect();
    let usage = [("axion_db.1.t4".to_string(), 100 << 20)];
    let rows = rows(&tasks, &specs, &usage);
    assert_eq!(
        rows.len(),
        3,
        "the failed task is history, not a row: {rows:?}"
    );
    let app1 = &rows[0];
    assert_eq!(
        (app1.task.as_str(), app1.node.as_str()),
        ("axion_app.1", "node2")
    );
    assert_eq!(
        (app1.health.as_str(), app1.restarts, app1.healthy),
        ("healthy", 1, true)
    );
    assert_eq!((app1.memory, app1.limit), (None, Some(512 << 20)));
    let app2 = &rows[1];
    assert_eq!((app2.state.as_str(), app2.healthy), ("starting", false));
    let db = &rows[2];
    assert_eq!((db.health.as_str(), db.memory), ("-", Some(100 << 20)));
}

#[test]
fn a_service_spec_gives_its_memory_limit_and_health_check() {
    let inspect = json!([
        {"Spec": {"Name": "axion_app", "TaskTemplate": {
            "ContainerSpec": {"Healthcheck": {"Test": ["CMD", "bun", "live.mjs"]}},
            "Resources": {"Limits": {"MemoryBytes": 536870912}}}}},
        {"Spec": {"Name": "axion_cache", "TaskTemplate": {"ContainerSpec": {}}}},
        {"Spec": {"Name": "other_app", "TaskTemplate": {"ContainerSpec": {}}}}
    ])
    .to_string();
    let s = specs(&inspect, "axion");
    assert_eq!(s.len(), 2);
    assert_eq!(
        s["app"],
        Spec {
            limit: Some(536870912),
            checked: true
        }
    );
    assert_eq!(
        s["cache"],
        Spec {
            limit: None,
            checked: false
        }
    );
}

#[test]
fn status_is_healthy_only_with_rows_and_no_problem_and_says_why_not() {
    let row = Row {
        service: "app".into(),
        task: "axion_app.1".into(),
        node: "node2".into(),
        state: "running".into(),
        health: "healthy".into(),
        healthy: true,
        memory: Some(181 << 20),
        limit: Some(512 << 20),
        ..Default::default()
    };
    let mut s = Status {
        target: "swarm stack axion".into(),
        rows: vec![row],
        ..Default::default()
    };
    assert!(s.healthy());
    assert!(s.text().contains("181 MiB / 512 MiB"), "{}", s.text());
    assert!(
        s.text().ends_with("healthy: 1 of 1 running\n"),
        "{}",
        s.text()
    );
    s.problems.push("app: 1 of 2 tasks running".into());
    assert!(!s.healthy());
    assert!(
        s.text()
            .contains("NOT healthy:\n  app: 1 of 2 tasks running")
    );
    assert_eq!(s.to_json()["healthy"], json!(false));
    assert!(
        !Status::default().healthy(),
        "nothing running is not healthy"
    );
}

#[test]
fn the_targets_follow_the_flags_and_refuse_what_contradicts() {
    assert!(matches!(
        Target::from_flags(false, None, None).unwrap(),
        Target::Compose {
            kind: StackKind::Dev,
            ..
        }
    ));
    assert_eq!(
        Target::from_flags(true, None, None).unwrap(),
        Target::Compose {
            kind: StackKind::Prod,
            project: "axion-hub-prod".into()
        }
    );
    assert!(matches!(
        Target::from_flags(false, Some("axion"), Some("ssh://ops@m1")).unwrap(),
        Target::Swarm { ref stack, .. } if stack == "axion"
    ));
    let e = Target::from_flags(true, Some("axion"), None).unwrap_err();
    assert!(e.to_string().contains("exclude each other"), "{e}");
    let e = Target::from_flags(false, None, Some("ssh://ops@m1")).unwrap_err();
    assert!(e.to_string().contains("give --stack NAME"), "{e}");
}
