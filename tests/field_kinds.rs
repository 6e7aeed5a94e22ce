//! Sub-tables (line items with totals) and attachments (files in the database) through the
//! HTTP API, on SQLite and PostgreSQL.

mod common;

use common::{Backend, Client, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn publish(client: &Client, key: &str, document: Value) {
    let (status, body) = client
        .put(
            &format!("/api/v1/w/demo/definitions/entity/{key}/draft"),
            json!({ "document": document }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = client
        .post(
            &format!("/api/v1/w/demo/definitions/entity/{key}/versions"),
            json!({ "revision": body["revision"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

fn quote() -> Value {
    json!({
        "type": "object",
        "x-label": {"en": "Quote", "zh-CN": "报价单"},
        "properties": {
            "title": {"type": "string", "x-kind": "text", "x-label": {"en": "Title"}},
            "lines": {
                "type": "array", "x-kind": "sub_table", "x-label": {"en": "Lines", "zh-CN": "报价明细"},
                "maxItems": 50,
                "items": {
                    "type": "object",
                    "required": ["product", "qty"],
                    "properties": {
                        "product": {"type": "string", "x-kind": "text", "x-label": {"en": "Product"}},
                        "qty": {"type": "integer", "minimum": 1, "x-kind": "integer", "x-label": {"en": "Qty"}},
                        "price": {"type": "number", "minimum": 0, "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Price"}},
                        "delivery": {"type": "string", "format": "date", "x-kind": "date", "x-label": {"en": "Delivery"}}
                    }
                },
                "x-totals": {"qty": "sum", "price": "sum", "delivery": "max", "product": "count"}
            },
            "contract": {"type": "array", "x-kind": "attachment", "x-label": {"en": "Contract"},
                         "x-attachment": {"max_size": 2000, "accept": ["application/pdf", "image/*"], "max_files": 2}}
        }
    })
}

const QUOTES: &str = "/api/v1/w/demo/entities/offer/records";

async fn sub_tables_validate_rows_and_keep_exact_totals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    publish(&admin, "offer", quote()).await;
    let (status, created) = admin
        .post(
            QUOTES,
            json!({"fields": {"title": "ERP", "lines": [
                {"product": "License", "qty": 3, "price": "0.10", "delivery": "2026-12-01"},
                {"product": "Support", "qty": 1, "price": 0.2}
            ]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["fields"]["lines"][0]["price"], "0.10");
    assert_eq!(
        created["totals"],
        json!({"lines": {"qty": 4, "price": "0.30", "delivery": "2026-12-01", "product": 2}})
    );
    let cases = [
        (json!([{"product": "X", "qty": 0}]), "/fields/lines/0/qty"),
        (
            json!([{"product": "X", "qty": 1}, {"qty": 2}]),
            "/fields/lines/1",
        ),
        (
            json!([{"product": "X", "qty": 1, "colour": "red"}]),
            "/fields/lines/0/colour",
        ),
        (
            json!([{"product": "X", "qty": 1, "price": "1.001"}]),
            "/fields/lines/0/price",
        ),
        (json!({"product": "X"}), "/fields/lines"),
        (json!(["X"]), "/fields/lines/0"),
    ];
    for (lines, pointer) in cases {
        let (status, body) = admin
            .post(QUOTES, json!({"fields": {"lines": lines}}))
            .await;
        let pointers = assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            pointers.iter().any(|p| p.starts_with(pointer)),
            "{lines}: {body}"
        );
    }
    let path = format!("{QUOTES}/{}", created["id"].as_str().expect("id"));
    let (status, changed) = admin
        .patch(
            &path,
            json!({"fields": {"lines": [{"product": "License", "qty": 10, "price": "99999.99"}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["totals"]["lines"]["price"], "99999.99");
    assert_eq!(changed["totals"]["lines"]["qty"], 10);
    let (_, history) = admin.get(&format!("{path}/history")).await;
    let last = history
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .expect("history");
    assert_eq!(
        last["changes"]["fields"]["lines"]["new"][0]["price"],
        "99999.99"
    );
    assert!(last["changes"]["fields"].get("_totals").is_none());
    let (status, body) = admin
        .post(
            &format!("{QUOTES}/query"),
            json!({"filter": {"field": "lines", "op": "is_not_empty"}, "total": "exact"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 1);
}

async fn upload(
    client: &Client,
    name: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = client
        .http
        .post(format!(
            "{}/api/v1/w/demo/entities/offer/attachments?field=contract&name={name}",
            client.base
        ))
        .header("content-type", content_type)
        .body(bytes);
    if let Some(csrf) = &client.csrf {
        request = request.header("x-csrf-token", csrf);
    }
    let response = request.send().await.expect("upload");
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

async fn attachments_are_checked_linked_once_and_downloadable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    publish(&admin, "offer", quote()).await;
    let pdf = b"%PDF-1.7\n% quote\n".to_vec();
    let (status, file) = upload(
        &admin,
        "%E5%90%88%E5%90%8C.pdf",
        "application/pdf",
        pdf.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["name"], "合同.pdf");
    assert_eq!(file["size"], pdf.len());
    for (name, content_type, bytes, code) in [
        (
            "x.pdf",
            "application/pdf",
            b"<html>".to_vec(),
            "content_type",
        ),
        ("x.zip", "application/zip", b"PK".to_vec(), "content_type"),
        (
            "big.pdf",
            "application/pdf",
            [b"%PDF-".to_vec(), vec![b'x'; 3000]].concat(),
            "max_size",
        ),
        ("empty.pdf", "application/pdf", Vec::new(), "empty"),
    ] {
        let (status, body) = upload(&admin, name, content_type, bytes).await;
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["errors"][0]["code"], code, "{body}");
    }
    let (status, record) = admin
        .post(
            QUOTES,
            json!({"fields": {"title": "with file", "contract": [file["id"]]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{record}");
    assert_eq!(record["fields"]["contract"][0]["name"], "合同.pdf");
    assert_eq!(
        record["fields"]["contract"][0]["content_type"],
        "application/pdf"
    );
    // The same file cannot be attached to a second record.
    let (status, body) = admin
        .post(QUOTES, json!({"fields": {"contract": [file["id"]]}}))
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/contract/0"]
    );
    let (status, body) = admin
        .post(
            QUOTES,
            json!({"fields": {"contract": [uuid::Uuid::now_v7()]}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/contract/0"]
    );
    // Keeping the file and adding another in a PATCH works; three files are too many.
    let (_, second) = upload(
        &admin,
        "scan.png",
        "image/png",
        b"\x89PNG\r\n\x1a\nrest".to_vec(),
    )
    .await;
    let path = format!("{QUOTES}/{}", record["id"].as_str().expect("id"));
    let (status, changed) = admin
        .patch(
            &path,
            json!({"fields": {"contract": [record["fields"]["contract"][0], second["id"]]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        changed["fields"]["contract"].as_array().map(Vec::len),
        Some(2)
    );
    let (_, third) = upload(&admin, "more.pdf", "application/pdf", pdf.clone()).await;
    let (status, body) = admin
        .patch(
            &path,
            json!({"fields": {"contract": [file["id"], second["id"], third["id"]]}}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/fields/contract"]
    );
    // Download: bytes, type and safe headers.
    let response = admin
        .http
        .get(format!(
            "{}/api/v1/w/demo/attachments/{}",
            admin.base,
            file["id"].as_str().expect("id")
        ))
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .contains("UTF-8''%E5%90%88")
    );
    assert_eq!(response.bytes().await.expect("bytes").to_vec(), pdf);
    // A viewer sees files of records they can see, not other people's loose uploads.
    let member = app.create_user("rep@formwork.local").await;
    admin
        .post(
            "/api/v1/w/demo/members",
            json!({"email": "rep@formwork.local", "role": "viewer"}),
        )
        .await;
    let (status, _) = member
        .get(&format!(
            "/api/v1/w/demo/attachments/{}",
            file["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = member
        .get(&format!(
            "/api/v1/w/demo/attachments/{}",
            third["id"].as_str().expect("id")
        ))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    // After the record is deleted its files are gone for members.
    admin.delete(&path).await;
    let (status, body) = member
        .get(&format!(
            "/api/v1/w/demo/attachments/{}",
            file["id"].as_str().expect("id")
        ))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    // Another workspace never sees them.
    admin
        .post(
            "/api/v1/account/workspaces",
            json!({"slug": "east", "name": "East"}),
        )
        .await;
    let (status, body) = admin
        .get(&format!(
            "/api/v1/w/east/attachments/{}",
            file["id"].as_str().expect("id")
        ))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = admin.get("/api/v1/w/demo/attachments/not-an-id").await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
}

both_databases!(
    sub_tables_validate_rows_and_keep_exact_totals,
    attachments_are_checked_linked_once_and_downloadable,
);
