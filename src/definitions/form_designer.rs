//! The form builder's edits: place an entity's fields into sections and columns, move them,
//! set their help, width, widget and read-only flag, and the rules that show or lock them
//! (written as rhai from a simple "when field is value" condition, or given as rhai). Pure
//! functions over a form document; the result is saved as the form's draft and checked by the
//! same meta-schema and script compiler as any form.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::FieldError;

/// A change to a form document.
#[derive(Debug, Clone, PartialEq)]
pub enum FormEdit {
    /// Places a field at the end of section `section` (a new section when it is the count).
    Place {
        /// The field.
        field: String,
        /// The section's index.
        section: usize,
    },
    /// Takes a field off the form (the field and its values stay in the entity).
    Remove {
        /// The field.
        field: String,
    },
    /// Moves a field one place up (`-1`) or down (`1`), across sections at their ends.
    Move {
        /// The field.
        field: String,
        /// Direction.
        by: i32,
    },
    /// Puts the placed fields into these sections in this order (the drag-and-drop result);
    /// fields not named leave the form, settings travel with their field.
    Arrange(Vec<Vec<String>>),
    /// Sets how a placed field shows.
    Settings(Box<Placement>),
    /// Renames a section and sets its columns.
    Section {
        /// The section's index.
        index: usize,
        /// English title (empty: none).
        title_en: String,
        /// Chinese title.
        title_zh: String,
        /// Columns, 1 to 4.
        columns: u32,
        /// Starts folded.
        collapsed: bool,
    },
    /// Moves a section up (`-1`) or down (`1`).
    MoveSection {
        /// The section's index.
        index: usize,
        /// Direction.
        by: i32,
    },
    /// Relabels the form.
    Label {
        /// English.
        en: String,
        /// Chinese.
        zh: String,
    },
}

/// How a placed field shows, as the settings form edits it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Placement {
    /// The field.
    pub field: String,
    /// English help.
    pub help_en: String,
    /// Chinese help.
    pub help_zh: String,
    /// Columns it spans (empty: 1).
    pub span: String,
    /// Widget (empty: the kind's own).
    pub widget: String,
    /// Always read-only on this form.
    pub readonly: bool,
    /// When it shows.
    pub visible: Rule,
    /// When it is read-only.
    pub readonly_when: Rule,
}

/// A condition as the rule editor writes it: a simple test of one field, or raw rhai.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rule {
    /// The field tested (simple rules).
    pub field: String,
    /// One of [`RULE_OPS`] (simple rules).
    pub op: String,
    /// The value compared with.
    pub value: String,
    /// Raw rhai (when given, it wins).
    pub script: String,
}

/// The tests the rule editor offers: the first five for every field, the comparisons for
/// numbers.
pub const RULE_OPS: [&str; 9] = [
    "is",
    "is_not",
    "empty",
    "not_empty",
    "includes",
    "gt",
    "ge",
    "lt",
    "le",
];

/// The rhai operator of a comparison test.
fn comparison(op: &str) -> Option<&'static str> {
    match op {
        "gt" => Some(">"),
        "ge" => Some(">="),
        "lt" => Some("<"),
        "le" => Some("<="),
        _ => None,
    }
}

/// A rhai string literal of `text`.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

