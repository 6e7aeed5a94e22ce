//! Lossless evolution of stored records when an entity changes: what a draft would do to them
//! (the dry-run: values that would not convert to a field's new kind, records missing a newly
//! required value, duplicates under a new unique rule, values of removed fields that stay kept),
//! and the conversion applied when a version with kind changes is published. A value that does
//! not convert is cleared from the field and kept, raw, under the record's `unconverted` marker
//! and in its history: nothing stored is ever lost.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::codec;
use crate::definitions::{EntityModel, Field, FieldKind};
use crate::domain::{Actor, new_id};
use crate::error::Result;
use crate::store::Conn;
use crate::store::records::{self as rows, HistoryRow, RecordRow, Stamp};

/// The document key holding values that did not convert (`{field: raw API value}`). Field keys
/// start with a letter, so it can never clash with a field.
pub const UNCONVERTED: &str = "_unconverted";

/// Most problems listed by a dry-run (the counts are always complete).
const MAX_LISTED: usize = 1000;

/// One change a draft makes to a field, with what it means for the stored values.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldChange {
    /// The field.
    pub field: String,
    /// `added`, `removed`, `kind`, `required`, `unique`, `hidden`, `shown`.
    pub change: String,
    /// The old kind (kind changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The new kind (kind changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Records holding a value of this field.
    pub records_with_value: u64,
    /// Of those, how many would not convert, miss a required value, or repeat a unique one.
    pub affected: u64,
}

/// One record a draft would affect.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecordProblem {
    /// The record.
    pub record: Uuid,
    /// The field.
    pub field: String,
    /// `unconvertible`, `missing_required`, `duplicate`, `schema`.
    pub code: String,
    /// The stored value (API form), when there is one.
    pub value: Value,
    /// Why.
    pub message: String,
}

/// What publishing a draft would do to the stored records.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Impact {
    /// Records examined (live and in the trash).
    pub records: u64,
    /// Field changes with counts.
    pub fields: Vec<FieldChange>,
    /// Affected records, the first 1000.
    pub problems: Vec<RecordProblem>,
    /// All affected (record, field) pairs.
    pub problems_total: u64,
}

/// The text a stored value shows as, for conversions to text kinds.
fn as_text(field: &Field, stored: &Value) -> Option<String> {
    match codec::decode(field, stored) {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => None,
    }
}

