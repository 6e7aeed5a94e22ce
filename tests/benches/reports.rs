//! `cargo bench --bench reports`: a dashboard of six reports over `FORMWORK_BENCH_RECORDS`
//! deals (default 1,000,000) on SQLite (and PostgreSQL with `FORMWORK_BENCH_POSTGRES=1`),
//! through the real HTTP server: the dashboard's JSON and its page (HTML with the SVG charts),
//! timed one request at a time. Figures go to docs/benchmarks.md.

#[path = "../common/mod.rs"]
mod common;

use std::time::Instant;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, PageClient, TestApp, publish_definition};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const STAGES: [&str; 7] = [
    "lead",
    "first_contact",
    "needs_confirmed",
    "proposal",
    "contract_signed",
    "delivery",
    "lost",
];
const REASONS: [&str; 5] = ["price", "competitor", "no_budget", "no_decision", "other"];

fn records() -> usize {
    std::env::var("FORMWORK_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn entity() -> Value {
    let options = |values: &[&str]| -> Vec<Value> {
        values
            .iter()
            .map(|v| json!({"value": v, "label": {"en": v}}))
            .collect()
    };
    json!({
        "type": "object", "x-label": {"en": "Deal"}, "x-title-field": "name",
        "x-indexes": [["stage", "amount"], ["stage", "closed_on", "amount"], ["owner", "stage", "amount"]],
        "properties": {
            "name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}},
            "stage": {"type": "string", "enum": STAGES, "x-kind": "single_select", "x-label": {"en": "Stage"},
                      "x-options": options(&STAGES), "x-indexed": true},
            "lost_reason": {"type": "string", "enum": REASONS, "x-kind": "single_select", "x-label": {"en": "Lost reason"},
                            "x-options": options(&REASONS)},
            "amount": {"type": "number", "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Amount"}},
            "closed_on": {"type": "string", "format": "date", "x-kind": "date", "x-label": {"en": "Closed on"}, "x-indexed": true}
        }
    })
}

fn reports() -> Vec<(&'static str, Value)> {
    let won = json!({"field": "stage", "op": "in", "value": ["contract_signed", "delivery"]});
    vec![
        (
            "funnel",
            json!({"label": {"en": "Funnel"}, "entity": "deal",
            "filter": {"field": "stage", "op": "ne", "value": "lost"}, "group_by": ["stage"],
            "measures": [{"key": "n", "op": "count"}, {"key": "amount", "op": "sum", "field": "amount"}],
            "chart": {"type": "funnel"}}),
        ),
        (
            "won_by_month",
            json!({"label": {"en": "Won by month"}, "entity": "deal", "filter": won,
            "date_field": "closed_on", "period": "last_12_months",
            "group_by": [{"field": "closed_on", "bucket": "month"}],
            "measures": [{"key": "won", "op": "sum", "field": "amount"}], "chart": {"type": "bar"}}),
        ),
        (
            "won_this_month",
            json!({"label": {"en": "Won this month"}, "entity": "deal", "filter": won,
            "date_field": "closed_on", "period": "this_month",
            "measures": [{"key": "won", "op": "sum", "field": "amount"}, {"key": "n", "op": "count"}],
            "chart": {"type": "number", "compare": true}}),
        ),
        (
            "leaderboard",
            json!({"label": {"en": "Leaderboard"}, "entity": "deal", "filter": won,
            "date_field": "closed_on", "period": "this_quarter", "group_by": ["owner"],
            "measures": [{"key": "won", "op": "sum", "field": "amount"}],
            "sort": [{"by": "won"}], "limit": 10, "chart": {"type": "bar", "horizontal": true}}),
        ),
        (
            "lost_reasons",
            json!({"label": {"en": "Lost reasons"}, "entity": "deal",
            "filter": {"field": "stage", "op": "eq", "value": "lost"}, "group_by": ["lost_reason"],
            "measures": [{"key": "n", "op": "count"}], "chart": {"type": "pie"}}),
        ),
        (
            "win_rate",
            json!({"label": {"en": "Win rate by stage and owner"}, "entity": "deal",
            "group_by": ["owner", "stage"],
            "measures": [{"key": "amount", "op": "sum", "field": "amount"}],
            "chart": {"type": "stacked_bar"}}),
        ),
    ]
}

