//! `cargo bench --bench pages`: the web UI's pages over a real HTTP server on SQLite and
//! PostgreSQL, signed in through the sign-in form, with the demo data (a year of leads,
//! customers, opportunities and follow-ups). Figures go to docs/benchmarks.md.
//!
//! Load comes from this process (tokio tasks sharing one signed-in cookie jar), so client and
//! server share the machine's cores; compare figures only with figures taken the same way.

#[path = "../common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, Options, PageClient, TestApp, input_value};

const CONCURRENCY: usize = 16;
const SECONDS: u64 = 5;

/// Latency percentiles of `samples` (milliseconds).
fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index.min(samples.len() - 1)]
}

/// Drives `step` (one page view or one form round trip) from `CONCURRENCY` tasks for `SECONDS`.
async fn measure<F, Fut>(label: &str, step: F)
where
    F: Fn() -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = bool> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (done, failed, step) = (done.clone(), failed.clone(), step.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                if step().await {
                    done.fetch_add(1, Ordering::Relaxed);
                    latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap_or_default());
    }
    let ok = done.load(Ordering::Relaxed);
    println!(
        "{label:<56} {:>7.0} /s   p50 {:>6.1} ms   p99 {:>6.1} ms   ({} ok, {} failed)",
        ok as f64 / SECONDS as f64,
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 0.99),
        ok,
        failed.load(Ordering::Relaxed)
    );
}

/// A GET of `path` that must answer 200.
fn page(
    pages: &Arc<PageClient>,
    path: &str,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    let pages = pages.clone();
    let path = path.to_owned();
    move || {
        let pages = pages.clone();
        let path = path.clone();
        Box::pin(async move { pages.get(&path).await.0.is_success() })
    }
}

async fn run(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            demo_data: true,
            ..Options::default()
        },
    )
    .await;
    let pages = Arc::new(PageClient::sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD, "zh-CN").await);
    let admin = app.admin().await;
    let (_, leads) = admin
        .get("/api/v1/w/demo/entities/lead/records?limit=1&total=exact")
        .await;
    let (_, opportunities) = admin
        .get("/api/v1/w/demo/entities/opportunity/records?limit=1&total=exact")
        .await;
    let lead = leads["records"][0]["id"]
        .as_str()
        .expect("a lead")
        .to_owned();
    let name = format!("{backend:?}");
    println!(
        "{name}: demo data: {} leads, {} opportunities",
        leads["total"], opportunities["total"]
    );
    measure(&format!("{name}: workspace home"), page(&pages, "/w/demo/")).await;
    measure(
        &format!("{name}: lead list (50 rows, total, filters)"),
        page(&pages, "/w/demo/e/lead"),
    )
    .await;
    measure(
        &format!("{name}: lead list searched and filtered"),
        page(&pages, "/w/demo/e/lead?q=%E5%BC%A0&f.status=new"),
    )
    .await;
    measure(
        &format!("{name}: opportunity pipeline board (≤ 500 cards)"),
        page(&pages, "/w/demo/e/opportunity?view=opportunity_pipeline"),
    )
    .await;
    measure(
        &format!("{name}: lead page (fields, timeline, related)"),
        page(&pages, &format!("/w/demo/e/lead/{lead}")),
    )
    .await;
    measure(
        &format!("{name}: new lead form"),
        page(&pages, "/w/demo/e/lead/new"),
    )
    .await;
    let creator = pages.clone();
    measure(
        &format!("{name}: lead created through the form (GET + POST)"),
        move || {
            let pages = creator.clone();
            Box::pin(async move {
                let (_, form) = pages.get("/w/demo/e/lead/new").await;
                let Some(token) = input_value(&form, "_token") else {
                    return false;
                };
                let (status, _, _) = pages
                    .post(
                        "/w/demo/e/lead/new",
                        &[
                            ("_token", &token),
                            ("name", "压测线索"),
                            ("company", "Bench Co"),
                            ("source", "web_form"),
                            ("status", "new"),
                            ("budget", "12,000"),
                        ],
                    )
                    .await;
                status.as_u16() == 303
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
        },
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
