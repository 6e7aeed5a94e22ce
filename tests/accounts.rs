//! Accounts, sessions, CSRF, tokens, workspaces and tenancy through the HTTP API.

mod common;

use chrono::Duration;
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, Client, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::json;

async fn login_sets_a_safe_cookie_and_rejects_bad_passwords(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = reqwest::Client::new()
        .post(app.url("/api/v1/account/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(cookie.starts_with("fw_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["workspaces"][0]["slug"], "demo");
    assert_eq!(body["workspaces"][0]["role"], "owner");

    let anonymous = app.anonymous();
    for (email, password) in [
        (ADMIN_EMAIL, "wrong-password-1"),
        ("nobody@example.com", ADMIN_PASSWORD),
    ] {
        let (status, body) = anonymous
            .post(
                "/api/v1/account/login",
                json!({"email": email, "password": password}),
            )
            .await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = anonymous.get("/api/v1/account").await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
}

async fn repeated_failures_are_rate_limited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let anonymous = app.anonymous();
    for _ in 0..10 {
        let (status, _) = anonymous
            .post(
                "/api/v1/account/login",
                json!({"email": ADMIN_EMAIL, "password": "guess-guess-guess"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused while the window lasts.
    let (status, body) = anonymous
        .post(
            "/api/v1/account/login",
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS);
    app.advance(Duration::minutes(16));
    let (status, _) = anonymous
        .post(
            "/api/v1/account/login",
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn sessions_expire_when_idle_and_absolutely(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    assert_eq!(admin.get("/api/v1/account").await.0, StatusCode::OK);
    // Active use keeps an idle session alive…
    for _ in 0..3 {
        app.advance(Duration::hours(11));
        assert_eq!(admin.get("/api/v1/account").await.0, StatusCode::OK);
    }
    // …but 12 idle hours end it.
    app.advance(Duration::hours(13));
    let (status, body) = admin.get("/api/v1/account").await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);

    let admin = app.admin().await;
    for _ in 0..31 {
        app.advance(Duration::hours(11));
        let _ = admin.get("/api/v1/account").await;
    }
    // 14 days after login the session ends however active it was.
    let (status, _) = admin.get("/api/v1/account").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn unsafe_requests_with_a_cookie_need_the_csrf_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admin = app.admin().await;
    let csrf = admin.csrf.take();
    let (status, body) = admin
        .post(
            "/api/v1/account/workspaces",
            json!({"slug": "east", "name": "East"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    admin.csrf = csrf;
    let (status, body) = admin
        .post(
            "/api/v1/account/workspaces",
            json!({"slug": "east", "name": "East"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["time_zone"], "Asia/Shanghai");
}

async fn logout_ends_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let (status, _) = admin.post("/api/v1/account/logout", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        admin.get("/api/v1/account").await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn password_change_checks_the_current_one_and_ends_other_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.admin().await;
    let second = app.admin().await;
    let (status, body) = first
        .put(
            "/api/v1/account/password",
            json!({"current_password": "nope-nope-nope", "new_password": "a-new-password-1"}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/current_password"]
    );
    let (status, body) = first
        .put(
            "/api/v1/account/password",
            json!({"current_password": ADMIN_PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/new_password"]
    );
    let (status, _) = first
        .put(
            "/api/v1/account/password",
            json!({"current_password": ADMIN_PASSWORD, "new_password": "a-new-password-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(first.get("/api/v1/account").await.0, StatusCode::OK);
    assert_eq!(
        second.get("/api/v1/account").await.0,
        StatusCode::UNAUTHORIZED
    );
    app.login(ADMIN_EMAIL, "a-new-password-1").await;
}

async fn another_workspace_is_invisible(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let outsider = app.create_user("outsider@example.com").await;
    for path in [
        "/api/v1/w/demo",
        "/api/v1/w/demo/definitions",
        "/api/v1/w/demo/jobs",
        "/api/v1/w/nope",
    ] {
        let (status, body) = outsider.get(path).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND);
    }
    // Adding them as a viewer lets them read but not change definitions.
    let admin = app.admin().await;
    let (status, body) = admin
        .post(
            "/api/v1/w/demo/members",
            json!({"email": "outsider@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        outsider.get("/api/v1/w/demo/definitions").await.0,
        StatusCode::OK
    );
    let (status, body) = outsider
        .put(
            "/api/v1/w/demo/definitions/entity/thing/draft",
            json!({"document": {}}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = admin
        .post(
            "/api/v1/w/demo/members",
            json!({"email": "outsider@example.com", "role": "emperor"}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/role"]
    );
}

async fn api_tokens_are_shown_once_bound_to_a_workspace_and_revocable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    admin
        .post(
            "/api/v1/account/workspaces",
            json!({"slug": "other", "name": "Other"}),
        )
        .await;
    let (status, created) = admin
        .post("/api/v1/w/demo/tokens", json!({"name": "integration"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("fwt_"));
    let (_, listed) = admin.get("/api/v1/w/demo/tokens").await;
    assert!(
        !listed.to_string().contains(&secret),
        "the secret must never be listed again"
    );

    let bot = Client::with_token(app.address.clone(), &secret);
    assert_eq!(
        bot.get("/api/v1/w/demo/definitions").await.0,
        StatusCode::OK
    );
    // Bound to its workspace: another one the same account owns is invisible to it.
    assert_eq!(bot.get("/api/v1/w/other").await.0, StatusCode::NOT_FOUND);
    // Account routes need a session.
    assert_eq!(bot.get("/api/v1/account").await.0, StatusCode::FORBIDDEN);
    // No CSRF needed for bearer tokens…
    let (status, _) = bot
        .patch(
            "/api/v1/w/demo/settings",
            json!({"name": "Demo (renamed by a token)"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // …but a token cannot mint tokens that would outlive its revocation.
    let (status, body) = bot
        .post("/api/v1/w/demo/tokens", json!({"name": "child"}))
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);

    let id = created["id"].as_str().expect("id");
    let (status, _) = admin.delete(&format!("/api/v1/w/demo/tokens/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = bot.get("/api/v1/w/demo/definitions").await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    let (status, _) = admin.delete(&format!("/api/v1/w/demo/tokens/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let garbage = Client::with_token(app.address.clone(), "fwt_0000");
    assert_eq!(
        garbage.get("/api/v1/w/demo").await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn expired_tokens_stop_working(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let expires = (app.services.clock().now() + Duration::hours(1)).to_rfc3339();
    let (_, created) = admin
        .post(
            "/api/v1/w/demo/tokens",
            json!({"name": "short-lived", "expires_at": expires}),
        )
        .await;
    let bot = Client::with_token(
        app.address.clone(),
        created["secret"].as_str().expect("secret"),
    );
    assert_eq!(bot.get("/api/v1/w/demo").await.0, StatusCode::OK);
    app.advance(Duration::hours(2));
    assert_eq!(bot.get("/api/v1/w/demo").await.0, StatusCode::UNAUTHORIZED);
    let past = (app.services.clock().now() - Duration::hours(1)).to_rfc3339();
    let (status, body) = admin
        .post(
            "/api/v1/w/demo/tokens",
            json!({"name": "x", "expires_at": past}),
        )
        .await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/expires_at"]
    );
}

async fn bad_requests_get_located_problems(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        common::Options {
            body_limit: 4096,
            ..Default::default()
        },
    )
    .await;
    let admin = app.admin().await;
    let raw = |body: &'static str| {
        let http = admin.http.clone();
        let url = app.url("/api/v1/account/workspaces");
        let csrf = admin.csrf.clone().unwrap_or_default();
        async move {
            let response = http
                .post(url)
                .header("content-type", "application/json")
                .header("x-csrf-token", csrf)
                .body(body)
                .send()
                .await
                .expect("send");
            let status = response.status();
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap_or_default()
                .to_owned();
            let body: serde_json::Value = response.json().await.expect("problem json");
            (status, content_type, body)
        }
    };
    let (status, content_type, body) = raw("{\n  \"slug\": \"x\",\n  oops }").await;
    assert_eq!(content_type, "application/problem+json");
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["line"], 3, "{body}");
    let (status, _, body) = raw(r#"{"slug": 5, "name": "x"}"#).await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/slug"]
    );
    let (status, _, body) = raw(r#"{"slug": "ok-slug", "name": "x", "colour": "red"}"#).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _, body) = raw(r#"{"slug": "Bad Slug", "name": "x"}"#).await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/slug"]
    );
    let (status, _, body) = raw(r#"{"slug": "demo", "name": "again"}"#).await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::CONFLICT),
        ["/slug"]
    );
    let (status, _, body) =
        raw(r#"{"slug": "zone", "name": "x", "time_zone": "Mars/Olympus"}"#).await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/time_zone"]
    );
    let (status, _, body) = raw(r#"{"slug": "nul-name", "name": "a\u0000b"}"#).await;
    assert_eq!(
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY),
        ["/name"]
    );
    for path in [
        "/api/v1/w/%00demo",
        "/api/v1/w/demo/definitions/entity/le%00ad",
        "/api/v1/w/DEMO",
    ] {
        let (status, body) = admin.get(path).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND);
    }
    let (status, body) = app
        .anonymous()
        .post(
            "/api/v1/account/login",
            json!({"email": "a\u{0}@b.cn", "password": "x\u{0}"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let huge: &'static str = Box::leak(
        format!(r#"{{"slug": "big", "name": "{}"}}"#, "x".repeat(10_000)).into_boxed_str(),
    );
    let (status, _, body) = raw(huge).await;
    assert_problem(status, &body, StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing was written by any of them.
    let (_, workspaces) = admin.get("/api/v1/account/workspaces").await;
    assert_eq!(workspaces.as_array().map(Vec::len), Some(1), "{workspaces}");
    let (status, body) = admin.get("/api/v1/no/such/route").await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
}

/// Each API token has its allowance of requests a minute: past it, a 429 problem with
/// `Retry-After`; another token, and sessions, are not held back.
async fn each_token_is_rate_limited_with_a_clear_429(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        common::Options {
            configure: |config| config.token_rate_limit = 5,
            ..common::Options::default()
        },
    )
    .await;
    let admin = app.admin().await;
    let mut secrets = Vec::new();
    for name in ["first", "second"] {
        let (status, created) = admin
            .post("/api/v1/w/demo/tokens", json!({"name": name}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        secrets.push(created["secret"].as_str().expect("secret").to_owned());
    }
    let first = Client::with_token(app.address.clone(), &secrets[0]);
    for _ in 0..5 {
        let (status, body) = first
            .get("/api/v1/w/demo/entities/lead/records?limit=1")
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let response = first
        .http
        .get(format!(
            "{}/api/v1/w/demo/entities/lead/records?limit=1",
            app.address
        ))
        .bearer_auth(&secrets[0])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=12).contains(&wait), "{wait}");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: serde_json::Value = response.json().await.expect("problem");
    assert_eq!(body["status"], 429, "{body}");
    let second = Client::with_token(app.address.clone(), &secrets[1]);
    let (status, _) = second
        .get("/api/v1/w/demo/entities/lead/records?limit=1")
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another token has its own allowance"
    );
    for _ in 0..10 {
        let (status, _) = admin
            .get("/api/v1/w/demo/entities/lead/records?limit=1")
            .await;
        assert_eq!(status, StatusCode::OK, "sessions are not token-limited");
    }
}

both_databases!(
    each_token_is_rate_limited_with_a_clear_429,
    login_sets_a_safe_cookie_and_rejects_bad_passwords,
    repeated_failures_are_rate_limited,
    sessions_expire_when_idle_and_absolutely,
    unsafe_requests_with_a_cookie_need_the_csrf_token,
    logout_ends_the_session,
    password_change_checks_the_current_one_and_ends_other_sessions,
    another_workspace_is_invisible,
    api_tokens_are_shown_once_bound_to_a_workspace_and_revocable,
    expired_tokens_stop_working,
    bad_requests_get_located_problems,
);
