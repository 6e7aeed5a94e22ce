//! Formula fields and validation rules through HTTP, on SQLite and PostgreSQL: computed on every
//! write and stored (so filters and sorts use them), refused at save with their place when they
//! cannot work, recomputed in the background when they change or what they look up changes.

mod common;

use common::{Backend, Client, TestApp, assert_problem, publish_entity as publish};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";

fn account() -> Value {
    json!({
        "type": "object", "x-label": {"en": "Account"},
        "properties": {
            "name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}},
            "level": {"type": "integer", "x-kind": "integer", "x-label": {"en": "Level"}}
        }
    })
}

/// A deal whose formulas read each other (declared before what they read), a select-valued tier,
/// a clock-reading age, a lookup, and two rules.
fn deal(tax_rate: &str) -> Value {
    json!({
        "type": "object", "x-label": {"en": "Deal"},
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}},
            "gross": {"x-kind": "formula", "x-result": "money", "x-currency": "CNY",
                      "x-label": {"en": "Gross"}, "x-formula": "record.net + record.tax"},
            "tax": {"x-kind": "formula", "x-result": "money", "x-currency": "CNY",
                    "x-label": {"en": "Tax"},
                    "x-formula": format!("round_to(record.net * decimal(\"{tax_rate}\"), 2)")},
            "tier": {"x-kind": "formula", "x-result": "single_select", "x-label": {"en": "Tier"},
                     "x-options": [{"value": "A", "label": {"en": "A"}}, {"value": "B", "label": {"en": "B"}}],
                     "x-formula": "if record.gross >= decimal(\"10000\") { \"A\" } else { \"B\" }"},
            "age_days": {"x-kind": "formula", "x-result": "integer", "x-label": {"en": "Age"},
                         "x-formula": "days_between(record.signed_on, today())"},
            "account_level": {"x-kind": "formula", "x-result": "integer", "x-label": {"en": "Account level"},
                              "x-formula": "let a = lookup(\"account\", record.account);\nif a == () { 0 } else { a.level }"},
            "net": {"type": "number", "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Net"}},
            "discount": {"type": "number", "x-kind": "percent", "x-label": {"en": "Discount"}},
            "approved": {"type": "boolean", "x-kind": "boolean", "x-label": {"en": "Approved"}},
            "stage": {"type": "string", "x-kind": "single_select", "x-label": {"en": "Stage"},
                      "x-options": [{"value": "open", "label": {"en": "Open"}}, {"value": "won", "label": {"en": "Won"}}]},
            "signed_on": {"type": "string", "x-kind": "date", "x-label": {"en": "Signed on"}},
            "account": {"type": "string", "x-kind": "reference", "x-label": {"en": "Account"},
                        "x-reference": {"entity": "account", "on_delete": "set_null"}}
        },
        "x-rules": [
            {"key": "discount_limit", "fields": ["discount", "approved"],
             "script": "empty(record.discount) || record.discount <= 30.0 || record.approved == true",
             "message": {"en": "A discount above 30% needs approval", "zh-CN": "折扣超过30%需要审批"}},
            {"key": "won_is_final", "on": "update", "fields": ["stage"],
             "script": "!(old.stage == \"won\" && record.stage != \"won\")",
             "message": {"en": "A won deal stays won", "zh-CN": "已赢单不可回退"}}
        ]
    })
}

