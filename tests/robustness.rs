//! "Bad input never hurts": a bounded, seeded property test that throws random and adversarial
//! input at the real HTTP API on SQLite and PostgreSQL (entity definitions, record bodies,
//! queries, paths) and checks that
//! - no response is a 5xx (nor a dropped connection),
//! - every 4xx is problem+json: `application/problem+json`, `status` equal to the HTTP status,
//!   `errors` (when present) an array of items with JSON `pointer` strings,
//! - a refused request wrote nothing (record counts, the record itself, the definition), and
//! - input known to be valid is accepted, input known to be invalid is refused.
//!
//! Every case comes from a fixed seed. All problems of a run are collected and reported together,
//! each with its case and the request (method, path, headers, body) to replay it. Set
//! `FORMWORK_ROBUSTNESS_TRACE=1` to print every request as it is sent.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Instant;

use base64::Engine;
use common::{Backend, Client, TestApp};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

const SEED: u64 = 0x2026_1125_0bad_f00d;
const DEFINITIONS: usize = 150;
const RECORD_BODIES: usize = 400;
const QUERIES: usize = 300;
const PATHS: usize = 100;

const WS: &str = "/api/v1/w/demo";
const GADGETS: &str = "/api/v1/w/demo/entities/gadget/records";
const PARTS: &str = "/api/v1/w/demo/entities/part/records";

