//! `cargo bench --bench records`: the CRM-bench workload of the records issue (P1–P6) over a
//! real HTTP server, on SQLite and then PostgreSQL. Figures go to docs/benchmarks.md.
//!
//! Environment:
//! - `FORMWORK_BENCH_RECORDS` — records in the table for P3–P6 (default 120,000; e.g. 1000000);
//! - `FORMWORK_BENCH_BACKENDS` — `sqlite`, `postgres` or `both` (default);
//! - `FORMWORK_BENCH_SECONDS` — duration of each timed case P3–P6 (default 10);
//! - `FORMWORK_BENCH_CASES` — the timed cases to run, e.g. `P4` or `P3,P3m,P6` (default all; P1,
//!   P2 and the fill always run, they make the table); `R` times the recompute of a formula
//!   added to every stored record;
//! - `FORMWORK_BENCH_OWNERS` — members the records are spread over (default 40; 0: all owned
//!   by the admin, whose token makes them);
//! - `FORMWORK_BENCH_FORMULA` — `1` adds a stored formula field to the bench entity: a
//!   10-term lead score over eight of its fields, computed on every write (default off);
//! - `FORMWORK_BENCH_ROLLUP` — `1` gives every lead one of 200 accounts (a reference), and the
//!   accounts roll their leads up (count, sum and max of the budget), so every create also
//!   updates its account (default off; `ref`: the references without the rollups);
//! - `FORMWORK_BENCH_SEARCH` — `0` leaves the name, email and phone out of global search, so
//!   no search terms are written (default: they are searched, as in a CRM);
//! - `FORMWORK_TEST_POSTGRES_URL` — the PostgreSQL server (as for the tests).
//!
//! Load comes from this process (tokio tasks, one keep-alive connection each, bearer token so
//! every write is `channel=api`), so client and server share the machine's cores; compare
//! figures only with figures taken the same way. Every response is checked; a run with any
//! failure prints them and exits with status 1.

#[path = "../common/mod.rs"]
mod common;

/// The server binary's allocator, so the bench measures what production runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, Options, TestApp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ENTITY: &str = "bench_lead";
const SEED: u64 = 0x0000_F04D_570B_E0C4;
/// P1: single creates.
const SINGLE_CREATES: usize = 20_000;
const SINGLE_CLIENTS: usize = 16;
/// P2: batched creates.
const BATCHED_CREATES: usize = 100_000;
const BATCH: usize = 500;
const BATCH_CLIENTS: usize = 3;
/// Unmeasured fill up to the target size.
const FILL_BATCH: usize = 1000;
const FILL_CLIENTS: usize = 2;
/// P3, P4, P6 and P5 concurrency.
const READ_CLIENTS: usize = 16;
const AGGREGATE_CLIENTS: usize = 4;
/// How many failures of a case are printed in full.
const SHOWN_FAILURES: usize = 5;

const STAGES: [&str; 6] = ["new", "contacted", "qualified", "proposal", "won", "lost"];
const SOURCES: [&str; 6] = ["web_form", "referral", "event", "ads", "cold_call", "other"];

struct Settings {
    records: usize,
    seconds: u64,
    backends: Vec<Backend>,
    cases: Option<Vec<String>>,
}

impl Settings {
    /// Whether the timed case `case` (`P3`…`P6`) is to run.
    fn wants(&self, case: &str) -> bool {
        self.cases
            .as_ref()
            .is_none_or(|cases| cases.iter().any(|c| c.eq_ignore_ascii_case(case)))
    }
}

impl Settings {
    fn from_env() -> Self {
        let records = std::env::var("FORMWORK_BENCH_RECORDS")
            .ok()
            .map(|v| {
                v.replace(['_', ','], "")
                    .parse::<usize>()
                    .expect("FORMWORK_BENCH_RECORDS must be a number of records")
            })
            .unwrap_or(120_000);
        assert!(
            records >= 1000,
            "FORMWORK_BENCH_RECORDS must be at least 1000"
        );
        let seconds = std::env::var("FORMWORK_BENCH_SECONDS")
            .ok()
            .map(|v| {
                v.parse::<u64>()
                    .expect("FORMWORK_BENCH_SECONDS must be a number of seconds")
            })
            .unwrap_or(10)
            .max(1);
        let backends = match std::env::var("FORMWORK_BENCH_BACKENDS")
            .unwrap_or_else(|_| "both".to_owned())
            .as_str()
        {
            "sqlite" => vec![Backend::Sqlite],
            "postgres" => vec![Backend::Postgres],
            "both" => vec![Backend::Sqlite, Backend::Postgres],
            other => {
                panic!("FORMWORK_BENCH_BACKENDS must be sqlite, postgres or both, not {other:?}")
            }
        };
        let cases = std::env::var("FORMWORK_BENCH_CASES").ok().map(|v| {
            v.split(',')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect()
        });
        Self {
            records,
            seconds,
            backends,
            cases,
        }
    }
}

