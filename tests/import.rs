//! Spreadsheet imports through the API, on both databases: a GBK CSV from Excel in China with
//! Chinese headers (mapping suggested, dry run with a per-line report, import, history, the
//! mapping remembered), upsert on a field, XLSX with dates, amounts, formulas and linked
//! records by name, strict imports, cancelling, workflows switched on and off, and refusals.

mod common;

use common::{Backend, Client, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";

async fn send_file(client: &Client, query: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let mut request = client
        .http
        .post(format!("{}{W}/imports?{query}", client.base))
        .header("content-type", "text/csv")
        .body(bytes);
    if let Some(csrf) = &client.csrf {
        request = request.header("x-csrf-token", csrf);
    }
    if let Some(token) = &client.bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("upload");
    let status = response.status();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, errors) = encoding_rs::GBK.encode(text);
    assert!(!errors, "GBK can hold the text");
    bytes.into_owned()
}

async fn finished(app: &TestApp, client: &Client, id: &str) -> Value {
    app.run_jobs_until_idle().await;
    let (status, body) = client.get(&format!("{W}/imports/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn count(client: &Client, entity: &str, filter: &str) -> i64 {
    let (status, body) = client
        .get(&format!(
            "{W}/entities/{entity}/records?total=exact&limit=1{filter}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["total"].as_i64().expect("total")
}

async fn problems(client: &Client, id: &str) -> Vec<(i64, String, String)> {
    let (status, body) = client.get(&format!("{W}/imports/{id}/problems")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["line"].as_i64().unwrap_or_default(),
                p["code"].as_str().unwrap_or_default().to_owned(),
                p["column"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Workflow runs about leads.
async fn lead_runs(client: &Client) -> usize {
    let (status, runs) = client.get(&format!("{W}/workflow-runs?limit=100")).await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    runs.as_array()
        .expect("runs")
        .iter()
        .filter(|r| r["entity"] == "lead")
        .count()
}

/// The file an operations person exports from their old CRM in China: GBK, Chinese headers, a
/// formula-looking company, a bad option, a bad email, a ragged row without its status.
const LEADS: &str = "联系人姓名,公司名称,手机,邮箱,线索来源,线索状态,负责人,备注栏\r\n\
张伟,北京星辰科技,13800000001,zhang@example.com,官网表单,新线索,admin@formwork.local,老客户介绍\r\n\
李娜,'=HYPERLINK(\"x\"),13800000002,li@example.com,转介绍,已联系,,\r\n\
王芳,上海云杉,13800000003,wang@example.com,传真,新线索,,\r\n\
刘洋,深圳海岸,13800000004,not-an-email,展会活动,新线索,,\r\n\
陈静,杭州西湖\r\n\
赵磊,成都天府,13800000006,zhao@example.com,电话陌拜,已确认,admin@formwork.local,\r\n";

async fn a_chinese_csv_is_checked_imported_and_upserted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;

    let (status, upload) = send_file(&admin, "entity=lead&file_name=线索.csv", gbk(LEADS)).await;
    assert_eq!(status, StatusCode::CREATED, "{upload}");
    let id = upload["id"].as_str().expect("id").to_owned();
    assert_eq!(upload["layout"]["encoding"], "gb18030");
    assert_eq!(upload["layout"]["rows"], 6);
    assert_eq!(upload["file_name"], "线索.csv");
    assert_eq!(
        upload["suggested_mapping"],
        json!([
            "name", "company", "phone", "email", "source", "status", "owner", null
        ])
    );

    // A dry run writes nothing and reports each line's problems by column.
    let settings = json!({"mapping": upload["suggested_mapping"]});
    let (status, body) = admin
        .post(&format!("{W}/imports/{id}/check"), settings.clone())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "checking");
    let checked = finished(&app, &admin, &id).await;
    assert_eq!(checked["status"], "checked", "{checked}");
    assert_eq!(checked["dry_run"], true);
    assert_eq!(checked["counters"]["read"], 6);
    assert_eq!(checked["counters"]["created"], 3);
    assert_eq!(checked["counters"]["failed"], 3);
    assert_eq!(
        count(&admin, "lead", "").await,
        0,
        "a dry run writes nothing"
    );
    let found = problems(&admin, &id).await;
    assert!(
        found.contains(&(4, "option".to_owned(), "线索来源".to_owned())),
        "{found:?}"
    );
    assert!(
        found.contains(&(5, "email".to_owned(), "邮箱".to_owned())),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(line, code, _)| *line == 6 && code == "required"),
        "{found:?}"
    );

    // The import itself, with workflows off: the lead-assignment workflow does not run.
    let (status, body) = admin
        .post(&format!("{W}/imports/{id}/run"), settings.clone())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = finished(&app, &admin, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["counters"]["created"], 3);
    assert_eq!(done["counters"]["failed"], 3);
    assert_eq!(done["counters"]["batches"], 1);
    assert_eq!(count(&admin, "lead", "").await, 3);
    assert_eq!(
        lead_runs(&admin).await,
        0,
        "workflows are off for this import"
    );

    let (_, page) = admin
        .get(&format!("{W}/entities/lead/records?filter[name]=李娜"))
        .await;
    let li = &page["records"][0];
    assert_eq!(
        li["fields"]["company"], "=HYPERLINK(\"x\")",
        "the export's apostrophe is dropped"
    );
    assert_eq!(
        li["fields"]["source"], "referral",
        "options by their Chinese label"
    );
    assert_eq!(li["fields"]["status"], "contacted");
    // Imported rows are searchable as soon as their batch commits.
    let (status, found) = admin
        .get(&format!("{W}/search?q=%E6%9D%8E%E5%A8%9C&entity=lead"))
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(
        found["results"][0]["records"][0]["title"], "李娜",
        "{found}"
    );
    assert!(
        li["fields"]["score"].is_number(),
        "formulas computed on import: {li}"
    );
    let (_, history) = admin
        .get(&format!(
            "{W}/entities/lead/records/{}/history",
            li["id"].as_str().unwrap_or_default()
        ))
        .await;
    let entry = &history[0];
    assert_eq!(entry["channel"], "import", "{history}");
    assert_eq!(entry["changes"]["import"]["id"], id.as_str());
    assert_eq!(entry["changes"]["import"]["line"], 3);

    // A finished import cannot run again.
    let (status, body) = admin.post(&format!("{W}/imports/{id}/run"), settings).await;
    assert_problem(status, &body, StatusCode::CONFLICT);

    // The same people again, by email: one changed, one unchanged, one new; the mapping of the
    // odd header is remembered from the first import.
    let second = "邮箱,备注栏,线索状态,联系人姓名,线索来源\n\
        zhang@example.com,改过的备注,已联系,张伟,官网表单\n\
        li@example.com,,已联系,李娜,转介绍\n\
        new@example.com,,新线索,新人,展会活动\n\
        new@example.com,,新线索,新人二,展会活动\n";
    let (status, upload) = send_file(
        &admin,
        "entity=lead&file_name=again.csv",
        second.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{upload}");
    assert_eq!(upload["layout"]["encoding"], "utf-8");
    let id = upload["id"].as_str().expect("id").to_owned();
    let mut mapping = upload["suggested_mapping"].clone();
    assert_eq!(mapping, json!(["email", null, "status", "name", "source"]));
    mapping[1] = json!("notes");
    let (status, body) = admin
        .post(
            &format!("{W}/imports/{id}/run"),
            json!({"mapping": mapping, "mode": "upsert", "key": "email", "workflows": true}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = finished(&app, &admin, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["counters"]["updated"], 1, "{done}");
    assert_eq!(done["counters"]["unchanged"], 1, "{done}");
    assert_eq!(done["counters"]["created"], 1, "{done}");
    assert_eq!(done["counters"]["failed"], 1, "the repeated key: {done}");
    assert_eq!(count(&admin, "lead", "").await, 4);
    let found = problems(&admin, &id).await;
    assert_eq!(
        found,
        vec![(5, "repeated_key".to_owned(), "邮箱".to_owned())]
    );
    let (_, page) = admin
        .get(&format!(
            "{W}/entities/lead/records?filter[email]=zhang@example.com"
        ))
        .await;
    assert_eq!(page["records"][0]["fields"]["notes"], "改过的备注");
    assert_eq!(page["records"][0]["fields"]["status"], "contacted");
    // Workflows on: the new lead and the changed one are the workflows' to react to.
    assert!(lead_runs(&admin).await > 0, "workflows ran for the import");

    // A later upload with the odd header gets the remembered mapping.
    let (_, upload) = send_file(
        &admin,
        "entity=lead&file_name=third.csv",
        "备注栏,联系人姓名\nx,y\n".as_bytes().to_vec(),
    )
    .await;
    assert_eq!(upload["suggested_mapping"], json!(["notes", "name"]));
}

/// Opportunities from an XLSX: real dates, Excel serial dates, amounts as numbers and text,
/// percentages, a customer by name, a formula with its cached value, and a row in error.
async fn an_xlsx_sheet_with_dates_amounts_and_linked_records(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, customer) = admin
        .post(
            &format!("{W}/entities/customer/records"),
            json!({"fields": {"name": "星辰科技", "lifecycle_stage": "first_contact"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");

    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("商机").expect("name");
    let date = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    for (col, header) in [
        "Opportunity name",
        "Customer",
        "Stage",
        "Amount",
        "Probability",
        "Expected close date",
    ]
    .iter()
    .enumerate()
    {
        sheet.write_string(0, col as u16, *header).expect("header");
    }
    sheet.write_string(1, 0, "Annual licence").expect("cell");
    sheet.write_string(1, 1, "星辰科技").expect("cell");
    sheet.write_string(1, 2, "proposal").expect("cell");
    sheet.write_number(1, 3, 120000.5).expect("cell");
    sheet.write_number(1, 4, 30).expect("cell");
    let when = rust_xlsxwriter::ExcelDateTime::from_ymd(2026, 3, 5).expect("date");
    sheet
        .write_datetime_with_format(1, 5, &when, &date)
        .expect("cell");
    sheet.write_string(2, 0, "Support renewal").expect("cell");
    sheet.write_string(2, 1, "星辰科技").expect("cell");
    sheet.write_string(2, 2, "proposal").expect("cell");
    sheet
        .write_formula(
            2,
            3,
            rust_xlsxwriter::Formula::new("=2000*3").set_result("6000"),
        )
        .expect("cell");
    sheet.write_string(2, 4, "45%").expect("cell");
    sheet.write_number(2, 5, 46100.0).expect("cell");
    sheet.write_string(3, 0, "Ghost deal").expect("cell");
    sheet.write_string(3, 1, "Nobody Ltd").expect("cell");
    sheet.write_string(3, 2, "proposal").expect("cell");
    let bytes = workbook.save_to_buffer().expect("xlsx");

    let (status, upload) =
        send_file(&admin, "entity=opportunity&file_name=deals.xlsx", bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{upload}");
    assert_eq!(upload["format"], "xlsx");
    assert_eq!(upload["layout"]["sheet"], "商机");
    assert_eq!(upload["layout"]["rows"], 3);
    assert_eq!(
        upload["suggested_mapping"],
        json!([
            "name",
            "customer",
            "stage",
            "amount",
            "probability",
            "expected_close_date"
        ])
    );
    let id = upload["id"].as_str().expect("id").to_owned();
    let (status, body) = admin
        .post(
            &format!("{W}/imports/{id}/run"),
            json!({"mapping": upload["suggested_mapping"]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = finished(&app, &admin, &id).await;
    let found = problems(&admin, &id).await;
    assert_eq!(done["counters"]["created"], 2, "{done} {found:?}");
    let found = problems(&admin, &id).await;
    assert_eq!(
        found,
        vec![(4, "unknown_reference".to_owned(), "Customer".to_owned())]
    );
    let (_, page) = admin
        .get(&format!("{W}/entities/opportunity/records?sort=name"))
        .await;
    let records = page["records"].as_array().expect("records");
    let licence = &records[0]["fields"];
    assert_eq!(licence["amount"], "120000.50");
    assert_eq!(licence["customer"], customer["id"]);
    assert_eq!(licence["expected_close_date"], "2026-03-05");
    assert_eq!(licence["probability"], 30.0);
    let renewal = &records[1]["fields"];
    assert_eq!(renewal["amount"], "6000.00", "a formula's computed value");
    assert_eq!(renewal["probability"], 45.0);
    assert_eq!(
        renewal["expected_close_date"], "2026-03-19",
        "an Excel serial date"
    );
    // Rollups follow: the customer counts its two opportunities.
    let (_, customer) = admin
        .get(&format!(
            "{W}/entities/customer/records/{}",
            customer["id"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(customer["fields"]["opportunity_count"], 2, "{customer}");
}

/// Strict imports stop unwritten at the first batch with a problem; cancelling stops between
/// batches; refusals name what is wrong and change nothing.
async fn strict_cancelled_and_refused_imports(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let mut csv = String::from("name,source,status\n");
    for i in 0..30 {
        let source = if i == 25 { "fax" } else { "web_form" };
        csv.push_str(&format!("Lead {i},{source},new\n"));
    }
    let (_, upload) = send_file(
        &admin,
        "entity=lead&file_name=strict.csv",
        csv.clone().into_bytes(),
    )
    .await;
    let id = upload["id"].as_str().expect("id").to_owned();
    let (status, body) = admin
        .post(
            &format!("{W}/imports/{id}/run"),
            json!({"mapping": ["name", "source", "status"], "skip_invalid": false, "batch_size": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = finished(&app, &admin, &id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"]
            .as_str()
            .is_some_and(|e| e.contains("line 27")),
        "{done}"
    );
    assert_eq!(
        done["counters"]["created"], 20,
        "the two clean batches stay: {done}"
    );
    assert_eq!(count(&admin, "lead", "").await, 20);
    // Running it again from the top would write the first batches twice.
    let (status, body) = admin
        .post(
            &format!("{W}/imports/{id}/run"),
            json!({"mapping": ["name", "source", "status"]}),
        )
        .await;
    let pointers = assert_problem(status, &body, StatusCode::CONFLICT);
    assert_eq!(pointers, vec!["/status"], "{body}");

    // Cancelled before a worker took it: nothing is written, the file is dropped.
    let (_, upload) = send_file(&admin, "entity=lead&file_name=cancel.csv", csv.into_bytes()).await;
    let id = upload["id"].as_str().expect("id").to_owned();
    let (status, _) = admin
        .post(
            &format!("{W}/imports/{id}/run"),
            json!({"mapping": ["name", "source", "status"]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = admin
        .post(&format!("{W}/imports/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelling");
    let done = finished(&app, &admin, &id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(count(&admin, "lead", "").await, 20);
    let (status, body) = admin
        .post(&format!("{W}/imports/{id}/cancel"), json!({}))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);

    // Bad settings are refused by pointer.
    let (_, upload) = send_file(
        &admin,
        "entity=lead&file_name=bad.csv",
        b"name,email,x\na,b@c.de,1\n".to_vec(),
    )
    .await;
    let id = upload["id"].as_str().expect("id").to_owned();
    for (settings, pointer) in [
        (json!({"mapping": ["name", "name"]}), "/mapping/1"),
        (json!({"mapping": ["name", "nope"]}), "/mapping/1"),
        (json!({"mapping": ["name", "score"]}), "/mapping/1"),
        (
            json!({"mapping": ["name", "email"], "mode": "upsert", "key": "phone"}),
            "/key",
        ),
        (json!({"mapping": ["name", "email", "id"]}), "/mode"),
        (
            json!({"mapping": ["name", "email", null, null]}),
            "/mapping",
        ),
        (json!({"mapping": ["name"], "batch_size": 0}), "/batch_size"),
        (json!({"mapping": [null, null]}), "/mapping"),
    ] {
        let (status, body) = admin
            .post(&format!("{W}/imports/{id}/check"), settings.clone())
            .await;
        let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(pointers.iter().any(|p| p == pointer), "{settings} → {body}");
    }
    let (status, body) = admin
        .post(
            &format!("{W}/imports/{id}/check"),
            json!({"mapping": ["name"], "surprise": 1}),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);

    // Files that cannot be read, entities that do not exist, imports of others.
    let (status, body) = send_file(
        &admin,
        "entity=lead&file_name=x.csv",
        b"name\n\xFF\xFE\xFD\xFC\n".to_vec(),
    )
    .await;
    let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointers, vec!["/encoding"], "{body}");
    let (status, body) = send_file(
        &admin,
        "entity=lead&file_name=x.csv&encoding=klingon",
        b"name\nA\n".to_vec(),
    )
    .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = send_file(&admin, "entity=lead&file_name=x.csv", Vec::new()).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = send_file(
        &admin,
        "entity=lead&file_name=x.xlsx",
        b"name\nA\n".to_vec(),
    )
    .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = send_file(
        &admin,
        "entity=nothing&file_name=x.csv",
        b"name\nA\n".to_vec(),
    )
    .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = send_file(&admin, "file_name=x.csv", b"name\nA\n".to_vec()).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    let (rep, _) = common::join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;
    let (status, body) = rep.get(&format!("{W}/imports/{id}")).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = admin.get(&format!("{W}/imports/not-an-id")).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(
        count(&admin, "lead", "").await,
        20,
        "no refusal wrote anything"
    );

    // A file left unused for a week is dropped (it holds personal data); its import can no
    // longer run, and says why.
    app.advance(chrono::Duration::days(8));
    app.services.worker().schedule_housekeeping().await;
    app.run_jobs_until_idle().await;
    // A week later the session has expired too.
    let admin = app.admin().await;
    let (_, dropped) = admin.get(&format!("{W}/imports/{id}")).await;
    assert_eq!(dropped["status"], "cancelled", "{dropped}");
    assert!(
        dropped["error"]
            .as_str()
            .is_some_and(|e| e.contains("7 days")),
        "{dropped}"
    );
    let (status, body) = admin
        .post(
            &format!("{W}/imports/{id}/check"),
            json!({"mapping": ["name"]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
}

/// A multipart form as a browser sends it: the fields in order, then the file.
fn multipart(fields: &[(&str, &str)], file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----formwork-test-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The pages: upload, the mapping with suggestions and samples, check, import, the report;
/// in Chinese.
async fn the_import_pages_walk_a_person_through(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page =
        common::PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "zh-CN")
            .await;
    let (status, html) = page.get("/w/demo/e/lead/import").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("data-testid=\"import-upload\""), "{html}");
    assert!(html.contains("导入"), "in Chinese");

    // A forged upload (no token) stores nothing.
    let (kind, body) = multipart(&[], "线索.csv", &gbk(LEADS));
    let response = page
        .http
        .post(format!("{}/w/demo/e/lead/import", page.base))
        .header("content-type", kind)
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let (kind, body) = multipart(
        &[("csrf_token", page.csrf.as_str()), ("encoding", "")],
        "线索.csv",
        &gbk(LEADS),
    );
    let response = page
        .http
        .post(format!("{}/w/demo/e/lead/import", page.base))
        .header("content-type", kind)
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_owned();
    assert!(location.starts_with("/w/demo/imports/"), "{location}");
    let (status, html) = page.get(&location).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("data-status=\"uploaded\""), "{html}");
    assert!(html.contains("gb18030"), "{html}");
    assert!(html.contains("张伟"), "samples shown: {html}");
    assert!(
        html.contains("<option value=\"email\" selected>"),
        "suggestions preselected: {html}"
    );

    let mut form: Vec<(String, String)> = [
        "name", "company", "phone", "email", "source", "status", "owner", "",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| (format!("map_{i}"), (*t).to_owned()))
    .collect();
    form.push(("mode".to_owned(), "insert".to_owned()));
    form.push(("skip_invalid".to_owned(), "1".to_owned()));
    let mut check = form.clone();
    check.push(("action".to_owned(), "check".to_owned()));
    let pairs: Vec<(&str, &str)> = check
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, to, _) = page.post(&location, &pairs).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to, location);
    let (_, html) = page.get(&location).await;
    assert!(
        html.contains("data-live"),
        "progress follows the run: {html}"
    );
    app.run_jobs_until_idle().await;
    let (_, html) = page.get(&location).await;
    assert!(html.contains("data-status=\"checked\""), "{html}");
    assert!(html.contains("data-testid=\"import-problems\""), "{html}");
    assert!(
        html.contains("线索来源"),
        "problems name the column: {html}"
    );

    // A bad mapping is drawn again with the problem, nothing started.
    let mut bad: Vec<(&str, &str)> = pairs.clone();
    bad.retain(|(k, _)| *k != "map_1");
    bad.push(("map_1", "name"));
    let (status, _, html) = page.post(&location, &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("&#x2f;mapping&#x2f;1"), "{html}");

    let mut run = form.clone();
    run.push(("action".to_owned(), "run".to_owned()));
    let pairs: Vec<(&str, &str)> = run.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, _, _) = page.post(&location, &pairs).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    app.run_jobs_until_idle().await;
    let (_, html) = page.get(&location).await;
    assert!(html.contains("data-status=\"done\""), "{html}");
    assert!(
        !html.contains("data-testid=\"import-mapping\""),
        "a finished import offers no second run"
    );
    let (_, html) = page.get("/w/demo/e/lead/import").await;
    assert!(html.contains("data-testid=\"import-recent\""), "{html}");
    let (list_status, list) = page.get("/w/demo/e/lead").await;
    assert_eq!(list_status, StatusCode::OK, "{list}");
    assert!(
        list.contains("data-testid=\"import-link\""),
        "the list links the import page: {list}"
    );
}

/// SIGKILL in the middle of an import; the next process resumes after the last batch written:
/// every row is imported exactly once, and the server answers while an import runs.
async fn a_killed_import_resumes_exactly_once(backend: Backend) {
    const ROWS: usize = 6000;
    let (database_url, _dir) = common::fresh_database(backend).await;
    let env = [
        ("FORMWORK_JOB_LEASE_SECS", "1"),
        ("FORMWORK_JOB_POLL_MS", "20"),
        ("FORMWORK_DEMO_DATA", "false"),
    ];
    let mut first = common::Process::spawn(&database_url, &env).await;
    let admin = common::process_admin(&first.address).await;
    let mut csv = String::from("Contact name,Email,Source,Status\n");
    for i in 0..ROWS {
        csv.push_str(&format!("Lead {i},l{i}@example.com,Web form,New\n"));
    }
    let (status, upload) =
        send_file(&admin, "entity=lead&file_name=big.csv", csv.into_bytes()).await;
    assert_eq!(status, StatusCode::CREATED, "{upload}");
    let id = upload["id"].as_str().expect("id").to_owned();
    let (status, body) = admin
        .post(
            &format!("{W}/imports/{id}/run"),
            json!({"mapping": upload["suggested_mapping"], "batch_size": 100}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let mut killed_at = None;
    for _ in 0..6000 {
        let (_, view) = admin.get(&format!("{W}/imports/{id}")).await;
        let read = view["counters"]["read"].as_u64().unwrap_or_default();
        if read > 0 {
            assert!(
                read < ROWS as u64 / 2,
                "the import went too far before the kill: {read}"
            );
            // Meanwhile the server answers a person's list promptly.
            let started = std::time::Instant::now();
            let (status, _) = admin
                .get(&format!("{W}/entities/lead/records?limit=20"))
                .await;
            assert_eq!(status, StatusCode::OK);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(3),
                "list took {:?}",
                started.elapsed()
            );
            first.kill_hard();
            killed_at = Some(read);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(killed_at.is_some(), "the import started");
    let second = common::Process::spawn(&database_url, &env).await;
    let admin = common::process_admin(&second.address).await;
    let mut view = Value::Null;
    for _ in 0..1200 {
        view = admin.get(&format!("{W}/imports/{id}")).await.1;
        if view["status"] == "done" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(view["status"], "done", "{view}");
    assert_eq!(view["counters"]["read"], ROWS as u64, "{view}");
    assert_eq!(view["counters"]["created"], ROWS as u64, "{view}");
    assert_eq!(
        count(&admin, "lead", "").await,
        ROWS as i64,
        "no row twice, none lost"
    );
    for i in [0, 99, 100, 101, ROWS - 1] {
        assert_eq!(
            count(&admin, "lead", &format!("&filter[email]=l{i}@example.com")).await,
            1,
            "row {i}"
        );
    }
}

both_databases!(
    a_killed_import_resumes_exactly_once,
    the_import_pages_walk_a_person_through,
    a_chinese_csv_is_checked_imported_and_upserted,
    an_xlsx_sheet_with_dates_amounts_and_linked_records,
    strict_cancelled_and_refused_imports,
);
