//! `formwork backup` and `formwork restore`, round trips on both databases: a backup taken while
//! the server runs holds what was written before it; restored (with the server stopped), the
//! database is back to that point and the server starts on it. Bad backups and a restore under
//! a running server are refused and change nothing.

mod common;

use std::process::Command;

use common::{Backend, Process};
use reqwest::StatusCode;
use serde_json::json;

const LEADS: &str = "/api/v1/w/demo/entities/lead/records";

fn formwork(args: &[&str], database_url: &str) -> (bool, String) {
    let output = Command::new(common::binary())
        .args(args)
        .env("FORMWORK_DATABASE_URL", database_url)
        .env("FORMWORK_LOG", "warn")
        .output()
        .expect("formwork runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

async fn lead_names(address: &str) -> Vec<String> {
    let admin = common::process_admin(address).await;
    let (status, page) = admin.get(&format!("{LEADS}?limit=500&sort=name")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["fields"]["name"].as_str().map(str::to_owned))
        .collect()
}

async fn create_lead(address: &str, name: &str) {
    let admin = common::process_admin(address).await;
    let (status, body) = admin
        .post(
            LEADS,
            json!({"fields": {"name": name, "source": "web_form", "status": "new"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn a_backup_restores_the_database_to_its_moment(backend: Backend) {
    let (url, _dir) = common::fresh_database(backend).await;
    let work = tempfile::tempdir().expect("a directory");
    let file = work.path().join("formwork.backup");
    let file_arg = file.to_string_lossy().into_owned();
    let server = Process::spawn(&url, &[("FORMWORK_DEMO_DATA", "false")]).await;
    create_lead(&server.address, "备份之前").await;
    // Online: the server keeps running.
    let (ok, said) = formwork(&["backup", &file_arg], &url);
    assert!(ok, "{said}");
    assert!(file.exists());
    let (ok, said) = formwork(&["backup", &file_arg], &url);
    assert!(!ok && said.contains("exists already"), "{said}");
    create_lead(&server.address, "备份之后").await;
    if backend == Backend::Sqlite {
        // Not while a server holds the file.
        let (ok, said) = formwork(&["restore", &file_arg], &url);
        assert!(!ok && said.contains("another formwork process"), "{said}");
    }
    drop(server);
    // A file that is not a backup is refused; nothing changes.
    let junk = work.path().join("junk.backup");
    std::fs::write(&junk, b"not a database at all").expect("written");
    let (ok, said) = formwork(&["restore", &junk.to_string_lossy()], &url);
    assert!(!ok, "{said}");
    let server = Process::spawn(&url, &[("FORMWORK_DEMO_DATA", "false")]).await;
    let names = lead_names(&server.address).await;
    assert!(names.contains(&"备份之后".to_owned()), "{names:?}");
    drop(server);
    // The real restore.
    let (ok, said) = formwork(&["restore", &file_arg], &url);
    assert!(ok, "{said}");
    let server = Process::spawn(&url, &[("FORMWORK_DEMO_DATA", "false")]).await;
    let names = lead_names(&server.address).await;
    assert!(names.contains(&"备份之前".to_owned()), "{names:?}");
    assert!(!names.contains(&"备份之后".to_owned()), "{names:?}");
    // It is a working database: writes go on.
    create_lead(&server.address, "恢复之后").await;
}

both_databases!(a_backup_restores_the_database_to_its_moment);