/// The 10-term lead score of `FORMWORK_BENCH_FORMULA=1` (the script bench's formula, over the
/// record's fields).
const SCORE_FORMULA: &str = r#"let s = 0;
let budget = coalesce(record.budget, 0);
if budget > 500000 { s += 30 } else if budget > 100000 { s += 20 } else if budget > 0 { s += 5 }
if record.employees >= 1000 { s += 15 } else if record.employees >= 100 { s += 10 }
if record.source == "referral" { s += 15 }
if record.source == "event" { s += 10 }
if record.stage == "qualified" { s += 10 }
if record.stage == "proposal" { s += 15 }
if record.score > 50.0 { s += 5 }
if record.region == "华东" { s += 3 }
if record.email != () { s += 2 }
if record.phone != () { s += 2 }
s"#;

/// Whether the bench entity carries the stored lead-score formula.
fn with_formula() -> bool {
    std::env::var("FORMWORK_BENCH_FORMULA").is_ok_and(|v| v == "1")
}

/// Whether leads refer to accounts that roll them up.
fn with_rollup() -> bool {
    std::env::var("FORMWORK_BENCH_ROLLUP").is_ok_and(|v| v == "1" || v == "ref")
}

/// The accounts of `FORMWORK_BENCH_ROLLUP=1` (ids, set once the accounts exist).
static ACCOUNTS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// The account entity of `FORMWORK_BENCH_ROLLUP=1`, with its rollups over the leads or not.
fn account_entity(rollups: bool) -> Value {
    let mut document = json!({
        "type": "object", "x-label": {"en": "Bench account"},
        "properties": {"name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}}}
    });
    if rollups {
        let rollup = |op: &str, field: Option<&str>| {
            let mut spec = json!({"entity": ENTITY, "via": "account", "op": op});
            if let Some(field) = field {
                spec["field"] = json!(field);
            }
            spec
        };
        document["properties"]["leads"] = json!({"type": "integer", "x-kind": "rollup",
            "x-label": {"en": "Leads"}, "x-rollup": rollup("count", None)});
        document["properties"]["total_budget"] = json!({"type": "number", "x-kind": "rollup",
            "x-result": "money", "x-currency": "CNY", "x-label": {"en": "Total budget"},
            "x-rollup": rollup("sum", Some("budget"))});
        document["properties"]["largest_budget"] = json!({"type": "number", "x-kind": "rollup",
            "x-result": "money", "x-currency": "CNY", "x-label": {"en": "Largest budget"},
            "x-rollup": rollup("max", Some("budget"))});
    }
    document
}

/// The bench entity: 12 fields of a CRM lead (and the lead score, with `FORMWORK_BENCH_FORMULA`;
/// the account reference, with `FORMWORK_BENCH_ROLLUP`). Its name, email and phone are searched
/// (their terms written with each record) unless `FORMWORK_BENCH_SEARCH=0`.
fn entity() -> Value {
    let mut document = plain_entity();
    if std::env::var("FORMWORK_BENCH_SEARCH").is_ok_and(|v| v == "0") {
        for key in ["name", "email", "phone"] {
            document["properties"][key]["x-search"] = json!(false);
        }
    }
    if with_rollup() {
        document["properties"]["account"] = json!({"type": "string", "x-kind": "reference",
            "x-label": {"en": "Account"},
            "x-reference": {"entity": "bench_account", "on_delete": "restrict"}});
    }
    if with_formula() {
        document["properties"]["lead_score"] = json!({
            "type": "integer", "x-kind": "formula", "x-result": "integer",
            "x-label": {"en": "Lead score"}, "x-formula": SCORE_FORMULA
        });
    }
    document
}

fn plain_entity() -> Value {
    let options = |values: &[&str]| -> Value {
        values
            .iter()
            .map(|v| json!({"value": v, "label": {"en": v.replace('_', " ")}}))
            .collect()
    };
    json!({
        "type": "object",
        "title": "Bench lead",
        "x-label": {"en": "Bench lead", "zh-CN": "压测线索"},
        "x-label-plural": {"en": "Bench leads"},
        "x-title-field": "name",
        // The pipeline dashboard's index: stage = X sorted by budget (P3), budget summed by
        // stage (P5).
        "x-indexes": [["stage", "budget"]],
        "required": ["name", "email", "stage"],
        "properties": {
            "name": {"type": "string", "maxLength": 100, "x-kind": "text",
                     "x-label": {"en": "Name"}, "x-indexed": true},
            "company": {"type": "string", "maxLength": 200, "x-kind": "text",
                        "x-label": {"en": "Company"}},
            "email": {"type": "string", "format": "email", "maxLength": 254, "x-kind": "email",
                      "x-label": {"en": "Email"}, "x-unique": true},
            "phone": {"type": "string", "maxLength": 30, "x-kind": "phone",
                      "x-label": {"en": "Phone"}},
            "source": {"type": "string", "enum": SOURCES, "x-kind": "single_select",
                       "x-label": {"en": "Source"}, "x-options": options(&SOURCES)},
            "region": {"type": "string", "maxLength": 100, "x-kind": "text",
                       "x-label": {"en": "Region"}, "x-indexed": true},
            "budget": {"type": "number", "minimum": 0, "x-kind": "money", "x-currency": "CNY",
                       "x-label": {"en": "Budget"}, "x-indexed": true},
            "employees": {"type": "integer", "minimum": 0, "x-kind": "integer",
                          "x-label": {"en": "Employees"}},
            "stage": {"type": "string", "enum": STAGES, "x-kind": "single_select",
                      "x-label": {"en": "Stage"}, "x-options": options(&STAGES),
                      "x-indexed": true},
            "rep": {"type": "string", "maxLength": 100, "x-kind": "text",
                    "x-label": {"en": "Sales rep"}},
            "created_on": {"type": "string", "format": "date", "x-kind": "date",
                           "x-label": {"en": "Created on"}},
            "score": {"type": "number", "minimum": 0, "maximum": 100, "x-kind": "number",
                      "x-label": {"en": "Score"}}
        }
    })
}

const SURNAMES: [&str; 20] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗",
];
const GIVEN: [&str; 24] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "浩然", "子涵", "欣怡",
];
const LATIN: [&str; 16] = [
    "wei", "fang", "na", "min", "jing", "li", "qiang", "lei", "jun", "yang", "yong", "yan", "jie",
    "juan", "tao", "ming",
];
const DOMAINS: [&str; 8] = [
    "qq.com",
    "163.com",
    "126.com",
    "outlook.com",
    "gmail.com",
    "yunfan.cn",
    "huaxin-tech.com",
    "example.cn",
];
const CITIES: [&str; 12] = [
    "杭州", "上海", "北京", "深圳", "广州", "成都", "武汉", "南京", "苏州", "西安", "重庆", "厦门",
];
const BRANDS: [&str; 12] = [
    "云帆", "华信", "博远", "鼎新", "智联", "恒泰", "金桥", "蓝海", "星辰", "瑞达", "启明", "中科",
];
const TRADES: [&str; 8] = [
    "科技",
    "信息技术",
    "制造",
    "贸易",
    "物流",
    "教育科技",
    "医疗器械",
    "电子商务",
];
const REGIONS: [&str; 16] = [
    "北京", "上海", "广东", "浙江", "江苏", "四川", "湖北", "山东", "福建", "河南", "湖南", "安徽",
    "重庆", "天津", "陕西", "辽宁",
];
const REPS: [&str; 12] = [
    "陈晓东",
    "林雪",
    "赵磊",
    "孙丽",
    "周杰",
    "吴敏",
    "郑浩",
    "王静",
    "刘洋",
    "黄婷",
    "马超",
    "何芳",
];

