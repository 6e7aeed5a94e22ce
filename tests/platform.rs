//! Health, configuration, migrations, the workspace clock and business calendar.

mod common;

use chrono::Duration;
use common::{Backend, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

async fn health_and_readiness_answer_without_authentication(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let anonymous = app.anonymous();
    assert_eq!(
        anonymous.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        anonymous.get("/readyz").await,
        (StatusCode::OK, json!({"status": "ready"}))
    );
    let (status, body) = anonymous.get("/api/v1/w/demo").await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    let response = reqwest::Client::new()
        .patch(app.url("/healthz"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET,HEAD");
}

async fn the_calendar_follows_the_workspace_settings_and_the_clock(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, settings) = admin
        .patch(
            "/api/v1/w/demo/settings",
            json!({"calendar": {"weekend": ["sat", "sun"],
                   "holidays": ["2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06", "2026-10-07"],
                   "workdays": ["2026-09-27", "2026-10-10"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["time_zone"], "Asia/Shanghai");
    let (_, answer) = admin
        .get("/api/v1/w/demo/calendar/working-days?from=2026-09-30&add=1")
        .await;
    assert_eq!(answer["result"], "2026-10-08");
    let (_, answer) = admin
        .get("/api/v1/w/demo/calendar/working-days?from=2026-10-09&add=1")
        .await;
    assert_eq!(answer["result"], "2026-10-10", "make-up workday");
    let (_, answer) = admin
        .get("/api/v1/w/demo/calendar/working-days?from=2026-09-25&to=2026-10-12")
        .await;
    assert_eq!(answer["working_days"], 8);

    let (status, before) = admin.get("/api/v1/w/demo/clock").await;
    assert_eq!(status, StatusCode::OK, "{before}");
    // Less than the session's idle limit, so the same session still answers.
    app.advance(Duration::hours(3));
    let (_, after) = admin.get("/api/v1/w/demo/clock").await;
    let parse = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v["now"].as_str().expect("now")).expect("time")
    };
    assert!(parse(&after) - parse(&before) >= Duration::hours(3));
    assert!(
        after["local"]
            .as_str()
            .is_some_and(|l| l.ends_with("+08:00")),
        "{after}"
    );

    let (status, body) = admin
        .patch("/api/v1/w/demo/settings", json!({"time_zone": "Nowhere/City", "calendar": {"weekend": ["mon","tue","wed","thu","fri","sat","sun"]}}))
        .await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointers, ["/time_zone", "/calendar/weekend"]);
    let (_, unchanged) = admin.get("/api/v1/w/demo/settings").await;
    assert_eq!(unchanged["time_zone"], "Asia/Shanghai", "nothing written");
    let (status, body) = admin
        .get("/api/v1/w/demo/calendar/working-days?from=yesterday&add=1")
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/from"]
    );
    let (status, body) = admin
        .get("/api/v1/w/demo/calendar/working-days?from=2026-01-01")
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let viewer = app.create_user("viewer@example.com").await;
    admin
        .post(
            "/api/v1/w/demo/members",
            json!({"email": "viewer@example.com", "role": "viewer"}),
        )
        .await;
    let (status, body) = viewer
        .patch("/api/v1/w/demo/settings", json!({"name": "Mine"}))
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
}

#[test]
fn a_bad_setting_fails_fast_naming_the_variable() {
    let output = std::process::Command::new(common::binary())
        .env("FORMWORK_LISTEN", "not-an-address")
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("FORMWORK_LISTEN"));
    let output = std::process::Command::new(common::binary())
        .args(["migrate"])
        .env("FORMWORK_DATABASE_URL", "mysql://nope")
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("FORMWORK_DATABASE_URL"));
}

#[test]
fn migrate_creates_a_database_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/nested/f.db", dir.path().display());
    for _ in 0..2 {
        let output = std::process::Command::new(common::binary())
            .arg("migrate")
            .env("FORMWORK_DATABASE_URL", &url)
            .output()
            .expect("run");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(dir.path().join("nested/f.db").exists());
}

both_databases!(
    health_and_readiness_answer_without_authentication,
    the_calendar_follows_the_workspace_settings_and_the_clock,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_a_one_time_password_once() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/first.db", dir.path().display());
    let start = |url: &str| {
        let port = common::free_port();
        let child = std::process::Command::new(common::binary())
            .env("FORMWORK_DATABASE_URL", url)
            .env("FORMWORK_LISTEN", format!("127.0.0.1:{port}"))
            .env("FORMWORK_LOG", "warn")
            .env_remove("FORMWORK_ADMIN_PASSWORD")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        (child, port)
    };
    let read_until_listening = |child: &mut std::process::Child| {
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            let done = line.contains("listening on");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    };
    let (mut child, port) = start(&url);
    let lines = read_until_listening(&mut child);
    let password = lines
        .iter()
        .find_map(|l| l.split("One-time admin password").nth(1))
        .and_then(|rest| rest.rsplit(": ").next())
        .expect("the password is printed")
        .trim()
        .to_owned();
    assert!(password.len() >= 16);
    assert!(lines.iter().any(|l| l.contains("/w/demo/")), "{lines:?}");
    let client = common::Client::new(format!("http://127.0.0.1:{port}"));
    let (status, body) = client
        .post(
            "/api/v1/account/login",
            json!({"email": common::ADMIN_EMAIL, "password": password}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["must_change_password"], true);
    let _ = child.kill();
    let _ = child.wait();

    // A restart on the same database neither bootstraps again nor prints a password.
    let (mut child, _) = start(&url);
    let lines = read_until_listening(&mut child);
    assert!(!lines.iter().any(|l| l.contains("password")), "{lines:?}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_database_is_gone() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn(Backend::Postgres).await;
    let anonymous = app.anonymous();
    assert_eq!(anonymous.get("/readyz").await.0, StatusCode::OK);
    let name = app
        .database_url
        .rsplit('/')
        .next()
        .expect("name")
        .to_owned();
    let admin = sea_orm::Database::connect(common::postgres_admin_url())
        .await
        .expect("connect");
    admin
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop");
    let (status, body) = anonymous.get("/readyz").await;
    assert_problem(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        anonymous.get("/healthz").await.0,
        StatusCode::OK,
        "the process itself is alive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_starting_together_on_postgres_bootstrap_once() {
    use sea_orm::{ConnectionTrait, Statement};
    let (database_url, _) = common::fresh_database(Backend::Postgres).await;
    let (first, second) = tokio::join!(
        common::Process::spawn(&database_url, &[]),
        common::Process::spawn(&database_url, &[])
    );
    let db = common::connect(&database_url).await;
    for (table, expected) in [("accounts", 10), ("workspaces", 1), ("definitions", 82)] {
        let conn = db.conn();
        let row = conn
            .query_one_raw(Statement::from_string(
                conn.get_database_backend(),
                format!("SELECT COUNT(*) FROM {table}"),
            ))
            .await
            .expect("query")
            .expect("row");
        assert_eq!(
            row.try_get_by_index::<i64>(0).expect("count"),
            expected,
            "{table}"
        );
    }
    drop((first, second));
}
