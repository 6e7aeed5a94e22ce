//! The entity designer's edits: what a person does in the no-code designer (add a field, change
//! one, reorder, hide, restore, relabel the entity, require a field under a condition), applied
//! to an entity document. Pure functions over JSON: the result is the same document the API and
//! the files hold, saved as a draft and checked by the same meta-schema.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::FieldError;

/// The kinds the designer offers (computed kinds, sub-tables and rollups are edited as JSON).
pub const DESIGNER_KINDS: [&str; 19] = [
    "text",
    "long_text",
    "integer",
    "number",
    "money",
    "percent",
    "boolean",
    "date",
    "datetime",
    "email",
    "phone",
    "url",
    "single_select",
    "multi_select",
    "reference",
    "user",
    "attachment",
    "auto_number",
    "formula",
];

/// The kinds a formula's value may have (`x-result`).
pub const RESULT_KINDS: [&str; 9] = [
    "text",
    "integer",
    "number",
    "money",
    "percent",
    "boolean",
    "date",
    "datetime",
    "single_select",
];

/// One option of a select field as the designer edits it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OptionSpec {
    /// Stored value.
    pub value: String,
    /// English label.
    pub label_en: String,
    /// Chinese label.
    pub label_zh: String,
    /// Colour (`#rrggbb`), if any.
    pub color: String,
}

/// A field as the designer's form edits it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FieldSpec {
    /// Key (fixed once the field exists).
    pub key: String,
    /// Kind (`x-kind`).
    pub kind: String,
    /// English label.
    pub label_en: String,
    /// Chinese label.
    pub label_zh: String,
    /// English help text.
    pub help_en: String,
    /// Chinese help text.
    pub help_zh: String,
    /// Required on every record.
    pub required: bool,
    /// Unique among live records.
    pub unique: bool,
    /// Indexed for filters and sorts.
    pub indexed: bool,
    /// Hidden (kept, not shown).
    pub hidden: bool,
    /// Found by global search (`x-search`; none: as by default, names, emails and phones).
    pub search: Option<bool>,
    /// Options of a select.
    pub options: Vec<OptionSpec>,
    /// Target entity of a reference.
    pub reference: String,
    /// What deleting the target does (`restrict`, `set_null`, `cascade`).
    pub on_delete: String,
    /// Currency of a money field.
    pub currency: String,
    /// Least number.
    pub minimum: String,
    /// Greatest number.
    pub maximum: String,
    /// Least length of text.
    pub min_length: String,
    /// Greatest length of text.
    pub max_length: String,
    /// Regular expression text must match.
    pub pattern: String,
    /// Default value (as typed).
    pub default: String,
    /// Pattern of an auto-number.
    pub number_pattern: String,
    /// A formula's script (`x-formula`).
    pub formula: String,
    /// The kind of a formula's value (`x-result`).
    pub result: String,
    /// Whether the kind is computed or structured (formula, rollup, sub-table): only its
    /// labels, help and flags are edited here.
    pub locked_kind: bool,
}

/// A change to an entity document.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Adds a field at the end.
    AddField(FieldSpec),
    /// Changes an existing field.
    UpdateField(FieldSpec),
    /// Moves a field one place up (`-1`) or down (`1`).
    MoveField {
        /// The field.
        key: String,
        /// Direction.
        by: i32,
    },
    /// Puts the fields in this order (keys not named keep their relative order at the end).
    Reorder(Vec<String>),
    /// Hides or restores a field.
    SetHidden {
        /// The field.
        key: String,
        /// Hidden or not.
        hidden: bool,
    },
    /// Relabels the entity and picks its title field.
    Entity {
        /// English label.
        label_en: String,
        /// Chinese label.
        label_zh: String,
        /// English plural.
        plural_en: String,
        /// Chinese plural.
        plural_zh: String,
        /// Title field.
        title_field: String,
    },
    /// Makes `field` required when `when` equals `equals` (a JSON Schema if/then), or removes
    /// that rule when `equals` is empty.
    RequireWhen {
        /// The field required.
        field: String,
        /// The field tested.
        when: String,
        /// The value it must equal.
        equals: String,
    },
}

/// A new entity's first document: a name field as its title.
pub fn new_entity(label_en: &str, label_zh: &str) -> Value {
    let mut label = json!({"en": label_en.trim()});
    if !label_zh.trim().is_empty() {
        label["zh-CN"] = json!(label_zh.trim());
    }
    json!({
        "type": "object",
        "x-label": label,
        "x-title-field": "name",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 200, "x-kind": "text", "x-label": {"en": "Name", "zh-CN": "名称"}, "x-indexed": true}
        }
    })
}

