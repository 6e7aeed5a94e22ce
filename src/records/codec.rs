//! Field values between their API form (what clients send and see) and their stored form (the
//! record document): money becomes integer minor units, datetimes canonical UTC text, emails
//! lowercase, empty values absent. Every refusal names the field's JSON pointer.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use crate::definitions::{EntityModel, Field, FieldKind};
use crate::domain::query::Scalar;
use crate::error::FieldError;

/// Most rows in one sub-table value.
pub const MAX_ROWS: usize = 1000;

/// Largest absolute money amount in minor units: 2^53 − 1, so amounts round-trip exactly
/// through JavaScript clients and the validator's floating-point view.
pub const MONEY_LIMIT: i64 = 9_007_199_254_740_991;

fn problem(pointer: &str, code: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(pointer, code, message)
}

/// The canonical stored text of an instant: UTC with milliseconds, as JavaScript prints it, so
/// text order is time order.
pub fn canonical_datetime(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an API datetime (RFC 3339 with an offset) to its canonical stored text.
///
/// # Errors
/// A `format` problem at `pointer`.
pub fn parse_datetime(text: &str, pointer: &str) -> Result<String, FieldError> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|at| canonical_datetime(at.with_timezone(&Utc)))
        .map_err(|_| {
            problem(
                pointer,
                "format",
                format!("{text:?} is not a date-time such as 2026-11-25T09:30:00+08:00"),
            )
        })
}

/// Parses an API date (`YYYY-MM-DD`).
///
/// # Errors
/// A `format` problem at `pointer`.
pub fn parse_date(text: &str, pointer: &str) -> Result<NaiveDate, FieldError> {
    let trimmed = text.trim();
    if trimmed.len() != 10 {
        return Err(problem(
            pointer,
            "format",
            format!("{text:?} is not a date such as 2026-11-25"),
        ));
    }
    NaiveDate::parse_from_str(trimmed, "%Y-%m-%d").map_err(|_| {
        problem(
            pointer,
            "format",
            format!("{text:?} is not a date such as 2026-11-25"),
        )
    })
}

/// Parses a money amount (a JSON number or a decimal string, in major units) to minor units.
///
/// # Errors
/// A `money` problem: not a decimal, more digits than the currency has, or out of range.
pub fn parse_money(value: &Value, scale: u32, pointer: &str) -> Result<i64, FieldError> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => {
            return Err(problem(
                pointer,
                "type",
                "a money amount is a number or a decimal string such as \"1234.50\"",
            ));
        }
    };
    let bad = || {
        problem(
            pointer,
            "money",
            format!("{text:?} is not an amount with at most {scale} decimal places"),
        )
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    // Numbers may arrive in exponent form (1e5); those are whole and small enough to widen.
    if digits.contains(['e', 'E']) {
        let float: f64 = text.parse().map_err(|_| bad())?;
        let minor = float * 10f64.powi(scale as i32);
        if !minor.is_finite() || minor.fract() != 0.0 || minor.abs() > MONEY_LIMIT as f64 {
            return Err(bad());
        }
        return Ok(minor as i64);
    }
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || (digits.contains('.') && fraction.is_empty())
    {
        return Err(bad());
    }
    let (kept, extra) = fraction.split_at(fraction.len().min(scale as usize));
    if extra.bytes().any(|b| b != b'0') {
        return Err(bad());
    }
    let mut minor: i64 = 0;
    for b in whole.bytes().chain(kept.bytes()) {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(b - b'0')))
            .ok_or_else(bad)?;
    }
    for _ in kept.len()..scale as usize {
        minor = minor.checked_mul(10).ok_or_else(bad)?;
    }
    if minor > MONEY_LIMIT {
        return Err(problem(
            pointer,
            "money",
            "the amount is too large (at most 9,007,199,254,740,991 minor units)",
        ));
    }
    Ok(if negative { -minor } else { minor })
}

