//! The pages in a real browser: headless Chromium (Debian's `chromium`) loads them from a real
//! server. `.ci/test` installs Chromium when it is missing; without it these tests fail.

mod common;

use std::process::Command;

use common::{Backend, TestApp};

fn chromium() -> String {
    std::env::var("FORMWORK_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// The DOM Chromium ends up with after loading `url` (following redirects, running scripts).
fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "Chromium is required for the browser tests ({}): {e}",
                chromium()
            )
        });
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_is_sent_to_sign_in_and_sees_the_form() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let url = app.url("/w/demo/");
    let dom = tokio::task::spawn_blocking(move || dump_dom(&url))
        .await
        .expect("join");
    assert!(
        dom.contains(r#"<form method="post" action="/login""#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"name="email""#) && dom.contains(r#"name="password""#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"name="next" value="/w/demo/""#),
        "the redirect keeps the target: {dom}"
    );
    assert!(dom.contains("/static/app.css"));
}
