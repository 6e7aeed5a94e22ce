//! Outbound webhook subscriptions through the API, on both databases: admins subscribe a URL
//! to an entity's events; record writes (single, batch, import) enqueue signed deliveries in
//! their transaction; a failing receiver gets the same delivery again later; switching a
//! subscription off or deleting it stops deliveries; refusals name what is wrong.

mod common;

use common::{Backend, TestApp, WebhookSink, assert_problem};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

const W: &str = "/api/v1/w/demo";

/// Checks a `Formwork-Signature` header against the body and the secret.
fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = "";
    let mut v1 = "";
    for part in header.split(',') {
        if let Some(value) = part.strip_prefix("t=") {
            t = value;
        } else if let Some(value) = part.strip_prefix("v1=") {
            v1 = value;
        }
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes()) == v1
}

async fn subscribers_get_signed_deliveries_with_retries(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    // The receiver fails once, then accepts.
    let sink = WebhookSink::start(vec![500]).await;
    let (status, hook) = admin
        .post(
            &format!("{W}/webhooks"),
            json!({"entity": "lead", "events": ["created", "updated"], "url": sink.url, "description": "ERP sync"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let secret = hook["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = hook["id"].as_str().expect("id").to_owned();
    let (_, listed) = admin.get(&format!("{W}/webhooks")).await;
    assert!(!listed.to_string().contains(&secret), "never listed again");

    let (status, lead) = admin
        .post(
            &format!("{W}/entities/lead/records"),
            json!({"fields": {"name": "Ada", "source": "referral", "status": "new"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lead}");
    let lead_id = lead["id"].as_str().expect("id").to_owned();
    app.run_jobs_until_idle().await;
    assert_eq!(sink.received().len(), 1, "the first attempt, refused");
    app.advance(chrono::Duration::minutes(30));
    app.run_jobs_until_idle().await;
    let received = sink.received();
    assert_eq!(received.len(), 2, "delivered again after the failure");
    assert_eq!(
        received[0].0, received[1].0,
        "one idempotency key per delivery"
    );
    let body = &received[1].1;
    assert_eq!(body["type"], "record.created");
    assert_eq!(body["entity"], "lead");
    assert_eq!(body["record"]["id"], lead_id.as_str());
    assert_eq!(body["record"]["fields"]["name"], "Ada");
    assert_eq!(body["channel"], "ui", "a session is the browser's channel");
    let signed = sink.signed();
    let (header, raw) = signed.last().expect("signed");
    assert!(
        verify(&secret, header, raw),
        "the signature checks: {header}"
    );
    assert!(!verify("whsec_wrong", header, raw));

    // A change says which fields changed; a delete is not subscribed to.
    let (status, _) = admin
        .patch(
            &format!("{W}/entities/lead/records/{lead_id}"),
            json!({"fields": {"status": "contacted"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = admin
        .post(
            &format!("{W}/entities/lead/records/batch"),
            json!({"records": [{"fields": {"name": "Bo", "source": "event", "status": "new"}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = admin
        .delete(&format!("{W}/entities/lead/records/{lead_id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Other entities are not subscribed to.
    let (status, _) = admin
        .post(
            &format!("{W}/entities/customer/records"),
            json!({"fields": {"name": "Acme", "lifecycle_stage": "first_contact"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.run_jobs_until_idle().await;
    let received = sink.received();
    let types: Vec<&str> = received[2..]
        .iter()
        .map(|(_, b)| b["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        types,
        vec!["record.updated", "record.created"],
        "{received:?}"
    );
    assert_eq!(
        received[2].1["changed"],
        json!(["status", "score"]),
        "the formula the change moved too"
    );
    let (status, deliveries) = admin.get(&format!("{W}/webhooks/{id}/deliveries")).await;
    assert_eq!(status, StatusCode::OK, "{deliveries}");
    assert_eq!(deliveries.as_array().map(Vec::len), Some(3), "{deliveries}");

    // Rotated: the new secret signs; switched off: nothing more is delivered.
    let (status, rotated) = admin
        .patch(
            &format!("{W}/webhooks/{id}"),
            json!({"rotate_secret": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let fresh = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(fresh, secret);
    admin
        .post(
            &format!("{W}/entities/lead/records"),
            json!({"fields": {"name": "Cy", "source": "event", "status": "new"}}),
        )
        .await;
    app.run_jobs_until_idle().await;
    let signed = sink.signed();
    let (header, raw) = signed.last().expect("signed");
    assert!(verify(&fresh, header, raw));
    let (status, _) = admin
        .patch(&format!("{W}/webhooks/{id}"), json!({"enabled": false}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let before = sink.received().len();
    admin
        .post(
            &format!("{W}/entities/lead/records"),
            json!({"fields": {"name": "Di", "source": "event", "status": "new"}}),
        )
        .await;
    app.run_jobs_until_idle().await;
    assert_eq!(
        sink.received().len(),
        before,
        "a switched-off subscription delivers nothing"
    );
    let (status, _) = admin.delete(&format!("{W}/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = admin.get(&format!("{W}/webhooks/{id}")).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
}

async fn subscriptions_are_for_admins_and_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    for (body, pointer) in [
        (
            json!({"entity": "nothing", "url": "https://example.com/h"}),
            "/entity",
        ),
        (
            json!({"entity": "lead", "events": ["exploded"], "url": "https://example.com/h"}),
            "/events/0",
        ),
        (
            json!({"entity": "lead", "events": [], "url": "https://example.com/h"}),
            "/events",
        ),
        (
            json!({"entity": "lead", "url": "ftp://example.com"}),
            "/url",
        ),
        (json!({"entity": "lead", "url": "not a url"}), "/url"),
    ] {
        let (status, answer) = admin.post(&format!("{W}/webhooks"), body.clone()).await;
        let pointers = assert_problem(status, &answer, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(pointers.iter().any(|p| p == pointer), "{body} → {answer}");
    }
    let (status, answer) = admin
        .post(
            &format!("{W}/webhooks"),
            json!({"entity": "*", "url": "https://example.com/h", "surprise": 1}),
        )
        .await;
    assert_problem(status, &answer, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, every) = admin
        .post(
            &format!("{W}/webhooks"),
            json!({"entity": "*", "url": "https://example.com/h"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{every}");
    assert_eq!(every["events"], json!(["created", "updated", "deleted"]));
    let (rep, _) = common::join_member(&app, &admin, "rep@example.com", "crm.sales_rep").await;
    let (status, body) = rep.get(&format!("{W}/webhooks")).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = rep
        .post(
            &format!("{W}/webhooks"),
            json!({"entity": "lead", "url": "https://example.com/h"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = admin.get(&format!("{W}/webhooks/not-an-id")).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let _: Value = every;
}

both_databases!(
    subscribers_get_signed_deliveries_with_retries,
    subscriptions_are_for_admins_and_checked,
);
