//! `cargo bench --bench search`: global search over `FORMWORK_BENCH_ROWS` leads (default
//! 1,000,000) and a tenth as many customers of the Sales CRM, with Chinese and Latin names,
//! companies, emails and phones, loaded through the import (so every term is written by the
//! real write path), then `FORMWORK_BENCH_CLIENTS` clients (default 4) searching through the
//! real HTTP server for `FORMWORK_BENCH_SECONDS` (default 20) per caller: an admin (every
//! record) and a sales rep (their own 100 records). Prints p50/p99 per query shape and overall.
//! SQLite, and PostgreSQL with `FORMWORK_BENCH_POSTGRES=1`. Figures go to docs/benchmarks.md.

#[path = "../common/mod.rs"]
mod common;

/// The server binary's allocator, so the bench measures what production runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Backend, Client, TestApp};
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const SURNAMES: [&str; 20] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "高", "罗",
];
const GIVEN: [&str; 40] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "建华", "志强", "晓东", "海燕", "文", "斌", "宇", "浩",
    "凯", "鹏", "子涵", "欣怡", "梓萱", "思远", "嘉怡", "雨桐", "俊杰", "天佑",
];
const PINYIN: [&str; 20] = [
    "wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun", "ma",
    "zhu", "hu", "guo", "he", "lin", "gao", "luo",
];
const CITIES: [&str; 12] = [
    "北京", "上海", "深圳", "杭州", "广州", "成都", "南京", "苏州", "武汉", "西安", "天津", "重庆",
];
const WORDS: [&str; 30] = [
    "星辰", "华信", "云帆", "启明", "博远", "鼎盛", "恒通", "瑞丰", "金桥", "天成", "远航", "宏图",
    "德隆", "佳禾", "新元", "海川", "卓越", "万象", "中科", "创联", "汇智", "嘉业", "同舟", "青禾",
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne",
];
const TRADES: [&str; 6] = ["科技", "贸易", "咨询", "制造", "网络", "物流"];

fn name_of(i: usize) -> String {
    let given = GIVEN[(i / 20) % GIVEN.len()];
    if i % 10 == 9 {
        format!(
            "{} {}",
            ["Alice", "Bob", "Carol", "David", "Emma"][i % 5],
            PINYIN[i % 20]
        )
    } else {
        format!("{}{given}", SURNAMES[i % 20])
    }
}

fn company_of(i: usize) -> String {
    format!(
        "{}{}{}有限公司",
        CITIES[i % CITIES.len()],
        WORDS[(i / 7) % WORDS.len()],
        TRADES[(i / 3) % TRADES.len()]
    )
}

fn write_leads(path: &std::path::Path, n: usize) {
    let file = std::fs::File::create(path).expect("csv");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "name,company,phone,email,source,status").expect("write");
    for i in 0..n {
        writeln!(
            out,
            "{},{},138{:08},{}.{i}@example.com,referral,new",
            name_of(i),
            company_of(i),
            i,
            PINYIN[i % 20],
        )
        .expect("write");
    }
    out.flush().expect("flush");
}

fn write_customers(path: &std::path::Path, n: usize) {
    let file = std::fs::File::create(path).expect("csv");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "name,phone,lifecycle_stage").expect("write");
    for i in 0..n {
        writeln!(out, "{} {i},+86 10 {:08},first_contact", company_of(i), i).expect("write");
    }
    out.flush().expect("flush");
}

