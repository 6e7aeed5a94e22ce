//! minijinja rendering of the UI's pages from `web/templates/` (embedded in the binary).
//!
//! Autoescaping is on for every `.html` template. Admin-written templates get their own
//! sandboxed environment with fuel (`sandbox`); these are the product's own. Templates call
//! `t("key")` for UI text in the page's language (`lang` in the context), with `{name}`
//! placeholders filled from keyword arguments. With `FORMWORK_WEB_DIR` set (development), pages
//! are read from that directory on every render, so template edits show on reload.

pub mod forms;
pub mod i18n;
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
        let mut env = environment();
        for file in TEMPLATES.files() {
            let name = file.path().to_string_lossy().into_owned();
            let source = file.contents_utf8().unwrap_or_default().to_owned();
            env.add_template_owned(name, source)
                .map_err(Error::internal)?;
        }
        Ok(Self { env })
    }

    /// Renders `name` with `context` (which names the page's language in `lang`).
    ///
    /// # Errors
    /// `Error::Internal` when rendering fails.
    pub fn render(&self, name: &str, context: impl Serialize) -> Result<String> {
        let context = minijinja::Value::from(minijinja::value::Serde(&context));
        if let Some(dir) = development_dir() {
            let mut env = environment();
            env.set_loader(move |name: &str| {
                if name.split('/').any(|part| part == ".." || part.is_empty()) {
                    return Ok(None);
                }
                match std::fs::read_to_string(format!("{dir}/{name}")) {
                    Ok(source) => Ok(Some(source)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("cannot read template {name}: {e}"),
                    )),
                }
            });
            return env
                .get_template(name)
                .and_then(|t| t.render(context))
                .map_err(Error::internal);
        }
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(Error::internal)
    }
}

/// The templates directory to read on every render, in development.
fn development_dir() -> Option<&'static str> {
    static DIR: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        std::env::var("FORMWORK_WEB_DIR")
            .ok()
            .filter(|d| !d.is_empty())
            .map(|d| format!("{}/templates", d.trim_end_matches('/')))
    })
    .as_deref()
}

/// The page's language, from `lang` in the render context.
fn locale_of(state: &minijinja::State<'_, '_>) -> i18n::Locale {
    state
        .lookup("lang")
        .and_then(|v| v.as_str().and_then(i18n::Locale::from_tag))
        .unwrap_or(i18n::Locale::En)
}

/// An environment with the UI's functions and filters.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_function(
        "t",
        |state: &minijinja::State<'_, '_>,
         key: &str,
         kwargs: minijinja::value::Kwargs|
         -> std::result::Result<String, minijinja::Error> {
            let mut text = locale_of(state).text(key);
            for name in kwargs.args() {
                let value: minijinja::Value = kwargs.get(name)?;
                text = text.replace(&format!("{{{name}}}"), &value.to_string());
            }
            Ok(text)
        },
    );
    env.add_filter(
        "label",
        |state: &minijinja::State<'_, '_>, value: minijinja::Value, fallback: Option<String>| {
            let json: serde_json::Value = serde_json::to_value(&value).unwrap_or_default();
            let fallback = fallback.unwrap_or_default();
            locale_of(state).label(Some(&json), &fallback).to_owned()
        },
    );
    env.add_filter(
        "datetime",
        |state: &minijinja::State<'_, '_>, value: String| -> String {
            let zone = state
                .lookup("time_zone")
                .and_then(|v| v.as_str().and_then(|z| z.parse::<chrono_tz::Tz>().ok()))
                .unwrap_or(chrono_tz::UTC);
            chrono::DateTime::parse_from_rfc3339(&value).map_or(value, |at| {
                locale_of(state).date_time(at.with_timezone(&chrono::Utc), zone)
            })
        },
    );
    env
}

/// Escapes text for XML and HTML (text and attribute values).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// An embedded static asset and its content type.
pub fn static_asset(path: &str) -> Option<(&'static [u8], &'static str)> {
    let file = STATIC.get_file(path)?;
    let content_type = match file.path().extension().and_then(|e| e.to_str()) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
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
    fn every_text_the_templates_use_is_in_both_catalogs() {
        let en = i18n::keys(i18n::Locale::En);
        let zh = i18n::keys(i18n::Locale::ZhCn);
        for file in TEMPLATES.files() {
            let source = file.contents_utf8().unwrap_or_default();
            for (start, _) in source.match_indices("t('") {
                // `default('en')` is not a call of `t`.
                let before = source[..start].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let rest = &source[start + 3..];
                let key = &rest[..rest.find('\'').unwrap_or(0)];
                // Keys completed at render time (`'channel.' ~ e.channel`) are checked by value.
                if key.ends_with('.') || key.ends_with('_') || key.is_empty() {
                    continue;
                }
                assert!(en.contains(&key), "{key} missing in en ({:?})", file.path());
                assert!(
                    zh.contains(&key),
                    "{key} missing in zh-CN ({:?})",
                    file.path()
                );
            }
        }
    }

    #[test]
    fn pages_speak_the_language_in_the_context() {
        let pages = Pages::load().expect("templates compile");
        let context = |lang: &str| serde_json::json!({"lang": lang, "status": 404, "detail": "record \"x\" not found"});
        let zh = pages
            .render("error.html", context("zh-CN"))
            .expect("render");
        assert!(zh.contains("未找到"), "{zh}");
        assert!(zh.contains(r#"<html lang="zh-CN">"#));
        let en = pages.render("error.html", context("en")).expect("render");
        assert!(en.contains("Not found"), "{en}");
    }

    #[test]
    fn the_stylesheet_is_embedded() {
        assert!(static_asset("app.css").is_some());
        assert!(static_asset("../Cargo.toml").is_none());
    }
}
