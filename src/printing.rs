//! Print templates: admin-written minijinja HTML (definitions of kind `print_template`, one
//! entity each) drawn as a print-ready document of one record — a quote with its lines, a
//! contract. The template runs in a sandbox: values are HTML-escaped, a fuel budget stops
//! loops, the output is capped, and the result is cleaned of anything that could run or reach
//! out (scripts, handlers, frames, `javascript:` links). It sees only what the reader may:
//! the record through their lens, the records its references point to and the records that
//! refer to it, each read with the reader's access.

use std::collections::HashMap;
use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::definitions::{EntityModel, FieldKind, Kind, Snapshot};
use crate::error::{Error, FieldError, Result};
use crate::records::{Context, Records};
use crate::render::i18n::Locale;

/// Instructions one render may run (a quote of 200 lines needs about a tenth of it).
pub const FUEL: u64 = 1_000_000;
/// Largest document one render may produce (bytes).
pub const MAX_OUTPUT: usize = 1024 * 1024;
/// Largest template accepted (bytes).
pub const MAX_SOURCE: usize = 50_000;
/// Most related records of each entity a template sees.
const RELATED_LIMIT: u64 = 200;

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(32);
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.add_filter("money", money_filter);
        env
    })
}

/// `{{ value | money("CNY", "zh-CN") }}`: a decimal as money in a language (defaults: CNY,
/// English).
fn money_filter(value: &minijinja::Value, currency: Option<&str>, lang: Option<&str>) -> String {
    let text = value.to_string();
    if text.is_empty() || text == "none" || text == "undefined" {
        return String::new();
    }
    let locale = lang.and_then(Locale::from_tag).unwrap_or(Locale::En);
    let Ok(amount) = text.parse::<rust_decimal::Decimal>() else {
        return text;
    };
    locale.money(
        &format!("{:.2}", amount.round_dp(2)),
        currency.unwrap_or("CNY"),
    )
}

/// Checks that a print template compiles (line and column on error).
///
/// # Errors
/// One `FieldError` (`template_syntax` or `template_size`).
pub fn check_template(source: &str, pointer: &str) -> std::result::Result<(), FieldError> {
    crate::render::sandbox::check_in(environment(), MAX_SOURCE, source, pointer)
}

/// Runs a print template over `context` in the sandbox and cleans the result.
///
/// # Errors
/// `Error::Invalid` at `/template` (`template_syntax`, `template_error`, or `template_limit`
/// when the fuel or the output cap ran out), with line and column.
pub fn render_template(source: &str, context: &Value) -> Result<String> {
    let pointer = "/template";
    check_template(source, pointer)
        .map_err(|e| Error::invalid_all("the print template is invalid", vec![e]))?;
    let html =
        crate::render::sandbox::render_capped(environment(), source, context, MAX_OUTPUT, pointer)?;
    Ok(clean(&html))
}

/// The document's HTML with everything that could run or reach out removed; classes and
/// inline styles stay (the page's policy lets styles load nothing from elsewhere).
fn clean(html: &str) -> String {
    ammonia::Builder::default()
        .add_generic_attributes(&["class", "style"])
        .add_tag_attributes("td", &["colspan", "rowspan"])
        .add_tag_attributes("th", &["colspan", "rowspan"])
        .clean(html)
        .to_string()
}

/// A print template as offered on a record's page.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateRef {
    /// Its key.
    pub key: String,
    /// Its label in the reader's language.
    pub label: String,
}

/// A printed document.
#[derive(Debug, Clone, Serialize)]
pub struct Printed {
    /// The template's label.
    pub label: String,
    /// The record's title.
    pub title: String,
    /// `A4`, `A4-landscape`, `A5` or `letter`.
    pub paper: String,
    /// Whether the page starts with the workspace's header.
    pub header: bool,
    /// The document's body, cleaned.
    pub html: String,
}

/// The print templates of `entity`, by label.
pub fn templates_for(snapshot: &Snapshot, entity: &str, locale: Locale) -> Vec<TemplateRef> {
    templates_of(snapshot, Kind::PrintTemplate, entity, locale)
}

/// The templates of a kind (print or email) made for `entity`, by label.
pub fn templates_of(
    snapshot: &Snapshot,
    kind: Kind,
    entity: &str,
    locale: Locale,
) -> Vec<TemplateRef> {
    let mut found: Vec<TemplateRef> = snapshot
        .of_kind(kind)
        .into_iter()
        .filter(|(_, p)| p.document.get("entity").and_then(Value::as_str) == Some(entity))
        .map(|(key, p)| TemplateRef {
            key: key.to_owned(),
            label: locale.label(p.document.get("label"), key).to_owned(),
        })
        .collect();
    found.sort_by(|a, b| a.label.cmp(&b.label));
    found
}