/// The rhai of a simple rule over `entity`'s fields (`numeric` tells which compare as numbers).
///
/// # Errors
/// The problem, at `pointer`.
pub fn rule_script(
    rule: &Rule,
    fields: &[(String, String)],
    pointer: &str,
) -> Result<Option<String>, FieldError> {
    let script = rule.script.trim();
    if !script.is_empty() {
        return Ok(Some(script.to_owned()));
    }
    if rule.field.trim().is_empty() || rule.op.is_empty() {
        return Ok(None);
    }
    let Some((_, kind)) = fields.iter().find(|(k, _)| *k == rule.field) else {
        return Err(FieldError::new(
            format!("{pointer}/field"),
            "unknown_field",
            format!("the entity has no field {:?}", rule.field),
        ));
    };
    let numeric = matches!(kind.as_str(), "integer" | "number" | "money" | "percent");
    let value = rule.value.trim();
    if comparison(&rule.op).is_some() && !numeric {
        return Err(FieldError::new(
            format!("{pointer}/op"),
            "enum",
            "only numbers, money and percentages compare as greater or less",
        ));
    }
    let operand = if matches!(rule.op.as_str(), "empty" | "not_empty") {
        String::new()
    } else if numeric {
        if value.parse::<f64>().is_err() {
            return Err(FieldError::new(
                format!("{pointer}/value"),
                "number",
                format!("{value:?} is not a number"),
            ));
        }
        // Money is exact: rhai compares decimals with whole numbers but not with floats.
        if kind == "money" && value.parse::<i64>().is_err() {
            format!("decimal({})", literal(value))
        } else {
            value.to_owned()
        }
    } else if kind == "boolean" {
        match value {
            "true" | "false" => value.to_owned(),
            _ => {
                return Err(FieldError::new(
                    format!("{pointer}/value"),
                    "boolean",
                    "compare a yes/no field with true or false",
                ));
            }
        }
    } else {
        literal(value)
    };
    let target = format!("record.{}", rule.field);
    Ok(Some(match rule.op.as_str() {
        "is" => format!("{target} == {operand}"),
        "is_not" => format!("{target} != {operand}"),
        "empty" => format!("{target} == ()"),
        "not_empty" => format!("{target} != ()"),
        "includes" => format!("{target} != () && {target}.contains({operand})"),
        // An empty field compares as nothing (the rule is false), not as a script error.
        op @ ("gt" | "ge" | "lt" | "le") => {
            let symbol = comparison(op).unwrap_or(">");
            format!("{target} != () && {target} {symbol} {operand}")
        }
        other => {
            return Err(FieldError::new(
                format!("{pointer}/op"),
                "enum",
                format!("unknown test {other:?}"),
            ));
        }
    }))
}

/// Reads a rule back from rhai the editor wrote (raw rhai otherwise).
pub fn parse_rule(script: Option<&str>) -> Rule {
    let Some(script) = script.map(str::trim).filter(|s| !s.is_empty()) else {
        return Rule::default();
    };
    let simple = |field: &str, op: &str, value: &str| Rule {
        field: field.to_owned(),
        op: op.to_owned(),
        value: value.to_owned(),
        script: String::new(),
    };
    let unquote = |v: &str| -> Option<String> {
        let v = v.trim();
        let v = v
            .strip_prefix("decimal(\"")
            .and_then(|rest| rest.strip_suffix("\")"))
            .filter(|number| number.parse::<f64>().is_ok())
            .unwrap_or(v);
        if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
            let inner = &v[1..v.len() - 1];
            (!inner.contains('"') && !inner.contains('\\')).then(|| inner.to_owned())
        } else if v.parse::<f64>().is_ok() || v == "true" || v == "false" {
            Some(v.to_owned())
        } else {
            None
        }
    };
    let field_of = |lhs: &str| -> Option<String> {
        let name = lhs.trim().strip_prefix("record.")?;
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            .then(|| name.to_owned())
    };
    // `record.f != () && …`: a guarded test (includes, comparisons).
    if let Some((guard, test)) = script.split_once(" && ")
        && let Some(field) = guard.strip_suffix(" != ()").and_then(field_of)
        && !test.contains("&&")
        && !test.contains("||")
    {
        let target = format!("record.{field}");
        if let Some(inner) = test
            .strip_prefix(&format!("{target}.contains("))
            .and_then(|rest| rest.strip_suffix(')'))
            && let Some(value) = unquote(inner)
        {
            return simple(&field, "includes", &value);
        }
        for op in ["ge", "le", "gt", "lt"] {
            let symbol = comparison(op).unwrap_or(">");
            if let Some(number) = test.strip_prefix(&format!("{target} {symbol} "))
                && let Some(number) = unquote(number)
                && number.parse::<f64>().is_ok()
            {
                return simple(&field, op, &number);
            }
        }
    }
    for (op, token) in [("is_not", "!="), ("is", "==")] {
        if let Some((lhs, rhs)) = script.split_once(token)
            && !rhs.contains("&&")
            && !rhs.contains("||")
            && let Some(field) = field_of(lhs)
        {
            if rhs.trim() == "()" {
                return simple(&field, if op == "is" { "empty" } else { "not_empty" }, "");
            }
            if let Some(value) = unquote(rhs) {
                return simple(&field, op, &value);
            }
        }
    }
    Rule {
        script: script.to_owned(),
        ..Rule::default()
    }
}