fn text_of(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn label_part(value: Option<&Value>, tag: &str) -> String {
    text_of(value.and_then(|v| v.get(tag)))
}

/// The designer's view of field `key` of `doc`.
pub fn field_spec(doc: &Value, key: &str) -> Option<FieldSpec> {
    let property = doc.pointer(&format!("/properties/{key}"))?;
    let kind = text_of(property.get("x-kind"));
    let required = doc
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|k| k == key));
    let options = property
        .get("x-options")
        .and_then(Value::as_array)
        .map(|options| {
            options
                .iter()
                .map(|o| OptionSpec {
                    value: text_of(o.get("value")),
                    label_en: label_part(o.get("label"), "en"),
                    label_zh: label_part(o.get("label"), "zh-CN"),
                    color: text_of(o.get("color")),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(FieldSpec {
        key: key.to_owned(),
        locked_kind: !DESIGNER_KINDS.contains(&kind.as_str()),
        kind,
        label_en: label_part(property.get("x-label"), "en"),
        label_zh: label_part(property.get("x-label"), "zh-CN"),
        help_en: label_part(property.get("x-help"), "en"),
        help_zh: label_part(property.get("x-help"), "zh-CN"),
        required,
        unique: property.get("x-unique") == Some(&Value::Bool(true)),
        indexed: property.get("x-indexed") == Some(&Value::Bool(true)),
        hidden: property.get("x-hidden") == Some(&Value::Bool(true)),
        search: property.get("x-search").and_then(Value::as_bool),
        options,
        reference: text_of(property.pointer("/x-reference/entity")),
        on_delete: text_of(property.pointer("/x-reference/on_delete")),
        currency: text_of(property.get("x-currency")),
        minimum: text_of(property.get("minimum")),
        maximum: text_of(property.get("maximum")),
        min_length: text_of(property.get("minLength")),
        max_length: text_of(property.get("maxLength")),
        pattern: text_of(property.get("pattern")),
        default: match property.get("x-default") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| text_of(Some(i)))
                .collect::<Vec<_>>()
                .join(", "),
            other => text_of(other),
        },
        number_pattern: text_of(property.pointer("/x-auto-number/pattern")),
        formula: text_of(property.get("x-formula")),
        result: text_of(property.get("x-result")),
    })
}

/// The keys of `doc`'s fields, in order.
pub fn field_keys(doc: &Value) -> Vec<String> {
    super::entity::field_order(doc)
}

/// Whether `key` is a valid field key.
fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && key.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn parse_number(text: &str, pointer: &str, problems: &mut Vec<FieldError>) -> Option<Value> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(n) = text.parse::<i64>() {
        return Some(json!(n));
    }
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() => Some(json!(n)),
        _ => {
            problems.push(FieldError::new(
                pointer,
                "number",
                format!("{text:?} is not a number"),
            ));
            None
        }
    }
}

fn parse_length(text: &str, pointer: &str, problems: &mut Vec<FieldError>) -> Option<Value> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match text.parse::<u32>() {
        Ok(n) => Some(json!(n)),
        Err(_) => {
            problems.push(FieldError::new(
                pointer,
                "length",
                format!("{text:?} is not a whole number of characters"),
            ));
            None
        }
    }
}

/// The value a typed default stands for, in the field's kind.
fn default_value(spec: &FieldSpec, problems: &mut Vec<FieldError>) -> Option<Value> {
    let text = spec.default.trim();
    if text.is_empty() {
        return None;
    }
    let pointer = "/field/default";
    match spec.kind.as_str() {
        "integer" | "number" | "money" | "percent" => parse_number(text, pointer, problems),
        "boolean" => match text {
            "true" | "yes" | "1" => Some(json!(true)),
            "false" | "no" | "0" => Some(json!(false)),
            _ => {
                problems.push(FieldError::new(
                    pointer,
                    "boolean",
                    "the default is true or false",
                ));
                None
            }
        },
        "multi_select" => Some(json!(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        )),
        "reference" | "user" | "attachment" | "auto_number" => {
            problems.push(FieldError::new(
                pointer,
                "no_default",
                format!("a {} field takes no default", spec.kind),
            ));
            None
        }
        _ => Some(json!(text)),
    }
}

/// The keywords the designer manages (the rest of a property is kept as it was).
const MANAGED: [&str; 24] = [
    "type",
    "format",
    "enum",
    "items",
    "uniqueItems",
    "x-kind",
    "x-label",
    "x-help",
    "x-options",
    "x-reference",
    "x-currency",
    "x-auto-number",
    "x-attachment",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "x-unique",
    "x-indexed",
    "x-search",
    "x-default",
    "x-formula",
    "x-result",
];

/// A label `{"en", "zh-CN"}` from its two texts (none when both are empty; a Chinese-only
/// label stands in for the English one every definition needs).
pub(crate) fn label_value(en: &str, zh: &str) -> Option<Value> {
    let (en, zh) = (en.trim(), zh.trim());
    if en.is_empty() && zh.is_empty() {
        return None;
    }
    let mut label = Map::new();
    // English is the label every definition needs; a Chinese-only label stands in for it.
    label.insert("en".to_owned(), json!(if en.is_empty() { zh } else { en }));
    if !zh.is_empty() {
        label.insert("zh-CN".to_owned(), json!(zh));
    }
    Some(Value::Object(label))
}

