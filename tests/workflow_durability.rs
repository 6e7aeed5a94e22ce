//! Durable runs with real processes: a `formwork serve` killed with SIGKILL in the middle of
//! hundreds of runs loses none, applies no step twice and fires no timer twice once restarted
//! (both databases); two processes on one PostgreSQL share the runs, timers and deliveries,
//! each effect once.

mod common;

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use common::{
    Backend, Client, Process, WebhookSink, process_admin, publish_definition, publish_entity,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";
const RUNS: usize = 150;
/// Log records each run creates.
const PER_RUN: usize = 6;

async fn setup(admin: &Client, hook: &str) {
    let item = json!({"type": "object", "x-label": {"en": "Item"},
        "properties": {"n": {"type": "integer", "x-kind": "integer", "x-label": {"en": "N"}}}});
    let (status, body) = publish_entity(admin, "item", item).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let log = json!({"type": "object", "x-label": {"en": "Log"},
    "properties": {
        "item": {"type": "string", "x-kind": "text", "x-label": {"en": "Item"}, "x-indexed": true},
        "n": {"type": "integer", "x-kind": "integer", "x-label": {"en": "N"}}
    }});
    let (status, body) = publish_entity(admin, "log", log).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut steps: Vec<Value> = (1..=5)
        .map(|k| {
            json!({"id": format!("s{k}"), "type": "create_record", "entity": "log",
                        "fields": {"item": "{{ record.id }}", "n": k}})
        })
        .collect();
    steps.push(json!({"id": "pause", "type": "wait", "duration": "PT1S"}));
    steps.push(json!({"id": "s6", "type": "create_record", "entity": "log",
                      "fields": {"item": "{{ record.id }}", "n": 6}}));
    steps.push(
        json!({"id": "tell", "type": "webhook", "url": hook, "body": {"item": "{{ record.id }}"}}),
    );
    let (status, body) = publish_definition(
        admin,
        "workflow",
        "chain",
        json!({"label": {"en": "Chain"}, "entity": "item", "trigger": {"type": "record_created"}, "steps": steps}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn start_runs(admin: &Client) -> Vec<String> {
    let records: Vec<Value> = (0..RUNS).map(|n| json!({"fields": {"n": n}})).collect();
    let (status, body) = admin
        .post(
            &format!("{W}/entities/item/records/batch"),
            json!({"records": records}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["records"]
        .as_array()
        .or(body.as_array())
        .expect("created")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn logs_total(admin: &Client) -> i64 {
    let (_, body) = admin
        .post(
            &format!("{W}/entities/log/records/query"),
            json!({"limit": 1, "total": "exact"}),
        )
        .await;
    body["total"].as_i64().unwrap_or(0)
}

async fn wait_until_done(admin: &Client) -> Vec<Value> {
    for _ in 0..1200 {
        let (_, runs) = admin
            .get(&format!("{W}/workflow-runs?workflow=chain&limit=500"))
            .await;
        let runs = runs.as_array().cloned().unwrap_or_default();
        if runs.len() == RUNS && runs.iter().all(|r| r["status"] == "completed") {
            return runs;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    let (_, runs) = admin
        .get(&format!("{W}/workflow-runs?workflow=chain&limit=500"))
        .await;
    panic!("runs did not all complete: {runs}");
}

/// Every run created each log record once, logged each step once, fired its timer once, and
/// its webhook reached the receiver under one idempotency key.
async fn check_exactly_once(admin: &Client, items: &[String], runs: &[Value], sink: &WebhookSink) {
    let mut per_item: HashMap<String, Vec<i64>> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = json!({"limit": 500});
        if let Some(c) = &cursor {
            query["cursor"] = json!(c);
        }
        let (status, page) = admin
            .post(&format!("{W}/entities/log/records/query"), query)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for record in page["records"].as_array().expect("records") {
            per_item
                .entry(record["fields"]["item"].as_str().expect("item").to_owned())
                .or_default()
                .push(record["fields"]["n"].as_i64().expect("n"));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    for item in items {
        let mut ns = per_item.get(item).cloned().unwrap_or_default();
        ns.sort_unstable();
        assert_eq!(ns, (1..=PER_RUN as i64).collect::<Vec<_>>(), "item {item}");
    }
    for run in runs.iter().take(20) {
        let (_, detail) = admin
            .get(&format!(
                "{W}/workflow-runs/{}",
                run["id"].as_str().expect("id")
            ))
            .await;
        let steps: Vec<&str> = detail["steps"]
            .as_array()
            .expect("log")
            .iter()
            .map(|s| s["step"].as_str().expect("step"))
            .collect();
        assert_eq!(
            steps,
            ["s1", "s2", "s3", "s4", "s5", "pause", "s6", "tell"],
            "{detail}"
        );
    }
    // Deliveries: at least once (they go out after the run's step commits), one key per run.
    for _ in 0..300 {
        let seen: std::collections::HashSet<String> =
            sink.received().into_iter().map(|(key, _)| key).collect();
        if seen.len() >= RUNS {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    let mut keys: HashMap<String, usize> = HashMap::new();
    for (key, _) in sink.received() {
        *keys.entry(key).or_default() += 1;
    }
    assert_eq!(keys.len(), RUNS, "one idempotency key per run");
}

/// SIGKILL in the middle of the runs; the next process finishes them all, exactly once.
async fn a_killed_process_loses_no_run(backend: Backend) {
    let (database_url, _dir) = common::fresh_database(backend).await;
    let sink = WebhookSink::start(Vec::new()).await;
    let env = [
        ("FORMWORK_JOB_LEASE_SECS", "1"),
        ("FORMWORK_JOB_POLL_MS", "20"),
        ("FORMWORK_WORKERS", "4"),
        ("FORMWORK_DEMO_DATA", "false"),
    ];
    let mut first = Process::spawn(&database_url, &env).await;
    let admin = process_admin(&first.address).await;
    setup(&admin, &sink.url).await;
    let items = start_runs(&admin).await;
    let total = (RUNS * PER_RUN) as i64;
    let mut killed_at = None;
    for _ in 0..3000 {
        let done = logs_total(&admin).await;
        if done > 0 {
            assert!(
                done < total / 2,
                "the runs went too far before the kill: {done}"
            );
            first.kill_hard();
            killed_at = Some(done);
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    assert!(killed_at.is_some(), "the runs started");
    let second = Process::spawn(&database_url, &env).await;
    let admin = process_admin(&second.address).await;
    let runs = wait_until_done(&admin).await;
    check_exactly_once(&admin, &items, &runs, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_postgres_share_runs_and_timers() {
    let (database_url, _) = common::fresh_database(Backend::Postgres).await;
    let sink = WebhookSink::start(Vec::new()).await;
    let env = [
        ("FORMWORK_JOB_POLL_MS", "20"),
        ("FORMWORK_WORKERS", "4"),
        ("FORMWORK_DEMO_DATA", "false"),
    ];
    let first = Process::spawn(&database_url, &env).await;
    let admin = process_admin(&first.address).await;
    setup(&admin, &sink.url).await;
    let second = Process::spawn(&database_url, &env).await;
    let items = start_runs(&admin).await;
    let runs = wait_until_done(&admin).await;
    check_exactly_once(&admin, &items, &runs, &sink).await;
    // Both processes advanced runs, and every timer fired once.
    drop((first, second));
    let db = common::connect(&database_url).await;
    use sea_orm::{ConnectionTrait, Statement};
    let count = |sql: &'static str| {
        let conn = db.conn().clone();
        async move {
            let row = conn
                .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
                .await
                .expect("query")
                .expect("row");
            row.try_get_by_index::<i64>(0).expect("count")
        }
    };
    let workers = count("SELECT COUNT(DISTINCT a.worker) FROM job_attempts a JOIN jobs j ON j.id = a.job_id WHERE j.kind = 'workflow.advance'").await;
    assert!(workers >= 2, "both processes took part ({workers})");
    let wakes = count("SELECT COUNT(*) FROM jobs WHERE kind = 'workflow.advance' AND dedupe_key LIKE '%:wake:%' AND status = 'succeeded'").await;
    assert_eq!(wakes, RUNS as i64, "one timer per run");
    let double = count("SELECT COUNT(*) FROM (SELECT run_id, step_id FROM workflow_steps WHERE status = 'succeeded' GROUP BY run_id, step_id HAVING COUNT(*) > 1) AS twice").await;
    assert_eq!(double, 0, "no step applied twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_process_loses_no_run() {
    a_killed_process_loses_no_run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_process_loses_no_run() {
    a_killed_process_loses_no_run(Backend::Postgres).await;
}
