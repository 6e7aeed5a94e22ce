//! `cargo bench --bench workflows`: workflow runs completed per second (a 3-step workflow:
//! set fields on the record, a script, an in-app notification), and timer firing lag with
//! 100,000 other timers pending, on SQLite and then PostgreSQL, with the product's own worker
//! (`FORMWORK_WORKERS` 4, poll 500 ms as shipped). Figures go to docs/benchmarks.md.
//!
//! Environment: `FORMWORK_BENCH_RUNS` (default 5,000), `FORMWORK_BENCH_TIMERS` (pending timers,
//! default 100,000), `FORMWORK_BENCH_BACKENDS` (`sqlite`, `postgres` or `both`),
//! `FORMWORK_TEST_POSTGRES_URL`.

#[path = "../common/mod.rs"]
mod common;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Backend, Client, Options, TestApp};
use formwork::jobs::{self, NewJob};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";
const LATE_RUNS: usize = 200;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn publish(admin: &Client, kind: &str, key: &str, document: Value) {
    let (status, body) = common::publish_definition(admin, kind, key, document).await;
    assert_eq!(status, StatusCode::CREATED, "{key}: {body}");
}

async fn create(admin: &Client, entity: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let records: Vec<Value> = chunk.iter().map(|i| json!({"fields": {"n": i}})).collect();
        let (status, body) = admin
            .post(
                &format!("{W}/entities/{entity}/records/batch"),
                json!({"records": records}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// Completed runs in the workspace (a count, so polling costs the bench little).
async fn completed(app: &TestApp, workspace: uuid::Uuid) -> usize {
    formwork::store::workflows::count_by_status(app.services.db().conn(), workspace)
        .await
        .expect("count")
        .into_iter()
        .filter(|(status, _)| status == "completed")
        .map(|(_, n)| usize::try_from(n).unwrap_or(0))
        .sum()
}

async fn run(backend: Backend) {
    let runs = env_usize("FORMWORK_BENCH_RUNS", 5_000);
    let timers = env_usize("FORMWORK_BENCH_TIMERS", 100_000);
    let app = TestApp::spawn_with(
        backend,
        Options {
            configure: |config| {
                config.workers = 4;
                config.job_poll_ms = 500;
            },
            ..Options::default()
        },
    )
    .await;
    let admin = app.admin().await;
    let workspace = formwork::store::workspaces::find_by_slug(app.services.db().conn(), "demo")
        .await
        .expect("workspace")
        .expect("demo")
        .id;
    for entity in ["flow_item", "late_item"] {
        publish(&admin, "entity", entity, json!({"type": "object", "x-label": {"en": entity},
            "properties": {"n": {"type": "integer", "x-kind": "integer", "x-label": {"en": "N"}},
                           "note": {"type": "string", "x-kind": "text", "x-label": {"en": "Note"}}}})).await;
    }
    publish(&admin, "workflow", "three_steps", json!({
        "label": {"en": "Three steps"}, "entity": "flow_item", "trigger": {"type": "record_created"},
        "steps": [
            {"id": "mark", "type": "set_fields", "fields": {"note": "seen {{ record.n }}"}},
            {"id": "score", "type": "script", "script": "record.n * 2 + 1"},
            {"id": "tell", "type": "notify", "to": ["owner"], "title": "Item {{ record.n }} scored {{ steps.score }}"}
        ]})).await;
    publish(
        &admin,
        "workflow",
        "late",
        json!({
        "label": {"en": "Late"}, "entity": "late_item", "trigger": {"type": "record_created"},
        "steps": [
            {"id": "pause", "type": "wait", "duration": "PT3S"},
            {"id": "after", "type": "script", "script": "1"}
        ]}),
    )
    .await;

    // Runs per second: the runs are queued by the creates, then the worker starts.
    create(&admin, "flow_item", runs).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let worker = tokio::spawn(app.services.worker().clone().run(stopped));
    loop {
        if completed(&app, workspace).await >= runs {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "runs did not complete"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{backend:?}: {runs} runs of a 3-step workflow in {elapsed:.2} s: {:.0} runs/s ({:.0} steps/s)",
        runs as f64 / elapsed,
        3.0 * runs as f64 / elapsed
    );

    // Timer lag: 100k timers pending far ahead, then runs whose 3-second waits end now.
    let clock = app.services.clock().clone();
    let far = Utc::now() + chrono::Duration::days(30);
    for chunk in (0..timers).collect::<Vec<_>>().chunks(5_000) {
        let tx = app.services.db().begin().await.expect("tx");
        for i in chunk {
            let mut job = NewJob::new(
                formwork::workflows::ADVANCE_JOB,
                json!({"run": uuid::Uuid::now_v7()}),
            );
            job.workspace_id = Some(workspace);
            job.run_at = Some(far + chrono::Duration::seconds(*i as i64));
            job.dedupe_key = Some(format!("bench-timer:{i}"));
            jobs::enqueue(&tx, &clock, job).await.expect("enqueue");
        }
        tx.commit().await.expect("commit");
    }
    create(&admin, "late_item", LATE_RUNS).await;
    loop {
        if completed(&app, workspace).await >= runs + LATE_RUNS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let filter = formwork::store::workflows::RunFilter {
        workflow: Some("late".to_owned()),
        ..Default::default()
    };
    let late =
        formwork::store::workflows::runs(app.services.db().conn(), workspace, filter, 10_000)
            .await
            .expect("runs");
    let mut lags = Vec::new();
    for run in late {
        let steps = formwork::store::workflows::steps(app.services.db().conn(), run.id)
            .await
            .expect("steps");
        let until = steps
            .iter()
            .find(|s| s.step_id == "pause")
            .and_then(|s| {
                s.output
                    .as_ref()?
                    .get("until")?
                    .as_str()?
                    .parse::<chrono::DateTime<Utc>>()
                    .ok()
            })
            .expect("wake time");
        let fired = steps
            .iter()
            .find(|s| s.step_id == "after")
            .expect("after")
            .started_at;
        lags.push((fired - until).num_milliseconds());
    }
    lags.sort_unstable();
    let at = |q: f64| lags[((lags.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{backend:?}: timer lag with {timers} other timers pending ({} runs, poll 500 ms): p50 {} ms, p95 {} ms, max {} ms",
        lags.len(),
        at(0.5),
        at(0.95),
        at(1.0)
    );
    let _ = stop.send(true);
    let _ = worker.await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let backends = match std::env::var("FORMWORK_BENCH_BACKENDS").as_deref() {
        Ok("sqlite") => vec![Backend::Sqlite],
        Ok("postgres") => vec![Backend::Postgres],
        _ => vec![Backend::Sqlite, Backend::Postgres],
    };
    for backend in backends {
        runtime.block_on(run(backend));
    }
}