fn pick<'a>(rng: &mut StdRng, values: &[&'a str]) -> &'a str {
    values[rng.gen_range(0..values.len())]
}

/// The members records are spread over (each lead gets one of them as its owner), so that a
/// member's scoped list reads what a real rep's would: their share of the table.
/// Set per backend's run (each has its own members).
static OWNERS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// How many members own the bench's records (`FORMWORK_BENCH_OWNERS`; 0: the admin owns all,
/// as before the access model).
fn owner_count() -> usize {
    std::env::var("FORMWORK_BENCH_OWNERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

/// One realistic lead as `{"owner": …, "fields": …}`; `serial` makes its email unique.
fn lead(rng: &mut StdRng, serial: u64) -> Value {
    let owner = OWNERS
        .read()
        .ok()
        .filter(|owners| !owners.is_empty())
        .map(|owners| owners[rng.gen_range(0..owners.len())].clone());
    let cents: u64 = rng.gen_range(0..=100_000_000);
    let employees = 10f64.powf(rng.gen_range(0.0..4.7)).round() as u64;
    let created_on = chrono::NaiveDate::from_ymd_opt(2023, 1, 1).expect("date")
        + chrono::Days::new(rng.gen_range(0..1400));
    let phone = format!(
        "1{}{:09}",
        pick(rng, &["3", "5", "7", "8", "9"]),
        rng.gen_range(0..1_000_000_000u64)
    );
    let account = ACCOUNTS
        .read()
        .ok()
        .filter(|accounts| !accounts.is_empty())
        .map(|accounts| accounts[rng.gen_range(0..accounts.len())].clone());
    let mut lead = json!({"owner": owner, "fields": {
        "name": format!("{}{}", pick(rng, &SURNAMES), pick(rng, &GIVEN)),
        "company": format!("{}{}{}有限公司", pick(rng, &CITIES), pick(rng, &BRANDS), pick(rng, &TRADES)),
        "email": format!("{}.{}{serial}@{}", pick(rng, &LATIN), pick(rng, &LATIN), pick(rng, &DOMAINS)),
        "phone": phone,
        "source": pick(rng, &SOURCES),
        "region": pick(rng, &REGIONS),
        "budget": format!("{}.{:02}", cents / 100, cents % 100),
        "employees": employees,
        "stage": pick(rng, &STAGES),
        "rep": pick(rng, &REPS),
        "created_on": created_on.format("%Y-%m-%d").to_string(),
        "score": f64::from(rng.gen_range(0..=1000u32)) / 10.0,
    }});
    if let Some(account) = account {
        lead["fields"]["account"] = json!(account);
    }
    lead
}

/// One request of a case and what its answer must be.
struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
    expect: Expect,
}

enum Expect {
    /// 201 with one record.
    Created,
    /// 201 with this many records.
    Batch(usize),
    /// 200 with a page of the P3 query: qualified, budget > 50,000, by budget descending.
    QualifiedPage,
    /// 200 with the record of this id.
    Record(String),
    /// 200 with groups by stage whose counts add up to this.
    StageGroups(u64),
    /// 200 with the record, now in this stage (unchanged and at its old version if it was).
    Stage(&'static str),
}

/// What a checked answer brought: units of work (records or requests) and new record ids.
struct Good {
    units: u64,
    ids: Vec<String>,
}

fn record_id(record: &Value) -> Result<String, String> {
    record["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "record without an id".to_owned())
}

fn budget_of(record: &Value) -> Result<f64, String> {
    record["fields"]["budget"]
        .as_str()
        .and_then(|b| b.parse::<f64>().ok())
        .ok_or_else(|| format!("record {} without a budget", record["id"]))
}

fn check(expect: &Expect, status: StatusCode, body: &Value) -> Result<Good, String> {
    let want = match expect {
        Expect::Created | Expect::Batch(_) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    if status != want {
        return Err(format!("expected {want}"));
    }
    match expect {
        Expect::Created => {
            if body["version"] != 1 {
                return Err("a new record must be version 1".to_owned());
            }
            Ok(Good {
                units: 1,
                ids: vec![record_id(body)?],
            })
        }
        Expect::Batch(n) => {
            let records = body["records"].as_array().ok_or("no records")?;
            if records.len() != *n {
                return Err(format!("{} records instead of {n}", records.len()));
            }
            let ids = records.iter().map(record_id).collect::<Result<_, _>>()?;
            Ok(Good {
                units: *n as u64,
                ids,
            })
        }
        Expect::QualifiedPage => {
            let records = body["records"].as_array().ok_or("no records")?;
            if records.is_empty() || records.len() > 50 {
                return Err(format!("{} records in a page of 50", records.len()));
            }
            if records.len() < 50 && !body["next_cursor"].is_null() {
                return Err("a short page with a next cursor".to_owned());
            }
            let mut previous = f64::INFINITY;
            for record in records {
                let budget = budget_of(record)?;
                if record["fields"]["stage"] != "qualified" || budget <= 50_000.0 {
                    return Err(format!("record {} does not match the filter", record["id"]));
                }
                if budget > previous {
                    return Err("records not sorted by budget descending".to_owned());
                }
                previous = budget;
            }
            Ok(Good {
                units: 1,
                ids: Vec::new(),
            })
        }
        Expect::Record(id) => {
            if body["id"] != id.as_str() || !body["fields"]["email"].is_string() {
                return Err("another or an incomplete record".to_owned());
            }
            Ok(Good {
                units: 1,
                ids: Vec::new(),
            })
        }
        Expect::StageGroups(total) => {
            let rows = body["rows"].as_array().ok_or("no rows")?;
            let mut counted = 0;
            for row in rows {
                let stage = row["stage"].as_str().ok_or("a group without a stage")?;
                if !STAGES.contains(&stage) || !row["sum_budget"].is_string() {
                    return Err(format!("unexpected group {row}"));
                }
                counted += row["count"].as_u64().ok_or("a group without a count")?;
            }
            if counted != *total {
                return Err(format!("groups count {counted} records, not {total}"));
            }
            Ok(Good {
                units: 1,
                ids: Vec::new(),
            })
        }
        Expect::Stage(stage) => {
            // A record already in that stage (1 in 6) is answered unchanged, at its version.
            if body["fields"]["stage"] != *stage || !body["version"].is_i64() {
                return Err(format!("stage not changed to {stage}"));
            }
            Ok(Good {
                units: 1,
                ids: Vec::new(),
            })
        }
    }
}

/// A server under test and the token its load uses.
struct Target {
    backend: &'static str,
    base: String,
    token: String,
}

impl Target {
    fn records(&self, rest: &str) -> String {
        format!("/api/v1/w/demo/entities/{ENTITY}/records{rest}")
    }

    fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("HTTP client")
    }

    async fn send(
        &self,
        http: &reqwest::Client,
        call: &Call,
    ) -> Result<(StatusCode, Value), String> {
        let mut request = http
            .request(call.method.clone(), format!("{}{}", self.base, call.path))
            .bearer_auth(&self.token);
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, body))
    }
}

/// When a case ends: after so many requests, or after a time.
#[derive(Clone, Copy)]
enum Until {
    Requests(u64),
    Elapsed(Duration),
}

#[derive(Default)]
struct Tally {
    requests: u64,
    units: u64,
    failed: u64,
    latencies: Vec<Duration>,
    failures: Vec<String>,
    statuses: BTreeMap<String, u64>,
    ids: Vec<String>,
    elapsed: Duration,
}

impl Tally {
    fn merge(&mut self, other: Self) {
        self.requests += other.requests;
        self.units += other.units;
        self.failed += other.failed;
        self.latencies.extend(other.latencies);
        for failure in other.failures {
            if self.failures.len() < SHOWN_FAILURES {
                self.failures.push(failure);
            }
        }
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.ids.extend(other.ids);
    }

    fn percentile_ms(&mut self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.sort_unstable();
        let rank = ((q * self.latencies.len() as f64).ceil() as usize).max(1) - 1;
        self.latencies[rank.min(self.latencies.len() - 1)].as_secs_f64() * 1000.0
    }
}

type Maker = Arc<dyn Fn(&mut StdRng, u64) -> Call + Send + Sync>;

/// Runs `clients` concurrent keep-alive clients, each sending `make(rng, n)` (n counts the
/// requests of the case) until `until`, checking every answer.
async fn drive(
    target: &Arc<Target>,
    clients: usize,
    until: Until,
    seed: u64,
    make: Maker,
) -> Tally {
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let (target, issued, make) = (target.clone(), issued.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let http = target.http();
            let mut rng =
                StdRng::seed_from_u64(seed.wrapping_mul(1009).wrapping_add(worker as u64));
            let mut tally = Tally::default();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                let more = match until {
                    Until::Requests(total) => n < total,
                    Until::Elapsed(duration) => started.elapsed() < duration,
                };
                if !more {
                    break;
                }
                let call = make(&mut rng, n);
                let sent = Instant::now();
                let answer = target.send(&http, &call).await;
                tally.latencies.push(sent.elapsed());
                tally.requests += 1;
                let outcome = match &answer {
                    Ok((status, body)) => {
                        *tally
                            .statuses
                            .entry(status.as_u16().to_string())
                            .or_default() += 1;
                        check(&call.expect, *status, body)
                            .map_err(|why| format!("{status}: {why}; body: {}", clip(body)))
                    }
                    Err(error) => {
                        *tally.statuses.entry("error".to_owned()).or_default() += 1;
                        Err(format!("no answer: {error}"))
                    }
                };
                match outcome {
                    Ok(good) => {
                        tally.units += good.units;
                        tally.ids.extend(good.ids);
                    }
                    Err(why) => {
                        tally.failed += 1;
                        if tally.failures.len() < SHOWN_FAILURES {
                            let sent_body = match &call.body {
                                Some(Value::Object(body)) if body.contains_key("records") => {
                                    " (batch body)".to_owned()
                                }
                                Some(body) => format!(" {body}"),
                                None => String::new(),
                            };
                            tally
                                .failures
                                .push(format!("{} {}{sent_body} → {why}", call.method, call.path));
                        }
                    }
                }
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await.expect("a bench client panicked"));
    }
    total.elapsed = started.elapsed();
    total
}