/// The record's values as text in `locale` (selects as their labels, money with its symbol,
/// dates as the language writes them, references and people as names; sub-table rows each
/// the same way).
fn shown(
    model: &EntityModel,
    fields: &Map<String, Value>,
    names: &crate::render::forms::Names,
    zone: chrono_tz::Tz,
    locale: Locale,
) -> Map<String, Value> {
    let properties = model.document.get("properties");
    let mut out = Map::new();
    for field in &model.fields {
        let Some(value) = fields.get(&field.key) else {
            continue;
        };
        let spec = properties.and_then(|p| p.get(&field.key));
        if matches!(field.kind, FieldKind::SubTable { .. }) {
            let columns = spec.and_then(|s| s.pointer("/items/properties"));
            let rows: Vec<Value> = value
                .as_array()
                .into_iter()
                .flatten()
                .map(|row| {
                    let mut shown_row = Map::new();
                    for (key, cell) in row.as_object().into_iter().flatten() {
                        let column = columns.and_then(|c| c.get(key));
                        let kind = column
                            .and_then(|c| c.get("x-kind"))
                            .and_then(Value::as_str)
                            .unwrap_or("text");
                        let text = match (kind, cell) {
                            ("money", Value::Number(_) | Value::String(_)) => locale.money(
                                cell.to_string().trim_matches('"'),
                                column
                                    .and_then(|c| c.get("x-currency"))
                                    .and_then(Value::as_str)
                                    .unwrap_or("CNY"),
                            ),
                            (_, Value::String(s)) => s.clone(),
                            (_, Value::Null) => String::new(),
                            // A whole quantity stored as 50.0 is written 50.
                            (_, Value::Number(n)) => locale.number(
                                &n.as_f64()
                                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                                    .map_or_else(|| n.to_string(), |f| format!("{f:.0}")),
                            ),
                            (_, other) => other.to_string(),
                        };
                        shown_row.insert(key.clone(), json!(text));
                    }
                    Value::Object(shown_row)
                })
                .collect();
            out.insert(field.key.clone(), json!(rows));
            continue;
        }
        let choices = crate::render::forms::options(spec, locale);
        out.insert(
            field.key.clone(),
            json!(crate::render::forms::display(
                field, &choices, value, names, zone, locale
            )),
        );
    }
    out
}

