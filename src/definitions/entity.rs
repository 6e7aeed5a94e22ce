//! The compiled form of a published entity: its fields by kind, its JSON Schema validator, and
//! the names of its record table and indexes. Built once per published version and shared by
//! every request through the live registry.

use std::collections::HashMap;
use std::sync::Arc;

use jsonschema::Validator;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::meta;
pub use crate::domain::query::ValueType;
use crate::error::FieldError;

/// What happens to records that refer to a deleted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// The delete is refused while live records refer to the target.
    Restrict,
    /// The referring field is cleared.
    SetNull,
    /// The referring records are deleted too (and restored with it).
    Cascade,
}

/// A field's kind with what the runtime needs to store and query it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// One line of text.
    Text,
    /// Several lines of text.
    LongText,
    /// A whole number.
    Integer,
    /// A floating-point number.
    Number,
    /// An exact amount, stored as integer minor units.
    Money {
        /// ISO 4217 code.
        currency: String,
        /// Digits after the decimal point (CNY 2, JPY 0).
        scale: u32,
    },
    /// A number of percent (12.5 = 12.5%).
    Percent,
    /// True or false.
    Boolean,
    /// A calendar date (`YYYY-MM-DD`).
    Date,
    /// An instant, stored in UTC.
    DateTime,
    /// An email address (stored lowercased).
    Email,
    /// A phone number.
    Phone,
    /// A URL.
    Url,
    /// One of the options.
    SingleSelect {
        /// Option values in order.
        options: Vec<String>,
    },
    /// Several of the options.
    MultiSelect {
        /// Option values in order.
        options: Vec<String>,
    },
    /// The id of a record of another entity.
    Reference {
        /// Target entity key.
        entity: String,
        /// Behaviour when the target is deleted.
        on_delete: OnDelete,
    },
    /// The id of a workspace member.
    User,
    /// Files stored in the database.
    Attachment {
        /// Largest file, in bytes.
        max_size: u64,
        /// Accepted media types (`image/*`, `application/pdf`); empty: any.
        accept: Vec<String>,
        /// Most files in the field.
        max_files: usize,
    },
    /// Line items: rows with their own columns, and totals over them.
    SubTable {
        /// The columns (fields of the rows).
        columns: Vec<Field>,
        /// Totals: (column, function), stored with the record.
        totals: Vec<(String, crate::domain::query::MetricOp)>,
    },
    /// A number assigned on creation from a pattern such as `QT-{yyyy}-{0000}`.
    AutoNumber {
        /// The pattern.
        pattern: String,
    },
}

/// How a computed field gets its value (its `kind` is the kind of that value).
#[derive(Debug, Clone, PartialEq)]
pub enum Computed {
    /// A rhai formula over the record (`x-formula`), computed on every write and stored.
    Formula {
        /// The script.
        source: String,
    },
    /// An aggregate over the records of another entity that refer to this one (`x-rollup`),
    /// kept current on every change of those records.
    Rollup(RollupSpec),
}

/// What a rollup aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupSpec {
    /// The related (child) entity.
    pub entity: String,
    /// The child's reference field pointing at this entity.
    pub via: String,
    /// The aggregate.
    pub op: crate::domain::query::MetricOp,
    /// The child's field aggregated (none for count).
    pub field: Option<String>,
}

impl FieldKind {
    /// The kind's name in definitions (`x-kind`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::LongText => "long_text",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Money { .. } => "money",
            Self::Percent => "percent",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::DateTime => "datetime",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Url => "url",
            Self::SingleSelect { .. } => "single_select",
            Self::MultiSelect { .. } => "multi_select",
            Self::Reference { .. } => "reference",
            Self::User => "user",
            Self::Attachment { .. } => "attachment",
            Self::SubTable { .. } => "sub_table",
            Self::AutoNumber { .. } => "auto_number",
        }
    }

    /// How values of this kind compare.
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::Integer | Self::Money { .. } => ValueType::Integer,
            Self::Number | Self::Percent => ValueType::Real,
            Self::Boolean => ValueType::Boolean,
            Self::MultiSelect { .. } => ValueType::Array,
            Self::Attachment { .. } | Self::SubTable { .. } => ValueType::Opaque,
            _ => ValueType::Text,
        }
    }

    /// Whether clients may write this field (computed kinds are the runtime's).
    pub fn is_writable(&self) -> bool {
        !matches!(self, Self::AutoNumber { .. })
    }

    /// Whether the kind can have a database index.
    pub fn is_indexable(&self) -> bool {
        !matches!(self.value_type(), ValueType::Array | ValueType::Opaque)
    }
}

