//! Keeps the module boundaries: axum only in `src/http/`, sea-orm only in `src/store/` (and the
//! error type's `Db` variant).

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn frameworks_stay_in_their_folders() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut strays = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(&root)
            .expect("inside src")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file).expect("read");
        if text.contains("axum::") && !relative.starts_with("http/") {
            strays.push(format!("{relative}: uses axum outside src/http"));
        }
        if (text.contains("sea_orm::") || text.contains("use sea_orm"))
            && !relative.starts_with("store/")
            && relative != "error.rs"
        {
            strays.push(format!("{relative}: uses sea_orm outside src/store"));
        }
    }
    assert!(strays.is_empty(), "{strays:#?}");
}
