//! The query language: filters, sorts, pages and aggregates as JSON (and their URL form),
//! resolved against an entity into the typed AST of `domain::query`. Every problem names the
//! JSON pointer (or query parameter) it comes from.

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::codec;
use crate::access::{FieldRule, Reach};
use crate::definitions::{EntityModel, Field, FieldKind, Snapshot, ValueType};
use crate::domain::query::{
    AggregateQuery, Bucket, Condition, Deleted, Group, ListQuery, Metric, MetricOp, Operand,
    Predicate, Scalar, SortKey, SystemField,
};
use crate::error::{Error, FieldError};

/// Default page size.
pub const DEFAULT_LIMIT: u64 = 50;
/// Largest page size.
pub const MAX_LIMIT: u64 = 1000;
/// Most groups an aggregate returns (ask for fewer with `limit`).
pub const MAX_GROUPS: u64 = 10_000;
/// Deepest and/or nesting accepted.
const MAX_DEPTH: usize = 16;
/// Most conditions in one filter.
const MAX_CONDITIONS: usize = 200;

/// How a list reports its total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Total {
    /// No total.
    #[default]
    None,
    /// An exact count.
    Exact,
    /// Exact up to 10,000, then "more than".
    Estimate,
}

/// A parsed list request.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// The query.
    pub query: ListQuery,
    /// Total wanted.
    pub total: Total,
}

/// What the resolver needs: the entity and the published set (for related fields), the clock
/// and zone (for relative dates).
#[derive(Debug, Clone, Copy)]
pub struct Resolver<'a> {
    /// The entity queried.
    pub model: &'a EntityModel,
    /// Every published entity.
    pub snapshot: &'a Snapshot,
    /// Now.
    pub now: chrono::DateTime<Utc>,
    /// The workspace time zone.
    pub time_zone: chrono_tz::Tz,
    /// What the caller may see (`None`: everything).
    pub policy: Option<&'a crate::access::Policy>,
}

/// A field name looked up for a caller.
enum Lookup<'m> {
    Found(Resolved<'m>),
    Unknown,
    Masked,
}

/// Most values (of `in`, `not_in` and `contains` lists) in one filter: keeps every statement
/// far below the engines' parameter limits (SQLite 32,766, PostgreSQL 65,535).
const MAX_VALUES: usize = 5000;

/// Invalid input, what the filter has spent of its limits, and fields the caller's role may
/// not query (masked ones: 403).
struct Problems(Vec<FieldError>, Budget, Vec<FieldError>);

/// What a filter has used of its limits so far.
#[derive(Default)]
struct Budget {
    conditions: usize,
    values: usize,
}

/// The pointer of the first text holding a NUL character (PostgreSQL cannot store or compare
/// it), if any.
fn find_nul(value: &Value, pointer: &str) -> Option<String> {
    match value {
        Value::String(text) => text.contains('\0').then(|| pointer.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_nul(item, &format!("{pointer}/{i}"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let child = format!("{pointer}/{}", codec::escape(key));
            if key.contains('\0') {
                Some(child)
            } else {
                find_nul(item, &child)
            }
        }),
        _ => None,
    }
}

fn refuse_nul(body: &Value) -> Result<(), Error> {
    match find_nul(body, "") {
        Some(pointer) => Err(Error::invalid(
            pointer,
            "nul_character",
            "text may not contain the NUL character (U+0000)",
        )),
        None => Ok(()),
    }
}

impl Problems {
    fn new() -> Self {
        Self(Vec::new(), Budget::default(), Vec::new())
    }

    /// Notes a field the caller may see only masked: querying it would reveal the value.
    fn masked(&mut self, pointer: &str, name: &str) {
        self.2.push(FieldError::new(
            pointer,
            "masked_field",
            format!("your role sees {name:?} masked; it cannot be filtered, sorted or grouped by"),
        ));
    }

    /// The error for what was found, if anything: refusals first, then invalid input.
    fn into_error(self, detail: &str) -> Option<Error> {
        if !self.2.is_empty() {
            return Some(Error::Forbidden {
                detail: "the query uses fields your role may not query".to_owned(),
                errors: self.2,
            });
        }
        (!self.0.is_empty()).then(|| Error::invalid_all(detail, self.0))
    }

    /// Counts values against the filter's budget; false (with a problem) when over it.
    fn spend_values(&mut self, n: usize, pointer: &str) -> bool {
        self.1.values += n;
        if self.1.values > MAX_VALUES {
            self.push(
                pointer,
                "range",
                format!("a filter holds at most {MAX_VALUES} values in all"),
            );
            return false;
        }
        true
    }

    fn push(&mut self, pointer: &str, code: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(pointer, code, message));
    }
}

/// An operand resolved from a field path, with the field it reads (none for system fields).
struct Resolved<'m> {
    operand: Operand,
    field: Option<&'m Field>,
    system: Option<SystemField>,
}

fn resolve_field<'m>(model: &'m EntityModel, name: &str) -> Option<Resolved<'m>> {
    if let Some(field) = model.field(name).filter(|f| !f.hidden) {
        return Some(Resolved {
            operand: Operand::Field {
                key: field.key.clone(),
                value_type: field.kind.value_type(),
            },
            field: Some(field),
            system: None,
        });
    }
    SystemField::parse(name).map(|system| Resolved {
        operand: Operand::System(system),
        field: None,
        system: Some(system),
    })
}

/// Whether a value names people relatively (`$me`, `$my_team`, `$my_department`).
fn mentions_people(value: &Value) -> bool {
    match value {
        Value::String(text) => text.starts_with('$'),
        Value::Array(items) => items.iter().any(mentions_people),
        _ => false,
    }
}

