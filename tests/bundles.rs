//! Bundles: the first-start demo, installing a template or a bundle document into a workspace,
//! whole-bundle validation, and `formwork check`.

mod common;

use common::{Backend, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn first_start_installs_the_sales_crm_into_the_demo_workspace(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (_, entities) = admin.get("/api/v1/w/demo/definitions/entity").await;
    let keys: Vec<_> = entities
        .as_array()
        .expect("list")
        .iter()
        .map(|d| d["key"].as_str().unwrap_or_default())
        .collect();
    for key in ["contact", "customer", "follow_up", "lead", "opportunity"] {
        assert!(keys.contains(&key), "missing {key}: {keys:?}");
    }
    let (_, versions) = admin
        .get("/api/v1/w/demo/definitions/entity/opportunity/versions")
        .await;
    assert_eq!(versions[0]["origin"], "bundle:sales-crm@1.4.0");
    let (_, view) = admin
        .get("/api/v1/w/demo/definitions/view/opportunity_pipeline")
        .await;
    assert_eq!(view["published"]["layout"], "kanban");
    let (_, catalogue) = admin.get("/api/v1/templates").await;
    assert_eq!(catalogue[0]["name"], "sales-crm");
    assert_eq!(catalogue[0]["title"]["zh-CN"], "销售CRM");
    // Its preview image, served so that nothing in it can run.
    let preview = admin.get_raw("/api/v1/templates/sales-crm/preview").await;
    assert_eq!(preview.status(), StatusCode::OK);
    let header = |name: &str| {
        preview
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "image/svg+xml");
    assert!(header("content-security-policy").contains("sandbox"));
    assert!(preview.text().await.unwrap_or_default().starts_with("<svg"));
    let missing = admin.get_raw("/api/v1/templates/nothing/preview").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

async fn installing_a_template_is_all_or_nothing(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        common::Options {
            demo: false,
            ..Default::default()
        },
    )
    .await;
    let admin = app.admin().await;
    admin
        .post(
            "/api/v1/account/workspaces",
            json!({"slug": "east", "name": "East team"}),
        )
        .await;
    let (status, report) = admin
        .post("/api/v1/w/east/apps", json!({"template": "sales-crm"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    assert_eq!(report["created"].as_array().map(Vec::len), Some(82));
    // A second install clashes on every key and writes nothing.
    let (status, body) = admin
        .post("/api/v1/w/east/apps", json!({"template": "sales-crm"}))
        .await;
    let pointers = assert_problem(status, &body, StatusCode::CONFLICT);
    assert!(
        pointers.contains(&"/definitions/entity/lead".to_owned()),
        "{body}"
    );
    let (status, body) = admin
        .post("/api/v1/w/east/apps", json!({"template": "nope"}))
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/template"]
    );
}

fn bad_bundle() -> Value {
    json!({
        "manifest": {"name": "broken", "version": "1.0.0", "title": {"en": "Broken"}},
        "definitions": {
            "entity": {
                "issue": {
                    "type": "object",
                    "x-label": {"en": "Issue"},
                    "required": ["subject", "ghost"],
                    "properties": {
                        "subject": {"type": "string", "x-kind": "text", "x-label": {"en": "Subject"}},
                        "customer": {"type": "string", "x-kind": "reference", "x-label": {"en": "Customer"},
                                     "x-reference": {"entity": "nowhere"}}
                    }
                },
                "fine": {
                    "type": "object", "x-label": {"en": "Fine"},
                    "properties": {"a": {"type": "string", "x-kind": "text", "x-label": {"en": "A"}}}
                }
            },
            "form": {
                "issue_form": {"entity": "issue", "label": {"en": "Issue"}, "sections": [{"fields": [{"field": "subject"}]}]}
            }
        }
    })
}

async fn an_invalid_bundle_lists_every_problem_and_writes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, body) = admin
        .post("/api/v1/w/demo/apps", json!({"bundle": bad_bundle()}))
        .await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        pointers,
        ["/bundle/definitions/entity/issue/required/1"],
        "{body}"
    );
    // Fix the first problem: the broken reference is found next, still before any write.
    let mut bundle = bad_bundle();
    bundle["definitions"]["entity"]["issue"]["required"] = json!(["subject"]);
    let (status, body) = admin
        .post("/api/v1/w/demo/apps", json!({"bundle": bundle}))
        .await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        pointers,
        ["/bundle/definitions/entity/issue/properties/customer/x-reference/entity"]
    );
    let (status, _) = admin.get("/api/v1/w/demo/definitions/entity/fine").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing of the bundle may be written"
    );
    // Shape errors are located inside the request body.
    let (status, body) = admin
        .post(
            "/api/v1/w/demo/apps",
            json!({"bundle": {"manifest": {"name": "X"}, "definitions": {"gizmo": {}}}}),
        )
        .await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(pointers.iter().all(|p| p.starts_with("/bundle")), "{body}");
    assert!(pointers.len() >= 3, "every problem is listed: {body}");
    // And a valid one installs.
    bundle["definitions"]["entity"]["issue"]["properties"]["customer"]["x-reference"]["entity"] =
        json!("customer");
    let (status, body) = admin
        .post("/api/v1/w/demo/apps", json!({"bundle": bundle}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = admin
        .get("/api/v1/w/demo/definitions/form/issue_form")
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn formwork_check_reports_every_problem_with_file_and_pointer() {
    let ok = std::process::Command::new(common::binary())
        .args(["check", "schemas", "workflows"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("templates").join("broken");
    std::fs::create_dir_all(bundle.join("entities")).expect("mkdir");
    std::fs::write(
        bundle.join("template.json"),
        r#"{"name": "broken", "version": "one", "title": {"en": "B"}}"#,
    )
    .expect("write");
    std::fs::write(
        bundle.join("entities").join("thing.json"),
        r#"{"type": "object", "properties": {}}"#,
    )
    .expect("write");
    // A template whose preview image is missing, and one whose image is not a picture.
    for (name, image) in [("nopreview", "missing.svg"), ("badpreview", "../x.svg")] {
        let folder = dir.path().join("templates").join(name);
        std::fs::create_dir_all(&folder).expect("mkdir");
        std::fs::write(
            folder.join("template.json"),
            json!({"name": name, "version": "1.0.0", "title": {"en": "P"}, "preview_image": image})
                .to_string(),
        )
        .expect("write");
    }
    let loose = dir.path().join("entities");
    std::fs::create_dir_all(&loose).expect("mkdir");
    std::fs::write(loose.join("bad.json"), "{ not json").expect("write");
    let document = dir.path().join("bundle.json");
    std::fs::write(&document, bad_bundle().to_string()).expect("write");
    let out = std::process::Command::new(common::binary())
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("template.json: /version:"), "{stdout}");
    assert!(stdout.contains("bad.json: /: not valid JSON"), "{stdout}");
    assert!(
        stdout.contains("nopreview/template.json: /preview_image: \"missing.svg\" is not in the template's folder"),
        "{stdout}"
    );
    assert!(
        stdout.contains("badpreview/template.json: /preview_image:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bundle.json: /definitions/entity/issue/required/1:"),
        "{stdout}"
    );
}

both_databases!(
    first_start_installs_the_sales_crm_into_the_demo_workspace,
    installing_a_template_is_all_or_nothing,
    an_invalid_bundle_lists_every_problem_and_writes_nothing,
);
