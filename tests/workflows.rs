//! Durable workflows through HTTP on SQLite and PostgreSQL: every trigger kind (created,
//! updated, field changed, deleted, date, schedule, manual), every step kind, conditions, the
//! outbox (a real SMTP listener receives the reminder, a real HTTP server the webhook with its
//! retries and one idempotency key), the depth guard, retries of failed runs, notifications, and
//! definitions refused at save with pointers. Time moves with the controllable clock.

mod common;

use chrono::Duration;
use common::{
    Backend, Client, Options, SmtpSink, TestApp, WebhookSink, assert_problem, join_member,
    publish_definition, publish_entity,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";
const LEADS: &str = "/api/v1/w/demo/entities/wlead/records";
const TASKS: &str = "/api/v1/w/demo/entities/wtask/records";

async fn entities(admin: &Client) {
    let lead = json!({
        "type": "object", "x-label": {"en": "Lead"},
        "properties": {
            "name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}},
            "stage": {"type": "string", "enum": ["new", "contacted", "won", "lost"], "x-kind": "single_select",
                      "x-label": {"en": "Stage"},
                      "x-options": [{"value": "new", "label": {"en": "New"}}, {"value": "contacted", "label": {"en": "Contacted"}},
                                    {"value": "won", "label": {"en": "Won"}}, {"value": "lost", "label": {"en": "Lost"}}]},
            "amount": {"type": "number", "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Amount"}},
            "note": {"type": "string", "x-kind": "text", "x-label": {"en": "Note"}},
            "touches": {"type": "integer", "x-kind": "integer", "x-label": {"en": "Touches"}},
            "ends": {"type": "string", "format": "date", "x-kind": "date", "x-label": {"en": "Contract ends"}}
        }
    });
    let (status, body) = publish_entity(admin, "wlead", lead).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let task = json!({
        "type": "object", "x-label": {"en": "Task"},
        "properties": {
            "title": {"type": "string", "x-kind": "text", "x-label": {"en": "Title"}},
            "lead": {"type": "string", "x-kind": "reference", "x-label": {"en": "Lead"},
                     "x-reference": {"entity": "wlead", "on_delete": "cascade"}},
            "due": {"type": "string", "format": "date", "x-kind": "date", "x-label": {"en": "Due"}}
        }
    });
    let (status, body) = publish_entity(admin, "wtask", task).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A server whose sessions outlive the days the tests move its clock by.
async fn spawn(backend: Backend, smtp: Option<&SmtpSink>) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            smtp_url: smtp.map(|s| format!("smtp://127.0.0.1:{}", s.port)),
            configure: |config| {
                config.session_idle_minutes = 60 * 24 * 365;
                config.session_max_hours = 24 * 365;
            },
            ..Options::default()
        },
    )
    .await
}

async fn workflow(admin: &Client, key: &str, document: Value) {
    let (status, body) = publish_definition(admin, "workflow", key, document).await;
    assert_eq!(status, StatusCode::CREATED, "{key}: {body}");
}

