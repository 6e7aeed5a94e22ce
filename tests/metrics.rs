//! `GET /metrics` in the Prometheus text format, on both databases: requests counted by route
//! template (never by raw path), latency histograms, the job queue read from the database
//! (depth per kind and state, the oldest due job's wait, dead outbox deliveries), and the
//! optional bearer token.

mod common;

use common::{Backend, TestApp};
use reqwest::StatusCode;
use serde_json::json;

const W: &str = "/api/v1/w/demo";

async fn scrape(app: &TestApp, token: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().get(app.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.text().await.expect("text"))
}

/// The value of the series whose line starts with `prefix`.
fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_count_requests_and_read_the_queue(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, lead) = admin
        .post(
            &format!("{W}/entities/lead/records"),
            json!({"fields": {"name": "指标", "source": "web_form", "status": "new"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lead}");
    let id = lead["id"].as_str().expect("id");
    for _ in 0..3 {
        let (status, _) = admin.get(&format!("{W}/entities/lead/records/{id}")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = admin
        .get(&format!("{W}/entities/lead/records/{}", uuid::Uuid::nil()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, text) = scrape(&app, None).await;
    assert_eq!(status, StatusCode::OK);
    let route = "route=\"/api/v1/w/{workspace}/entities/{entity}/records/{id}\"";
    assert_eq!(
        value(
            &text,
            &format!("formwork_http_requests_total{{method=\"GET\",{route},status=\"200\"}}")
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("formwork_http_requests_total{{method=\"GET\",{route},status=\"404\"}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("formwork_http_request_duration_seconds_count{{method=\"GET\",{route}}}")
        ),
        Some(4.0)
    );
    assert!(!text.contains(id), "raw paths never become series");
    // The lead started the Sales CRM's assignment workflow: its job waits (workers are off in
    // tests) until the jobs run.
    let queued: f64 = text
        .lines()
        .filter(|l| l.starts_with("formwork_jobs{") && l.contains("status=\"queued\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(queued >= 1.0, "{text}");
    assert!(value(&text, "formwork_jobs_oldest_due_seconds").is_some());
    assert_eq!(
        value(&text, "formwork_outbox_failed{kind=\"outbox.webhook\"}"),
        Some(0.0)
    );
    app.run_jobs_until_idle().await;
    let (_, text) = scrape(&app, None).await;
    let due: f64 = text
        .lines()
        .filter(|l| l.starts_with("formwork_jobs{") && l.contains("status=\"queued\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(due < queued, "the queue drained: {text}");
}

async fn metrics_can_require_a_token(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        common::Options {
            configure: |config| config.metrics_token = Some("scrape-secret".to_owned()),
            ..Default::default()
        },
    )
    .await;
    let (status, _) = scrape(&app, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = scrape(&app, Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, text) = scrape(&app, Some("scrape-secret")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("# TYPE formwork_http_requests_total counter"));
}

both_databases!(
    metrics_count_requests_and_read_the_queue,
    metrics_can_require_a_token
);
