//! The shell session in docs/api.md runs, as written, against a real server (SQLite): the
//! documentation's curl examples stay true.

mod common;

use common::{ADMIN_PASSWORD, Backend, Options, TestApp};

/// The first ```sh block after `marker` in `text`.
fn shell_block<'a>(text: &'a str, marker: &str) -> &'a str {
    let after = &text[text.find(marker).expect("marker in docs/api.md")..];
    let start = after.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = after[start..].find("```").expect("block end");
    &after[start..start + end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_docs_shell_session_runs() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Options {
            demo_data: true,
            ..Options::default()
        },
    )
    .await;
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).expect("docs");
    let script = shell_block(&docs, "A session from the shell")
        .replace(
            "BASE=http://127.0.0.1:8080",
            &format!("BASE={}", app.address),
        )
        .replace("<the printed admin password>", ADMIN_PASSWORD);
    let dir = tempfile::tempdir().expect("tempdir");
    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(dir.path())
        .output()
        .await
        .expect("bash runs (curl is required: .ci/test installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the docs' shell session failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("\"status\":\"contacted\""), "{stdout}");
    assert!(stdout.contains("\"sum_amount\""), "{stdout}");
    assert!(stdout.contains("\"operation\":\"update\""), "{stdout}");
}