impl Resolver<'_> {
    /// Replaces `$me`, `$my_team` and `$my_department` by the caller's account ids; an `eq` or
    /// `ne` that now names several people becomes `in` or `not_in`.
    fn expand_people(&self, op: &str, value: &Value) -> Result<(&'static str, Value), String> {
        let Some(policy) = self.policy else {
            return Err("$me and the like need a signed-in person".to_owned());
        };
        let me = policy.account_id;
        let people = |token: &str| -> Result<Vec<Uuid>, String> {
            match token {
                "$me" => Ok(vec![me]),
                "$my_team" => Ok(policy.org().team_of(me)),
                "$my_department" => Ok(policy.org().department_of(me)),
                other => Err(format!(
                    "unknown {other:?}; use $me, $my_team or $my_department"
                )),
            }
        };
        let mut ids = Vec::new();
        let items = match value {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for item in &items {
            match item.as_str() {
                Some(token) if token.starts_with('$') => ids.extend(people(token)?),
                _ => ids.push(
                    item.as_str()
                        .and_then(|s| Uuid::parse_str(s).ok())
                        .ok_or_else(|| "a person is an account id".to_owned())?,
                ),
            }
        }
        let list = Value::Array(ids.iter().map(|id| Value::String(id.to_string())).collect());
        let op = match op {
            "eq" | "in" => "in",
            "ne" | "not_in" => "not_in",
            other => return Err(format!("{other} does not take $me and the like")),
        };
        Ok((op, list))
    }

    /// A field or system column of `model` as this caller may query it: fields their role
    /// hides are unknown, masked ones refused.
    fn lookup<'m>(&self, model: &'m EntityModel, name: &str) -> Lookup<'m> {
        let Some(resolved) = resolve_field(model, name) else {
            return Lookup::Unknown;
        };
        let rule = self
            .policy
            .filter(|_| resolved.field.is_some())
            .map_or(FieldRule::Visible, |p| p.grant(&model.key).field(name));
        match rule {
            FieldRule::Hidden => Lookup::Unknown,
            rule if rule.masks() => Lookup::Masked,
            _ => Lookup::Found(resolved),
        }
    }

    /// Parses a list request body.
    ///
    /// # Errors
    /// `Error::Invalid` listing every problem.
    pub fn list(&self, body: &Value) -> Result<ListRequest, Error> {
        refuse_nul(body)?;
        let mut problems = Problems::new();
        let object = match body {
            Value::Object(map) => map.clone(),
            Value::Null => Map::new(),
            _ => {
                return Err(Error::invalid("", "type", "a query is a JSON object"));
            }
        };
        for key in object.keys() {
            if !["filter", "sort", "limit", "cursor", "total", "deleted"].contains(&key.as_str()) {
                problems.push(
                    &format!("/{}", codec::escape(key)),
                    "unknown_parameter",
                    format!("unknown query parameter {key:?}"),
                );
            }
        }
        let filter = object
            .get("filter")
            .filter(|f| !f.is_null())
            .and_then(|f| self.condition(self.model, f, "/filter", 0, &mut problems, true));
        let sort = self.sort(object.get("sort"), &mut problems);
        let limit = match object.get("limit") {
            None | Some(Value::Null) => DEFAULT_LIMIT,
            Some(value) => match value.as_u64().filter(|n| (1..=MAX_LIMIT).contains(n)) {
                Some(n) => n,
                None => {
                    problems.push("/limit", "range", format!("limit is 1–{MAX_LIMIT}"));
                    DEFAULT_LIMIT
                }
            },
        };
        let total = match object.get("total").and_then(Value::as_str) {
            None if object.get("total").is_none_or(Value::is_null) => Total::None,
            Some("none") => Total::None,
            Some("exact") => Total::Exact,
            Some("estimate") => Total::Estimate,
            _ => {
                problems.push("/total", "enum", "total is none, exact or estimate");
                Total::None
            }
        };
        let deleted = match object.get("deleted") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Deleted::Exclude,
            Some(Value::Bool(true)) => Deleted::Only,
            Some(_) => {
                problems.push("/deleted", "type", "deleted is true or false");
                Deleted::Exclude
            }
        };
        let after = match object.get("cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(cursor)) => match decode_cursor(cursor, &sort) {
                Some(after) => Some(after),
                None => {
                    problems.push(
                        "/cursor",
                        "cursor",
                        "the cursor is malformed or belongs to a different sort",
                    );
                    None
                }
            },
            Some(_) => {
                problems.push("/cursor", "type", "cursor is a string");
                None
            }
        };
        if let Some(error) = problems.into_error("the query is invalid") {
            return Err(error);
        }
        Ok(ListRequest {
            query: ListQuery {
                filter,
                sort,
                limit,
                after,
                deleted,
            },
            total,
        })
    }

    fn sort(&self, value: Option<&Value>, problems: &mut Problems) -> Vec<SortKey> {
        let items: Vec<(String, Value)> = match value {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("/sort/{i}"), item.clone()))
                .collect(),
            Some(_) => {
                problems.push("/sort", "type", "sort is a list");
                return Vec::new();
            }
        };
        if items.len() > 8 {
            problems.push("/sort", "range", "at most 8 sort keys");
            return Vec::new();
        }
        let mut keys = Vec::new();
        for (pointer, item) in items {
            let (name, descending) = match &item {
                Value::String(text) => match text.strip_prefix('-') {
                    Some(name) => (name.to_owned(), true),
                    None => (text.clone(), false),
                },
                Value::Object(map) => {
                    let name = map.get("field").and_then(Value::as_str).unwrap_or_default();
                    let descending = match map.get("direction").and_then(Value::as_str) {
                        None | Some("asc") => false,
                        Some("desc") => true,
                        Some(_) => {
                            problems.push(
                                &format!("{pointer}/direction"),
                                "enum",
                                "direction is asc or desc",
                            );
                            false
                        }
                    };
                    (name.to_owned(), descending)
                }
                _ => {
                    problems.push(
                        &pointer,
                        "type",
                        "a sort key is \"field\", \"-field\" or {field, direction}",
                    );
                    continue;
                }
            };
            let resolved = match self.lookup(self.model, &name) {
                Lookup::Found(resolved) => Some(resolved),
                Lookup::Unknown => None,
                Lookup::Masked => {
                    problems.masked(&pointer, &name);
                    continue;
                }
            };
            match resolved {
                Some(resolved)
                    if resolved.field.is_none_or(|f| {
                        !matches!(f.kind.value_type(), ValueType::Array | ValueType::Opaque)
                    }) =>
                {
                    if resolved.system == Some(SystemField::Id) {
                        problems.push(
                            &pointer,
                            "sort",
                            "records are always ordered by id last; sort by another field",
                        );
                        continue;
                    }
                    keys.push(SortKey {
                        operand: resolved.operand,
                        descending,
                    });
                }
                Some(_) => problems.push(&pointer, "sort", format!("{name:?} cannot be sorted")),
                None => problems.push(&pointer, "unknown_field", format!("unknown field {name:?}")),
            }
        }
        keys
    }

    fn condition(
        &self,
        model: &EntityModel,
        value: &Value,
        pointer: &str,
        depth: usize,
        problems: &mut Problems,
        allow_related: bool,
    ) -> Option<Condition> {
        if depth > MAX_DEPTH {
            problems.push(
                pointer,
                "depth",
                format!("filters nest at most {MAX_DEPTH} deep"),
            );
            return None;
        }
        if problems.0.len() > MAX_CONDITIONS || problems.1.conditions > MAX_CONDITIONS {
            return None;
        }
        let Some(map) = value.as_object() else {
            problems.push(
                pointer,
                "type",
                "a filter is an object: {and}, {or}, {not} or {field, op, value}",
            );
            return None;
        };
        for (combinator, is_and) in [("and", true), ("or", false)] {
            if let Some(items) = map.get(combinator) {
                if map.len() != 1 {
                    problems.push(
                        pointer,
                        "filter",
                        format!("{combinator:?} stands alone in its object"),
                    );
                    return None;
                }
                let Some(items) = items.as_array() else {
                    problems.push(
                        &format!("{pointer}/{combinator}"),
                        "type",
                        "expected a list of filters",
                    );
                    return None;
                };
                if items.len() > MAX_CONDITIONS {
                    problems.push(
                        &format!("{pointer}/{combinator}"),
                        "range",
                        "too many conditions",
                    );
                    return None;
                }
                let parts: Vec<Condition> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        self.condition(
                            model,
                            item,
                            &format!("{pointer}/{combinator}/{i}"),
                            depth + 1,
                            problems,
                            allow_related,
                        )
                    })
                    .collect();
                return Some(if is_and {
                    Condition::All(parts)
                } else {
                    Condition::Any(parts)
                });
            }
        }
        if let Some(inner) = map.get("not") {
            if map.len() != 1 {
                problems.push(pointer, "filter", "\"not\" stands alone in its object");
                return None;
            }
            return self
                .condition(
                    model,
                    inner,
                    &format!("{pointer}/not"),
                    depth + 1,
                    problems,
                    allow_related,
                )
                .map(|c| Condition::Not(Box::new(c)));
        }
        for key in map.keys() {
            if !["field", "op", "value"].contains(&key.as_str()) {
                problems.push(
                    &format!("{pointer}/{}", codec::escape(key)),
                    "unknown_parameter",
                    format!("unknown filter key {key:?}"),
                );
                return None;
            }
        }
        let Some(name) = map.get("field").and_then(Value::as_str) else {
            problems.push(
                &format!("{pointer}/field"),
                "required",
                "a condition names a field",
            );
            return None;
        };
        problems.1.conditions += 1;
        if problems.1.conditions > MAX_CONDITIONS {
            problems.push(
                pointer,
                "range",
                format!("a filter holds at most {MAX_CONDITIONS} conditions in all"),
            );
            return None;
        }
        let op = map.get("op").and_then(Value::as_str).unwrap_or("eq");
        let value = map.get("value").unwrap_or(&Value::Null);
        self.test(model, name, op, value, pointer, problems, allow_related)
    }

    /// One `{field, op, value}` condition.
    #[allow(clippy::too_many_arguments)]
    fn test(
        &self,
        model: &EntityModel,
        name: &str,
        op: &str,
        value: &Value,
        pointer: &str,
        problems: &mut Problems,
        allow_related: bool,
    ) -> Option<Condition> {
        if let Some((via, rest)) = name.split_once('.') {
            let via_field = match self.lookup(model, via) {
                Lookup::Found(resolved) => resolved.field,
                Lookup::Unknown => None,
                Lookup::Masked => {
                    problems.masked(&format!("{pointer}/field"), via);
                    return None;
                }
            };
            let Some(FieldKind::Reference { entity, .. }) = via_field.map(|f| &f.kind) else {
                problems.push(
                    &format!("{pointer}/field"),
                    "unknown_field",
                    format!("{via:?} is not a reference field of {:?}", model.key),
                );
                return None;
            };
            if !allow_related {
                problems.push(
                    &format!("{pointer}/field"),
                    "depth",
                    "related filters go one reference deep",
                );
                return None;
            }
            let Some(target) = self.snapshot.entity(entity) else {
                problems.push(
                    &format!("{pointer}/field"),
                    "unknown_entity",
                    format!("entity {entity:?} is not published"),
                );
                return None;
            };
            // A filter through a reference sees only the related records the caller may read.
            let scope = match self.policy {
                Some(policy) => {
                    let reach = policy.grant(&target.key).read;
                    if reach == Reach::None {
                        problems.2.push(FieldError::new(
                            format!("{pointer}/field"),
                            "entity_forbidden",
                            format!("your role may not read {} records", target.key),
                        ));
                        return None;
                    }
                    let pool = target.pool.is_some() && policy.grant(&target.key).pool;
                    policy.condition(reach, target.definition_id, false, pool, true)
                }
                None => None,
            };
            let inner = self.test(&target, rest, op, value, pointer, problems, false)?;
            let inner = match scope {
                Some(scope) => Condition::All(vec![scope, inner]),
                None => inner,
            };
            return Some(Condition::Related {
                via: via.to_owned(),
                table: target.table(),
                condition: Box::new(inner),
            });
        }
        let resolved = match self.lookup(model, name) {
            Lookup::Found(resolved) => resolved,
            Lookup::Unknown => {
                problems.push(
                    &format!("{pointer}/field"),
                    "unknown_field",
                    format!("{:?} has no field {name:?}", model.key),
                );
                return None;
            }
            Lookup::Masked => {
                problems.masked(&format!("{pointer}/field"), name);
                return None;
            }
        };
        let value_pointer = format!("{pointer}/value");
        let is_person = matches!(resolved.field.map(|f| &f.kind), Some(FieldKind::User))
            || resolved
                .system
                .is_some_and(|s| s.name() == "owner" || s.name().ends_with("_by"));
        let expanded;
        let (op, value) = if is_person && mentions_people(value) {
            match self.expand_people(op, value) {
                Ok(found) => {
                    expanded = found;
                    (expanded.0, &expanded.1)
                }
                Err(message) => {
                    problems.push(&value_pointer, "person", message);
                    return None;
                }
            }
        } else {
            (op, value)
        };
        let operand = resolved.operand.clone();
        let kind_name = resolved.field.map_or_else(
            || resolved.system.map_or("", SystemField::name).to_owned(),
            |f| f.kind.name().to_owned(),
        );
        let refuse = |problems: &mut Problems| {
            problems.push(
                &format!("{pointer}/op"),
                "operator",
                format!("operator {op:?} does not apply to {name:?} ({kind_name})"),
            );
            None
        };
        let value_type = match &operand {
            Operand::Field { value_type, .. } => *value_type,
            Operand::System(s) if s.is_time() => ValueType::Text,
            Operand::System(_) => ValueType::Text,
        };
        let is_ordered = match resolved.field.map(|f| &f.kind) {
            Some(
                FieldKind::SingleSelect { .. }
                | FieldKind::Reference { .. }
                | FieldKind::User
                | FieldKind::Boolean,
            ) => false,
            Some(kind) => !matches!(kind.value_type(), ValueType::Array | ValueType::Opaque),
            None => resolved.system.is_some_and(SystemField::is_time),
        };
        let is_free_text = matches!(
            resolved.field.map(|f| &f.kind),
            Some(
                FieldKind::Text
                    | FieldKind::LongText
                    | FieldKind::Email
                    | FieldKind::Phone
                    | FieldKind::Url
                    | FieldKind::AutoNumber { .. }
            )
        );
        let is_date = matches!(
            resolved.field.map(|f| &f.kind),
            Some(FieldKind::Date | FieldKind::DateTime)
        ) || resolved.system.is_some_and(SystemField::is_time);
        let scalar =
            |v: &Value, at: &str, problems: &mut Problems| self.scalar(&resolved, v, at, problems);
        let predicate = match op {
            "is_empty" | "is_not_empty" => {
                let empty = match value {
                    Value::Null => op == "is_empty",
                    Value::Bool(b) => *b == (op == "is_empty"),
                    _ => {
                        problems.push(
                            &value_pointer,
                            "type",
                            "is_empty takes true, false or nothing",
                        );
                        return None;
                    }
                };
                Predicate::IsEmpty(empty)
            }
            _ if value_type == ValueType::Opaque => return refuse(problems),
            "contains" if value_type == ValueType::Array => {
                let options: Vec<Value> = match value {
                    Value::Array(items) => items.clone(),
                    other => vec![other.clone()],
                };
                if options.len() > 1000 || !problems.spend_values(options.len(), &value_pointer) {
                    if options.len() > 1000 {
                        problems.push(&value_pointer, "range", "at most 1000 values");
                    }
                    return None;
                }
                let mut found = Vec::new();
                for (i, option) in options.iter().enumerate() {
                    if let Some(Scalar::Text(text)) =
                        self.option(&resolved, option, &format!("{value_pointer}/{i}"), problems)
                    {
                        found.push(text);
                    }
                }
                Predicate::HasAny(found)
            }
            _ if value_type == ValueType::Array => return refuse(problems),
            "eq" | "ne" => {
                let v = scalar(value, &value_pointer, problems)?;
                if op == "eq" {
                    Predicate::Eq(v)
                } else {
                    Predicate::Ne(v)
                }
            }
            "lt" | "lte" | "gt" | "gte" => {
                if !is_ordered {
                    return refuse(problems);
                }
                let v = scalar(value, &value_pointer, problems)?;
                match op {
                    "lt" => Predicate::Lt(v),
                    "lte" => Predicate::Lte(v),
                    "gt" => Predicate::Gt(v),
                    _ => Predicate::Gte(v),
                }
            }
            "in" | "not_in" => {
                let Some(items) = value.as_array() else {
                    problems.push(&value_pointer, "type", format!("{op} takes a list"));
                    return None;
                };
                if items.len() > 1000 {
                    problems.push(&value_pointer, "range", "at most 1000 values");
                    return None;
                }
                if !problems.spend_values(items.len(), &value_pointer) {
                    return None;
                }
                let values: Vec<Scalar> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| scalar(item, &format!("{value_pointer}/{i}"), problems))
                    .collect();
                if op == "in" {
                    Predicate::In(values)
                } else {
                    Predicate::NotIn(values)
                }
            }
            "contains" | "starts_with" => {
                if !is_free_text {
                    return refuse(problems);
                }
                let Some(text) = value.as_str().filter(|t| !t.is_empty()) else {
                    problems.push(&value_pointer, "type", format!("{op} takes non-empty text"));
                    return None;
                };
                let text = if matches!(resolved.field.map(|f| &f.kind), Some(FieldKind::Email)) {
                    text.to_lowercase()
                } else {
                    text.to_owned()
                };
                if op == "contains" {
                    Predicate::Contains(text)
                } else {
                    Predicate::StartsWith(text)
                }
            }
            "between" => {
                if !is_ordered {
                    return refuse(problems);
                }
                let bounds = value.as_array().filter(|b| b.len() == 2);
                let Some(bounds) = bounds else {
                    problems.push(&value_pointer, "type", "between takes [from, to]");
                    return None;
                };
                let from = scalar(&bounds[0], &format!("{value_pointer}/0"), problems);
                let to = scalar(&bounds[1], &format!("{value_pointer}/1"), problems);
                let (from, to) = (from?, to?);
                Predicate::Range {
                    from: Some(from),
                    to: Some(to),
                    to_inclusive: true,
                }
            }
            "within" => {
                if !is_date {
                    return refuse(problems);
                }
                let Some(period) = value.as_str() else {
                    problems.push(
                        &value_pointer,
                        "type",
                        "within takes a period such as this_month",
                    );
                    return None;
                };
                let Some((start, end)) = period_bounds(period, self.now, self.time_zone) else {
                    problems.push(
                        &value_pointer,
                        "period",
                        format!("unknown period {period:?}; use {}", PERIODS.join(", ")),
                    );
                    return None;
                };
                let is_datetime =
                    matches!(resolved.field.map(|f| &f.kind), Some(FieldKind::DateTime));
                let bound = |date: NaiveDate| -> Scalar {
                    if is_datetime || resolved.system.is_some() {
                        let at = local_midnight(date, self.time_zone);
                        if resolved.system.is_some() {
                            Scalar::Time(at)
                        } else {
                            Scalar::Text(codec::canonical_datetime(at))
                        }
                    } else {
                        Scalar::Text(date.format("%Y-%m-%d").to_string())
                    }
                };
                Predicate::Range {
                    from: Some(bound(start)),
                    to: Some(bound(end)),
                    to_inclusive: false,
                }
            }
            _ => {
                problems.push(
                    &format!("{pointer}/op"),
                    "operator",
                    format!(
                        "unknown operator {op:?}; use eq, ne, lt, lte, gt, gte, in, not_in, contains, starts_with, is_empty, is_not_empty, between, within"
                    ),
                );
                return None;
            }
        };
        Some(Condition::Test { operand, predicate })
    }

    fn option(
        &self,
        resolved: &Resolved<'_>,
        value: &Value,
        pointer: &str,
        problems: &mut Problems,
    ) -> Option<Scalar> {
        let Some(FieldKind::MultiSelect { options } | FieldKind::SingleSelect { options }) =
            resolved.field.map(|f| &f.kind)
        else {
            return None;
        };
        match value.as_str() {
            Some(text) if options.iter().any(|o| o == text) => Some(Scalar::Text(text.to_owned())),
            _ => {
                problems.push(
                    pointer,
                    "option",
                    format!("{value} is not one of the options: {}", options.join(", ")),
                );
                None
            }
        }
    }

    /// A filter operand value in stored form.
    fn scalar(
        &self,
        resolved: &Resolved<'_>,
        value: &Value,
        pointer: &str,
        problems: &mut Problems,
    ) -> Option<Scalar> {
        if let Some(system) = resolved.system {
            let parsed = match system {
                SystemField::CreatedAt | SystemField::UpdatedAt => value
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| Scalar::Time(t.with_timezone(&Utc))),
                _ => value
                    .as_str()
                    .and_then(|t| Uuid::parse_str(t).ok())
                    .map(Scalar::Uuid),
            };
            if parsed.is_none() {
                problems.push(
                    pointer,
                    "format",
                    format!("{value} is not a valid {}", system.name()),
                );
            }
            return parsed;
        }
        let field = resolved.field?;
        if let FieldKind::SingleSelect { .. } = field.kind {
            return self.option(resolved, value, pointer, problems);
        }
        if matches!(field.kind, FieldKind::AutoNumber { .. }) {
            // Computed values compare as what they store.
            return match (field.kind.value_type(), value) {
                (ValueType::Text, Value::String(s)) => Some(Scalar::Text(s.clone())),
                (ValueType::Integer, Value::Number(n)) if n.is_i64() => n.as_i64().map(Scalar::Int),
                (ValueType::Real, Value::Number(n)) => n.as_f64().map(Scalar::Real),
                (ValueType::Boolean, Value::Bool(b)) => Some(Scalar::Bool(*b)),
                _ => {
                    problems.push(
                        pointer,
                        "type",
                        format!("{value} does not match field {:?}", field.key),
                    );
                    None
                }
            };
        }
        match codec::encode_value(field, value, pointer) {
            Ok(Some(stored)) => match codec::scalar_of(field, &stored) {
                Some(scalar) => Some(scalar),
                None => {
                    problems.push(pointer, "type", "this value cannot be compared");
                    None
                }
            },
            Ok(None) => {
                problems.push(pointer, "type", "use is_empty to test for empty values");
                None
            }
            Err(problem) => {
                problems.0.push(problem);
                None
            }
        }
    }

    /// Parses an aggregate request body.
    ///
    /// # Errors
    /// `Error::Invalid` listing every problem.
    pub fn aggregate(&self, body: &Value) -> Result<AggregateQuery, Error> {
        refuse_nul(body)?;
        let mut problems = Problems::new();
        let Some(object) = body.as_object() else {
            return Err(Error::invalid("", "type", "an aggregate is a JSON object"));
        };
        for key in object.keys() {
            if !["filter", "group_by", "metrics", "limit"].contains(&key.as_str()) {
                problems.push(
                    &format!("/{}", codec::escape(key)),
                    "unknown_parameter",
                    format!("unknown parameter {key:?}"),
                );
            }
        }
        let filter = object
            .get("filter")
            .filter(|f| !f.is_null())
            .and_then(|f| self.condition(self.model, f, "/filter", 0, &mut problems, true));
        let mut groups = Vec::new();
        let group_items = object
            .get("group_by")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if object
            .get("group_by")
            .is_some_and(|g| !g.is_array() && !g.is_null())
        {
            problems.push("/group_by", "type", "group_by is a list");
        }
        if group_items.len() > 4 {
            problems.push("/group_by", "range", "at most 4 group keys");
        }
        for (i, item) in group_items.iter().enumerate().take(4) {
            let pointer = format!("/group_by/{i}");
            let (name, bucket) = match item {
                Value::String(name) => (name.clone(), None),
                Value::Object(map) => (
                    map.get("field")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    map.get("bucket").and_then(Value::as_str).map(str::to_owned),
                ),
                _ => {
                    problems.push(
                        &pointer,
                        "type",
                        "a group key is \"field\" or {field, bucket}",
                    );
                    continue;
                }
            };
            let resolved = match self.lookup(self.model, &name) {
                Lookup::Found(resolved) => resolved,
                Lookup::Unknown => {
                    problems.push(&pointer, "unknown_field", format!("unknown field {name:?}"));
                    continue;
                }
                Lookup::Masked => {
                    problems.masked(&pointer, &name);
                    continue;
                }
            };
            let is_datetime = matches!(resolved.field.map(|f| &f.kind), Some(FieldKind::DateTime));
            let is_date = is_datetime
                || matches!(resolved.field.map(|f| &f.kind), Some(FieldKind::Date))
                || resolved.system.is_some_and(SystemField::is_time);
            let bucket = match bucket {
                None if is_datetime || resolved.system.is_some_and(SystemField::is_time) => {
                    Some(Bucket::Day)
                }
                None => None,
                Some(name) => match Bucket::parse(&name) {
                    Some(bucket) if is_date => Some(bucket),
                    Some(_) => {
                        problems.push(
                            &format!("{pointer}/bucket"),
                            "bucket",
                            "buckets apply to dates and datetimes",
                        );
                        None
                    }
                    None => {
                        problems.push(
                            &format!("{pointer}/bucket"),
                            "enum",
                            "bucket is day, week, month, quarter or year",
                        );
                        None
                    }
                },
            };
            if resolved.field.is_some_and(|f| {
                matches!(f.kind.value_type(), ValueType::Array | ValueType::Opaque)
            }) {
                problems.push(&pointer, "group", format!("{name:?} cannot be grouped"));
                continue;
            }
            groups.push(Group {
                operand: resolved.operand,
                bucket,
                is_datetime,
            });
        }
        let mut metrics = Vec::new();
        let metric_items = object
            .get("metrics")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_else(|| vec![serde_json::json!({"op": "count"})]);
        if object
            .get("metrics")
            .is_some_and(|m| !m.is_array() && !m.is_null())
        {
            problems.push("/metrics", "type", "metrics is a list");
        }
        if metric_items.is_empty() {
            problems.push(
                "/metrics",
                "range",
                "name at least one metric, such as {\"op\": \"count\"}",
            );
        }
        if metric_items.len() > 16 {
            problems.push("/metrics", "range", "at most 16 metrics");
        }
        for (i, item) in metric_items.iter().enumerate().take(16) {
            let pointer = format!("/metrics/{i}");
            let op_name = item.get("op").and_then(Value::as_str).unwrap_or_default();
            let Some(op) = MetricOp::parse(op_name) else {
                problems.push(
                    &format!("{pointer}/op"),
                    "enum",
                    "op is count, sum, avg, min or max",
                );
                continue;
            };
            let operand = match (op, item.get("field").and_then(Value::as_str)) {
                (MetricOp::Count, None) => None,
                (_, None) => {
                    problems.push(
                        &format!("{pointer}/field"),
                        "required",
                        format!("{op_name} needs a field"),
                    );
                    continue;
                }
                (_, Some(name)) => {
                    let resolved = match self.lookup(self.model, name) {
                        Lookup::Found(resolved) => resolved,
                        Lookup::Unknown => {
                            problems.push(
                                &format!("{pointer}/field"),
                                "unknown_field",
                                format!("unknown field {name:?}"),
                            );
                            continue;
                        }
                        Lookup::Masked => {
                            problems.masked(&format!("{pointer}/field"), name);
                            continue;
                        }
                    };
                    let numeric = resolved.field.is_some_and(|f| {
                        matches!(f.kind.value_type(), ValueType::Integer | ValueType::Real)
                    });
                    let orderable = numeric
                        || resolved.field.is_some_and(|f| {
                            matches!(f.kind, FieldKind::Date | FieldKind::DateTime)
                        });
                    let fits = match op {
                        MetricOp::Count => true,
                        MetricOp::Sum | MetricOp::Avg => numeric,
                        MetricOp::Min | MetricOp::Max => orderable,
                    };
                    if !fits {
                        problems.push(
                            &format!("{pointer}/field"),
                            "field_kind",
                            format!("{op_name} does not apply to {name:?}"),
                        );
                        continue;
                    }
                    Some(resolved.operand)
                }
            };
            metrics.push(Metric { op, operand });
        }
        let limit = match object.get("limit") {
            None | Some(Value::Null) => MAX_GROUPS,
            Some(value) => match value.as_u64() {
                Some(n) if (1..=MAX_GROUPS).contains(&n) => n,
                _ => {
                    problems.push(
                        "/limit",
                        "range",
                        format!("limit is a whole number from 1 to {MAX_GROUPS}"),
                    );
                    MAX_GROUPS
                }
            },
        };
        if let Some(error) = problems.into_error("the aggregate is invalid") {
            return Err(error);
        }
        Ok(AggregateQuery {
            filter,
            groups,
            metrics,
            time_zone: self.time_zone,
            limit,
        })
    }
}

