//! Records as scripts see them, and script results back as field values: money is an exact
//! decimal (never a float), integers are integers, dates and datetimes are their ISO text,
//! references and users are ids, multi-selects are arrays, sub-table rows are maps, and an empty
//! field is `()`.

use rhai::{Array, Dynamic, Map as RhaiMap};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::definitions::{EntityModel, Field, FieldKind};

/// The record map (`record` in scripts) of a stored document: every field of the entity, empty
/// ones as `()`.
pub fn record(model: &EntityModel, doc: &Map<String, Value>) -> Dynamic {
    Dynamic::from_map(record_map(model, doc))
}

/// [`record`] as a map, to change before it is handed to a script.
pub fn record_map(model: &EntityModel, doc: &Map<String, Value>) -> RhaiMap {
    let mut map = RhaiMap::new();
    for field in &model.fields {
        map.insert(
            field.key.as_str().into(),
            doc.get(&field.key)
                .map_or(Dynamic::UNIT, |stored| field_value(field, stored)),
        );
    }
    map
}

/// The record map of fields in their API form (as a record view shows them): money from its
/// decimal text, the rest as stored.
pub fn record_from_api(model: &EntityModel, fields: &Map<String, Value>) -> Dynamic {
    let mut map = RhaiMap::new();
    for field in &model.fields {
        let value = fields
            .get(&field.key)
            .map_or(Dynamic::UNIT, |v| api_value(field, v));
        map.insert(field.key.as_str().into(), value);
    }
    Dynamic::from_map(map)
}

/// One field's API value as a script value (money from its decimal text).
pub fn api_value(field: &Field, value: &Value) -> Dynamic {
    match (&field.kind, value) {
        (_, Value::Null) => Dynamic::UNIT,
        (FieldKind::Money { .. }, Value::String(text)) => text
            .parse::<Decimal>()
            .map_or(Dynamic::UNIT, Dynamic::from_decimal),
        (FieldKind::Money { .. }, Value::Number(n)) => n
            .as_i64()
            .map(Decimal::from)
            .map_or(Dynamic::UNIT, Dynamic::from_decimal),
        (_, value) => field_value(field, value),
    }
}

/// A script value as JSON (decimals as their exact text).
pub fn to_json(value: &Dynamic) -> Value {
    if value.is_unit() {
        Value::Null
    } else if let Ok(b) = value.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = value.as_int() {
        Value::from(i)
    } else if let Ok(f) = value.as_float() {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    } else if let Ok(d) = value.as_decimal() {
        Value::String(d.to_string())
    } else if value.is_string() {
        Value::String(value.to_string())
    } else if value.is_array() {
        Value::Array(
            value
                .clone()
                .into_array()
                .unwrap_or_default()
                .iter()
                .map(to_json)
                .collect(),
        )
    } else if value.is_map() {
        Value::Object(
            value
                .clone()
                .try_cast::<RhaiMap>()
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        )
    } else {
        Value::String(value.to_string())
    }
}

/// One stored value as a script value.
pub fn field_value(field: &Field, stored: &Value) -> Dynamic {
    match (&field.kind, stored) {
        (_, Value::Null) => Dynamic::UNIT,
        (FieldKind::Money { scale, .. }, Value::Number(n)) => {
            n.as_i64().map_or(Dynamic::UNIT, |minor| {
                Dynamic::from_decimal(Decimal::new(minor, *scale))
            })
        }
        (FieldKind::Integer, Value::Number(n)) => {
            n.as_i64().map_or(Dynamic::UNIT, Dynamic::from_int)
        }
        (FieldKind::Number | FieldKind::Percent, Value::Number(n)) => {
            n.as_f64().map_or(Dynamic::UNIT, Dynamic::from_float)
        }
        (FieldKind::SubTable { columns, .. }, Value::Array(rows)) => {
            let rows: Array = rows
                .iter()
                .map(|row| {
                    let mut map = RhaiMap::new();
                    for column in columns {
                        map.insert(
                            column.key.as_str().into(),
                            row.get(&column.key)
                                .map_or(Dynamic::UNIT, |v| field_value(column, v)),
                        );
                    }
                    Dynamic::from_map(map)
                })
                .collect();
            Dynamic::from_array(rows)
        }
        (_, other) => json(other),
    }
}

