//! Rebuilds when the embedded templates or meta-schemas change (include_dir cannot track them).

fn main() {
    for dir in ["schemas", "workflows/templates", "web"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