fn clip(body: &Value) -> String {
    let text = body.to_string();
    match text.char_indices().nth(600) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// Prints a case's line (and its failures); returns its failure count.
fn report(target: &Target, table: usize, case: &str, unit: &str, mut tally: Tally) -> u64 {
    let rate = tally.units as f64 / tally.elapsed.as_secs_f64();
    let (p50, p99) = (tally.percentile_ms(0.50), tally.percentile_ms(0.99));
    println!(
        "{:<8} {table:>9} {case:<34} {rate:>9.0} {unit:<10} p50 {p50:>8.2} ms  p99 {p99:>8.2} ms  failures {}",
        target.backend, tally.failed
    );
    if tally.failed > 0 {
        println!("           statuses: {:?}", tally.statuses);
        for failure in &tally.failures {
            println!("           {failure}");
        }
    }
    tally.failed
}

/// While a write-heavy case runs: a writer outside the records' group commit (an entity draft
/// saved, a plain SQLite transaction on the reader pool, as job claims, logins and publishes
/// are) every 20 ms. Reports how long it waited and how many failed: on SQLite such a
/// writer can only get the write lock between two groups. Informational; not a failure.
fn probe_outside_writes(
    target: &Arc<Target>,
) -> (
    tokio::task::JoinHandle<()>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (target, flag) = (target.clone(), stop.clone());
    let handle = tokio::spawn(async move {
        let http = target.http();
        let mut latencies = Vec::new();
        let mut failed = 0u64;
        let mut n = 0u64;
        while !flag.load(Ordering::Relaxed) {
            n += 1;
            // A new entity draft: a plain transaction on the definitions table, which (unlike
            // a settings change) leaves the access cache of the measured requests alone.
            let call = Call {
                method: Method::PUT,
                path: format!("/api/v1/w/demo/definitions/entity/probe_{n}/draft"),
                body: Some(
                    json!({"document": {"type": "object", "x-label": {"en": "Probe"},
                    "properties": {"name": {"type": "string", "x-kind": "text",
                                            "x-label": {"en": "Name"}}}}}),
                ),
                expect: Expect::Created,
            };
            let started = Instant::now();
            match target.send(&http, &call).await {
                Ok((status, _)) if status == StatusCode::OK => latencies.push(started.elapsed()),
                _ => failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut tally = Tally {
            latencies,
            ..Tally::default()
        };
        let (p50, p99) = (tally.percentile_ms(0.50), tally.percentile_ms(0.99));
        let max = tally
            .latencies
            .last()
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
        println!(
            "{:<8}           meanwhile: {} draft saves outside the group commit, p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.0} ms, failed {failed}",
            target.backend,
            tally.latencies.len()
        );
    });
    (handle, stop)
}

/// Creates `records` leads in batches of `size` (the last one may be short).
fn batches(target: &Target, serial: &Arc<AtomicU64>, records: usize, size: usize) -> (u64, Maker) {
    let path = target.records("/batch");
    let serial = serial.clone();
    let make: Maker = Arc::new(move |rng, n| {
        let count = size.min(records - n as usize * size);
        let first = serial.fetch_add(count as u64, Ordering::Relaxed);
        let leads: Vec<Value> = (0..count as u64).map(|i| lead(rng, first + i)).collect();
        Call {
            method: Method::POST,
            path: path.clone(),
            body: Some(json!({ "records": leads })),
            expect: Expect::Batch(count),
        }
    });
    (records.div_ceil(size) as u64, make)
}

/// Publishes the accounts (without rollups: the leads' entity does not exist yet), makes 200 of
/// them, and remembers their ids for the leads.
async fn prepare_accounts(admin: &common::Client) {
    let (status, body) =
        common::publish_entity(admin, "bench_account", account_entity(false)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "publishing the accounts: {body}"
    );
    let records: Vec<Value> = (0..200)
        .map(|i| json!({"fields": {"name": format!("Account {i}")}}))
        .collect();
    let (status, body) = admin
        .post(
            "/api/v1/w/demo/entities/bench_account/records/batch",
            json!({"records": records}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "making the accounts: {body}");
    let ids = body["records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Ok(mut accounts) = ACCOUNTS.write() {
        *accounts = ids;
    }
}

/// Gives the accounts their rollups over the leads, once the leads' entity exists.
async fn publish_account_rollups(admin: &common::Client) {
    let (status, body) = common::publish_entity(admin, "bench_account", account_entity(true)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "publishing the account rollups: {body}"
    );
}

/// Publishes the bench entity, adds the members who own the records, and mints the API tokens
/// of the admin and of one member.
async fn prepare(app: &TestApp) -> (String, String) {
    let admin = app.admin().await;
    if with_rollup() {
        prepare_accounts(&admin).await;
    }
    let (status, body) = admin
        .put(
            &format!("/api/v1/w/demo/definitions/entity/{ENTITY}/draft"),
            json!({ "document": entity() }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "saving the bench entity: {body}");
    let (status, body) = admin
        .post(
            &format!("/api/v1/w/demo/definitions/entity/{ENTITY}/versions"),
            json!({ "revision": body["revision"] }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "publishing the bench entity: {body}"
    );
    // `ref`: the same references without rollups, the baseline of the rollup's cost.
    if std::env::var("FORMWORK_BENCH_ROLLUP").is_ok_and(|v| v == "1") {
        publish_account_rollups(&admin).await;
    }
    let mut owners = Vec::new();
    let mut member_token = String::new();
    for i in 0..owner_count().max(1) {
        let email = format!("rep{i}@bench.local");
        let client = if i == 0 {
            Some(app.create_user(&email).await)
        } else {
            formwork::auth::create_account(
                app.services.db().conn(),
                app.services.clock(),
                &email,
                "rep",
                "user-password-123",
                false,
            )
            .await
            .expect("creating a member");
            None
        };
        let (status, body) = admin
            .post(
                "/api/v1/w/demo/members",
                json!({"email": email, "role": "member"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "adding a member: {body}");
        owners.push(body["account_id"].as_str().expect("account id").to_owned());
        if let Some(client) = client {
            let (status, body) = client
                .post("/api/v1/w/demo/tokens", json!({"name": "bench member"}))
                .await;
            assert_eq!(
                status,
                StatusCode::CREATED,
                "creating the member token: {body}"
            );
            member_token = body["secret"].as_str().expect("token secret").to_owned();
        }
    }
    if let Ok(mut current) = OWNERS.write() {
        *current = if owner_count() > 0 {
            owners
        } else {
            Vec::new()
        };
    }
    let (status, body) = admin
        .post("/api/v1/w/demo/tokens", json!({"name": "bench"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "creating the token: {body}");
    (
        body["secret"].as_str().expect("token secret").to_owned(),
        member_token,
    )
}

/// The exact number of live records, asked through the API.
async fn count(target: &Target) -> u64 {
    let call = Call {
        method: Method::POST,
        path: target.records("/query"),
        body: Some(json!({"total": "exact", "limit": 1})),
        expect: Expect::QualifiedPage, // not checked: only the total is read
    };
    let (status, body) = target
        .send(&target.http(), &call)
        .await
        .expect("counting records");
    assert_eq!(status, StatusCode::OK, "counting records: {body}");
    body["total"].as_u64().expect("an exact total")
}

/// The P3 request: qualified leads with a budget over 50,000, largest first, a page of 50.
fn qualified_page(path: String) -> Maker {
    Arc::new(move |_, _| Call {
        method: Method::POST,
        path: path.clone(),
        body: Some(json!({
            "filter": {"and": [{"field": "stage", "op": "eq", "value": "qualified"},
                               {"field": "budget", "op": "gt", "value": 50000}]},
            "sort": ["-budget"],
            "limit": 50
        })),
        expect: Expect::QualifiedPage,
    })
}

/// Runs P1–P6 on one backend; returns the number of failed requests.
async fn run(backend: Backend, settings: &Settings) -> u64 {
    let app = TestApp::spawn_with(
        backend,
        Options {
            demo_data: false,
            ..Default::default()
        },
    )
    .await;
    let (token, member_token) = prepare(&app).await;
    let target = Arc::new(Target {
        backend: match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        },
        base: app.address.clone(),
        token,
    });
    let seconds = Duration::from_secs(settings.seconds);
    let serial = Arc::new(AtomicU64::new(0));
    let mut failed = 0;
    let mut ids: Vec<String> = Vec::with_capacity(settings.records);

    // P1: single creates.
    let singles = SINGLE_CREATES.min(settings.records);
    let path = target.records("");
    let next = serial.clone();
    let make: Maker = Arc::new(move |rng, _| Call {
        method: Method::POST,
        path: path.clone(),
        body: Some(lead(rng, next.fetch_add(1, Ordering::Relaxed))),
        expect: Expect::Created,
    });
    let (probe, stop) = probe_outside_writes(&target);
    let mut tally = drive(
        &target,
        SINGLE_CLIENTS,
        Until::Requests(singles as u64),
        SEED + 1,
        make,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    ids.append(&mut tally.ids);
    failed += report(
        &target,
        ids.len(),
        "P1 create (16 clients)",
        "creates/s",
        tally,
    );
    let _ = probe.await;

    // P2: batches of 500.
    let batched = BATCHED_CREATES.min(settings.records - singles) / BATCH * BATCH;
    if batched > 0 {
        let (requests, make) = batches(&target, &serial, batched, BATCH);
        let mut tally = drive(
            &target,
            BATCH_CLIENTS,
            Until::Requests(requests),
            SEED + 2,
            make,
        )
        .await;
        ids.append(&mut tally.ids);
        failed += report(
            &target,
            ids.len(),
            "P2 batch create x500 (3 clients)",
            "records/s",
            tally,
        );
    }

    // Fill up to the target size, unmeasured.
    let fill = settings.records - singles - batched;
    if fill > 0 {
        let (requests, make) = batches(&target, &serial, fill, FILL_BATCH);
        let mut tally = drive(
            &target,
            FILL_CLIENTS,
            Until::Requests(requests),
            SEED + 3,
            make,
        )
        .await;
        ids.append(&mut tally.ids);
        println!(
            "{:<8} {:>9} (fill, unmeasured: {fill} records in {:.0} s, {} failed requests)",
            target.backend,
            ids.len(),
            tally.elapsed.as_secs_f64(),
            tally.failed
        );
        failed += tally.failed;
    }

    let table = count(&target).await;
    if table != ids.len() as u64 {
        println!(
            "{:<8} the table holds {table} records but {} creates were acknowledged",
            target.backend,
            ids.len()
        );
        failed += 1;
    }
    let table_size = table as usize;
    let ids = Arc::new(ids);

    if settings.wants("P3") {
        // P3: a filtered, sorted page.
        let make = qualified_page(target.records("/query"));
        let tally = drive(
            &target,
            READ_CLIENTS,
            Until::Elapsed(seconds),
            SEED + 4,
            make,
        )
        .await;
        failed += report(
            &target,
            table_size,
            "P3 query stage+budget (16 clients)",
            "req/s",
            tally,
        );
    }

    if settings.wants("P3m") {
        // P3m: the same page as a member, who sees only their own records (1 owner in 40).
        let member = Arc::new(Target {
            backend: target.backend,
            base: target.base.clone(),
            token: member_token.clone(),
        });
        let make = qualified_page(member.records("/query"));
        let tally = drive(
            &member,
            READ_CLIENTS,
            Until::Elapsed(seconds),
            SEED + 7,
            make,
        )
        .await;
        failed += report(
            &member,
            table_size,
            "P3m query as a member (own scope, 16 clients)",
            "req/s",
            tally,
        );
    }

    if settings.wants("P4") {
        // P4: get by id.
        let (known, base) = (ids.clone(), target.records("/"));
        let make: Maker = Arc::new(move |rng, _| {
            let id = &known[rng.gen_range(0..known.len())];
            Call {
                method: Method::GET,
                path: format!("{base}{id}"),
                body: None,
                expect: Expect::Record(id.clone()),
            }
        });
        let tally = drive(
            &target,
            READ_CLIENTS,
            Until::Elapsed(seconds),
            SEED + 5,
            make,
        )
        .await;
        failed += report(
            &target,
            table_size,
            "P4 get by id (16 clients)",
            "req/s",
            tally,
        );
    }

    if settings.wants("P5") {
        // P5: aggregate by stage.
        let path = target.records("/aggregate");
        let make: Maker = Arc::new(move |_, _| Call {
            method: Method::POST,
            path: path.clone(),
            body: Some(json!({"group_by": ["stage"],
                              "metrics": [{"op": "count"}, {"op": "sum", "field": "budget"}]})),
            expect: Expect::StageGroups(table),
        });
        let tally = drive(
            &target,
            AGGREGATE_CLIENTS,
            Until::Elapsed(seconds),
            SEED + 6,
            make,
        )
        .await;
        failed += report(
            &target,
            table_size,
            "P5 aggregate by stage (4 clients)",
            "req/s",
            tally,
        );
    }

    if settings.wants("P6") {
        // P6: change the stage of random records, no version.
        let (known, base) = (ids.clone(), target.records("/"));
        let make: Maker = Arc::new(move |rng, _| {
            let id = &known[rng.gen_range(0..known.len())];
            let stage = STAGES[rng.gen_range(0..STAGES.len())];
            Call {
                method: Method::PATCH,
                path: format!("{base}{id}"),
                body: Some(json!({"fields": {"stage": stage}})),
                expect: Expect::Stage(stage),
            }
        });
        let tally = drive(
            &target,
            READ_CLIENTS,
            Until::Elapsed(seconds),
            SEED + 7,
            make,
        )
        .await;
        failed += report(
            &target,
            table_size,
            "P6 patch stage (16 clients)",
            "req/s",
            tally,
        );
    }

    if settings.wants("R") {
        // R: a formula added to the entity is computed for every stored record by the
        // recompute job (one worker, batches of 500 in their own transactions).
        let admin = app.admin().await;
        let path = format!("/api/v1/w/demo/definitions/entity/{ENTITY}");
        let (_, current) = admin.get(&path).await;
        let mut document = current["published"].clone();
        document["properties"]["recomputed_score"] = json!({
            "type": "integer", "x-kind": "formula", "x-result": "integer",
            "x-label": {"en": "Recomputed score"}, "x-formula": SCORE_FORMULA
        });
        let (status, body) = admin
            .put(
                &format!("{path}/draft"),
                json!({"document": document, "revision": current["revision"]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "saving the formula: {body}");
        let started = Instant::now();
        let (status, body) = admin
            .post(
                &format!("{path}/versions"),
                json!({"revision": body["revision"]}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "publishing the formula: {body}"
        );
        app.run_jobs_until_idle().await;
        let elapsed = started.elapsed().as_secs_f64();
        let (_, jobs) = admin.get("/api/v1/w/demo/jobs?limit=100").await;
        let done = jobs
            .as_array()
            .and_then(|all| all.iter().find(|j| j["kind"] == "records.recompute"))
            .map_or(0, |job| job["progress_done"].as_i64().unwrap_or_default());
        println!(
            "{:<8} {table_size:>8} R recompute a new formula (job)          {:>6.0} records/s  total {elapsed:.1} s for {done} records",
            target.backend,
            done as f64 / elapsed,
        );
        if done != table_size as i64 {
            println!("R: the job computed {done} records of {table_size}");
            failed += 1;
        }
    }

    let database_url = app.database_url.clone();
    drop(app);
    if backend == Backend::Postgres {
        drop_database(&database_url).await;
    }
    failed
}

/// Drops the bench's PostgreSQL database (it can hold gigabytes at 1M records).
async fn drop_database(database_url: &str) {
    use sea_orm::ConnectionTrait;
    let Some((_, name)) = database_url.rsplit_once('/') else {
        return;
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Ok(admin) = sea_orm::Database::connect(common::postgres_admin_url()).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        let _ = admin.close().await;
    }
}

fn main() {
    let settings = Settings::from_env();
    println!(
        "CRM-bench: {} records, {} s per timed case; columns: backend, records in table, case, rate, p50, p99, failures",
        settings.records, settings.seconds
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let failed = runtime.block_on(async {
        let mut failed = 0;
        for backend in &settings.backends {
            failed += run(*backend, &settings).await;
        }
        failed
    });
    if failed > 0 {
        println!("FAILED: {failed} requests failed; these figures are not a valid measurement");
        std::process::exit(1);
    }
    println!("ok: every response checked, no failures");
}