/// A JSON value as a script value (numbers: integers stay integers).
fn json(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => n.as_f64().map_or(Dynamic::UNIT, Dynamic::from_float),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(items) => Dynamic::from_array(items.iter().map(json).collect()),
        Value::Object(map) => Dynamic::from_map(
            map.iter()
                .map(|(k, v)| (k.as_str().into(), json(v)))
                .collect(),
        ),
    }
}

/// A script's result as the API form of a field of `kind` (what a formula field would store
/// through the codec): `None` when the result's type does not fit the kind, so the caller can
/// say which type it got.
pub fn to_field(kind: &FieldKind, result: &Dynamic) -> Option<Value> {
    if result.is_unit() {
        return Some(Value::Null);
    }
    match kind {
        FieldKind::Money { scale, .. } => {
            let decimal = if let Ok(d) = result.as_decimal() {
                d
            } else if let Ok(i) = result.as_int() {
                Decimal::from(i)
            } else {
                return None;
            };
            Some(Value::String(
                decimal
                    .round_dp_with_strategy(
                        *scale,
                        rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                    )
                    .to_string(),
            ))
        }
        FieldKind::Integer => result.as_int().ok().map(Value::from),
        FieldKind::Number | FieldKind::Percent => {
            let number = if let Ok(f) = result.as_float() {
                f
            } else if let Ok(i) = result.as_int() {
                i as f64
            } else if let Ok(d) = result.as_decimal() {
                rust_decimal::prelude::ToPrimitive::to_f64(&d)?
            } else {
                return None;
            };
            serde_json::Number::from_f64(number).map(Value::Number)
        }
        FieldKind::Boolean => result.as_bool().ok().map(Value::Bool),
        FieldKind::Text
        | FieldKind::LongText
        | FieldKind::Email
        | FieldKind::Phone
        | FieldKind::Url
        | FieldKind::Date
        | FieldKind::DateTime
        | FieldKind::SingleSelect { .. } => result
            .clone()
            .into_immutable_string()
            .ok()
            .map(|s| Value::String(s.to_string())),
        _ => None,
    }
}

/// The script type name of a value, for errors ("the formula returned a string").
pub fn type_name(value: &Dynamic) -> &'static str {
    if value.is_unit() {
        "nothing"
    } else if value.is_int() {
        "an integer"
    } else if value.is_float() {
        "a number"
    } else if value.is_decimal() {
        "a decimal"
    } else if value.is_bool() {
        "a boolean"
    } else if value.is_string() {
        "a string"
    } else if value.is_array() {
        "an array"
    } else if value.is_map() {
        "a map"
    } else {
        "a value"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::ScriptEngine;
    use serde_json::json;

    fn field(key: &str, kind: FieldKind) -> Field {
        Field::plain(key, kind)
    }

    #[test]
    fn money_is_exact_and_types_round_trip() {
        let money = FieldKind::Money {
            currency: "CNY".to_owned(),
            scale: 2,
        };
        let budget = field("budget", money.clone());
        let value = field_value(&budget, &json!(12_800_050));
        assert_eq!(
            value.as_decimal().map(|d| d.to_string()),
            Ok("128000.50".to_owned())
        );
        let engine = ScriptEngine::default();
        let script = engine.compile("budget * 3 / 10", "/f").expect("compiles");
        let result = engine
            .eval(&script, vec![("budget", value)], "/f")
            .expect("runs");
        assert_eq!(to_field(&money, &result), Some(json!("38400.15")));
        assert_eq!(to_field(&FieldKind::Integer, &Dynamic::from("x")), None);
        assert_eq!(type_name(&Dynamic::from("x")), "a string");
        assert_eq!(
            to_field(&FieldKind::Integer, &Dynamic::UNIT),
            Some(Value::Null)
        );
        let count = field("n", FieldKind::Integer);
        assert_eq!(field_value(&count, &json!(7)).as_int(), Ok(7));
        let text = field("t", FieldKind::Text);
        assert_eq!(
            field_value(&text, &json!("王芳"))
                .into_immutable_string()
                .map(|s| s.to_string()),
            Ok("王芳".to_owned())
        );
    }
}
