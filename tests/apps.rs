//! Apps: cloning a template into workspaces (twice, with a prefix), exporting an app with its
//! records and importing it into another installation on the other database, upgrading an app
//! to a new template version, and bundles refused whole.

mod common;

use std::collections::BTreeMap;

use common::{Backend, Client, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn other(backend: Backend) -> Backend {
    match backend {
        Backend::Sqlite => Backend::Postgres,
        Backend::Postgres => Backend::Sqlite,
    }
}

async fn bare_app(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        common::Options {
            demo: false,
            ..Default::default()
        },
    )
    .await
}

async fn workspace(admin: &Client, slug: &str) {
    let (status, body) = admin
        .post(
            "/api/v1/account/workspaces",
            json!({"slug": slug, "name": slug}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Every record of an entity, by id.
async fn all_records(client: &Client, ws: &str, entity: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/w/{ws}/entities/{entity}/records?limit=200");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = client.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for record in page["records"].as_array().expect("records") {
            out.insert(
                record["id"].as_str().expect("id").to_owned(),
                record.clone(),
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return out,
        }
    }
}

async fn cloning_the_sales_crm_twice_gives_independent_apps(backend: Backend) {
    let app = bare_app(backend).await;
    let admin = app.admin().await;
    workspace(&admin, "east").await;
    workspace(&admin, "west").await;
    let (status, east) = admin
        .post(
            "/api/v1/w/east/apps",
            json!({"template": "sales-crm", "data": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{east}");
    assert!(east["sample_records"].as_u64().unwrap_or(0) > 500, "{east}");
    let (status, west) = admin
        .post("/api/v1/w/west/apps", json!({"template": "sales-crm"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{west}");
    assert_eq!(east["created"], west["created"]);

    // West adds a field to its leads; east's leads do not change.
    publish_in(&admin, "west", "entity", "lead", |document| {
        document["properties"]["wechat_id"] = json!({
            "type": "string", "maxLength": 100, "x-kind": "text",
            "x-label": {"en": "WeChat ID", "zh-CN": "微信号"}
        });
    })
    .await;
    let (_, east_lead) = admin.get("/api/v1/w/east/definitions/entity/lead").await;
    assert!(east_lead["published"]["properties"]["wechat_id"].is_null());
    let (status, created) = admin
        .post(
            "/api/v1/w/west/entities/lead/records",
            json!({"fields": {"name": "王磊", "company": "杭州云栖科技", "source": "referral", "wechat_id": "wanglei88"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, body) = admin
        .post(
            "/api/v1/w/east/entities/lead/records",
            json!({"fields": {"name": "王磊", "source": "referral", "wechat_id": "wanglei88"}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/wechat_id"]
    );
    let (_, west_leads) = admin
        .get("/api/v1/w/west/entities/lead/records?total=exact")
        .await;
    assert_eq!(west_leads["total"], 1);
    let (_, east_leads) = admin
        .get("/api/v1/w/east/entities/lead/records?total=exact")
        .await;
    assert!(east_leads["total"].as_u64().unwrap_or(0) > 100);

    // A second copy in the same workspace needs a prefix; with one, everything is renamed.
    let (status, body) = admin
        .post("/api/v1/w/east/apps", json!({"template": "sales-crm"}))
        .await;
    let pointers = assert_problem(status, &body, StatusCode::CONFLICT);
    assert!(pointers.contains(&"/definitions/entity/lead".to_owned()));
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("prefix")
    );
    for bad in ["B", "1x", "a_b", "toolongprefix"] {
        let (status, body) = admin
            .post(
                "/api/v1/w/east/apps",
                json!({"template": "sales-crm", "prefix": bad}),
            )
            .await;
        assert_eq!(
            assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
            ["/prefix"],
            "{bad}"
        );
    }
    let (status, copy) = admin
        .post(
            "/api/v1/w/east/apps",
            json!({"template": "sales-crm", "prefix": "b"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
    assert_eq!(copy["prefix"], "b");
    let keys: Vec<&str> = copy["created"]
        .as_array()
        .expect("created")
        .iter()
        .filter_map(|d| d["key"].as_str())
        .collect();
    assert!(keys.iter().all(|k| k.starts_with("b_")), "{keys:?}");
    let (_, form) = admin
        .get("/api/v1/w/east/definitions/form/b_lead_form")
        .await;
    assert_eq!(form["published"]["entity"], "b_lead");
    let (_, opportunity) = admin
        .get("/api/v1/w/east/definitions/entity/b_opportunity")
        .await;
    assert_eq!(
        opportunity["published"]["properties"]["customer"]["x-reference"]["entity"],
        "b_customer"
    );
    let (status, board) = admin
        .get("/api/v1/w/east/dashboards/b_sales_overview")
        .await;
    assert_eq!(status, StatusCode::OK, "{board}");
    // The copy starts empty; the first app keeps its records.
    let (_, copy_leads) = admin
        .get("/api/v1/w/east/entities/b_lead/records?total=exact")
        .await;
    assert_eq!(copy_leads["total"], 0);
    let (_, apps) = admin.get("/api/v1/w/east/apps").await;
    assert_eq!(apps.as_array().map(Vec::len), Some(2), "{apps}");
    assert_eq!(apps[1]["prefix"], "b");
    assert_eq!(apps[0]["template"], "sales-crm");
}

fn desk_bundle(version: &str) -> Value {
    json!({
        "manifest": {"name": "desk", "version": version, "title": {"en": "Desk", "zh-CN": "服务台"}, "namespace": "desk"},
        "definitions": {
            "entity": {
                "case": {
                    "type": "object",
                    "x-label": {"en": "Ticket"},
                    "x-title-field": "subject",
                    "required": ["subject"],
                    "properties": {
                        "number": {"type": "string", "x-kind": "auto_number", "x-label": {"en": "Number"},
                                   "x-auto-number": {"pattern": "T-{0000}"}},
                        "subject": {"type": "string", "maxLength": 200, "x-kind": "text", "x-label": {"en": "Subject"}},
                        "customer": {"type": "string", "x-kind": "reference", "x-label": {"en": "Customer"},
                                     "x-reference": {"entity": "client"}},
                        "assignee": {"type": "string", "format": "uuid", "x-kind": "user", "x-label": {"en": "Assignee"}},
                        "scan": {"type": "array", "x-kind": "attachment", "x-label": {"en": "Scan"},
                                 "x-attachment": {"max_size": 10000, "accept": ["text/plain"], "max_files": 2}}
                    }
                },
                "client": {
                    "type": "object", "x-label": {"en": "Client"}, "x-title-field": "name", "required": ["name"],
                    "properties": {"name": {"type": "string", "maxLength": 200, "x-kind": "text", "x-label": {"en": "Name"}}}
                }
            },
            "form": {
                "case_form": {"entity": "case", "label": {"en": "Ticket"},
                                "sections": [{"fields": [{"field": "subject"}, {"field": "customer"}]}]}
            },
            "workflow": {
                "case_reminder": {
                    "label": {"en": "Remind the owner"},
                    "entity": "case",
                    "trigger": {"type": "record_created"},
                    "steps": [{"id": "tell", "type": "notify", "to": ["owner", "role:agent"], "title": "New case {{ record.subject }}"}]
                }
            }
        },
        "roles": {
            "agent": {"name": {"en": "Agent", "zh-CN": "客服"},
                      "rights": {"entities": {"case": {"create": "own", "read": "all", "update": "own", "delete": "none"}}}}
        }
    })
}

async fn upload(client: &Client, ws: &str, text: &str) -> Value {
    let mut request = client
        .http
        .post(format!(
            "{}/api/v1/w/{ws}/entities/case/attachments?field=scan&name=scan.txt",
            client.base
        ))
        .header("content-type", "text/plain")
        .body(text.as_bytes().to_vec());
    if let Some(csrf) = &client.csrf {
        request = request.header("x-csrf-token", csrf);
    }
    let response = request.send().await.expect("upload");
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.expect("json")
}

async fn an_app_with_its_records_moves_to_another_installation(backend: Backend) {
    // The source: the demo workspace (the Sales CRM with a year of records) plus a desk app.
    let source = TestApp::spawn_with(
        backend,
        common::Options {
            demo_data: true,
            ..Default::default()
        },
    )
    .await;
    let admin = source.admin().await;
    let (status, body) = admin
        .post(
            "/api/v1/w/demo/apps",
            json!({"bundle": desk_bundle("1.0.0")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (ann, ann_id) = common::join_member(&source, &admin, "ann@example.com", "member").await;
    let (_, client_record) = admin
        .post(
            "/api/v1/w/demo/entities/client/records",
            json!({"fields": {"name": "上海明远贸易"}}),
        )
        .await;
    let file = upload(&admin, "demo", "signed").await;
    let (status, first) = admin
        .post(
            "/api/v1/w/demo/entities/case/records",
            json!({"fields": {"subject": "打印机故障", "customer": client_record["id"],
                   "assignee": ann_id, "scan": [file["id"]]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, _) = ann
        .post(
            "/api/v1/w/demo/entities/case/records",
            json!({"fields": {"subject": "Ann own case"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, binned) = admin
        .post(
            "/api/v1/w/demo/entities/case/records",
            json!({"fields": {"subject": "作废工单"}}),
        )
        .await;
    let binned_id = binned["id"].as_str().expect("id").to_owned();
    let (status, _) = admin
        .delete(&format!("/api/v1/w/demo/entities/case/records/{binned_id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, changed) = admin
        .patch(
            &format!(
                "/api/v1/w/demo/entities/case/records/{}",
                first["id"].as_str().unwrap_or_default()
            ),
            json!({"fields": {"subject": "打印机卡纸"}, "version": first["version"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let exported = admin
        .get_raw("/api/v1/w/demo/apps/export?data=true&name=acme-crm&version=2.0.0")
        .await;
    assert_eq!(exported.status(), StatusCode::OK);
    assert!(
        exported
            .headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("acme-crm-2.0.0.json"))
    );
    let bundle: Value = exported.json().await.expect("json");
    assert_eq!(bundle["manifest"]["name"], "acme-crm");
    assert!(bundle["roles"]["agent"].is_object(), "{}", bundle["roles"]);

    // The destination: another installation on the other database, where ann is no member.
    let destination = bare_app(other(backend)).await;
    let target = destination.admin().await;
    workspace(&target, "moved").await;
    let (status, dry) = target
        .post(
            "/api/v1/w/moved/apps",
            json!({"bundle": bundle, "data": true, "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    let (_, nothing) = target.get("/api/v1/w/moved/definitions").await;
    assert_eq!(
        nothing.as_array().map(Vec::len),
        Some(0),
        "a dry run wrote: {nothing}"
    );
    let (status, report) = target
        .post(
            "/api/v1/w/moved/apps",
            json!({"bundle": bundle, "data": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    assert_eq!(report["data"], dry["data"]);
    let people: BTreeMap<&str, bool> = report["data"]["people"]
        .as_array()
        .expect("people")
        .iter()
        .map(|p| {
            (
                p["email"].as_str().unwrap_or_default(),
                p["matched"] == true,
            )
        })
        .collect();
    assert_eq!(people.get("ann@example.com"), Some(&false), "{people:?}");
    assert_eq!(people.get(common::ADMIN_EMAIL), Some(&true), "{people:?}");

    // Every record arrives as it was, with every history entry.
    for entity in [
        "lead",
        "customer",
        "contact",
        "opportunity",
        "follow_up",
        "client",
        "case",
    ] {
        let before = all_records(&admin, "demo", entity).await;
        let after = all_records(&target, "moved", entity).await;
        assert_eq!(before.len(), after.len(), "{entity}");
        // The report counts the records in the bin too (one case).
        let binned = u64::from(entity == "case");
        assert_eq!(
            report["data"]["records"][entity].as_u64(),
            Some(before.len() as u64 + binned),
            "{entity}"
        );
        for (id, old) in &before {
            let new = &after[id];
            let mut expected = old["fields"].clone();
            let mut got = new["fields"].clone();
            if entity == "case" {
                // People and files get this installation's ids.
                for fields in [&mut expected, &mut got] {
                    fields.as_object_mut().map(|f| {
                        f.remove("assignee");
                        f.remove("scan")
                    });
                }
            }
            assert_eq!(expected, got, "{entity} {id}");
            assert_eq!(old["created_at"], new["created_at"]);
            assert_eq!(old["updated_at"], new["updated_at"]);
            assert_eq!(old["version"], new["version"]);
        }
        for id in before.keys().step_by(25) {
            let path = |ws: &str| format!("/api/v1/w/{ws}/entities/{entity}/records/{id}/history");
            let (_, old) = admin.get(&path("demo")).await;
            let (_, new) = target.get(&path("moved")).await;
            let summary = |h: &Value| -> Vec<(Value, Value, Value)> {
                h["entries"]
                    .as_array()
                    .or(h.as_array())
                    .expect("history")
                    .iter()
                    .map(|e| {
                        (
                            e["at"].clone(),
                            e["operation"].clone(),
                            e["changes"].clone(),
                        )
                    })
                    .collect()
            };
            let (old, new) = (summary(&old), summary(&new));
            assert!(!old.is_empty());
            if entity != "case" {
                assert_eq!(old, new, "{entity} {id}");
            } else {
                assert_eq!(old.len(), new.len());
            }
        }
    }
    // Ann's ticket is the importer's now; the assignee too; the file came along.
    let tickets = all_records(&target, "moved", "case").await;
    let (_, me) = target.get("/api/v1/account").await;
    let first_id = first["id"].as_str().expect("id");
    assert_eq!(
        tickets[first_id]["fields"]["assignee"], me["account"]["id"],
        "{me}"
    );
    assert_eq!(tickets[first_id]["fields"]["subject"], "打印机卡纸");
    let new_file = tickets[first_id]["fields"]["scan"][0]["id"]
        .as_str()
        .expect("file")
        .to_owned();
    let download = target
        .get_raw(&format!("/api/v1/w/moved/attachments/{new_file}"))
        .await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.text().await.unwrap_or_default(), "signed");
    // Ann's own case is the importer's; the binned one came along in the bin and restores.
    let ann_case = tickets
        .values()
        .find(|t| t["fields"]["subject"] == "Ann own case")
        .expect("ann's case");
    assert_eq!(ann_case["owner"], me["account"]["id"]);
    let (status, restored) = target
        .post(
            &format!("/api/v1/w/moved/entities/case/records/{binned_id}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["fields"]["subject"], "作废工单");
    // Numbers go on where they stopped.
    let (_, next) = target
        .post(
            "/api/v1/w/moved/entities/case/records",
            json!({"fields": {"subject": "third"}}),
        )
        .await;
    assert_eq!(next["fields"]["number"], "T-0004", "{next}");
    // Workflows came along and run; the role exists with its namespace.
    let (_, workflows) = target.get("/api/v1/w/moved/definitions/workflow").await;
    assert!(workflows.as_array().map_or(0, Vec::len) >= 6, "{workflows}");
    let (_, roles) = target.get("/api/v1/w/moved/roles").await;
    assert!(
        roles
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r["key"] == "acme_crm.agent"),
        "{roles}"
    );
    destination.run_jobs_until_idle().await;
    let (_, inbox) = target.get("/api/v1/w/moved/notifications").await;
    assert!(
        inbox.to_string().contains("New case third"),
        "the imported workflow did not run: {inbox}"
    );
    // Importing the same bundle again clashes and writes nothing.
    let (status, body) = target
        .post(
            "/api/v1/w/moved/apps",
            json!({"bundle": bundle, "data": true}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
}

async fn publish_in(admin: &Client, ws: &str, kind: &str, key: &str, edit: impl Fn(&mut Value)) {
    let (_, current) = admin
        .get(&format!("/api/v1/w/{ws}/definitions/{kind}/{key}"))
        .await;
    let mut document = current["published"].clone();
    edit(&mut document);
    let (status, body) = admin
        .put(
            &format!("/api/v1/w/{ws}/definitions/{kind}/{key}/draft"),
            json!({"document": document, "revision": current["revision"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = admin
        .post(
            &format!("/api/v1/w/{ws}/definitions/{kind}/{key}/versions"),
            json!({"revision": body["revision"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn an_upgrade_applies_what_does_not_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, installed) = admin
        .post(
            "/api/v1/w/demo/apps",
            json!({"bundle": desk_bundle("1.0.0")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{installed}");
    let app_id = installed["app"].as_str().expect("app id").to_owned();
    // The workspace customises: a label of the ticket, and the form's title.
    publish_in(&admin, "demo", "entity", "case", |doc| {
        doc["properties"]["subject"]["x-label"] = json!({"en": "Our subject"});
    })
    .await;
    publish_in(&admin, "demo", "form", "case_form", |doc| {
        doc["label"] = json!({"en": "Our ticket"});
    })
    .await;
    let (_, ticket) = admin
        .post(
            "/api/v1/w/demo/entities/case/records",
            json!({"fields": {"subject": "kept"}}),
        )
        .await;
    // Version 1.1.0 adds a field, a view and a right, and retitles the form.
    let mut next = desk_bundle("1.1.0");
    next["definitions"]["entity"]["case"]["properties"]["priority"] = json!({
        "type": "string", "enum": ["low", "high"], "x-kind": "single_select", "x-label": {"en": "Priority"},
        "x-options": [{"value": "low", "label": {"en": "Low"}}, {"value": "high", "label": {"en": "High"}}]
    });
    next["definitions"]["form"]["case_form"]["label"] = json!({"en": "Support ticket"});
    next["definitions"]["view"] = json!({
        "case_all": {"entity": "case", "label": {"en": "All tickets"}, "layout": "table", "columns": ["number", "subject", "priority"]}
    });
    next["roles"]["agent"]["rights"]["entities"]["case"]["delete"] = json!("own");
    let url = format!("/api/v1/w/demo/apps/{app_id}/upgrade");
    let (status, plan) = admin
        .post(&url, json!({"bundle": next, "dry_run": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    let actions: BTreeMap<String, String> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                format!(
                    "{}/{}",
                    c["kind"].as_str().unwrap_or_default(),
                    c["key"].as_str().unwrap_or_default()
                ),
                c["action"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        BTreeMap::from([
            ("entity/case".to_owned(), "update".to_owned()),
            ("form/case_form".to_owned(), "conflict".to_owned()),
            ("role/desk.agent".to_owned(), "update".to_owned()),
            ("view/case_all".to_owned(), "add".to_owned()),
        ]),
        "{plan}"
    );
    // An exported copy of the customised app carries the template's base: upgrading the copy
    // plans exactly the same (its customisations stay customisations).
    let (status, exported) = admin
        .get(&format!("/api/v1/w/demo/apps/export?app={app_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{exported}");
    assert_eq!(
        exported["base"]["definitions"]["entity"]["case"]["properties"]["subject"]["x-label"]["en"],
        "Subject"
    );
    workspace(&admin, "copy").await;
    let (status, copied) = admin
        .post("/api/v1/w/copy/apps", json!({"bundle": exported}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{copied}");
    let (_, copy_plan) = admin
        .post(
            &format!(
                "/api/v1/w/copy/apps/{}/upgrade",
                copied["app"].as_str().unwrap_or_default()
            ),
            json!({"bundle": next, "dry_run": true}),
        )
        .await;
    assert_eq!(
        copy_plan["changes"].as_array().map(Vec::len),
        Some(4),
        "{copy_plan}"
    );
    assert!(
        copy_plan.to_string().contains("\"action\":\"conflict\""),
        "{copy_plan}"
    );
    let conflict = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["action"] == "conflict")
        .expect("conflict");
    assert_eq!(conflict["conflicts"], json!(["/label/en"]));
    let (_, unchanged) = admin.get("/api/v1/w/demo/definitions/view").await;
    assert!(
        !unchanged.to_string().contains("case_all"),
        "a dry run wrote"
    );

    let (status, applied) = admin.post(&url, json!({"bundle": next})).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["applied"], true);
    let (_, entity) = admin.get("/api/v1/w/demo/definitions/entity/case").await;
    let properties = &entity["published"]["properties"];
    assert_eq!(properties["subject"]["x-label"]["en"], "Our subject");
    assert!(properties["priority"].is_object(), "{entity}");
    let (_, versions) = admin
        .get("/api/v1/w/demo/definitions/entity/case/versions")
        .await;
    assert!(
        versions.to_string().contains("upgrade:desk@1.1.0"),
        "{versions}"
    );
    let (_, form) = admin.get("/api/v1/w/demo/definitions/form/case_form").await;
    assert_eq!(form["published"]["label"]["en"], "Our ticket");
    let (status, record) = admin
        .get(&format!(
            "/api/v1/w/demo/entities/case/records/{}",
            ticket["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["fields"]["subject"], "kept");
    let (_, roles) = admin.get("/api/v1/w/demo/roles").await;
    let agent = roles
        .as_array()
        .expect("roles")
        .iter()
        .find(|r| r["key"] == "desk.agent")
        .expect("agent")
        .clone();
    assert!(agent.to_string().contains("\"delete\":\"own\""), "{agent}");
    // The open conflict stays until resolved.
    let (status, again) = admin
        .post(&url, json!({"bundle": next, "dry_run": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        again["changes"].as_array().map(Vec::len),
        Some(1),
        "{again}"
    );
    let (status, resolved) = admin
        .post(
            &url,
            json!({"bundle": next, "resolutions": {"form/case_form": "theirs"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    let (_, form) = admin.get("/api/v1/w/demo/definitions/form/case_form").await;
    assert_eq!(form["published"]["label"]["en"], "Support ticket");
    let (_, done) = admin
        .post(&url, json!({"bundle": next, "dry_run": true}))
        .await;
    assert_eq!(done["changes"], json!([]), "{done}");
    let (_, apps) = admin.get("/api/v1/w/demo/apps").await;
    assert!(apps.to_string().contains("\"version\":\"1.1.0\""), "{apps}");

    // Another template's bundle is refused; so is a version whose merge would not check.
    let mut foreign = desk_bundle("2.0.0");
    foreign["manifest"]["name"] = json!("other");
    let (status, body) = admin.post(&url, json!({"bundle": foreign})).await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/bundle/manifest/name"]
    );
    let mut foreign = next.clone();
    foreign["manifest"]["version"] = json!("1.2.0");
    foreign["roles"]["agent"]["rights"]["entities"]["ghost"] = json!({"read": "all"});
    let (status, body) = admin.post(&url, json!({"bundle": foreign})).await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        pointers
            .iter()
            .any(|p| p.ends_with("/document/entities/ghost")),
        "{body}"
    );
    let mut broken = next.clone();
    broken["manifest"]["version"] = json!("1.2.0");
    broken["definitions"]["view"]["case_all"]["columns"] = json!(["number", "ghost"]);
    let (status, body) = admin.post(&url, json!({"bundle": broken})).await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(pointers.iter().any(|p| p.ends_with("/columns/1")), "{body}");
    let (_, apps) = admin.get("/api/v1/w/demo/apps").await;
    assert!(apps.to_string().contains("\"version\":\"1.1.0\""), "{apps}");
    // The Sales CRM of the demo is at the built-in version: nothing to upgrade.
    let sales = apps
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["template"] == "sales-crm")
        .expect("sales crm app");
    assert!(sales["available"].is_null());
    let (status, plan) = admin
        .get(&format!(
            "/api/v1/w/demo/apps/{}/upgrade",
            sales["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["changes"], json!([]));
}

async fn bad_bundles_are_refused_whole(backend: Backend) {
    let app = bare_app(backend).await;
    let admin = app.admin().await;
    workspace(&admin, "ws").await;
    let count = |admin: &Client| {
        let admin = admin.clone();
        async move {
            let (_, all) = admin.get("/api/v1/w/ws/definitions").await;
            let (_, roles) = admin.get("/api/v1/w/ws/roles").await;
            (
                all.as_array().map_or(0, Vec::len),
                roles.to_string().contains("agent"),
            )
        }
    };
    let mut bad = desk_bundle("1.0.0");
    bad["definitions"]["workflow"]["case_reminder"]["condition"] = json!("record.subject ==");
    bad["roles"]["agent"]["rights"]["entities"]["ghost"] = json!({"read": "all"});
    bad["data"] = json!({
        "people": [],
        "records": [
            {"entity": "case", "id": "6f1c1c4e-7a43-4a8e-9a4c-0d8c7f1e2a01",
             "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "version": 1,
             "fields": {"subject": "x", "customer": "6f1c1c4e-7a43-4a8e-9a4c-0d8c7f1e2a99"}}
        ]
    });
    let (status, body) = admin
        .post("/api/v1/w/ws/apps", json!({"bundle": bad, "data": true}))
        .await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        pointers.contains(&"/bundle/definitions/workflow/case_reminder/condition".to_owned()),
        "{body}"
    );
    assert!(
        pointers.contains(&"/bundle/roles/agent/rights/entities/ghost".to_owned()),
        "{body}"
    );
    let located = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .find(|e| e["pointer"] == "/bundle/definitions/workflow/case_reminder/condition")
        .expect("condition");
    assert!(located["line"].is_number(), "{located}");
    assert_eq!(count(&admin).await, (0, false));
    // Definitions fine, a record referring to nothing: still nothing installed.
    let mut dangling = desk_bundle("1.0.0");
    dangling["data"] = bad["data"].clone();
    let (status, body) = admin
        .post(
            "/api/v1/w/ws/apps",
            json!({"bundle": dangling, "data": true}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/bundle/data/records/0/fields/customer"]
    );
    assert_eq!(count(&admin).await, (0, false));
    // A malformed data section, and a bundle over the size limit.
    let mut malformed = desk_bundle("1.0.0");
    malformed["data"] = json!({"records": [{"entity": "case"}]});
    let (status, body) = admin
        .post(
            "/api/v1/w/ws/apps",
            json!({"bundle": malformed, "data": true}),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let mut huge = desk_bundle("1.0.0");
    huge["definitions"]["entity"]["case"]["description"] = json!("x".repeat(65 * 1024 * 1024));
    // The server answers 413 as soon as the limit is passed and closes the connection; a client
    // still sending may see that as a broken pipe instead. Either way nothing is installed.
    let mut request = admin
        .http
        .post(format!("{}/api/v1/w/ws/apps", admin.base))
        .header("content-type", "application/json")
        .body(json!({"bundle": huge}).to_string());
    if let Some(csrf) = &admin.csrf {
        request = request.header("x-csrf-token", csrf);
    }
    match request.send().await {
        Ok(response) => assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE),
        Err(error) => assert!(error.is_request(), "{error}"),
    }
    // A member without the templates right may not install.
    let (member, _) = common::join_member_in(&app, &admin, "ws", "bob@example.com", "member").await;
    let (status, body) = member
        .post("/api/v1/w/ws/apps", json!({"bundle": desk_bundle("1.0.0")}))
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(count(&admin).await, (0, false));
    // The good bundle installs; the dry run before it wrote nothing.
    let (status, dry) = admin
        .post(
            "/api/v1/w/ws/apps",
            json!({"bundle": desk_bundle("1.0.0"), "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(count(&admin).await, (0, false));
    let (status, _) = admin
        .post("/api/v1/w/ws/apps", json!({"bundle": desk_bundle("1.0.0")}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(count(&admin).await, (4, true));
    // Another bundle's records may not land in this app's entities.
    let intruder = json!({
        "manifest": {"name": "intruder", "version": "1.0.0", "title": {"en": "Intruder"}},
        "definitions": {"entity": {"note": {"type": "object", "x-label": {"en": "Note"},
            "properties": {"text": {"type": "string", "x-kind": "text", "x-label": {"en": "Text"}}}}}},
        "data": {"records": [{"entity": "case", "id": "6f1c1c4e-7a43-4a8e-9a4c-0d8c7f1e2a05",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "version": 1,
            "fields": {"subject": "smuggled"}}]}
    });
    let (status, body) = admin
        .post(
            "/api/v1/w/ws/apps",
            json!({"bundle": intruder, "data": true}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/bundle/data/records/0/entity"]
    );
    assert_eq!(count(&admin).await, (4, true));
}

both_databases!(
    cloning_the_sales_crm_twice_gives_independent_apps,
    an_app_with_its_records_moves_to_another_installation,
    an_upgrade_applies_what_does_not_conflict,
    bad_bundles_are_refused_whole,
);