/// The relative periods `within` accepts.
pub const PERIODS: [&str; 16] = [
    "today",
    "yesterday",
    "tomorrow",
    "this_week",
    "last_week",
    "next_week",
    "this_month",
    "last_month",
    "next_month",
    "this_quarter",
    "last_quarter",
    "this_year",
    "last_year",
    "last_7_days",
    "last_30_days",
    "next_7_days",
];

fn month_start(year: i32, month: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, 1)
}

fn add_months(date: NaiveDate, months: i32) -> Option<NaiveDate> {
    let total = date.year() * 12 + date.month0() as i32 + months;
    month_start(total.div_euclid(12), total.rem_euclid(12) as u32 + 1)
}

/// The local dates `[start, end)` of a relative period, in the workspace zone.
pub fn period_bounds(
    period: &str,
    now: chrono::DateTime<Utc>,
    zone: chrono_tz::Tz,
) -> Option<(NaiveDate, NaiveDate)> {
    let today = now.with_timezone(&zone).date_naive();
    let day = Duration::days(1);
    let week_start = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let month = month_start(today.year(), today.month())?;
    let quarter = month_start(today.year(), (today.month0() / 3) * 3 + 1)?;
    let year = month_start(today.year(), 1)?;
    Some(match period {
        "today" => (today, today + day),
        "yesterday" => (today - day, today),
        "tomorrow" => (today + day, today + day + day),
        "this_week" => (week_start, week_start + Duration::days(7)),
        "last_week" => (week_start - Duration::days(7), week_start),
        "next_week" => (
            week_start + Duration::days(7),
            week_start + Duration::days(14),
        ),
        "this_month" => (month, add_months(month, 1)?),
        "last_month" => (add_months(month, -1)?, month),
        "next_month" => (add_months(month, 1)?, add_months(month, 2)?),
        "this_quarter" => (quarter, add_months(quarter, 3)?),
        "last_quarter" => (add_months(quarter, -3)?, quarter),
        "this_year" => (year, add_months(year, 12)?),
        "last_year" => (add_months(year, -12)?, year),
        "last_7_days" => (today - Duration::days(6), today + day),
        "last_30_days" => (today - Duration::days(29), today + day),
        "next_7_days" => (today, today + Duration::days(7)),
        _ => return None,
    })
}