/// Builds the JSON Schema property of `spec` over `old` (the property as it was, if any).
fn property_of(
    spec: &FieldSpec,
    old: Option<&Value>,
    problems: &mut Vec<FieldError>,
) -> Map<String, Value> {
    let mut property: Map<String, Value> =
        old.and_then(Value::as_object).cloned().unwrap_or_default();
    if spec.locked_kind {
        // Computed and structured fields: labels, help and flags only.
        for key in ["x-label", "x-help", "x-unique", "x-indexed"] {
            property.remove(key);
        }
    } else {
        for key in MANAGED {
            property.remove(key);
        }
    }
    match label_value(&spec.label_en, &spec.label_zh) {
        Some(label) => {
            property.insert("x-label".to_owned(), label);
        }
        None => problems.push(FieldError::new(
            "/field/label_en",
            "required",
            "give the field a label",
        )),
    }
    if let Some(help) = label_value(&spec.help_en, &spec.help_zh) {
        property.insert("x-help".to_owned(), help);
    }
    if spec.unique {
        property.insert("x-unique".to_owned(), json!(true));
    }
    if spec.indexed {
        property.insert("x-indexed".to_owned(), json!(true));
    }
    if spec.locked_kind {
        return property;
    }
    let kind = spec.kind.as_str();
    if let Some(search) = spec.search {
        if matches!(kind, "text" | "long_text" | "email" | "phone" | "url") {
            property.insert("x-search".to_owned(), json!(search));
        } else if search {
            problems.push(FieldError::new(
                "/field/search",
                "field_kind",
                "only text, long text, email, phone and URL fields can be searched",
            ));
        }
    }
    if !DESIGNER_KINDS.contains(&kind) {
        problems.push(FieldError::new(
            "/field/kind",
            "enum",
            format!("pick one of the kinds offered (not {kind:?})"),
        ));
        return property;
    }
    property.insert("x-kind".to_owned(), json!(kind));
    if kind == "formula" {
        formula_property(spec, &mut property, problems);
        return property;
    }
    let text_like = matches!(kind, "text" | "long_text" | "email" | "phone" | "url");
    let (json_type, format) = match kind {
        "integer" => ("integer", None),
        "number" | "money" | "percent" => ("number", None),
        "boolean" => ("boolean", None),
        "date" => ("string", Some("date")),
        "datetime" => ("string", Some("date-time")),
        "email" => ("string", Some("email")),
        "url" => ("string", Some("uri")),
        "reference" | "user" => ("string", Some("uuid")),
        "multi_select" | "attachment" => ("array", None),
        _ => ("string", None),
    };
    property.insert("type".to_owned(), json!(json_type));
    if let Some(format) = format {
        property.insert("format".to_owned(), json!(format));
    }
    if text_like {
        let default_max = match kind {
            "long_text" => 10_000,
            "email" => 254,
            "phone" => 30,
            "url" => 2000,
            _ => 200,
        };
        let max = parse_length(&spec.max_length, "/field/max_length", problems)
            .unwrap_or(json!(default_max));
        property.insert("maxLength".to_owned(), max);
        if let Some(min) = parse_length(&spec.min_length, "/field/min_length", problems) {
            property.insert("minLength".to_owned(), min);
        }
        let pattern = spec.pattern.trim();
        if !pattern.is_empty() {
            if regex_ok(pattern) {
                property.insert("pattern".to_owned(), json!(pattern));
            } else {
                problems.push(FieldError::new(
                    "/field/pattern",
                    "pattern",
                    format!("{pattern:?} is not a valid regular expression"),
                ));
            }
        }
    }
    if matches!(kind, "integer" | "number" | "money" | "percent") {
        let min = parse_number(&spec.minimum, "/field/minimum", problems);
        let max = parse_number(&spec.maximum, "/field/maximum", problems);
        if let (Some(a), Some(b)) = (
            min.as_ref().and_then(Value::as_f64),
            max.as_ref().and_then(Value::as_f64),
        ) && a > b
        {
            problems.push(FieldError::new(
                "/field/maximum",
                "range",
                "the maximum is below the minimum",
            ));
        }
        if let Some(min) = min {
            property.insert("minimum".to_owned(), min);
        }
        if let Some(max) = max {
            property.insert("maximum".to_owned(), max);
        }
    }
    match kind {
        "money" => {
            let currency = spec.currency.trim().to_uppercase();
            let currency = if currency.is_empty() {
                "CNY".to_owned()
            } else {
                currency
            };
            if currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase()) {
                property.insert("x-currency".to_owned(), json!(currency));
            } else {
                problems.push(FieldError::new(
                    "/field/currency",
                    "currency",
                    "a currency is three letters, such as CNY or USD",
                ));
            }
        }
        "single_select" | "multi_select" => {
            let options = options_of(spec, problems);
            let values: Vec<Value> = options.iter().map(|o| o["value"].clone()).collect();
            if kind == "single_select" {
                property.insert("enum".to_owned(), Value::Array(values));
            } else {
                property.insert(
                    "items".to_owned(),
                    json!({"type": "string", "enum": values}),
                );
                property.insert("uniqueItems".to_owned(), json!(true));
            }
            property.insert("x-options".to_owned(), Value::Array(options));
        }
        "reference" => {
            let target = spec.reference.trim();
            if target.is_empty() {
                problems.push(FieldError::new(
                    "/field/reference",
                    "required",
                    "pick the entity the field refers to",
                ));
            }
            let on_delete = match spec.on_delete.as_str() {
                "" => "restrict",
                other => other,
            };
            if !matches!(on_delete, "restrict" | "set_null" | "cascade") {
                problems.push(FieldError::new(
                    "/field/on_delete",
                    "enum",
                    "restrict, set_null or cascade",
                ));
            }
            property.insert(
                "x-reference".to_owned(),
                json!({"entity": target, "on_delete": on_delete}),
            );
        }
        "attachment" => {
            property.insert(
                "x-attachment".to_owned(),
                json!({"max_size": 20_000_000, "max_files": 10}),
            );
        }
        "auto_number" => {
            let pattern = spec.number_pattern.trim();
            let pattern = if pattern.is_empty() {
                "{000000}"
            } else {
                pattern
            };
            property.insert("x-auto-number".to_owned(), json!({"pattern": pattern}));
        }
        _ => {}
    }
    if let Some(default) = default_value(spec, problems) {
        property.insert("x-default".to_owned(), default);
    }
    property
}

