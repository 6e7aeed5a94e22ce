//! The workspace's OpenAPI 3.1 document: generated from the published entities as the caller
//! may use them and in step with every publish; checked by schemathesis (from PyPI, bounded
//! examples: any 5xx or response that breaks the document fails) and proven real by a Python
//! client generated from it with openapi-python-client that creates and lists records.
//!
//! The Python tools come from `.ci/test`, which installs pinned versions in `target/pyenv`
//! (`FORMWORK_TEST_PYTHON_BIN` names another place); without them these tests fail.

mod common;

use std::process::Command;

use common::{Backend, Client, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";

/// An API token of the demo workspace's admin, narrowed to `role` when given.
async fn token(admin: &Client, role: Option<&str>) -> String {
    let (status, body) = admin
        .post(
            &format!("{W}/tokens"),
            json!({"name": "openapi", "role": role}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["secret"].as_str().expect("secret").to_owned()
}

async fn spec(app: &TestApp, secret: &str) -> Value {
    let client = Client::with_token(app.address.clone(), secret);
    let (status, body) = client.get(&format!("{W}/openapi.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn the_document_follows_the_definitions_and_the_callers_rights(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, _) = app.anonymous().get(&format!("{W}/openapi.json")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let secret = token(&admin, None).await;
    let doc = spec(&app, &secret).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let leads = "/w/demo/entities/lead/records";
    assert_eq!(doc["paths"][leads]["post"]["operationId"], "create_lead");
    assert_eq!(
        doc["paths"]["/w/demo/imports"]["get"]["operationId"],
        "imports"
    );
    assert_eq!(
        doc["paths"]["/w/demo/webhooks"]["get"]["operationId"],
        "webhooks"
    );
    assert_eq!(
        doc["paths"]["/w/demo/search"]["get"]["operationId"],
        "search"
    );
    assert_eq!(
        doc["paths"]["/w/demo/entities/lead/records/{id}/comments"]["post"]["operationId"],
        "comment_lead"
    );
    assert_eq!(
        doc["paths"]["/w/demo/notifications/settings"]["put"]["operationId"],
        "save_notification_settings"
    );
    let fields = &doc["components"]["schemas"]["LeadFields"]["properties"];
    assert_eq!(
        fields["budget"]["type"],
        json!(["string", "null"]),
        "money is a decimal string"
    );
    assert_eq!(fields["score"]["readOnly"], true, "a formula");
    assert!(
        doc["components"]["schemas"]["LeadInput"]["properties"]["score"].is_null(),
        "computed fields are not sent"
    );
    assert_eq!(
        doc["components"]["schemas"]["LeadInput"]["required"],
        json!(["name", "source", "status"])
    );
    // A field published now is in the next document.
    let (_, lead) = admin.get(&format!("{W}/definitions/entity/lead")).await;
    let mut draft = lead["published"].clone();
    draft["properties"]["wechat"] = json!({"type": "string", "x-kind": "text",
        "x-label": {"en": "WeChat ID"}, "maxLength": 50});
    common::publish_entity(&admin, "lead", draft).await;
    let doc = spec(&app, &secret).await;
    let wechat = &doc["components"]["schemas"]["LeadInput"]["properties"]["wechat"];
    assert_eq!(wechat["maxLength"], 50, "{wechat}");
    // A role that may not see the budget and only reads the phone: its token's document says so.
    let (status, body) = admin
        .put(
            &format!("{W}/roles/field_rep"),
            json!({"name": "Field rep", "rights": {"entities": {
                "*": {"create": "own", "read": "own", "update": "own", "delete": "none"},
                "lead": {"fields": {"budget": "hidden", "phone": "masked_read_only"}}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let narrowed = token(&admin, Some("field_rep")).await;
    let doc = spec(&app, &narrowed).await;
    assert!(
        doc["paths"]["/w/demo/webhooks"].is_null(),
        "webhooks are for admins"
    );
    assert!(doc["paths"]["/w/demo/imports"].is_object());
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["LeadFields"]["properties"]["budget"].is_null());
    assert!(schemas["LeadInput"]["properties"]["budget"].is_null());
    assert_eq!(
        schemas["LeadFields"]["properties"]["phone"]["readOnly"],
        true
    );
    assert!(schemas["LeadInput"]["properties"]["phone"].is_null());
}

/// Runs schemathesis against the demo workspace (the Sales CRM with a year of demo records):
/// the coverage, fuzzing and stateful phases, a fixed seed so a failure can be replayed.
async fn schemathesis_finds_no_server_error_or_schema_violation(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        common::Options {
            demo_data: true,
            ..Default::default()
        },
    )
    .await;
    let admin = app.admin().await;
    let secret = token(&admin, None).await;
    let bin = common::python_bin();
    let report = tempfile::tempdir().expect("a directory");
    let address = app.address.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(bin.join("schemathesis"))
            .current_dir(report.path())
            .args([
                "run",
                &format!("{address}{W}/openapi.json"),
                "--url",
                &format!("{address}/api/v1"),
                "--header",
                &format!("Authorization: Bearer {secret}"),
                "--max-examples",
                "10",
                "--seed",
                "20261206",
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--no-color",
            ])
            .output()
    })
    .await
    .expect("joined")
    .expect("schemathesis runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("Stateful"), "{text}");
}

/// A typed Python client generated from the document by openapi-python-client creates a lead
/// and finds it in the list.
async fn a_generated_python_client_creates_and_lists_records(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let secret = token(&admin, None).await;
    let doc = spec(&app, &secret).await;
    let bin = common::python_bin();
    let work = tempfile::tempdir().expect("a directory");
    let spec_path = work.path().join("openapi.json");
    std::fs::write(&spec_path, doc.to_string()).expect("written");
    let config = work.path().join("config.yaml");
    std::fs::write(&config, "project_name_override: formwork-demo\npackage_name_override: formwork_demo\npost_hooks: []\n")
        .expect("written");
    let generate = Command::new(bin.join("openapi-python-client"))
        .current_dir(work.path())
        .args([
            "generate",
            "--path",
            "openapi.json",
            "--config",
            "config.yaml",
            "--output-path",
            "client",
        ])
        .output()
        .expect("the generator runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&generate.stdout),
        String::from_utf8_lossy(&generate.stderr)
    );
    assert!(generate.status.success(), "{said}");
    assert!(
        !said.contains("Warning"),
        "the generator understood everything: {said}"
    );
    let script = r#"
import sys
from formwork_demo import AuthenticatedClient
from formwork_demo.api.lead import create_lead, list_lead, get_lead
from formwork_demo.models import LeadInput, LeadInputSource, LeadInputStatus
from formwork_demo.models.create_lead_body import CreateLeadBody

client = AuthenticatedClient(base_url=sys.argv[1], token=sys.argv[2])
with client as c:
    created = create_lead.sync(client=c, body=CreateLeadBody(fields=LeadInput(
        name="杭州云帆科技", source=LeadInputSource.WEB_FORM, status=LeadInputStatus.NEW,
        budget="120000.50")))
    assert created is not None, "created"
    found = get_lead.sync(client=c, id=created.id)
    assert found.fields.name == "杭州云帆科技", found
    assert found.fields.budget == "120000.50", found.fields.budget
    page = list_lead.sync(client=c, limit=50)
    assert any(r.id == created.id for r in page.records), "listed"
    print("ok", created.id)
"#;
    let script_path = work.path().join("use_client.py");
    std::fs::write(&script_path, script).expect("written");
    let base = format!("{}/api/v1", app.address);
    let client_dir = work.path().join("client");
    let run = tokio::task::spawn_blocking(move || {
        Command::new(bin.join("python"))
            .env("PYTHONPATH", client_dir)
            .arg(script_path)
            .args([base.as_str(), secret.as_str()])
            .output()
    })
    .await
    .expect("joined")
    .expect("python runs");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && out.starts_with("ok "),
        "{out}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // The lead is really there, with its history.
    let id = out.trim().trim_start_matches("ok ").to_owned();
    let (status, lead) = admin.get(&format!("{W}/entities/lead/records/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{lead}");
    assert_eq!(lead["fields"]["budget"], "120000.50");
}

both_databases!(
    the_document_follows_the_definitions_and_the_callers_rights,
    schemathesis_finds_no_server_error_or_schema_violation,
    a_generated_python_client_creates_and_lists_records,
);
