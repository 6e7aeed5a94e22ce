//! The HTML pages that exist so far: sign-in, sign-out, workspace chooser and home.

mod common;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION};

fn browser() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT_LANGUAGE,
        reqwest::header::HeaderValue::from_static("zh-CN,zh;q=0.9,en;q=0.5"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn sign_in_shows_the_workspace_and_sign_out_ends_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = browser();
    let response = browser.get(app.url("/")).send().await.expect("get");
    assert!(response.status().is_redirection());
    assert_eq!(response.headers()[LOCATION], "/login");
    let response = browser.get(app.url("/w/demo/")).send().await.expect("get");
    assert_eq!(response.headers()[LOCATION], "/login?next=/w/demo/");

    let page = browser.get(app.url("/login")).send().await.expect("get");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    let html = page.text().await.expect("html");
    assert!(html.contains("name=\"password\"") && html.contains("登录"));
    let login_csrf = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf token in the sign-in form")
        .to_owned();
    // Without the form's token (a forged cross-site form), sign-in is refused.
    let forged = browser
        .post(app.url("/login"))
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let wrong = browser
        .post(app.url("/login"))
        .form(&[
            ("email", ADMIN_EMAIL),
            ("password", "not-the-password"),
            ("next", "/"),
            ("csrf_token", login_csrf.as_str()),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.expect("html").contains("邮箱或密码错误"));

    let right = browser
        .post(app.url("/login"))
        .form(&[
            ("email", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
            ("next", "//evil.example/"),
            ("csrf_token", login_csrf.as_str()),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(right.headers()[LOCATION], "/", "no open redirect");
    let response = browser.get(app.url("/")).send().await.expect("get");
    assert_eq!(response.headers()[LOCATION], "/w/demo/");
    let home = browser.get(app.url("/w/demo/")).send().await.expect("get");
    assert_eq!(home.status(), StatusCode::OK);
    let html = home.text().await.expect("html");
    for label in ["线索", "客户", "联系人", "商机", "跟进记录", "您好"] {
        assert!(html.contains(label), "home lists {label}");
    }
    let csrf = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf token in the page")
        .to_owned();
    let nope = browser.get(app.url("/w/nope/")).send().await.expect("get");
    assert_eq!(nope.status(), StatusCode::NOT_FOUND);

    let forged = browser
        .post(app.url("/logout"))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let out = browser
        .post(app.url("/logout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = browser.get(app.url("/w/demo/")).send().await.expect("get");
    assert!(after.status().is_redirection(), "signed out");
}

async fn cross_site_sign_in_and_static_assets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cross = browser()
        .post(app.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .expect("post");
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let css = browser()
        .get(app.url("/static/app.css"))
        .send()
        .await
        .expect("get");
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
    let missing = browser()
        .get(app.url("/static/../Cargo.toml"))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

both_databases!(
    sign_in_shows_the_workspace_and_sign_out_ends_it,
    cross_site_sign_in_and_static_assets,
);