async fn fill(app: &TestApp, admin: &common::Client, total: usize) {
    let owners: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..8 {
            let (_, id) =
                common::join_member(app, admin, &format!("rep{i}@formwork.local"), "member").await;
            ids.push(id);
        }
        ids
    };
    let started = Instant::now();
    let today = chrono::Utc::now().date_naive();
    let batches: Vec<Vec<Value>> = {
        let mut rng = StdRng::seed_from_u64(42);
        (0..total)
            .map(|i| {
                let stage = STAGES[rng.gen_range(0..STAGES.len())];
                let mut fields = json!({
                    "name": format!("deal {i}"),
                    "stage": stage,
                    "amount": format!("{}.{:02}", rng.gen_range(1_000..2_000_000), rng.gen_range(0..100)),
                    "closed_on": (today - chrono::Duration::days(rng.gen_range(0..730))).to_string(),
                });
                if stage == "lost" {
                    fields["lost_reason"] = json!(REASONS[rng.gen_range(0..REASONS.len())]);
                }
                json!({"fields": fields, "owner": owners[i % owners.len()]})
            })
            .collect::<Vec<_>>()
            .chunks(2_000)
            .map(<[Value]>::to_vec)
            .collect()
    };
    let queue = std::sync::Arc::new(std::sync::Mutex::new(batches));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let queue = queue.clone();
        let client = app.admin().await;
        workers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(batch) = next else { break };
                let (status, body) = client
                    .post(
                        "/api/v1/w/demo/entities/deal/records/batch",
                        json!({"records": batch}),
                    )
                    .await;
                assert_eq!(status.as_u16(), 201, "{body}");
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    println!(
        "filled {total} deals in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

async fn time<F, Fut>(label: &str, runs: usize, step: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    // One unmeasured run warms the caches (the first read of a cold table).
    let size = step().await;
    let mut samples = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        step().await;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "{label:<48} median {:>7.0} ms   min {:>7.0} ms   max {:>7.0} ms   ({size} bytes)",
        samples[samples.len() / 2],
        samples[0],
        samples[samples.len() - 1]
    );
}

async fn run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, body) = publish_definition(&admin, "entity", "deal", entity()).await;
    assert_eq!(status.as_u16(), 201, "{body}");
    for (key, report) in reports() {
        let (status, body) = publish_definition(&admin, "report", key, report).await;
        assert_eq!(status.as_u16(), 201, "{body}");
    }
    let items: Vec<Value> = reports()
        .iter()
        .map(|(key, _)| json!({"report": key}))
        .collect();
    let (status, body) = publish_definition(
        &admin,
        "dashboard",
        "bench",
        json!({"label": {"en": "Bench"}, "items": items}),
    )
    .await;
    assert_eq!(status.as_u16(), 201, "{body}");
    let total = records();
    fill(&app, &admin, total).await;
    app.run_jobs_until_idle().await;
    let label = format!("{backend:?}").to_lowercase();
    for (key, _) in reports() {
        time(
            &format!("{label} {total} report {key} (JSON)"),
            5,
            || async {
                let (status, body) = admin
                    .get(&format!("/api/v1/w/demo/reports/{key}/run"))
                    .await;
                assert_eq!(status.as_u16(), 200, "{body}");
                body.to_string().len()
            },
        )
        .await;
    }
    time(
        &format!("{label} {total} dashboard of 6 (JSON)"),
        5,
        || async {
            let (status, body) = admin.get("/api/v1/w/demo/dashboards/bench").await;
            assert_eq!(status.as_u16(), 200, "{body}");
            assert!(
                body["tiles"]
                    .as_array()
                    .is_some_and(|t| t.iter().all(|t| t["error"].is_null())),
                "{body}"
            );
            body.to_string().len()
        },
    )
    .await;
    let pages = PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "en").await;
    time(
        &format!("{label} {total} dashboard of 6 (page, SVG)"),
        5,
        || async {
            let (status, html) = pages.get("/w/demo/dashboards/bench").await;
            assert_eq!(status.as_u16(), 200);
            html.len()
        },
    )
    .await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(Backend::Sqlite));
    if std::env::var_os("FORMWORK_BENCH_POSTGRES").is_some() {
        runtime.block_on(run(Backend::Postgres));
    }
}