impl Records<'_> {
    /// Draws record `id` of `entity` with print template `template` in `locale`, as `ctx` may
    /// see it.
    ///
    /// # Errors
    /// `Error::NotFound` (record, template, or a template of another entity), `Error::Invalid`
    /// at `/template` when the template fails or runs past its limits.
    pub async fn print(
        &self,
        ctx: &Context,
        workspace_name: &str,
        entity: &str,
        id: &str,
        template: &str,
        locale: Locale,
    ) -> Result<Printed> {
        let shape = self.shape(ctx, entity).await?;
        let not_found = || Error::not_found(format!("print template {template:?} of {entity}"));
        let document = shape
            .snapshot
            .get(Kind::PrintTemplate, template)
            .map(|p| p.document.clone())
            .filter(|d| d.get("entity").and_then(Value::as_str) == Some(entity))
            .ok_or_else(not_found)?;
        let mut context = self
            .document_context(ctx, workspace_name, entity, id, locale)
            .await?;
        let title = context
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let label = locale.label(document.get("label"), template).to_owned();
        context.insert("label".to_owned(), json!(label));
        let source = document
            .get("template")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let html = render_template(source, &Value::Object(context))?;
        Ok(Printed {
            label,
            title,
            paper: document
                .get("paper")
                .and_then(Value::as_str)
                .unwrap_or("A4")
                .to_owned(),
            header: document
                .get("header")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            html,
        })
    }

    /// What a document template (print or email) sees of record `id` of `entity`, as `ctx`
    /// may see it: `record`, `shown`, `refs`, `related`, `title`, `workspace`, `today`,
    /// `today_shown`, `lang` and `printed_by`.
    ///
    /// # Errors
    /// `Error::NotFound` (no such record, or not readable), `Error::Db`.
    pub async fn document_context(
        &self,
        ctx: &Context,
        workspace_name: &str,
        entity: &str,
        id: &str,
        locale: Locale,
    ) -> Result<Map<String, Value>> {
        let shape = self.shape(ctx, entity).await?;
        let snapshot = shape.snapshot.clone();
        let model = shape.model.clone();
        let record = self.get(ctx, entity, id, false).await?;
        let zone = ctx.time_zone;
        // Names of the people and records the values point to, as the reader may see them.
        let mut names = crate::render::forms::Names::default();
        let mut refs = Map::new();
        for field in &model.fields {
            let FieldKind::Reference { entity: target, .. } = &field.kind else {
                continue;
            };
            let Some(Value::String(target_id)) = record.fields.get(&field.key) else {
                continue;
            };
            if let Ok(found) = self.get(ctx, target, target_id, true).await {
                if let Some(target_model) = snapshot.entity(target) {
                    names.records.insert(
                        target_id.clone(),
                        crate::records::title_of(&target_model, &found.fields, found.id),
                    );
                }
                refs.insert(field.key.clone(), Value::Object(found.fields));
            }
        }
        let people: HashMap<String, String> = self.people_names(ctx).await?;
        for (id, name) in &people {
            names.people.insert(id.clone(), name.clone());
        }
        // Records of other entities that refer to this one, each entity as the reader sees it.
        let mut related = Map::new();
        for other_model in snapshot.entities() {
            let key = other_model.key.as_str();
            for field in &other_model.fields {
                let FieldKind::Reference { entity: target, .. } = &field.kind else {
                    continue;
                };
                if target != entity || related.contains_key(key) {
                    continue;
                }
                let query = json!({"filter": {"field": field.key, "op": "eq", "value": record.id.to_string()},
                                   "limit": RELATED_LIMIT});
                if let Ok(page) = self.list(ctx, key, &query).await {
                    related.insert(
                        key.to_owned(),
                        Value::Array(
                            page.records
                                .into_iter()
                                .map(|r| {
                                    let mut fields = r.fields;
                                    fields.insert("id".to_owned(), json!(r.id));
                                    Value::Object(fields)
                                })
                                .collect(),
                        ),
                    );
                }
            }
        }
        let title = crate::records::title_of(&model, &record.fields, record.id);
        let printed_by = ctx
            .actor
            .account_id()
            .and_then(|id| people.get(&id.to_string()).cloned())
            .unwrap_or_default();
        let today = self.clock.now().with_timezone(&zone).date_naive();
        let mut record_fields = record.fields.clone();
        record_fields.insert("id".to_owned(), json!(record.id));
        let context = json!({
            "record": record_fields,
            "shown": shown(&model, &record.fields, &names, zone, locale),
            "refs": refs,
            "related": related,
            "title": title,
            "workspace": {"name": workspace_name},
            "today": today.format("%Y-%m-%d").to_string(),
            "today_shown": locale.date(today),
            "lang": locale.tag(),
            "printed_by": printed_by,
        });
        match context {
            Value::Object(map) => Ok(map),
            _ => Err(Error::internal("a document context is an object")),
        }
    }

    /// Members' names by account id (for people shown on a document).
    async fn people_names(&self, ctx: &Context) -> Result<HashMap<String, String>> {
        Ok(
            crate::store::workspaces::list_members(self.db.conn(), ctx.scope.workspace_id)
                .await?
                .into_iter()
                .map(|m| (m.account_id.to_string(), m.name))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_nothing_runs() {
        let html = render_template(
            "<h1>{{ record.name }}</h1><script>alert(1)</script><a href=\"javascript:x()\" onclick=\"y()\">x</a><p class=\"right\" style=\"color:red\">{{ record.amount | money('CNY', 'zh-CN') }}</p>",
            &json!({"record": {"name": "<img src=x onerror=alert(1)>", "amount": "120000.5"}}),
        )
        .expect("renders");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("onclick"), "{html}");
        assert!(html.contains("class=\"right\""), "{html}");
        assert!(html.contains("¥120,000.50"), "{html}");
    }

    #[test]
    fn loops_and_floods_stop_with_a_located_problem() {
        let Err(Error::Invalid { errors, .. }) = render_template(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            &json!({}),
        ) else {
            panic!("a runaway loop rendered");
        };
        assert_eq!(errors[0].code, "template_limit");
        assert_eq!(errors[0].pointer, "/template");
        let Err(Error::Invalid { errors, .. }) =
            render_template("line one\n{{ record.name | nope }}", &json!({}))
        else {
            panic!("an unknown filter rendered");
        };
        assert_eq!(errors[0].line, Some(2));
        assert!(check_template("{% if %}", "/document/template").is_err());
    }
}