fn sections_mut(form: &mut Value) -> Option<&mut Vec<Value>> {
    form.get_mut("sections").and_then(Value::as_array_mut)
}

/// Where field `field` is placed: (section, position).
pub fn position_of(form: &Value, field: &str) -> Option<(usize, usize)> {
    form.get("sections")?
        .as_array()?
        .iter()
        .enumerate()
        .find_map(|(s, section)| {
            section
                .get("fields")?
                .as_array()?
                .iter()
                .position(|p| p.get("field").and_then(Value::as_str) == Some(field))
                .map(|i| (s, i))
        })
}

/// The placed fields, by section.
pub fn placed(form: &Value) -> Vec<Vec<String>> {
    form.get("sections")
        .and_then(Value::as_array)
        .map(|sections| {
            sections
                .iter()
                .map(|s| {
                    s.get("fields")
                        .and_then(Value::as_array)
                        .map(|f| {
                            f.iter()
                                .filter_map(|p| p.get("field").and_then(Value::as_str))
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Drops sections left without fields (a form needs at least one section, so the first stays
/// when all are empty, and saving it is then refused by the meta-schema with its pointer).
fn drop_empty_sections(form: &mut Value) {
    if let Some(sections) = sections_mut(form) {
        let keep_first = sections.len() > 1;
        sections.retain(|s| {
            s.get("fields")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty())
        });
        if sections.is_empty() && !keep_first {
            sections.push(json!({"fields": []}));
        }
    }
}

fn take(form: &mut Value, field: &str) -> Option<Value> {
    let (s, i) = position_of(form, field)?;
    let sections = sections_mut(form)?;
    sections[s]
        .get_mut("fields")
        .and_then(Value::as_array_mut)
        .map(|f| f.remove(i))
}

/// Applies `edit` to form `form` of an entity whose fields are `fields` (key, kind, widgets the
/// kind allows); on problems nothing changes.
///
/// # Errors
/// Every problem found, under `/placement`, `/section` or `/layout`.
pub fn apply(
    form: &mut Value,
    fields: &[(String, String, Vec<String>)],
    edit: &FormEdit,
) -> Result<(), Vec<FieldError>> {
    let mut next = form.clone();
    let mut problems = Vec::new();
    let known = |key: &str| fields.iter().any(|(k, _, _)| k == key);
    if next.get("sections").and_then(Value::as_array).is_none() {
        next["sections"] = json!([]);
    }
    match edit {
        FormEdit::Place { field, section } => {
            if !known(field) {
                problems.push(FieldError::new(
                    "/placement/field",
                    "unknown_field",
                    format!("the entity has no field {field:?}"),
                ));
            } else if position_of(&next, field).is_some() {
                problems.push(FieldError::new(
                    "/placement/field",
                    "placed",
                    format!("{field:?} is on the form already"),
                ));
            } else if let Some(sections) = sections_mut(&mut next) {
                let at = (*section).min(sections.len());
                if at == sections.len() {
                    sections.push(json!({"columns": 2, "fields": []}));
                }
                if let Some(list) = sections[at].get_mut("fields").and_then(Value::as_array_mut) {
                    list.push(json!({"field": field}));
                }
            }
        }
        FormEdit::Remove { field } => {
            if take(&mut next, field).is_none() {
                problems.push(not_placed(field));
            }
            drop_empty_sections(&mut next);
        }
        FormEdit::Move { field, by } => {
            let Some((s, i)) = position_of(&next, field) else {
                return Err(vec![not_placed(field)]);
            };
            let mut layout = placed(&next);
            let moved = layout[s].remove(i);
            let (mut s2, mut i2) = (s, i as i64 + i64::from(*by));
            if i2 < 0 && s > 0 {
                s2 = s - 1;
                i2 = layout[s2].len() as i64;
            } else if i2 > layout[s].len() as i64 && s + 1 < layout.len() {
                s2 = s + 1;
                i2 = 0;
            }
            let i2 = i2.clamp(0, layout[s2].len() as i64) as usize;
            layout[s2].insert(i2, moved);
            arrange(&mut next, &layout, fields, &mut problems);
        }
        FormEdit::Arrange(layout) => arrange(&mut next, layout, fields, &mut problems),
        FormEdit::Settings(placement) => {
            settings(&mut next, placement, fields, &mut problems);
        }
        FormEdit::Section {
            index,
            title_en,
            title_zh,
            columns,
            collapsed,
        } => {
            let Some(section) = sections_mut(&mut next).and_then(|s| s.get_mut(*index)) else {
                return Err(vec![FieldError::new(
                    "/section",
                    "unknown_section",
                    "no such section",
                )]);
            };
            if !(1..=4).contains(columns) {
                problems.push(FieldError::new(
                    "/section/columns",
                    "range",
                    "a section has 1 to 4 columns",
                ));
            }
            if let Some(object) = section.as_object_mut() {
                match super::designer::label_value(title_en, title_zh) {
                    Some(title) => object.insert("title".to_owned(), title),
                    None => object.remove("title"),
                };
                object.insert("columns".to_owned(), json!(columns));
                if *collapsed {
                    object.insert("collapsed".to_owned(), json!(true));
                } else {
                    object.remove("collapsed");
                }
            }
        }
        FormEdit::MoveSection { index, by } => {
            if let Some(sections) = sections_mut(&mut next) {
                let to = (*index as i64 + i64::from(*by)).clamp(0, sections.len() as i64 - 1);
                if *index < sections.len() {
                    let section = sections.remove(*index);
                    sections.insert(to as usize, section);
                }
            }
        }
        FormEdit::Label { en, zh } => match super::designer::label_value(en, zh) {
            Some(label) => next["label"] = label,
            None => problems.push(FieldError::new(
                "/label/en",
                "required",
                "give the form a name",
            )),
        },
    }
    if problems.is_empty() {
        *form = next;
        Ok(())
    } else {
        Err(problems)
    }
}

fn not_placed(field: &str) -> FieldError {
    FieldError::new(
        "/placement/field",
        "not_placed",
        format!("{field:?} is not on the form"),
    )
}

fn arrange(
    form: &mut Value,
    layout: &[Vec<String>],
    fields: &[(String, String, Vec<String>)],
    problems: &mut Vec<FieldError>,
) {
    // Every placement (with its settings) by field, to travel with it.
    let mut placements: Map<String, Value> = Map::new();
    for section in form
        .get("sections")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for p in section
            .get("fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(key) = p.get("field").and_then(Value::as_str) {
                placements.insert(key.to_owned(), p.clone());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (s, keys) in layout.iter().enumerate() {
        for (i, key) in keys.iter().enumerate() {
            if !fields.iter().any(|(k, _, _)| k == key) {
                problems.push(FieldError::new(
                    format!("/layout/{s}/{i}"),
                    "unknown_field",
                    format!("the entity has no field {key:?}"),
                ));
            } else if !seen.insert(key.clone()) {
                problems.push(FieldError::new(
                    format!("/layout/{s}/{i}"),
                    "placed",
                    format!("{key:?} is placed twice"),
                ));
            }
        }
    }
    if !problems.is_empty() {
        return;
    }
    let Some(sections) = sections_mut(form) else {
        return;
    };
    while sections.len() < layout.len() {
        sections.push(json!({"columns": 2, "fields": []}));
    }
    for (s, section) in sections.iter_mut().enumerate() {
        let list: Vec<Value> = layout
            .get(s)
            .into_iter()
            .flatten()
            .map(|key| {
                placements
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| json!({"field": key}))
            })
            .collect();
        section["fields"] = Value::Array(list);
    }
    drop_empty_sections(form);
}

fn settings(
    form: &mut Value,
    placement: &Placement,
    fields: &[(String, String, Vec<String>)],
    problems: &mut Vec<FieldError>,
) {
    let Some((s, i)) = position_of(form, &placement.field) else {
        problems.push(not_placed(&placement.field));
        return;
    };
    let kinds: Vec<(String, String)> = fields
        .iter()
        .map(|(k, kind, _)| (k.clone(), kind.clone()))
        .collect();
    let widgets = fields
        .iter()
        .find(|(k, _, _)| *k == placement.field)
        .map(|(_, _, w)| w.clone())
        .unwrap_or_default();
    let mut out = Map::new();
    out.insert("field".to_owned(), json!(placement.field));
    let widget = placement.widget.trim();
    if !widget.is_empty() {
        if widgets.iter().any(|w| w == widget) {
            out.insert("widget".to_owned(), json!(widget));
        } else {
            problems.push(FieldError::new(
                "/placement/widget",
                "widget",
                format!("this field shows as one of: {}", widgets.join(", ")),
            ));
        }
    }
    if let Some(help) = super::designer::label_value(&placement.help_en, &placement.help_zh) {
        out.insert("help".to_owned(), help);
    }
    let span = placement.span.trim();
    if !span.is_empty() {
        match span.parse::<u32>() {
            Ok(n) if (1..=4).contains(&n) => {
                out.insert("span".to_owned(), json!(n));
            }
            _ => problems.push(FieldError::new(
                "/placement/span",
                "range",
                "a field spans 1 to 4 columns",
            )),
        }
    }
    if placement.readonly {
        out.insert("readonly".to_owned(), json!(true));
    }
    for (key, rule, pointer) in [
        ("visible_when", &placement.visible, "/placement/visible"),
        (
            "readonly_when",
            &placement.readonly_when,
            "/placement/readonly_when",
        ),
    ] {
        match rule_script(rule, &kinds, pointer) {
            Ok(Some(script)) => {
                out.insert(key.to_owned(), json!(script));
            }
            Ok(None) => {}
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty()
        && let Some(list) = sections_mut(form)
            .and_then(|sections| sections.get_mut(s))
            .and_then(|section| section.get_mut("fields"))
            .and_then(Value::as_array_mut)
    {
        list[i] = Value::Object(out);
    }
}

/// A new form for `entity` with one section holding `first`.
pub fn new_form(entity: &str, label_en: &str, label_zh: &str, first: &str) -> Value {
    json!({
        "entity": entity,
        "label": super::designer::label_value(label_en, label_zh).unwrap_or_else(|| json!({"en": entity})),
        "sections": [{"columns": 2, "fields": [{"field": first}]}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<(String, String, Vec<String>)> {
        [
            ("name", "text"),
            ("phone", "phone"),
            ("wechat", "text"),
            ("stage", "single_select"),
            ("amount", "money"),
            ("notes", "long_text"),
        ]
        .into_iter()
        .map(|(k, kind)| {
            let widgets = if kind == "text" {
                vec!["text".to_owned(), "textarea".to_owned()]
            } else {
                vec![]
            };
            (k.to_owned(), kind.to_owned(), widgets)
        })
        .collect()
    }

    fn form() -> Value {
        json!({"entity": "lead", "label": {"en": "Lead"}, "sections": [
            {"title": {"en": "Basic"}, "columns": 2, "fields": [{"field": "name"}, {"field": "phone"}]},
            {"columns": 1, "fields": [{"field": "notes", "span": 2}]}
        ]})
    }

    #[test]
    fn a_field_is_placed_moved_and_taken_off() {
        let mut form = form();
        apply(
            &mut form,
            &fields(),
            &FormEdit::Place {
                field: "wechat".into(),
                section: 0,
            },
        )
        .expect("placed");
        assert_eq!(
            placed(&form),
            [vec!["name", "phone", "wechat"], vec!["notes"]]
        );
        let again = apply(
            &mut form,
            &fields(),
            &FormEdit::Place {
                field: "wechat".into(),
                section: 1,
            },
        );
        assert_eq!(again.expect_err("twice")[0].code, "placed");
        apply(
            &mut form,
            &fields(),
            &FormEdit::Move {
                field: "wechat".into(),
                by: -1,
            },
        )
        .expect("up");
        assert_eq!(placed(&form)[0], ["name", "wechat", "phone"]);
        // Down past the end of a section: the top of the next one, settings kept.
        apply(
            &mut form,
            &fields(),
            &FormEdit::Move {
                field: "phone".into(),
                by: 1,
            },
        )
        .expect("down");
        assert_eq!(
            placed(&form),
            [vec!["name", "wechat"], vec!["phone", "notes"]]
        );
        assert_eq!(form["sections"][1]["fields"][1]["span"], 2);
        apply(
            &mut form,
            &fields(),
            &FormEdit::Remove {
                field: "wechat".into(),
            },
        )
        .expect("off");
        assert_eq!(placed(&form)[0], ["name"]);
        // A new section at the end.
        apply(
            &mut form,
            &fields(),
            &FormEdit::Place {
                field: "amount".into(),
                section: 9,
            },
        )
        .expect("new");
        assert_eq!(placed(&form).len(), 3);
    }

    #[test]
    fn arranging_keeps_settings_and_drops_empty_sections() {
        let mut form = form();
        apply(
            &mut form,
            &fields(),
            &FormEdit::Arrange(vec![
                vec![],
                vec!["notes".into(), "name".into(), "phone".into()],
            ]),
        )
        .expect("arranged");
        assert_eq!(placed(&form), [vec!["notes", "name", "phone"]]);
        assert_eq!(form["sections"][0]["fields"][0]["span"], 2);
        let problems = apply(
            &mut form,
            &fields(),
            &FormEdit::Arrange(vec![vec!["name".into(), "name".into(), "ghost".into()]]),
        )
        .expect_err("refused");
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/layout/0/1", "/layout/0/2"]);
    }

    #[test]
    fn the_rule_editor_writes_and_reads_simple_rules() {
        let kinds: Vec<(String, String)> =
            fields().into_iter().map(|(k, kind, _)| (k, kind)).collect();
        let rule = |field: &str, op: &str, value: &str| Rule {
            field: field.into(),
            op: op.into(),
            value: value.into(),
            script: String::new(),
        };
        let script = rule_script(&rule("stage", "is", "quote"), &kinds, "/p").expect("ok");
        assert_eq!(script.as_deref(), Some("record.stage == \"quote\""));
        assert_eq!(parse_rule(script.as_deref()), rule("stage", "is", "quote"));
        let script = rule_script(&rule("amount", "is_not", "0"), &kinds, "/p").expect("ok");
        assert_eq!(script.as_deref(), Some("record.amount != 0"));
        assert_eq!(parse_rule(script.as_deref()), rule("amount", "is_not", "0"));
        let script = rule_script(&rule("phone", "empty", ""), &kinds, "/p").expect("ok");
        assert_eq!(parse_rule(script.as_deref()), rule("phone", "empty", ""));
        // Quotes are escaped; anything the editor did not write stays raw rhai.
        let script = rule_script(&rule("name", "is", "say \"hi\""), &kinds, "/p").expect("ok");
        assert_eq!(script.as_deref(), Some("record.name == \"say \\\"hi\\\"\""));
        assert_eq!(
            parse_rule(script.as_deref()).script,
            script.unwrap_or_default()
        );
        assert_eq!(
            rule_script(&rule("amount", "is", "lots"), &kinds, "/p")
                .expect_err("nan")
                .pointer,
            "/p/value"
        );
        assert_eq!(
            rule_script(&rule("ghost", "is", "x"), &kinds, "/p")
                .expect_err("unknown")
                .pointer,
            "/p/field"
        );
    }

    #[test]
    fn comparisons_and_includes_read_back_and_hold_for_money_numbers_and_empty_values() {
        let kinds: Vec<(String, String)> = [
            ("amount", "money"),
            ("discount", "percent"),
            ("seats", "integer"),
            ("tags", "multi_select"),
            ("name", "text"),
        ]
        .into_iter()
        .map(|(k, kind)| (k.to_owned(), kind.to_owned()))
        .collect();
        let rule = |field: &str, op: &str, value: &str| Rule {
            field: field.into(),
            op: op.into(),
            value: value.into(),
            script: String::new(),
        };
        let engine = crate::script::shared();
        let record = |amount: rhai::Dynamic, discount: rhai::Dynamic| {
            let mut map = rhai::Map::new();
            map.insert("amount".into(), amount);
            map.insert("discount".into(), discount);
            map.insert("seats".into(), rhai::Dynamic::from_int(12));
            map.insert(
                "tags".into(),
                rhai::Dynamic::from_array(vec![rhai::Dynamic::from("vip")]),
            );
            map.insert("name".into(), rhai::Dynamic::UNIT);
            rhai::Dynamic::from_map(map)
        };
        let holds = |script: &str, record: rhai::Dynamic| -> bool {
            let compiled = engine.compile(script, "/p").expect("compiles");
            engine
                .eval(&compiled, vec![("record", record)], "/p")
                .expect("runs")
                .as_bool()
                .expect("a yes or no")
        };
        let full = || {
            record(
                rhai::Dynamic::from_decimal(rust_decimal::Decimal::new(2_000_050, 2)),
                rhai::Dynamic::from_float(18.5),
            )
        };
        for (field, op, value, expected) in [
            ("amount", "gt", "20000", true),
            ("amount", "ge", "20000.5", true),
            ("amount", "lt", "20000.5", false),
            ("discount", "gt", "15", true),
            ("discount", "le", "18.5", true),
            ("seats", "lt", "10", false),
            ("tags", "includes", "vip", true),
            ("name", "empty", "", true),
            ("amount", "is_not", "0", true),
        ] {
            let script = rule_script(&rule(field, op, value), &kinds, "/p")
                .expect("written")
                .expect("a rule");
            assert_eq!(
                parse_rule(Some(&script)),
                rule(field, op, value),
                "{script}"
            );
            assert_eq!(holds(&script, full()), expected, "{script}");
        }
        // An empty number makes a comparison false rather than failing the script.
        let script = rule_script(&rule("amount", "gt", "0"), &kinds, "/p")
            .expect("written")
            .expect("a rule");
        assert!(!holds(
            &script,
            record(rhai::Dynamic::UNIT, rhai::Dynamic::UNIT)
        ));
        assert_eq!(
            rule_script(&rule("name", "gt", "1"), &kinds, "/p")
                .expect_err("text does not compare")
                .pointer,
            "/p/op"
        );
    }

    #[test]
    fn settings_are_checked() {
        let mut form = form();
        let placement = Placement {
            field: "name".into(),
            widget: "radio".into(),
            span: "7".into(),
            ..Placement::default()
        };
        let problems = apply(
            &mut form,
            &fields(),
            &FormEdit::Settings(Box::new(placement)),
        )
        .expect_err("bad");
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/placement/widget", "/placement/span"]);
        let placement = Placement {
            field: "name".into(),
            widget: "textarea".into(),
            help_zh: "客户姓名".into(),
            visible: Rule {
                field: "stage".into(),
                op: "is".into(),
                value: "quote".into(),
                script: String::new(),
            },
            ..Placement::default()
        };
        apply(
            &mut form,
            &fields(),
            &FormEdit::Settings(Box::new(placement)),
        )
        .expect("set");
        assert_eq!(
            form["sections"][0]["fields"][0],
            json!({"field": "name", "widget": "textarea", "help": {"en": "客户姓名", "zh-CN": "客户姓名"},
                   "visible_when": "record.stage == \"quote\""})
        );
    }
}