/// Minor units as the API's decimal string (`"1234.50"`).
pub fn format_money(minor: i64, scale: u32) -> String {
    if scale == 0 {
        return minor.to_string();
    }
    let divisor = 10i64.pow(scale);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let divisor = divisor as u64;
    format!(
        "{sign}{}.{:0width$}",
        abs / divisor,
        abs % divisor,
        width = scale as usize
    )
}

fn as_text<'a>(value: &'a Value, pointer: &str) -> Result<&'a str, FieldError> {
    value
        .as_str()
        .ok_or_else(|| problem(pointer, "type", "expected text"))
}

fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn looks_like_phone(text: &str) -> bool {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    digits >= 3
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().#".contains(c) || c == 'x')
}

fn looks_like_url(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Converts one API value of `field` to its stored form; `None` means empty (the field is
/// cleared). Kind rules only: the entity's JSON Schema is checked on the whole record after.
///
/// # Errors
/// A located problem.
pub fn encode(field: &Field, value: &Value, pointer: &str) -> Result<Option<Value>, FieldError> {
    // Computed fields are the runtime's: not even `null` may clear them.
    if !field.is_writable() {
        return Err(problem(
            pointer,
            "read_only",
            format!("{} fields are computed by Formwork", field.kind_name()),
        ));
    }
    encode_value(field, value, pointer)
}

/// Converts a value of `field`'s kind to its stored form, writable or not (how Formwork stores
/// what it computes).
///
/// # Errors
/// A located problem.
pub fn encode_value(
    field: &Field,
    value: &Value,
    pointer: &str,
) -> Result<Option<Value>, FieldError> {
    if value.is_null() {
        return Ok(None);
    }
    let text_value = |value: &Value| -> Result<Option<String>, FieldError> {
        let text = as_text(value, pointer)?;
        Ok((!text.trim().is_empty()).then(|| text.to_owned()))
    };
    Ok(match &field.kind {
        FieldKind::Text | FieldKind::Phone => match text_value(value)? {
            None => None,
            Some(text) => {
                let text = text.trim().to_owned();
                if field.kind == FieldKind::Phone && !looks_like_phone(&text) {
                    return Err(problem(
                        pointer,
                        "phone",
                        format!("{text:?} is not a phone number (digits, spaces, + - ( ) . #)"),
                    ));
                }
                Some(Value::String(text))
            }
        },
        FieldKind::LongText => text_value(value)?.map(Value::String),
        FieldKind::Email => match text_value(value)? {
            None => None,
            Some(text) => {
                let text = text.trim().to_lowercase();
                if !looks_like_email(&text) {
                    return Err(problem(
                        pointer,
                        "email",
                        format!("{text:?} is not an email address"),
                    ));
                }
                Some(Value::String(text))
            }
        },
        FieldKind::Url => match text_value(value)? {
            None => None,
            Some(text) => {
                let text = text.trim().to_owned();
                if !looks_like_url(&text) {
                    return Err(problem(
                        pointer,
                        "url",
                        format!("{text:?} is not a URL such as https://example.com"),
                    ));
                }
                Some(Value::String(text))
            }
        },
        FieldKind::Integer => {
            let number = value
                .as_number()
                .ok_or_else(|| problem(pointer, "type", "expected a whole number"))?;
            let whole = number.as_i64().or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() <= MONEY_LIMIT as f64)
                    .map(|f| f as i64)
            });
            Some(Value::from(whole.ok_or_else(|| {
                problem(pointer, "type", "expected a whole number")
            })?))
        }
        FieldKind::Number | FieldKind::Percent => {
            let number = value
                .as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| problem(pointer, "type", "expected a number"))?;
            Some(Value::Number(Number::from_f64(number).ok_or_else(
                || problem(pointer, "type", "expected a number"),
            )?))
        }
        FieldKind::Money { scale, .. } => Some(Value::from(parse_money(value, *scale, pointer)?)),
        FieldKind::Boolean => {
            Some(Value::Bool(value.as_bool().ok_or_else(|| {
                problem(pointer, "type", "expected true or false")
            })?))
        }
        FieldKind::Date => match text_value(value)? {
            None => None,
            Some(text) => Some(Value::String(
                parse_date(&text, pointer)?.format("%Y-%m-%d").to_string(),
            )),
        },
        FieldKind::DateTime => match text_value(value)? {
            None => None,
            Some(text) => Some(Value::String(parse_datetime(&text, pointer)?)),
        },
        FieldKind::SingleSelect { options } => match text_value(value)? {
            None => None,
            Some(text) => {
                if !options.contains(&text) {
                    return Err(problem(
                        pointer,
                        "option",
                        format!("{text:?} is not one of the options: {}", options.join(", ")),
                    ));
                }
                Some(Value::String(text))
            }
        },
        FieldKind::MultiSelect { options } => {
            let items = value
                .as_array()
                .ok_or_else(|| problem(pointer, "type", "expected a list of options"))?;
            let mut chosen: Vec<String> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{pointer}/{i}");
                let text = as_text(item, &at)?;
                if !options.iter().any(|o| o == text) {
                    return Err(problem(
                        &at,
                        "option",
                        format!("{text:?} is not one of the options: {}", options.join(", ")),
                    ));
                }
                if chosen.iter().any(|c| c == text) {
                    return Err(problem(
                        &at,
                        "duplicate",
                        format!("{text:?} is listed twice"),
                    ));
                }
                chosen.push(text.to_owned());
            }
            (!chosen.is_empty()).then(|| Value::from(chosen))
        }
        FieldKind::Reference { .. } | FieldKind::User => match text_value(value)? {
            None => None,
            Some(text) => Some(Value::String(
                Uuid::parse_str(text.trim())
                    .map_err(|_| {
                        problem(pointer, "format", format!("{text:?} is not a record id"))
                    })?
                    .to_string(),
            )),
        },
        FieldKind::Attachment { max_files, .. } => {
            let items = value
                .as_array()
                .ok_or_else(|| problem(pointer, "type", "expected a list of attachment ids"))?;
            if items.len() > *max_files {
                return Err(problem(
                    pointer,
                    "max_files",
                    format!("at most {max_files} files"),
                ));
            }
            let mut ids: Vec<String> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{pointer}/{i}");
                let text = match item {
                    Value::String(s) => s.as_str(),
                    Value::Object(map) => map.get("id").and_then(Value::as_str).unwrap_or_default(),
                    _ => "",
                };
                let id = Uuid::parse_str(text)
                    .map_err(|_| problem(&at, "format", "expected an attachment id (or {id})"))?
                    .to_string();
                if ids.contains(&id) {
                    return Err(problem(&at, "duplicate", "this file is listed twice"));
                }
                ids.push(id);
            }
            // The records layer replaces each id by the file's description before storing.
            (!ids.is_empty()).then(|| Value::from(ids))
        }
        FieldKind::SubTable { columns, .. } => {
            let items = value
                .as_array()
                .ok_or_else(|| problem(pointer, "type", "expected a list of rows"))?;
            if items.len() > MAX_ROWS {
                return Err(problem(
                    pointer,
                    "max_rows",
                    format!("at most {MAX_ROWS} rows"),
                ));
            }
            let mut rows = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = format!("{pointer}/{i}");
                let cells = item
                    .as_object()
                    .ok_or_else(|| problem(&at, "type", "a row is an object of columns"))?;
                let mut row = Map::new();
                for (key, cell) in cells {
                    let cell_pointer = format!("{at}/{}", escape(key));
                    let column = columns.iter().find(|c| &c.key == key).ok_or_else(|| {
                        problem(
                            &cell_pointer,
                            "unknown_field",
                            format!("the rows have no column {key:?}"),
                        )
                    })?;
                    if let Some(stored) = encode(column, cell, &cell_pointer)? {
                        row.insert(key.clone(), stored);
                    }
                }
                rows.push(Value::Object(row));
            }
            (!rows.is_empty()).then(|| Value::Array(rows))
        }
        FieldKind::AutoNumber { .. } => {
            return Err(problem(
                pointer,
                "read_only",
                format!("{} fields are computed by Formwork", field.kind_name()),
            ));
        }
    })
}

