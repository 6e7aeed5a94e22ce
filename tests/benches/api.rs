//! `cargo bench --bench api`: request throughput of the foundations over a real HTTP server on
//! SQLite and PostgreSQL. Figures go to docs/benchmarks.md.
//!
//! Load comes from this process (tokio tasks with keep-alive clients), so client and server share
//! the machine's cores; compare figures only with figures taken the same way.

#[path = "../common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, Client, TestApp};
use reqwest::Method;
use serde_json::json;

const CONCURRENCY: usize = 32;
const SECONDS: u64 = 5;

async fn measure(
    label: &str,
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let client = Client::with_token(app.address.clone(), token);
        let (done, failed) = (done.clone(), failed.clone());
        let (method, path, body) = (method.clone(), path.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let (status, _) = client.send(method.clone(), &path, body.clone()).await;
                if status.is_success() {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let ok = done.load(Ordering::Relaxed);
    println!(
        "{label:<48} {:>9.0} req/s   ({} ok, {} failed)",
        ok as f64 / SECONDS as f64,
        ok,
        failed.load(Ordering::Relaxed)
    );
}

async fn run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (_, token) = admin
        .post("/api/v1/w/demo/tokens", json!({"name": "bench"}))
        .await;
    let token = token["secret"].as_str().expect("token").to_owned();
    let name = format!("{backend:?}");
    measure(
        &format!("{name}: GET /healthz"),
        &app,
        &token,
        Method::GET,
        "/healthz",
        None,
    )
    .await;
    measure(
        &format!("{name}: GET /api/v1/w/demo (token auth + workspace)"),
        &app,
        &token,
        Method::GET,
        "/api/v1/w/demo",
        None,
    )
    .await;
    measure(
        &format!("{name}: GET definition (auth + registry)"),
        &app,
        &token,
        Method::GET,
        "/api/v1/w/demo/definitions/entity/lead",
        None,
    )
    .await;
    measure(
        &format!("{name}: GET working days (auth + calendar)"),
        &app,
        &token,
        Method::GET,
        "/api/v1/w/demo/calendar/working-days?from=2026-09-30&add=10",
        None,
    )
    .await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        run(Backend::Sqlite).await;
        run(Backend::Postgres).await;
    });
}