// ---------------------------------------------------------------------------------------------
// Requests, responses and the checks every response goes through
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Body {
    Empty,
    Json(Value),
    Raw {
        bytes: Vec<u8>,
        content_type: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct Req {
    method: Method,
    path: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Body,
}

impl Req {
    fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    fn json(method: Method, path: impl Into<String>, body: Value) -> Self {
        Self {
            body: Body::Json(body),
            ..Self::new(method, path)
        }
    }

    fn raw(method: Method, path: impl Into<String>, bytes: Vec<u8>, content_type: &str) -> Self {
        Self {
            body: Body::Raw {
                bytes,
                content_type: (!content_type.is_empty()).then(|| content_type.to_owned()),
            },
            ..Self::new(method, path)
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// At most `max` bytes of `text`, noting how long it was.
fn short(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

impl fmt::Display for Req {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, short(&self.path, 600))?;
        for (name, value) in &self.headers {
            write!(f, " [{name}: {:?}]", String::from_utf8_lossy(value))?;
        }
        match &self.body {
            Body::Empty => Ok(()),
            Body::Json(value) => write!(f, " body={}", short(&value.to_string(), 1500)),
            Body::Raw {
                bytes,
                content_type,
            } => write!(
                f,
                " raw body (content-type {content_type:?})={:?}",
                short(&String::from_utf8_lossy(bytes), 1500)
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Resp {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl Resp {
    fn ok(&self) -> bool {
        self.status.is_success()
    }

    fn pointers(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["pointer"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What the answer to a generated request must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    /// Valid input: must be accepted.
    Good,
    /// Either answer is right.
    Maybe,
    /// Invalid input: must be refused.
    Bad,
}

/// Sends requests as one client, checks every response, and collects the problems found.
struct Probe<'a> {
    client: &'a Client,
    name: String,
    failures: RefCell<Vec<String>>,
    sent: Cell<usize>,
    started: Instant,
    trace: bool,
}

impl<'a> Probe<'a> {
    fn new(client: &'a Client, backend: Backend, part: &str) -> Self {
        Self {
            client,
            name: format!("{backend:?}/{part}"),
            failures: RefCell::new(Vec::new()),
            sent: Cell::new(0),
            started: Instant::now(),
            trace: std::env::var_os("FORMWORK_ROBUSTNESS_TRACE").is_some(),
        }
    }

    /// Sends without checking (reads used to verify what a request did).
    async fn send(&self, req: &Req) -> Resp {
        self.sent.set(self.sent.get() + 1);
        let sent_at = Instant::now();
        if self.trace {
            eprintln!("[{}] → {req}", self.name);
        }
        let url = format!("{}{}", self.client.base, req.path);
        let mut builder = self.client.http.request(req.method.clone(), url);
        if let Some(csrf) = &self.client.csrf {
            builder = builder.header("x-csrf-token", csrf.as_str());
        }
        for (name, value) in &req.headers {
            let value = HeaderValue::from_bytes(value).expect("generated header values are valid");
            builder = builder.header(*name, value);
        }
        match &req.body {
            Body::Empty => {}
            Body::Json(value) => {
                builder = builder
                    .header(CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(value).expect("serialize"));
            }
            Body::Raw {
                bytes,
                content_type,
            } => {
                if let Some(content_type) = content_type {
                    builder = builder.header(CONTENT_TYPE, content_type.as_str());
                }
                builder = builder.body(bytes.clone());
            }
        }
        let resp = match builder.send().await {
            Ok(response) => {
                let status = response.status();
                let content_type = response
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let text = response.text().await.unwrap_or_default();
                let body = if text.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&text).unwrap_or(Value::String(text))
                };
                Resp {
                    status,
                    content_type,
                    body,
                }
            }
            Err(error) if error.is_builder() => {
                panic!(
                    "[{}] the test built a request reqwest cannot send: {req}: {error}",
                    self.name
                )
            }
            Err(error) => Resp {
                status: StatusCode::from_u16(599).expect("status"),
                content_type: String::new(),
                body: Value::String(format!("transport error (connection dropped?): {error}")),
            },
        };
        if self.trace {
            eprintln!(
                "[{}] ← {} in {} ms",
                self.name,
                resp.status,
                sent_at.elapsed().as_millis()
            );
        }
        resp
    }

    /// Sends and checks the response: no 5xx, every 4xx problem+json.
    async fn call(&self, case: &str, req: &Req) -> Resp {
        let resp = self.send(req).await;
        self.check(case, req, &resp);
        resp
    }

    /// Sends, checks, and checks the answer against what the input deserves.
    async fn judge(&self, case: &str, req: &Req, verdict: Verdict) -> Resp {
        let resp = self.call(case, req).await;
        self.expect(case, req, &resp, verdict);
        resp
    }

    /// A setup step that must succeed.
    async fn setup(&self, req: &Req) -> Value {
        let resp = self.send(req).await;
        assert!(
            resp.ok(),
            "[{}] setup request failed: {req}\n  → {} {}",
            self.name,
            resp.status,
            short(&resp.body.to_string(), 2000)
        );
        resp.body
    }

    fn fail(&self, case: &str, req: &Req, what: &str) {
        self.failures.borrow_mut().push(format!(
            "[{}] {case}: {what}\n    request: {req}",
            self.name
        ));
    }

    fn check(&self, case: &str, req: &Req, resp: &Resp) {
        let status = resp.status;
        let body = || short(&resp.body.to_string(), 800);
        if status.is_server_error() {
            self.fail(
                case,
                req,
                &format!("server error {status}; response: {}", body()),
            );
            return;
        }
        if !status.is_success() && !status.is_client_error() {
            self.fail(
                case,
                req,
                &format!("unexpected status {status}; response: {}", body()),
            );
            return;
        }
        if status.is_client_error() {
            let mut problems = Vec::new();
            if !resp.content_type.starts_with("application/problem+json") {
                problems.push(format!("content-type is {:?}", resp.content_type));
            }
            if resp.body.get("status") != Some(&json!(status.as_u16())) {
                problems.push("`status` is not the HTTP status".to_owned());
            }
            if !resp.body["type"]
                .as_str()
                .is_some_and(|t| t.contains("/problems/"))
            {
                problems.push("no problem `type`".to_owned());
            }
            match resp.body.get("errors") {
                None => {}
                Some(Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let pointer = item.get("pointer").and_then(Value::as_str);
                        if !pointer.is_some_and(|p| p.is_empty() || p.starts_with('/')) {
                            problems.push(format!("errors[{i}] has no JSON pointer: {item}"));
                        }
                    }
                }
                Some(other) => problems.push(format!("`errors` is not an array: {other}")),
            }
            if !problems.is_empty() {
                self.fail(
                    case,
                    req,
                    &format!(
                        "{status} is not problem+json ({}); response: {}",
                        problems.join("; "),
                        body()
                    ),
                );
            }
        }
    }

    fn expect(&self, case: &str, req: &Req, resp: &Resp, verdict: Verdict) {
        if resp.status.is_server_error() {
            return; // already reported
        }
        let body = || short(&resp.body.to_string(), 800);
        match verdict {
            Verdict::Good if !resp.ok() => self.fail(
                case,
                req,
                &format!("valid input was refused: {} {}", resp.status, body()),
            ),
            Verdict::Bad if resp.ok() => self.fail(
                case,
                req,
                &format!("invalid input was accepted: {} {}", resp.status, body()),
            ),
            _ => {}
        }
    }

    /// Reports when `before` and `after` differ (a refused request changed something).
    fn same(&self, case: &str, req: &Req, what: &str, before: &Resp, after: &Resp) {
        if before != after {
            self.fail(
                case,
                req,
                &format!(
                    "{what}\n    before: {} {}\n    after:  {} {}",
                    before.status,
                    short(&before.body.to_string(), 700),
                    after.status,
                    short(&after.body.to_string(), 700)
                ),
            );
        }
    }

    /// How many records `records` (a `…/records` path) has, live or in the trash.
    async fn count(&self, records: &str, deleted: bool) -> i64 {
        let req = Req::json(
            Method::POST,
            format!("{records}/query"),
            json!({"total": "exact", "limit": 1, "deleted": deleted}),
        );
        let resp = self.send(&req).await;
        assert_eq!(
            resp.status,
            StatusCode::OK,
            "[{}] counting failed: {req}: {}",
            self.name,
            resp.body
        );
        resp.body["total"].as_i64().expect("total")
    }

    /// Asserts nothing was found; prints what was done.
    fn finish(self) {
        let elapsed = self.started.elapsed();
        eprintln!(
            "[{}] {} requests in {:.1}s",
            self.name,
            self.sent.get(),
            elapsed.as_secs_f64()
        );
        let failures = self.failures.into_inner();
        assert!(
            failures.is_empty(),
            "{} problem(s) found by {} (seed {SEED:#x}); the first ones:\n\n{}",
            failures.len(),
            self.name,
            failures
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Random building blocks
// ---------------------------------------------------------------------------------------------

fn one<T: Clone>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())].clone()
}

const SCRIPTS: [&str; 9] = [
    "abcdefghijklmnopqrstuvwxyz",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.,",
    "张伟李娜王芳杭州云帆科技有限公司客户商机",
    "שלום עולם",
    "مرحبا بالعالم",
    "😀🎉👍🏽🇨🇳👨‍👩‍👧",
    "e\u{301}a\u{308}o\u{303}",
    "\u{200f}\u{202e}\u{200b}\u{feff}\u{2028}",
    "<>&\"'\\/%_*?{}[]$`",
];

/// `chars` characters from a mix of scripts, starting with a letter (never blank).
fn text(rng: &mut StdRng, chars: usize) -> String {
    let first = SCRIPTS[rng.gen_range(0..SCRIPTS.len())];
    let second = SCRIPTS[rng.gen_range(0..SCRIPTS.len())];
    let pool: Vec<char> = first.chars().chain(second.chars()).collect();
    let mut out = String::with_capacity(chars * 3);
    out.push(char::from(b'a' + rng.gen_range(0..26u8)));
    for _ in 1..chars {
        out.push(pool[rng.gen_range(0..pool.len())]);
    }
    out
}

fn random_uuid(rng: &mut StdRng) -> String {
    uuid::Uuid::from_u128(rng.r#gen::<u128>()).to_string()
}

fn random_date(rng: &mut StdRng) -> String {
    let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("date")
        + chrono::Duration::days(rng.gen_range(0..130 * 365));
    date.format("%Y-%m-%d").to_string()
}

fn random_datetime(rng: &mut StdRng) -> String {
    let date = random_date(rng);
    let (h, m, s) = (
        rng.gen_range(0..24),
        rng.gen_range(0..60),
        rng.gen_range(0..60),
    );
    let fraction = one(rng, &["", ".5", ".123", ".123456"]);
    let offset = one(
        rng,
        &["Z", "+08:00", "-05:30", "+00:00", "+14:00", "-12:00"],
    );
    format!("{date}T{h:02}:{m:02}:{s:02}{fraction}{offset}")
}

/// `leaf` wrapped `depth` times by `wrap`.
fn nest(depth: usize, leaf: Value, wrap: impl Fn(Value) -> Value) -> Value {
    let mut value = leaf;
    for _ in 0..depth {
        value = wrap(value);
    }
    value
}

fn base64url(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Bodies that are not what any endpoint takes: broken JSON, wrong content types, bad UTF-8.
fn raw_junk(rng: &mut StdRng) -> (Vec<u8>, &'static str) {
    const JSON: &str = "application/json";
    let cases: Vec<(Vec<u8>, &'static str)> = vec![
        (Vec::new(), JSON),
        (b"{".to_vec(), JSON),
        (br#"{"fields": {"qty": NaN}}"#.to_vec(), JSON),
        (br#"{"fields": {"ratio": 1e400}}"#.to_vec(), JSON),
        (br#"{"fields": {"ratio": -Infinity}}"#.to_vec(), JSON),
        (br#"{"fields": {"name": "a",}}"#.to_vec(), JSON),
        (
            "\u{feff}{\"fields\": {\"name\": \"a\"}}"
                .as_bytes()
                .to_vec(),
            JSON,
        ),
        (br#"{"fields": {"name": "a"}} trailing"#.to_vec(), JSON),
        (br#"{"fields": {"name": "\ud800"}}"#.to_vec(), JSON),
        (b"{\"fields\": {\"name\": \"\xff\xfe\"}}".to_vec(), JSON),
        ("[".repeat(10_000).into_bytes(), JSON),
        (br#"{"fields": {"name": "a"}}"#.to_vec(), "text/plain"),
        (br#"{"fields": {"name": "a"}}"#.to_vec(), ""),
        (b"name=a".to_vec(), "application/x-www-form-urlencoded"),
        (b"null".to_vec(), JSON),
        (b"5".to_vec(), JSON),
        (b"\"x\"".to_vec(), JSON),
        (b"[]".to_vec(), JSON),
        (br#"{"fields": {"name": "a", "name": 5}}"#.to_vec(), JSON),
        (br#"{"fields": {"name": "a\u0000"}}"#.to_vec(), JSON),
        (
            br#"{"fields": {"name": "a"}, "fields": [1]}"#.to_vec(),
            JSON,
        ),
        (br#"{"fields": {"na\u0000me": "a"}}"#.to_vec(), JSON),
        (
            br#"{"fields": {"qty": 1}}"#.to_vec(),
            "application/json; charset=utf-16",
        ),
    ];
    one(rng, &cases)
}

// ---------------------------------------------------------------------------------------------
// The fixed entities: a part, and a gadget with a field of every writable kind
// ---------------------------------------------------------------------------------------------

fn part_entity() -> Value {
    json!({
        "type": "object",
        "x-label": {"en": "Part"},
        "x-title-field": "name",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 200, "x-kind": "text", "x-label": {"en": "Name"}}
        }
    })
}

fn gadget_entity() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "x-label": {"en": "Gadget", "zh-CN": "小工具"},
        "x-title-field": "name",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 200, "x-kind": "text", "x-label": {"en": "Name"}, "x-indexed": true},
            "notes": {"type": "string", "maxLength": 200_000, "x-kind": "long_text", "x-label": {"en": "Notes"}},
            "qty": {"type": "integer", "minimum": -1_000_000, "maximum": 1_000_000, "x-kind": "integer", "x-label": {"en": "Quantity"}},
            "ratio": {"type": "number", "x-kind": "number", "x-label": {"en": "Ratio"}},
            "price": {"type": "number", "minimum": 0, "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Price"}, "x-indexed": true},
            "discount": {"type": "number", "minimum": 0, "maximum": 100, "x-kind": "percent", "x-label": {"en": "Discount"}},
            "active": {"type": "boolean", "x-kind": "boolean", "x-label": {"en": "Active"}},
            "due_on": {"type": "string", "format": "date", "x-kind": "date", "x-label": {"en": "Due"}},
            "seen_at": {"type": "string", "format": "date-time", "x-kind": "datetime", "x-label": {"en": "Seen"}},
            "email": {"type": "string", "format": "email", "x-kind": "email", "x-label": {"en": "Email"}},
            "phone": {"type": "string", "x-kind": "phone", "x-label": {"en": "Phone"}},
            "site": {"type": "string", "format": "uri", "x-kind": "url", "x-label": {"en": "Site"}},
            "status": {"type": "string", "enum": ["open", "on_hold", "closed"], "x-kind": "single_select", "x-label": {"en": "Status"},
                       "x-options": [{"value": "open", "label": {"en": "Open"}, "color": "#1677ff"},
                                     {"value": "on_hold", "label": {"en": "On hold"}},
                                     {"value": "closed", "label": {"en": "Closed"}}]},
            "tags": {"type": "array", "items": {"type": "string"}, "x-kind": "multi_select", "x-label": {"en": "Tags"},
                     "x-options": [{"value": "red", "label": {"en": "Red"}}, {"value": "green", "label": {"en": "Green"}},
                                   {"value": "blue", "label": {"en": "Blue"}}]},
            "part": {"type": "string", "format": "uuid", "x-kind": "reference", "x-label": {"en": "Part"},
                     "x-reference": {"entity": "part", "on_delete": "restrict"}},
            "assignee": {"type": "string", "format": "uuid", "x-kind": "user", "x-label": {"en": "Assignee"}},
            "code": {"type": "string", "x-kind": "auto_number", "x-label": {"en": "Code"},
                     "x-auto-number": {"pattern": "G-{yyyy}-{0000}"}},
            "sku": {"type": "string", "maxLength": 64, "x-kind": "text", "x-label": {"en": "SKU"}, "x-unique": true}
        },
        "if": {"properties": {"status": {"const": "closed"}}, "required": ["status"]},
        "then": {"required": ["due_on"]}
    })
}

/// Every writable gadget field.
const GADGET_KEYS: [&str; 17] = [
    "name", "notes", "qty", "ratio", "price", "discount", "active", "due_on", "seen_at", "email",
    "phone", "site", "status", "tags", "part", "assignee", "sku",
];

const PHONES: [&str; 6] = [
    "+86 138-0013-8000",
    "(010) 1234 5678",
    "123",
    "010.1234.5678",
    "+1 (555) 010-9999 x12",
    "#123",
];

const SITES: [&str; 4] = [
    "https://example.com",
    "https://example.com/a/b?q=1&r=%20",
    "http://localhost:8080/",
    "https://xn--fsqu00a.xn--fiqs8s/",
];

/// What the record tests know about the workspace.
struct Env {
    parts: Vec<String>,
    trashed_part: String,
    east_part: String,
    admin_id: String,
    stranger_id: String,
    gadgets: Vec<String>,
    skus: BTreeMap<String, String>,
    next_sku: u64,
}

impl Env {
    fn remember(&mut self, record: &Value) {
        let Some(id) = record["id"].as_str() else {
            return;
        };
        if !self.gadgets.iter().any(|g| g == id) {
            self.gadgets.push(id.to_owned());
        }
        match record["fields"]["sku"].as_str() {
            Some(sku) => self.skus.insert(id.to_owned(), sku.to_owned()),
            None => self.skus.remove(id),
        };
    }

    /// A SKU taken by a record other than `except`.
    fn taken_sku(&self, rng: &mut StdRng, except: Option<&str>) -> Option<String> {
        let taken: Vec<&String> = self
            .skus
            .iter()
            .filter(|(id, _)| Some(id.as_str()) != except)
            .map(|(_, sku)| sku)
            .collect();
        (!taken.is_empty()).then(|| taken[rng.gen_range(0..taken.len())].clone())
    }
}

/// A valid value of gadget field `key` (never empty).
fn good_value(rng: &mut StdRng, env: &mut Env, key: &str) -> Value {
    match key {
        "name" => match rng.gen_range(0..12) {
            0 => json!("😀".repeat(200)),
            1 => {
                let len = rng.gen_range(1..20);
                json!(format!("  {}\t", text(rng, len)))
            }
            _ => {
                let len = rng.gen_range(1..120);
                json!(text(rng, len))
            }
        },
        "notes" => {
            if rng.gen_ratio(1, 40) {
                json!(text(rng, 150_000))
            } else {
                let len = rng.gen_range(1..400);
                json!(format!("{}\n第二行\r\n", text(rng, len)))
            }
        }
        "qty" => json!(rng.gen_range(-1_000_000..=1_000_000)),
        "ratio" => match rng.gen_range(0..6) {
            0 => json!(1e300),
            1 => json!(-1e-300),
            2 => json!(0),
            _ => json!(rng.gen_range(-1e6..1e6)),
        },
        "price" => match rng.gen_range(0..5) {
            0 => json!(rng.gen_range(0..1_000_000)),
            1 => json!(12.5),
            2 => json!("0.10"),
            _ => json!(format!(
                "{}.{:02}",
                rng.gen_range(0..10_000_000),
                rng.gen_range(0..100)
            )),
        },
        "discount" => match rng.gen_range(0..4) {
            0 => json!(0),
            1 => json!(100),
            _ => json!(rng.gen_range(0.0..100.0)),
        },
        "active" => json!(rng.gen_bool(0.5)),
        "due_on" => {
            if rng.gen_ratio(1, 10) {
                json!("2024-02-29")
            } else {
                json!(random_date(rng))
            }
        }
        "seen_at" => json!(random_datetime(rng)),
        "email" => {
            env.next_sku += 1;
            match rng.gen_range(0..4) {
                0 => json!("Zhang.Wei@Yunfan.CN"),
                1 => json!(format!("a+tag{}@sub.example.org", env.next_sku)),
                _ => json!(format!("user{}@example.com", env.next_sku)),
            }
        }
        "phone" => json!(one(rng, &PHONES)),
        "site" => json!(one(rng, &SITES)),
        "status" => json!(one(rng, &["open", "on_hold"])),
        "tags" => {
            let mut tags = vec!["red", "green", "blue"];
            tags.shuffle(rng);
            tags.truncate(rng.gen_range(1..=3));
            json!(tags)
        }
        "part" => json!(one(rng, &env.parts)),
        "assignee" => json!(env.admin_id),
        "sku" => {
            env.next_sku += 1;
            json!(format!(
                "SKU-{:06}-{}",
                env.next_sku,
                rng.gen_range(0..1000)
            ))
        }
        _ => Value::Null,
    }
}

/// A value gadget field `key` must refuse, on create and on change (`target` is the record
/// being changed, whose own SKU is not a clash).
fn bad_value(rng: &mut StdRng, env: &Env, key: &str, target: Option<&str>) -> Value {
    if rng.gen_ratio(1, 12) {
        return one(
            rng,
            &values(r#"[{"nested": {"deep": [1, {"x": null}]}}, [[["x"]]]]"#),
        );
    }
    let mut cases = match key {
        "name" => {
            values(r#"[7, true, [], {}, "   ", null, "a\u0000b", ["a"], {"en": "x"}, "\u0000"]"#)
        }
        "notes" => values(r#"[5, true, [], {"a": 1}, "a\u0000"]"#),
        "qty" => values(
            r#"["5", 1.5, 1e300, 2000001, -1000001, true, "1e400", 18446744073709551615, "NaN",
                [], {"v": 1}, 9007199254740993, 0.5, "", "-0"]"#,
        ),
        "ratio" => {
            values(r#"["NaN", "Infinity", "-Infinity", "1e400", "1.5", true, [], {}, "", "0"]"#)
        }
        "price" => values(
            r#"["1.234", "abc", "NaN", "1e400", "-5", -0.01, "1,000", "", true, [], "12.", ".5",
                "+5", "0x10", "99999999999999999999", "1e-5", "٣", "90071992547409.92", 1e16,
                "12.3.4", " ", "1 000", "−5", {}, "Infinity", "0.001"]"#,
        ),
        "discount" => values(r#"[101, -1, "50", true, 100.0001, [], "", -0.0001]"#),
        "active" => values(r#"["true", 1, 0, "yes", "false", [], {}, ""]"#),
        "due_on" => values(
            r#"["2026-02-30", "0000-00-00", "2026-13-01", "2026-1-1", "26-01-01",
                "2026-01-01T00:00:00Z", 20260101, "tomorrow", "2026-02-29", "2026-00-10",
                "2026-12-32", "２０２６-01-01", "+2026-01-01", "2026/01/01", true, [],
                "2026-01-01\u0000"]"#,
        ),
        "seen_at" => values(
            r#"["2026-11-20T10:00:00", "2026-02-30T00:00:00Z", "2026-11-20T25:00:00Z",
                "0000-00-00T00:00:00Z", 1700000000, "now", "2026-11-20",
                "2026-11-20T10:00:00+25:00", "T10:00:00Z", true, [], "2026-11-20T10:00:00ZZ"]"#,
        ),
        "email" => values(
            r#"["not-an-email", "a@b", "a b@c.d", "@x.cn", 5, "a@.cn", "a@b.", "x@y.cn\u0000",
                [], true]"#,
        ),
        "phone" => values(
            r#"["call me", "12", "١٢٣٤٥", 13800138000, "+86 138 0013 8000 ext. 5", "---", [],
                "\u0000123"]"#,
        ),
        "site" => values(
            r#"["example.com", "http//x", "://x", "javascript:alert(1)", "http://", "http://a b",
                5, "ftp:/x", []]"#,
        ),
        "status" => values(r#"["nope", "OPEN", 1, ["open"], " open ", "closed ", true, {}]"#),
        "tags" => values(
            r#"["red", ["red", "red"], ["purple"], [1], [["red"]], {"red": true}, ["RED"], [null],
                5]"#,
        ),
        "part" => {
            let mut cases = values(r#"["not-a-uuid", 123, "../../etc/passwd", ["x"]]"#);
            cases.extend([
                json!(random_uuid(rng)),
                json!(env.east_part),
                json!(env.trashed_part),
                json!(uuid::Uuid::nil().to_string()),
                json!(env.admin_id),
            ]);
            if let Some(gadget) = env.gadgets.first() {
                cases.push(json!(gadget));
            }
            cases
        }
        "assignee" => {
            let mut cases = values(r#"["admin", 5, "not-a-uuid"]"#);
            cases.extend([
                json!(random_uuid(rng)),
                json!(env.stranger_id),
                json!(uuid::Uuid::nil().to_string()),
                json!(env.parts[0]),
            ]);
            cases
        }
        "sku" => {
            let mut cases = values(r#"[5, true]"#);
            if let Some(sku) = env.taken_sku(rng, target) {
                cases.push(json!(sku));
            }
            cases
        }
        _ => values(r#"["G-1", 5, "G-2026-0001", [], true]"#),
    };
    if rng.gen_ratio(1, 10) {
        // Over the field's length limit.
        cases = match key {
            "name" => vec![json!("x".repeat(201)), json!("😀".repeat(201))],
            "notes" => vec![json!("x".repeat(200_001))],
            "sku" => vec![json!("x".repeat(65))],
            _ => cases,
        };
    }
    one(rng, &cases)
}

/// Values from JSON text (lists of test values read best as JSON).
fn values(text: &str) -> Vec<Value> {
    serde_json::from_str(text).expect("test values are JSON")
}

/// A value whose fate is not pinned down here (either answer is fine, but never a 5xx).
fn maybe_value(rng: &mut StdRng, env: &Env, key: &str) -> Option<Value> {
    let part = env.parts[0].clone();
    let cases = match key {
        "qty" => values("[-0.0, 3.0, 1e5]"),
        "ratio" => values("[-0.0, 1e308, 5e-324]"),
        "price" => values(
            r#"["-0", "1e3", 1e5, "00012.50", " 12.50 ", 0.30000000000000004, "12.500", 1.0e-2]"#,
        ),
        "discount" => values("[100.0, -0.0]"),
        "due_on" => values(r#"["0000-01-01", "9999-12-31", " 2026-01-01 "]"#),
        "seen_at" => values(
            r#"["2026-11-20t10:00:00z", "2026-11-20 10:00:00+08:00", "2026-11-20T10:00:60Z",
                "0000-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59",
                "2026-11-20T10:00:00.123456789Z", "2026-11-20T10:00:00+08"]"#,
        ),
        "email" => {
            values(r#"["用户@例子.中国", "a@b..cn", "\"quoted\"@x.cn", " UPPER@EXAMPLE.COM "]"#)
        }
        "site" => values(
            r#"["http://例子.中国/路径", "mailto://x", "https://x.cn/%zz", "HTTPS://EXAMPLE.COM"]"#,
        ),
        "part" => vec![
            json!(part.to_uppercase()),
            json!(format!("{{{part}}}")),
            json!(format!("urn:uuid:{part}")),
            json!(format!(" {part} ")),
        ],
        "assignee" => vec![json!(env.admin_id.to_uppercase())],
        "code" => vec![Value::Null],
        _ => return None,
    };
    Some(one(rng, &cases))
}

/// A value that clears a field (`null`, or the empty text or list).
fn clear_value(rng: &mut StdRng, key: &str) -> Value {
    match key {
        "tags" => one(rng, &[Value::Null, json!([])]),
        "notes" | "email" | "phone" | "site" | "status" | "part" | "assignee" | "sku"
        | "due_on" | "seen_at" => one(rng, &[Value::Null, json!(""), json!("  ")]),
        _ => Value::Null,
    }
}

fn is_empty_value(value: &Value) -> bool {
    value.is_null()
        || value.as_str().is_some_and(|s| s.trim().is_empty())
        || value.as_array().is_some_and(Vec::is_empty)
}

/// The entity-level rules on the record a write would leave: a name, and a due date when closed.
fn rule_verdict(fields: &Map<String, Value>) -> Verdict {
    let present = |key: &str| fields.get(key).is_some_and(|v| !is_empty_value(v));
    if !present("name") || (fields.get("status") == Some(&json!("closed")) && !present("due_on")) {
        Verdict::Bad
    } else {
        Verdict::Good
    }
}

/// A valid set of gadget fields.
fn good_fields(rng: &mut StdRng, env: &mut Env) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("name".to_owned(), good_value(rng, env, "name"));
    for key in &GADGET_KEYS[1..] {
        if rng.gen_bool(0.45) {
            fields.insert((*key).to_owned(), good_value(rng, env, key));
        }
    }
    if rng.gen_ratio(1, 5) {
        fields.insert("status".to_owned(), json!("closed"));
        fields.insert("due_on".to_owned(), good_value(rng, env, "due_on"));
    }
    fields
}

const UNKNOWN_KEYS: [&str; 13] = [
    "ghost",
    "Name",
    "name ",
    "",
    "__proto__",
    "😀",
    "a/b",
    "~0",
    "code2",
    "id",
    "owner",
    "created_at",
    "constructor",
];

/// Changes one field of `fields` (or adds an unknown one); records how that change should fare.
fn mutate(
    rng: &mut StdRng,
    env: &mut Env,
    fields: &mut Map<String, Value>,
    verdicts: &mut HashMap<String, Verdict>,
    target: Option<&str>,
) {
    if rng.gen_ratio(1, 10) {
        let key = if rng.gen_ratio(1, 8) {
            "x".repeat(300)
        } else {
            one(rng, &UNKNOWN_KEYS).to_owned()
        };
        let value = good_value(rng, env, "name");
        fields.insert(key.clone(), value);
        verdicts.insert(key, Verdict::Bad);
        return;
    }
    let key = if rng.gen_ratio(1, 15) {
        "code"
    } else {
        one(rng, &GADGET_KEYS)
    };
    let (value, verdict) = match rng.gen_range(0..20) {
        0..=9 => (bad_value(rng, env, key, target), Verdict::Bad),
        10..=14 => match maybe_value(rng, env, key) {
            Some(value) => (value, Verdict::Maybe),
            None => (good_value(rng, env, key), Verdict::Good),
        },
        15..=17 if key != "code" => (good_value(rng, env, key), Verdict::Good),
        _ if key == "code" => (bad_value(rng, env, key, target), Verdict::Bad),
        _ => (clear_value(rng, key), Verdict::Good),
    };
    fields.insert(key.to_owned(), value);
    verdicts.insert(key.to_owned(), verdict);
}

fn combined(verdicts: &HashMap<String, Verdict>, rule: Verdict) -> Verdict {
    verdicts
        .values()
        .copied()
        .chain([rule])
        .max()
        .unwrap_or(rule)
}

/// A random body for `POST …/gadget/records` and how it should fare.
fn create_body(rng: &mut StdRng, env: &mut Env) -> (Req, Verdict) {
    let mode = rng.gen_range(0..100);
    let mut fields = good_fields(rng, env);
    let mut verdicts = HashMap::new();
    match mode {
        0..=49 => {
            for _ in 0..rng.gen_range(1..=3) {
                mutate(rng, env, &mut fields, &mut verdicts, None);
            }
        }
        50..=59 => {
            let key = one(rng, &UNKNOWN_KEYS).to_owned();
            fields.insert(key.clone(), json!(1));
            verdicts.insert(key, Verdict::Bad);
        }
        60..=69 => {
            let good = Value::Object(fields.clone());
            let (body, verdict) = match rng.gen_range(0..14) {
                0 => (json!({"fields": [good]}), Verdict::Bad),
                1 => (json!({"fields": "x"}), Verdict::Bad),
                2 => (json!({"fields": null}), Verdict::Bad),
                3 => (json!({"fields": good, "extra": 1}), Verdict::Bad),
                4 => (json!({"fields": good, "version": 1}), Verdict::Bad),
                5 => (json!({"fields": good, "owner": "x"}), Verdict::Bad),
                6 => (
                    json!({"fields": good, "owner": random_uuid(rng)}),
                    Verdict::Maybe,
                ),
                7 => (json!({"fields": good, "owner": null}), Verdict::Good),
                8 => (
                    json!({"fields": good, "owner": env.admin_id}),
                    Verdict::Good,
                ),
                9 => (json!({}), Verdict::Bad),
                10 => (json!([good]), Verdict::Bad),
                11 => (Value::Null, Verdict::Bad),
                12 => (json!(5), Verdict::Bad),
                _ => (
                    json!({"fields": good, "id": random_uuid(rng)}),
                    Verdict::Bad,
                ),
            };
            return (Req::json(Method::POST, GADGETS, body), verdict);
        }
        70..=76 => {
            let (bytes, content_type) = raw_junk(rng);
            return (
                Req::raw(Method::POST, GADGETS, bytes, content_type),
                Verdict::Bad,
            );
        }
        77..=81 => {
            let (key, value) = match rng.gen_range(0..6) {
                0 => ("notes", json!("x".repeat(1_500_000))),
                1 => ("name", json!("名".repeat(10_000))),
                2 => ("name", nest(120, json!("deep"), |inner| json!([inner]))),
                3 => (
                    "name",
                    nest(130, json!("deeper"), |inner| json!({"a": inner})),
                ),
                4 => ("tags", json!(vec!["red"; 20_000])),
                _ => {
                    for i in 0..1000 {
                        fields.insert(format!("k{i}"), json!(i));
                    }
                    ("k0", json!(0))
                }
            };
            fields.insert(key.to_owned(), value);
            verdicts.insert(key.to_owned(), Verdict::Bad);
        }
        _ => {}
    }
    let verdict = combined(&verdicts, rule_verdict(&fields));
    (
        Req::json(Method::POST, GADGETS, json!({ "fields": fields })),
        verdict,
    )
}

/// Publishes `document` as entity `key` of `workspace` (draft, then version).
async fn publish(probe: &Probe<'_>, workspace: &str, key: &str, document: Value) {
    let base = format!("/api/v1/w/{workspace}/definitions/entity/{key}");
    let current = probe.send(&Req::get(&base)).await;
    let mut body = json!({ "document": document });
    if current.ok() {
        body["revision"] = current.body["revision"].clone();
    }
    let draft = probe
        .setup(&Req::json(Method::PUT, format!("{base}/draft"), body))
        .await;
    probe
        .setup(&Req::json(
            Method::POST,
            format!("{base}/versions"),
            json!({"revision": draft["revision"]}),
        ))
        .await;
}

/// The part and gadget entities, parts (live, trashed, in another workspace), a member and a
/// stranger, and `gadgets` valid gadgets.
async fn setup_records(app: &TestApp, probe: &Probe<'_>, rng: &mut StdRng, gadgets: usize) -> Env {
    publish(probe, "demo", "part", part_entity()).await;
    publish(probe, "demo", "gadget", gadget_entity()).await;
    let created = probe
        .setup(&Req::json(
            Method::POST,
            format!("{PARTS}/batch"),
            json!({"records": [{"fields": {"name": "Bolt"}}, {"fields": {"name": "螺母"}},
                               {"fields": {"name": "Washer 😀"}}]}),
        ))
        .await;
    let parts = ids(&created["records"]);
    let old = probe
        .setup(&Req::json(
            Method::POST,
            PARTS,
            json!({"fields": {"name": "Old"}}),
        ))
        .await;
    let trashed_part = old["id"].as_str().expect("id").to_owned();
    probe
        .setup(&Req::new(Method::DELETE, format!("{PARTS}/{trashed_part}")))
        .await;
    probe
        .setup(&Req::json(
            Method::POST,
            "/api/v1/account/workspaces",
            json!({"slug": "east", "name": "East"}),
        ))
        .await;
    publish(probe, "east", "part", part_entity()).await;
    let east = probe
        .setup(&Req::json(
            Method::POST,
            "/api/v1/w/east/entities/part/records",
            json!({"fields": {"name": "East bolt"}}),
        ))
        .await;
    let me = probe.setup(&Req::get("/api/v1/account")).await;
    let stranger = app.create_user("stranger@formwork.local").await;
    let (_, stranger_me) = stranger.get("/api/v1/account").await;
    let mut env = Env {
        parts,
        trashed_part,
        east_part: east["id"].as_str().expect("id").to_owned(),
        admin_id: me["account"]["id"].as_str().expect("id").to_owned(),
        stranger_id: stranger_me["account"]["id"]
            .as_str()
            .expect("id")
            .to_owned(),
        gadgets: Vec::new(),
        skus: BTreeMap::new(),
        next_sku: 0,
    };
    let mut records = Vec::new();
    for _ in 0..gadgets {
        records.push(json!({ "fields": good_fields(rng, &mut env) }));
    }
    let created = probe
        .setup(&Req::json(
            Method::POST,
            format!("{GADGETS}/batch"),
            json!({ "records": records }),
        ))
        .await;
    for record in created["records"].as_array().expect("records") {
        env.remember(record);
    }
    env
}

// ---------------------------------------------------------------------------------------------
// 1. Random entity definitions
// ---------------------------------------------------------------------------------------------

const DEFINITION_KINDS: [&str; 21] = [
    "text",
    "long_text",
    "integer",
    "number",
    "money",
    "percent",
    "boolean",
    "date",
    "datetime",
    "email",
    "phone",
    "url",
    "single_select",
    "multi_select",
    "reference",
    "user",
    "attachment",
    "sub_table",
    "auto_number",
    "formula",
    "rollup",
];

/// Field keys shared by the random definitions, so republishing changes a stored field's kind.
const FIELD_KEYS: [&str; 8] = ["f_a", "f_b", "f_c", "f_d", "name", "amount", "when", "tags"];

const ENTITY_POOL: [&str; 4] = ["rb_alpha", "rb_beta", "rb_gamma", "rb_delta"];

fn label(rng: &mut StdRng) -> Value {
    let len = rng.gen_range(1..30);
    json!({"en": text(rng, len), "zh-CN": "字段"})
}

fn options(rng: &mut StdRng) -> Value {
    let n = rng.gen_range(1..5);
    Value::Array(
        (0..n)
            .map(|i| json!({"value": format!("o{i}"), "label": {"en": format!("Option {i}")}, "color": "#1677ff"}))
            .collect(),
    )
}

/// A plausible value for a field of a random definition.
fn value_for_field(rng: &mut StdRng, field: &Value) -> Value {
    match field["x-kind"].as_str().unwrap_or_default() {
        "text" | "long_text" => {
            let len = rng.gen_range(1..12);
            json!(text(rng, len))
        }
        "phone" => json!("+86 138 0013 8000"),
        "email" => json!("someone@example.com"),
        "url" => json!("https://example.com"),
        "integer" => json!(rng.gen_range(-5..500)),
        "number" | "percent" => json!(rng.gen_range(0.0..100.0)),
        "money" => json!(format!(
            "{}.{:02}",
            rng.gen_range(0..1000),
            rng.gen_range(0..100)
        )),
        "boolean" => json!(rng.gen_bool(0.5)),
        "date" => json!(random_date(rng)),
        "datetime" => json!(random_datetime(rng)),
        "single_select" => field["x-options"][0]["value"].clone(),
        "multi_select" => json!([field["x-options"][0]["value"]]),
        "reference" | "user" => json!(random_uuid(rng)),
        _ => json!("x"),
    }
}

fn valid_field(rng: &mut StdRng, kind: &str, self_key: &str) -> Value {
    let mut field = json!({"x-kind": kind, "x-label": label(rng)});
    let extra = match kind {
        "text" | "long_text" | "phone" => {
            let mut f = json!({"type": "string"});
            if rng.gen_bool(0.3) {
                f["maxLength"] = json!(rng.gen_range(1..500));
            }
            if rng.gen_bool(0.1) {
                f["pattern"] = json!("^[^<>]*$");
            }
            f
        }
        "email" => json!({"type": "string", "format": "email"}),
        "url" => json!({"type": "string", "format": "uri"}),
        "integer" => json!({"type": "integer", "minimum": -1000, "maximum": 1_000_000}),
        "number" | "percent" => json!({"type": "number"}),
        "money" => {
            json!({"type": "number", "x-currency": one(rng, &["CNY", "USD", "JPY", "KWD", "EUR"])})
        }
        "boolean" => json!({"type": "boolean"}),
        "date" => json!({"type": "string", "format": "date"}),
        "datetime" => json!({"type": "string", "format": "date-time"}),
        "single_select" => json!({"type": "string", "x-options": options(rng)}),
        "multi_select" => {
            json!({"type": "array", "items": {"type": "string"}, "x-options": options(rng)})
        }
        "reference" => json!({
            "type": "string", "format": "uuid",
            "x-reference": {
                "entity": one(rng, &["lead", "customer", "contact", "rb_alpha", self_key]),
                "on_delete": one(rng, &["restrict", "set_null", "cascade"])
            }
        }),
        "user" => json!({"type": "string", "format": "uuid"}),
        "attachment" | "sub_table" => json!({"type": "array"}),
        "auto_number" => json!({"type": "string", "x-auto-number": {"pattern": one(rng, &[
            "A-{0000}", "{yyyy}{mm}{dd}-{000000}", "X", "{", "{0}", "{yy}-{00}",
            "{yyyy}-{0000000000000000000000000000000000000000}"])}}),
        "formula" => json!({"x-formula": one(rng, &["1 + 1", "amount * 2", "((("])}),
        "rollup" => json!({"x-rollup": {
            "entity": one(rng, &["lead", "customer", self_key]), "via": "f_a",
            "op": one(rng, &["count", "sum", "min", "max", "avg"]), "field": "f_b"}}),
        _ => json!({}),
    };
    if let (Some(field), Value::Object(extra)) = (field.as_object_mut(), extra) {
        field.extend(extra);
    }
    if rng.gen_bool(0.2) {
        field["x-indexed"] = json!(true);
    }
    if rng.gen_bool(0.05) {
        field["x-unique"] = json!(true);
    }
    if rng.gen_bool(0.05) {
        field["x-hidden"] = json!(true);
    }
    if rng.gen_bool(0.1) {
        field["x-default"] = value_for_field(rng, &field);
    }
    if rng.gen_bool(0.1) {
        field["x-help"] = label(rng);
    }
    field
}

fn valid_definition(rng: &mut StdRng, self_key: &str) -> Value {
    let mut keys = FIELD_KEYS.to_vec();
    keys.shuffle(rng);
    keys.truncate(rng.gen_range(1..=6));
    let mut properties = Map::new();
    for key in &keys {
        let kind = one(rng, &DEFINITION_KINDS);
        properties.insert((*key).to_owned(), valid_field(rng, kind, self_key));
    }
    let mut doc = json!({
        "type": "object",
        "x-label": {"en": format!("Entity {self_key}")},
        "properties": properties,
    });
    if rng.gen_bool(0.3) {
        doc["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    }
    if rng.gen_bool(0.3) {
        doc["required"] = json!([keys[0]]);
    }
    if rng.gen_bool(0.3) {
        doc["x-title-field"] = json!(keys[0]);
    }
    if rng.gen_bool(0.2) {
        doc["x-label-plural"] = label(rng);
        doc["x-icon"] = json!("box");
        doc["title"] = json!("A title");
        doc["description"] = json!("描述 ✓");
    }
    if keys.len() >= 2 && rng.gen_bool(0.15) {
        doc["if"] = json!({"properties": {keys[0]: {"const": "x"}}, "required": [keys[0]]});
        doc["then"] = json!({"required": [keys[1]]});
    }
    doc
}

fn field_keys(doc: &Value) -> Vec<String> {
    doc["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn field_mut<'d>(doc: &'d mut Value, key: &str) -> Option<&'d mut Map<String, Value>> {
    doc.get_mut("properties")?.get_mut(key)?.as_object_mut()
}

fn set_field(doc: &mut Value, key: &str, field: Value) {
    if let Some(properties) = doc.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert(key.to_owned(), field);
    }
}

fn junk_keyword(rng: &mut StdRng) -> (String, Value) {
    let cases = values(
        r#"[["minimum", "x"], ["pattern", "(["], ["maxLength", -1], ["enum", 5], ["enum", []],
            ["type", "strin"], ["type", ["string", 5]], ["format", 5], ["multipleOf", 0],
            ["multipleOf", -1], ["required", "x"], ["minLength", 1.5], ["items", 5],
            ["properties", []], ["additionalProperties", "no"], ["if", 5], ["then", "x"],
            ["not", []], ["allOf", {}], ["anyOf", []], ["oneOf", [5]],
            ["dependentRequired", {"a": "b"}], ["pattern", "^(a+)+$"], ["pattern", "\\p{Unknown}"],
            ["pattern", "a{99999}"], ["pattern", "(?<=a+)b"], ["format", "made-up"],
            ["maximum", 1e308], ["minimum", -1e308], ["contentEncoding", 5], ["$defs", 5],
            ["uniqueItems", "yes"], ["x-indexed", "yes"], ["x-unique", 1], ["x-hidden", null],
            ["x-help", "plain"], ["const", {"a": [1, {"b": null}]}], ["maxItems", 1e20],
            ["minLength", -5], ["propertyNames", {"pattern": "(("}],
            ["unevaluatedProperties", false], ["$comment", 5], ["default", {"x": 1}],
            ["pattern", "^[\\u0000-\\uFFFF]{0,100000}$"], ["maxLength", 0], ["$anchor", "1bad"],
            ["$id", "http://evil.example/"]]"#,
    );
    let pair = one(rng, &cases);
    (
        pair[0].as_str().unwrap_or_default().to_owned(),
        pair[1].clone(),
    )
}

fn bad_field_key(rng: &mut StdRng) -> String {
    let mut keys: Vec<String> = values(
        r#"["", "A", "1a", "_a", "a-b", "a b", "ключ", "字段", "é", "a\u202eb", "😀", "a/b", "a'b",
            "a\"b", "a\u0000b", "$ref"]"#,
    )
    .iter()
    .filter_map(|k| k.as_str().map(str::to_owned))
    .collect();
    keys.extend(["a".repeat(64), "x".repeat(5000)]);
    one(rng, &keys)
}

/// One way to break (or strain) a definition.
fn break_definition(rng: &mut StdRng, self_key: &str, mut doc: Value) -> Value {
    if !doc.is_object() {
        return doc;
    }
    let keys = field_keys(&doc);
    let target = if keys.is_empty() {
        "f_a".to_owned()
    } else {
        one(rng, &keys)
    };
    match rng.gen_range(0..21) {
        0 => {
            let kind = one(rng, &DEFINITION_KINDS);
            let field = valid_field(rng, kind, self_key);
            set_field(&mut doc, &bad_field_key(rng), field);
        }
        1 => {
            let kind = one(
                rng,
                &values(r#"["", "TEXT", "money2", "text ", 5, null, ["text"], "json"]"#),
            );
            if let Some(field) = field_mut(&mut doc, &target) {
                field.insert("x-kind".to_owned(), kind);
            }
        }
        2 => {
            let (kind, missing) = one(
                rng,
                &[
                    ("money", "x-currency"),
                    ("single_select", "x-options"),
                    ("multi_select", "x-options"),
                    ("reference", "x-reference"),
                    ("auto_number", "x-auto-number"),
                    ("formula", "x-formula"),
                    ("rollup", "x-rollup"),
                ],
            );
            let mut field = valid_field(rng, kind, self_key);
            if let Some(field) = field.as_object_mut() {
                field.remove(missing);
            }
            set_field(&mut doc, &target, field);
        }
        3 => {
            let entity = one(
                rng,
                &[
                    json!("nowhere"),
                    json!("Lead"),
                    json!(""),
                    json!("rb_never"),
                    json!("a".repeat(64)),
                    json!("lead "),
                    json!(5),
                    json!("../lead"),
                ],
            );
            let on_delete = one(rng, &["restrict", "explode", "set_null", ""]);
            let mut field = valid_field(rng, "reference", self_key);
            field["x-reference"] = json!({"entity": entity, "on_delete": on_delete});
            set_field(&mut doc, &target, field);
        }
        4 => {
            let (keyword, value) = junk_keyword(rng);
            if let Some(field) = field_mut(&mut doc, &target) {
                field.insert(keyword, value);
            }
        }
        5 => {
            let (keyword, value) = junk_keyword(rng);
            doc[keyword.as_str()] = value;
        }
        6 => {
            let depth = rng.gen_range(1..40);
            let leaf = if rng.gen_bool(0.5) {
                json!({"required": [target]})
            } else {
                let (keyword, value) = junk_keyword(rng);
                json!({ keyword: value })
            };
            let nested = nest(
                depth,
                leaf,
                |inner| json!({"if": {"properties": {"f_a": {"const": 1}}}, "then": inner, "else": true}),
            );
            doc["allOf"] = json!([nested]);
        }
        7 => match rng.gen_range(0..12) {
            0 => doc["$ref"] = json!("#"),
            1 => {
                if let Some(field) = field_mut(&mut doc, &target) {
                    field.insert("$ref".to_owned(), json!(format!("#/properties/{target}")));
                }
            }
            2 => {
                doc["$defs"] = json!({"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}});
                doc["allOf"] = json!([{"$ref": "#/$defs/a"}]);
            }
            3 => {
                if let Some(field) = field_mut(&mut doc, &target) {
                    field.insert("$ref".to_owned(), json!("#/nowhere"));
                }
            }
            4 => {
                if let Some(field) = field_mut(&mut doc, &target) {
                    field.insert("$ref".to_owned(), json!("http://x"));
                }
            }
            5 => doc["$ref"] = json!("file:///etc/passwd"),
            6 => {
                doc["$defs"] = json!({"ok": {"type": "string"}});
                if let Some(field) = field_mut(&mut doc, &target) {
                    field.insert("$ref".to_owned(), json!("#/$defs/ok"));
                }
            }
            7 => {
                if let Some(field) = field_mut(&mut doc, &target) {
                    field.insert("$dynamicRef".to_owned(), json!("#meta"));
                }
            }
            8 => {
                if let Some(field) = field_mut(&mut doc, &target) {
                    field.insert("$ref".to_owned(), json!(5));
                }
            }
            9 => {
                doc["$id"] = json!("http://evil.example/schema");
                if let Some(field) = field_mut(&mut doc, &target) {
                    field.insert("$ref".to_owned(), json!("other.json"));
                }
            }
            10 => {
                if let Some(field) = field_mut(&mut doc, &target) {
                    field.insert(
                        "$ref".to_owned(),
                        json!(format!("#/properties/{target}/x-label")),
                    );
                }
            }
            _ => {
                doc["$defs"] = json!({"r": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/r"}]}});
                if let Some(field) = field_mut(&mut doc, &target) {
                    field.insert("$ref".to_owned(), json!("#/$defs/r"));
                }
            }
        },
        8 if ENTITY_POOL.contains(&self_key) => match rng.gen_range(0..8) {
            0 => {
                let mut properties = Map::new();
                for i in 0..500 {
                    properties.insert(
                        format!("f_{i}"),
                        json!({"type": "string", "x-kind": "text", "x-label": {"en": format!("Field {i} {}", "长".repeat(150))}}),
                    );
                }
                doc["properties"] = Value::Object(properties);
            }
            1 => {
                let mut properties = Map::new();
                for i in 0..501 {
                    properties.insert(
                        format!("f_{i}"),
                        json!({"type": "string", "x-kind": "text", "x-label": {"en": "F"}}),
                    );
                }
                doc["properties"] = Value::Object(properties);
            }
            2 => {
                let values: Vec<Value> = (0..60_000).map(|i| json!(format!("v{i}"))).collect();
                set_field(
                    &mut doc,
                    &target,
                    json!({"type": "string", "enum": values, "x-kind": "text", "x-label": {"en": "Huge enum"}}),
                );
            }
            3 => doc["description"] = json!("d".repeat(1_500_000)),
            4 => doc["description"] = json!("d".repeat(2001)),
            5 => doc["x-label"] = json!({"en": "L".repeat(201)}),
            6 => {
                let options: Vec<Value> = (0..501)
                    .map(|i| json!({"value": format!("o{i}"), "label": {"en": "O"}}))
                    .collect();
                set_field(
                    &mut doc,
                    &target,
                    json!({"type": "string", "x-kind": "single_select", "x-label": {"en": "Many"}, "x-options": options}),
                );
            }
            _ => {
                let big: Vec<Value> = (0..25_000).map(|i| json!({"k": i, "t": "填充"})).collect();
                doc["x-payload"] = json!(big);
            }
        },
        9 => {
            let depth = one(rng, &[17_usize, 60, 110, 121, 140, 400]);
            match rng.gen_range(0..4) {
                0 => {
                    if let Some(field) = field_mut(&mut doc, &target) {
                        field.insert(
                            "not".to_owned(),
                            nest(
                                depth,
                                json!({"type": "number"}),
                                |inner| json!({"not": inner}),
                            ),
                        );
                    }
                }
                1 => {
                    let nested = nest(
                        depth / 2,
                        json!({"type": "string"}),
                        |inner| json!({"type": "object", "properties": {"a": inner}}),
                    );
                    if let Some(field) = field_mut(&mut doc, &target) {
                        field.insert("properties".to_owned(), json!({"a": nested}));
                    }
                }
                2 => {
                    doc["allOf"] =
                        nest(depth / 2, json!([true]), |inner| json!([{"allOf": inner}]));
                }
                _ => {
                    if let Some(field) = field_mut(&mut doc, &target) {
                        field.insert(
                            "x-default".to_owned(),
                            nest(depth, json!("x"), |inner| json!([inner])),
                        );
                    }
                }
            }
        }
        10 => match rng.gen_range(0..16) {
            0 => doc["type"] = json!("array"),
            1 => {
                if let Some(doc) = doc.as_object_mut() {
                    doc.remove("type");
                }
            }
            2 => {
                if let Some(doc) = doc.as_object_mut() {
                    doc.remove("x-label");
                }
            }
            3 => doc["x-label"] = json!({}),
            4 => doc["properties"] = json!({}),
            5 => doc["properties"] = json!([]),
            6 => {
                if let Some(doc) = doc.as_object_mut() {
                    doc.remove("properties");
                }
            }
            7 => doc["required"] = json!("x"),
            8 => doc["required"] = json!(["nowhere"]),
            9 => doc["required"] = json!([target, target]),
            10 => doc["x-title-field"] = json!("nowhere"),
            11 => doc["x-title-field"] = json!("A B"),
            12 => doc["$schema"] = json!("http://json-schema.org/draft-04/schema#"),
            13 => doc["additionalProperties"] = json!("no"),
            14 => doc["additionalProperties"] = json!(false),
            _ => {
                doc["x-app"] = json!(5);
                doc["x-icon"] = json!("i".repeat(41));
            }
        },
        11 => {
            let options = one(
                rng,
                &[
                    json!([]),
                    json!([{"value": "a", "label": {"en": "A"}}, {"value": "a", "label": {"en": "B"}}]),
                    json!([{"value": "a", "label": {"en": "A"}, "color": "#12"}]),
                    json!([{"value": "", "label": {"en": "A"}}]),
                    json!([{"value": "a"}]),
                    json!([{"value": 5, "label": {"en": "A"}}]),
                    json!("a,b"),
                    json!([{"value": "a\u{0}", "label": {"en": "A"}}]),
                ],
            );
            let kind = one(rng, &["single_select", "multi_select"]);
            let mut field = valid_field(rng, kind, self_key);
            field["x-options"] = options;
            set_field(&mut doc, &target, field);
        }
        12 => {
            let bad_label = one(
                rng,
                &[
                    Value::Null,
                    json!({"en": ""}),
                    json!({"fr": "x"}),
                    json!("plain"),
                    json!({"en": "x".repeat(201)}),
                    json!({"en": "x", "zh-CN": 5}),
                ],
            );
            if let Some(field) = field_mut(&mut doc, &target) {
                if bad_label.is_null() {
                    field.remove("x-label");
                } else {
                    field.insert("x-label".to_owned(), bad_label);
                }
            }
        }
        13 => {
            let mut field = valid_field(rng, "money", self_key);
            field["x-currency"] = one(rng, &values(r#"["cny", "ZZZ", "XAU", "USDT", 5, ""]"#));
            set_field(&mut doc, &target, field);
        }
        14 => {
            let default = one(
                rng,
                &[
                    json!("abc"),
                    json!("2026-02-30"),
                    json!({"a": 1}),
                    json!(1e308),
                    json!("nope"),
                    json!("\u{0}"),
                ],
            );
            if let Some(field) = field_mut(&mut doc, &target) {
                field.insert("x-default".to_owned(), default);
            }
        }
        15 => {
            let kind = one(
                rng,
                &[
                    "multi_select",
                    "long_text",
                    "boolean",
                    "attachment",
                    "formula",
                ],
            );
            let mut field = valid_field(rng, kind, self_key);
            field["x-unique"] = json!(true);
            field["x-indexed"] = json!(true);
            set_field(&mut doc, &target, field);
        }
        16 => {
            let mut field = valid_field(rng, "auto_number", self_key);
            field["x-auto-number"] = one(
                rng,
                &[
                    json!({"pattern": ""}),
                    json!({"pattern": "{"}),
                    json!({}),
                    json!("A-{0000}"),
                    json!({"pattern": "{0000}", "start": 5}),
                    json!({"pattern": "p".repeat(101)}),
                ],
            );
            set_field(&mut doc, &target, field);
        }
        17 => {
            let key = one(
                rng,
                &[
                    "id",
                    "owner",
                    "created_at",
                    "deleted_at",
                    "doc",
                    "version",
                    "select",
                ],
            );
            let kind = one(rng, &DEFINITION_KINDS);
            let field = valid_field(rng, kind, self_key);
            set_field(&mut doc, key, field);
        }
        18 => {
            doc = one(rng, &values(r#"[5, [], "x", null, true, {}]"#));
        }
        19 => {
            let mut field = valid_field(rng, "rollup", self_key);
            field["x-rollup"] = one(
                rng,
                &values(
                    r#"[{"entity": "nowhere", "via": "f_a", "op": "sum"}, {"entity": "lead", "via": "f_a", "op": "median"}, {"entity": "lead"}]"#,
                ),
            );
            set_field(&mut doc, &target, field);
        }
        _ => {
            let mut field = valid_field(rng, "formula", self_key);
            field["x-formula"] = one(rng, &[json!(""), json!(5), json!("f".repeat(20_001))]);
            set_field(&mut doc, &target, field);
        }
    }
    doc
}

fn random_definition(rng: &mut StdRng, self_key: &str) -> Value {
    let mut doc = valid_definition(rng, self_key);
    if rng.gen_bool(0.35) {
        return doc;
    }
    for _ in 0..rng.gen_range(1..=3) {
        doc = break_definition(rng, self_key, doc);
    }
    doc
}

fn junk_revision(rng: &mut StdRng, current: Option<i64>) -> Value {
    let r = current.unwrap_or(0);
    one(
        rng,
        &[
            json!(r + 1),
            json!(r - 1),
            json!(-1),
            json!(i64::MAX),
            json!(i64::MIN),
            json!("x"),
            json!(1.5),
            json!(1e20),
            json!([r]),
            json!({}),
            json!(true),
        ],
    )
}

fn junk_if_match(rng: &mut StdRng) -> Vec<u8> {
    one(
        rng,
        &[
            b"abc".to_vec(),
            Vec::new(),
            b"*".to_vec(),
            b"99999999999999999999999".to_vec(),
            b"-1".to_vec(),
            b"1, 2".to_vec(),
            b"\"\"".to_vec(),
            b"W/".to_vec(),
            "é".as_bytes().to_vec(),
            b"0x10".to_vec(),
        ],
    )
}

/// After a publish: writes records and runs queries that touch every kind of stored value,
/// including values stored under an earlier kind of the same field.
async fn exercise(probe: &Probe<'_>, rng: &mut StdRng, case: &str, key: &str, document: &Value) {
    let Some(properties) = document["properties"].as_object() else {
        return;
    };
    let records = format!("{WS}/entities/{key}/records");
    for _ in 0..2 {
        let mut fields = Map::new();
        for (name, field) in properties {
            if rng.gen_bool(0.7) {
                fields.insert(name.clone(), value_for_field(rng, field));
            }
        }
        probe
            .call(
                case,
                &Req::json(Method::POST, &records, json!({ "fields": fields })),
            )
            .await;
    }
    let mut names: Vec<&String> = properties.keys().collect();
    names.shuffle(rng);
    for name in names.into_iter().take(2) {
        let sample = value_for_field(rng, &properties[name.as_str()]);
        let op = one(
            rng,
            &[
                "eq", "gt", "lt", "between", "in", "contains", "is_empty", "within",
            ],
        );
        let value = match op {
            "between" => json!([sample, sample]),
            "in" => json!([sample]),
            "is_empty" => json!(true),
            "within" => json!("this_month"),
            _ => sample,
        };
        let sort = if rng.gen_bool(0.5) {
            name.clone()
        } else {
            format!("-{name}")
        };
        probe
            .call(
                case,
                &Req::json(
                    Method::POST,
                    format!("{records}/query"),
                    json!({"filter": {"field": name, "op": op, "value": value}, "sort": [sort], "limit": 5, "total": "exact"}),
                ),
            )
            .await;
        probe
            .call(
                case,
                &Req::get(format!("{records}?sort={}&limit=3", encode(&sort))),
            )
            .await;
        let metric = one(rng, &["sum", "avg", "min", "max"]);
        probe
            .call(
                case,
                &Req::json(
                    Method::POST,
                    format!("{records}/aggregate"),
                    json!({"group_by": [name], "metrics": [{"op": "count"}, {"op": metric, "field": name}]}),
                ),
            )
            .await;
    }
}

async fn random_definitions_publish_or_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let probe = Probe::new(&admin, backend, "definitions");
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    // The last state read of each definition (the next case's "before").
    let mut known: HashMap<String, Resp> = HashMap::new();
    for case in 0..DEFINITIONS {
        let key = match rng.gen_range(0..20) {
            0 => "lead".to_owned(),
            1 => "customer".to_owned(),
            2 => format!("rb_new_{case}"),
            _ => one(&mut rng, &ENTITY_POOL).to_owned(),
        };
        let label = format!("definition case {case} (entity {key})");
        let path = format!("{WS}/definitions/entity/{key}");
        let before = match known.get(&key) {
            Some(state) => state.clone(),
            None => probe.send(&Req::get(&path)).await,
        };
        let revision = before.body["revision"].as_i64();

        // Save a random draft, with the right revision most of the time.
        let document = random_definition(&mut rng, &key);
        let mut body = json!({ "document": document });
        let mut headers: Vec<Vec<u8>> = Vec::new();
        let mut verdict = Verdict::Maybe;
        match rng.gen_range(0..20) {
            0..=14 => {
                if let Some(r) = revision {
                    body["revision"] = json!(r);
                }
            }
            15 => {
                body["revision"] = junk_revision(&mut rng, revision);
                verdict = Verdict::Bad;
            }
            16 => {
                if let Some(r) = revision {
                    headers.push(format!("\"{r}\"").into_bytes());
                }
            }
            17 => {
                if revision.is_some() {
                    headers.push(junk_if_match(&mut rng));
                    verdict = Verdict::Bad;
                }
            }
            18 => {
                body["extra"] = json!(1);
                verdict = Verdict::Bad;
            }
            _ => {
                body = one(
                    &mut rng,
                    &[json!({"doc": body["document"]}), json!([body]), json!("x")],
                );
                verdict = Verdict::Bad;
            }
        }
        let mut put = Req::json(Method::PUT, format!("{path}/draft"), body);
        for value in headers {
            put = put.header("if-match", value);
        }
        let saved = probe.judge(&label, &put, verdict).await;
        let after_put = probe.send(&Req::get(&path)).await;
        if saved.ok() {
            if !same_draft(&after_put.body["draft"], &put_document(&put)) {
                probe.fail(
                    &label,
                    &put,
                    &format!(
                        "the saved draft is not the document sent: {}",
                        short(&after_put.body["draft"].to_string(), 500)
                    ),
                );
            }
        } else {
            probe.same(
                &label,
                &put,
                "a refused draft changed the definition",
                &before,
                &after_put,
            );
            if !rng.gen_bool(0.3) {
                known.insert(key, after_put);
                continue;
            }
        }

        // Publish it (or whatever draft there is), with the right revision most of the time.
        let current = after_put.body["revision"].as_i64();
        let mut body = json!({ "revision": current });
        let mut publish = None;
        let mut verdict = Verdict::Maybe;
        match rng.gen_range(0..20) {
            0..=15 => {}
            16 => {
                body["revision"] = junk_revision(&mut rng, current);
                verdict = Verdict::Bad;
            }
            17 => {
                body["rollback_to"] = one(
                    &mut rng,
                    &[
                        json!(0),
                        json!(-1),
                        json!(1),
                        json!(99),
                        json!("x"),
                        json!(1.5),
                    ],
                );
            }
            18 => {
                publish = Some(
                    Req::json(Method::POST, format!("{path}/versions"), json!({}))
                        .header("if-match", junk_if_match(&mut rng)),
                );
                verdict = Verdict::Bad;
            }
            _ => {
                body["extra"] = json!(true);
                verdict = Verdict::Bad;
            }
        }
        let publish =
            publish.unwrap_or_else(|| Req::json(Method::POST, format!("{path}/versions"), body));
        let published = probe.judge(&label, &publish, verdict).await;
        let after_publish = probe.send(&Req::get(&path)).await;
        if published.ok() {
            let document = after_publish.body["published"].clone();
            exercise(&probe, &mut rng, &label, &key, &document).await;
        } else {
            probe.same(
                &label,
                &publish,
                "a refused publish changed the definition",
                &after_put,
                &after_publish,
            );
        }
        known.insert(key, after_publish);
    }
    kind_changes(&probe).await;
    probe.finish();
}

/// Fixed sequences: a field whose kind changes while records hold values, directly and by way of
/// a version without the field (whose values stay in the documents and come back with it).
async fn kind_changes(probe: &Probe<'_>) {
    let text = json!({"type": "string", "x-kind": "text", "x-label": {"en": "F"}});
    let number = json!({"type": "integer", "x-kind": "integer", "x-label": {"en": "F"}});
    let other = json!({"type": "string", "x-kind": "text", "x-label": {"en": "G"}});
    let doc =
        |fields: Value| json!({"type": "object", "x-label": {"en": "Kinds"}, "properties": fields});
    for (key, versions) in [
        (
            "kind_direct",
            vec![
                doc(json!({"f": text, "g": other})),
                doc(json!({"f": number, "g": other})),
            ],
        ),
        (
            "kind_readded",
            vec![
                doc(json!({"f": text, "g": other})),
                doc(json!({"g": other})),
                doc(json!({"f": number, "g": other})),
            ],
        ),
    ] {
        let case = format!("kind change ({key})");
        let records = format!("{WS}/entities/{key}/records");
        for (i, document) in versions.into_iter().enumerate() {
            publish(probe, "demo", key, document).await;
            if i == 0 {
                let req = Req::json(
                    Method::POST,
                    &records,
                    json!({"fields": {"f": "abc", "g": "x"}}),
                );
                probe.judge(&case, &req, Verdict::Good).await;
            }
        }
        for req in [
            Req::get(format!("{records}?sort=f")),
            Req::get(format!("{records}?filter[f][gt]=1")),
            Req::json(
                Method::POST,
                format!("{records}/query"),
                json!({"filter": {"field": "f", "op": "in", "value": [1, 2]}, "sort": ["-f"]}),
            ),
            Req::json(
                Method::POST,
                format!("{records}/aggregate"),
                json!({"group_by": ["f"], "metrics": [{"op": "sum", "field": "f"}]}),
            ),
            Req::json(
                Method::POST,
                format!("{records}/aggregate"),
                json!({"metrics": [{"op": "avg", "field": "f"}, {"op": "max", "field": "f"}]}),
            ),
        ] {
            probe.judge(&case, &req, Verdict::Good).await;
        }
    }
}

/// The document a draft request carried.
/// Whether a saved draft is the document sent: the same, except that an entity gains the
/// order of its properties as sent (`x-field-order`) when it did not name one.
fn same_draft(saved: &Value, sent: &Value) -> bool {
    if saved == sent {
        return true;
    }
    let (Some(saved), Some(sent)) = (saved.as_object(), sent.as_object()) else {
        return false;
    };
    if sent.contains_key("x-field-order") || !sent.contains_key("properties") {
        return false;
    }
    let order: Vec<Value> = sent["properties"]
        .as_object()
        .map(|p| p.keys().map(|k| Value::String(k.clone())).collect())
        .unwrap_or_default();
    let mut expected = sent.clone();
    expected.insert("x-field-order".to_owned(), Value::Array(order));
    *saved == expected
}

fn put_document(req: &Req) -> Value {
    match &req.body {
        Body::Json(body) => body["document"].clone(),
        _ => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Random record bodies
// ---------------------------------------------------------------------------------------------

/// After a refused request: compares the record count with what the requests so far should
/// have left (accepted requests only move the expectation).
async fn check_count(probe: &Probe<'_>, case: &str, req: &Req, resp: &Resp, expected: &mut i64) {
    if resp.ok() {
        return;
    }
    let now = probe.count(GADGETS, false).await;
    if now != *expected {
        probe.fail(
            case,
            req,
            &format!("there are {now} gadgets; {expected} expected after this request"),
        );
        *expected = now;
    }
}

async fn create_one(
    probe: &Probe<'_>,
    rng: &mut StdRng,
    env: &mut Env,
    case: &str,
    expected: &mut i64,
) {
    let (req, verdict) = create_body(rng, env);
    let resp = probe.judge(case, &req, verdict).await;
    if resp.ok() {
        *expected += 1;
        env.remember(&resp.body);
        if !resp.body["fields"]["code"]
            .as_str()
            .is_some_and(|code| code.starts_with("G-"))
        {
            probe.fail(
                case,
                &req,
                &format!("no auto number was assigned: {}", resp.body),
            );
        }
    }
    check_count(probe, case, &req, &resp, expected).await;
}

async fn create_batch(
    probe: &Probe<'_>,
    rng: &mut StdRng,
    env: &mut Env,
    case: &str,
    expected: &mut i64,
) {
    let path = format!("{GADGETS}/batch");
    let n = rng.gen_range(1..=12);
    let mut records: Vec<Value> = Vec::new();
    for _ in 0..n {
        records.push(json!({ "fields": good_fields(rng, env) }));
    }
    let mut bad_index = None;
    let (body, verdict) = match rng.gen_range(0..10) {
        0..=5 => {
            let i = rng.gen_range(0..n);
            let mut fields = good_fields(rng, env);
            let mut verdicts = HashMap::new();
            while combined(&verdicts, rule_verdict(&fields)) != Verdict::Bad {
                mutate(rng, env, &mut fields, &mut verdicts, None);
            }
            records[i] = match rng.gen_range(0..8) {
                0 => json!(5),
                1 => json!({"fields": fields, "version": 1}),
                2 => json!({"fields": 5}),
                3 => json!({"fields": fields, "owner": "x"}),
                4 => json!({}),
                _ => json!({ "fields": fields }),
            };
            bad_index = Some(i);
            (json!({ "records": records }), Verdict::Bad)
        }
        6 => {
            // The same unique value twice in one batch.
            let sku = good_value(rng, env, "sku");
            records[0]["fields"]["sku"] = sku.clone();
            let mut twin = good_fields(rng, env);
            twin.insert("sku".to_owned(), sku);
            records.push(json!({ "fields": twin }));
            bad_index = Some(records.len() - 1);
            (json!({ "records": records }), Verdict::Bad)
        }
        7 => {
            let body = match rng.gen_range(0..7) {
                0 => json!({"records": []}),
                1 => json!({"records": {}}),
                2 => json!({"records": 5}),
                3 => json!({}),
                4 => json!({"records": records, "x": 1}),
                5 => json!({"records": vec![json!({"fields": {"name": "x"}}); 5001]}),
                _ => json!(records),
            };
            (body, Verdict::Bad)
        }
        _ => (json!({ "records": records }), Verdict::Good),
    };
    let created = records.len();
    let req = Req::json(Method::POST, &path, body);
    let resp = probe.judge(case, &req, verdict).await;
    if resp.ok() {
        let views = resp.body["records"].as_array().cloned().unwrap_or_default();
        if views.len() != created {
            probe.fail(
                case,
                &req,
                &format!("{} records came back for {created} sent", views.len()),
            );
        }
        *expected += i64::try_from(views.len()).expect("count");
        for view in &views {
            env.remember(view);
        }
    } else if let Some(i) = bad_index
        && resp.status.is_client_error()
    {
        let prefix = format!("/records/{i}");
        if !resp.pointers().iter().any(|p| p.starts_with(&prefix)) {
            probe.fail(
                case,
                &req,
                &format!(
                    "the refusal does not point at the bad record {prefix}: {}",
                    short(&resp.body.to_string(), 600)
                ),
            );
        }
    }
    check_count(probe, case, &req, &resp, expected).await;
}

async fn change_one(
    probe: &Probe<'_>,
    rng: &mut StdRng,
    env: &mut Env,
    case: &str,
    expected: &mut i64,
) {
    let target = one(rng, &env.gadgets);
    if rng.gen_ratio(1, 12) {
        // A record that is not there (or not a gadget).
        let nothing = random_uuid(rng);
        let id = one(
            rng,
            &[
                nothing,
                env.parts[0].clone(),
                "not-a-uuid".to_owned(),
                env.trashed_part.clone(),
            ],
        );
        let req = Req::json(
            Method::PATCH,
            format!("{GADGETS}/{id}"),
            json!({"fields": {"name": "ghost"}}),
        );
        let resp = probe.judge(case, &req, Verdict::Bad).await;
        check_count(probe, case, &req, &resp, expected).await;
        return;
    }
    let path = format!("{GADGETS}/{target}");
    let before = probe.send(&Req::get(&path)).await;
    assert_eq!(
        before.status,
        StatusCode::OK,
        "[{}] gadget {target} vanished: {}",
        probe.name,
        before.body
    );
    let version = before.body["version"].as_i64().expect("version");
    let mut fields = Map::new();
    let mut verdicts = HashMap::new();
    for _ in 0..rng.gen_range(0..=4) {
        mutate(rng, env, &mut fields, &mut verdicts, Some(&target));
    }
    let mut merged = before.body["fields"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (key, value) in &fields {
        if is_empty_value(value) {
            merged.remove(key);
        } else {
            merged.insert(key.clone(), value.clone());
        }
    }
    let mut verdict = combined(&verdicts, rule_verdict(&merged));
    let mut body = json!({ "fields": fields });
    let mut if_match: Option<Vec<u8>> = None;
    match rng.gen_range(0..22) {
        0..=7 => {}
        8..=10 => body["version"] = json!(version),
        11 => if_match = Some(version.to_string().into_bytes()),
        12 => if_match = Some(format!("\"{version}\"").into_bytes()),
        13 => if_match = Some(format!("W/\"{version}\"").into_bytes()),
        14 => {
            body["version"] = one(
                rng,
                &[
                    json!(version - 1),
                    json!(version + 1),
                    json!(-1),
                    json!(0),
                    json!(i64::MAX),
                    json!(i64::MIN),
                ],
            );
            verdict = Verdict::Bad;
        }
        15 => {
            body["version"] = one(
                rng,
                &[
                    json!("abc"),
                    json!(1e20),
                    json!(1.5),
                    json!([1]),
                    json!({}),
                    json!(true),
                    json!("1"),
                    json!(u64::MAX),
                ],
            );
            verdict = Verdict::Bad;
        }
        16 => {
            if_match = Some(junk_if_match(rng));
            verdict = Verdict::Bad;
        }
        17 => {
            if_match = Some((version + 1).to_string().into_bytes());
            verdict = Verdict::Bad;
        }
        18 => {
            let stranger = random_uuid(rng);
            let (owner, owner_verdict) = one(
                rng,
                &[
                    (json!(env.admin_id), Verdict::Good),
                    (json!(stranger), Verdict::Maybe),
                    (json!("x"), Verdict::Bad),
                    (json!(5), Verdict::Bad),
                    (Value::Null, Verdict::Good),
                ],
            );
            body["owner"] = owner;
            verdict = verdict.max(owner_verdict);
        }
        19 => {
            body = one(
                rng,
                &values(
                    r#"[{"fields": []}, {"fields": "x"}, {"fields": null}, {"fields": {}, "extra": 1}, [], 5, null, {"fields": {}, "id": "x"}]"#,
                ),
            );
            verdict = Verdict::Bad;
        }
        20 => {
            // Version in the body wins over If-Match.
            body["version"] = json!(version);
            if_match = Some(b"abc".to_vec());
        }
        _ => {
            let (bytes, content_type) = raw_junk(rng);
            let req = Req::raw(Method::PATCH, &path, bytes, content_type);
            let resp = probe.judge(case, &req, Verdict::Maybe).await;
            after_change(probe, case, &req, &resp, &before, env).await;
            check_count(probe, case, &req, &resp, expected).await;
            return;
        }
    }
    let mut req = Req::json(Method::PATCH, &path, body);
    if let Some(value) = if_match {
        req = req.header("if-match", value);
    }
    let resp = probe.judge(case, &req, verdict).await;
    after_change(probe, case, &req, &resp, &before, env).await;
    check_count(probe, case, &req, &resp, expected).await;
}

/// A refused change left the record as it was; an accepted one is what a read returns.
async fn after_change(
    probe: &Probe<'_>,
    case: &str,
    req: &Req,
    resp: &Resp,
    before: &Resp,
    env: &mut Env,
) {
    let after = probe.send(&Req::get(&req.path)).await;
    if !resp.ok() {
        probe.same(
            case,
            req,
            "a refused change altered the record",
            before,
            &after,
        );
        return;
    }
    let version = before.body["version"].as_i64().unwrap_or_default();
    let new_version = resp.body["version"].as_i64().unwrap_or_default();
    if new_version != version && new_version != version + 1 {
        probe.fail(
            case,
            req,
            &format!("version went from {version} to {new_version}"),
        );
    }
    if after.body["fields"] != resp.body["fields"] || after.body["version"] != resp.body["version"]
    {
        probe.fail(
            case,
            req,
            &format!(
                "the change's answer is not what a read returns\n    answer: {}\n    read:   {}",
                short(&resp.body.to_string(), 600),
                short(&after.body.to_string(), 600)
            ),
        );
    }
    if after.body["fields"].get("code") != before.body["fields"].get("code") {
        probe.fail(
            case,
            req,
            &format!(
                "the read-only auto number changed from {} to {}",
                before.body["fields"]["code"], after.body["fields"]["code"]
            ),
        );
    }
    env.remember(&after.body);
}

async fn random_record_bodies_write_all_or_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let probe = Probe::new(&admin, backend, "records");
    let mut rng = StdRng::seed_from_u64(SEED ^ 2);
    let mut env = setup_records(&app, &probe, &mut rng, 8).await;
    let mut expected = probe.count(GADGETS, false).await;
    let parts = probe.count(PARTS, false).await;
    // Fixed case: `null` for the read-only auto number must not clear it.
    let path = format!("{GADGETS}/{}", env.gadgets[0]);
    let before = probe.send(&Req::get(&path)).await;
    let req = Req::json(Method::PATCH, &path, json!({"fields": {"code": null}}));
    let case = "record: null for the read-only auto number";
    let resp = probe.judge(case, &req, Verdict::Maybe).await;
    after_change(&probe, case, &req, &resp, &before, &mut env).await;
    for case in 0..RECORD_BODIES {
        let label = format!("record case {case}");
        match rng.gen_range(0..100) {
            0..=54 => create_one(&probe, &mut rng, &mut env, &label, &mut expected).await,
            55..=72 => create_batch(&probe, &mut rng, &mut env, &label, &mut expected).await,
            _ => change_one(&probe, &mut rng, &mut env, &label, &mut expected).await,
        }
    }
    assert_eq!(
        probe.count(PARTS, false).await,
        parts,
        "parts changed under gadget writes"
    );
    let now = probe.count(GADGETS, false).await;
    if now != expected {
        probe.fail(
            "the end",
            &Req::get(GADGETS),
            &format!("there are {now} gadgets; {expected} expected"),
        );
    }
    probe.finish();
}

// ---------------------------------------------------------------------------------------------
// 3. Random queries
// ---------------------------------------------------------------------------------------------

const QUERY_FIELDS: [&str; 41] = [
    "name",
    "notes",
    "qty",
    "ratio",
    "price",
    "discount",
    "active",
    "due_on",
    "seen_at",
    "email",
    "phone",
    "site",
    "status",
    "tags",
    "part",
    "assignee",
    "code",
    "sku",
    "id",
    "owner",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "part.name",
    "part.ghost",
    "part.part",
    "assignee.name",
    "tags.x",
    "name.x",
    "ghost",
    "",
    "NAME",
    "a.b.c",
    "字段",
    "deleted_at",
    "doc",
    "version",
    "'; drop table x; --",
    "name\"",
    "part.",
];

const OPS: [&str; 20] = [
    "eq",
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "between",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "is_empty",
    "is_not_empty",
    "within",
    "like",
    "",
    "EQ",
    "regex",
    "$where",
    "eq ",
];

fn query_value(rng: &mut StdRng, env: &mut Env) -> Value {
    match rng.gen_range(0..15) {
        0..=3 => {
            let key = one(rng, &GADGET_KEYS);
            good_value(rng, env, key)
        }
        4..=5 => {
            let key = one(rng, &GADGET_KEYS);
            bad_value(rng, env, key, None)
        }
        6 => Value::Null,
        7 => json!(one(
            rng,
            &[
                "today",
                "this_month",
                "last_7_days",
                "someday",
                "",
                "next_quarter",
                "open"
            ]
        )),
        8 => {
            let a = query_value(rng, env);
            let b = query_value(rng, env);
            json!([a, b])
        }
        9 => {
            let n = rng.gen_range(0..1500);
            Value::Array((0..n).map(|i| json!(i)).collect())
        }
        10 => one(
            rng,
            &[
                json!(1e308),
                json!(-0.0),
                json!(i64::MIN),
                json!(u64::MAX),
                json!(0.1),
                json!(-1),
            ],
        ),
        11 => json!(text(rng, 5000)),
        12 => one(
            rng,
            &values(r#"[{"$gt": 1}, [[1, [2]]], {"field": "name"}]"#),
        ),
        13 => json!(one(rng, &env.parts)),
        _ => json!(rng.gen_bool(0.5)),
    }
}

fn random_condition(rng: &mut StdRng, env: &mut Env) -> Value {
    let mut condition = Map::new();
    if !rng.gen_ratio(1, 20) {
        condition.insert("field".to_owned(), json!(one(rng, &QUERY_FIELDS)));
    }
    if !rng.gen_ratio(1, 10) {
        let op = if rng.gen_ratio(1, 30) {
            json!(5)
        } else {
            json!(one(rng, &OPS))
        };
        condition.insert("op".to_owned(), op);
    }
    if !rng.gen_ratio(1, 6) {
        condition.insert("value".to_owned(), query_value(rng, env));
    }
    if rng.gen_ratio(1, 25) {
        condition.insert("extra".to_owned(), json!(1));
    }
    Value::Object(condition)
}

fn random_filter(rng: &mut StdRng, env: &mut Env, depth: usize) -> Value {
    let branch = if depth < 3 { 0.35 } else { 0.12 };
    if depth < 20 && rng.gen_bool(branch) {
        return match rng.gen_range(0..9) {
            0..=2 => {
                let n = rng.gen_range(0..5);
                let items: Vec<Value> =
                    (0..n).map(|_| random_filter(rng, env, depth + 1)).collect();
                json!({ "and": items })
            }
            3..=4 => {
                let n = rng.gen_range(0..5);
                let items: Vec<Value> =
                    (0..n).map(|_| random_filter(rng, env, depth + 1)).collect();
                json!({ "or": items })
            }
            5 => json!({"not": random_filter(rng, env, depth + 1)}),
            6 => one(
                rng,
                &values(
                    r#"[{"and": {}}, {"and": [], "or": []}, {"not": []}, {"and": 5}, {"or": [5, "x", null]}, {"not": {"field": "name"}, "field": "name"}, {"AND": []}]"#,
                ),
            ),
            7 => {
                let depth = one(rng, &[16_usize, 17, 40, 120]);
                nest(
                    depth,
                    json!({"field": "qty", "op": "gt", "value": 1}),
                    |inner| json!({ "not": inner }),
                )
            }
            _ => {
                let n = one(rng, &[200_usize, 201, 500]);
                let items: Vec<Value> = (0..n)
                    .map(|i| json!({"field": "qty", "op": "eq", "value": i}))
                    .collect();
                json!({ "or": items })
            }
        };
    }
    match rng.gen_range(0..30) {
        0 => one(
            rng,
            &[json!(5), json!("x"), json!([]), Value::Null, json!(true)],
        ),
        _ => random_condition(rng, env),
    }
}

fn random_sort(rng: &mut StdRng) -> Value {
    match rng.gen_range(0..10) {
        0 => one(rng, &[json!("name"), json!(5), json!({}), Value::Null]),
        1 => Value::Array((0..9).map(|_| json!(one(rng, &GADGET_KEYS))).collect()),
        _ => {
            let n = rng.gen_range(0..4);
            Value::Array(
                (0..n)
                    .map(|_| {
                        let field = one(rng, &QUERY_FIELDS);
                        match rng.gen_range(0..8) {
                            0 => json!({"field": field, "direction": one(rng, &["asc", "desc", "up", ""])}),
                            1 => one(rng, &[json!(5), Value::Null, json!([]), json!({"field": 5})]),
                            2..=4 => json!(format!("-{field}")),
                            _ => json!(field),
                        }
                    })
                    .collect(),
            )
        }
    }
}

/// Real cursors, each with the sort it was made for.
struct Cursors(Vec<(Value, String)>);

impl Cursors {
    /// A cursor (and the sort to send with it), valid or broken in one way.
    fn random(&self, rng: &mut StdRng) -> (Value, Option<Value>) {
        let (sort, cursor) = one(rng, &self.0);
        let decoded: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&cursor)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null);
        match rng.gen_range(0..12) {
            0 => (json!(cursor), Some(sort)),
            1 => {
                let (other, _) = one(rng, &self.0);
                (json!(cursor), Some(other))
            }
            2 => (
                json!(one(
                    rng,
                    &["garbage", "", "!!!!", "====", "a", "eyJ", "%00", "\u{0}"]
                )),
                None,
            ),
            3 => (
                json!(base64url(one(
                    rng,
                    &[
                        "null",
                        "{}",
                        "[]",
                        "5",
                        "\"x\"",
                        "{\"s\":5}",
                        "{\"s\":\"\",\"v\":[],\"id\":5}"
                    ]
                ))),
                None,
            ),
            4 => {
                let mut mutated = decoded;
                let junk = one(
                    rng,
                    &[
                        json!(5),
                        json!("x"),
                        json!(true),
                        json!({}),
                        json!([]),
                        json!("\u{0}"),
                        json!(format!("a{}", "\u{0}")),
                        json!("x".repeat(3000)),
                        json!(1e308),
                        json!(i64::MIN),
                        json!(u64::MAX),
                        Value::Null,
                        json!("2026-02-30T00:00:00Z"),
                    ],
                );
                match mutated["v"].as_array_mut() {
                    Some(values) if !values.is_empty() => {
                        let i = rng.gen_range(0..values.len());
                        values[i] = junk;
                    }
                    _ => mutated["v"] = json!([junk]),
                }
                (json!(base64url(&mutated.to_string())), Some(sort))
            }
            5 => {
                let mut mutated = decoded;
                let nothing = random_uuid(rng);
                mutated["id"] = one(
                    rng,
                    &[
                        json!("x"),
                        json!(5),
                        json!(uuid::Uuid::nil().to_string()),
                        json!(nothing),
                        Value::Null,
                    ],
                );
                (json!(base64url(&mutated.to_string())), Some(sort))
            }
            6 => {
                let mut mutated = decoded;
                mutated["s"] = one(rng, &[json!(""), json!("-name"), json!(5), Value::Null]);
                (json!(base64url(&mutated.to_string())), Some(sort))
            }
            7 => (json!("A".repeat(5000)), None),
            8 => (
                one(rng, &[json!(5), json!({}), json!([]), json!(true)]),
                None,
            ),
            9 => (
                json!(base64::engine::general_purpose::STANDARD.encode(decoded.to_string())),
                Some(sort),
            ),
            10 => (json!(format!("{cursor}!")), Some(sort)),
            _ => (Value::Null, None),
        }
    }
}

/// A random list query and whether it is certainly invalid.
fn random_list_query(rng: &mut StdRng, env: &mut Env, cursors: &Cursors) -> (Value, Verdict) {
    if rng.gen_ratio(1, 20) {
        let body = one(rng, &[json!([]), json!(5), json!("x"), json!(true)]);
        return (body, Verdict::Bad);
    }
    let mut verdict = Verdict::Maybe;
    let mut query = Map::new();
    if rng.gen_bool(0.8) {
        query.insert("filter".to_owned(), random_filter(rng, env, 0));
    }
    if rng.gen_bool(0.4) {
        query.insert("sort".to_owned(), random_sort(rng));
    }
    if rng.gen_bool(0.3) {
        let (limit, bad) = one(
            rng,
            &[
                (json!(1), false),
                (json!(50), false),
                (json!(1000), false),
                (json!(0), true),
                (json!(-1), true),
                (json!(1_000_000_000_000_i64), true),
                (json!("x"), true),
                (json!(1.5), true),
                (Value::Null, false),
                (json!(1001), true),
                (json!(u64::MAX), true),
                (json!("10"), true),
            ],
        );
        query.insert("limit".to_owned(), limit);
        if bad {
            verdict = Verdict::Bad;
        }
    }
    if rng.gen_bool(0.25) {
        let (cursor, sort) = cursors.random(rng);
        query.insert("cursor".to_owned(), cursor);
        if let Some(sort) = sort {
            query.insert("sort".to_owned(), sort);
        }
    }
    if rng.gen_bool(0.25) {
        let (total, bad) = one(
            rng,
            &[
                (json!("none"), false),
                (json!("exact"), false),
                (json!("estimate"), false),
                (json!("EXACT"), true),
                (json!(5), true),
                (Value::Null, false),
                (json!(""), true),
            ],
        );
        query.insert("total".to_owned(), total);
        if bad {
            verdict = Verdict::Bad;
        }
    }
    if rng.gen_bool(0.15) {
        let (deleted, bad) = one(
            rng,
            &[
                (json!(true), false),
                (json!(false), false),
                (json!("yes"), true),
                (json!(1), true),
                (Value::Null, false),
            ],
        );
        query.insert("deleted".to_owned(), deleted);
        if bad {
            verdict = Verdict::Bad;
        }
    }
    if rng.gen_ratio(1, 10) {
        query.insert(
            one(rng, &["offset", "wat", "Filter", ""]).to_owned(),
            json!(5),
        );
        verdict = Verdict::Bad;
    }
    (Value::Object(query), verdict)
}

fn random_aggregate(rng: &mut StdRng, env: &mut Env) -> Value {
    if rng.gen_ratio(1, 20) {
        return one(rng, &[json!([]), json!(5), Value::Null]);
    }
    let mut body = Map::new();
    if rng.gen_bool(0.4) {
        body.insert("filter".to_owned(), random_filter(rng, env, 0));
    }
    if rng.gen_bool(0.8) {
        let group_by = if rng.gen_ratio(1, 10) {
            json!("status")
        } else {
            let n = rng.gen_range(0..7);
            Value::Array(
                (0..n)
                    .map(|_| {
                        let field = one(rng, &QUERY_FIELDS);
                        match rng.gen_range(0..6) {
                            0..=2 => json!(field),
                            3 => json!({"field": field, "bucket": one(rng, &[
                                json!("day"), json!("week"), json!("month"), json!("quarter"), json!("year"),
                                json!("hour"), json!(""), json!(5), Value::Null])}),
                            4 => json!({"field": one(rng, &["due_on", "seen_at", "created_at"]),
                                        "bucket": one(rng, &["day", "week", "month", "quarter", "year"])}),
                            _ => one(rng, &[json!(5), Value::Null, json!({"field": field, "x": 1}), json!([])]),
                        }
                    })
                    .collect(),
            )
        };
        body.insert("group_by".to_owned(), group_by);
    }
    if rng.gen_bool(0.7) {
        let metrics = if rng.gen_ratio(1, 10) {
            one(rng, &[json!("count"), json!({}), json!([5, "count"])])
        } else {
            let n = rng.gen_range(0..5);
            Value::Array(
                (0..n)
                    .map(|_| {
                        let op = one(
                            rng,
                            &values(
                                r#"["count", "sum", "avg", "min", "max", "median", "", 5, null]"#,
                            ),
                        );
                        if rng.gen_bool(0.7) {
                            json!({"op": op, "field": one(rng, &QUERY_FIELDS)})
                        } else {
                            json!({ "op": op })
                        }
                    })
                    .collect(),
            )
        };
        body.insert("metrics".to_owned(), metrics);
    }
    if rng.gen_ratio(1, 12) {
        body.insert("sort".to_owned(), json!(["name"]));
    }
    Value::Object(body)
}

/// A value as URL text, at most 300 characters (URLs stay under the client's 64 KiB limit).
fn value_text(value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    text.chars().take(300).collect()
}

/// A random query string for `GET …/records`.
fn random_url_query(rng: &mut StdRng, env: &mut Env, cursors: &Cursors) -> String {
    let n = rng.gen_range(0..6);
    let mut parts: Vec<String> = Vec::new();
    for _ in 0..n {
        let field = one(rng, &QUERY_FIELDS);
        let op = one(rng, &OPS);
        let part = match rng.gen_range(0..15) {
            0..=2 => {
                let value = query_value(rng, env);
                format!("filter[{}]={}", encode(field), encode(&value_text(&value)))
            }
            3..=5 => {
                let value = query_value(rng, env);
                format!(
                    "filter[{}][{}]={}",
                    encode(field),
                    encode(op),
                    encode(&value_text(&value))
                )
            }
            6 => {
                let filter = random_filter(rng, env, 0).to_string();
                if filter.len() > 6000 {
                    format!(
                        "filter={}",
                        encode(r#"{"field":"name","op":"eq","value":"x"}"#)
                    )
                } else {
                    format!("filter={}", encode(&filter))
                }
            }
            7 => {
                let sort = random_sort(rng);
                let text = sort
                    .as_array()
                    .map(|keys| keys.iter().map(value_text).collect::<Vec<_>>().join(","))
                    .unwrap_or_else(|| value_text(&sort));
                format!("sort={}", encode(&text))
            }
            8 => format!(
                "limit={}",
                one(
                    rng,
                    &[
                        "0",
                        "-1",
                        "1",
                        "1000",
                        "1001",
                        "x",
                        "1e3",
                        "99999999999999999999999",
                        ""
                    ]
                )
            ),
            9 => {
                let (cursor, _) = cursors.random(rng);
                format!("cursor={}", encode(&value_text(&cursor)))
            }
            10 => format!(
                "{}={}",
                one(rng, &["total", "deleted"]),
                one(
                    rng,
                    &["exact", "estimate", "none", "true", "false", "maybe", ""]
                )
            ),
            11 => {
                let values: Vec<String> =
                    (0..rng.gen_range(0..1100)).map(|i| i.to_string()).collect();
                format!(
                    "filter[{}][{}]={}",
                    encode(field),
                    one(rng, &["in", "not_in", "between"]),
                    values.join(",")
                )
            }
            _ => {
                let junk = one(
                    rng,
                    &[
                        "filter[",
                        "filter]=1",
                        "filter[]=1",
                        "filter[name][eq][x]=1",
                        "=x",
                        "&",
                        "%ZZ=1",
                        "filter%5Bname%5D=x",
                        "filter[name]=%00",
                        "filter[name][contains]=%00",
                        "filter[name][starts_with]=a%00b",
                        "filter[name]=%FF%FE",
                        "filter[name]=%E2%80%AE",
                        "filter[name]=a+b",
                        "filter={broken",
                        "filter=%7B%22field%22%3A%22name%22%2C%22value%22%3A%22%5Cu0000%22%7D",
                        "filter[status][in]=open,%00",
                        "filter[due_on][within]=%00",
                        "filter[seen_at][gt]=%00",
                        "sort=%00",
                        "unknown=1",
                        "deleted=maybe",
                        "filter[name][between]=a",
                        "cursor=%00",
                        "filter[part.name]=%00",
                        "filter[qty][gt]=1e400",
                        "filter[price][gt]=NaN",
                        "filter[tags][contains]=red,%00",
                    ],
                );
                junk.to_owned()
            }
        };
        parts.push(part);
    }
    while parts.iter().map(String::len).sum::<usize>() > 60_000 {
        parts.pop();
    }
    parts.join("&")
}

/// Queries too big or deep for any sane client, sent once each.
fn adversarial_queries() -> Vec<(String, Req, Verdict)> {
    let query = format!("{GADGETS}/query");
    let aggregate = format!("{GADGETS}/aggregate");
    let many_in: Vec<Value> = (0..1000).map(|i| json!(i)).collect();
    let wide: Vec<Value> = (0..70)
        .map(|_| json!({"field": "qty", "op": "in", "value": many_in}))
        .collect();
    let forty: Vec<i64> = (0..40).collect();
    let leaves: Vec<Value> = (0..100)
        .map(|_| json!({"field": "qty", "op": "in", "value": forty}))
        .collect();
    // 2,000 conditions (the documented limit is 200) holding 80,000 values.
    let broad: Vec<Value> = (0..20).map(|_| json!({ "or": leaves })).collect();
    // 400 conditions of one value each (the documented limit is 200).
    let plain: Vec<Value> = (0..200)
        .map(|i| json!({"field": "qty", "op": "eq", "value": i}))
        .collect();
    let many = vec![json!({ "or": plain }), json!({ "or": plain })];
    let names: Vec<Value> = (0..10_000).map(|i| json!(format!("name {i}"))).collect();
    let url_in: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
    vec![
        (
            "valid list query".to_owned(),
            Req::json(
                Method::POST,
                &query,
                json!({"filter": {"field": "name", "op": "contains", "value": "a"},
                       "sort": ["-price", "name"], "limit": 10, "total": "exact"}),
            ),
            Verdict::Good,
        ),
        (
            "valid aggregate".to_owned(),
            Req::json(
                Method::POST,
                &aggregate,
                json!({"group_by": ["status", {"field": "due_on", "bucket": "month"}],
                       "metrics": [{"op": "count"}, {"op": "sum", "field": "price"}, {"op": "max", "field": "due_on"}]}),
            ),
            Verdict::Good,
        ),
        (
            "valid URL query".to_owned(),
            Req::get(format!(
                "{GADGETS}?filter[status]=open&filter[qty][gt]=5&sort=-price,name&limit=5&total=exact"
            )),
            Verdict::Good,
        ),
        (
            "an aggregate without metrics".to_owned(),
            Req::json(Method::POST, &aggregate, json!({"metrics": []})),
            Verdict::Maybe,
        ),
        (
            "an aggregate without groups or metrics".to_owned(),
            Req::json(
                Method::POST,
                &aggregate,
                json!({"group_by": [], "metrics": []}),
            ),
            Verdict::Maybe,
        ),
        (
            "10,000-element in list".to_owned(),
            Req::json(
                Method::POST,
                &query,
                json!({"filter": {"field": "name", "op": "in", "value": names}}),
            ),
            Verdict::Bad,
        ),
        (
            "10,000-element in list in the URL".to_owned(),
            Req::get(format!("{GADGETS}?filter[qty][in]={}", url_in.join(","))),
            Verdict::Bad,
        ),
        (
            "70 in lists of 1000 values (70,000 values)".to_owned(),
            Req::json(
                Method::POST,
                &query,
                json!({"filter": {"or": wide}, "total": "exact"}),
            ),
            Verdict::Maybe,
        ),
        (
            "400 conditions".to_owned(),
            Req::json(
                Method::POST,
                &query,
                json!({"filter": {"or": many}, "total": "exact"}),
            ),
            Verdict::Maybe,
        ),
        (
            "2,000 conditions holding 80,000 values in a list query".to_owned(),
            Req::json(
                Method::POST,
                &query,
                json!({"filter": {"and": broad}, "total": "exact"}),
            ),
            Verdict::Maybe,
        ),
        (
            "2,000 conditions holding 80,000 values in an aggregate".to_owned(),
            Req::json(
                Method::POST,
                &aggregate,
                json!({"filter": {"and": broad}, "group_by": ["status"]}),
            ),
            Verdict::Maybe,
        ),
        (
            "16 nested nots (the deepest allowed)".to_owned(),
            Req::json(
                Method::POST,
                &query,
                json!({"filter": nest(16, json!({"field": "qty", "op": "gt", "value": 1}), |inner| json!({"not": inner}))}),
            ),
            Verdict::Good,
        ),
        (
            "17 deep".to_owned(),
            Req::json(
                Method::POST,
                &query,
                json!({"filter": nest(17, json!({"field": "qty", "op": "gt", "value": 1}), |inner| json!({"not": inner}))}),
            ),
            Verdict::Bad,
        ),
        (
            "120 deep".to_owned(),
            Req::json(
                Method::POST,
                &query,
                json!({"filter": nest(120, json!({"field": "qty", "op": "gt", "value": 1}), |inner| json!({"not": inner}))}),
            ),
            Verdict::Bad,
        ),
        (
            "300 deep (beyond the JSON parser's limit)".to_owned(),
            Req::json(
                Method::POST,
                &query,
                json!({"filter": nest(300, json!({"field": "qty", "op": "gt", "value": 1}), |inner| json!({"not": inner}))}),
            ),
            Verdict::Bad,
        ),
        (
            "NUL in a filter value (JSON)".to_owned(),
            Req::json(
                Method::POST,
                &query,
                json!({"filter": {"field": "name", "op": "eq", "value": "a\u{0}"}}),
            ),
            Verdict::Bad,
        ),
        (
            "NUL in a filter value (URL)".to_owned(),
            Req::get(format!("{GADGETS}?filter[name]=a%00")),
            Verdict::Maybe,
        ),
        (
            "NUL in a contains value (URL)".to_owned(),
            Req::get(format!("{GADGETS}?filter[name][contains]=%00")),
            Verdict::Maybe,
        ),
        (
            "NUL in a JSON filter inside the URL".to_owned(),
            Req::get(format!(
                "{GADGETS}?filter={}",
                encode(r#"{"field":"sku","op":"starts_with","value":"\u0000"}"#)
            )),
            Verdict::Maybe,
        ),
    ]
}

async fn random_queries_are_answered_or_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let probe = Probe::new(&admin, backend, "queries");
    let mut rng = StdRng::seed_from_u64(SEED ^ 3);
    let mut env = setup_records(&app, &probe, &mut rng, 40).await;
    let query_path = format!("{GADGETS}/query");
    let mut cursors = Vec::new();
    let mut nul_cursors = Vec::new();
    for sort in [
        json!([]),
        json!(["name"]),
        json!(["-price", "qty"]),
        json!(["due_on"]),
        json!(["-created_at"]),
        json!(["sku", "-seen_at"]),
    ] {
        let page = probe
            .setup(&Req::json(
                Method::POST,
                &query_path,
                json!({"sort": sort, "limit": 3}),
            ))
            .await;
        let cursor = page["next_cursor"]
            .as_str()
            .expect("a next page")
            .to_owned();
        cursors.push((sort.clone(), cursor.clone()));
        // A cursor whose first sort value is text with a NUL in it.
        let mut decoded: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&cursor)
                .expect("base64"),
        )
        .expect("json");
        if let Some(first) = decoded["v"].as_array_mut().and_then(|v| v.first_mut())
            && first.is_string()
        {
            *first = json!("a\u{0}b");
            let crafted = base64url(&decoded.to_string());
            nul_cursors.push(Req::json(
                Method::POST,
                &query_path,
                json!({"sort": sort, "cursor": crafted, "limit": 3}),
            ));
            nul_cursors.push(Req::get(format!(
                "{GADGETS}?sort={}&cursor={crafted}",
                encode(
                    &sort
                        .as_array()
                        .map(|keys| keys
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(","))
                        .unwrap_or_default()
                )
            )));
            cursors.push((sort, crafted));
        }
    }
    let cursors = Cursors(cursors);
    let total = probe.count(GADGETS, false).await;

    for (name, req, verdict) in adversarial_queries() {
        probe.judge(&format!("query: {name}"), &req, verdict).await;
    }
    for req in &nul_cursors {
        let name = "query: a cursor whose sort value holds a NUL";
        probe.judge(name, req, Verdict::Maybe).await;
    }
    for case in 0..QUERIES {
        let label = format!("query case {case}");
        match rng.gen_range(0..100) {
            0..=44 => {
                let (body, verdict) = random_list_query(&mut rng, &mut env, &cursors);
                let req = Req::json(Method::POST, &query_path, body);
                probe.judge(&label, &req, verdict).await;
            }
            45..=64 => {
                let body = random_aggregate(&mut rng, &mut env);
                let req = Req::json(Method::POST, format!("{GADGETS}/aggregate"), body);
                probe.call(&label, &req).await;
            }
            _ => {
                let query = random_url_query(&mut rng, &mut env, &cursors);
                let req = Req::get(format!("{GADGETS}?{query}"));
                probe.call(&label, &req).await;
            }
        }
    }
    assert_eq!(
        probe.count(GADGETS, false).await,
        total,
        "queries changed the records"
    );
    probe.finish();
}

// ---------------------------------------------------------------------------------------------
// 4. Random paths
// ---------------------------------------------------------------------------------------------

/// Everything a path test could have changed: the records of both entities (live and in the
/// trash) and the definitions.
async fn world(probe: &Probe<'_>) -> Value {
    let mut all = Vec::new();
    for records in [GADGETS, PARTS] {
        for deleted in [false, true] {
            let page = probe
                .send(&Req::json(
                    Method::POST,
                    format!("{records}/query"),
                    json!({"limit": 1000, "deleted": deleted}),
                ))
                .await;
            all.push(page.body);
        }
    }
    all.push(
        probe
            .send(&Req::get(format!("{WS}/definitions")))
            .await
            .body,
    );
    Value::Array(all)
}

fn random_path_request(rng: &mut StdRng, env: &Env) -> (Req, Verdict, bool) {
    let gadget = one(rng, &env.gadgets);
    let good_workspace = rng.gen_bool(0.75);
    let workspace = if good_workspace {
        one(rng, &["demo", "demo", "demo", "east"]).to_owned()
    } else {
        one(
            rng,
            &[
                "nowhere".to_owned(),
                "DEMO".to_owned(),
                "..".to_owned(),
                "%2F".to_owned(),
                "%00".to_owned(),
                "%FF".to_owned(),
                "de%20mo".to_owned(),
                "😀".to_owned(),
                "w".repeat(300),
            ],
        )
    };
    let good_entity = rng.gen_bool(0.5);
    let entity = if good_entity {
        one(rng, &["gadget", "part"]).to_owned()
    } else {
        one(
            rng,
            &[
                "GADGET".to_owned(),
                "..".to_owned(),
                "%2E%2E".to_owned(),
                "%2F".to_owned(),
                "gadget%2F..%2Fpart".to_owned(),
                "a".repeat(64),
                "a".repeat(5000),
                "ключ".to_owned(),
                "😀".to_owned(),
                "%00".to_owned(),
                "%FF%FE".to_owned(),
                "gadget;drop".to_owned(),
                "lead'".to_owned(),
                "rec_gadget".to_owned(),
                "%20".to_owned(),
                "%20gadget".to_owned(),
                "gadget%00".to_owned(),
                "nowhere".to_owned(),
            ],
        )
    };
    let good_id = rng.gen_bool(0.5);
    let id = if good_id {
        one(
            rng,
            &[
                gadget.clone(),
                gadget.to_uppercase(),
                format!("{{{gadget}}}"),
                format!("urn:uuid:{gadget}"),
                env.parts[0].clone(),
            ],
        )
    } else {
        let nothing = random_uuid(rng);
        one(
            rng,
            &[
                uuid::Uuid::nil().to_string(),
                nothing,
                "not-a-uuid".to_owned(),
                "123".to_owned(),
                String::new(),
                "..".to_owned(),
                "%2F".to_owned(),
                "%2e%2e%2f".to_owned(),
                "a".repeat(3000),
                "😀".to_owned(),
                "%00".to_owned(),
                "%FF".to_owned(),
                "-1".to_owned(),
                "null".to_owned(),
                format!("{gadget}%00"),
                format!("{gadget}/.."),
            ],
        )
    };
    let verdict_of = |good: bool| if good { Verdict::Maybe } else { Verdict::Bad };
    let record_verdict = verdict_of(good_workspace && good_entity && good_id);
    let list_verdict = verdict_of(good_workspace && good_entity);
    let records = format!("/api/v1/w/{workspace}/entities/{entity}/records");
    let record = format!("{records}/{id}");
    match rng.gen_range(0..16) {
        0 => (Req::get(&record), record_verdict, false),
        1 => {
            let (query, good) = one(
                rng,
                &[
                    ("deleted=true", true),
                    ("deleted=maybe", false),
                    ("x=1", false),
                    ("deleted=true&deleted=false", true),
                ],
            );
            let verdict = if good { record_verdict } else { Verdict::Bad };
            (Req::get(format!("{record}?{query}")), verdict, false)
        }
        2 => (Req::get(format!("{record}/history")), record_verdict, false),
        3 => {
            let (body, good) = one(
                rng,
                &[
                    (json!({"fields": {}}), true),
                    (json!({"fields": {"name": "renamed"}}), true),
                    (json!({"fields": {"ghost": 1}}), false),
                ],
            );
            let verdict = if good { record_verdict } else { Verdict::Bad };
            (Req::json(Method::PATCH, &record, body), verdict, true)
        }
        4 => {
            let purge = if rng.gen_bool(0.3) { "?purge=true" } else { "" };
            (
                Req::new(Method::DELETE, format!("{record}{purge}")),
                record_verdict,
                true,
            )
        }
        5 => (
            Req::json(Method::POST, format!("{record}/restore"), json!({})),
            record_verdict,
            true,
        ),
        6 => (
            Req::json(Method::PUT, &record, json!({"fields": {}})),
            Verdict::Bad,
            true,
        ),
        7 => (
            Req::json(Method::POST, &record, json!({"fields": {}})),
            Verdict::Bad,
            true,
        ),
        8 => (Req::new(Method::OPTIONS, &record), Verdict::Bad, false),
        9 => (Req::get(format!("{records}?limit=1")), list_verdict, false),
        10 => (
            Req::json(Method::POST, &records, json!({"fields": {"ghost": 1}})),
            Verdict::Bad,
            true,
        ),
        11 => (
            Req::get(format!("/api/v1/w/{workspace}/entities/{entity}/indexes")),
            list_verdict,
            false,
        ),
        _ => {
            let good_kind = rng.gen_bool(0.6);
            let kind = if good_kind {
                one(rng, &["entity", "entities"]).to_owned()
            } else {
                one(
                    rng,
                    &[
                        "form".to_owned(),
                        "view".to_owned(),
                        "bogus".to_owned(),
                        "..".to_owned(),
                        "%2F".to_owned(),
                        "ENTITY".to_owned(),
                        "😀".to_owned(),
                    ],
                )
            };
            let read_verdict = verdict_of(good_workspace && good_entity && good_kind);
            let definition = format!("/api/v1/w/{workspace}/definitions/{kind}/{entity}");
            match rng.gen_range(0..5) {
                0 => (Req::get(&definition), read_verdict, false),
                1 => (
                    Req::json(
                        Method::PUT,
                        format!("{definition}/draft"),
                        json!({"document": {}}),
                    ),
                    Verdict::Bad,
                    true,
                ),
                2 => (
                    Req::json(
                        Method::POST,
                        format!("{definition}/versions"),
                        json!({"revision": 1}),
                    ),
                    Verdict::Bad,
                    true,
                ),
                3 => (
                    Req::new(Method::DELETE, format!("{definition}/draft?revision=1")),
                    Verdict::Bad,
                    true,
                ),
                _ => {
                    let (version, good) = one(
                        rng,
                        &[
                            ("1", true),
                            ("0", false),
                            ("-1", false),
                            ("x", false),
                            ("99999999999", false),
                            ("%00", false),
                            ("1.5", false),
                        ],
                    );
                    let verdict = if good { read_verdict } else { Verdict::Bad };
                    (
                        Req::get(format!("{definition}/versions/{version}")),
                        verdict,
                        false,
                    )
                }
            }
        }
    }
}

async fn random_paths_are_not_found_or_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let probe = Probe::new(&admin, backend, "paths");
    let mut rng = StdRng::seed_from_u64(SEED ^ 4);
    let env = setup_records(&app, &probe, &mut rng, 6).await;
    let mut before = world(&probe).await;
    for case in 0..PATHS {
        let label = format!("path case {case}");
        let (req, verdict, writes) = random_path_request(&mut rng, &env);
        let resp = probe.judge(&label, &req, verdict).await;
        if writes {
            let after = world(&probe).await;
            if !resp.ok() && after != before {
                probe.fail(
                    &label,
                    &req,
                    &format!(
                        "a refused request changed data\n    before: {}\n    after:  {}",
                        short(&before.to_string(), 700),
                        short(&after.to_string(), 700)
                    ),
                );
            }
            before = after;
        }
    }
    probe.finish();
}

both_databases!(
    random_definitions_publish_or_are_refused,
    random_record_bodies_write_all_or_nothing,
    random_queries_are_answered_or_refused,
    random_paths_are_not_found_or_refused,
);