/// The instant a local date starts in `zone` (the first valid instant on a DST gap day).
pub fn local_midnight(date: NaiveDate, zone: chrono_tz::Tz) -> chrono::DateTime<Utc> {
    let mut time = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..4 {
        if let Some(at) = zone.from_local_datetime(&time).earliest() {
            return at.with_timezone(&Utc);
        }
        time += Duration::hours(1);
    }
    Utc.from_utc_datetime(&time)
}

fn fingerprint(sort: &[SortKey]) -> String {
    sort.iter()
        .map(|k| {
            let name = match &k.operand {
                Operand::Field { key, .. } => key.clone(),
                Operand::System(s) => s.name().to_owned(),
            };
            if k.descending {
                format!("-{name}")
            } else {
                name
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Encodes a keyset cursor: the sort values and id of a page's last record.
pub fn encode_cursor(sort: &[SortKey], values: &[Option<Scalar>], id: Uuid) -> String {
    use base64::Engine;
    let body = serde_json::json!({
        "s": fingerprint(sort),
        "v": values.iter().map(|v| v.as_ref().map_or(Value::Null, Scalar::to_json)).collect::<Vec<_>>(),
        "id": id.to_string(),
    });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.to_string())
}

fn decode_cursor(cursor: &str, sort: &[SortKey]) -> Option<(Vec<Option<Scalar>>, Uuid)> {
    use base64::Engine;
    if cursor.len() > 4096 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let body: Value = serde_json::from_slice(&bytes).ok()?;
    if body.get("s")?.as_str()? != fingerprint(sort) {
        return None;
    }
    let id = Uuid::parse_str(body.get("id")?.as_str()?).ok()?;
    let raw = body.get("v")?.as_array()?;
    if raw.len() != sort.len() {
        return None;
    }
    let mut values = Vec::new();
    for (key, value) in sort.iter().zip(raw) {
        if value.is_null() {
            values.push(None);
            continue;
        }
        let scalar = match &key.operand {
            Operand::Field { value_type, .. } => match (value_type, value) {
                (ValueType::Text, Value::String(s)) if s.contains('\0') => return None,
                (ValueType::Text, Value::String(s)) => Scalar::Text(s.clone()),
                (ValueType::Integer, Value::Number(n)) => Scalar::Int(n.as_i64()?),
                (ValueType::Real, Value::Number(n)) => Scalar::Real(n.as_f64()?),
                (ValueType::Boolean, Value::Bool(b)) => Scalar::Bool(*b),
                _ => return None,
            },
            Operand::System(s) if s.is_time() => Scalar::Time(
                chrono::DateTime::parse_from_rfc3339(value.as_str()?)
                    .ok()?
                    .with_timezone(&Utc),
            ),
            Operand::System(_) => Scalar::Uuid(Uuid::parse_str(value.as_str()?).ok()?),
        };
        values.push(Some(scalar));
    }
    Some((values, id))
}

/// Turns URL query pairs into the JSON form of a list query:
/// `filter={json}` or `filter[field][op]=value` (ANDed; `in`/`not_in`/`between` take
/// comma-separated values), `sort=-budget,name`, `limit`, `cursor`, `total`, `deleted`.
///
/// # Errors
/// `Error::Invalid` naming the parameter.
pub fn from_url(pairs: &[(String, String)]) -> Result<Value, Error> {
    let mut body = Map::new();
    let mut conditions = Vec::new();
    for (key, value) in pairs {
        let pointer = format!("/{}", codec::escape(key));
        if key.contains('\0') || value.contains('\0') {
            return Err(Error::invalid(
                pointer,
                "nul_character",
                "text may not contain the NUL character (U+0000)",
            ));
        }
        match key.as_str() {
            "filter" => {
                let parsed: Value = serde_json::from_str(value).map_err(|e| {
                    Error::invalid(
                        pointer.clone(),
                        "json",
                        format!("filter is not valid JSON: {e}"),
                    )
                })?;
                conditions.push(parsed);
            }
            "sort" => {
                let keys: Vec<Value> = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect();
                body.insert("sort".to_owned(), Value::Array(keys));
            }
            "limit" => {
                let n: u64 = value
                    .parse()
                    .map_err(|_| Error::invalid(pointer.clone(), "type", "limit is a number"))?;
                body.insert("limit".to_owned(), Value::from(n));
            }
            "cursor" | "total" => {
                body.insert(key.clone(), Value::String(value.clone()));
            }
            "deleted" => {
                let flag = match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(Error::invalid(pointer, "type", "deleted is true or false")),
                };
                body.insert("deleted".to_owned(), Value::Bool(flag));
            }
            other => {
                let Some(inner) = other.strip_prefix("filter[") else {
                    return Err(Error::invalid(
                        pointer,
                        "unknown_parameter",
                        format!("unknown query parameter {other:?}"),
                    ));
                };
                let (field, op) = match inner.split_once("][") {
                    Some((field, rest)) => (field, rest.strip_suffix(']').unwrap_or(rest)),
                    None => (inner.strip_suffix(']').unwrap_or(inner), "eq"),
                };
                let operand = match op {
                    "in" | "not_in" | "between" => {
                        Value::Array(value.split(',').map(url_scalar).collect())
                    }
                    "is_empty" | "is_not_empty" => match value.as_str() {
                        "" | "true" => Value::Bool(true),
                        "false" => Value::Bool(false),
                        _ => {
                            return Err(Error::invalid(
                                pointer,
                                "type",
                                "is_empty takes true or false",
                            ));
                        }
                    },
                    "contains" | "starts_with" | "within" => Value::String(value.clone()),
                    _ => url_scalar(value),
                };
                conditions.push(serde_json::json!({"field": field, "op": op, "value": operand}));
            }
        }
    }
    if !conditions.is_empty() {
        let filter = if conditions.len() == 1 {
            conditions.pop().unwrap_or(Value::Null)
        } else {
            serde_json::json!({"and": conditions})
        };
        body.insert("filter".to_owned(), filter);
    }
    Ok(Value::Object(body))
}

/// A URL value: numbers and booleans as JSON, everything else as text (field kinds accept
/// numbers and decimal strings alike where it matters).
fn url_scalar(text: &str) -> Value {
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => text
            .parse::<i64>()
            .map(Value::from)
            .ok()
            .or_else(|| {
                text.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && !text.contains(['e', 'E']))
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            })
            .unwrap_or_else(|| Value::String(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_follow_the_workspace_zone() {
        let zone: chrono_tz::Tz = "Asia/Shanghai".parse().expect("zone");
        // 2026-11-30 20:00 UTC is already December 1st in Shanghai.
        let now = Utc
            .with_ymd_and_hms(2026, 11, 30, 20, 0, 0)
            .single()
            .expect("time");
        let (start, end) = period_bounds("this_month", now, zone).expect("bounds");
        assert_eq!(start.to_string(), "2026-12-01");
        assert_eq!(end.to_string(), "2027-01-01");
        let (start, end) = period_bounds("last_quarter", now, zone).expect("bounds");
        assert_eq!(
            (start.to_string(), end.to_string()),
            ("2026-07-01".to_owned(), "2026-10-01".to_owned())
        );
        let (start, _) = period_bounds("this_week", now, zone).expect("bounds");
        assert_eq!(start.to_string(), "2026-11-30");
        assert_eq!(
            codec::canonical_datetime(local_midnight(start, zone)),
            "2026-11-29T16:00:00.000Z"
        );
    }

    #[test]
    fn url_filters_become_json() {
        let pairs = vec![
            ("filter[stage]".to_owned(), "qualified".to_owned()),
            ("filter[budget][gt]".to_owned(), "50000".to_owned()),
            ("sort".to_owned(), "-budget".to_owned()),
        ];
        let body = from_url(&pairs).expect("parses");
        assert_eq!(
            body,
            serde_json::json!({
                "sort": ["-budget"],
                "filter": {"and": [
                    {"field": "stage", "op": "eq", "value": "qualified"},
                    {"field": "budget", "op": "gt", "value": 50000}
                ]}
            })
        );
    }
}
