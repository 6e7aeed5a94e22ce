//! Records through the HTTP API, on SQLite and PostgreSQL: create, read, change with optimistic
//! concurrency, validation of every kind, batches, uniqueness, references and delete
//! behaviours, trash, history.

mod common;

use common::{Backend, Client, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

const LEADS: &str = "/api/v1/w/demo/entities/lead/records";

async fn create(client: &Client, path: &str, fields: Value) -> Value {
    let (status, body) = client.post(path, json!({ "fields": fields })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn count(client: &Client, entity: &str) -> i64 {
    let (status, body) = client
        .post(
            &format!("/api/v1/w/demo/entities/{entity}/records/query"),
            json!({"total": "exact", "limit": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["total"].as_i64().expect("total")
}

/// Publishes an entity (draft, then version) in the demo workspace.
pub async fn publish_entity(client: &Client, key: &str, document: Value) -> Value {
    let (status, body) = client
        .put(
            &format!("/api/v1/w/demo/definitions/entity/{key}/draft"),
            json!({ "document": document }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let revision = body["revision"].clone();
    let (status, body) = client
        .post(
            &format!("/api/v1/w/demo/definitions/entity/{key}/versions"),
            json!({ "revision": revision }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn crud_round_trip_with_history(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let before = count(&admin, "lead").await;
    let lead = create(
        &admin,
        LEADS,
        json!({"name": "张伟", "company": "杭州云帆科技有限公司", "source": "referral",
               "budget": "128000.5", "email": "Zhang.Wei@Yunfan.CN"}),
    )
    .await;
    assert_eq!(lead["version"], 1);
    assert_eq!(lead["fields"]["budget"], "128000.50");
    assert_eq!(lead["fields"]["email"], "zhang.wei@yunfan.cn");
    assert_eq!(lead["fields"]["status"], "new", "x-default applies");
    let id = lead["id"].as_str().expect("id").to_owned();
    let path = format!("{LEADS}/{id}");

    let (status, got) = admin.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, lead);

    let (status, changed) = admin
        .patch(
            &path,
            json!({"fields": {"status": "contacted", "budget": null}, "version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["version"], 2);
    assert_eq!(changed["fields"]["status"], "contacted");
    assert!(changed["fields"].get("budget").is_none(), "null clears");

    let (status, body) = admin
        .patch(
            &path,
            json!({"fields": {"status": "qualified"}, "version": 1}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::CONFLICT),
        ["/version"]
    );
    let (_, still) = admin.get(&path).await;
    assert_eq!(still["fields"]["status"], "contacted");

    let (status, history) = admin.get(&format!("{path}/history")).await;
    assert_eq!(status, StatusCode::OK);
    let operations: Vec<&str> = history
        .as_array()
        .expect("list")
        .iter()
        .map(|h| h["operation"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(operations, ["create", "update"]);
    assert_eq!(history[1]["channel"], "ui");
    assert_eq!(
        history[1]["changes"]["fields"]["budget"],
        json!({"old": "128000.50", "new": null})
    );
    assert_eq!(
        history[1]["changes"]["fields"]["status"],
        json!({"old": "new", "new": "contacted"})
    );

    let (status, _) = admin.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(count(&admin, "lead").await, before);
    let (status, trash) = admin
        .post(&format!("{LEADS}/query"), json!({"deleted": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        trash["records"]
            .as_array()
            .expect("list")
            .iter()
            .any(|r| r["id"] == id.as_str())
    );
    let (status, restored) = admin.post(&format!("{path}/restore"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["fields"]["status"], "contacted");

    let (status, body) = admin.delete(&format!("{path}?purge=true")).await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    admin.delete(&path).await;
    let (status, _) = admin.delete(&format!("{path}?purge=true")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin.get(&format!("{path}?deleted=true")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn invalid_records_are_refused_with_pointers_and_write_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let before = count(&admin, "lead").await;
    let cases = [
        (
            json!({"name": "A", "source": "referral", "ghost": 1}),
            "/fields/ghost",
        ),
        (json!({"name": "A", "source": "nope"}), "/fields/source"),
        (
            json!({"name": "A", "source": "referral", "budget": -1}),
            "/fields/budget",
        ),
        (
            json!({"name": "A", "source": "referral", "budget": "1.234"}),
            "/fields/budget",
        ),
        (
            json!({"name": "A", "source": "referral", "email": "not-an-email"}),
            "/fields/email",
        ),
        (json!({"name": 7, "source": "referral"}), "/fields/name"),
        (json!({"source": "referral"}), "/fields/name"),
        (
            json!({"name": "A", "source": "referral", "next_follow_up_date": "2026-02-30"}),
            "/fields/next_follow_up_date",
        ),
        (
            json!({"name": "x".repeat(101), "source": "referral"}),
            "/fields/name",
        ),
    ];
    for (fields, pointer) in cases {
        let (status, body) = admin.post(LEADS, json!({ "fields": fields })).await;
        let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(pointers.iter().any(|p| p == pointer), "{fields}: {body}");
    }
    let (status, body) = admin
        .post(LEADS, json!({"fields": {"name": "A"}, "extra": 1}))
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = admin
        .post(
            "/api/v1/w/demo/entities/ghost/records",
            json!({"fields": {}}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(count(&admin, "lead").await, before);
}

async fn batches_are_all_or_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let before = count(&admin, "lead").await;
    let mut records: Vec<Value> = (0..1000)
        .map(|i| json!({"fields": {"name": format!("Lead {i}"), "source": "ads", "budget": i}}))
        .collect();
    records[700] = json!({"fields": {"name": "bad", "source": "ads", "budget": "x"}});
    let (status, body) = admin
        .post(
            &format!("{LEADS}/batch"),
            json!({ "records": records.clone() }),
        )
        .await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointers, ["/records/700/fields/budget"]);
    assert_eq!(count(&admin, "lead").await, before);
    records[700] = json!({"fields": {"name": "good", "source": "ads"}});
    let (status, body) = admin
        .post(&format!("{LEADS}/batch"), json!({ "records": records }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["records"].as_array().map(Vec::len), Some(1000));
    assert_eq!(count(&admin, "lead").await, before + 1000);
}

fn member_entity() -> Value {
    json!({
        "type": "object",
        "x-label": {"en": "Member"},
        "required": ["email"],
        "properties": {
            "email": {"type": "string", "x-kind": "email", "x-label": {"en": "Email"}, "x-unique": true},
            "code": {"type": "string", "x-kind": "auto_number", "x-label": {"en": "Code"},
                     "x-auto-number": {"pattern": "M-{yyyy}-{0000}"}},
            "level": {"type": "integer", "minimum": 1, "maximum": 5, "x-kind": "integer", "x-label": {"en": "Level"}}
        }
    })
}

async fn unique_values_and_auto_numbers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    publish_entity(&admin, "member", member_entity()).await;
    let path = "/api/v1/w/demo/entities/member/records";
    let first = create(&admin, path, json!({"email": "a@x.cn", "level": 2})).await;
    let year = chrono::Utc::now().format("%Y").to_string();
    assert_eq!(first["fields"]["code"], format!("M-{year}-0001"));
    let (status, body) = admin
        .post(path, json!({"fields": {"email": "A@X.cn"}}))
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::CONFLICT),
        ["/fields/email"]
    );
    let (status, body) = admin
        .post(path, json!({"fields": {"email": "b@x.cn", "code": "M-1"}}))
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/code"]
    );
    let second = create(&admin, path, json!({"email": "b@x.cn"})).await;
    // The refused writes rolled their counter back with them: no repeat, and here no gap.
    assert_eq!(second["fields"]["code"], format!("M-{year}-0002"));
    let (status, body) = admin
        .post(
            &format!("{path}/batch"),
            json!({"records": [{"fields": {"email": "c@x.cn"}}, {"fields": {"email": "c@x.cn"}}]}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::CONFLICT),
        ["/records/1/fields/email"]
    );
    // A deleted record's value is free again; restoring it while taken is a conflict.
    let first_path = format!("{path}/{}", first["id"].as_str().expect("id"));
    admin.delete(&first_path).await;
    create(&admin, path, json!({"email": "a@x.cn"})).await;
    let (status, body) = admin
        .post(&format!("{first_path}/restore"), json!({}))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (status, body) = admin
        .patch(
            &format!("{path}/{}", second["id"].as_str().expect("id")),
            json!({"fields": {"email": "a@x.cn"}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::CONFLICT),
        ["/fields/email"]
    );
    // A batch clashing with a stored record names the record of the batch.
    let (status, body) = admin
        .post(
            &format!("{path}/batch"),
            json!({"records": [{"fields": {"email": "new@x.cn"}}, {"fields": {"email": "a@x.cn"}}]}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::CONFLICT),
        ["/records/1/fields/email"]
    );
}

async fn references_restrict_set_null_and_cascade(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let base = "/api/v1/w/demo/entities";
    let customer = create(
        &admin,
        &format!("{base}/customer/records"),
        json!({"name": "云帆科技", "lifecycle_stage": "intent"}),
    )
    .await;
    let customer_id = customer["id"].as_str().expect("id").to_owned();
    let (status, body) = admin
        .post(
            &format!("{base}/contact/records"),
            json!({"fields": {"name": "李娜", "customer": uuid::Uuid::now_v7()}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/customer"]
    );
    let contact = create(
        &admin,
        &format!("{base}/contact/records"),
        json!({"name": "李娜", "customer": customer_id}),
    )
    .await;
    let opportunity = create(
        &admin,
        &format!("{base}/opportunity/records"),
        json!({"name": "ERP 升级", "customer": customer_id, "stage": "proposal", "amount": 560000}),
    )
    .await;
    let follow_up = create(
        &admin,
        &format!("{base}/follow_up/records"),
        json!({"subject": "报价沟通", "customer": customer_id, "opportunity": opportunity["id"],
               "way": "call", "followed_at": "2026-11-20T10:00:00+08:00"}),
    )
    .await;
    assert_eq!(
        follow_up["fields"]["followed_at"],
        "2026-11-20T02:00:00.000Z"
    );
    let customer_path = format!("{base}/customer/records/{customer_id}");
    // The opportunity restricts deleting its customer.
    let (status, body) = admin.delete(&customer_path).await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    // Deleting the opportunity clears the follow-up's reference (set_null), with history.
    let opportunity_path = format!(
        "{base}/opportunity/records/{}",
        opportunity["id"].as_str().expect("id")
    );
    let (status, _) = admin.delete(&opportunity_path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let follow_up_path = format!(
        "{base}/follow_up/records/{}",
        follow_up["id"].as_str().expect("id")
    );
    let (_, cleared) = admin.get(&follow_up_path).await;
    assert!(cleared["fields"].get("opportunity").is_none(), "{cleared}");
    assert_eq!(cleared["version"], 2);
    // Now the customer can go, and its contacts and follow-ups go with it (cascade)…
    let (status, _) = admin.delete(&customer_path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let contact_path = format!(
        "{base}/contact/records/{}",
        contact["id"].as_str().expect("id")
    );
    assert_eq!(admin.get(&contact_path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(admin.get(&follow_up_path).await.0, StatusCode::NOT_FOUND);
    // …and come back with it.
    let (status, body) = admin
        .post(&format!("{customer_path}/restore"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(admin.get(&contact_path).await.0, StatusCode::OK);
    assert_eq!(admin.get(&follow_up_path).await.0, StatusCode::OK);
    let (_, history) = admin.get(&format!("{contact_path}/history")).await;
    let operations: Vec<&str> = history
        .as_array()
        .expect("list")
        .iter()
        .map(|h| h["operation"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(operations, ["create", "delete", "restore"]);
}

async fn viewers_read_and_other_workspaces_see_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let lead = create(&admin, LEADS, json!({"name": "王芳", "source": "event"})).await;
    let path = format!("{LEADS}/{}", lead["id"].as_str().expect("id"));
    let viewer = app.create_user("viewer@formwork.local").await;
    let (status, body) = admin
        .post(
            "/api/v1/w/demo/members",
            json!({"email": "viewer@formwork.local", "role": "viewer"}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    assert_eq!(viewer.get(&path).await.0, StatusCode::OK);
    let (status, body) = viewer.patch(&path, json!({"fields": {"name": "x"}})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    // A role change applies to the very next request (access is cached for a moment, and
    // every change of a membership invalidates it).
    for (role, expected) in [
        ("manager", StatusCode::OK),
        ("viewer", StatusCode::FORBIDDEN),
        // A member sees only their own records: the admin's lead is not found.
        ("member", StatusCode::NOT_FOUND),
    ] {
        let (status, body) = admin
            .post(
                "/api/v1/w/demo/members",
                json!({"email": "viewer@formwork.local", "role": role}),
            )
            .await;
        assert!(status.is_success(), "{body}");
        let (status, body) = viewer
            .patch(&path, json!({"fields": {"name": "王芳芳"}}))
            .await;
        assert_eq!(status, expected, "as {role}: {body}");
    }
    let outsider = app.create_user("outsider@formwork.local").await;
    let (status, body) = outsider.get(&path).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = admin
        .post(
            "/api/v1/account/workspaces",
            json!({"slug": "east", "name": "East"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = admin
        .get(&format!(
            "/api/v1/w/east/entities/lead/records/{}",
            lead["id"].as_str().expect("id")
        ))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = admin.get(&format!("{LEADS}/not-a-uuid")).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
}

/// Concurrent writers share transactions on SQLite (group commit): a clash in one must cost
/// the others nothing, and no change may be lost or half-written.
async fn concurrent_writes_lose_nothing_and_clashes_stay_alone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = std::sync::Arc::new(app.admin().await);
    publish_entity(&admin, "member", member_entity()).await;
    let path = "/api/v1/w/demo/entities/member/records";
    // 24 creates at once over 8 emails: one of each three wins.
    let creates = (0..24).map(|i| {
        let admin = admin.clone();
        async move {
            admin
                .post(
                    path,
                    json!({"fields": {"email": format!("m{}@x.cn", i % 8), "level": 1}}),
                )
                .await
        }
    });
    let answers = futures::future::join_all(creates).await;
    let mut created = Vec::new();
    for (status, body) in answers {
        match status {
            StatusCode::CREATED => created.push(body),
            StatusCode::CONFLICT => {
                assert_eq!(
                    assert_problem(status, &body, StatusCode::CONFLICT),
                    ["/fields/email"]
                );
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created.len(), 8);
    let mut codes: Vec<&str> = created
        .iter()
        .map(|r| r["fields"]["code"].as_str().expect("code"))
        .collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), 8, "auto-numbers are never repeated");
    let (status, listed) = admin.get(&format!("{path}?total=exact")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["total"], 8, "{listed}");
    // 20 changes of one record at once, without versions: every one lands, in some order.
    let target = format!("{path}/{}", created[0]["id"].as_str().expect("id"));
    let patches = (0..20).map(|i| {
        let (admin, target) = (admin.clone(), target.clone());
        async move {
            admin
                .patch(&target, json!({"fields": {"level": 1 + (i % 2) * 4 }}))
                .await
        }
    });
    let mut changed = 0;
    for (status, body) in futures::future::join_all(patches).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        changed += 1;
    }
    assert_eq!(changed, 20);
    let (_, record) = admin.get(&target).await;
    let (_, history) = admin.get(&format!("{target}/history")).await;
    let entries = history.as_array().expect("history");
    let version = record["version"].as_i64().expect("version");
    // One history entry per version: the create and each change that changed something.
    assert_eq!(entries.len() as i64, version, "{history}");
    assert_eq!(entries[0]["operation"], "create");
    for created in &created {
        let (_, history) = admin
            .get(&format!(
                "{path}/{}/history",
                created["id"].as_str().expect("id")
            ))
            .await;
        assert!(
            history
                .as_array()
                .is_some_and(|h| !h.is_empty() && h[0]["operation"] == "create"),
            "{history}"
        );
    }
}

both_databases!(
    crud_round_trip_with_history,
    concurrent_writes_lose_nothing_and_clashes_stay_alone,
    invalid_records_are_refused_with_pointers_and_write_nothing,
    batches_are_all_or_nothing,
    unique_values_and_auto_numbers,
    references_restrict_set_null_and_cascade,
    viewers_read_and_other_workspaces_see_nothing,
);
