//! `cargo bench --bench import`: a CSV of `FORMWORK_BENCH_ROWS` leads (default 1,000,000) into
//! the Sales CRM's lead entity (validation, its score formula, four indexes) through the real
//! HTTP server on SQLite (and PostgreSQL with `FORMWORK_BENCH_POSTGRES=1`): the upload (streamed
//! to disk, read through once, stored), the dry run and the import, each timed, with the
//! process's peak memory during the import (`VmHWM`, reset before it). Figures go to
//! docs/benchmarks.md.

#[path = "../common/mod.rs"]
mod common;

/// The server binary's allocator, so the bench measures what production runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::time::Instant;

use common::{Backend, Client, TestApp};
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";

fn rows() -> usize {
    std::env::var("FORMWORK_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// A spreadsheet as a CRM export looks: labels for options, formatted amounts, slashed dates.
fn write_csv(path: &std::path::Path, n: usize) -> u64 {
    let file = std::fs::File::create(path).expect("csv");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(
        out,
        "Contact name,Company,Phone,Email,Source,Status,Budget,Next follow-up,Notes"
    )
    .expect("write");
    let sources = [
        "Web form",
        "Referral",
        "Event",
        "Advertising",
        "Cold call",
        "Other",
    ];
    let statuses = ["New", "Contacted", "Qualified"];
    for i in 0..n {
        writeln!(
            out,
            "Contact {i},Company {},138{:08},c{i}@example.com,{},{},\"¥{},{:03}.50\",2026/{}/{},\"Met at the fair, wants a demo\"",
            i % 5000,
            i,
            sources[i % sources.len()],
            statuses[i % statuses.len()],
            1 + i % 900,
            i % 1000,
            1 + i % 12,
            1 + i % 28
        )
        .expect("write");
    }
    out.flush().expect("flush");
    std::fs::metadata(path).expect("size").len()
}

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn reset_peak() {
    // Linux: writing 5 to clear_refs resets VmHWM to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn upload(client: &Client, path: &std::path::Path) -> Value {
    let file = tokio::fs::File::open(path).await.expect("open");
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    let response = client
        .http
        .post(format!(
            "{}{W}/imports?entity=lead&file_name=leads.csv",
            client.base
        ))
        .header("x-csrf-token", client.csrf.clone().unwrap_or_default())
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 201);
    response.json().await.expect("json")
}

async fn run(app: &TestApp, client: &Client, id: &str, action: &str) -> (f64, Value) {
    let started = Instant::now();
    let (status, body) = client
        .post(
            &format!("{W}/imports/{id}/{action}"),
            json!({"mapping": ["name", "company", "phone", "email", "source", "status", "budget", "next_follow_up_date", "notes"]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    app.run_jobs_until_idle().await;
    let seconds = started.elapsed().as_secs_f64();
    let (_, view) = client.get(&format!("{W}/imports/{id}")).await;
    (seconds, view)
}

async fn bench(backend: Backend, n: usize) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("leads.csv");
    let size = write_csv(&path, n);
    let started = Instant::now();
    let view = upload(&admin, &path).await;
    let upload_s = started.elapsed().as_secs_f64();
    assert_eq!(view["layout"]["rows"], n as u64);
    let id = view["id"].as_str().expect("id").to_owned();
    reset_peak();
    let before = peak_kib();
    let (check_s, checked) = run(&app, &admin, &id, "check").await;
    assert_eq!(checked["status"], "checked", "{checked}");
    assert_eq!(checked["counters"]["failed"], 0, "{checked}");
    let check_peak = peak_kib();
    reset_peak();
    let (import_s, done) = run(&app, &admin, &id, "run").await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["counters"]["created"], n as u64, "{done}");
    let import_peak = peak_kib();
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    println!(
        "{name:<9} {n} rows, {:.1} MB: upload {upload_s:.1} s ({:.0} MB/s); dry run {check_s:.1} s ({:.0} rows/s, peak RSS {} MB); import {import_s:.1} s ({:.0} rows/s, peak RSS {} MB; RSS before {} MB)",
        size as f64 / 1e6,
        size as f64 / 1e6 / upload_s,
        n as f64 / check_s,
        check_peak / 1024,
        n as f64 / import_s,
        import_peak / 1024,
        before / 1024,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let n = rows();
    runtime.block_on(bench(Backend::Sqlite, n));
    if std::env::var("FORMWORK_BENCH_POSTGRES").is_ok_and(|v| v == "1") {
        runtime.block_on(bench(Backend::Postgres, n));
    }
}
