//! Exports of list views to CSV and XLSX through the API and the list page, on both databases:
//! every page of records (more than one export page), the list's filters and sort, the
//! caller's rights (hidden fields, records out of reach), labels in the reader's language,
//! exact money, linked records by title, formula-looking text kept as text, and refusals.

mod common;

use common::{Backend, PageClient, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

const W: &str = "/api/v1/w/demo";

async fn download(
    client: &common::Client,
    path: &str,
    language: &str,
) -> (StatusCode, String, Vec<u8>) {
    let response = client
        .http
        .get(format!("{}{path}", client.base))
        .header("accept-language", language)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, kind, response.bytes().await.expect("body").to_vec())
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    let text = text.strip_prefix('\u{feff}').expect("a BOM first");
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.expect("a row").iter().map(str::to_owned).collect())
        .collect()
}

async fn lists_export_as_their_reader_sees_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    // 1,201 leads: three export pages.
    let leads: Vec<Value> = (0..1200)
        .map(|i| json!({"fields": {"name": format!("线索 {i:04}"), "source": "web_form", "status": "new", "budget": "1000.10"}}))
        .chain([json!({"fields": {"name": "=HYPERLINK(\"http://x\")", "source": "referral", "status": "contacted", "budget": "120000.50"}})])
        .collect();
    let (status, body) = admin
        .post(
            &format!("{W}/entities/lead/records/batch"),
            json!({"records": leads}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, customer) = admin
        .post(
            &format!("{W}/entities/customer/records"),
            json!({"fields": {"name": "华东制造有限公司", "lifecycle_stage": "intent"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    for (name, stage) in [
        ("ERP 二期", "proposal"),
        ("CRM 升级", "proposal"),
        ("旧项目", "lost"),
    ] {
        let (status, body) = admin
            .post(
                &format!("{W}/entities/opportunity/records"),
                json!({"fields": {"name": name, "customer": customer["id"], "stage": stage, "amount": "480000.00", "lost_reason": if stage == "lost" { json!("price") } else { Value::Null }}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    // CSV through the API: every lead, formulas kept as text, exact money, English labels.
    let (status, kind, bytes) = download(
        &admin,
        &format!("{W}/entities/lead/records/export.csv?sort=name"),
        "en",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/csv"), "{kind}");
    let rows = csv_rows(&bytes);
    assert_eq!(rows.len(), 1 + 1201, "a header and every lead");
    let header = &rows[0];
    assert_eq!(header[0], "id");
    let name = header
        .iter()
        .position(|h| h == "Contact name")
        .expect("a name column");
    let budget = header
        .iter()
        .position(|h| h == "Budget")
        .expect("a Budget column");
    let status_column = header
        .iter()
        .position(|h| h == "Status")
        .expect("a Status column");
    let injected = rows
        .iter()
        .find(|r| r[name].contains("HYPERLINK"))
        .expect("the odd lead");
    assert!(injected[name].starts_with("'="), "{injected:?}");
    assert_eq!(injected[budget], "120000.50");
    assert_eq!(injected[status_column], "Contacted", "the option's label");

    // The list's filter and sort; linked records by title; Chinese labels.
    let (status, _, bytes) = download(
        &admin,
        &format!("{W}/entities/opportunity/records/export.csv?filter[stage]=proposal&sort=name"),
        "zh-CN",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let rows = csv_rows(&bytes);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let customer_column = rows[0].iter().position(|h| h == "客户").expect("客户");
    assert!(
        rows[1..]
            .iter()
            .all(|r| r[customer_column] == "华东制造有限公司"),
        "{rows:?}"
    );
    assert_eq!(
        rows[1][rows[0]
            .iter()
            .position(|h| h == "商机名称")
            .expect("商机名称")],
        "CRM 升级"
    );

    // XLSX: the same rows, numbers as numbers.
    let (status, kind, bytes) = download(
        &admin,
        &format!("{W}/entities/lead/records/export.xlsx"),
        "en",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.contains("spreadsheetml"), "{kind}");
    let mut workbook: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("an XLSX file");
    use calamine::Reader;
    let sheet = workbook
        .worksheet_range_at(0)
        .expect("a sheet")
        .expect("readable");
    assert_eq!(sheet.height(), 1 + 1201);
    let numbers = sheet
        .rows()
        .skip(1)
        .filter(|r| matches!(r.get(budget), Some(calamine::Data::Float(_))))
        .count();
    assert_eq!(numbers, 1201, "budgets are numbers");

    // Refusals: an unknown field in the filter, an entity that does not exist.
    let (status, _, bytes) = download(
        &admin,
        &format!("{W}/entities/lead/records/export.csv?filter[ghost]=1"),
        "en",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let (status, _, _) = download(
        &admin,
        &format!("{W}/entities/nothing/records/export.csv"),
        "en",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A rep sees only their own leads, without the budget they may not see.
    let (status, body) = admin
        .put(
            &format!("{W}/roles/rep"),
            json!({"name": "Rep", "rights": {"entities": {
                "*": {"create": "own", "read": "own", "update": "own", "delete": "none"},
                "lead": {"fields": {"budget": "hidden"}}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (rep, _) = common::join_member(&app, &admin, "rep@example.com", "rep").await;
    let (status, body) = rep
        .post(
            &format!("{W}/entities/lead/records"),
            json!({"fields": {"name": "我的线索", "source": "event", "status": "new"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, bytes) =
        download(&rep, &format!("{W}/entities/lead/records/export.csv"), "en").await;
    assert_eq!(status, StatusCode::OK);
    let rows = csv_rows(&bytes);
    assert_eq!(rows.len(), 2, "only the rep's own lead: {rows:?}");
    assert!(!rows[0].iter().any(|h| h == "Budget"), "{:?}", rows[0]);

    // The list page's export follows its quick search.
    let pages = PageClient::sign_in(&app, common::ADMIN_EMAIL, common::ADMIN_PASSWORD, "en").await;
    let (_, list) = pages.get("/w/demo/e/lead").await;
    assert!(list.contains("data-testid=\"export-csv\""), "{list}");
    let (status, text) = pages
        .get("/w/demo/e/lead/export.csv?q=%E7%BA%BF%E7%B4%A2%2000")
        .await;
    assert_eq!(status, StatusCode::OK);
    let rows = csv_rows(text.as_bytes());
    // "线索 00" matches 线索 0000 … 线索 0099.
    assert_eq!(rows.len(), 1 + 100, "{}", rows.len());
}

both_databases!(lists_export_as_their_reader_sees_them);
