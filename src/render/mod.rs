//! minijinja rendering of the UI's pages from `web/templates/` (embedded in the binary).
//!
//! Autoescaping is on for every `.html` template. Admin-written templates (later issues) get
//! their own sandboxed environment with fuel; these are the product's own.

pub mod sandbox;

use include_dir::{Dir, include_dir};
use minijinja::Environment;
use serde::Serialize;

use crate::error::{Error, Result};

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/web/templates");
static STATIC: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/web/static");

/// The UI's template environment.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// The process-wide environment, loaded on first use.
    ///
    /// # Errors
    /// As [`Pages::load`].
    pub fn shared() -> Result<&'static Pages> {
        static PAGES: std::sync::OnceLock<Pages> = std::sync::OnceLock::new();
        if let Some(pages) = PAGES.get() {
            return Ok(pages);
        }
        let pages = Self::load()?;
        Ok(PAGES.get_or_init(|| pages))
    }

    /// Loads every embedded template.
    ///
    /// # Errors
    /// `Error::Internal` when a shipped template does not compile (a unit test catches this).
    pub fn load() -> Result<Self> {
        let mut env = Environment::new();
        for file in TEMPLATES.files() {
            let name = file.path().to_string_lossy().into_owned();
            let source = file.contents_utf8().unwrap_or_default().to_owned();
            env.add_template_owned(name, source)
                .map_err(Error::internal)?;
        }
        Ok(Self { env })
    }

    /// Renders `name` with `context`.
    ///
    /// # Errors
    /// `Error::Internal` when rendering fails.
    pub fn render(&self, name: &str, context: impl Serialize) -> Result<String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&context))))
            .map_err(Error::internal)
    }
}

/// An embedded static asset and its content type.
pub fn static_asset(path: &str) -> Option<(&'static [u8], &'static str)> {
    let file = STATIC.get_file(path)?;
    let content_type = match file.path().extension().and_then(|e| e.to_str()) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    Some((file.contents(), content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_escapes() {
        let pages = Pages::load().expect("templates compile");
        let html = pages
            .render(
                "login.html",
                serde_json::json!({"error": "<script>alert(1)</script>", "email": "", "next": "/"}),
            )
            .expect("render");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>alert"));
    }

    #[test]
    fn the_stylesheet_is_embedded() {
        assert!(static_asset("app.css").is_some());
        assert!(static_asset("../Cargo.toml").is_none());
    }
}