/// A number a stored value stands for (money in major units), for numeric targets.
fn as_number(field: &Field, stored: &Value) -> Option<f64> {
    match (&field.kind, stored) {
        (FieldKind::Money { scale, .. }, Value::Number(n)) => {
            Some(n.as_i64()? as f64 / 10f64.powi(*scale as i32))
        }
        (_, Value::Number(n)) => n.as_f64(),
        (_, Value::String(s)) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        (_, Value::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// Converts a stored value of `old` to the stored form of `new`.
///
/// # Errors
/// Why the value does not convert.
pub fn convert(
    old: &Field,
    new: &Field,
    stored: &Value,
    zone: chrono_tz::Tz,
) -> Result<Option<Value>, String> {
    let fail = |why: &str| {
        Err(format!(
            "{} value {} does not convert to {}: {why}",
            old.kind.name(),
            codec::decode(old, stored),
            new.kind.name()
        ))
    };
    let encode = |api: Value| codec::encode_value(new, &api, "").map_err(|e| e.message);
    match &new.kind {
        FieldKind::Text
        | FieldKind::LongText
        | FieldKind::Email
        | FieldKind::Phone
        | FieldKind::Url => match as_text(old, stored) {
            Some(text) => encode(Value::String(text)),
            None => fail("it has no text form"),
        },
        FieldKind::Integer => match as_number(old, stored) {
            Some(n) if n.fract() == 0.0 && n.abs() <= codec::MONEY_LIMIT as f64 => {
                Ok(Some(Value::from(n as i64)))
            }
            Some(_) => fail("it is not a whole number"),
            None => fail("it is not a number"),
        },
        FieldKind::Number | FieldKind::Percent => match as_number(old, stored) {
            Some(n) => encode(Value::from(n)),
            None => fail("it is not a number"),
        },
        FieldKind::Money { .. } => {
            let api = match (&old.kind, stored) {
                (FieldKind::Money { .. }, _) => codec::decode(old, stored),
                (_, Value::Number(_) | Value::String(_)) => stored.clone(),
                _ => return fail("it is not an amount"),
            };
            encode(api)
        }
        FieldKind::Boolean => {
            let value = match stored {
                Value::Bool(b) => Some(*b),
                Value::Number(n) if n.as_f64() == Some(1.0) => Some(true),
                Value::Number(n) if n.as_f64() == Some(0.0) => Some(false),
                Value::String(s) => match s.trim().to_lowercase().as_str() {
                    "true" | "yes" | "y" | "1" | "是" | "对" => Some(true),
                    "false" | "no" | "n" | "0" | "否" | "不" => Some(false),
                    _ => None,
                },
                _ => None,
            };
            match value {
                Some(b) => Ok(Some(Value::Bool(b))),
                None => fail("it is not yes or no"),
            }
        }
        FieldKind::Date => match (&old.kind, stored.as_str()) {
            (FieldKind::DateTime, Some(text)) => match DateTime::parse_from_rfc3339(text) {
                Ok(at) => Ok(Some(Value::String(
                    at.with_timezone(&zone)
                        .date_naive()
                        .format("%Y-%m-%d")
                        .to_string(),
                ))),
                Err(_) => fail("it is not a date-time"),
            },
            (_, Some(text)) => encode(Value::String(text.to_owned())),
            _ => fail("it is not a date"),
        },
        FieldKind::DateTime => match (&old.kind, stored.as_str()) {
            (FieldKind::Date, Some(text)) => match codec::parse_date(text, "") {
                Ok(date) => Ok(Some(Value::String(codec::canonical_datetime(
                    super::query::local_midnight(date, zone),
                )))),
                Err(_) => fail("it is not a date"),
            },
            (_, Some(text)) => encode(Value::String(text.to_owned())),
            _ => fail("it is not a date-time"),
        },
        FieldKind::SingleSelect { .. } => match stored {
            Value::Array(items) if items.len() == 1 => encode(items[0].clone()),
            Value::Array(_) => fail("only a single option converts"),
            other => match as_text(old, other) {
                Some(text) => encode(Value::String(text)),
                None => fail("it is not an option"),
            },
        },
        FieldKind::MultiSelect { .. } => match stored {
            Value::Array(_) => encode(stored.clone()),
            other => match as_text(old, other) {
                Some(text) => encode(Value::from(vec![text])),
                None => fail("it is not an option"),
            },
        },
        FieldKind::Reference { entity, .. } => match &old.kind {
            FieldKind::Reference { entity: was, .. } if was == entity => Ok(Some(stored.clone())),
            _ => fail("only a reference to the same entity converts"),
        },
        FieldKind::User => match &old.kind {
            FieldKind::User => Ok(Some(stored.clone())),
            _ => fail("only a user field converts to a user field"),
        },
        FieldKind::AutoNumber { .. } => match as_text(old, stored) {
            Some(text) => Ok(Some(Value::String(text))),
            None => fail("it has no text form"),
        },
        FieldKind::Attachment { .. } => match &old.kind {
            // Limits apply to the next write; the files stay.
            FieldKind::Attachment { .. } => Ok(Some(stored.clone())),
            _ => fail("only an attachment field converts to an attachment field"),
        },
        FieldKind::SubTable { columns, .. } => {
            let (FieldKind::SubTable { columns: was, .. }, Value::Array(rows)) =
                (&old.kind, stored)
            else {
                return fail("only a sub-table converts to a sub-table");
            };
            let mut converted = Vec::with_capacity(rows.len());
            for row in rows {
                let Some(cells) = row.as_object() else {
                    return fail("a row is not an object");
                };
                let mut out = cells.clone();
                for column in columns {
                    let (Some(before), Some(cell)) = (
                        was.iter().find(|c| c.key == column.key),
                        cells.get(&column.key),
                    ) else {
                        continue;
                    };
                    if before.kind.name() == column.kind.name() && before.kind == column.kind {
                        continue;
                    }
                    match convert(before, column, cell, zone)? {
                        Some(value) => out.insert(column.key.clone(), value),
                        None => out.remove(&column.key),
                    };
                }
                converted.push(Value::Object(out));
            }
            Ok(Some(Value::Array(converted)))
        }
    }
}

/// The fields whose kind changes between two versions: (old, new). A field absent from the
/// previous version but present in an older one (`readded`) compares with that older kind, so
/// values kept while it was removed convert too.
fn kind_changes<'a>(
    previous: &'a EntityModel,
    next: &'a EntityModel,
    readded: &'a [Field],
) -> Vec<(&'a Field, &'a Field)> {
    next.fields
        .iter()
        .filter_map(|new| {
            let old = previous
                .field(&new.key)
                .or_else(|| readded.iter().find(|f| f.key == new.key))?;
            (old.kind != new.kind).then_some((old, new))
        })
        .collect()
}

/// The fields of `next` that `previous` lacks but an older version had, as that version last
/// defined them: their values were kept while they were removed.
///
/// # Errors
/// `Error::Db`.
pub async fn readded_fields(
    conn: &impl Conn,
    previous: &EntityModel,
    next: &EntityModel,
) -> Result<Vec<Field>> {
    let missing: Vec<&str> = next
        .fields
        .iter()
        .filter(|f| previous.field(&f.key).is_none())
        .map(|f| f.key.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let versions = crate::store::definitions::list_versions(conn, previous.definition_id).await?;
    let mut found = Vec::new();
    for key in missing {
        // Newest first: the field as it was last defined.
        if let Some(field) = versions.iter().find_map(|v| {
            v.document
                .pointer(&format!("/properties/{}", codec::escape(key)))
        }) {
            found.push(crate::definitions::entity::field_of(key, field));
        }
    }
    Ok(found)
}

/// A value that did not convert: (field, raw API value, why).
type Unconverted = (String, Value, String);

/// The stored document of a record after converting it to `next`: converted values, and the
/// raw API form of those that did not convert under [`UNCONVERTED`]. Returns the problems too.
fn convert_doc(
    previous: &EntityModel,
    next: &EntityModel,
    readded: &[Field],
    doc: &Map<String, Value>,
    zone: chrono_tz::Tz,
) -> (Map<String, Value>, Vec<Unconverted>) {
    let mut out = doc.clone();
    let mut failed = Vec::new();
    for (old, new) in kind_changes(previous, next, readded) {
        let Some(stored) = doc.get(&old.key) else {
            continue;
        };
        match convert(old, new, stored, zone) {
            Ok(Some(converted)) => {
                out.insert(new.key.clone(), converted);
            }
            Ok(None) => {
                out.remove(&new.key);
            }
            Err(why) => {
                let raw = codec::decode(old, stored);
                out.remove(&new.key);
                let marker = out
                    .entry(UNCONVERTED.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(marker) = marker.as_object_mut() {
                    marker.insert(new.key.clone(), raw.clone());
                }
                failed.push((new.key.clone(), raw, why));
            }
        }
    }
    (out, failed)
}

/// What publishing `next` over `previous` would do to the stored records (reads only).
///
/// # Errors
/// `Error::Db`.
pub async fn impact(
    conn: &impl Conn,
    previous: &EntityModel,
    next: &EntityModel,
    zone: chrono_tz::Tz,
) -> Result<Impact> {
    let readded = readded_fields(conn, previous, next).await?;
    let mut fields: Vec<FieldChange> = Vec::new();
    let mut index: HashMap<(String, &'static str), usize> = HashMap::new();
    let mut change = |fields: &mut Vec<FieldChange>,
                      field: &str,
                      kind: &'static str,
                      from: Option<String>,
                      to: Option<String>| {
        *index.entry((field.to_owned(), kind)).or_insert_with(|| {
            fields.push(FieldChange {
                field: field.to_owned(),
                change: kind.to_owned(),
                from,
                to,
                records_with_value: 0,
                affected: 0,
            });
            fields.len() - 1
        })
    };
    for old in &previous.fields {
        match next.field(&old.key) {
            None => {
                change(&mut fields, &old.key, "removed", None, None);
            }
            Some(new) => {
                if old.kind != new.kind {
                    change(
                        &mut fields,
                        &new.key,
                        "kind",
                        Some(old.kind.name().to_owned()),
                        Some(new.kind.name().to_owned()),
                    );
                }
                if !old.hidden && new.hidden {
                    change(&mut fields, &new.key, "hidden", None, None);
                }
                if old.hidden && !new.hidden {
                    change(&mut fields, &new.key, "shown", None, None);
                }
                if !old.unique && new.unique {
                    change(&mut fields, &new.key, "unique", None, None);
                }
            }
        }
    }
    for new in &next.fields {
        if previous.field(&new.key).is_none() {
            change(&mut fields, &new.key, "added", None, None);
        }
    }
    let newly_required: Vec<&String> = next
        .required
        .iter()
        .filter(|key| !previous.required.contains(key))
        .collect();
    for key in &newly_required {
        change(&mut fields, key, "required", None, None);
    }
    let mut problems = Vec::new();
    let mut problems_total = 0u64;
    let mut records = 0u64;
    let mut seen_unique: HashMap<String, BTreeMap<String, Uuid>> = HashMap::new();
    let mut after = None;
    loop {
        let page = rows::scan(conn, &previous.table(), after, 1000).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.id);
        for row in &page {
            records += 1;
            let (doc, failed) = convert_doc(previous, next, &readded, &row.doc, zone);
            let mut note = |fields: &mut Vec<FieldChange>,
                            field: &str,
                            kind: &'static str,
                            code: &str,
                            value: Value,
                            message: String| {
                let at = change(fields, field, kind, None, None);
                fields[at].affected += 1;
                problems_total += 1;
                if problems.len() < MAX_LISTED {
                    problems.push(RecordProblem {
                        record: row.id,
                        field: field.to_owned(),
                        code: code.to_owned(),
                        value,
                        message,
                    });
                }
            };
            for entry in fields.iter_mut() {
                if row.doc.contains_key(&entry.field) {
                    entry.records_with_value += 1;
                }
            }
            for (field, raw, why) in failed {
                note(&mut fields, &field, "kind", "unconvertible", raw, why);
            }
            let live = row.deleted_at.is_none();
            for key in &newly_required {
                if live && !doc.contains_key(key.as_str()) {
                    note(
                        &mut fields,
                        key,
                        "required",
                        "missing_required",
                        Value::Null,
                        format!("the record has no {key}"),
                    );
                }
            }
            for field in next.fields.iter().filter(|f| f.unique && live) {
                let was_unique = previous.field(&field.key).is_some_and(|f| f.unique);
                if was_unique {
                    continue;
                }
                if let Some(value) = doc.get(&field.key) {
                    let seen = seen_unique.entry(field.key.clone()).or_default();
                    match seen.get(&value.to_string()) {
                        Some(first) => note(
                            &mut fields,
                            &field.key,
                            "unique",
                            "duplicate",
                            codec::decode(field, value),
                            format!("the same value as record {first}"),
                        ),
                        None => {
                            seen.insert(value.to_string(), row.id);
                        }
                    }
                }
            }
        }
    }
    Ok(Impact {
        records,
        fields,
        problems,
        problems_total,
    })
}

/// Converts the stored values of every record whose field kinds change (inside the publishing
/// transaction, after the table was locked against writers), writing a `convert` history row
/// for each record changed. Returns how many records changed.
///
/// # Errors
/// `Error::Db`.
pub async fn apply(
    conn: &impl Conn,
    workspace_id: Uuid,
    actor: Actor,
    at: DateTime<Utc>,
    previous: &EntityModel,
    next: &EntityModel,
    zone: chrono_tz::Tz,
) -> Result<u64> {
    let readded = readded_fields(conn, previous, next).await?;
    if kind_changes(previous, next, &readded).is_empty() {
        return Ok(0);
    }
    rows::lock_for_conversion(conn, &previous.table()).await?;
    let stamp = Stamp {
        at,
        by: actor.account_id(),
    };
    let mut changed = 0u64;
    let mut after = None;
    loop {
        let page: Vec<RecordRow> = rows::scan(conn, &previous.table(), after, 1000).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.id);
        let mut docs = Vec::new();
        let mut history = Vec::new();
        for row in page {
            let (doc, failed) = convert_doc(previous, next, &readded, &row.doc, zone);
            if doc == row.doc {
                continue;
            }
            let mut fields = Map::new();
            for (old, new) in kind_changes(previous, next, &readded) {
                if row.doc.get(&old.key) != doc.get(&new.key) {
                    fields.insert(
                        new.key.clone(),
                        serde_json::json!({
                            "old": row.doc.get(&old.key).map_or(Value::Null, |v| codec::decode(old, v)),
                            "new": doc.get(&new.key).map_or(Value::Null, |v| codec::decode(new, v)),
                        }),
                    );
                }
            }
            let unconverted: Map<String, Value> = failed
                .into_iter()
                .map(|(field, raw, why)| (field, serde_json::json!({"value": raw, "reason": why})))
                .collect();
            history.push(HistoryRow {
                id: new_id(),
                workspace_id,
                entity_id: next.definition_id,
                record_id: row.id,
                at,
                actor_id: actor.account_id(),
                actor_kind: match actor {
                    Actor::Account { .. } => "account".to_owned(),
                    Actor::System => "system".to_owned(),
                },
                channel: super::Channel::System.as_str().to_owned(),
                operation: "convert".to_owned(),
                changes: serde_json::json!({
                    "fields": fields,
                    "unconverted": unconverted,
                    "entity_version": next.version,
                }),
            });
            docs.push((row.id, doc));
            changed += 1;
        }
        rows::rewrite_docs(conn, &previous.table(), docs, stamp).await?;
        rows::insert_history(conn, &history).await?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(kind: FieldKind) -> Field {
        Field::plain("f", kind)
    }

    #[test]
    fn values_convert_between_kinds_or_say_why_not() {
        let zone = chrono_tz::Asia::Shanghai;
        let text = field(FieldKind::Text);
        let money = field(FieldKind::Money {
            currency: "CNY".to_owned(),
            scale: 2,
        });
        let integer = field(FieldKind::Integer);
        assert_eq!(
            convert(&text, &money, &json!("1200.5"), zone),
            Ok(Some(json!(120050)))
        );
        assert!(convert(&text, &money, &json!("about 5k"), zone).is_err());
        assert_eq!(
            convert(&money, &text, &json!(120050), zone),
            Ok(Some(json!("1200.50")))
        );
        assert_eq!(
            convert(&money, &integer, &json!(120000), zone),
            Ok(Some(json!(1200)))
        );
        assert!(convert(&money, &integer, &json!(120050), zone).is_err());
        let date = field(FieldKind::Date);
        let datetime = field(FieldKind::DateTime);
        assert_eq!(
            convert(&datetime, &date, &json!("2026-11-30T17:00:00.000Z"), zone),
            Ok(Some(json!("2026-12-01"))),
            "the local date in the workspace zone"
        );
        assert_eq!(
            convert(&date, &datetime, &json!("2026-12-01"), zone),
            Ok(Some(json!("2026-11-30T16:00:00.000Z")))
        );
        let select = field(FieldKind::SingleSelect {
            options: vec!["a".to_owned(), "b".to_owned()],
        });
        let multi = field(FieldKind::MultiSelect {
            options: vec!["a".to_owned(), "b".to_owned()],
        });
        assert_eq!(
            convert(&select, &multi, &json!("a"), zone),
            Ok(Some(json!(["a"])))
        );
        assert!(convert(&multi, &select, &json!(["a", "b"]), zone).is_err());
        assert_eq!(
            convert(&text, &select, &json!("b"), zone),
            Ok(Some(json!("b")))
        );
        assert!(convert(&text, &select, &json!("c"), zone).is_err());
        let boolean = field(FieldKind::Boolean);
        assert_eq!(
            convert(&text, &boolean, &json!("是"), zone),
            Ok(Some(json!(true)))
        );
    }
}
