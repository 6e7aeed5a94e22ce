//! Print templates on both databases: the Sales CRM's bilingual quote and contract drawn from
//! records (quote lines, the customer, the payment schedule) as the reader may see them, values
//! escaped and nothing that runs; bad templates refused at save with line and column, runaway
//! ones stopped when printed; print templates travel in bundles (export, a prefixed clone, an
//! upgrade that adds one); the print page is a standalone A4 document.

mod common;

use common::{Backend, Client, TestApp, assert_problem, join_member, publish_definition};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";

async fn create(client: &Client, entity: &str, fields: Value) -> String {
    let (status, body) = client
        .post(
            &format!("{W}/entities/{entity}/records"),
            json!({ "fields": fields }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

async fn printed(client: &Client, entity: &str, id: &str, template: &str, lang: &str) -> Value {
    let (status, body) = client
        .get(&format!(
            "{W}/entities/{entity}/records/{id}/print/{template}?lang={lang}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn quotes_and_contracts_print_with_their_lines(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (rep, rep_id) = join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;
    let customer = create(
        &admin,
        "customer",
        json!({"name": "北京星辰科技有限公司", "lifecycle_stage": "first_contact", "address": "北京市海淀区中关村大街1号"}),
    )
    .await;
    let opportunity = create(
        &admin,
        "opportunity",
        json!({"name": "年度采购", "customer": customer, "stage": "proposal"}),
    )
    .await;
    let quote = create(
        &admin,
        "quote",
        json!({"name": "CRM 年度订阅", "opportunity": opportunity, "customer": customer, "amount": "120000.00",
               "discount": 10, "valid_until": "2027-01-31",
               "items": [
                   {"product": "专业版席位 Pro seats", "quantity": 50, "unit_price": "2000.00", "line_amount": "100000.00"},
                   {"product": "<script>alert(1)</script>实施服务", "quantity": 1, "unit_price": "20000.00", "line_amount": "20000.00"}
               ]}),
    )
    .await;

    let doc = printed(&admin, "quote", &quote, "quote_print", "zh-CN").await;
    assert_eq!(doc["paper"], "A4");
    assert_eq!(doc["header"], true);
    assert_eq!(doc["label"], "报价单");
    let html = doc["html"].as_str().expect("html");
    assert!(html.contains("报价单号 Quote No."), "bilingual: {html}");
    assert!(
        html.contains("北京星辰科技有限公司"),
        "the customer's name: {html}"
    );
    assert!(
        html.contains("专业版席位 Pro seats"),
        "the first line: {html}"
    );
    assert!(
        html.contains("¥2,000.00") && html.contains("¥100,000.00"),
        "money in Chinese: {html}"
    );
    assert!(html.contains("¥108,000.00"), "the net amount: {html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;实施服务"),
        "escaped: {html}"
    );
    assert!(!html.contains("<script"), "{html}");
    let english = printed(&admin, "quote", &quote, "quote_print", "en").await;
    assert_eq!(english["label"], "Quotation");
    assert!(
        english["html"]
            .as_str()
            .is_some_and(|h| h.contains("CN¥100,000.00"))
    );

    // The contract with its payment schedule (records referring to it).
    let contract = create(
        &admin,
        "contract",
        json!({"name": "CRM 年度订阅合同", "customer": customer, "amount": "108000.00", "status": "active",
               "signed_on": "2026-12-01", "start_date": "2027-01-01", "end_date": "2027-12-31"}),
    )
    .await;
    for (installment, due, amount) in [(2, "2027-06-30", "54000.00"), (1, "2027-01-15", "54000.00")]
    {
        create(
            &admin,
            "payment_plan",
            json!({"name": format!("第{installment}期"), "contract": contract, "customer": customer,
                   "installment": installment, "due_date": due, "amount": amount, "status": "planned"}),
        )
        .await;
    }
    let doc = printed(&admin, "contract", &contract, "contract_print", "zh-CN").await;
    let html = doc["html"].as_str().expect("html");
    assert!(
        html.contains("北京市海淀区中关村大街1号"),
        "the customer's address: {html}"
    );
    let first = html.find("2027-01-15").expect("first instalment");
    let second = html.find("2027-06-30").expect("second instalment");
    assert!(first < second, "instalments in order: {html}");
    assert!(html.contains("¥54,000.00"), "{html}");

    // Only what the reader may see: a quote the admin gives the rep, pointing at the admin's
    // customer, prints for the rep without that customer's name or address.
    let (status, given) = admin
        .post(
            &format!("{W}/entities/quote/records"),
            json!({"fields": {"name": "代表的报价", "opportunity": opportunity, "customer": customer, "amount": "100.00"},
                   "owner": rep_id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{given}");
    let rep_quote = given["id"].as_str().expect("id").to_owned();
    let doc = printed(&rep, "quote", &rep_quote, "quote_print", "zh-CN").await;
    let html = doc["html"].as_str().expect("html");
    assert!(html.contains("代表的报价"), "{html}");
    assert!(
        !html.contains("北京星辰科技"),
        "the customer stays unseen: {html}"
    );
    // The rep cannot read the admin's quote at all.
    let (status, problem) = rep
        .get(&format!(
            "{W}/entities/quote/records/{quote}/print/quote_print"
        ))
        .await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);
    for path in [
        format!("{W}/entities/quote/records/{quote}/print/nothing"),
        format!("{W}/entities/quote/records/{quote}/print/contract_print"),
        format!(
            "{W}/entities/quote/records/0190a0b0-0000-7000-8000-000000000001/print/quote_print"
        ),
    ] {
        let (status, problem) = admin.get(&path).await;
        assert_problem(status, &problem, StatusCode::NOT_FOUND);
    }
    let (status, problem) = admin
        .get(&format!(
            "{W}/entities/quote/records/{quote}/print/quote_print?lang=fr"
        ))
        .await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);

    // Bad templates: refused at save with where; runaway ones stopped when printed.
    let (status, problem) = publish_definition(
        &admin,
        "print_template",
        "broken",
        json!({"entity": "quote", "label": {"en": "Broken"}, "template": "<p>ok</p>\n{% for x in %}"}),
    )
    .await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem["errors"][0]["pointer"], "/document/template",
        "{problem}"
    );
    assert_eq!(problem["errors"][0]["line"], 2, "{problem}");
    let (status, problem) = publish_definition(
        &admin,
        "print_template",
        "orphan",
        json!({"entity": "nothing", "label": {"en": "Orphan"}, "template": "x"}),
    )
    .await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem["errors"][0]["pointer"], "/document/entity",
        "{problem}"
    );
    for (key, template) in [
        (
            "spin",
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        ),
        (
            "flood",
            "{% for a in range(1000) %}{{ 'x' * 5000 }}{% endfor %}",
        ),
    ] {
        let (status, body) = publish_definition(
            &admin,
            "print_template",
            key,
            json!({"entity": "quote", "label": {"en": key}, "template": template}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, problem) = admin
            .get(&format!("{W}/entities/quote/records/{quote}/print/{key}"))
            .await;
        assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            problem["errors"][0]["code"], "template_limit",
            "{key}: {problem}"
        );
    }

    // The print page: a standalone document with the paper's stylesheet and the header.
    let page =
        common::PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "zh-CN")
            .await;
    let (status, html) = page
        .get(&format!("/w/demo/e/quote/{quote}/print/quote_print"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("/static/print.css") && html.contains("paper-a4"),
        "{html}"
    );
    assert!(html.contains("class=\"doc-header\""));
    let (_, record_page) = page.get(&format!("/w/demo/e/quote/{quote}")).await;
    assert!(record_page.contains("data-testid=\"print-quote_print\""));
    let (status, _) = page
        .get(&format!("/w/demo/e/quote/{quote}/print/spin"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let css = app.anonymous().get_raw("/static/print.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert!(css.text().await.expect("css").contains("@page"));
}

/// A small app whose version 1.1.0 adds a print template.
fn slip_bundle(version: &str, with_print: bool) -> Value {
    let mut bundle = json!({
        "manifest": {"name": "slips", "version": version, "title": {"en": "Slips"}, "namespace": "slips"},
        "definitions": {
            "entity": {
                "slip": {"type": "object", "x-label": {"en": "Slip"}, "x-title-field": "name", "required": ["name"],
                         "properties": {"name": {"type": "string", "maxLength": 200, "x-kind": "text", "x-label": {"en": "Name"}}}}
            }
        },
        "roles": {}
    });
    if with_print {
        bundle["definitions"]["print_template"] = json!({
            "slip_print": {"entity": "slip", "label": {"en": "Slip"}, "template": "<h1>Slip {{ record.name }}</h1>"}
        });
    }
    bundle
}

async fn print_templates_travel_in_bundles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    // Exported with the app.
    let (status, exported) = admin.get(&format!("{W}/apps/export")).await;
    assert_eq!(status, StatusCode::OK, "{exported}");
    assert_eq!(
        exported["definitions"]["print_template"]["quote_print"]["entity"],
        "quote",
        "{}",
        exported["definitions"]
            .as_object()
            .map(|d| d.keys().cloned().collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    );
    // A prefixed clone points its templates at its own entities.
    let (status, copy) = admin
        .post(
            &format!("{W}/apps"),
            json!({"template": "sales-crm", "prefix": "b"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
    let (_, cloned) = admin
        .get(&format!("{W}/definitions/print_template/b_quote_print"))
        .await;
    assert_eq!(cloned["published"]["entity"], "b_quote", "{cloned}");
    // An upgrade adds a print template the new version brings.
    let (status, installed) = admin
        .post(
            &format!("{W}/apps"),
            json!({"bundle": slip_bundle("1.0.0", false)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{installed}");
    let app_id = installed["app"].as_str().expect("app").to_owned();
    let (status, plan) = admin
        .post(
            &format!("{W}/apps/{app_id}/upgrade"),
            json!({"bundle": slip_bundle("1.1.0", true), "dry_run": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert!(
        plan["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .any(|c| c["kind"] == "print_template"
                && c["key"] == "slip_print"
                && c["action"] == "add"),
        "{plan}"
    );
    let (status, applied) = admin
        .post(
            &format!("{W}/apps/{app_id}/upgrade"),
            json!({"bundle": slip_bundle("1.1.0", true)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    let slip = create(&admin, "slip", json!({"name": "A-1"})).await;
    let doc = printed(&admin, "slip", &slip, "slip_print", "en").await;
    assert!(
        doc["html"]
            .as_str()
            .is_some_and(|h| h.contains("<h1>Slip A-1</h1>")),
        "{doc}"
    );
}

both_databases!(
    quotes_and_contracts_print_with_their_lines,
    print_templates_travel_in_bundles,
);
