//! Calendars of records on both databases: records of an entity on a span of days in the
//! workspace's time zone, as the caller may see them, filtered by owner and team; moving a
//! record to another day is an edit (rules, versions, access, history, workflows); each member's
//! iCalendar feed is read by Python's `icalendar` (RFC 5545) and stops working when revoked.

mod common;

use common::{Backend, Client, TestApp, assert_problem, join_member};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";

async fn create(client: &Client, entity: &str, fields: Value) -> Value {
    let (status, body) = client
        .post(
            &format!("{W}/entities/{entity}/records"),
            json!({ "fields": fields }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn calendar(client: &Client, entity: &str, query: &str) -> Value {
    let (status, body) = client
        .get(&format!("{W}/entities/{entity}/calendar?{query}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

fn titles(answer: &Value) -> Vec<String> {
    answer["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["date"].as_str().unwrap_or(""),
                e["title"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The workspace's calendar day of an instant, as the API shows dates (Asia/Shanghai in the
/// demo workspace).
async fn zone(admin: &Client) -> String {
    let (_, workspace) = admin.get(W).await;
    workspace["settings"]["time_zone"]
        .as_str()
        .or_else(|| workspace["time_zone"].as_str())
        .unwrap_or("UTC")
        .to_owned()
}

async fn records_on_days_and_moved_to_others(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (rep, rep_id) = join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;
    let tz = zone(&admin).await;
    assert_eq!(tz, "Asia/Shanghai", "the demo workspace's zone");
    let customer = create(
        &admin,
        "customer",
        json!({"name": "星辰科技", "lifecycle_stage": "first_contact"}),
    )
    .await;
    let customer_id = customer["id"].as_str().expect("id");
    // 23:30 UTC on Dec 9 is Dec 10 in Shanghai.
    let late = create(
        &admin,
        "follow_up",
        json!({"subject": "Late call", "customer": customer_id, "way": "call", "followed_at": "2026-12-09T23:30:00Z"}),
    )
    .await;
    create(
        &admin,
        "follow_up",
        json!({"subject": "Visit", "customer": customer_id, "way": "visit", "followed_at": "2026-12-03T02:00:00Z"}),
    )
    .await;
    create(
        &admin,
        "follow_up",
        json!({"subject": "Next year", "customer": customer_id, "way": "email", "followed_at": "2027-01-20T02:00:00Z"}),
    )
    .await;
    let mine = create(
        &rep,
        "task",
        json!({"title": "Rep's task", "priority": "high", "deadline": "2026-12-15", "status": "open"}),
    )
    .await;
    create(
        &admin,
        "task",
        json!({"title": "Admin's task", "priority": "low", "deadline": "2026-12-15", "status": "open"}),
    )
    .await;

    // The month of December (whole weeks: Nov 30 – Jan 3), days in Shanghai time.
    let month = calendar(&admin, "follow_up", "from=2026-11-30&to=2027-01-03").await;
    assert_eq!(
        month["field"], "followed_at",
        "the entity's calendar view's field"
    );
    assert_eq!(
        titles(&month),
        vec!["2026-12-03 Visit", "2026-12-10 Late call"]
    );
    assert_eq!(month["events"][1]["time"], "07:30:00");
    assert_eq!(month["more"], false);
    // Scope: the rep sees their own task only; owner and team filters narrow the admin's.
    let tasks = calendar(&rep, "task", "from=2026-12-01&to=2026-12-31").await;
    assert_eq!(titles(&tasks), vec!["2026-12-15 Rep's task"]);
    let tasks = calendar(&admin, "task", "from=2026-12-01&to=2026-12-31").await;
    assert_eq!(tasks["events"].as_array().map(Vec::len), Some(2));
    let tasks = calendar(
        &admin,
        "task",
        &format!("from=2026-12-01&to=2026-12-31&owner={rep_id}"),
    )
    .await;
    assert_eq!(titles(&tasks), vec!["2026-12-15 Rep's task"]);
    let tasks = calendar(&admin, "task", "from=2026-12-01&to=2026-12-31&owner=me").await;
    assert_eq!(titles(&tasks), vec!["2026-12-15 Admin's task"]);
    let (_, team) = admin
        .post(
            &format!("{W}/org/units"),
            json!({"name": "East", "kind": "team"}),
        )
        .await;
    let team = team["id"].as_str().expect("team").to_owned();
    admin
        .patch(&format!("{W}/members/{rep_id}"), json!({"unit_id": team}))
        .await;
    let tasks = calendar(
        &admin,
        "task",
        &format!("from=2026-12-01&to=2026-12-31&team={team}"),
    )
    .await;
    assert_eq!(titles(&tasks), vec!["2026-12-15 Rep's task"]);

    // Refusals.
    for (query, pointer, status) in [
        (
            "from=2026-12-01&to=2026-11-01",
            "/to",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "from=2026-01-01&to=2026-12-31",
            "/to",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "from=2026-12-01&to=2026-12-31&field=priority",
            "/field",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "from=2026-12-01&to=2026-12-31&owner=someone",
            "/owner",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "from=2026-12-01&to=2026-12-31&team=0190a0b0-0000-7000-8000-000000000001",
            "/team",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "from=yesterday&to=2026-12-31",
            "/from",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("to=2026-12-31", "/from", StatusCode::UNPROCESSABLE_ENTITY),
        (
            "from=2400-01-01&to=2400-01-31",
            "/from",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "from=%2B262143-12-01&to=%2B262143-12-31",
            "/from",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (got, problem) = admin
            .get(&format!("{W}/entities/task/calendar?{query}"))
            .await;
        assert_problem(got, &problem, status);
        assert!(
            problem["errors"][0]["pointer"]
                .as_str()
                .is_some_and(|p| p.starts_with(pointer)),
            "{query}: {problem}"
        );
    }
    let (status, problem) = admin
        .get(&format!(
            "{W}/entities/nothing/calendar?from=2026-12-01&to=2026-12-31"
        ))
        .await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);

    // Moving: a datetime keeps its time of day there; a date moves whole.
    let late_id = late["id"].as_str().expect("id");
    let (status, moved) = admin
        .post(
            &format!("{W}/entities/follow_up/records/{late_id}/reschedule"),
            json!({"field": "followed_at", "date": "2026-12-14", "version": late["version"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["fields"]["followed_at"], "2026-12-13T23:30:00.000Z");
    let month = calendar(&admin, "follow_up", "from=2026-11-30&to=2027-01-03").await;
    assert_eq!(
        titles(&month),
        vec!["2026-12-03 Visit", "2026-12-14 Late call"]
    );
    let (_, history) = admin
        .get(&format!("{W}/entities/follow_up/records/{late_id}/history"))
        .await;
    assert_eq!(
        history.as_array().map(Vec::len),
        Some(2),
        "the move is in the history"
    );
    // A stale version, someone else's record, a non-date field: refused, nothing changed.
    let (status, problem) = admin
        .post(
            &format!("{W}/entities/follow_up/records/{late_id}/reschedule"),
            json!({"field": "followed_at", "date": "2026-12-20", "version": late["version"]}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::CONFLICT);
    let (status, problem) = rep
        .post(
            &format!("{W}/entities/follow_up/records/{late_id}/reschedule"),
            json!({"field": "followed_at", "date": "2026-12-20"}),
        )
        .await;
    assert!(
        status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
        "{problem}"
    );
    let mine_id = mine["id"].as_str().expect("id");
    let (status, problem) = rep
        .post(
            &format!("{W}/entities/task/records/{mine_id}/reschedule"),
            json!({"field": "priority", "date": "2026-12-20"}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = rep
        .post(
            &format!("{W}/entities/task/records/{mine_id}/reschedule"),
            json!({"field": "deadline", "date": "2026-12-18"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fields"]["deadline"], "2026-12-18");

    // The entity's rules hold: a contract cannot end before it starts.
    let contract = create(
        &admin,
        "contract",
        json!({"name": "年度框架协议", "customer": customer_id, "amount": "120000.00", "status": "active",
               "start_date": "2026-12-01", "end_date": "2027-11-30"}),
    )
    .await;
    let contract_id = contract["id"].as_str().expect("id");
    let (status, problem) = admin
        .post(
            &format!("{W}/entities/contract/records/{contract_id}/reschedule"),
            json!({"field": "end_date", "date": "2026-11-01"}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, unchanged) = admin
        .get(&format!("{W}/entities/contract/records/{contract_id}"))
        .await;
    assert_eq!(unchanged["fields"]["end_date"], "2027-11-30");
}

/// Reads a feed with Python's `icalendar` and returns its events as `[{uid, summary, start}]`.
fn parse_ics(text: &str) -> Value {
    let python = common::python_bin().join("python");
    let script = r#"
import json, sys
import icalendar
calendar = icalendar.Calendar.from_ical(sys.stdin.buffer.read())
assert calendar.get("VERSION") == "2.0", "VERSION"
assert calendar.get("PRODID"), "PRODID"
events = []
for event in calendar.walk("VEVENT"):
    for required in ("UID", "DTSTAMP", "DTSTART"):
        assert event.get(required) is not None, required
    start = event.decoded("DTSTART")
    events.append({"uid": str(event["UID"]), "summary": str(event["SUMMARY"]),
                   "start": start.isoformat(), "url": str(event.get("URL", ""))})
print(json.dumps({"name": str(calendar.get("X-WR-CALNAME")), "events": events}))
"#;
    use std::io::Write;
    let mut child = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed written");
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "icalendar refused the feed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

async fn a_members_feed_is_valid_icalendar_until_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (rep, _) = join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;
    let today = chrono::Utc::now().date_naive();
    let day = |n: i64| {
        (today + chrono::Duration::days(n))
            .format("%Y-%m-%d")
            .to_string()
    };
    let customer = create(
        &rep,
        "customer",
        json!({"name": "Acme; Inc, \"East\"", "lifecycle_stage": "first_contact"}),
    )
    .await;
    let customer_id = customer["id"].as_str().expect("id");
    create(
        &rep,
        "task",
        json!({"title": "Send the quote, v2; 报价", "priority": "high", "deadline": day(3), "status": "open"}),
    )
    .await;
    let visit = create(
        &rep,
        "follow_up",
        json!({"subject": "拜访客户", "customer": customer_id, "way": "visit",
               "followed_at": format!("{}T02:00:00Z", day(5))}),
    )
    .await;
    create(
        &admin,
        "task",
        json!({"title": "Not the rep's", "priority": "low", "deadline": day(3), "status": "open"}),
    )
    .await;

    // A feed is made by the person, not with an API token (which may be narrower).
    let (status, token) = rep
        .post(&format!("{W}/tokens"), json!({"name": "sync"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let bot = Client::with_token(
        app.address.clone(),
        token["secret"].as_str().expect("token"),
    );
    let (status, problem) = bot.post(&format!("{W}/calendar-feed"), json!({})).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN);
    let (status, none) = rep.get(&format!("{W}/calendar-feed")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none["feed"], Value::Null);
    let (status, made) = rep.post(&format!("{W}/calendar-feed"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let url = made["url"].as_str().expect("url").to_owned();
    let path = url
        .split_once("/feeds/")
        .map(|(_, rest)| format!("/feeds/{rest}"))
        .expect("feed path");
    let (_, state) = rep.get(&format!("{W}/calendar-feed")).await;
    assert!(
        state["feed"]["url"].is_null(),
        "the address is shown once: {state}"
    );

    let response = app.anonymous().get_raw(&path).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[reqwest::header::CONTENT_TYPE],
        "text/calendar; charset=utf-8"
    );
    let text = response.text().await.expect("text");
    let feed = parse_ics(&text);
    let mut summaries: Vec<String> = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["summary"].as_str().unwrap_or("").to_owned())
        .collect();
    summaries.sort();
    assert_eq!(
        summaries,
        vec!["Send the quote, v2; 报价", "拜访客户"],
        "{feed}"
    );
    let visit_event = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["summary"] == "拜访客户")
        .expect("visit")
        .clone();
    assert_eq!(visit_event["start"], format!("{}T02:00:00+00:00", day(5)));
    assert!(
        visit_event["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(visit["id"].as_str().expect("id"))),
        "{visit_event}"
    );
    let task_event = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["summary"] != "拜访客户")
        .expect("task")
        .clone();
    assert_eq!(task_event["start"], day(3), "an all-day event");
    let (_, state) = rep.get(&format!("{W}/calendar-feed")).await;
    assert!(state["feed"]["last_read_at"].is_string(), "{state}");

    // A new address replaces the old one; a revoked one reads nothing.
    let (_, again) = rep.post(&format!("{W}/calendar-feed"), json!({})).await;
    let newer = again["url"].as_str().expect("url").to_owned();
    assert_ne!(newer, url);
    let response = app.anonymous().get_raw(&path).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let newer_path = format!("/feeds/{}", newer.split_once("/feeds/").expect("path").1);
    let (status, _) = rep.delete(&format!("{W}/calendar-feed")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let response = app.anonymous().get_raw(&newer_path).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body = response.text().await.expect("body");
    assert!(!body.contains("Send the quote"), "nothing leaks: {body}");
    let (status, problem) = rep.delete(&format!("{W}/calendar-feed")).await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);
    let response = app.anonymous().get_raw("/feeds/not-a-secret.ics").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

async fn the_calendar_page_draws_months_weeks_and_an_agenda(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    create(
        &admin,
        "task",
        json!({"title": "Quarterly review", "priority": "high", "deadline": "2026-12-15", "status": "open"}),
    )
    .await;
    let page =
        common::PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "zh-CN")
            .await;
    let (status, html) = page
        .get("/w/demo/e/task/calendar?mode=month&date=2026-12-15")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("2026年12月"), "month title");
    assert!(html.contains("data-date=\"2026-12-15\""));
    assert!(html.contains("Quarterly review"));
    assert!(html.contains("draggable=\"true\""));
    let (_, html) = page
        .get("/w/demo/e/task/calendar?mode=week&date=2026-12-15")
        .await;
    assert!(html.contains("Quarterly review") && html.contains("class=\"calendar week\""));
    let (_, html) = page
        .get("/w/demo/e/task/calendar?mode=agenda&date=2026-12-10")
        .await;
    assert!(html.contains("agenda-day") && html.contains("Quarterly review"));
    let (status, _) = page.get("/w/demo/e/task/calendar?mode=year").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // The list offers the calendar.
    let (_, list) = page.get("/w/demo/e/task").await;
    assert!(list.contains("data-testid=\"as-calendar\""));
    // The feed address from the page.
    let (status, _, html) = page
        .post(
            "/w/demo/calendar-feed",
            &[("action", "create"), ("entity", "task")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-testid=\"feed-url\""));
}

both_databases!(
    records_on_days_and_moved_to_others,
    a_members_feed_is_valid_icalendar_until_revoked,
    the_calendar_page_draws_months_weeks_and_an_agenda,
);
