//! Dynamic forms: an entity's fields laid out by its form definition (sections, columns, order,
//! help text, widgets) for one caller and language, the values shown in them, and what a posted
//! HTML form means in the API form of the fields (so the same validation as the API applies).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::i18n::Locale;
use crate::access::FieldRule;
use crate::definitions::{EntityModel, Field, FieldKind};
use crate::error::FieldError;

/// One option of a select field as a form or badge shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    /// The stored value (an option, a record id, a member id).
    pub value: String,
    /// What people read.
    pub label: String,
    /// The option's colour (`#1677ff`), if any.
    pub color: Option<String>,
    /// Whether it is the current value (or one of them).
    pub selected: bool,
}

/// One field in a form.
#[derive(Debug, Clone, Serialize)]
pub struct Widget {
    /// Field key (also the input's name).
    pub key: String,
    /// Label in the caller's language.
    pub label: String,
    /// Help text in the caller's language.
    pub help: Option<String>,
    /// `text`, `textarea`, `number`, `money`, `percent`, `checkbox`, `date`, `datetime`,
    /// `select`, `multiselect`, `reference`, `user`, `attachment`, `subtable` or `computed`.
    pub widget: &'static str,
    /// The input type of text-like widgets (`text`, `email`, `tel`, `url`).
    pub input_type: &'static str,
    /// Whether a value is required.
    pub required: bool,
    /// Shown but not editable (computed, read-only for the caller, or by the layout).
    pub readonly: bool,
    /// Columns the field spans.
    pub span: u8,
    /// Longest text accepted.
    pub max_length: Option<u64>,
    /// Smallest and largest number accepted (major units for money).
    pub minimum: Option<f64>,
    /// See `minimum`.
    pub maximum: Option<f64>,
    /// Step of number inputs.
    pub step: &'static str,
    /// Currency of money fields.
    pub currency: Option<String>,
    /// Entity a reference points to.
    pub target: Option<String>,
    /// Options of select, multi-select, reference and user fields.
    pub choices: Vec<Choice>,
    /// The value as the input shows it.
    pub value: String,
    /// The value as a page shows it (formatted for the language).
    pub display: String,
    /// The field's API value (sub-tables and attachments are drawn from it).
    pub raw: Value,
    /// The problem with the value, after a refused save.
    pub error: Option<String>,
    /// What someone else saved meanwhile, when a save was stale and differs from the input.
    pub theirs: Option<String>,
    /// Sub-table columns, for sub-table widgets.
    pub columns: Vec<SubColumn>,
    /// Accepted media types of attachment widgets (the file input's `accept`).
    pub accept: Option<String>,
    /// Hidden by the layout's `visible_when` rule for the values at hand (drawn hidden, so
    /// that the page can show it when the rule turns; never written while hidden).
    pub hidden: bool,
    /// The layout's rules (rhai over `record`): shown when, read-only when.
    #[serde(skip)]
    pub visible_when: Option<String>,
    /// See `visible_when`.
    #[serde(skip)]
    pub readonly_when: Option<String>,
    /// Read-only for the caller or by the layout, before any rule.
    pub fixed_readonly: bool,
    /// Whether any rule of the layout names this field (the page then asks again as it changes).
    pub has_rules: bool,
}

/// A column of a sub-table as its inline editor draws it.
#[derive(Debug, Clone, Serialize)]
pub struct SubColumn {
    /// Column key.
    pub key: String,
    /// Label in the caller's language.
    pub label: String,
    /// `text`, `number`, `money`, `date` or `select`.
    pub widget: &'static str,
    /// Step of number inputs.
    pub step: &'static str,
    /// Options of select columns.
    pub choices: Vec<Choice>,
    /// The total kept over this column (`sum`, `avg`, `min`, `max`, `count`), if any.
    pub total: Option<&'static str>,
    /// The total as last saved, formatted.
    pub total_text: String,
}

/// A titled group of fields in columns.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// Title in the caller's language.
    pub title: Option<String>,
    /// Columns on a wide screen (1–4).
    pub columns: u8,
    /// Folded by default.
    pub collapsed: bool,
    /// The fields.
    pub fields: Vec<Widget>,
}