async fn runs(admin: &Client, workflow: &str) -> Vec<Value> {
    let (status, body) = admin
        .get(&format!("{W}/workflow-runs?workflow={workflow}&limit=500"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().expect("runs").clone()
}

async fn run(admin: &Client, id: &Value) -> Value {
    let (status, body) = admin
        .get(&format!("{W}/workflow-runs/{}", id.as_str().expect("id")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn create_lead(client: &Client, fields: Value) -> Value {
    let (status, body) = client.post(LEADS, json!({"fields": fields})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// "When a lead is created, create a call task for tomorrow; if no contact in 3 days, remind
/// the owner (in the app and by email)." A real SMTP listener receives the reminder.
async fn follow_up_reminder(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = spawn(backend, Some(&smtp)).await;
    let admin = app.admin().await;
    entities(&admin).await;
    workflow(
        &admin,
        "follow_up",
        json!({
            "label": {"en": "Follow up new leads", "zh-CN": "新线索跟进"},
            "entity": "wlead",
            "trigger": {"type": "record_created"},
            "condition": "record.stage == \"new\"",
            "steps": [
                {"id": "call", "type": "create_record", "entity": "wtask",
                 "fields": {"title": "Call {{ record.name }}", "lead": "{{ record.id }}",
                            "due": {"script": "add_days(today(), 1)"}}},
                {"id": "pause", "type": "wait", "duration": "P3D"},
                {"id": "check", "type": "branch",
                 "cases": [{"when": "record.stage == \"new\"", "goto": "remind"}],
                 "otherwise": "end"},
                {"id": "remind", "type": "notify", "to": ["owner"], "channels": ["in_app", "email"],
                 "title": "Follow up {{ record.name }}",
                 "body": "{{ record.name }} has waited since {{ steps.pause.until }}; task {{ steps.call.id }}."}
            ]
        }),
    )
    .await;

    let lead = create_lead(&admin, json!({"name": "Acme", "stage": "new"})).await;
    let skipped = create_lead(&admin, json!({"name": "Old", "stage": "contacted"})).await;
    app.run_jobs_until_idle().await;
    let started = runs(&admin, "follow_up").await;
    assert_eq!(
        started.len(),
        1,
        "the condition keeps the contacted lead out: {started:?}"
    );
    assert_eq!(started[0]["record_id"], lead["id"]);
    assert_eq!(started[0]["status"], "waiting");
    let (_, tasks) = admin
        .post(
            &format!("{TASKS}/query"),
            json!({"filter": {"field": "lead", "op": "eq", "value": lead["id"]}}),
        )
        .await;
    let tasks = tasks["records"].as_array().expect("tasks").clone();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["fields"]["title"], "Call Acme");
    let (_, history) = admin
        .get(&format!(
            "{TASKS}/{}/history",
            tasks[0]["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(history[0]["channel"], "workflow", "{history}");
    assert_eq!(
        history[0]["changes"]["workflow"]["key"], "follow_up",
        "{history}"
    );

    // Nothing before the wait ends; then the reminder, once.
    app.advance(Duration::days(2));
    app.run_jobs_until_idle().await;
    assert_eq!(run(&admin, &started[0]["id"]).await["status"], "waiting");
    app.advance(Duration::days(1) + Duration::minutes(1));
    app.run_jobs_until_idle().await;
    let done = run(&admin, &started[0]["id"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    let kinds: Vec<&str> = done["steps"]
        .as_array()
        .expect("log")
        .iter()
        .map(|s| s["step"].as_str().expect("step"))
        .collect();
    assert_eq!(kinds, ["call", "pause", "check", "remind"], "{done}");
    let (_, inbox) = admin.get(&format!("{W}/notifications")).await;
    assert_eq!(inbox["unread"], 1, "{inbox}");
    assert_eq!(inbox["notifications"][0]["title"], "Follow up Acme");
    assert_eq!(inbox["notifications"][0]["record_id"], lead["id"]);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("Follow up Acme"), "{}", messages[0]);
    // Read state.
    let id = inbox["notifications"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _) = admin
        .post(&format!("{W}/notifications/{id}/read"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, inbox) = admin.get(&format!("{W}/notifications?unread=true")).await;
    assert_eq!(inbox["unread"], 0);
    assert_eq!(inbox["notifications"].as_array().map(Vec::len), Some(0));

    // A lead contacted in time gets no reminder; a deleted one's waiting run is cancelled.
    let second = create_lead(&admin, json!({"name": "Beta", "stage": "new"})).await;
    let third = create_lead(&admin, json!({"name": "Gamma", "stage": "new"})).await;
    app.run_jobs_until_idle().await;
    let (status, body) = admin
        .patch(
            &format!("{LEADS}/{}", second["id"].as_str().expect("id")),
            json!({"fields": {"stage": "contacted"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = admin
        .delete(&format!("{LEADS}/{}", third["id"].as_str().expect("id")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.advance(Duration::days(4));
    app.run_jobs_until_idle().await;
    let all = runs(&admin, "follow_up").await;
    let of = |record: &Value| {
        all.iter()
            .find(|r| r["record_id"] == *record)
            .expect("run")
            .clone()
    };
    assert_eq!(of(&second["id"])["status"], "completed");
    assert_eq!(of(&second["id"])["vars"]["check"]["goto"], "end");
    assert_eq!(of(&third["id"])["status"], "cancelled");
    assert_eq!(smtp.messages().len(), 1, "no second reminder");
    let _ = skipped;
}

/// A field changed to "won" (with a condition), set fields, a script step, a webhook that
/// fails twice and then answers: retried with backoff, one idempotency key.
async fn won_deals_call_a_webhook(backend: Backend) {
    let app = spawn(backend, None).await;
    let admin = app.admin().await;
    entities(&admin).await;
    let sink = WebhookSink::start(vec![500, 503]).await;
    workflow(
        &admin,
        "won",
        json!({
            "label": {"en": "Won deals"},
            "entity": "wlead",
            "trigger": {"type": "field_changed", "field": "stage", "to": ["won"]},
            "condition": "record.amount >= decimal(\"100\")",
            "steps": [
                {"id": "double", "type": "script", "script": "record.amount * decimal(2)"},
                {"id": "mark", "type": "set_fields",
                 "fields": {"note": "Won {{ record.name }} from {{ old.stage }}; doubled {{ steps.double }}",
                            "touches": {"script": "coalesce(record.touches, 0) + 1"}}},
                {"id": "tell", "type": "webhook", "url": sink.url,
                 "body": {"lead": "{{ record.id }}", "name": "{{ record.name }}", "fixed": 7}}
            ]
        }),
    )
    .await;
    let small = create_lead(
        &admin,
        json!({"name": "Small", "stage": "new", "amount": "50"}),
    )
    .await;
    let big = create_lead(
        &admin,
        json!({"name": "Big", "stage": "new", "amount": "120.50"}),
    )
    .await;
    for lead in [&small, &big] {
        let (status, body) = admin
            .patch(
                &format!("{LEADS}/{}", lead["id"].as_str().expect("id")),
                json!({"fields": {"stage": "won"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Changing something else does not fire it again; steps read the record as it is when
    // they run.
    let (status, _) = admin
        .patch(
            &format!("{LEADS}/{}", big["id"].as_str().expect("id")),
            json!({"fields": {"name": "Big Co"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.run_jobs_until_idle().await;
    let started = runs(&admin, "won").await;
    assert_eq!(started.len(), 1, "{started:?}");
    let done = run(&admin, &started[0]["id"]).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["vars"]["double"], "241.00");
    let (_, record) = admin
        .get(&format!("{LEADS}/{}", big["id"].as_str().expect("id")))
        .await;
    assert_eq!(
        record["fields"]["note"], "Won Big Co from new; doubled 241.00",
        "{record}"
    );
    assert_eq!(record["fields"]["touches"], 1);
    // The first delivery failed; the outbox retries with backoff.
    assert_eq!(sink.received().len(), 1);
    for _ in 0..4 {
        app.advance(Duration::minutes(2));
        app.run_jobs_until_idle().await;
    }
    let received = sink.received();
    assert_eq!(received.len(), 3, "500, 503, then 200: {received:?}");
    assert!(
        received
            .iter()
            .all(|(key, _)| *key == received[0].0 && !key.is_empty()),
        "{received:?}"
    );
    assert_eq!(
        received[2].1,
        json!({"lead": big["id"], "name": "Big Co", "fixed": 7})
    );
    assert_eq!(
        done["vars"]["tell"]["idempotency_key"],
        received[0].0.as_str()
    );
}

/// Writes by workflows start others at most 5 levels deep: a workflow that keeps touching its
/// own record fails clearly at the sixth level, and the rejected write changes nothing.
async fn loops_stop_at_depth_five(backend: Backend) {
    let app = spawn(backend, None).await;
    let admin = app.admin().await;
    entities(&admin).await;
    workflow(
        &admin,
        "echo",
        json!({
            "label": {"en": "Echo"}, "entity": "wlead",
            "trigger": {"type": "record_updated", "fields": ["touches"]},
            "steps": [{"id": "again", "type": "set_fields",
                       "fields": {"touches": {"script": "record.touches + 1"}}}]
        }),
    )
    .await;
    let lead = create_lead(&admin, json!({"name": "Loop", "touches": 0})).await;
    let path = format!("{LEADS}/{}", lead["id"].as_str().expect("id"));
    let (status, _) = admin.patch(&path, json!({"fields": {"touches": 1}})).await;
    assert_eq!(status, StatusCode::OK);
    app.run_jobs_until_idle().await;
    let all = runs(&admin, "echo").await;
    assert_eq!(all.len(), 6, "depths 0..=5: {all:?}");
    let failed: Vec<&Value> = all.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{all:?}");
    assert_eq!(failed[0]["depth"], 5);
    let error = failed[0]["error"].as_str().expect("error");
    assert!(error.contains("at most 5 levels"), "{error}");
    let (_, record) = admin.get(&path).await;
    assert_eq!(
        record["fields"]["touches"], 6,
        "5 workflow writes after the person's: {record}"
    );
}

/// Round-robin within a role (the turn is kept in the database), least-loaded, and a manual
/// start on a selection; a failed step is retried from where it failed.
async fn assignment_manual_and_retry(backend: Backend) {
    let app = spawn(backend, None).await;
    let admin = app.admin().await;
    entities(&admin).await;
    let mut reps = Vec::new();
    for name in ["ann", "bob", "cid"] {
        let (_, id) = join_member(&app, &admin, &format!("{name}@example.com"), "member").await;
        reps.push(id);
    }
    reps.sort();
    workflow(
        &admin,
        "rotate",
        json!({
            "label": {"en": "Rotate"}, "entity": "wlead",
            "trigger": {"type": "record_created"},
            "steps": [{"id": "give", "type": "assign_owner", "strategy": "round_robin", "role": "member"}]
        }),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(create_lead(&admin, json!({"name": format!("L{i}")})).await["id"].clone());
        app.run_jobs_until_idle().await;
    }
    let mut owners = Vec::new();
    for id in &ids {
        let (_, record) = admin
            .get(&format!("{LEADS}/{}", id.as_str().expect("id")))
            .await;
        owners.push(record["owner"].as_str().expect("owner").to_owned());
    }
    assert_eq!(
        owners,
        [
            reps[0].clone(),
            reps[1].clone(),
            reps[2].clone(),
            reps[0].clone()
        ]
    );

    // Least loaded among the three: bob and cid own one lead each, ann two.
    workflow(
        &admin,
        "balance",
        json!({
            "label": {"en": "Balance"}, "entity": "wlead",
            "trigger": {"type": "manual", "roles": ["admin", "member"]},
            "steps": [
                {"id": "give", "type": "assign_owner", "strategy": "least_loaded", "members": reps},
                {"id": "check", "type": "script", "script": "if record.touches == () { throw \"touches missing\" } record.touches"}
            ]
        }),
    )
    .await;
    let (status, body) = admin
        .post(
            &format!("{W}/workflows/balance/runs"),
            json!({"records": [ids[0]]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.run_jobs_until_idle().await;
    let run_id = body["runs"][0]["run"].clone();
    let failed = run(&admin, &run_id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["failed_step"], "check");
    assert!(
        failed["error"]
            .as_str()
            .expect("error")
            .contains("touches missing"),
        "{failed}"
    );
    let (_, record) = admin
        .get(&format!("{LEADS}/{}", ids[0].as_str().expect("id")))
        .await;
    assert_ne!(record["owner"], json!(reps[0]), "moved off the busiest");
    // Fix the record, retry: the assignment is not done twice, the script step runs again.
    let (status, _) = admin
        .patch(
            &format!("{LEADS}/{}", ids[0].as_str().expect("id")),
            json!({"fields": {"touches": 3}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = admin
        .post(
            &format!("{W}/workflow-runs/{}/retry", run_id.as_str().expect("id")),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs_until_idle().await;
    let done = run(&admin, &run_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["vars"]["check"], 3);
    let steps: Vec<(&str, &str)> = done["steps"]
        .as_array()
        .expect("log")
        .iter()
        .map(|s| {
            (
                s["step"].as_str().expect("s"),
                s["status"].as_str().expect("st"),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("give", "succeeded"),
            ("check", "failed"),
            ("check", "succeeded")
        ]
    );
    let (status, body) = admin
        .post(
            &format!("{W}/workflow-runs/{}/retry", run_id.as_str().expect("id")),
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);

    // A role the trigger does not allow; a workflow that is not manual; an unknown record.
    let (viewer, _) = join_member(&app, &admin, "vic@example.com", "viewer").await;
    let (status, body) = viewer
        .post(
            &format!("{W}/workflows/balance/runs"),
            json!({"records": [ids[1]]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = admin
        .post(
            &format!("{W}/workflows/rotate/runs"),
            json!({"records": [ids[1]]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = admin
        .post(
            &format!("{W}/workflows/balance/runs"),
            json!({"records": ["0190c0de-0000-7000-8000-000000000000"]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
}

/// "Remind the owner 30 days before a contract ends": planned on create, re-planned when the
/// date moves, fired once, cancelled when the record goes; a cron schedule in the workspace
/// time zone fires on time and plans the next occurrence.
async fn dates_and_schedules(backend: Backend) {
    let app = spawn(backend, None).await;
    let admin = app.admin().await;
    entities(&admin).await;
    workflow(
        &admin,
        "renewal",
        json!({
            "label": {"en": "Renewal"}, "entity": "wlead",
            "trigger": {"type": "date", "field": "ends", "before": "P30D", "at": "10:00"},
            "steps": [{"id": "tell", "type": "notify", "to": ["owner"], "title": "{{ record.name }} ends {{ record.ends }}"}]
        }),
    )
    .await;
    let today = chrono::Utc::now().date_naive() + Duration::days(0);
    let _ = today;
    let now = app.services.clock().now();
    let ends = |days: i64| (now + Duration::days(days)).format("%Y-%m-%d").to_string();
    let kept = create_lead(&admin, json!({"name": "Kept", "ends": ends(40)})).await;
    let moved = create_lead(&admin, json!({"name": "Moved", "ends": ends(40)})).await;
    let gone = create_lead(&admin, json!({"name": "Gone", "ends": ends(40)})).await;
    let (status, _) = admin
        .patch(
            &format!("{LEADS}/{}", moved["id"].as_str().expect("id")),
            json!({"fields": {"ends": ends(60)}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = admin
        .delete(&format!("{LEADS}/{}", gone["id"].as_str().expect("id")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.run_jobs_until_idle().await;
    assert!(runs(&admin, "renewal").await.is_empty());
    app.advance(Duration::days(11));
    app.run_jobs_until_idle().await;
    let fired = runs(&admin, "renewal").await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0]["record_id"], kept["id"]);
    assert_eq!(fired[0]["status"], "completed");
    app.advance(Duration::days(20));
    app.run_jobs_until_idle().await;
    let fired = runs(&admin, "renewal").await;
    assert_eq!(
        fired.len(),
        2,
        "the moved one fires at its new date: {fired:?}"
    );
    app.advance(Duration::days(40));
    app.run_jobs_until_idle().await;
    assert_eq!(runs(&admin, "renewal").await.len(), 2, "each fires once");

    workflow(
        &admin,
        "daily",
        json!({
            "label": {"en": "Daily digest"},
            "trigger": {"type": "schedule", "cron": "30 8 * * *"},
            "steps": [{"id": "count", "type": "script", "script": "today()"}]
        }),
    )
    .await;
    app.run_jobs_until_idle().await;
    assert!(runs(&admin, "daily").await.is_empty());
    app.advance(Duration::hours(25));
    app.run_jobs_until_idle().await;
    let daily = runs(&admin, "daily").await;
    assert_eq!(daily.len(), 1, "{daily:?}");
    assert_eq!(daily[0]["status"], "completed");
    app.advance(Duration::hours(24));
    app.run_jobs_until_idle().await;
    assert_eq!(
        runs(&admin, "daily").await.len(),
        2,
        "the next occurrence was planned"
    );
}

/// Invalid definitions are refused at save with a JSON pointer (and line and column for
/// scripts and templates); nothing is saved. Removing a field a workflow reads is refused.
async fn bad_definitions_are_refused(backend: Backend) {
    let app = spawn(backend, None).await;
    let admin = app.admin().await;
    entities(&admin).await;
    let base = |steps: Value| json!({"label": {"en": "Bad"}, "entity": "wlead", "trigger": {"type": "record_created"}, "steps": steps});
    let cases = [
        (
            base(json!([{"id": "a", "type": "teleport"}])),
            "/document/steps/0/type",
        ),
        (
            json!({"label": {"en": "Bad"}, "trigger": {"type": "schedule", "cron": "61 * * * *"},
                "steps": [{"id": "a", "type": "script", "script": "1"}]}),
            "/document/trigger/cron",
        ),
        (
            json!({"label": {"en": "Bad"}, "entity": "wlead", "trigger": {"type": "record_created"},
                "condition": "record.amount >", "steps": [{"id": "a", "type": "script", "script": "1"}]}),
            "/document/condition",
        ),
        (
            base(json!([{"id": "a", "type": "notify", "to": ["owner"], "title": "{% if %}"}])),
            "/document/steps/0/title",
        ),
        (
            base(
                json!([{"id": "a", "type": "notify", "to": ["owner"], "title": {"en": "Hi", "zh-CN": "{{ record.name "}}]),
            ),
            "/document/steps/0/title/zh-CN",
        ),
        (
            base(json!([{"id": "a", "type": "notify", "to": ["owner"], "title": {"fr": "Salut"}}])),
            "/document/steps/0/title",
        ),
        (
            base(
                json!([{"id": "a", "type": "branch", "cases": [{"when": "true", "goto": "nowhere"}]}]),
            ),
            "/document/steps/0/cases/0/goto",
        ),
        (
            base(json!([{"id": "a", "type": "set_fields", "fields": {"missing": 1}}])),
            "/document/steps/0/fields/missing",
        ),
        (
            base(json!([{"id": "a", "type": "wait", "duration": "P1DT2H", "working_days": true}])),
            "/document/steps/0/duration",
        ),
        (
            base(
                json!([{"id": "a", "type": "assign_owner", "strategy": "round_robin", "role": "nobody"}]),
            ),
            "/document/steps/0/role",
        ),
    ];
    for (document, pointer) in cases {
        let (status, body) = publish_definition(&admin, "workflow", "bad", document).await;
        let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(pointers.iter().any(|p| p == pointer), "{pointer} in {body}");
        if pointer == "/document/condition" {
            let located = body["errors"].as_array().expect("errors").iter().any(|e| {
                e["pointer"] == pointer && e["line"].is_number() && e["column"].is_number()
            });
            assert!(located, "{body}");
        }
    }
    let (status, _) = admin.get(&format!("{W}/definitions/workflow/bad")).await;
    // Drafts that failed validation are not saved; the role check runs at publish, after the
    // draft was saved.
    assert!(status == StatusCode::NOT_FOUND || status == StatusCode::OK);
    let (_, listed) = admin.get(&format!("{W}/workflow-runs")).await;
    assert_eq!(listed, json!([]));

    // A workflow reading `note`: removing the field from the entity is refused, naming it.
    workflow(
        &admin,
        "reads_note",
        json!({"label": {"en": "Reads note"}, "entity": "wlead", "trigger": {"type": "record_created"},
               "condition": "record.note != ()",
               "steps": [{"id": "a", "type": "script", "script": "1"}]}),
    )
    .await;
    let (_, current) = admin.get(&format!("{W}/definitions/entity/wlead")).await;
    let mut document = current["published"].clone();
    document["properties"]
        .as_object_mut()
        .expect("props")
        .remove("note");
    let (status, body) = publish_entity(&admin, "wlead", document).await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        pointers
            .iter()
            .any(|p| p.starts_with("/dependents/workflow/reads_note")),
        "{body}"
    );
}

both_databases!(
    follow_up_reminder,
    won_deals_call_a_webhook,
    loops_stop_at_depth_five,
    assignment_manual_and_retry,
    dates_and_schedules,
    bad_definitions_are_refused,
    the_sales_crm_workflows,
    versions_and_the_rest,
    failing_deliveries_block_nothing,
    texts_follow_each_recipients_language,
);

/// A notification written in two languages reaches each person in theirs, in the app and by
/// email; a person with no language set gets English.
async fn texts_follow_each_recipients_language(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = spawn(backend, Some(&smtp)).await;
    let admin = app.admin().await;
    entities(&admin).await;
    let (english, ann) = join_member(&app, &admin, "ann@example.com", "member").await;
    let (chinese, li) = join_member(&app, &admin, "li@example.com", "member").await;
    // Li never picks a language: signing in from a Chinese browser makes it theirs.
    common::PageClient::sign_in(&app, "li@example.com", "user-password-123", "zh-CN").await;
    workflow(
        &admin,
        "welcome",
        json!({
            "label": {"en": "Welcome", "zh-CN": "欢迎"},
            "entity": "wlead",
            "trigger": {"type": "record_created"},
            "steps": [
                {"id": "tell", "type": "notify", "to": [format!("user:{ann}"), format!("user:{li}")],
                 "channels": ["in_app", "email"],
                 "title": {"en": "New lead {{ record.name }}", "zh-CN": "新线索 {{ record.name }}"},
                 "body": {"en": "Call {{ record.name }} today.", "zh-CN": "请今天联系 {{ record.name }}。"}}
            ]
        }),
    )
    .await;
    create_lead(&admin, json!({"name": "Acme", "stage": "new"})).await;
    app.run_jobs_until_idle().await;
    let title_of = |client: Client| async move {
        let (_, inbox) = client.get(&format!("{W}/notifications")).await;
        (
            inbox["notifications"][0]["title"].clone(),
            inbox["notifications"][0]["body"].clone(),
        )
    };
    assert_eq!(
        title_of(english).await,
        (json!("New lead Acme"), json!("Call Acme today."))
    );
    assert_eq!(
        title_of(chinese).await,
        (json!("新线索 Acme"), json!("请今天联系 Acme。"))
    );
    let mail = smtp.messages().join("\n----\n");
    // Each address gets its own language (the Chinese subject is MIME-encoded, the body is not).
    let to_li = smtp
        .messages()
        .into_iter()
        .find(|m| m.contains("To: li@example.com"))
        .unwrap_or_default();
    assert!(to_li.contains("请今天联系 Acme。"), "{mail}");
    let to_ann = smtp
        .messages()
        .into_iter()
        .find(|m| m.contains("To: ann@example.com"))
        .unwrap_or_default();
    assert!(
        to_ann.contains("Subject: New lead Acme") && to_ann.contains("Call Acme today."),
        "{mail}"
    );
    let started = runs(&admin, "welcome").await;
    let done = run(&admin, &started[0]["id"]).await;
    let input = &done["steps"][0]["input"];
    assert_eq!(input["title"]["zh-CN"], "新线索 Acme", "{done}");
    assert_eq!(input["title"]["en"], "New lead Acme", "{done}");
    assert_eq!(
        done["steps"][0]["output"]["channels"]["in_app"]["notified"], 2,
        "{done}"
    );
}

/// The Sales CRM's own workflows: a follow-up stamps its customer and moves the customer's
/// 14-day reminder; a signed deal marks the customer signed and tells the manager; a quote with
/// 20% off waits for the owner's manager, who approves it.
async fn the_sales_crm_workflows(backend: Backend) {
    let app = spawn(backend, None).await;
    let admin = app.admin().await;
    let (rep, rep_id) = join_member(&app, &admin, "rep@example.com", "member").await;
    let (mgr, mgr_id) = join_member(&app, &admin, "boss@example.com", "manager").await;
    let (status, body) = admin
        .patch(
            &format!("{W}/members/{rep_id}"),
            json!({"manager_id": mgr_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, customer) = rep
        .post(
            &format!("{W}/entities/customer/records"),
            json!({"fields": {"name": "Acme", "lifecycle_stage": "intent"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    let customer_id = customer["id"].as_str().expect("id").to_owned();
    let followed_at = app.services.clock().now().to_rfc3339();
    let (status, body) = rep
        .post(&format!("{W}/entities/follow_up/records"), json!({"fields": {
            "subject": "Intro call", "customer": customer_id, "way": "call", "followed_at": followed_at}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.run_jobs_until_idle().await;
    let (_, stamped) = rep
        .get(&format!("{W}/entities/customer/records/{customer_id}"))
        .await;
    assert!(
        stamped["fields"]["last_follow_up_at"].is_string(),
        "{stamped}"
    );
    app.advance(Duration::days(14) + Duration::minutes(1));
    app.run_jobs_until_idle().await;
    let (_, inbox) = rep.get(&format!("{W}/notifications")).await;
    assert!(
        inbox["notifications"]
            .as_array()
            .expect("n")
            .iter()
            // The rep chose no language: the English text of the bilingual reminder.
            .any(|n| n["title"] == "Acme (tier C) not followed up for 14 days"),
        "{inbox}"
    );

    let (status, deal) = rep
        .post(&format!("{W}/entities/opportunity/records"), json!({"fields": {
            "name": "Acme rollout", "customer": customer_id, "stage": "proposal", "amount": "50000"}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{deal}");
    let deal_id = deal["id"].as_str().expect("id").to_owned();
    let (status, quote) = rep
        .post(
            &format!("{W}/entities/quote/records"),
            json!({"fields": {
            "name": "Acme Q1", "opportunity": deal_id, "amount": "48000", "discount": 20}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{quote}");
    app.run_jobs_until_idle().await;
    let quote_id = quote["id"].as_str().expect("id").to_owned();
    let (_, pending) = mgr.get(&format!("{W}/approvals?box=pending")).await;
    let approval = pending
        .as_array()
        .expect("approvals")
        .iter()
        .find(|a| a["record_id"] == quote_id.as_str())
        .cloned()
        .expect("the manager is asked");
    let (status, body) = mgr
        .post(
            &format!(
                "{W}/approvals/{}/actions",
                approval["id"].as_str().expect("id")
            ),
            json!({"action": "approve", "comment": "ok for Q1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs_until_idle().await;
    let (_, quote) = rep
        .get(&format!("{W}/entities/quote/records/{quote_id}"))
        .await;
    assert_eq!(quote["fields"]["status"], "approved", "{quote}");
    assert_eq!(quote["fields"]["approval_note"], "ok for Q1");

    let (status, body) = rep
        .patch(
            &format!("{W}/entities/opportunity/records/{deal_id}"),
            json!({"fields": {"stage": "contract_signed"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs_until_idle().await;
    let (_, signed) = rep
        .get(&format!("{W}/entities/customer/records/{customer_id}"))
        .await;
    assert_eq!(signed["fields"]["lifecycle_stage"], "signed", "{signed}");
    let (_, inbox) = mgr.get(&format!("{W}/notifications")).await;
    assert!(
        inbox["notifications"]
            .as_array()
            .expect("n")
            .iter()
            .any(|n| n["title"] == "Signed: Acme rollout (50000.00 CNY)"),
        "{inbox}"
    );
}

/// A run keeps the version it started with; a disabled workflow starts nothing but its waiting
/// runs go on; a delete trigger; waiting until a date read from the record; assignment by rule;
/// a branch that loops forever stops at the step budget with a clear error.
async fn versions_and_the_rest(backend: Backend) {
    let app = spawn(backend, None).await;
    let admin = app.admin().await;
    entities(&admin).await;
    let (_, me) = admin.get("/api/v1/account").await;
    let admin_id = me["account"]["id"].as_str().expect("id").to_owned();
    let flow = |note: &str, enabled: bool| {
        json!({
            "label": {"en": "Versioned"}, "entity": "wlead", "enabled": enabled,
            "trigger": {"type": "record_created"},
            "steps": [
                {"id": "hold", "type": "wait", "until": "{{ record.ends }}"},
                {"id": "mark", "type": "set_fields", "fields": {"note": note}},
                {"id": "own", "type": "assign_owner", "strategy": "rule",
                 "script": format!("if record.touches == 7 {{ \"{admin_id}\" }} else {{ () }}")}
            ]
        })
    };
    workflow(&admin, "versioned", flow("version one", true)).await;
    let now = app.services.clock().now();
    let in_two_days = (now + Duration::days(2)).format("%Y-%m-%d").to_string();
    let first = create_lead(
        &admin,
        json!({"name": "V1", "ends": in_two_days, "touches": 7}),
    )
    .await;
    app.run_jobs_until_idle().await;
    // Version two, disabled: the waiting run still finishes with version one's steps.
    workflow(&admin, "versioned", flow("version two", false)).await;
    let second = create_lead(&admin, json!({"name": "V2", "ends": in_two_days})).await;
    app.advance(Duration::days(3));
    app.run_jobs_until_idle().await;
    let all = runs(&admin, "versioned").await;
    assert_eq!(all.len(), 1, "the disabled version starts nothing: {all:?}");
    assert_eq!(all[0]["version"], 1);
    assert_eq!(all[0]["status"], "completed", "{all:?}");
    let (_, record) = admin
        .get(&format!("{LEADS}/{}", first["id"].as_str().expect("id")))
        .await;
    assert_eq!(record["fields"]["note"], "version one");
    assert_eq!(record["owner"], admin_id.as_str());
    let _ = second;

    // A delete starts a run that sees the record as it was.
    workflow(
        &admin,
        "gone",
        json!({"label": {"en": "Gone"}, "entity": "wlead", "trigger": {"type": "record_deleted"},
               "steps": [{"id": "say", "type": "script", "script": "\"deleted \" + old.name"}]}),
    )
    .await;
    let doomed = create_lead(&admin, json!({"name": "Doomed"})).await;
    let (status, _) = admin
        .delete(&format!("{LEADS}/{}", doomed["id"].as_str().expect("id")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.run_jobs_until_idle().await;
    let gone = runs(&admin, "gone").await;
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0]["vars"]["say"], "deleted Doomed", "{gone:?}");

    // A step right after a create sees the new record's id.
    workflow(
        &admin,
        "chain",
        json!({"label": {"en": "Chain"}, "entity": "wlead", "trigger": {"type": "manual"},
               "steps": [
                   {"id": "made", "type": "create_record", "entity": "wtask", "fields": {"title": "t", "lead": "{{ record.id }}"}},
                   {"id": "seen", "type": "script", "script": "steps.made.id"}]}),
    )
    .await;
    let (status, body) = admin
        .post(
            &format!("{W}/workflows/chain/runs"),
            json!({"records": [first["id"]]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.run_jobs_until_idle().await;
    let chained = run(&admin, &body["runs"][0]["run"]).await;
    assert_eq!(chained["status"], "completed", "{chained}");
    assert!(chained["vars"]["seen"].is_string(), "{chained}");
    assert_eq!(
        chained["vars"]["seen"], chained["vars"]["made"]["id"],
        "{chained}"
    );

    // A branch back to itself runs until the step budget, then fails clearly.
    workflow(
        &admin,
        "spin",
        json!({"label": {"en": "Spin"}, "entity": "wlead", "trigger": {"type": "manual"},
               "steps": [{"id": "again", "type": "branch", "cases": [{"when": "true", "goto": "again"}]}]}),
    )
    .await;
    let (status, body) = admin
        .post(
            &format!("{W}/workflows/spin/runs"),
            json!({"records": [first["id"]]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.run_jobs_until_idle().await;
    let spun = run(&admin, &body["runs"][0]["run"]).await;
    assert_eq!(spun["status"], "failed", "{}", spun["error"]);
    assert!(
        spun["error"].as_str().expect("error").contains("loops"),
        "{}",
        spun["error"]
    );
}

/// Deliveries that cannot go out — a webhook receiver that refuses the connection, an SMTP
/// server that is down — are retried with backoff and logged on their jobs, and never hold up
/// the runs: each run completes at once, and the next one too.
async fn failing_deliveries_block_nothing(backend: Backend) {
    let closed = common::free_port();
    let app = TestApp::spawn_with(
        backend,
        Options {
            smtp_url: Some(format!("smtp://127.0.0.1:{closed}")),
            ..Options::default()
        },
    )
    .await;
    let admin = app.admin().await;
    entities(&admin).await;
    workflow(
        &admin,
        "noisy",
        json!({
            "label": {"en": "Noisy"}, "entity": "wlead", "trigger": {"type": "record_created"},
            "steps": [
                {"id": "hook", "type": "webhook", "url": format!("http://127.0.0.1:{closed}/hook")},
                {"id": "mail", "type": "notify", "to": ["owner"], "channels": ["in_app", "email"], "title": "New {{ record.name }}"},
                {"id": "done", "type": "set_fields", "fields": {"note": "done"}}
            ]
        }),
    )
    .await;
    let one = create_lead(&admin, json!({"name": "One"})).await;
    let two = create_lead(&admin, json!({"name": "Two"})).await;
    app.run_jobs_until_idle().await;
    for lead in [&one, &two] {
        let (_, record) = admin
            .get(&format!("{LEADS}/{}", lead["id"].as_str().expect("id")))
            .await;
        assert_eq!(record["fields"]["note"], "done", "{record}");
    }
    let all = runs(&admin, "noisy").await;
    assert!(all.iter().all(|r| r["status"] == "completed"), "{all:?}");
    let (_, jobs) = admin.get(&format!("{W}/jobs?limit=100")).await;
    let deliveries: Vec<&Value> = jobs
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["kind"] == "outbox.webhook" || j["kind"] == "outbox.email")
        .collect();
    assert_eq!(deliveries.len(), 4, "{jobs}");
    for job in deliveries {
        assert_eq!(job["status"], "queued", "waiting to be retried: {job}");
        assert_eq!(job["attempts"], 1, "{job}");
        assert!(
            job["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{job}"
        );
    }
}