/// The API form of a stored value.
pub fn decode(field: &Field, stored: &Value) -> Value {
    match (&field.kind, stored) {
        (FieldKind::SubTable { columns, .. }, Value::Array(rows)) => Value::Array(
            rows.iter()
                .map(|row| {
                    Value::Object(
                        columns
                            .iter()
                            .filter_map(|c| row.get(&c.key).map(|v| (c.key.clone(), decode(c, v))))
                            .collect(),
                    )
                })
                .collect(),
        ),
        (FieldKind::Money { scale, .. }, Value::Number(n)) => {
            n.as_i64().map_or(Value::Null, |minor| {
                Value::String(format_money(minor, *scale))
            })
        }
        _ => stored.clone(),
    }
}

/// The form the entity's JSON Schema sees (the API form, with money as a number of major units
/// so `minimum` and `multipleOf` apply).
pub fn for_validation(field: &Field, stored: &Value) -> Value {
    match (&field.kind, stored) {
        (FieldKind::SubTable { columns, .. }, Value::Array(rows)) => Value::Array(
            rows.iter()
                .map(|row| {
                    Value::Object(
                        columns
                            .iter()
                            .filter_map(|c| {
                                row.get(&c.key)
                                    .map(|v| (c.key.clone(), for_validation(c, v)))
                            })
                            .collect(),
                    )
                })
                .collect(),
        ),
        (FieldKind::Attachment { .. }, Value::Array(files)) => Value::Array(
            files
                .iter()
                .map(|f| f.get("id").cloned().unwrap_or_else(|| f.clone()))
                .collect(),
        ),
        (FieldKind::Money { scale, .. }, Value::Number(n)) => n
            .as_i64()
            .and_then(|minor| Number::from_f64(minor as f64 / 10f64.powi(*scale as i32)))
            .map_or(Value::Null, Value::Number),
        _ => stored.clone(),
    }
}

