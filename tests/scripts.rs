//! Scripts through HTTP, on SQLite and PostgreSQL: trying a script against a record writes
//! nothing, errors are located, limits stop runaways while other requests are served.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

const LEADS: &str = "/api/v1/w/demo/entities/lead/records";
const TRY: &str = "/api/v1/w/demo/entities/lead/scripts/test-run";

async fn a_script_is_tried_against_a_record(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, lead) = admin
        .post(
            LEADS,
            json!({"fields": {"name": "王芳", "source": "referral", "budget": "128000.50"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lead}");
    let id = lead["id"].as_str().expect("id").to_owned();
    // Money is exact: a decimal, not a float.
    let (status, body) = admin
        .post(
            TRY,
            json!({"script": "record.budget * 3 / 10", "record_id": id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], "38400.15");
    assert_eq!(body["type"], "a decimal");
    let (status, body) = admin
        .post(
            TRY,
            json!({"script": "if record.source == \"referral\" { 15 } else { 0 }",
                   "fields": {"source": "referral"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], 15);
    // Nothing was written.
    let (_, after) = admin.get(&format!("{LEADS}/{id}")).await;
    assert_eq!(after["version"], lead["version"]);
    // Errors are located: syntax, run time.
    let (status, body) = admin
        .post(TRY, json!({"script": "let a = 1;\nlet b = ;"}))
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/script"]
    );
    assert_eq!(body["errors"][0]["code"], "script_syntax");
    assert_eq!(body["errors"][0]["line"], 2);
    let (status, body) = admin
        .post(TRY, json!({"script": "let x = 1;\nx / 0"}))
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["code"], "script_error");
    assert_eq!(body["errors"][0]["line"], 2);
    // A member may not try scripts; a record out of reach is not found.
    let member = app.create_user("rep@formwork.local").await;
    admin
        .post(
            "/api/v1/w/demo/members",
            json!({"email": "rep@formwork.local", "role": "member"}),
        )
        .await;
    let (status, body) = member.post(TRY, json!({"script": "1"})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = admin
        .post(
            TRY,
            json!({"script": "1", "record_id": "0190f0f0-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
}

/// A runaway script stops with a named limit, and the server keeps answering meanwhile.
async fn runaway_scripts_do_not_stall_the_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let started = Instant::now();
    let runaways = (0..4).map(|_| {
        admin.post(
            TRY,
            json!({"script": "let s = 0; let i = 0; while true { i += 1; s += i; }"}),
        )
    });
    let probe = async {
        let mut slowest = Duration::ZERO;
        for _ in 0..10 {
            let at = Instant::now();
            let (status, _) = admin.get("/api/v1/w/demo").await;
            assert_eq!(status, StatusCode::OK);
            slowest = slowest.max(at.elapsed());
        }
        slowest
    };
    let (results, slowest) = tokio::join!(futures::future::join_all(runaways), probe);
    for (status, body) in results {
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["errors"][0]["code"], "script_limit", "{body}");
    }
    assert!(
        slowest < Duration::from_secs(1),
        "other requests waited {slowest:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

both_databases!(
    a_script_is_tried_against_a_record,
    runaway_scripts_do_not_stall_the_server
);