/// Names of related records and members, for showing references and users.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Title of each referenced record by id.
    pub records: HashMap<String, String>,
    /// Name of each member by account id.
    pub people: HashMap<String, String>,
    /// Records offered by each reference field (id, title).
    pub offered: HashMap<String, Vec<(String, String)>>,
    /// Members offered by user fields (id, name).
    pub members: Vec<(String, String)>,
}

/// Lays out `model`'s fields by the form definition `form` (every visible field in one section
/// when there is none), for a caller with field `rules`, in `locale`.
pub fn layout(
    model: &EntityModel,
    form: Option<&Value>,
    rules: &dyn Fn(&str) -> FieldRule,
    locale: Locale,
) -> Vec<Section> {
    layout_with(model, form, rules, locale, true)
}

/// [`layout`] with only the form's own fields (public forms: a stranger sees exactly what the
/// form shows, never a required field it left out).
pub fn strict_layout(
    model: &EntityModel,
    form: &Value,
    rules: &dyn Fn(&str) -> FieldRule,
    locale: Locale,
) -> Vec<Section> {
    layout_with(model, Some(form), rules, locale, false)
}

fn layout_with(
    model: &EntityModel,
    form: Option<&Value>,
    rules: &dyn Fn(&str) -> FieldRule,
    locale: Locale,
    complete: bool,
) -> Vec<Section> {
    let properties = model.document.get("properties");
    let property = |key: &str| properties.and_then(|p| p.get(key));
    let shown = |field: &Field| !field.hidden && rules(&field.key) != FieldRule::Hidden;
    let widget_of = |field: &Field, placement: Option<&Value>| {
        let spec = property(&field.key);
        let rule = rules(&field.key);
        let read_only_layout = placement
            .and_then(|p| p.get("readonly"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut widget = widget(model, field, spec, locale);
        // The layout may choose another widget the kind allows (checked at publish).
        match placement
            .and_then(|p| p.get("widget"))
            .and_then(Value::as_str)
        {
            Some("textarea") if widget.widget == "text" => widget.widget = "textarea",
            Some("radio") if widget.widget == "select" => widget.widget = "radio",
            _ => {}
        }
        widget.readonly = widget.readonly
            || read_only_layout
            // A masked value is not the value: editing it in a form would overwrite the real
            // one with the mask, so masked fields are shown, never edited, in the UI.
            || matches!(
                rule,
                FieldRule::ReadOnly | FieldRule::MaskedReadOnly | FieldRule::Masked
            );
        widget.help = placement
            .and_then(|p| p.get("help"))
            .map(|h| locale.label(Some(h), "").to_owned())
            .or_else(|| {
                spec.and_then(|s| s.get("x-help"))
                    .map(|h| locale.label(Some(h), "").to_owned())
            })
            .filter(|h| !h.is_empty());
        widget.span = placement
            .and_then(|p| p.get("span"))
            .and_then(Value::as_u64)
            .map_or(1, |s| s.clamp(1, 4) as u8);
        let rule = |key: &str| {
            placement
                .and_then(|p| p.get(key))
                .and_then(Value::as_str)
                .filter(|r| !r.trim().is_empty())
                .map(str::to_owned)
        };
        widget.visible_when = rule("visible_when");
        widget.readonly_when = rule("readonly_when");
        widget.fixed_readonly = widget.readonly;
        widget
    };
    let Some(sections) = form
        .and_then(|f| f.get("sections"))
        .and_then(Value::as_array)
    else {
        let fields = model
            .fields
            .iter()
            .filter(|f| shown(f))
            .map(|f| widget_of(f, None))
            .collect();
        return vec![Section {
            title: None,
            columns: 2,
            collapsed: false,
            fields,
        }];
    };
    let mut placed = HashSet::new();
    let mut out: Vec<Section> = sections
        .iter()
        .map(|section| {
            let fields = section
                .get("fields")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| {
                            let key = item.get("field").and_then(Value::as_str)?;
                            let field = model.field(key).filter(|f| shown(f))?;
                            placed.insert(key.to_owned());
                            Some(widget_of(field, Some(item)))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Section {
                title: section
                    .get("title")
                    .map(|t| locale.label(Some(t), "").to_owned()),
                columns: section
                    .get("columns")
                    .and_then(Value::as_u64)
                    .map_or(1, |c| c.clamp(1, 4) as u8),
                collapsed: section
                    .get("collapsed")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                fields,
            }
        })
        .filter(|s: &Section| !s.fields.is_empty())
        .collect();
    // Required fields the layout forgot would make the form impossible to save; they join a
    // last section rather than staying out of reach.
    let missing: Vec<Widget> = model
        .fields
        .iter()
        .filter(|f| shown(f) && f.is_writable() && model.required.contains(&f.key))
        .filter(|f| !placed.contains(&f.key))
        .map(|f| widget_of(f, None))
        .collect();
    if complete && !missing.is_empty() {
        out.push(Section {
            title: Some(locale.text("form.more_fields")),
            columns: 2,
            collapsed: false,
            fields: missing,
        });
    }
    out
}

fn widget(model: &EntityModel, field: &Field, spec: Option<&Value>, locale: Locale) -> Widget {
    let number = |k: &str| spec.and_then(|s| s.get(k)).and_then(Value::as_f64);
    let (name, input_type, step) = match &field.kind {
        FieldKind::Text => ("text", "text", ""),
        FieldKind::Email => ("text", "email", ""),
        FieldKind::Phone => ("text", "tel", ""),
        FieldKind::Url => ("text", "url", ""),
        FieldKind::LongText => ("textarea", "text", ""),
        FieldKind::Integer => ("number", "number", "1"),
        FieldKind::Number => ("number", "number", "any"),
        FieldKind::Percent => ("percent", "number", "any"),
        FieldKind::Money { .. } => ("money", "text", ""),
        FieldKind::Boolean => ("checkbox", "checkbox", ""),
        FieldKind::Date => ("date", "date", ""),
        FieldKind::DateTime => ("datetime", "datetime-local", ""),
        FieldKind::SingleSelect { .. } => ("select", "text", ""),
        FieldKind::MultiSelect { .. } => ("multiselect", "text", ""),
        FieldKind::Reference { .. } => ("reference", "text", ""),
        FieldKind::User => ("user", "text", ""),
        FieldKind::Attachment { .. } => ("attachment", "file", ""),
        FieldKind::SubTable { .. } => ("subtable", "text", ""),
        FieldKind::AutoNumber { .. } => ("computed", "text", ""),
    };
    let computed = !field.is_writable();
    let columns = match &field.kind {
        FieldKind::SubTable { columns, totals } => columns
            .iter()
            .map(|c| {
                let column_spec =
                    spec.and_then(|s| s.pointer(&format!("/items/properties/{}", c.key)));
                let (widget, step) = match &c.kind {
                    FieldKind::Integer => ("number", "1"),
                    FieldKind::Number | FieldKind::Percent => ("number", "any"),
                    FieldKind::Money { .. } => ("money", ""),
                    FieldKind::Date => ("date", ""),
                    FieldKind::SingleSelect { .. } => ("select", ""),
                    _ => ("text", ""),
                };
                SubColumn {
                    key: c.key.clone(),
                    label: locale
                        .label(column_spec.and_then(|s| s.get("x-label")), &c.key)
                        .to_owned(),
                    widget,
                    step,
                    choices: options(column_spec, locale),
                    total: totals
                        .iter()
                        .find(|(k, _)| *k == c.key)
                        .map(|(_, op)| op.name()),
                    total_text: String::new(),
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    Widget {
        key: field.key.clone(),
        label: locale
            .label(spec.and_then(|s| s.get("x-label")), &field.label)
            .to_owned(),
        help: None,
        widget: if computed && name != "subtable" {
            "computed"
        } else {
            name
        },
        input_type,
        required: model.required.contains(&field.key) && !computed,
        readonly: computed,
        span: 1,
        max_length: spec
            .and_then(|s| s.get("maxLength"))
            .and_then(Value::as_u64),
        minimum: number("minimum"),
        maximum: number("maximum"),
        step,
        currency: match &field.kind {
            FieldKind::Money { currency, .. } => Some(currency.clone()),
            _ => None,
        },
        target: match &field.kind {
            FieldKind::Reference { entity, .. } => Some(entity.clone()),
            _ => None,
        },
        choices: options(spec, locale),
        value: String::new(),
        display: String::new(),
        raw: Value::Null,
        error: None,
        theirs: None,
        columns,
        accept: match &field.kind {
            FieldKind::Attachment { accept, .. } if !accept.is_empty() => Some(accept.join(",")),
            _ => None,
        },
        hidden: false,
        visible_when: None,
        readonly_when: None,
        fixed_readonly: computed,
        has_rules: false,
    }
}

/// Applies the layout's rules to `values` (API form): hides the fields whose `visible_when` is
/// false and makes read-only those whose `readonly_when` is true. A rule that fails to run
/// (a wrong type, a limit) leaves its field as it would be without it, and is logged: a rule
/// must never lock people out of a form.
pub fn apply_rules(
    sections: &mut [Section],
    model: &EntityModel,
    values: &Map<String, Value>,
    scripts: &crate::script::ScriptEngine,
) {
    let any = sections
        .iter()
        .flat_map(|s| s.fields.iter())
        .any(|w| w.visible_when.is_some() || w.readonly_when.is_some());
    if !any {
        return;
    }
    let record = crate::script::values::record_from_api(model, values);
    let holds = |source: &str, pointer: &str| -> Option<bool> {
        let script = scripts.compile(source, pointer).ok()?;
        match scripts.eval(&script, vec![("record", record.clone())], pointer) {
            Ok(value) => value.as_bool().ok(),
            Err(error) => {
                tracing::info!(%error, rule = source, "a form rule failed; the field stays as it is");
                None
            }
        }
    };
    let mentioned: HashSet<String> = sections
        .iter()
        .flat_map(|s| s.fields.iter())
        .flat_map(|w| [w.visible_when.as_deref(), w.readonly_when.as_deref()])
        .flatten()
        .flat_map(|source| {
            crate::script::analysis::analyse(source)
                .fields
                .into_iter()
                .map(|(field, _)| field)
        })
        .collect();
    for widget in sections.iter_mut().flat_map(|s| s.fields.iter_mut()) {
        widget.has_rules = mentioned.contains(&widget.key);
        if let Some(rule) = widget.visible_when.clone() {
            widget.hidden = holds(&rule, &format!("/visible_when/{}", widget.key)) == Some(false);
        }
        if let Some(rule) = widget.readonly_when.clone() {
            widget.readonly = widget.fixed_readonly
                || holds(&rule, &format!("/readonly_when/{}", widget.key)) == Some(true);
        }
    }
}

/// Reads a posted form under the layout's rules: the values as typed (over `base`, the record
/// as stored or the defaults) decide which fields are shown and writable, and only those are
/// read. `sections` keep the rules' verdict for drawing the form again.
pub fn read_ruled(
    sections: &mut [Section],
    model: &EntityModel,
    posted: &[(String, String)],
    base: &Map<String, Value>,
    zone: chrono_tz::Tz,
    scripts: &crate::script::ScriptEngine,
    local: &mut Vec<FieldError>,
) -> Map<String, Value> {
    let mut scratch = Vec::new();
    let typed = read_input(sections, model, posted, zone, &mut scratch);
    let mut merged = base.clone();
    merged.extend(typed);
    apply_rules(sections, model, &merged, scripts);
    read_input(sections, model, posted, zone, local)
}

/// The keys of the fields `apply_rules` hid and made read-only (for the page's round trip).
pub fn rule_state(sections: &[Section]) -> (Vec<String>, Vec<String>) {
    let widgets = || sections.iter().flat_map(|s| s.fields.iter());
    (
        widgets()
            .filter(|w| w.hidden)
            .map(|w| w.key.clone())
            .collect(),
        widgets()
            .filter(|w| w.readonly && !w.fixed_readonly)
            .map(|w| w.key.clone())
            .collect(),
    )
}

/// The widgets a form may choose for a field kind (`widget` in a form definition); the first is
/// the default.
pub fn widgets_for(kind: &str) -> &'static [&'static str] {
    match kind {
        "text" | "email" | "phone" | "url" => &["input", "textarea"],
        "long_text" => &["textarea"],
        "single_select" => &["select", "radio"],
        "multi_select" => &["chips"],
        "reference" | "user" => &["picker"],
        "date" | "datetime" => &["picker"],
        "money" | "integer" | "number" | "percent" => &["input"],
        "boolean" => &["checkbox"],
        "attachment" => &["upload"],
        "sub_table" => &["table"],
        _ => &[],
    }
}

/// The options of a select field (`x-options`, else its `enum`), in `locale`.
pub fn options(spec: Option<&Value>, locale: Locale) -> Vec<Choice> {
    let Some(spec) = spec else {
        return Vec::new();
    };
    let described = spec
        .get("x-options")
        .or_else(|| spec.pointer("/items/x-options"))
        .and_then(Value::as_array);
    if let Some(list) = described {
        return list
            .iter()
            .filter_map(|o| {
                let value = o.get("value").and_then(Value::as_str)?;
                Some(Choice {
                    value: value.to_owned(),
                    label: locale.label(o.get("label"), value).to_owned(),
                    color: o
                        .get("color")
                        .and_then(Value::as_str)
                        .filter(|c| is_color(c))
                        .map(str::to_owned),
                    selected: false,
                })
            })
            .collect();
    }
    spec.get("enum")
        .or_else(|| spec.pointer("/items/enum"))
        .and_then(Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(Value::as_str)
                .map(|v| Choice {
                    value: v.to_owned(),
                    label: v.to_owned(),
                    color: None,
                    selected: false,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `text` is a CSS hex colour (`#1677ff`): the only colours pages put in a style.
pub fn is_color(text: &str) -> bool {
    text.strip_prefix('#').is_some_and(|hex| {
        matches!(hex.len(), 3 | 4 | 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Puts `values` (API form) into the widgets, with names for references and members.
pub fn fill(
    sections: &mut [Section],
    model: &EntityModel,
    values: &Map<String, Value>,
    names: &Names,
    zone: chrono_tz::Tz,
    locale: Locale,
) {
    for widget in sections.iter_mut().flat_map(|s| s.fields.iter_mut()) {
        let Some(field) = model.field(&widget.key) else {
            continue;
        };
        let value = values.get(&widget.key).cloned().unwrap_or(Value::Null);
        widget.value = input_text(field, &value, zone);
        widget.display = display(field, &widget.choices, &value, names, zone, locale);
        match &field.kind {
            FieldKind::Reference { .. } => {
                let mut offered: Vec<Choice> = names
                    .offered
                    .get(&widget.key)
                    .map(|list| {
                        list.iter()
                            .map(|(id, title)| choice(id, title, &widget.value))
                            .collect()
                    })
                    .unwrap_or_default();
                if !widget.value.is_empty() && !offered.iter().any(|c| c.selected) {
                    offered.insert(0, choice(&widget.value, &widget.display, &widget.value));
                }
                widget.choices = offered;
            }
            FieldKind::User => {
                widget.choices = names
                    .members
                    .iter()
                    .map(|(id, name)| choice(id, name, &widget.value))
                    .collect();
            }
            FieldKind::MultiSelect { .. } => {
                let chosen: HashSet<&str> = value
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for c in &mut widget.choices {
                    c.selected = chosen.contains(c.value.as_str());
                }
            }
            _ => {
                for c in &mut widget.choices {
                    c.selected = c.value == widget.value;
                }
            }
        }
        widget.raw = value;
    }
}

/// Puts a record's sub-table totals (API form, by field and column) into the widgets.
pub fn fill_totals(sections: &mut [Section], totals: Option<&Map<String, Value>>, locale: Locale) {
    let Some(totals) = totals else { return };
    for widget in sections.iter_mut().flat_map(|s| s.fields.iter_mut()) {
        let Some(values) = totals.get(&widget.key).and_then(Value::as_object) else {
            continue;
        };
        for column in &mut widget.columns {
            if let Some(value) = values.get(&column.key) {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                column.total_text = locale.number(&text);
            }
        }
    }
}

fn choice(value: &str, label: &str, current: &str) -> Choice {
    Choice {
        value: value.to_owned(),
        label: label.to_owned(),
        color: None,
        selected: value == current,
    }
}

/// Puts each problem next to its field (`/fields/<key>` or `/<key>` pointers); the rest come
/// back for the top of the form.
pub fn attach_errors(
    sections: &mut [Section],
    errors: &[FieldError],
    locale: Locale,
) -> Vec<String> {
    let mut general = Vec::new();
    for error in errors {
        let key = error
            .pointer
            .strip_prefix("/fields/")
            .or_else(|| error.pointer.strip_prefix('/'))
            .map(|rest| rest.split('/').next().unwrap_or(rest));
        let message = message_of(error, locale);
        let widget = key.and_then(|key| {
            sections
                .iter_mut()
                .flat_map(|s| s.fields.iter_mut())
                .find(|w| w.key == key)
        });
        match widget {
            Some(w) if w.error.is_none() => w.error = Some(message),
            Some(_) => {}
            None => general.push(message),
        }
    }
    general
}

/// A problem in the caller's language: a rule's own message, a translation of its code, or the
/// server's English message.
pub fn message_of(error: &FieldError, locale: Locale) -> String {
    if let Some(text) = error
        .rule
        .as_ref()
        .and_then(|rule| rule.messages.as_ref())
        .map(|messages| locale.label(Some(messages), ""))
        .filter(|text| !text.is_empty())
    {
        return text.to_owned();
    }
    let key = format!("error.{}", error.code);
    let text = locale.text(&key);
    if text == key {
        error.message.clone()
    } else {
        text
    }
}

/// A value as an input holds it.
pub fn input_text(field: &Field, value: &Value, zone: chrono_tz::Tz) -> String {
    match (&field.kind, value) {
        (_, Value::Null) => String::new(),
        (FieldKind::DateTime, Value::String(text)) => DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&zone).format("%Y-%m-%dT%H:%M").to_string())
            .unwrap_or_else(|_| text.clone()),
        (_, Value::String(text)) => text.clone(),
        (_, Value::Bool(b)) => b.to_string(),
        (_, Value::Number(n)) => n.to_string(),
        (_, other) => other.to_string(),
    }
}

/// A value as pages show it, formatted for `locale`.
pub fn display(
    field: &Field,
    choices: &[Choice],
    value: &Value,
    names: &Names,
    zone: chrono_tz::Tz,
    locale: Locale,
) -> String {
    let label_of = |v: &str| {
        choices
            .iter()
            .find(|c| c.value == v)
            .map_or_else(|| v.to_owned(), |c| c.label.clone())
    };
    match (&field.kind, value) {
        (_, Value::Null) => String::new(),
        (FieldKind::Money { currency, .. }, Value::String(amount)) => {
            locale.money(amount, currency)
        }
        (FieldKind::Money { currency, .. }, Value::Number(n)) => {
            locale.money(&n.to_string(), currency)
        }
        (FieldKind::Percent, Value::Number(n)) => format!("{}%", locale.number(&n.to_string())),
        (FieldKind::Integer | FieldKind::Number, Value::Number(n)) => locale.number(&n.to_string()),
        (FieldKind::Boolean, Value::Bool(b)) => {
            locale.text(if *b { "value.yes" } else { "value.no" })
        }
        (FieldKind::Date, Value::String(text)) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_or_else(|_| text.clone(), |d| locale.date(d)),
        (FieldKind::DateTime, Value::String(text)) => DateTime::parse_from_rfc3339(text)
            .map_or_else(
                |_| text.clone(),
                |at| locale.date_time(at.with_timezone(&Utc), zone),
            ),
        (FieldKind::SingleSelect { .. }, Value::String(v)) => label_of(v),
        (FieldKind::MultiSelect { .. }, Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(label_of)
            .collect::<Vec<_>>()
            .join(", "),
        (FieldKind::Reference { .. }, Value::String(id)) => names
            .records
            .get(id)
            .cloned()
            .unwrap_or_else(|| short_id(id)),
        (FieldKind::User, Value::String(id)) => names
            .people
            .get(id)
            .cloned()
            .unwrap_or_else(|| short_id(id)),
        (FieldKind::Attachment { .. }, Value::Array(files)) => files
            .iter()
            .filter_map(|f| f.get("name").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(", "),
        (FieldKind::SubTable { .. }, Value::Array(rows)) => locale
            .text("value.rows")
            .replace("{n}", &rows.len().to_string()),
        (_, Value::String(text)) => text.clone(),
        (_, other) => other.to_string(),
    }
}

fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

/// What a posted HTML form (`name=value` pairs, repeated for multi-selects) says of the
/// editable fields in `sections`, in the API form. Text that cannot be a number or a date is
/// passed on as it is, so the API's validation names the field; `local` collects what the UI
/// itself can say better (`1,2.3` is not a number).
pub fn read_input(
    sections: &[Section],
    model: &EntityModel,
    posted: &[(String, String)],
    zone: chrono_tz::Tz,
    local: &mut Vec<FieldError>,
) -> Map<String, Value> {
    let mut values = Map::new();
    let present: HashSet<&str> = posted
        .iter()
        .filter(|(k, _)| k == "_present")
        .map(|(_, v)| v.as_str())
        .collect();
    let all = |key: &str| -> Vec<&str> {
        posted
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for widget in sections.iter().flat_map(|s| s.fields.iter()) {
        if widget.readonly || widget.hidden {
            continue;
        }
        let Some(field) = model.field(&widget.key) else {
            continue;
        };
        let pointer = format!("/fields/{}", widget.key);
        let first = all(&widget.key).first().map(|v| v.trim().to_owned());
        let value = match &field.kind {
            FieldKind::Boolean => {
                if !present.contains(widget.key.as_str()) && first.is_none() {
                    continue;
                }
                Value::Bool(first.as_deref() == Some("true"))
            }
            FieldKind::MultiSelect { .. } => {
                if !present.contains(widget.key.as_str()) && first.is_none() {
                    continue;
                }
                Value::Array(
                    all(&widget.key)
                        .into_iter()
                        .filter(|v| !v.is_empty())
                        .map(|v| Value::String(v.to_owned()))
                        .collect(),
                )
            }
            FieldKind::Attachment { .. } => {
                if !present.contains(widget.key.as_str()) && first.is_none() {
                    continue;
                }
                Value::Array(
                    all(&widget.key)
                        .into_iter()
                        .filter(|v| !v.is_empty())
                        .map(|v| Value::String(v.to_owned()))
                        .collect(),
                )
            }
            FieldKind::SubTable { columns, .. } => {
                if !present.contains(widget.key.as_str()) {
                    continue;
                }
                Value::Array(sub_rows(&widget.key, columns, posted, zone, local))
            }
            _ => {
                let Some(text) = first else { continue };
                if text.is_empty() {
                    Value::Null
                } else {
                    scalar(&field.kind, &text, zone, &pointer, local)
                }
            }
        };
        values.insert(widget.key.clone(), value);
    }
    values
}

/// The rows of a sub-table from inputs named `<field>.<row>.<column>`, in row order (the page
/// numbers rows as they stand); empty cells are left out and empty rows dropped.
fn sub_rows(
    key: &str,
    columns: &[Field],
    posted: &[(String, String)],
    zone: chrono_tz::Tz,
    local: &mut Vec<FieldError>,
) -> Vec<Value> {
    let prefix = format!("{key}.");
    let mut rows: std::collections::BTreeMap<usize, Map<String, Value>> = Default::default();
    for (name, text) in posted {
        let Some((index, column)) = name.strip_prefix(&prefix).and_then(|r| r.split_once('.'))
        else {
            continue;
        };
        let (Ok(index), Some(field)) = (
            index.parse::<usize>(),
            columns.iter().find(|c| c.key == column),
        ) else {
            continue;
        };
        // Bound the rows a post can make (the entity's own limits apply after).
        if index >= 1000 {
            continue;
        }
        let row = rows.entry(index).or_default();
        let text = text.trim();
        if !text.is_empty() {
            let pointer = format!("/fields/{key}/{index}/{column}");
            row.insert(
                column.to_owned(),
                scalar(&field.kind, text, zone, &pointer, local),
            );
        }
    }
    rows.into_values()
        .filter(|row| !row.is_empty())
        .map(Value::Object)
        .collect()
}

fn scalar(
    kind: &FieldKind,
    text: &str,
    zone: chrono_tz::Tz,
    pointer: &str,
    local: &mut Vec<FieldError>,
) -> Value {
    let plain = || text.replace([',', ' ', '\u{a0}', '_'], "");
    let mut refuse = |code: &str, message: &str| {
        local.push(FieldError::new(pointer.to_owned(), code, message));
        Value::String(text.to_owned())
    };
    match kind {
        FieldKind::Integer => match plain().parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => refuse("not_integer", "enter a whole number"),
        },
        FieldKind::Number | FieldKind::Percent => {
            let cleaned = plain();
            let cleaned = cleaned.trim_end_matches('%');
            match cleaned
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                Some(n) => Value::Number(n),
                None => refuse("not_number", "enter a number"),
            }
        }
        FieldKind::Money { .. } => {
            let cleaned: String = plain()
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
                .collect();
            let is_amount = !cleaned.is_empty()
                && cleaned.parse::<f64>().is_ok()
                && !text.chars().any(|c| c.is_alphabetic() && !c.is_uppercase());
            if is_amount {
                Value::String(cleaned)
            } else {
                refuse("not_amount", "enter an amount such as 12,500.00")
            }
        }
        FieldKind::Date => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(d) => Value::String(d.format("%Y-%m-%d").to_string()),
            Err(_) => refuse("not_date", "enter a date as YYYY-MM-DD"),
        },
        FieldKind::DateTime => {
            let parsed = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"));
            match parsed
                .ok()
                .and_then(|local| zone.from_local_datetime(&local).earliest())
            {
                Some(at) => Value::String(
                    at.with_timezone(&Utc)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
                None => refuse("not_datetime", "enter a date and time"),
            }
        }
        _ => Value::String(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_for(kind: &FieldKind, text: &str) -> (Value, usize) {
        let mut local = Vec::new();
        let value = scalar(
            kind,
            text,
            chrono_tz::Asia::Shanghai,
            "/fields/x",
            &mut local,
        );
        (value, local.len())
    }

    #[test]
    fn typed_text_becomes_api_values() {
        let money = FieldKind::Money {
            currency: "CNY".to_owned(),
            scale: 2,
        };
        assert_eq!(
            errors_for(&money, "¥12,500.50"),
            (Value::from("12500.50"), 0)
        );
        assert_eq!(errors_for(&money, "12 500"), (Value::from("12500"), 0));
        assert_eq!(errors_for(&money, "abc").1, 1);
        assert_eq!(
            errors_for(&FieldKind::Integer, "1,000"),
            (Value::from(1000), 0)
        );
        assert_eq!(errors_for(&FieldKind::Integer, "1.5").1, 1);
        assert_eq!(
            errors_for(&FieldKind::Percent, "12.5%").0,
            serde_json::json!(12.5)
        );
        assert_eq!(errors_for(&FieldKind::Date, "2026-02-30").1, 1);
        assert_eq!(
            errors_for(&FieldKind::DateTime, "2026-12-05T14:30"),
            (Value::from("2026-12-05T06:30:00Z"), 0)
        );
        assert_eq!(
            errors_for(&FieldKind::Text, "<script>"),
            (Value::from("<script>"), 0)
        );
    }
}