/// The keywords of a formula field: its script, the kind of its value and that kind's schema.
fn formula_property(
    spec: &FieldSpec,
    property: &mut Map<String, Value>,
    problems: &mut Vec<FieldError>,
) {
    let script = spec.formula.trim();
    if script.is_empty() {
        problems.push(FieldError::new(
            "/field/formula",
            "required",
            "write the formula",
        ));
    }
    property.insert("x-formula".to_owned(), json!(script));
    let result = match spec.result.trim() {
        "" => "number",
        other => other,
    };
    if !RESULT_KINDS.contains(&result) {
        problems.push(FieldError::new(
            "/field/result",
            "enum",
            format!("a formula gives one of: {}", RESULT_KINDS.join(", ")),
        ));
        return;
    }
    property.insert("x-result".to_owned(), json!(result));
    let json_type = match result {
        "integer" => "integer",
        "number" | "money" | "percent" => "number",
        "boolean" => "boolean",
        _ => "string",
    };
    property.insert("type".to_owned(), json!(json_type));
    if json_type == "integer" || json_type == "number" {
        let min = parse_number(&spec.minimum, "/field/minimum", problems);
        let max = parse_number(&spec.maximum, "/field/maximum", problems);
        if let Some(min) = min {
            property.insert("minimum".to_owned(), min);
        }
        if let Some(max) = max {
            property.insert("maximum".to_owned(), max);
        }
    }
    match result {
        "date" => {
            property.insert("format".to_owned(), json!("date"));
        }
        "datetime" => {
            property.insert("format".to_owned(), json!("date-time"));
        }
        "money" => {
            let currency = spec.currency.trim().to_uppercase();
            property.insert(
                "x-currency".to_owned(),
                json!(if currency.is_empty() {
                    "CNY".to_owned()
                } else {
                    currency
                }),
            );
        }
        "single_select" => {
            let options = options_of(spec, problems);
            let values: Vec<Value> = options.iter().map(|o| o["value"].clone()).collect();
            property.insert("enum".to_owned(), Value::Array(values));
            property.insert("x-options".to_owned(), Value::Array(options));
        }
        _ => {}
    }
}

/// Whether a pattern compiles as a regular expression (the validator's dialect).
fn regex_ok(pattern: &str) -> bool {
    jsonschema::validator_for(&json!({"type": "string", "pattern": pattern})).is_ok()
}

fn options_of(spec: &FieldSpec, problems: &mut Vec<FieldError>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, option) in spec.options.iter().enumerate() {
        let value = option.value.trim();
        if value.is_empty() {
            if !option.label_en.trim().is_empty() || !option.label_zh.trim().is_empty() {
                problems.push(FieldError::new(
                    format!("/field/options/{i}/value"),
                    "required",
                    "an option needs a value",
                ));
            }
            continue;
        }
        if !seen.insert(value.to_owned()) {
            problems.push(FieldError::new(
                format!("/field/options/{i}/value"),
                "duplicate",
                format!("the option {value:?} is there twice"),
            ));
            continue;
        }
        let label =
            label_value(&option.label_en, &option.label_zh).unwrap_or_else(|| json!({"en": value}));
        let mut entry = json!({"value": value, "label": label});
        let color = option.color.trim();
        if !color.is_empty() {
            if color.len() == 7
                && color.starts_with('#')
                && color[1..].chars().all(|c| c.is_ascii_hexdigit())
            {
                entry["color"] = json!(color.to_lowercase());
            } else {
                problems.push(FieldError::new(
                    format!("/field/options/{i}/color"),
                    "color",
                    "a colour is #rrggbb",
                ));
            }
        }
        out.push(entry);
    }
    if out.is_empty() {
        problems.push(FieldError::new(
            "/field/options",
            "required",
            "a select field needs at least one option",
        ));
    }
    out
}

fn set_required(doc: &mut Value, key: &str, required: bool) {
    let Some(object) = doc.as_object_mut() else {
        return;
    };
    let list = object
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = list {
        items.retain(|k| k != key);
        if required {
            items.push(json!(key));
        }
        if items.is_empty() {
            object.remove("required");
        }
    }
}

fn properties_mut(doc: &mut Value) -> Option<&mut Map<String, Value>> {
    doc.get_mut("properties").and_then(Value::as_object_mut)
}