/// The API form of a whole stored document: declared, visible fields only.
pub fn decode_doc(model: &EntityModel, doc: &Map<String, Value>) -> Map<String, Value> {
    model
        .fields
        .iter()
        .filter(|f| !f.hidden)
        .filter_map(|f| doc.get(&f.key).map(|v| (f.key.clone(), decode(f, v))))
        .collect()
}

/// The stored values of fields that are no longer visible (hidden or removed), kept for admins.
pub fn hidden_values(model: &EntityModel, doc: &Map<String, Value>) -> Map<String, Value> {
    doc.iter()
        .filter(|(key, _)| !key.starts_with('_'))
        .filter(|(key, _)| model.field(key).is_none_or(|f| f.hidden))
        .map(|(key, value)| {
            let shown = model.field(key).map_or(value.clone(), |f| decode(f, value));
            (key.clone(), shown)
        })
        .collect()
}

/// The document the validator checks: declared fields in validation form.
pub fn validation_doc(model: &EntityModel, doc: &Map<String, Value>) -> Value {
    Value::Object(
        model
            .fields
            .iter()
            .filter_map(|f| {
                doc.get(&f.key)
                    .map(|v| (f.key.clone(), for_validation(f, v)))
            })
            .collect(),
    )
}

/// A stored value as a query scalar of its field's comparison type.
pub fn scalar_of(field: &Field, stored: &Value) -> Option<Scalar> {
    use crate::definitions::ValueType;
    match (field.kind.value_type(), stored) {
        (ValueType::Text, Value::String(s)) => Some(Scalar::Text(s.clone())),
        (ValueType::Integer, Value::Number(n)) => n.as_i64().map(Scalar::Int),
        (ValueType::Real, Value::Number(n)) => n.as_f64().map(Scalar::Real),
        (ValueType::Boolean, Value::Bool(b)) => Some(Scalar::Bool(*b)),
        _ => None,
    }
}