async fn setup(app: &TestApp) -> Client {
    let admin = app.admin().await;
    let (status, body) = publish(&admin, "account", account()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = publish(&admin, "deal", deal("0.13")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    admin
}

const DEALS: &str = "/api/v1/w/demo/entities/deal/records";
const ACCOUNTS: &str = "/api/v1/w/demo/entities/account/records";

async fn formulas_are_computed_on_write_and_queryable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = setup(&app).await;
    let (_, acme) = admin
        .post(ACCOUNTS, json!({"fields": {"name": "Acme", "level": 3}}))
        .await;
    let (status, big) = admin
        .post(
            DEALS,
            json!({"fields": {"name": "Big", "net": "9000.05", "account": acme["id"],
                              "signed_on": "2020-01-01"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{big}");
    // 9000.05 × 0.13 = 1170.0065 → 1170.01 (half away from zero); gross reads tax.
    assert_eq!(big["fields"]["tax"], "1170.01");
    assert_eq!(big["fields"]["gross"], "10170.06");
    assert_eq!(big["fields"]["tier"], "A");
    assert_eq!(big["fields"]["account_level"], 3);
    assert!(big["fields"]["age_days"].as_i64().expect("age") > 2000);
    let (_, small) = admin
        .post(DEALS, json!({"fields": {"name": "Small", "net": "100"}}))
        .await;
    assert_eq!(small["fields"]["tier"], "B");
    assert_eq!(small["fields"]["age_days"], Value::Null);
    assert_eq!(small["fields"]["account_level"], 0);
    // An update recomputes, and the change shows in history.
    let id = small["id"].as_str().expect("id");
    let (status, changed) = admin
        .patch(
            &format!("{DEALS}/{id}"),
            json!({"fields": {"net": "20000"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["fields"]["gross"], "22600.00");
    assert_eq!(changed["fields"]["tier"], "A");
    let (_, history) = admin.get(&format!("{DEALS}/{id}/history")).await;
    let last = history.as_array().and_then(|h| h.last()).expect("history");
    assert_eq!(last["changes"]["fields"]["tier"]["new"], "A", "{history}");
    // Stored values filter and sort like any field.
    let (status, page) = admin
        .post(
            &format!("{DEALS}/query"),
            json!({"filter": {"and": [{"field": "tier", "op": "eq", "value": "A"},
                                      {"field": "gross", "op": "gt", "value": "10000"}]},
                   "sort": ["-gross"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let names: Vec<&str> = page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["fields"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["Small", "Big"]);
    // Nobody writes a formula.
    let (status, body) = admin
        .patch(&format!("{DEALS}/{id}"), json!({"fields": {"tax": "1"}}))
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/tax"]
    );
    // A changed looked-up record recomputes the deals that look it up (in the background).
    admin
        .patch(
            &format!("{ACCOUNTS}/{}", acme["id"].as_str().expect("id")),
            json!({"fields": {"level": 5}}),
        )
        .await;
    app.run_jobs_until_idle().await;
    let (_, big_now) = admin
        .get(&format!("{DEALS}/{}", big["id"].as_str().expect("id")))
        .await;
    assert_eq!(big_now["fields"]["account_level"], 5);
    assert_eq!(
        big_now["version"], big["version"],
        "a derived change is no new version"
    );
}

async fn rules_refuse_writes_naming_rule_and_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = setup(&app).await;
    let (status, body) = admin
        .post(
            DEALS,
            json!({"fields": {"name": "Cheap", "net": "100", "discount": 40}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/discount", "/fields/approved"]
    );
    assert_eq!(body["errors"][0]["code"], "rule");
    assert_eq!(body["errors"][0]["rule"], "discount_limit");
    assert_eq!(
        body["errors"][0]["messages"]["zh-CN"],
        "折扣超过30%需要审批"
    );
    let (_, page) = admin.get(DEALS).await;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(0));
    let (status, won) = admin
        .post(
            DEALS,
            json!({"fields": {"name": "Ok", "net": "100", "discount": 40, "approved": true, "stage": "won"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{won}");
    // An update-only rule sees the old record.
    let id = won["id"].as_str().expect("id");
    let (status, body) = admin
        .patch(
            &format!("{DEALS}/{id}"),
            json!({"fields": {"stage": "open"}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/stage"]
    );
    assert_eq!(body["errors"][0]["rule"], "won_is_final");
    let (_, after) = admin.get(&format!("{DEALS}/{id}")).await;
    assert_eq!(after["fields"]["stage"], "won");
    assert_eq!(after["version"], won["version"]);
}

async fn broken_formulas_are_refused_at_save_with_their_place(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let field = |formula: &str| json!({"x-kind": "formula", "x-result": "integer", "x-label": {"en": "F"}, "x-formula": formula});
    let entity = |properties: Value| {
        json!({"type": "object", "x-label": {"en": "Thing"},
               "properties": properties})
    };
    let n = json!({"type": "integer", "x-kind": "integer", "x-label": {"en": "N"}});
    let cases = [
        (
            entity(json!({"a": field("record.b + 1"), "b": field("record.a * 2"), "n": n})),
            "/document/properties/a/x-formula",
            "formula_cycle",
            None,
        ),
        (
            entity(json!({"a": field("let x = 1;\nx + record.nope"), "n": n})),
            "/document/properties/a/x-formula",
            "unknown_field",
            Some((2, 5)),
        ),
        (
            entity(json!({"a": field("let x = ;"), "n": n})),
            "/document/properties/a/x-formula",
            "script_syntax",
            Some((1, 9)),
        ),
        (
            entity(json!({"a": field("let r = record; r.n"), "n": n})),
            "/document/properties/a/x-formula",
            "formula_form",
            Some((1, 9)),
        ),
    ];
    for (document, pointer, code, place) in cases {
        let (status, body) = admin
            .put(
                &format!("{W}/definitions/entity/thing/draft"),
                json!({"document": document}),
            )
            .await;
        assert_eq!(
            assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
            [pointer],
            "{body}"
        );
        assert_eq!(body["errors"][0]["code"], code, "{body}");
        if let Some((line, column)) = place {
            assert_eq!(body["errors"][0]["line"], line, "{body}");
            assert_eq!(body["errors"][0]["column"], column, "{body}");
        }
    }
    let (_, cycle) = admin
        .put(
            &format!("{W}/definitions/entity/thing/draft"),
            json!({"document": entity(json!({"a": field("record.b + 1"), "b": field("record.a * 2")}))}),
        )
        .await;
    assert!(
        cycle["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("a → b → a")),
        "{cycle}"
    );
    // A formula failing at run time, or giving the wrong type, refuses the write: nothing stored.
    let document = entity(json!({
        "n": n,
        "ratio": field("let q = 100;\nq / record.n"),
        "label": {"x-kind": "formula", "x-result": "integer", "x-label": {"en": "L"},
                  "x-formula": "if record.n == 7 { \"seven\" } else { 1 }"}
    }));
    let (status, body) = publish(&admin, "thing", document).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let things = format!("{W}/entities/thing/records");
    let (status, body) = admin.post(&things, json!({"fields": {"n": 0}})).await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/ratio"]
    );
    assert_eq!(body["errors"][0]["code"], "script_error");
    assert_eq!(body["errors"][0]["line"], 2);
    let (status, body) = admin.post(&things, json!({"fields": {"n": 7}})).await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/label"]
    );
    assert_eq!(body["errors"][0]["code"], "formula_type");
    let (_, page) = admin.get(&things).await;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(0));
}

async fn a_changed_formula_recomputes_every_record(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = setup(&app).await;
    let records: Vec<Value> = (0..1200)
        .map(|i| json!({"fields": {"name": format!("D{i}"), "net": format!("{i}.00")}}))
        .collect();
    let (status, body) = admin
        .post(&format!("{DEALS}/batch"), json!({"records": records}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = publish(&admin, "deal", deal("0.06")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Before the job runs, stored values are the old formula's.
    let (_, page) = admin
        .post(
            &format!("{DEALS}/query"),
            json!({"filter": {"field": "name", "op": "eq", "value": "D1000"}}),
        )
        .await;
    assert_eq!(page["records"][0]["fields"]["tax"], "130.00");
    app.run_jobs_until_idle().await;
    let (_, jobs) = admin.get(&format!("{W}/jobs?limit=100")).await;
    let job = jobs
        .as_array()
        .and_then(|all| all.iter().find(|j| j["kind"] == "records.recompute"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(job["status"], "succeeded", "{jobs}");
    assert_eq!(job["progress_done"], 1200, "{job}");
    // Every record follows the new formula, exactly.
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    loop {
        let mut query = json!({"limit": 500, "sort": ["name"]});
        if let Some(cursor) = &cursor {
            query["cursor"] = json!(cursor);
        }
        let (status, page) = admin.post(&format!("{DEALS}/query"), query).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for record in page["records"].as_array().expect("records") {
            let name = record["fields"]["name"].as_str().expect("name");
            let i: i64 = name[1..].parse().expect("number");
            let tax_cents = (i * 100 * 6 + 50) / 100;
            assert_eq!(
                record["fields"]["tax"],
                format!("{}.{:02}", tax_cents / 100, tax_cents % 100),
                "{name}"
            );
            assert_eq!(record["version"], 1, "{name}");
            seen += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, 1200);
}

/// A test-run sees the function library, `user`, and lookups through the caller's reach.
async fn a_test_run_sees_the_library_and_lookups(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = setup(&app).await;
    let (_, acme) = admin
        .post(ACCOUNTS, json!({"fields": {"name": "Acme", "level": 3}}))
        .await;
    let (status, body) = admin
        .post(
            &format!("{W}/entities/deal/scripts/test-run"),
            json!({"script": "let a = lookup(\"account\", record.account);\n`${a.name}:${add_working_days(\"2026-12-04\", 1)}:${user.role}`",
                   "fields": {"account": acme["id"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], "Acme:2026-12-07:owner");
    let (_, body) = admin
        .post(
            &format!("{W}/entities/deal/scripts/test-run"),
            json!({"script": "today()"}),
        )
        .await;
    assert_eq!(body["uses_clock"], true, "{body}");
}

/// The Sales CRM's lead score and customer tier are formulas: computed on write, following the
/// customer's opportunities (a rollup), and every record follows when a manager changes them.
async fn the_sales_crm_scores_leads_and_tiers_customers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let leads = format!("{W}/entities/lead/records");
    let (status, hot) = admin
        .post(
            &leads,
            json!({"fields": {"name": "金璐", "source": "referral", "status": "qualified",
                              "budget": "600000", "company_size": "enterprise",
                              "phone": "13800138000", "email": "jin.lu@example.cn"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hot}");
    assert_eq!(hot["fields"]["score"], 100);
    let (_, cold) = admin
        .post(
            &leads,
            json!({"fields": {"name": "刘华", "source": "cold_call", "status": "new"}}),
        )
        .await;
    assert_eq!(cold["fields"]["score"], 0);
    let customers = format!("{W}/entities/customer/records");
    let (status, customer) = admin
        .post(
            &customers,
            json!({"fields": {"name": "合肥同创", "size": "smb", "lifecycle_stage": "intent",
                              "source": "referral"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    assert_eq!(customer["fields"]["tier"], "b");
    assert_eq!(customer["fields"]["opportunity_count"], 0);
    let customer_id = customer["id"].as_str().expect("id").to_owned();
    let (status, deal) = admin
        .post(
            &format!("{W}/entities/opportunity/records"),
            json!({"fields": {"name": "ERP", "customer": customer_id, "stage": "proposal",
                              "amount": "1200000"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{deal}");
    let (_, customer) = admin.get(&format!("{customers}/{customer_id}")).await;
    assert_eq!(customer["fields"]["pipeline_amount"], "1200000.00");
    assert_eq!(customer["fields"]["tier"], "a", "{customer}");
    // The manager raises the bar for A: every customer is tiered again.
    let (_, current) = admin.get(&format!("{W}/definitions/entity/customer")).await;
    let mut document = current["published"].clone();
    let formula = document["properties"]["tier"]["x-formula"]
        .as_str()
        .expect("formula")
        .replace("points >= 70", "points >= 90");
    document["properties"]["tier"]["x-formula"] = json!(formula);
    let (status, body) = publish(&admin, "customer", document).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.run_jobs_until_idle().await;
    let (_, customer) = admin.get(&format!("{customers}/{customer_id}")).await;
    assert_eq!(customer["fields"]["tier"], "b", "{customer}");
}

/// A recompute killed midway (SIGKILL) resumes after its last batch in the next process: every
/// record ends computed once, none twice.
async fn a_killed_recompute_resumes_where_it_stopped(backend: Backend) {
    let (database_url, _dir) = common::fresh_database(backend).await;
    let env = [
        ("FORMWORK_JOB_LEASE_SECS", "1"),
        ("FORMWORK_JOB_POLL_MS", "50"),
        ("FORMWORK_DEMO_DATA", "false"),
    ];
    let mut first = common::Process::spawn(&database_url, &env).await;
    let admin = common::process_admin(&first.address).await;
    let thing = |formula: Option<&str>| {
        let mut document = json!({"type": "object", "x-label": {"en": "Thing"},
            "properties": {"n": {"type": "integer", "x-kind": "integer", "x-label": {"en": "N"}}}});
        if let Some(formula) = formula {
            document["properties"]["double"] = json!({"type": "integer", "x-kind": "formula",
                "x-result": "integer", "x-label": {"en": "Double"}, "x-formula": formula});
        }
        document
    };
    let (status, body) = publish(&admin, "thing", thing(None)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let things = format!("{W}/entities/thing/records");
    const RECORDS: i64 = 6000;
    for chunk in 0..RECORDS / 1000 {
        let records: Vec<Value> = (0..1000)
            .map(|i| json!({"fields": {"n": chunk * 1000 + i}}))
            .collect();
        let (status, body) = admin
            .post(&format!("{things}/batch"), json!({"records": records}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = publish(&admin, "thing", thing(Some("record.n * 2"))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Kill the process once the job has committed at least one batch, not all.
    let recompute = |jobs: &Value| {
        jobs.as_array()
            .and_then(|all| all.iter().find(|j| j["kind"] == "records.recompute"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut killed_at = None;
    for _ in 0..2000 {
        let (_, jobs) = admin.get(&format!("{W}/jobs?limit=100")).await;
        let job = recompute(&jobs);
        let done = job["progress_done"].as_i64().unwrap_or_default();
        if done > 0 {
            assert!(
                done < RECORDS,
                "the job finished before it could be killed: {job}"
            );
            first.kill_hard();
            killed_at = Some(done);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let killed_at = killed_at.expect("the recompute started");
    let second = common::Process::spawn(&database_url, &env).await;
    let admin = common::process_admin(&second.address).await;
    let mut job = Value::Null;
    for _ in 0..600 {
        let (_, jobs) = admin.get(&format!("{W}/jobs?limit=100")).await;
        job = recompute(&jobs);
        if job["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    // Resumed, not restarted: the second attempt found no record already computed.
    let checkpoint = &job["checkpoint"];
    assert_eq!(checkpoint["done"], RECORDS, "killed at {killed_at}: {job}");
    assert_eq!(
        checkpoint["changed"], RECORDS,
        "killed at {killed_at}: {job}"
    );
    assert_eq!(checkpoint["unchanged"], 0, "killed at {killed_at}: {job}");
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    loop {
        let mut query = json!({"limit": 1000});
        if let Some(cursor) = &cursor {
            query["cursor"] = json!(cursor);
        }
        let (_, page) = admin.post(&format!("{things}/query"), query).await;
        for record in page["records"].as_array().expect("records") {
            assert_eq!(
                record["fields"]["double"].as_i64(),
                record["fields"]["n"].as_i64().map(|n| n * 2),
                "{record}"
            );
            seen += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, RECORDS);
}

/// A runaway formula refuses the writes it runs in, by its limit, while other requests are
/// answered within a second; nothing is written.
async fn a_runaway_formula_stops_and_the_server_keeps_answering(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let document = json!({"type": "object", "x-label": {"en": "Spin"},
        "properties": {
            "n": {"type": "integer", "x-kind": "integer", "x-label": {"en": "N"}},
            "spin": {"type": "integer", "x-kind": "formula", "x-result": "integer",
                     "x-label": {"en": "Spin"},
                     "x-formula": "let i = 0; while record.n != -1 { i += 1; } i"}}});
    let (status, body) = publish(&admin, "spin", document).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let spins = format!("{W}/entities/spin/records");
    let writes = (0..4).map(|n| admin.post(&spins, json!({"fields": {"n": n}})));
    let probe = async {
        let mut slowest = std::time::Duration::ZERO;
        for _ in 0..10 {
            let at = std::time::Instant::now();
            let (status, _) = admin
                .get(&format!("{W}/entities/lead/records?limit=5"))
                .await;
            assert_eq!(status, StatusCode::OK);
            slowest = slowest.max(at.elapsed());
        }
        slowest
    };
    let (results, slowest) = tokio::join!(futures::future::join_all(writes), probe);
    for (status, body) in results {
        assert_eq!(
            assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
            ["/fields/spin"]
        );
        assert_eq!(body["errors"][0]["code"], "script_limit", "{body}");
    }
    assert!(
        slowest < std::time::Duration::from_secs(1),
        "other requests waited {slowest:?}"
    );
    let (_, page) = admin.get(&spins).await;
    assert_eq!(page["records"].as_array().map(Vec::len), Some(0));
}

/// A formula reading the clock is computed at each write and again every day: the hourly sweep
/// starts one recompute per entity per workspace-local date.
async fn clock_formulas_are_recomputed_daily(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let document = json!({"type": "object", "x-label": {"en": "Task"},
        "properties": {
            "due": {"type": "string", "x-kind": "date", "x-label": {"en": "Due"}},
            "days_left": {"type": "integer", "x-kind": "formula", "x-result": "integer",
                          "x-label": {"en": "Days left"},
                          "x-formula": "days_between(today(), record.due)"}}});
    let (status, body) = publish(&admin, "chore", document).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let tasks = format!("{W}/entities/chore/records");
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let due = today + chrono::Days::new(10);
    let (status, task) = admin
        .post(&tasks, json!({"fields": {"due": due.to_string()}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(task["fields"]["days_left"], 10);
    let id = task["id"].as_str().expect("id");
    app.run_jobs_until_idle().await;
    app.advance(chrono::Duration::days(3));
    app.services.worker().schedule_housekeeping().await;
    app.run_jobs_until_idle().await;
    // Three idle days end the session.
    let admin = app.admin().await;
    let (_, task) = admin.get(&format!("{tasks}/{id}")).await;
    assert_eq!(task["fields"]["days_left"], 7, "{task}");
    // The same day's sweep again starts nothing new.
    app.services.worker().schedule_housekeeping().await;
    app.run_jobs_until_idle().await;
    let (_, jobs) = admin.get(&format!("{W}/jobs?limit=100")).await;
    let daily = jobs
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|j| {
                    j["kind"] == "records.recompute"
                        && j["payload"]["entity"] == "chore"
                        && j["payload"]["reason"]
                            .as_str()
                            .is_some_and(|r| r.starts_with("daily"))
                })
                .count()
        })
        .unwrap_or_default();
    assert_eq!(daily, 1, "{jobs}");
}

both_databases!(
    formulas_are_computed_on_write_and_queryable,
    rules_refuse_writes_naming_rule_and_fields,
    broken_formulas_are_refused_at_save_with_their_place,
    a_changed_formula_recomputes_every_record,
    a_test_run_sees_the_library_and_lookups,
    the_sales_crm_scores_leads_and_tiers_customers,
    a_killed_recompute_resumes_where_it_stopped,
    a_runaway_formula_stops_and_the_server_keeps_answering,
    clock_formulas_are_recomputed_daily
);