/// Applies `edit` to the entity document `doc`; on problems (pointers under `/field`,
/// `/entity` or `/rule`) nothing is changed.
///
/// # Errors
/// Every problem found.
pub fn apply(doc: &mut Value, edit: &Edit) -> Result<(), Vec<FieldError>> {
    let mut next = doc.clone();
    let mut problems = Vec::new();
    match edit {
        Edit::AddField(spec) => {
            let key = spec.key.trim();
            if !valid_key(key) {
                problems.push(FieldError::new(
                    "/field/key",
                    "key",
                    "a key starts with a lowercase letter, then lowercase letters, digits or _ (at most 63)",
                ));
            } else if next.pointer(&format!("/properties/{key}")).is_some() {
                problems.push(FieldError::new(
                    "/field/key",
                    "taken",
                    format!("the entity already has a field {key:?} (hidden fields too)"),
                ));
            }
            let spec = FieldSpec {
                key: key.to_owned(),
                locked_kind: false,
                ..spec.clone()
            };
            let property = property_of(&spec, None, &mut problems);
            if problems.is_empty() {
                if next.get("properties").is_none() {
                    next["properties"] = json!({});
                }
                let order = field_keys(&next);
                if let Some(properties) = properties_mut(&mut next) {
                    properties.insert(key.to_owned(), Value::Object(property));
                }
                if next.get(super::entity::FIELD_ORDER).is_some() {
                    let mut order = order;
                    order.push(key.to_owned());
                    reorder(&mut next, &order);
                }
                set_required(&mut next, key, spec.required);
            }
        }
        Edit::UpdateField(spec) => {
            let Some(old) = next.pointer(&format!("/properties/{}", spec.key)).cloned() else {
                return Err(vec![FieldError::new(
                    "/field/key",
                    "unknown_field",
                    format!("the entity has no field {:?}", spec.key),
                )]);
            };
            let old_kind = text_of(old.get("x-kind"));
            let spec = FieldSpec {
                locked_kind: !DESIGNER_KINDS.contains(&old_kind.as_str()),
                ..spec.clone()
            };
            let mut property = property_of(&spec, Some(&old), &mut problems);
            if spec.hidden {
                property.insert("x-hidden".to_owned(), json!(true));
            } else {
                property.remove("x-hidden");
            }
            if problems.is_empty() {
                if let Some(properties) = properties_mut(&mut next) {
                    properties.insert(spec.key.clone(), Value::Object(property));
                }
                set_required(&mut next, &spec.key, spec.required);
            }
        }
        Edit::MoveField { key, by } => {
            let mut keys = field_keys(&next);
            let Some(at) = keys.iter().position(|k| k == key) else {
                return Err(vec![unknown(key)]);
            };
            let to = (at as i64 + i64::from(*by)).clamp(0, keys.len() as i64 - 1) as usize;
            let moved = keys.remove(at);
            keys.insert(to, moved);
            reorder(&mut next, &keys);
        }
        Edit::Reorder(order) => {
            for (i, key) in order.iter().enumerate() {
                if next.pointer(&format!("/properties/{key}")).is_none() {
                    problems.push(FieldError::new(
                        format!("/order/{i}"),
                        "unknown_field",
                        format!("the entity has no field {key:?}"),
                    ));
                }
            }
            if problems.is_empty() {
                reorder(&mut next, order);
            }
        }
        Edit::SetHidden { key, hidden } => {
            let Some(property) = properties_mut(&mut next).and_then(|p| p.get_mut(key)) else {
                return Err(vec![unknown(key)]);
            };
            if let Some(property) = property.as_object_mut() {
                if *hidden {
                    property.insert("x-hidden".to_owned(), json!(true));
                } else {
                    property.remove("x-hidden");
                }
            }
            if *hidden && next.get("x-title-field").and_then(Value::as_str) == Some(key) {
                problems.push(FieldError::new(
                    "/field/hidden",
                    "title_field",
                    "the title field cannot be hidden; pick another title first",
                ));
            }
            if *hidden {
                // A hidden field cannot be filled in, so it cannot stay required.
                set_required(&mut next, key, false);
            }
        }
        Edit::Entity {
            label_en,
            label_zh,
            plural_en,
            plural_zh,
            title_field,
        } => {
            match label_value(label_en, label_zh) {
                Some(label) => next["x-label"] = label,
                None => problems.push(FieldError::new(
                    "/entity/label_en",
                    "required",
                    "give the entity a label",
                )),
            }
            match label_value(plural_en, plural_zh) {
                Some(plural) => next["x-label-plural"] = plural,
                None => {
                    if let Some(object) = next.as_object_mut() {
                        object.remove("x-label-plural");
                    }
                }
            }
            let title = title_field.trim();
            if title.is_empty() {
                if let Some(object) = next.as_object_mut() {
                    object.remove("x-title-field");
                }
            } else if next.pointer(&format!("/properties/{title}")).is_some() {
                next["x-title-field"] = json!(title);
            } else {
                problems.push(FieldError::new(
                    "/entity/title_field",
                    "unknown_field",
                    format!("the entity has no field {title:?}"),
                ));
            }
        }
        Edit::RequireWhen {
            field,
            when,
            equals,
        } => require_when(&mut next, field, when, equals, &mut problems),
    }
    if problems.is_empty() {
        *doc = next;
        Ok(())
    } else {
        Err(problems)
    }
}

fn unknown(key: &str) -> FieldError {
    FieldError::new(
        "/field/key",
        "unknown_field",
        format!("the entity has no field {key:?}"),
    )
}