/// Escapes a key for a JSON pointer.
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The document key holding sub-table totals (`{field: {column: value}}`, stored form).
pub const TOTALS: &str = "_totals";

/// Recomputes the totals of every sub-table field of a stored document (money sums stay exact
/// in minor units; a money average is rounded to the currency's minor unit).
pub fn apply_totals(model: &EntityModel, doc: &mut Map<String, Value>) {
    use crate::domain::query::MetricOp;
    let mut all = Map::new();
    for field in &model.fields {
        let FieldKind::SubTable { columns, totals } = &field.kind else {
            continue;
        };
        let Some(rows) = doc.get(&field.key).and_then(Value::as_array) else {
            continue;
        };
        let mut out = Map::new();
        for (key, op) in totals {
            let Some(column) = columns.iter().find(|c| &c.key == key) else {
                continue;
            };
            let cells: Vec<&Value> = rows.iter().filter_map(|r| r.get(key)).collect();
            let integers: Option<Vec<i64>> = cells.iter().map(|v| v.as_i64()).collect();
            let reals: Vec<f64> = cells.iter().filter_map(|v| v.as_f64()).collect();
            let exact = matches!(column.kind, FieldKind::Integer | FieldKind::Money { .. });
            let value = match op {
                MetricOp::Count => Some(Value::from(cells.len())),
                _ if cells.is_empty() => None,
                MetricOp::Sum if exact => integers
                    .and_then(|v| v.iter().try_fold(0i64, |a, b| a.checked_add(*b)))
                    .map(Value::from),
                MetricOp::Sum => {
                    serde_json::Number::from_f64(reals.iter().sum()).map(Value::Number)
                }
                MetricOp::Avg => {
                    let mean = reals.iter().sum::<f64>() / reals.len().max(1) as f64;
                    if matches!(column.kind, FieldKind::Money { .. }) {
                        Some(Value::from(mean.round() as i64))
                    } else {
                        serde_json::Number::from_f64(mean).map(Value::Number)
                    }
                }
                MetricOp::Min | MetricOp::Max => {
                    let mut sorted = cells.clone();
                    sorted.sort_by(|a, b| match (a.as_f64(), b.as_f64()) {
                        (Some(x), Some(y)) => {
                            x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
                        }
                        _ => a.to_string().cmp(&b.to_string()),
                    });
                    let pick = if *op == MetricOp::Min {
                        sorted.first()
                    } else {
                        sorted.last()
                    };
                    pick.map(|v| (*v).clone())
                }
            };
            if let Some(value) = value {
                out.insert(key.clone(), value);
            }
        }
        if !out.is_empty() {
            all.insert(field.key.clone(), Value::Object(out));
        }
    }
    if all.is_empty() {
        doc.remove(TOTALS);
    } else {
        doc.insert(TOTALS.to_owned(), Value::Object(all));
    }
}