/// One field of an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Stable key (`properties` name).
    pub key: String,
    /// Kind.
    pub kind: FieldKind,
    /// English label.
    pub label: String,
    /// Gets a database index.
    pub indexed: bool,
    /// Values are unique among live records.
    pub unique: bool,
    /// Hidden: kept, but not shown or writable.
    pub hidden: bool,
    /// Value applied on create when the field is absent.
    pub default: Option<Value>,
    /// Computed by Formwork (formula or rollup); `kind` is the kind of the computed value.
    pub computed: Option<Computed>,
    /// `x-search`: whether global search reads the field (unset: the title field, emails and
    /// phones do).
    pub search: Option<bool>,
}

impl Field {
    /// A plain field of `kind` under `key`: no index, not unique, visible, no default, not
    /// computed (the shape of fields made outside a definition, and of test fields).
    pub fn plain(key: &str, kind: FieldKind) -> Self {
        Self {
            key: key.to_owned(),
            kind,
            label: key.to_owned(),
            indexed: false,
            unique: false,
            hidden: false,
            default: None,
            computed: None,
            search: None,
        }
    }

    /// Whether clients may write the field (computed and auto-numbered ones are Formwork's).
    pub fn is_writable(&self) -> bool {
        self.computed.is_none() && self.kind.is_writable()
    }

    /// The field's kind as definitions name it (`formula` and `rollup` for computed ones).
    pub fn kind_name(&self) -> &'static str {
        match &self.computed {
            Some(Computed::Formula { .. }) => "formula",
            Some(Computed::Rollup(_)) => "rollup",
            None => self.kind.name(),
        }
    }

    /// Whether the field has a database index (marked, unique, or a reference: references are
    /// join keys for related filters and delete checks).
    pub fn has_index(&self) -> bool {
        self.kind.is_indexable()
            && (self.indexed || self.unique || matches!(self.kind, FieldKind::Reference { .. }))
    }
}

/// A database index an entity needs: one field's, or several fields' (`x-indexes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// Index name: unique per installation, derived from the table, fields and expressions.
    pub name: String,
    /// The fields, in index order, each with how its value is extracted (changes with the kind).
    pub columns: Vec<(String, ValueType)>,
    /// Whether it is a unique index.
    pub unique: bool,
}

impl IndexSpec {
    /// The field keys, comma-separated (`stage,budget`), as shown in index states.
    pub fn fields(&self) -> String {
        self.columns
            .iter()
            .map(|(key, _)| key.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The first field's key: the field a single-field index is for.
    pub fn field(&self) -> &str {
        self.columns.first().map_or("", |(key, _)| key.as_str())
    }
}

/// A published entity, compiled.
#[derive(Debug)]
pub struct EntityModel {
    /// Entity key.
    pub key: String,
    /// The definition's id: names the record table.
    pub definition_id: Uuid,
    /// Published version.
    pub version: i32,
    /// Fields in declaration order.
    pub fields: Vec<Field>,
    by_key: HashMap<String, usize>,
    /// Required field keys.
    pub required: Vec<String>,
    /// The field naming a record.
    pub title_field: Option<String>,
    /// Indexes over several fields (`x-indexes`), as field keys.
    pub compound_indexes: Vec<Vec<String>>,
    /// The public pool, if the entity has one (`x-pool`).
    pub pool: Option<PoolSettings>,
    /// Duplicate rules (`x-duplicates`): each, the fields that must all be equal.
    pub duplicate_rules: Vec<Vec<String>>,
    /// The entity's own JSON Schema, compiled (validates the API form of the fields).
    pub validator: Validator,
    /// Its formulas (in dependency order) and validation rules, compiled.
    pub scripts: Arc<crate::script::formulas::Plan>,
    /// The document.
    pub document: Arc<Value>,
}

/// An entity's public pool (公海).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most live records of the entity one person may hold when claiming more.
    pub claim_limit: u32,
    /// Owned records resting this long return to the pool.
    pub reclaim_after_days: Option<u32>,
    /// The date or datetime field telling the last activity (else the last change).
    pub activity_field: Option<String>,
}

/// The claim limit when `x-pool` names none.
pub const DEFAULT_CLAIM_LIMIT: u32 = 50;

/// A keyword holding lists of field keys (`x-indexes`, `x-duplicates`), empty lists left out.
fn key_lists(document: &Value, keyword: &str) -> Vec<Vec<String>> {
    document
        .get(keyword)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|keys| !keys.is_empty())
        .collect()
}