fn reorder(doc: &mut Value, order: &[String]) {
    // The list first: it is what keeps the order on every database.
    let mut keys: Vec<String> = order
        .iter()
        .filter(|k| doc.pointer(&format!("/properties/{k}")).is_some())
        .cloned()
        .collect();
    for key in field_keys(doc) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if let Some(object) = doc.as_object_mut() {
        object.insert(
            super::entity::FIELD_ORDER.to_owned(),
            Value::Array(keys.iter().cloned().map(Value::String).collect()),
        );
    }
    let order = keys;
    let Some(properties) = properties_mut(doc) else {
        return;
    };
    let mut old = std::mem::take(properties);
    for key in &order {
        if let Some(value) = old.shift_remove(key) {
            properties.insert(key.clone(), value);
        }
    }
    for (key, value) in old {
        properties.insert(key, value);
    }
}

/// The conditional requirements of an entity: `(field, when, equals)` for each if/then rule
/// of the shape the designer writes.
pub fn conditional_requirements(doc: &Value) -> Vec<(String, String, String)> {
    doc.get("allOf")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .filter_map(|rule| {
                    let tests = rule.pointer("/if/properties")?.as_object()?;
                    let (when, test) = tests.iter().next()?;
                    let equals = text_of(test.get("const"));
                    let required = rule.pointer("/then/required")?.as_array()?;
                    let field = required.first()?.as_str()?.to_owned();
                    Some((field, when.clone(), equals))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn require_when(
    doc: &mut Value,
    field: &str,
    when: &str,
    equals: &str,
    problems: &mut Vec<FieldError>,
) {
    for (pointer, key) in [("/rule/field", field), ("/rule/when", when)] {
        if doc.pointer(&format!("/properties/{key}")).is_none() {
            problems.push(FieldError::new(
                pointer,
                "unknown_field",
                format!("the entity has no field {key:?}"),
            ));
        }
    }
    if field == when {
        problems.push(FieldError::new(
            "/rule/when",
            "same_field",
            "a field cannot be required on its own value",
        ));
    }
    if !problems.is_empty() {
        return;
    }
    let Some(object) = doc.as_object_mut() else {
        return;
    };
    let rules = object
        .entry("allOf")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(list) = rules else {
        problems.push(FieldError::new(
            "/rule",
            "all_of",
            "the entity's allOf is not a list; edit it as JSON",
        ));
        return;
    };
    // One rule per required field: a new condition replaces the old one.
    list.retain(|rule| {
        rule.pointer("/then/required/0").and_then(Value::as_str) != Some(field)
            || rule.pointer("/if/properties").is_none()
    });
    let equals = equals.trim();
    if !equals.is_empty() {
        list.push(json!({
            "if": {"properties": {when: {"const": equals}}, "required": [when]},
            "then": {"required": [field]}
        }));
    }
    if list.is_empty() {
        object.remove("allOf");
    }
}

/// Keywords of a field that change only how it shows, never which stored values are valid.
const PRESENTATION: [&str; 7] = [
    "x-label",
    "x-help",
    "x-indexed",
    "x-search",
    "x-hidden",
    "x-default",
    "x-field-order",
];

/// Whether publishing `new` over `old` can make stored values fail or change: a field's kind or
/// validation changed, a field became required or unique, or the conditional rules changed
/// (relabelling, reordering, hiding and new optional fields cannot).
pub fn affects_records(old: &Value, new: &Value) -> bool {
    let empty = Map::new();
    let props = |doc: &Value| {
        doc.get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (old_props, new_props) = (props(old), props(new));
    let required = |doc: &Value| -> Vec<String> {
        doc.get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old_required, new_required) = (required(old), required(new));
    if new_required.iter().any(|k| !old_required.contains(k))
        || old.get("allOf") != new.get("allOf")
    {
        return true;
    }
    new_props.iter().any(|(key, property)| {
        let Some(before) = old_props.get(key) else {
            return false;
        };
        let (before, after) = (
            before.as_object().unwrap_or(&empty),
            property.as_object().unwrap_or(&empty),
        );
        before
            .keys()
            .chain(after.keys())
            .filter(|k| !PRESENTATION.contains(&k.as_str()))
            .any(|k| before.get(k) != after.get(k))
    })
}

/// One difference between two versions of an entity, for the "changes" panel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The field (empty: the entity itself).
    pub field: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// The keywords that differ, each `keyword: old → new`.
    pub details: Vec<String>,
}

fn short(value: Option<&Value>) -> String {
    match value {
        None => "—".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            let text = other.to_string();
            if text.chars().count() > 80 {
                format!("{}…", text.chars().take(80).collect::<String>())
            } else {
                text
            }
        }
    }
}

fn keyword_changes(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| format!("{k}: {} → {}", short(old.get(k)), short(new.get(k))))
        .collect()
}

/// What differs between `old` (the published document) and `new` (the draft): fields added,
/// removed or changed, the entity's own keywords, and the field order.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let empty = Map::new();
    let old_props = old
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new_props = new
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut changes = Vec::new();
    let strip = |doc: &Value| -> Map<String, Value> {
        doc.as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| *k != "properties" && *k != super::entity::FIELD_ORDER)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let entity = keyword_changes(&strip(old), &strip(new));
    if !entity.is_empty() {
        changes.push(Change {
            field: String::new(),
            change: "changed",
            details: entity,
        });
    }
    for (key, property) in new_props {
        match old_props.get(key) {
            None => changes.push(Change {
                field: key.clone(),
                change: "added",
                details: vec![format!("x-kind: {}", short(property.get("x-kind")))],
            }),
            Some(before) if before != property => changes.push(Change {
                field: key.clone(),
                change: "changed",
                details: keyword_changes(
                    before.as_object().unwrap_or(&empty),
                    property.as_object().unwrap_or(&empty),
                ),
            }),
            Some(_) => {}
        }
    }
    for key in old_props.keys().filter(|k| !new_props.contains_key(*k)) {
        changes.push(Change {
            field: key.clone(),
            change: "removed",
            details: Vec::new(),
        });
    }
    let (old_keys, new_keys) = (field_keys(old), field_keys(new));
    let old_order: Vec<&String> = old_keys
        .iter()
        .filter(|k| new_props.contains_key(*k))
        .collect();
    let new_order: Vec<&String> = new_keys
        .iter()
        .filter(|k| old_props.contains_key(*k))
        .collect();
    if old_order != new_order {
        changes.push(Change {
            field: String::new(),
            change: "reordered",
            details: vec![
                new_order
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ],
        });
    }
    changes
}