/// The API form of a document's sub-table totals.
pub fn decode_totals(model: &EntityModel, doc: &Map<String, Value>) -> Option<Map<String, Value>> {
    let totals = doc.get(TOTALS)?.as_object()?;
    let mut out = Map::new();
    for (key, values) in totals {
        let Some(FieldKind::SubTable {
            columns,
            totals: ops,
        }) = model.field(key).filter(|f| !f.hidden).map(|f| &f.kind)
        else {
            continue;
        };
        let Some(values) = values.as_object() else {
            continue;
        };
        let shown: Map<String, Value> = values
            .iter()
            .filter_map(|(column_key, value)| {
                let column = columns.iter().find(|c| &c.key == column_key)?;
                let is_count = ops
                    .iter()
                    .any(|(k, op)| k == column_key && *op == crate::domain::query::MetricOp::Count);
                Some((
                    column_key.clone(),
                    if is_count {
                        value.clone()
                    } else {
                        decode(column, value)
                    },
                ))
            })
            .collect();
        out.insert(key.clone(), Value::Object(shown));
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(kind: FieldKind) -> Field {
        Field::plain("f", kind)
    }

    fn money(scale: u32) -> Field {
        field(FieldKind::Money {
            currency: "CNY".to_owned(),
            scale,
        })
    }

    #[test]
    fn money_is_exact_in_minor_units() {
        let cny = money(2);
        assert_eq!(encode(&cny, &json!("1234.5"), ""), Ok(Some(json!(123450))));
        assert_eq!(encode(&cny, &json!(0.1), ""), Ok(Some(json!(10))));
        assert_eq!(encode(&cny, &json!("12.300"), ""), Ok(Some(json!(1230))));
        assert_eq!(encode(&cny, &json!(-5), ""), Ok(Some(json!(-500))));
        assert_eq!(encode(&cny, &json!(1e5), ""), Ok(Some(json!(10_000_000))));
        assert!(encode(&cny, &json!("1.234"), "/fields/f").is_err());
        assert!(encode(&cny, &json!("1,000"), "").is_err());
        assert!(encode(&cny, &json!("."), "").is_err());
        assert!(encode(&cny, &json!("99999999999999999999"), "").is_err());
        assert!(encode(&cny, &json!(true), "").is_err());
        assert_eq!(decode(&cny, &json!(123450)), json!("1234.50"));
        assert_eq!(decode(&cny, &json!(-5)), json!("-0.05"));
        assert_eq!(decode(&money(0), &json!(1200)), json!("1200"));
        assert_eq!(for_validation(&cny, &json!(123450)), json!(1234.5));
    }

    #[test]
    fn money_round_trips() {
        for minor in [
            0i64,
            1,
            9,
            10,
            99,
            100,
            123_456_789,
            -42,
            MONEY_LIMIT,
            -MONEY_LIMIT,
        ] {
            for scale in [0, 2, 3] {
                let text = format_money(minor, scale);
                assert_eq!(parse_money(&json!(text), scale, ""), Ok(minor), "{text}");
            }
        }
    }

    #[test]
    fn datetimes_are_canonical_utc() {
        let dt = field(FieldKind::DateTime);
        assert_eq!(
            encode(&dt, &json!("2026-11-25T09:30:00+08:00"), ""),
            Ok(Some(json!("2026-11-25T01:30:00.000Z")))
        );
        assert!(encode(&dt, &json!("2026-11-25 09:30"), "").is_err());
        let date = field(FieldKind::Date);
        assert!(encode(&date, &json!("2026-02-30"), "").is_err());
        assert!(encode(&date, &json!("2026-2-3"), "").is_err());
    }

    #[test]
    fn text_kinds_normalise_and_refuse() {
        assert_eq!(encode(&field(FieldKind::Text), &json!("  "), ""), Ok(None));
        assert_eq!(
            encode(&field(FieldKind::Email), &json!(" Li.Na@Example.COM "), ""),
            Ok(Some(json!("li.na@example.com")))
        );
        assert!(encode(&field(FieldKind::Email), &json!("nope"), "").is_err());
        assert!(encode(&field(FieldKind::Phone), &json!("call me"), "").is_err());
        assert!(encode(&field(FieldKind::Url), &json!("example.com"), "").is_err());
        assert!(encode(&field(FieldKind::Integer), &json!(1.5), "").is_err());
        assert_eq!(
            encode(&field(FieldKind::Integer), &json!(3.0), ""),
            Ok(Some(json!(3)))
        );
        let select = field(FieldKind::MultiSelect {
            options: vec!["a".to_owned(), "b".to_owned()],
        });
        assert!(encode(&select, &json!(["a", "a"]), "").is_err());
        assert!(encode(&select, &json!(["c"]), "").is_err());
        assert_eq!(encode(&select, &json!([]), ""), Ok(None));
        let reference = field(FieldKind::Reference {
            entity: "x".to_owned(),
            on_delete: crate::definitions::OnDelete::Restrict,
        });
        assert!(encode(&reference, &json!("not-a-uuid"), "").is_err());
    }
}