/// Digits after the decimal point of an ISO 4217 currency.
pub fn currency_scale(code: &str) -> u32 {
    match code {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" | "RWF" | "KMF"
        | "GNF" | "DJF" | "VUV" | "XPF" | "BIF" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "IQD" | "LYD" | "TND" => 3,
        _ => 2,
    }
}

fn options_of(field: &Value) -> Vec<String> {
    field
        .get("x-options")
        .and_then(Value::as_array)
        .map(|options| {
            options
                .iter()
                .filter_map(|o| o.get("value").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Default largest attachment: 10 MiB.
pub const DEFAULT_ATTACHMENT_SIZE: u64 = 10 * 1024 * 1024;
/// Default most files in one attachment field.
pub const DEFAULT_ATTACHMENT_FILES: usize = 10;

/// A field from its key and definition.
pub fn field_of(name: &str, field: &Value) -> Field {
    let flag = |k: &str| field.get(k).and_then(Value::as_bool).unwrap_or(false);
    Field {
        key: name.to_owned(),
        kind: kind_of(field),
        label: field
            .pointer("/x-label/en")
            .and_then(Value::as_str)
            .unwrap_or(name)
            .to_owned(),
        indexed: flag("x-indexed"),
        unique: flag("x-unique"),
        hidden: flag("x-hidden"),
        default: field.get("x-default").cloned(),
        computed: computed_of(field),
        search: field.get("x-search").and_then(Value::as_bool),
    }
}

/// How a field is computed, if it is.
fn computed_of(field: &Value) -> Option<Computed> {
    match field.get("x-kind").and_then(Value::as_str) {
        Some("formula") => Some(Computed::Formula {
            source: field
                .get("x-formula")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        }),
        Some("rollup") => {
            let text = |key: &str| {
                field
                    .pointer(&format!("/x-rollup/{key}"))
                    .and_then(Value::as_str)
            };
            Some(Computed::Rollup(RollupSpec {
                entity: text("entity").unwrap_or_default().to_owned(),
                via: text("via").unwrap_or_default().to_owned(),
                op: text("op")
                    .and_then(crate::domain::query::MetricOp::parse)
                    .unwrap_or(crate::domain::query::MetricOp::Count),
                field: text("field").map(str::to_owned),
            }))
        }
        _ => None,
    }
}

/// The kind of a computed field's value: its `x-result` (with the keywords that kind takes,
/// such as `x-currency` or `x-options`); by default an integer for counts, else a number.
fn result_kind(field: &Value) -> FieldKind {
    let default = if field.pointer("/x-rollup/op").and_then(Value::as_str) == Some("count") {
        "integer"
    } else {
        "number"
    };
    let result = field
        .get("x-result")
        .and_then(Value::as_str)
        .unwrap_or(default);
    let mut plain = field.clone();
    if let Some(object) = plain.as_object_mut() {
        object.insert("x-kind".to_owned(), Value::String(result.to_owned()));
    }
    kind_of(&plain)
}

/// The kind of one field definition (already checked by the meta-schema).
pub fn kind_of(field: &Value) -> FieldKind {
    let text = |pointer: &str| {
        field
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match field
        .get("x-kind")
        .and_then(Value::as_str)
        .unwrap_or("text")
    {
        "long_text" => FieldKind::LongText,
        "integer" => FieldKind::Integer,
        "number" => FieldKind::Number,
        "money" => {
            let currency = text("/x-currency");
            FieldKind::Money {
                scale: currency_scale(&currency),
                currency,
            }
        }
        "percent" => FieldKind::Percent,
        "boolean" => FieldKind::Boolean,
        "date" => FieldKind::Date,
        "datetime" => FieldKind::DateTime,
        "email" => FieldKind::Email,
        "phone" => FieldKind::Phone,
        "url" => FieldKind::Url,
        "single_select" => FieldKind::SingleSelect {
            options: options_of(field),
        },
        "multi_select" => FieldKind::MultiSelect {
            options: options_of(field),
        },
        "reference" => FieldKind::Reference {
            entity: text("/x-reference/entity"),
            on_delete: match field
                .pointer("/x-reference/on_delete")
                .and_then(Value::as_str)
            {
                Some("set_null") => OnDelete::SetNull,
                Some("cascade") => OnDelete::Cascade,
                _ => OnDelete::Restrict,
            },
        },
        "user" => FieldKind::User,
        "attachment" => FieldKind::Attachment {
            max_size: field
                .pointer("/x-attachment/max_size")
                .and_then(Value::as_u64)
                .unwrap_or(DEFAULT_ATTACHMENT_SIZE),
            accept: field
                .pointer("/x-attachment/accept")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            max_files: field
                .pointer("/x-attachment/max_files")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_ATTACHMENT_FILES, |n| n as usize),
        },
        "sub_table" => FieldKind::SubTable {
            columns: field
                .pointer("/items/properties")
                .and_then(Value::as_object)
                .map(|columns| {
                    columns
                        .iter()
                        .map(|(key, column)| field_of(key, column))
                        .collect()
                })
                .unwrap_or_default(),
            totals: field
                .get("x-totals")
                .and_then(Value::as_object)
                .map(|totals| {
                    totals
                        .iter()
                        .filter_map(|(column, op)| {
                            Some((
                                column.clone(),
                                crate::domain::query::MetricOp::parse(op.as_str()?)?,
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        },
        "auto_number" => FieldKind::AutoNumber {
            pattern: text("/x-auto-number/pattern"),
        },
        "formula" | "rollup" => result_kind(field),
        _ => FieldKind::Text,
    }
}

impl EntityModel {
    /// Compiles a published entity document.
    ///
    /// # Errors
    /// The schema problem, when the document does not compile (it was validated at publish, so
    /// this means a defect).
    pub fn build(
        key: &str,
        definition_id: Uuid,
        version: i32,
        document: Arc<Value>,
    ) -> Result<Self, FieldError> {
        let validator = meta::compile(&document, "")?;
        let (scripts, problems) =
            crate::script::formulas::plan(&crate::script::shared(), &document, "");
        if let Some(problem) = problems.into_iter().next() {
            return Err(problem);
        }
        let mut fields = Vec::new();
        if let Some(properties) = document.get("properties").and_then(Value::as_object) {
            for name in field_order(&document) {
                if let Some(field) = properties.get(&name) {
                    fields.push(field_of(&name, field));
                }
            }
        }
        let by_key = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.key.clone(), i))
            .collect();
        let required = document
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            key: key.to_owned(),
            definition_id,
            version,
            fields,
            by_key,
            required,
            title_field: document
                .get("x-title-field")
                .and_then(Value::as_str)
                .map(str::to_owned),
            pool: document
                .get("x-pool")
                .and_then(Value::as_object)
                .map(|pool| {
                    let number = |key: &str| {
                        pool.get(key)
                            .and_then(Value::as_u64)
                            .and_then(|n| u32::try_from(n).ok())
                    };
                    PoolSettings {
                        claim_limit: number("claim_limit").unwrap_or(DEFAULT_CLAIM_LIMIT),
                        reclaim_after_days: number("reclaim_after_days"),
                        activity_field: pool
                            .get("activity_field")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    }
                }),
            duplicate_rules: key_lists(&document, "x-duplicates"),
            compound_indexes: key_lists(&document, "x-indexes"),
            validator,
            scripts: Arc::new(scripts),
            document,
        })
    }

    /// The field with `key`.
    pub fn field(&self, key: &str) -> Option<&Field> {
        self.by_key.get(key).map(|&i| &self.fields[i])
    }

    /// The record table's name: `rec_` and the definition id (never the key, which an admin
    /// may reuse after deleting an entity).
    pub fn table(&self) -> String {
        table_name(self.definition_id)
    }

    /// The indexes this version needs.
    pub fn indexes(&self) -> Vec<IndexSpec> {
        let mut specs: Vec<IndexSpec> = self
            .fields
            .iter()
            .filter(|f| f.has_index())
            .map(|f| index_spec(self.definition_id, f))
            .collect();
        for keys in &self.compound_indexes {
            // Validated at publish; a field gone or not indexable drops the index, not the entity.
            // `owner` (when no field is called so) is the owner column: dashboards that group by
            // owner and stage read such an index in its order.
            let columns: Option<Vec<(String, ValueType)>> = keys
                .iter()
                .map(|key| match self.field(key) {
                    Some(f) if f.kind.is_indexable() => Some((f.key.clone(), f.kind.value_type())),
                    Some(_) => None,
                    None if key == "owner" => Some((OWNER_COLUMN.to_owned(), ValueType::Text)),
                    None => None,
                })
                .collect();
            if let Some(columns) = columns.filter(|c| c.len() >= 2) {
                let spec = compound_index_spec(self.definition_id, columns);
                if !specs.iter().any(|s| s.name == spec.name) {
                    specs.push(spec);
                }
            }
        }
        specs
    }
}

/// How a compound index names the owner column among its fields (no field key starts with `$`).
pub const OWNER_COLUMN: &str = "$owner";

/// The record table of an entity definition.
pub fn table_name(definition_id: Uuid) -> String {
    format!("rec_{}", definition_id.simple())
}

/// The index a field needs on the table of `definition_id`.
pub fn index_spec(definition_id: Uuid, field: &Field) -> IndexSpec {
    let value_type = field.kind.value_type();
    let mut hasher = Sha256::new();
    hasher.update(field.key.as_bytes());
    hasher.update(format!("{value_type:?}").as_bytes());
    let digest = hex::encode(hasher.finalize());
    let prefix = if field.unique { "ux" } else { "ix" };
    IndexSpec {
        name: format!("{prefix}_{}_{}", definition_id.simple(), &digest[..10]),
        columns: vec![(field.key.clone(), value_type)],
        unique: field.unique,
    }
}

/// The index over several fields, in order, on the table of `definition_id`.
pub fn compound_index_spec(definition_id: Uuid, columns: Vec<(String, ValueType)>) -> IndexSpec {
    let mut hasher = Sha256::new();
    for (key, value_type) in &columns {
        hasher.update(key.as_bytes());
        hasher.update(format!("{value_type:?}").as_bytes());
        hasher.update([0]);
    }
    let digest = hex::encode(hasher.finalize());
    IndexSpec {
        name: format!("cx_{}_{}", definition_id.simple(), &digest[..10]),
        columns,
        unique: false,
    }
}

/// The keyword holding the order of an entity's fields. JSON object order does not survive
/// every store (PostgreSQL normalises it), so the order people give is kept as a list.
pub const FIELD_ORDER: &str = "x-field-order";

/// An entity's field keys in order: those of `x-field-order` that exist, then the others in
/// document order.
pub fn field_order(document: &Value) -> Vec<String> {
    let Some(properties) = document.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut order: Vec<String> = document
        .get(FIELD_ORDER)
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(Value::as_str)
                .filter(|k| properties.contains_key(*k))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    order.dedup();
    for key in properties.keys() {
        if !order.contains(key) {
            order.push(key.clone());
        }
    }
    order
}

/// Writes an entity's field order into it (`x-field-order`), from the list if it has one, else
/// from the order of its properties as given: saved and installed entities keep the order
/// their authors gave on every database.
pub fn pin_field_order(document: &mut Value) {
    if document
        .get("properties")
        .and_then(Value::as_object)
        .is_none()
    {
        return;
    }
    let order = field_order(document);
    if let Some(object) = document.as_object_mut() {
        object.insert(
            FIELD_ORDER.to_owned(),
            Value::Array(order.into_iter().map(Value::String).collect()),
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kinds_and_indexes_come_from_the_document() {
        let doc = json!({
            "type": "object", "x-label": {"en": "Deal"},
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "x-kind": "text", "x-label": {"en": "Name"}, "x-indexed": true},
                "amount": {"type": "number", "x-kind": "money", "x-currency": "JPY", "x-label": {"en": "Amount"}},
                "email": {"type": "string", "x-kind": "email", "x-label": {"en": "Email"}, "x-unique": true},
                "customer": {"type": "string", "x-kind": "reference", "x-label": {"en": "Customer"},
                             "x-reference": {"entity": "customer", "on_delete": "cascade"}},
                "tags": {"type": "array", "x-kind": "multi_select", "x-label": {"en": "Tags"}, "x-indexed": true,
                         "x-options": [{"value": "a", "label": {"en": "A"}}]}
            }
        });
        let id = Uuid::nil();
        let model = EntityModel::build("deal", id, 1, Arc::new(doc)).expect("builds");
        assert_eq!(
            model.field("amount").map(|f| f.kind.clone()),
            Some(FieldKind::Money {
                currency: "JPY".to_owned(),
                scale: 0
            })
        );
        let indexed: Vec<_> = model
            .indexes()
            .into_iter()
            .map(|i| (i.fields(), i.unique))
            .collect();
        assert_eq!(
            indexed,
            [
                ("name".to_owned(), false),
                ("email".to_owned(), true),
                ("customer".to_owned(), false)
            ]
        );
        assert!(model.indexes().iter().all(|i| i.name.len() <= 63));
        assert_eq!(model.required, ["name"]);
    }

    #[test]
    fn index_names_change_with_the_value_type() {
        let mut field = Field {
            key: "size".to_owned(),
            kind: FieldKind::Text,
            label: "Size".to_owned(),
            indexed: true,
            unique: false,
            hidden: false,
            default: None,
            computed: None,
            search: None,
        };
        let text = index_spec(Uuid::nil(), &field);
        field.kind = FieldKind::Integer;
        assert_ne!(text.name, index_spec(Uuid::nil(), &field).name);
    }

    #[test]
    fn a_compound_index_may_lead_with_the_owner_column() {
        let doc = json!({
            "type": "object", "x-label": {"en": "Deal"},
            "x-indexes": [["owner", "stage", "amount"]],
            "properties": {
                "stage": {"type": "string", "x-kind": "text", "x-label": {"en": "Stage"}},
                "amount": {"type": "number", "x-kind": "money", "x-currency": "CNY", "x-label": {"en": "Amount"}}
            }
        });
        let model =
            EntityModel::build("deal", Uuid::nil(), 1, std::sync::Arc::new(doc)).expect("builds");
        let compound = model
            .indexes()
            .into_iter()
            .find(|i| i.columns.len() == 3)
            .expect("the compound index");
        assert_eq!(compound.columns[0].0, OWNER_COLUMN);
        let sql = crate::store::records::index_sql(
            crate::store::Backend::Sqlite,
            "rec_x",
            &compound,
            false,
        );
        assert!(
            sql.contains("(\"owner_id\", json_extract(\"doc\", '$.stage')"),
            "{sql}"
        );
        assert_eq!(sql.matches("owner_id").count(), 1, "the owner once: {sql}");
    }
}