/// Each field of an entity document with the kind its values have, in order: a formula or a
/// rollup counts as the kind of its result (a rollup without one as an integer).
pub fn value_kinds(doc: &Value) -> Vec<(String, String)> {
    field_keys(doc)
        .into_iter()
        .filter_map(|k| {
            let property = doc.pointer(&format!("/properties/{k}"))?;
            let kind = property.get("x-kind")?.as_str()?;
            let kind = match (kind, property.get("x-result")) {
                ("formula" | "rollup", Some(Value::String(result))) => result.clone(),
                ("rollup", None) => "integer".to_owned(),
                _ => kind.to_owned(),
            };
            Some((k, kind))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead() -> Value {
        json!({
            "type": "object", "x-label": {"en": "Lead"}, "x-title-field": "name", "required": ["name"],
            "properties": {
                "name": {"type": "string", "maxLength": 100, "x-kind": "text", "x-label": {"en": "Name"}},
                "stage": {"type": "string", "enum": ["new", "lost"], "x-kind": "single_select", "x-label": {"en": "Stage"},
                          "x-options": [{"value": "new", "label": {"en": "New"}}, {"value": "lost", "label": {"en": "Lost"}}]},
                "lost_reason": {"type": "string", "maxLength": 200, "x-kind": "text", "x-label": {"en": "Lost reason"}},
                "score": {"type": "integer", "x-kind": "formula", "x-result": "integer", "x-formula": "1", "x-label": {"en": "Score"}}
            }
        })
    }

    fn text_field(key: &str) -> FieldSpec {
        FieldSpec {
            key: key.to_owned(),
            kind: "text".to_owned(),
            label_en: "WeChat ID".to_owned(),
            label_zh: "微信号".to_owned(),
            ..FieldSpec::default()
        }
    }

    #[test]
    fn a_field_is_added_at_the_end_with_its_schema() {
        let mut doc = lead();
        apply(
            &mut doc,
            &Edit::AddField(FieldSpec {
                max_length: "50".to_owned(),
                indexed: true,
                required: true,
                ..text_field("wechat")
            }),
        )
        .expect("added");
        assert_eq!(field_keys(&doc).last().map(String::as_str), Some("wechat"));
        assert_eq!(
            doc["properties"]["wechat"],
            json!({"x-label": {"en": "WeChat ID", "zh-CN": "微信号"}, "x-indexed": true,
                   "x-kind": "text", "type": "string", "maxLength": 50})
        );
        assert_eq!(doc["required"], json!(["name", "wechat"]));
        // The same key again is refused, and the document is unchanged.
        let before = doc.clone();
        let problems = apply(&mut doc, &Edit::AddField(text_field("wechat"))).expect_err("taken");
        assert_eq!(problems[0].pointer, "/field/key");
        assert_eq!(doc, before);
    }

    #[test]
    fn bad_specs_name_every_problem() {
        let mut doc = lead();
        let spec = FieldSpec {
            key: "Bad Key".to_owned(),
            kind: "single_select".to_owned(),
            label_en: String::new(),
            options: vec![
                OptionSpec {
                    value: "a".into(),
                    color: "red".into(),
                    ..Default::default()
                },
                OptionSpec {
                    value: "a".into(),
                    ..Default::default()
                },
            ],
            ..FieldSpec::default()
        };
        let problems = apply(&mut doc, &Edit::AddField(spec)).expect_err("refused");
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/field/key",
                "/field/label_en",
                "/field/options/0/color",
                "/field/options/1/value"
            ]
        );
        let range = FieldSpec {
            kind: "integer".to_owned(),
            minimum: "10".to_owned(),
            maximum: "2".to_owned(),
            pattern: "(".to_owned(),
            ..text_field("n")
        };
        let problems = apply(&mut doc, &Edit::AddField(range)).expect_err("refused");
        assert_eq!(problems[0].pointer, "/field/maximum");
    }

    #[test]
    fn changing_a_kind_drops_what_the_old_kind_needed() {
        let mut doc = lead();
        let mut spec = field_spec(&doc, "stage").expect("stage");
        assert_eq!(spec.options.len(), 2);
        spec.kind = "text".to_owned();
        apply(&mut doc, &Edit::UpdateField(spec)).expect("changed");
        let stage = &doc["properties"]["stage"];
        assert!(
            stage.get("enum").is_none() && stage.get("x-options").is_none(),
            "{stage}"
        );
        assert_eq!(stage["x-kind"], "text");
        // A formula keeps its script when relabelled, and takes a new one with its kind.
        let mut score = field_spec(&doc, "score").expect("score");
        assert!(!score.locked_kind);
        assert_eq!(
            (score.formula.as_str(), score.result.as_str()),
            ("1", "integer")
        );
        score.label_zh = "评分".to_owned();
        apply(&mut doc, &Edit::UpdateField(score.clone())).expect("relabelled");
        assert_eq!(doc["properties"]["score"]["x-formula"], "1");
        assert_eq!(doc["properties"]["score"]["x-label"]["zh-CN"], "评分");
        score.formula = "record.amount * decimal(\"0.13\")".to_owned();
        score.result = "money".to_owned();
        apply(&mut doc, &Edit::UpdateField(score.clone())).expect("new formula");
        let property = &doc["properties"]["score"];
        assert_eq!(
            (
                &property["type"],
                &property["x-result"],
                &property["x-currency"]
            ),
            (&json!("number"), &json!("money"), &json!("CNY"))
        );
        score.formula = " ".to_owned();
        score.result = "array".to_owned();
        let problems = apply(&mut doc, &Edit::UpdateField(score)).expect_err("refused");
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/field/formula", "/field/result"]);
    }

    #[test]
    fn fields_move_hide_and_come_back() {
        let mut doc = lead();
        apply(
            &mut doc,
            &Edit::MoveField {
                key: "lost_reason".into(),
                by: -1,
            },
        )
        .expect("moved");
        assert_eq!(field_keys(&doc), ["name", "lost_reason", "stage", "score"]);
        apply(
            &mut doc,
            &Edit::Reorder(vec!["score".into(), "name".into()]),
        )
        .expect("ordered");
        assert_eq!(field_keys(&doc), ["score", "name", "lost_reason", "stage"]);
        apply(
            &mut doc,
            &Edit::SetHidden {
                key: "lost_reason".into(),
                hidden: true,
            },
        )
        .expect("hid");
        assert_eq!(doc["properties"]["lost_reason"]["x-hidden"], true);
        apply(
            &mut doc,
            &Edit::SetHidden {
                key: "lost_reason".into(),
                hidden: false,
            },
        )
        .expect("back");
        assert!(doc["properties"]["lost_reason"].get("x-hidden").is_none());
        let problems = apply(
            &mut doc,
            &Edit::SetHidden {
                key: "name".into(),
                hidden: true,
            },
        )
        .expect_err("the title stays");
        assert_eq!(problems[0].code, "title_field");
    }

    #[test]
    fn a_conditional_requirement_is_an_if_then() {
        let mut doc = lead();
        let rule = Edit::RequireWhen {
            field: "lost_reason".into(),
            when: "stage".into(),
            equals: "lost".into(),
        };
        apply(&mut doc, &rule).expect("rule");
        apply(&mut doc, &rule).expect("again, replacing");
        assert_eq!(
            doc["allOf"],
            json!([{"if": {"properties": {"stage": {"const": "lost"}}, "required": ["stage"]},
                    "then": {"required": ["lost_reason"]}}])
        );
        assert_eq!(
            conditional_requirements(&doc),
            [(
                "lost_reason".to_owned(),
                "stage".to_owned(),
                "lost".to_owned()
            )]
        );
        apply(
            &mut doc,
            &Edit::RequireWhen {
                field: "lost_reason".into(),
                when: "stage".into(),
                equals: String::new(),
            },
        )
        .expect("removed");
        assert!(doc.get("allOf").is_none());
    }

    #[test]
    fn only_changes_to_what_values_must_satisfy_affect_records() {
        let old = lead();
        let mut new = old.clone();
        apply(&mut new, &Edit::AddField(text_field("wechat"))).expect("added");
        apply(
            &mut new,
            &Edit::MoveField {
                key: "stage".into(),
                by: -1,
            },
        )
        .expect("moved");
        apply(
            &mut new,
            &Edit::SetHidden {
                key: "lost_reason".into(),
                hidden: true,
            },
        )
        .expect("hid");
        assert!(!affects_records(&old, &new));
        let mut required = new.clone();
        apply(
            &mut required,
            &Edit::UpdateField(FieldSpec {
                required: true,
                ..text_field("wechat")
            }),
        )
        .expect("req");
        assert!(affects_records(&old, &required));
        let mut kind = old.clone();
        let mut stage = field_spec(&kind, "stage").expect("stage");
        stage.kind = "text".to_owned();
        apply(&mut kind, &Edit::UpdateField(stage)).expect("kind");
        assert!(affects_records(&old, &kind));
    }

    #[test]
    fn the_diff_lists_fields_and_order() {
        let old = lead();
        let mut new = old.clone();
        apply(&mut new, &Edit::AddField(text_field("wechat"))).expect("added");
        apply(
            &mut new,
            &Edit::MoveField {
                key: "stage".into(),
                by: -1,
            },
        )
        .expect("moved");
        let changes = diff(&old, &new);
        let kinds: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| (c.field.as_str(), c.change))
            .collect();
        assert_eq!(kinds, [("wechat", "added"), ("", "reordered")]);
    }
}
