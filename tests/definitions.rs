//! The versioned definition store through the HTTP API: drafts, publish, live registry,
//! optimistic concurrency, rollback, and invalid definitions.

mod common;

use common::{Backend, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BASE: &str = "/api/v1/w/demo/definitions";

fn supplier(extra_field: Option<&str>) -> Value {
    let mut doc = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "x-label": {"en": "Supplier", "zh-CN": "供应商"},
        "x-title-field": "name",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 100, "x-kind": "text", "x-label": {"en": "Name", "zh-CN": "名称"}}
        }
    });
    if let Some(field) = extra_field {
        doc["properties"][field] =
            json!({"type": "string", "x-kind": "text", "x-label": {"en": field}});
    }
    doc
}

async fn a_published_definition_is_in_force_for_the_next_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, draft) = admin
        .put(
            &format!("{BASE}/entity/supplier/draft"),
            json!({"document": supplier(None)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{draft}");
    assert_eq!(draft["revision"], 1);
    assert_eq!(draft["published"], Value::Null);
    let (status, published) = admin
        .post(
            &format!("{BASE}/entity/supplier/versions"),
            json!({"revision": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{published}");
    assert_eq!(published["published_version"], 1);
    assert_eq!(published["draft"], Value::Null);
    // The very next request sees it in force, through the live registry.
    let (_, entities) = admin.get(&format!("{BASE}/entity")).await;
    let supplier_view = entities
        .as_array()
        .and_then(|all| all.iter().find(|d| d["key"] == "supplier"))
        .expect("listed");
    assert_eq!(supplier_view["published"]["x-label"]["zh-CN"], "供应商");

    // A second version, then a form that uses its new field: valid only against version 2.
    let revision = published["revision"].as_i64().expect("revision");
    let form = json!({"entity": "supplier", "label": {"en": "Supplier"},
        "sections": [{"fields": [{"field": "name"}, {"field": "city"}]}]});
    admin
        .put(
            &format!("{BASE}/form/supplier_form/draft"),
            json!({"document": form}),
        )
        .await;
    let (status, body) = admin
        .post(
            &format!("{BASE}/form/supplier_form/versions"),
            json!({"revision": 1}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/document/sections/0/fields/1/field"]
    );
    admin
        .put(
            &format!("{BASE}/entity/supplier/draft"),
            json!({"document": supplier(Some("city")), "revision": revision}),
        )
        .await;
    let (status, _) = admin
        .post(
            &format!("{BASE}/entity/supplier/versions"),
            json!({"revision": revision + 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = admin
        .post(
            &format!("{BASE}/form/supplier_form/versions"),
            json!({"revision": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn rollback_restores_an_earlier_version_as_a_new_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    admin
        .put(
            &format!("{BASE}/entity/supplier/draft"),
            json!({"document": supplier(None)}),
        )
        .await;
    admin
        .post(
            &format!("{BASE}/entity/supplier/versions"),
            json!({"revision": 1}),
        )
        .await;
    admin
        .put(
            &format!("{BASE}/entity/supplier/draft"),
            json!({"document": supplier(Some("city")), "revision": 2}),
        )
        .await;
    let (_, v2) = admin
        .post(
            &format!("{BASE}/entity/supplier/versions"),
            json!({"revision": 3}),
        )
        .await;
    assert!(v2["published"]["properties"]["city"].is_object());
    let (status, v3) = admin
        .post(
            &format!("{BASE}/entity/supplier/versions"),
            json!({"revision": 4, "rollback_to": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v3}");
    assert_eq!(v3["published_version"], 3);
    assert!(v3["published"]["properties"].get("city").is_none(), "{v3}");
    let (_, versions) = admin.get(&format!("{BASE}/entity/supplier/versions")).await;
    let origins: Vec<_> = versions
        .as_array()
        .expect("array")
        .iter()
        .map(|v| {
            (
                v["version"].as_i64(),
                v["origin"].as_str().map(str::to_owned),
                v["in_force"].as_bool(),
            )
        })
        .collect();
    assert_eq!(
        origins,
        [
            (Some(3), Some("rollback:1".to_owned()), Some(true)),
            (Some(2), Some("draft".to_owned()), Some(false)),
            (Some(1), Some("draft".to_owned()), Some(false)),
        ]
    );
    let (status, one) = admin
        .get(&format!("{BASE}/entity/supplier/versions/2"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(one["document"]["properties"]["city"].is_object());
    let (status, body) = admin
        .post(
            &format!("{BASE}/entity/supplier/versions"),
            json!({"revision": 5, "rollback_to": 9}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/rollback_to"]
    );
}

async fn a_racing_edit_gets_409_and_loses_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.admin().await;
    let bob = app.admin().await;
    alice
        .put(
            &format!("{BASE}/entity/supplier/draft"),
            json!({"document": supplier(None)}),
        )
        .await;
    // Both read revision 1; Alice saves first.
    let (status, _) = alice
        .put(
            &format!("{BASE}/entity/supplier/draft"),
            json!({"document": supplier(Some("alice_field")), "revision": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = bob
        .put(
            &format!("{BASE}/entity/supplier/draft"),
            json!({"document": supplier(Some("bob_field")), "revision": 1}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::CONFLICT),
        ["/revision"]
    );
    let (_, current) = alice.get(&format!("{BASE}/entity/supplier")).await;
    assert!(
        current["draft"]["properties"]["alice_field"].is_object(),
        "{current}"
    );
    // Publishing with a stale revision (If-Match) is refused too.
    let response = bob
        .http
        .post(app.url(&format!("{BASE}/entity/supplier/versions")))
        .header("x-csrf-token", bob.csrf.clone().unwrap_or_default())
        .header("if-match", "\"1\"")
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::CONFLICT);
    // Two concurrent publishes at the same revision: exactly one wins.
    let path = format!("{BASE}/entity/supplier/versions");
    let (a, b) = tokio::join!(
        alice.post(&path, json!({"revision": 2})),
        bob.post(&path, json!({"revision": 2}))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    let (_, versions) = alice.get(&format!("{BASE}/entity/supplier/versions")).await;
    assert_eq!(versions.as_array().map(Vec::len), Some(1));
}

async fn invalid_definitions_list_every_problem_and_write_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let mut bad = supplier(None);
    bad["required"] = json!(["name", "ghost"]);
    bad["properties"]["budget"] =
        json!({"type": "number", "x-kind": "money", "x-label": {"en": "Budget"}});
    bad["properties"]["stage"] =
        json!({"type": "string", "x-kind": "single_select", "x-label": {"en": "Stage"}});
    let (status, body) = admin
        .put(
            &format!("{BASE}/entity/supplier/draft"),
            json!({"document": bad}),
        )
        .await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        pointers.contains(&"/document/properties/budget/x-currency".to_owned()),
        "{body}"
    );
    assert!(
        pointers.contains(&"/document/properties/stage/x-options".to_owned()),
        "{body}"
    );
    let (status, _) = admin.get(&format!("{BASE}/entity/supplier")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing may be written");

    let mut remote = supplier(None);
    remote["properties"]["name"]["$ref"] = json!("https://evil.example/schema.json");
    let (status, body) = admin
        .put(
            &format!("{BASE}/entity/supplier/draft"),
            json!({"document": remote}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/document/properties/name/$ref"]
    );
    let (status, body) = admin
        .put(
            &format!("{BASE}/entity/Bad-Key/draft"),
            json!({"document": supplier(None)}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/key"]
    );
    let (status, body) = admin
        .put(&format!("{BASE}/gizmo/x/draft"), json!({"document": {}}))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = admin
        .post(
            &format!("{BASE}/entity/nothing/versions"),
            json!({"revision": 1}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    // A view on a missing field, and a publish without a draft.
    let view = json!({"entity": "lead", "label": {"en": "Bad"}, "layout": "table", "columns": ["no_such_field"]});
    admin
        .put(
            &format!("{BASE}/view/bad_view/draft"),
            json!({"document": view}),
        )
        .await;
    let (status, body) = admin
        .post(
            &format!("{BASE}/view/bad_view/versions"),
            json!({"revision": 1}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/document/columns/0"]
    );
    let (status, body) = admin
        .post(
            &format!("{BASE}/entity/lead/versions"),
            json!({"revision": 1}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/draft"]
    );
    // Malformed query strings are problem+json too.
    for path in [
        format!("{BASE}?kind=entity&colour=red"),
        format!("{BASE}/entity/lead/draft?revision=abc"),
    ] {
        let method = if path.contains("draft") {
            reqwest::Method::DELETE
        } else {
            reqwest::Method::GET
        };
        let (status, body) = admin.send(method, &path, None).await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST);
    }
    let (status, body) = admin
        .send(
            reqwest::Method::PATCH,
            &format!("{BASE}/entity/lead"),
            Some(json!({})),
        )
        .await;
    assert_problem(status, &body, StatusCode::METHOD_NOT_ALLOWED);
    // Absurd revisions are simply stale.
    let (status, body) = admin
        .put(
            &format!("{BASE}/entity/lead/draft"),
            json!({"document": supplier(None), "revision": i64::MAX}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (status, body) = admin
        .post(
            &format!("{BASE}/entity/lead/versions"),
            json!({"revision": i64::MIN, "rollback_to": -1}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    // Existing definitions need a revision.
    let (status, body) = admin
        .put(
            &format!("{BASE}/entity/lead/draft"),
            json!({"document": supplier(None)}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/revision"]
    );
}

async fn discarding_a_draft_keeps_the_published_version(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (_, lead) = admin.get(&format!("{BASE}/entity/lead")).await;
    let revision = lead["revision"].as_i64().expect("revision");
    let mut changed = lead["published"].clone();
    changed["x-label"]["en"] = json!("Prospect");
    let (status, body) = admin
        .put(
            &format!("{BASE}/entity/lead/draft"),
            json!({"document": changed, "revision": revision}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["published"]["x-label"]["en"],
        lead["published"]["x-label"]["en"]
    );
    let (status, body) = admin
        .delete(&format!(
            "{BASE}/entity/lead/draft?revision={}",
            revision + 1
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["draft"], Value::Null);
    assert_eq!(body["published_version"], 1);
}

async fn an_entity_change_that_would_break_its_forms_and_views_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (_, opportunity) = admin.get(&format!("{BASE}/entity/opportunity")).await;
    let revision = opportunity["revision"].as_i64().expect("revision");
    let mut without_stage = opportunity["published"].clone();
    let properties = without_stage["properties"]
        .as_object_mut()
        .expect("properties");
    properties.remove("stage");
    without_stage["required"] = json!(["name", "customer"]);
    without_stage.as_object_mut().expect("object").remove("if");
    without_stage
        .as_object_mut()
        .expect("object")
        .remove("x-indexes");
    without_stage
        .as_object_mut()
        .expect("object")
        .remove("then");
    let (status, body) = admin
        .put(
            &format!("{BASE}/entity/opportunity/draft"),
            json!({"document": without_stage, "revision": revision}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = admin
        .post(
            &format!("{BASE}/entity/opportunity/versions"),
            json!({"revision": revision + 1}),
        )
        .await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        pointers
            .iter()
            .any(|p| p == "/dependents/view/opportunity_pipeline/group_by"),
        "{body}"
    );
    assert!(
        pointers
            .iter()
            .any(|p| p.starts_with("/dependents/form/opportunity_form/")),
        "{body}"
    );
    let (_, still) = admin.get(&format!("{BASE}/entity/opportunity")).await;
    assert_eq!(still["published_version"], 1, "nothing published");
    assert!(still["published"]["properties"]["stage"].is_object());
}

both_databases!(
    an_entity_change_that_would_break_its_forms_and_views_is_refused,
    a_published_definition_is_in_force_for_the_next_request,
    rollback_restores_an_earlier_version_as_a_new_one,
    a_racing_edit_gets_409_and_loses_nothing,
    invalid_definitions_list_every_problem_and_write_nothing,
    discarding_a_draft_keeps_the_published_version,
);
