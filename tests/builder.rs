//! The no-code builders through their pages: the entity designer on the Sales CRM's leads and
//! opportunities (add a field, refuse bad ones and stale pages, reorder, hide and restore, a
//! conditional requirement, the dry run of a kind change, publish, roll back, JSON), the form,
//! formula and report builders, and the workflow designer (a two-level discount approval on
//! quotes, designed, refused when half built, published, run, retried and approved).

mod common;

use common::{Backend, PageClient, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";

/// Whether a refused designer page names the problem at `pointer` (escaped as pages escape).
fn names_problem(html: &str, pointer: &str) -> bool {
    html.contains(&format!(
        "data-pointer=\"{}\"",
        pointer.replace('/', "&#x2f;")
    ))
}

/// The revision a designer page was drawn at.
fn revision_of(html: &str) -> String {
    let at = html
        .find("name=\"revision\" value=\"")
        .unwrap_or_else(|| panic!("no revision in {html}"));
    html[at + 23..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// A server whose demo workspace holds a year of demo records.
async fn with_demo_data(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        common::Options {
            demo_data: true,
            ..Default::default()
        },
    )
    .await
}

async fn designer(pages: &PageClient, entity: &str) -> String {
    let (status, html) = pages.get(&format!("/w/demo/build/entities/{entity}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    html
}

/// Posts a designer form at the page's current revision.
async fn post(
    pages: &PageClient,
    entity: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let revision = revision_of(&designer(pages, entity).await);
    let mut form: Vec<(&str, &str)> = vec![("revision", revision.as_str())];
    form.extend_from_slice(fields);
    pages
        .post(&format!("/w/demo/build/entities/{entity}"), &form)
        .await
}

async fn published(app: &TestApp, entity: &str) -> Value {
    let (_, body) = app
        .admin()
        .await
        .get(&format!("{W}/definitions/entity/{entity}"))
        .await;
    body
}

async fn the_entity_designer_changes_leads_without_code(backend: Backend) {
    let app = with_demo_data(backend).await;
    let pages = PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "en").await;
    let (status, home) = pages.get("/w/demo/build").await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains("data-testid=\"design-lead\""), "{home}");
    let page = designer(&pages, "lead").await;
    assert!(page.contains("id=\"f-phone\""), "{page}");
    // The template's own field order, kept on this database.
    let order = published(&app, "lead").await["published"]["x-field-order"].clone();
    assert_eq!(
        order.as_array().map(|o| o[..4].to_vec()),
        Some(vec![
            json!("name"),
            json!("company"),
            json!("title"),
            json!("phone")
        ]),
        "{order}"
    );

    // Add a WeChat ID: saved to the draft, listed as a change, not yet in force.
    let (status, location, body) = post(
        &pages,
        "lead",
        &[
            ("op", "add_field"),
            ("field_key", "wechat"),
            ("kind", "text"),
            ("label_en", "WeChat ID"),
            ("label_zh", "微信号"),
            ("max_length", "50"),
            ("indexed", "1"),
            ("search", "yes"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert!(
        location.ends_with("?field=wechat#field-editor"),
        "{location}"
    );
    let page = designer(&pages, "lead").await;
    assert!(page.contains("data-testid=\"changes\"") && page.contains("<code>wechat</code>"));
    assert!(
        published(&app, "lead").await["published"]["properties"]
            .get("wechat")
            .is_none()
    );

    // Refused edits save nothing and say why, at the field.
    let before = published(&app, "lead").await;
    let (status, _, body) = post(
        &pages,
        "lead",
        &[
            ("op", "add_field"),
            ("field_key", "phone"),
            ("kind", "single_select"),
            ("label_en", "Again"),
            ("option_value", "a"),
            ("option_value", "a"),
            ("search", "yes"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(names_problem(&body, "/field/key"), "{body}");
    assert!(
        names_problem(&body, "/field/search"),
        "a select is not searched: {body}"
    );
    assert!(names_problem(&body, "/field/options/1/value"), "{body}");
    // The refused spec is shown again for correction.
    assert!(body.contains("value=\"Again\""), "{body}");
    // A page drawn before someone else's change is refused as stale.
    let stale = revision_of(&designer(&pages, "lead").await);
    let (_, _, _) = post(
        &pages,
        "lead",
        &[("op", "move_up"), ("field_key", "wechat")],
    )
    .await;
    let (status, _, body) = pages
        .post(
            "/w/demo/build/entities/lead",
            &[
                ("revision", stale.as_str()),
                ("op", "hide"),
                ("field_key", "notes"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("someone changed this entity"), "{body}");
    let after = published(&app, "lead").await;
    assert_eq!(
        after["draft"]["properties"]["notes"].get("x-hidden"),
        None,
        "nothing hidden"
    );
    assert_eq!(after["published"], before["published"]);

    // Reorder: WeChat right after the phone. Publish; the order holds on this database.
    let order = "name,company,title,phone,wechat,email,source,status,budget,company_size,region,industry,next_follow_up_date,notes,score";
    let (status, _, body) = post(&pages, "lead", &[("op", "reorder"), ("order", order)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (status, _, body) = post(&pages, "lead", &[("op", "publish")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let lead = published(&app, "lead").await;
    let keys: Vec<&str> = lead["published"]["x-field-order"]
        .as_array()
        .expect("the field order")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(keys[3..5], ["phone", "wechat"], "{keys:?}");
    assert_eq!(
        lead["published"]["properties"]["wechat"]["x-label"]["zh-CN"],
        "微信号"
    );
    let admin = app.admin().await;
    let (status, created) = admin
        .post(
            &format!("{W}/entities/lead/records"),
            json!({"fields": {"name": "王芳", "source": "event", "status": "new", "wechat": "wangfang_88"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(lead["published"]["properties"]["wechat"]["x-search"], true);
    app.run_jobs_until_idle().await;
    let (_, found) = admin
        .get(&format!("{W}/search?q=wangfang_8&entity=lead"))
        .await;
    assert_eq!(
        found["results"][0]["records"][0]["matched"],
        json!(["wechat"]),
        "{found}"
    );
    let (status, refused) = admin
        .post(
            &format!("{W}/entities/lead/records"),
            json!({"fields": {"name": "李雷", "source": "event", "status": "new", "wechat": "x".repeat(51)}}),
        )
        .await;
    assert_eq!(
        common::assert_problem(status, &refused, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/wechat"]
    );

    // Hide and restore: the values stay.
    let (status, _, _) = post(&pages, "lead", &[("op", "hide"), ("field_key", "wechat")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    post(&pages, "lead", &[("op", "publish")]).await;
    let (_, shown) = admin
        .get(&format!(
            "{W}/entities/lead/records/{}",
            created["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert!(shown["fields"].get("wechat").is_none(), "hidden: {shown}");
    post(
        &pages,
        "lead",
        &[("op", "restore"), ("field_key", "wechat")],
    )
    .await;
    post(&pages, "lead", &[("op", "publish")]).await;
    let (_, shown) = admin
        .get(&format!(
            "{W}/entities/lead/records/{}",
            created["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(shown["fields"]["wechat"], "wangfang_88", "{shown}");

    // The dry run of a kind change: regions are text; as whole numbers they would not convert.
    let (status, _, body) = post(
        &pages,
        "lead",
        &[
            ("op", "update_field"),
            ("field_key", "region"),
            ("kind", "integer"),
            ("label_en", "Region"),
            ("label_zh", "地区"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let page = designer(&pages, "lead").await;
    let impact = page
        .split("data-testid=\"impact\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_default()
        .to_owned();
    let unconvertible: u64 = impact
        .split("; ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(unconvertible > 100, "{impact}");
    let (status, _, _) = post(&pages, "lead", &[("op", "discard")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        published(&app, "lead").await["draft"],
        Value::Null,
        "the draft is gone; nothing converted"
    );

    // Roll back to the template's version: the WeChat field leaves the definition, and its
    // stored values stay in the records.
    let (status, _, body) = post(&pages, "lead", &[("op", "rollback"), ("version", "1")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let lead = published(&app, "lead").await;
    assert!(lead["published"]["properties"].get("wechat").is_none());
    let (_, versions) = admin
        .get(&format!("{W}/definitions/entity/lead/versions"))
        .await;
    assert!(versions.to_string().contains("rollback:1"), "{versions}");

    // JSON: a syntax error is located and saves nothing; valid JSON becomes the draft.
    let (status, _, body) = post(
        &pages,
        "lead",
        &[
            ("op", "json"),
            ("document", "{\n  \"type\": \"object\",\n  oops\n}"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("(3:3)"), "{body}");
    let mut document = lead["published"].clone();
    document["x-label"]["zh-CN"] = json!("销售线索");
    let (status, _, body) = post(
        &pages,
        "lead",
        &[("op", "json"), ("document", &document.to_string())],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(
        published(&app, "lead").await["draft"]["x-label"]["zh-CN"],
        "销售线索"
    );
}

/// "Lost reason is required only when the stage is lost": an if/then in the entity, written
/// by the designer and enforced on every write.
async fn a_field_is_required_only_under_a_condition(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pages =
        PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "zh-CN").await;
    let (status, _, body) = post(
        &pages,
        "opportunity",
        &[
            ("op", "require_when"),
            ("rule_field", "lost_reason"),
            ("rule_when", "stage"),
            ("rule_equals", "lost"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let page = designer(&pages, "opportunity").await;
    assert!(page.contains("条件必填 stage = lost"), "{page}");
    let (status, _, body) = post(&pages, "opportunity", &[("op", "publish")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let admin = app.admin().await;
    let (_, customer) = admin
        .post(
            &format!("{W}/entities/customer/records"),
            json!({"fields": {"name": "杭州云帆", "lifecycle_stage": "intent"}}),
        )
        .await;
    let deal = |stage: &str, reason: Option<&str>| {
        let mut fields = json!({"name": "云帆 二期", "customer": customer["id"], "stage": stage});
        if let Some(reason) = reason {
            fields["lost_reason"] = json!(reason);
        }
        json!({"fields": fields})
    };
    let url = format!("{W}/entities/opportunity/records");
    let (status, _) = admin.post(&url, deal("proposal", None)).await;
    assert_eq!(status, StatusCode::CREATED, "not lost: no reason needed");
    let (status, body) = admin.post(&url, deal("lost", None)).await;
    let pointers = common::assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(pointers.iter().any(|p| p.contains("lost_reason")), "{body}");
    let (status, body) = admin.post(&url, deal("lost", Some("price"))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A rule naming a field that does not exist is refused at its pointer.
    let (_, opportunity) = admin
        .get(&format!("{W}/definitions/entity/opportunity"))
        .await;
    let mut document = opportunity["published"].clone();
    document["allOf"] = json!([{"if": {"properties": {"ghost": {"const": "x"}}, "required": ["ghost"]},
                                "then": {"required": ["lost_reason"]}}]);
    let (status, body) = admin
        .put(
            &format!("{W}/definitions/entity/opportunity/draft"),
            json!({"document": document, "revision": opportunity["revision"]}),
        )
        .await;
    let pointers = common::assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        pointers
            .iter()
            .any(|p| p == "/document/allOf/0/if/properties"),
        "{body}"
    );
    // Someone without the right to change definitions does not reach the builder.
    let (_, _) = common::join_member(&app, &admin, "rep@example.com", "member").await;
    let rep = PageClient::sign_in(&app, "rep@example.com", "user-password-123", "en").await;
    let (status, _) = rep.get("/w/demo/build").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn form_post(
    pages: &PageClient,
    key: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let (status, html) = pages.get(&format!("/w/demo/build/forms/{key}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let revision = revision_of(&html);
    let mut form: Vec<(&str, &str)> = vec![("revision", revision.as_str())];
    form.extend_from_slice(fields);
    pages
        .post(&format!("/w/demo/build/forms/{key}"), &form)
        .await
}

/// The WeChat ID goes onto the lead form, in the contact section, shown only for qualified
/// leads; bad rules and stale pages save nothing.
async fn the_form_builder_places_a_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let pages = PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "en").await;
    // The preview as a role: a sales rep sees the quote's approval note read-only.
    let (status, full) = pages.get("/w/demo/build/forms/quote_form").await;
    assert_eq!(status, StatusCode::OK, "{full}");
    assert!(!full.contains("data-access="), "full rights: {full}");
    let (_, as_rep) = pages
        .get("/w/demo/build/forms/quote_form?as_role=crm.sales_rep")
        .await;
    assert!(
        as_rep.contains("data-access=\"read_only\"")
            && as_rep.contains("<option value=\"crm.sales_rep\" selected>"),
        "{as_rep}"
    );
    for fields in [
        &[
            ("op", "add_field"),
            ("field_key", "wechat"),
            ("kind", "text"),
            ("label_en", "WeChat ID"),
            ("label_zh", "微信号"),
        ][..],
        &[("op", "publish")][..],
    ] {
        let (status, _, body) = post(&pages, "lead", fields).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    }
    let page = designer(&pages, "lead").await;
    assert!(
        page.contains("data-testid=\"design-form-lead_form\""),
        "{page}"
    );
    let (_, html) = pages.get("/w/demo/build/forms/lead_form").await;
    let palette = html
        .split("data-testid=\"palette\"")
        .nth(1)
        .unwrap_or_default();
    assert!(
        palette
            .split("</ul>")
            .next()
            .unwrap_or_default()
            .contains("data-key=\"wechat\""),
        "{html}"
    );

    // Place it in the second section (contact details), then set how it shows.
    let (status, location, body) = form_post(
        &pages,
        "lead_form",
        &[("op", "place"), ("field", "wechat"), ("section", "1")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert!(location.ends_with("?field=wechat#placement"), "{location}");
    let (status, _, body) = form_post(
        &pages,
        "lead_form",
        &[
            ("op", "settings"),
            ("field", "wechat"),
            ("help_zh", "客户的微信号"),
            ("help_en", "The contact's WeChat ID"),
            ("visible_field", "status"),
            ("visible_op", "is"),
            ("visible_value", "qualified"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    // A rule in rhai that does not compile is refused with its place; nothing is saved.
    let (status, _, body) = form_post(
        &pages,
        "lead_form",
        &[
            ("op", "settings"),
            ("field", "wechat"),
            ("visible_script", "record.status =="),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body.contains("visible_when") && body.contains("(1:"),
        "{body}"
    );
    // A stale page is refused.
    let (_, html) = pages.get("/w/demo/build/forms/lead_form").await;
    let stale = revision_of(&html);
    form_post(&pages, "lead_form", &[("op", "up"), ("field", "wechat")]).await;
    let (status, _, _) = pages
        .post(
            "/w/demo/build/forms/lead_form",
            &[
                ("revision", stale.as_str()),
                ("op", "remove"),
                ("field", "wechat"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // A layout naming a field twice is refused at its place.
    let (status, _, body) = form_post(
        &pages,
        "lead_form",
        &[("op", "arrange"), ("layout", r#"[["name","name"]]"#)],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(names_problem(&body, "/layout/0/1"), "{body}");
    let (status, _, body) = form_post(&pages, "lead_form", &[("op", "publish")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");

    let admin = app.admin().await;
    let (_, form) = admin.get(&format!("{W}/definitions/form/lead_form")).await;
    let contact = &form["published"]["sections"][1]["fields"];
    let wechat = contact
        .as_array()
        .and_then(|f| f.iter().find(|p| p["field"] == "wechat"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        wechat["visible_when"], "record.status == \"qualified\"",
        "{form}"
    );
    assert_eq!(wechat["help"]["zh-CN"], "客户的微信号");
    // The new-lead form shows it in its section, with its help.
    let (_, new_form) = pages.get("/w/demo/e/lead/new").await;
    assert!(
        new_form.contains("name=\"wechat\"") && new_form.contains("The contact&#x27;s WeChat ID"),
        "{new_form}"
    );
    // Taking it off the form keeps the field in the entity.
    form_post(
        &pages,
        "lead_form",
        &[("op", "remove"), ("field", "wechat")],
    )
    .await;
    form_post(&pages, "lead_form", &[("op", "publish")]).await;
    assert!(
        published(&app, "lead").await["published"]["properties"]
            .get("wechat")
            .is_some()
    );
    let (_, form) = admin.get(&format!("{W}/definitions/form/lead_form")).await;
    assert!(!form["published"].to_string().contains("wechat"), "{form}");
}

/// The lead score formula changed in the formula editor: checked while typing (line:column),
/// tried on a lead, published, and every lead recomputed by the background job.
async fn a_formula_is_checked_tried_and_recomputed(backend: Backend) {
    let app = with_demo_data(backend).await;
    let pages = PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "en").await;
    let page = pages.get("/w/demo/build/entities/lead?field=score").await.1;
    assert!(
        page.contains("data-testid=\"formula\"") && page.contains("days_between(from, to)"),
        "{page}"
    );
    let check = "/w/demo/build/entities/lead/check-formula";
    // A syntax error, with its place; a field that does not exist; then a good one, tried.
    let (status, answer) = pages
        .post_json(
            check,
            json!({"field": "score", "formula": "let x = ;\n1", "result": "integer"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["problems"][0]["line"], 1, "{answer}");
    let (_, answer) = pages
        .post_json(
            check,
            json!({"field": "score", "formula": "record.shoe_size", "result": "integer"}),
        )
        .await;
    assert!(
        answer["problems"].to_string().contains("shoe_size"),
        "{answer}"
    );
    let admin = app.admin().await;
    let (_, leads) = admin
        .post(
            &format!("{W}/entities/lead/records/query"),
            json!({"limit": 1, "total": "exact"}),
        )
        .await;
    let total = leads["total"].as_u64().unwrap_or(0);
    let lead = leads["records"][0].clone();
    let formula = "if record.status == \"new\" { 10 } else { 20 }";
    let (_, answer) = pages
        .post_json(check, json!({"field": "score", "formula": formula, "result": "integer", "record_id": lead["id"]}))
        .await;
    let expected = if lead["fields"]["status"] == "new" {
        10
    } else {
        20
    };
    assert_eq!(answer["value"]["result"], expected, "{answer}");
    // Nothing was saved by checking.
    assert!(published(&app, "lead").await["draft"].is_null());
    // Save and publish; the recompute job brings every lead in line.
    let (status, _, body) = post(
        &pages,
        "lead",
        &[
            ("op", "update_field"),
            ("field_key", "score"),
            ("kind", "formula"),
            ("label_en", "Lead score"),
            ("label_zh", "线索评分"),
            ("formula", formula),
            ("result", "integer"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (status, _, body) = post(&pages, "lead", &[("op", "publish")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let page = designer(&pages, "lead").await;
    assert!(page.contains("data-testid=\"recompute\""), "{page}");
    app.run_jobs_until_idle().await;
    let page = designer(&pages, "lead").await;
    assert!(
        page.contains(&format!("Recomputed {total} records")),
        "{page}"
    );
    for (status_value, score) in [("new", 10), ("contacted", 20)] {
        let (_, wrong) = admin
            .post(
                &format!("{W}/entities/lead/records/query"),
                json!({"filter": {"and": [{"field": "status", "op": "eq", "value": status_value},
                                          {"field": "score", "op": "ne", "value": score}]}, "total": "exact", "limit": 1}),
            )
            .await;
        assert_eq!(wrong["total"], 0, "{status_value}: {wrong}");
    }
}

/// "Won amount by month", built in the report builder on the demo deals: checked, previewed,
/// published, equal to the template's own report, and added to the sales dashboard.
async fn a_report_is_built_and_put_on_a_dashboard(backend: Backend) {
    let app = with_demo_data(backend).await;
    let pages = PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "en").await;
    let (status, _) = pages.get("/w/demo/build").await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = pages.get("/w/demo/build/reports/won_monthly").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let base = "/w/demo/build/reports/won_monthly";
    let form = |measure_field: &'static str| {
        vec![
            ("revision", "0"),
            ("op", "save"),
            ("label_en", "Won amount by month"),
            ("label_zh", "每月赢单金额"),
            ("entity", "opportunity"),
            ("chart", "bar"),
            ("cond_field", "stage"),
            ("cond_op", "in"),
            ("cond_value", "contract_signed, delivery"),
            ("date_field", "expected_close_date"),
            ("period", "last_12_months"),
            ("group_field", "expected_close_date"),
            ("group_bucket", "month"),
            ("measure_op", "sum"),
            ("measure_field", measure_field),
            ("measure_en", "Won"),
            ("measure_zh", "赢单金额"),
        ]
    };
    // A sum over a text field is refused at its place; nothing is saved.
    let (status, _, body) = pages.post(base, &form("name")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(names_problem(&body, "/spec/measures/0/field"), "{body}");
    let admin = app.admin().await;
    let (status, _) = admin
        .get(&format!("{W}/definitions/report/won_monthly"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = pages.post(base, &form("amount")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (_, page) = pages.get(base).await;
    assert!(
        page.contains("report-result") && page.contains("data-testid=\"publish-report\""),
        "{page}"
    );
    let revision = revision_of(&page);
    let (status, _, body) = pages
        .post(base, &[("revision", revision.as_str()), ("op", "publish")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    // The same numbers as the template's own "won by month".
    let (status, built) = admin.get(&format!("{W}/reports/won_monthly/run")).await;
    assert_eq!(status, StatusCode::OK, "{built}");
    let (_, template) = admin.get(&format!("{W}/reports/won_by_month/run")).await;
    let won: Vec<Value> = template["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["values"][0].clone())
        .collect();
    let ours: Vec<Value> = built["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["values"][0].clone())
        .collect();
    assert_eq!(ours, won, "{built}");
    assert!(ours.iter().any(|v| v.as_str().is_some_and(|s| s != "0.00") || v.as_f64().is_some_and(|n| n > 0.0)), "{built}");
    // Onto the sales dashboard.
    let (_, page) = pages.get(base).await;
    let revision = revision_of(&page);
    let (status, location, body) = pages
        .post(
            base,
            &[
                ("revision", revision.as_str()),
                ("op", "add_to_dashboard"),
                ("dashboard", "sales_overview"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location, "/w/demo/dashboards/sales_overview");
    let (_, board) = admin
        .get(&format!("{W}/definitions/dashboard/sales_overview"))
        .await;
    assert!(
        board["published"]["items"]
            .to_string()
            .contains("won_monthly"),
        "{board}"
    );
    let (status, html) = pages.get("/w/demo/dashboards/sales_overview").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-report=\"won_monthly\""), "{html}");
}

/// Posts a workflow designer form at the page's current revision.
async fn flow_post(
    pages: &PageClient,
    key: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let path = format!("/w/demo/build/workflows/{key}");
    let (status, page) = pages.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let revision = revision_of(&page);
    let mut form: Vec<(&str, &str)> = vec![("revision", revision.as_str())];
    form.extend_from_slice(fields);
    pages.post(&path, &form).await
}

async fn workflow_definition(admin: &common::Client, key: &str) -> Value {
    let (status, body) = admin.get(&format!("{W}/definitions/workflow/{key}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The approval step the designer's editor posts: the owner's manager, then the director over
/// 30%; `director` names the director's role.
fn approval_form<'a>(director: &'a str, index: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("op", "step"),
        ("index", index),
        ("at", "0"),
        ("step_type", "approval"),
        ("step_id", "approve"),
        ("title", "{{ record.name }}: {{ record.discount }}% off"),
        ("level0_label_en", "Manager"),
        ("level0_label_zh", "直属上级"),
        ("level0_approver", "owner_manager"),
        ("level0_deadline_days", "2"),
        ("level0_remind", "on"),
        ("level0_then", "escalate"),
        ("level0_escalate", "role:crm.sales_manager"),
        ("level1_label_en", "Director"),
        ("level1_approver", director),
        ("level1_when_field", "discount"),
        ("level1_when_op", "gt"),
        ("level1_when_value", "30"),
        ("lock_record", "on"),
    ]
}

async fn a_discount_approval_is_designed_run_and_approved(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (rep, rep_id) = common::join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;
    let (mgr, mgr_id) =
        common::join_member(&app, &admin, "mgr@example.com", "crm.sales_manager").await;
    let (director, _) =
        common::join_member(&app, &admin, "director@example.com", "crm.director").await;
    let (status, body) = admin
        .patch(
            &format!("{W}/members/{rep_id}"),
            json!({"manager_id": mgr_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let pages = PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "en").await;
    // A rep may not open the designer.
    let rep_pages = PageClient::sign_in(&app, "rep@example.com", "user-password-123", "en").await;
    let (status, _) = rep_pages
        .get("/w/demo/build/workflows/quote_discount_approval")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The shipped approval is turned off from the designer: live at once, no draft left.
    let (_, home) = pages.get("/w/demo/build").await;
    assert!(
        home.contains("design-workflow-quote_discount_approval"),
        "{home}"
    );
    let (status, _, body) =
        flow_post(&pages, "quote_discount_approval", &[("op", "disable")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let shipped = workflow_definition(&admin, "quote_discount_approval").await;
    assert_eq!(shipped["published"]["enabled"], false, "{shipped}");
    assert!(shipped["draft"].is_null(), "{shipped}");

    // A new workflow on quotes.
    let create = [
        ("key", "big_discount"),
        ("label_en", "Big discount approval"),
        ("label_zh", "大额折扣审批"),
        ("entity", "quote"),
    ];
    let (status, location, body) = pages.post("/w/demo/build/workflows", &create).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(location, "/w/demo/build/workflows/big_discount");
    let (status, _, body) = pages.post("/w/demo/build/workflows", &create).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a second one with the key: {body}"
    );

    // The condition: raw rhai that does not compile is refused with its line and column.
    let (status, _, body) = flow_post(
        &pages,
        "big_discount",
        &[("op", "condition"), ("cond_script", "record.discount >")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(names_problem(&body, "/condition"), "{body}");
    assert!(body.contains("1:"), "line and column: {body}");
    let (status, _, body) = flow_post(
        &pages,
        "big_discount",
        &[
            ("op", "condition"),
            ("cond_field", "discount"),
            ("cond_op", "gt"),
            ("cond_value", "20"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");

    // A half-built approval is explained and saves nothing; the page keeps what was typed.
    let before = workflow_definition(&admin, "big_discount").await;
    let (status, _, body) = flow_post(
        &pages,
        "big_discount",
        &[
            ("op", "step"),
            ("index", "new"),
            ("at", "0"),
            ("step_type", "approval"),
            ("step_id", "approve"),
            ("level0_label_en", "Manager"),
            ("level0_deadline_days", "0"),
            ("lock_record", "on"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        names_problem(&body, "/steps/0/levels/0/approvers"),
        "{body}"
    );
    assert!(
        names_problem(&body, "/steps/0/levels/0/deadline/working_days"),
        "{body}"
    );
    assert!(body.contains("value=\"Manager\""), "kept as typed: {body}");
    // Sent again from that page, it is still a new step (it replaces nothing), and the saved
    // step drawn after it keeps its own place.
    assert!(
        body.contains(
            "name=\"index\" value=\"new\"><input type=\"hidden\" name=\"at\" value=\"0\">"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "name=\"op\" value=\"step_remove\"><input type=\"hidden\" name=\"index\" value=\"0\">"
        ),
        "the starter step is still step 0 of the saved workflow: {body}"
    );
    // A step that is not an object is refused, not a server error.
    let (status, _, body) = flow_post(
        &pages,
        "big_discount",
        &[
            ("op", "step_json"),
            ("index", "new"),
            ("at", "0"),
            ("step_json", "[]"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(names_problem(&body, "/steps/0"), "{body}");
    // A role the workspace does not have.
    let (status, _, body) = flow_post(
        &pages,
        "big_discount",
        &approval_form("role:director", "new"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        names_problem(&body, "/steps/0/levels/1/approvers/0"),
        "{body}"
    );
    assert_eq!(
        workflow_definition(&admin, "big_discount").await["revision"],
        before["revision"],
        "nothing saved"
    );

    // The real thing, then the steps around it.
    let (status, _, body) = flow_post(
        &pages,
        "big_discount",
        &approval_form("role:crm.director", "new"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    // A check edited as JSON, first: a quote needs a validity date.
    let check = json!({"id": "check_validity", "type": "script",
        "script": "if record.valid_until == () { throw \"the quote has no validity date\" } true"})
    .to_string();
    let (status, _, body) = flow_post(
        &pages,
        "big_discount",
        &[
            ("op", "step_json"),
            ("index", "new"),
            ("at", "0"),
            ("step_json", &check),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    for (at, id, status_value, next) in [
        ("2", "mark_approved", "approved", "end"),
        ("3", "mark_rejected", "rejected", ""),
    ] {
        let (status, _, body) = flow_post(
            &pages,
            "big_discount",
            &[
                ("op", "step"),
                ("index", "new"),
                ("at", at),
                ("step_type", "set_fields"),
                ("step_id", id),
                ("set_field", "status"),
                ("set_value", status_value),
                ("set_field", "approval_note"),
                ("set_value", "{{ steps.approve.comment }}"),
                ("step_next", next),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    }
    // Rejections go to mark_rejected: the approval is saved again with its target.
    let mut again = approval_form("role:crm.director", "1");
    again.push(("on_reject", "mark_rejected"));
    let (status, _, body) = flow_post(&pages, "big_discount", &again).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    // A step others lead to cannot be removed; the starter step can.
    let (status, _, body) = flow_post(
        &pages,
        "big_discount",
        &[("op", "step_remove"), ("index", "3")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(names_problem(&body, "/steps/1/on_reject"), "{body}");
    let (status, _, body) = flow_post(
        &pages,
        "big_discount",
        &[("op", "step_remove"), ("index", "4")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    // A page drawn before someone else's change gets a conflict.
    let (_, stale_page) = pages.get("/w/demo/build/workflows/big_discount").await;
    let stale = revision_of(&stale_page);
    flow_post(
        &pages,
        "big_discount",
        &[
            ("op", "settings"),
            ("label_en", "Big discount approval"),
            ("label_zh", "大额折扣审批"),
            ("entity", "quote"),
            ("description", "Over 20% off"),
        ],
    )
    .await;
    let (status, _, body) = pages
        .post(
            "/w/demo/build/workflows/big_discount",
            &[
                ("revision", stale.as_str()),
                ("op", "step_remove"),
                ("index", "0"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let draft = workflow_definition(&admin, "big_discount").await["draft"].clone();
    let ids: Vec<&str> = draft["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "check_validity",
            "approve",
            "mark_approved",
            "mark_rejected"
        ]
    );
    assert_eq!(
        draft["condition"],
        "record.discount != () && record.discount > 20"
    );
    assert_eq!(
        draft["steps"][1]["levels"][1]["when"],
        "record.discount != () && record.discount > 30"
    );
    assert_eq!(draft["steps"][1]["on_reject"], "mark_rejected");

    // A rep's quote: customer, deal, a 35% discount and no validity date.
    let (_, customer) = rep
        .post(
            &format!("{W}/entities/customer/records"),
            json!({"fields": {"name": "华东制造有限公司", "lifecycle_stage": "intent"}}),
        )
        .await;
    let (_, deal) = rep
        .post(
            &format!("{W}/entities/opportunity/records"),
            json!({"fields": {"name": "ERP 二期", "customer": customer["id"], "stage": "proposal"}}),
        )
        .await;
    let (status, quote) = rep
        .post(
            &format!("{W}/entities/quote/records"),
            json!({"fields": {"name": "ERP 二期报价", "opportunity": deal["id"], "amount": "480000", "discount": 35}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{quote}");
    let quote_id = quote["id"].as_str().expect("id").to_owned();

    // The message preview renders with that quote; a broken template names its line.
    let (status, preview) = pages
        .post_json(
            "/w/demo/build/workflows/big_discount/preview",
            json!({"texts": {"title": "{{ record.name }}: {{ record.discount }}% off"}, "record_id": quote_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        preview["rendered"]["title"], "ERP 二期报价: 35% off",
        "{preview}"
    );
    let (_, preview) = pages
        .post_json(
            "/w/demo/build/workflows/big_discount/preview",
            json!({"texts": {"body_en": "Hello {{ record.name "}, "record_id": quote_id}),
        )
        .await;
    assert!(
        preview["problems"][0]["line"].as_u64() == Some(1),
        "{preview}"
    );

    // Published: a quote now starts it. The first run fails at the check and shows in the
    // designer's run log with a retry.
    let (status, _, body) = flow_post(&pages, "big_discount", &[("op", "publish")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (status, quote) = rep
        .post(
            &format!("{W}/entities/quote/records"),
            json!({"fields": {"name": "ERP 三期报价", "opportunity": deal["id"], "amount": "900000", "discount": 35}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{quote}");
    let quote_id = quote["id"].as_str().expect("id").to_owned();
    app.run_jobs_until_idle().await;
    let (_, page) = pages.get("/w/demo/build/workflows/big_discount").await;
    assert!(page.contains("data-testid=\"workflow-runs\""), "{page}");
    assert!(page.contains("the quote has no validity date"), "{page}");
    assert!(page.contains("data-testid=\"retry-run\""), "{page}");
    let (_, runs) = admin
        .get(&format!("{W}/workflow-runs?workflow=big_discount"))
        .await;
    let run_id = runs[0]["id"].as_str().expect("run").to_owned();
    assert_eq!(runs[0]["status"], "failed", "{runs}");
    let (status, _) = rep
        .patch(
            &format!("{W}/entities/quote/records/{quote_id}"),
            json!({"fields": {"valid_until": "2027-01-31"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = pages
        .post(&format!("/w/demo/runs/{run_id}/retry"), &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    app.run_jobs_until_idle().await;
    let (_, page) = pages.get("/w/demo/build/workflows/big_discount").await;
    assert!(page.contains("1 runs waiting here"), "{page}");

    // The manager approves the first level; over 30%, the director decides the second.
    let pending = |who: &common::Client| {
        let who = who.clone();
        let quote_id = quote_id.clone();
        async move {
            let (_, inbox) = who.get(&format!("{W}/approvals?box=pending")).await;
            inbox
                .as_array()
                .expect("approvals")
                .iter()
                .find(|a| a["record_id"] == quote_id.as_str())
                .cloned()
        }
    };
    assert!(
        pending(&director).await.is_none(),
        "not yet the director's turn"
    );
    let task = pending(&mgr).await.expect("the manager's task");
    let (status, body) = mgr
        .post(
            &format!("{W}/approvals/{}/actions", task["id"].as_str().expect("id")),
            json!({"action": "approve", "comment": "ok from the manager"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs_until_idle().await;
    let task = pending(&director).await.expect("the director's task");
    let (status, body) = director
        .post(
            &format!("{W}/approvals/{}/actions", task["id"].as_str().expect("id")),
            json!({"action": "approve", "comment": "agreed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs_until_idle().await;
    let (_, quote) = rep
        .get(&format!("{W}/entities/quote/records/{quote_id}"))
        .await;
    assert_eq!(quote["fields"]["status"], "approved", "{quote}");
    assert_eq!(quote["fields"]["approval_note"], "agreed", "{quote}");
    let (_, run) = admin.get(&format!("{W}/workflow-runs/{run_id}")).await;
    assert_eq!(run["status"], "completed", "{run}");
    // The shipped approval, turned off, started nothing.
    let (_, shipped_runs) = admin
        .get(&format!(
            "{W}/workflow-runs?workflow=quote_discount_approval"
        ))
        .await;
    assert_eq!(
        shipped_runs.as_array().map(Vec::len),
        Some(0),
        "{shipped_runs}"
    );
}

both_databases!(
    a_discount_approval_is_designed_run_and_approved,
    the_entity_designer_changes_leads_without_code,
    a_field_is_required_only_under_a_condition,
    the_form_builder_places_a_field,
    a_formula_is_checked_tried_and_recomputed,
    a_report_is_built_and_put_on_a_dashboard,
);