async fn import(
    app: &TestApp,
    client: &Client,
    entity: &str,
    path: &std::path::Path,
    mapping: Value,
) {
    let file = tokio::fs::File::open(path).await.expect("open");
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    let response = client
        .http
        .post(format!(
            "{}{W}/imports?entity={entity}&file_name={entity}.csv",
            client.base
        ))
        .header("x-csrf-token", client.csrf.clone().unwrap_or_default())
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 201);
    let view: Value = response.json().await.expect("json");
    let id = view["id"].as_str().expect("id");
    let (status, body) = client
        .post(
            &format!("{W}/imports/{id}/run"),
            json!({"mapping": mapping}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    app.run_jobs_until_idle().await;
    let (_, done) = client.get(&format!("{W}/imports/{id}")).await;
    assert_eq!(done["status"], "done", "{done}");
}

/// Query shapes: (label, query text).
const QUERIES: [(&str, &str); 12] = [
    ("one common surname", "王"),
    ("full Chinese name", "王芳"),
    ("company word (CJK)", "星辰"),
    ("company phrase", "北京星辰科技"),
    ("Latin prefix", "glob"),
    ("email prefix", "zhang.1234"),
    ("full phone", "13800123456"),
    ("phone, international", "+86 138 0012 3456"),
    ("last 4 digits", "3456"),
    ("two words", "王 星辰"),
    ("no match", "xyzzy"),
    ("name + city", "李娜 上海"),
];

async fn measure(name: &str, client: &Client, clients: usize, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut times: Vec<(usize, Duration)> = Vec::new();
            let mut i = c;
            while Instant::now() < deadline {
                let (_, query) = QUERIES[i % QUERIES.len()];
                let path = format!("{W}/search?q={}", common::query_escape(query));
                let started = Instant::now();
                let (status, body) = client.get(&path).await;
                times.push((i % QUERIES.len(), started.elapsed()));
                assert_eq!(status, 200, "{query}: {body}");
                i += 1;
            }
            times
        }));
    }
    let mut all: Vec<(usize, Duration)> = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client"));
    }
    let total = all.len();
    let pct = |mut v: Vec<Duration>, p: f64| -> f64 {
        v.sort();
        let index = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        v[index].as_secs_f64() * 1000.0
    };
    for (shape, (label, query)) in QUERIES.iter().enumerate() {
        let times: Vec<Duration> = all
            .iter()
            .filter(|(s, _)| *s == shape)
            .map(|(_, d)| *d)
            .collect();
        if times.is_empty() {
            continue;
        }
        println!(
            "  {name:<6} {label:<22} {query:<20} n={:<6} p50 {:6.2} ms  p99 {:6.2} ms",
            times.len(),
            pct(times.clone(), 0.5),
            pct(times, 0.99)
        );
    }
    let times: Vec<Duration> = all.iter().map(|(_, d)| *d).collect();
    println!(
        "  {name:<6} ALL: {total} searches in {seconds} s ({:.0}/s, {clients} clients), p50 {:.2} ms, p99 {:.2} ms",
        total as f64 / seconds as f64,
        pct(times.clone(), 0.5),
        pct(times, 0.99)
    );
}

async fn bench(backend: Backend, n: usize) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let dir = tempfile::tempdir().expect("dir");
    let leads = dir.path().join("leads.csv");
    let customers = dir.path().join("customers.csv");
    write_leads(&leads, n);
    write_customers(&customers, n / 10);
    let started = Instant::now();
    import(
        &app,
        &admin,
        "lead",
        &leads,
        json!(["name", "company", "phone", "email", "source", "status"]),
    )
    .await;
    import(
        &app,
        &admin,
        "customer",
        &customers,
        json!(["name", "phone", "lifecycle_stage"]),
    )
    .await;
    let load_s = started.elapsed().as_secs_f64();
    let (rep, _) = common::join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;
    for i in 0..100 {
        let (status, body) = rep
            .post(
                &format!("{W}/entities/lead/records"),
                json!({"fields": {"name": name_of(i), "company": company_of(i),
                    "phone": format!("139{i:08}"), "source": "referral", "status": "new"}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let label = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    println!(
        "{label}: {n} leads + {} customers loaded through the import in {load_s:.0} s ({:.0} records/s with terms)",
        n / 10,
        (n + n / 10) as f64 / load_s
    );
    let (_, answer) = admin
        .get(&format!("{W}/search?q={}", common::query_escape("王芳")))
        .await;
    println!("  sample answer for 王芳: {}", clip(&answer));
    let clients = setting("FORMWORK_BENCH_CLIENTS", 4);
    let seconds = setting("FORMWORK_BENCH_SECONDS", 20) as u64;
    measure("admin", &admin, clients, seconds).await;
    measure("rep", &rep, clients, seconds).await;
}

fn clip(value: &Value) -> String {
    let text = value.to_string();
    text.chars().take(300).collect()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let n = setting("FORMWORK_BENCH_ROWS", 1_000_000);
    runtime.block_on(bench(Backend::Sqlite, n));
    if std::env::var("FORMWORK_BENCH_POSTGRES").is_ok_and(|v| v == "1") {
        runtime.block_on(bench(Backend::Postgres, n));
    }
}
