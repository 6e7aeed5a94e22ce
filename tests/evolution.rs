//! Lossless evolution of entities with stored records, on SQLite and PostgreSQL: adding,
//! relabelling, hiding and removing fields keeps every value; the dry-run lists what a kind
//! change or a new requirement would affect; publishing converts what converts and keeps the
//! rest under the record's `unconverted` marker and in its history.

mod common;

use common::{Backend, Client, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ACCOUNTS: &str = "/api/v1/w/demo/entities/account/records";

fn account_v1() -> Value {
    json!({
        "type": "object",
        "x-label": {"en": "Account"},
        "x-title-field": "name",
        "properties": {
            "name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}},
            "region": {"type": "string", "x-kind": "text", "x-label": {"en": "Region"}},
            "budget": {"type": "string", "x-kind": "text", "x-label": {"en": "Budget"}},
            "notes": {"type": "string", "x-kind": "long_text", "x-label": {"en": "Notes"}}
        }
    })
}

async fn save_draft(client: &Client, document: Value) -> Value {
    let (status, current) = client
        .get("/api/v1/w/demo/definitions/entity/account")
        .await;
    let revision = if status == StatusCode::OK {
        current["revision"].clone()
    } else {
        Value::Null
    };
    let (status, body) = client
        .put(
            "/api/v1/w/demo/definitions/entity/account/draft",
            json!({"document": document, "revision": revision}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn publish(client: &Client, document: Value) {
    let draft = save_draft(client, document).await;
    let (status, body) = client
        .post(
            "/api/v1/w/demo/definitions/entity/account/versions",
            json!({"revision": draft["revision"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn create(client: &Client, fields: Value) -> String {
    let (status, body) = client.post(ACCOUNTS, json!({ "fields": fields })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

async fn fields_of(client: &Client, id: &str) -> Value {
    let (status, body) = client.get(&format!("{ACCOUNTS}/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn hiding_removing_and_relabelling_keep_every_value(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    publish(&admin, account_v1()).await;
    let id = create(
        &admin,
        json!({"name": "云帆", "region": "华东", "notes": "重点客户"}),
    )
    .await;
    // Relabel and reorder: nothing changes in the record.
    let mut v2 = account_v1();
    v2["properties"]["region"]["x-label"] = json!({"en": "Sales region", "zh-CN": "销售区域"});
    let notes = v2["properties"]["notes"].clone();
    v2["properties"]
        .as_object_mut()
        .expect("props")
        .remove("notes");
    v2["properties"]["notes"] = notes;
    publish(&admin, v2.clone()).await;
    let before = fields_of(&admin, &id).await;
    assert_eq!(
        before["fields"],
        json!({"name": "云帆", "region": "华东", "notes": "重点客户"})
    );
    // Remove `notes`: hidden from the record, kept for admins, restored when the field returns.
    let mut v3 = v2.clone();
    v3["properties"]
        .as_object_mut()
        .expect("props")
        .remove("notes");
    publish(&admin, v3).await;
    let after = fields_of(&admin, &id).await;
    assert!(after["fields"].get("notes").is_none());
    assert_eq!(after["hidden_fields"], json!({"notes": "重点客户"}));
    let (status, body) = admin
        .patch(
            &format!("{ACCOUNTS}/{id}"),
            json!({"fields": {"notes": "x"}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/notes"]
    );
    let member = app.create_user("rep@formwork.local").await;
    admin
        .post(
            "/api/v1/w/demo/members",
            json!({"email": "rep@formwork.local", "role": "viewer"}),
        )
        .await;
    let (status, seen) = member.get(&format!("{ACCOUNTS}/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert!(seen.get("hidden_fields").is_none(), "{seen}");
    assert!(seen["fields"].get("notes").is_none(), "{seen}");
    // x-hidden works the same way.
    let mut v4 = v2.clone();
    v4["properties"]["region"]["x-hidden"] = json!(true);
    publish(&admin, v4).await;
    let hidden = fields_of(&admin, &id).await;
    assert_eq!(
        hidden["fields"],
        json!({"name": "云帆", "notes": "重点客户"})
    );
    assert_eq!(hidden["hidden_fields"], json!({"region": "华东"}));
    publish(&admin, v2).await;
    let back = fields_of(&admin, &id).await;
    assert_eq!(back["fields"], before["fields"]);
    assert_eq!(
        back["version"], before["version"],
        "schema changes do not touch records"
    );
}

async fn kind_changes_are_dry_run_then_converted_without_loss(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    publish(&admin, account_v1()).await;
    let good = create(
        &admin,
        json!({"name": "A", "region": "华东", "budget": "1200.5"}),
    )
    .await;
    let bad = create(
        &admin,
        json!({"name": "B", "region": "西北", "budget": "about 5k"}),
    )
    .await;
    let nameless = create(&admin, json!({"region": "华南"})).await;
    let mut v2 = account_v1();
    v2["properties"]["budget"] = json!({"type": "number", "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Budget"}});
    v2["properties"]["region"] = json!({"type": "string", "x-kind": "single_select", "x-label": {"en": "Region"},
        "x-options": [{"value": "华东", "label": {"en": "East"}}, {"value": "华南", "label": {"en": "South"}}]});
    v2["required"] = json!(["name"]);
    save_draft(&admin, v2).await;
    let (status, impact) = admin.get("/api/v1/w/demo/entities/account/impact").await;
    assert_eq!(status, StatusCode::OK, "{impact}");
    assert_eq!(impact["records"], 3);
    let mut problems: Vec<(String, String, String)> = impact["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["record"].as_str().unwrap_or_default().to_owned(),
                p["field"].as_str().unwrap_or_default().to_owned(),
                p["code"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    problems.sort();
    let mut expected = vec![
        (bad.clone(), "budget".to_owned(), "unconvertible".to_owned()),
        (bad.clone(), "region".to_owned(), "unconvertible".to_owned()),
        (
            nameless.clone(),
            "name".to_owned(),
            "missing_required".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(problems, expected, "{impact}");
    // The dry-run wrote nothing.
    assert_eq!(fields_of(&admin, &good).await["fields"]["budget"], "1200.5");
    let (_, definition) = admin.get("/api/v1/w/demo/definitions/entity/account").await;
    let (status, body) = admin
        .post(
            "/api/v1/w/demo/definitions/entity/account/versions",
            json!({"revision": definition["revision"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let converted = fields_of(&admin, &good).await;
    assert_eq!(converted["fields"]["budget"], "1200.50");
    assert_eq!(converted["fields"]["region"], "华东");
    assert!(converted.get("unconverted").is_none());
    let kept = fields_of(&admin, &bad).await;
    assert!(
        kept["fields"].get("budget").is_none() && kept["fields"].get("region").is_none(),
        "{kept}"
    );
    assert_eq!(
        kept["unconverted"],
        json!({"budget": "about 5k", "region": "西北"})
    );
    let (_, history) = admin.get(&format!("{ACCOUNTS}/{bad}/history")).await;
    let last = history
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .expect("history");
    assert_eq!(last["operation"], "convert");
    assert_eq!(
        last["changes"]["unconverted"]["budget"]["value"],
        "about 5k"
    );
    // Someone whose role hides budget and masks region sees neither raw value in that history.
    let (status, body) = admin
        .put(
            "/api/v1/w/demo/roles/auditor",
            json!({"name": "Auditor", "rights": {"entities": {"*": {"read": "all"},
                   "account": {"fields": {"budget": "hidden", "region": "masked"}}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let auditor = app.create_user("auditor@formwork.local").await;
    admin
        .post(
            "/api/v1/w/demo/members",
            json!({"email": "auditor@formwork.local", "role": "auditor"}),
        )
        .await;
    let (status, seen) = auditor.get(&format!("{ACCOUNTS}/{bad}/history")).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    let text = seen.to_string();
    assert!(
        !text.contains("about 5k") && !text.contains("西北"),
        "{text}"
    );
    // Filters see converted values.
    let (_, page) = admin
        .post(
            &format!("{ACCOUNTS}/query"),
            json!({"filter": {"field": "budget", "op": "gt", "value": 1000}, "total": "exact"}),
        )
        .await;
    assert_eq!(page["total"], 1, "{page}");
    // Setting the field settles its unconverted value; the record missing a required name can
    // still change other fields, but not clear or leave out what a change touches.
    let (status, body) = admin
        .patch(
            &format!("{ACCOUNTS}/{bad}"),
            json!({"fields": {"budget": 5000}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["unconverted"], json!({"region": "西北"}));
    let (status, body) = admin
        .patch(
            &format!("{ACCOUNTS}/{nameless}"),
            json!({"fields": {"budget": 10}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = admin
        .post(ACCOUNTS, json!({"fields": {"budget": 10}}))
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    // Converting back keeps the money exact as text.
    let mut v3 = account_v1();
    v3["required"] = json!(["name"]);
    publish(&admin, v3).await;
    assert_eq!(
        fields_of(&admin, &good).await["fields"]["budget"],
        "1200.50"
    );
}

async fn impact_needs_a_draft_and_an_admin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    publish(&admin, account_v1()).await;
    let (status, body) = admin.get("/api/v1/w/demo/entities/account/impact").await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let member = app.create_user("rep@formwork.local").await;
    admin
        .post(
            "/api/v1/w/demo/members",
            json!({"email": "rep@formwork.local", "role": "member"}),
        )
        .await;
    save_draft(&admin, account_v1()).await;
    let (status, body) = member.get("/api/v1/w/demo/entities/account/impact").await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
}

both_databases!(
    hiding_removing_and_relabelling_keep_every_value,
    kind_changes_are_dry_run_then_converted_without_loss,
    impact_needs_a_draft_and_an_admin,
);

/// A write validated against an entity version that another process replaced meanwhile is
/// refused (409 `definition_changed`) instead of storing a value of the old kind.
async fn a_write_racing_a_kind_change_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    publish(&admin, account_v1()).await;
    create(&admin, json!({"name": "A", "budget": "12"})).await;
    let db = app.services.db();
    let workspace = formwork::store::workspaces::find_by_slug(db.conn(), "demo")
        .await
        .expect("db")
        .expect("demo");
    let stale_scope = formwork::definitions::Scope {
        workspace_id: workspace.id,
        generation: workspace.definitions_generation,
    };
    // "Another process": the same database, its own registry, publishes budget as money.
    let other_registry = formwork::definitions::Registry::new();
    let other = formwork::definitions::Store {
        db,
        clock: app.services.clock(),
        registry: &other_registry,
    };
    let mut v2 = account_v1();
    v2["properties"]["budget"] = json!({"type": "number", "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Budget"}});
    let admin_id = formwork::store::accounts::find_by_email(db.conn(), common::ADMIN_EMAIL)
        .await
        .expect("db")
        .expect("admin")
        .id;
    let actor = formwork::domain::Actor::Account { id: admin_id };
    let current = other
        .get(stale_scope, formwork::definitions::Kind::Entity, "account")
        .await
        .expect("definition")
        .revision;
    let draft = other
        .save_draft(
            stale_scope,
            formwork::definitions::Kind::Entity,
            "account",
            v2,
            Some(current),
            actor,
        )
        .await;
    let revision = match draft {
        Ok(view) => view.revision,
        Err(e) => panic!("draft: {e}"),
    };
    other
        .publish(
            stale_scope,
            formwork::definitions::Kind::Entity,
            "account",
            revision,
            None,
            actor,
        )
        .await
        .expect("publish v2");
    // This process still holds version 1 in its registry: text is valid there.
    let ctx = formwork::records::Context {
        scope: stale_scope,
        actor,
        channel: formwork::records::Channel::Api,
        time_zone: chrono_tz::Asia::Shanghai,
        policy: None,
        calendar: Default::default(),
        origin: None,
    };
    let mut fields = serde_json::Map::new();
    fields.insert("budget".to_owned(), json!("not money"));
    let result = app
        .services
        .records()
        .create(
            &ctx,
            "account",
            formwork::records::NewRecord {
                fields,
                owner: None,
                id: None,
            },
        )
        .await;
    match result {
        Err(formwork::error::Error::Conflict { errors, .. }) => {
            assert_eq!(errors[0].code, "definition_changed");
        }
        other => panic!("expected a 409 definition_changed, got {other:?}"),
    }
    let (_, page) = admin
        .post(&format!("{ACCOUNTS}/query"), json!({"total": "exact"}))
        .await;
    assert_eq!(page["total"], 1, "nothing was written");
}

mod racing {
    use super::*;
    both_databases!(a_write_racing_a_kind_change_is_refused);
}
