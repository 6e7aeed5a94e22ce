//! The query AST for record lists and aggregates, already resolved against an entity (every
//! field known, every operand typed), and its in-memory meaning. `store::query` compiles it to
//! SQL; the in-memory evaluation defines what the SQL must return (the property test compares
//! the two).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

/// How a field's value compares in SQL and in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Compared as text (code-point order): text kinds, dates, datetimes, ids.
    Text,
    /// Compared as a 64-bit integer (integers, money in minor units).
    Integer,
    /// Compared as a double.
    Real,
    /// True/false.
    Boolean,
    /// An array of option values (multi select).
    Array,
    /// Not comparable (attachments, sub-tables): only `is_empty` applies.
    Opaque,
}

/// A typed operand value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// Text (also dates, datetimes and ids stored in the document).
    Text(String),
    /// A 64-bit integer (integers, money in minor units).
    Int(i64),
    /// A double.
    Real(f64),
    /// A boolean.
    Bool(bool),
    /// A system timestamp column.
    Time(DateTime<Utc>),
    /// A system id column.
    Uuid(Uuid),
}

impl Scalar {
    /// Orders two scalars of the same type (different types are unordered).
    pub fn compare(&self, other: &Scalar) -> Option<Ordering> {
        match (self, other) {
            (Self::Text(a), Self::Text(b)) => Some(a.cmp(b)),
            (Self::Int(a), Self::Int(b)) => Some(a.cmp(b)),
            (Self::Real(a), Self::Real(b)) => a.partial_cmp(b),
            (Self::Int(a), Self::Real(b)) => (*a as f64).partial_cmp(b),
            (Self::Real(a), Self::Int(b)) => a.partial_cmp(&(*b as f64)),
            (Self::Bool(a), Self::Bool(b)) => Some(a.cmp(b)),
            (Self::Time(a), Self::Time(b)) => Some(a.cmp(b)),
            (Self::Uuid(a), Self::Uuid(b)) => Some(a.to_string().cmp(&b.to_string())),
            _ => None,
        }
    }

    /// The scalar as JSON (for cursors and results).
    pub fn to_json(&self) -> Value {
        match self {
            Self::Text(s) => Value::String(s.clone()),
            Self::Int(i) => Value::from(*i),
            Self::Real(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Self::Bool(b) => Value::Bool(*b),
            Self::Time(t) => Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            Self::Uuid(u) => Value::String(u.to_string()),
        }
    }
}

/// A record column that is not a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemField {
    /// The record id.
    Id,
    /// The owner.
    Owner,
    /// Creation time.
    CreatedAt,
    /// Last change time.
    UpdatedAt,
    /// Who created it.
    CreatedBy,
    /// Who changed it last.
    UpdatedBy,
}

impl SystemField {
    /// The name in queries and in the record shape.
    pub fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Owner => "owner",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::CreatedBy => "created_by",
            Self::UpdatedBy => "updated_by",
        }
    }

    /// Parses a system field name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Id,
            Self::Owner,
            Self::CreatedAt,
            Self::UpdatedAt,
            Self::CreatedBy,
            Self::UpdatedBy,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }

    /// The column holding it.
    pub fn column(self) -> &'static str {
        match self {
            Self::Owner => "owner_id",
            other => other.name(),
        }
    }

    /// Whether it is a timestamp.
    pub fn is_time(self) -> bool {
        matches!(self, Self::CreatedAt | Self::UpdatedAt)
    }
}

/// What a condition tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A field in the record document.
    Field {
        /// Its key.
        key: String,
        /// How it compares.
        value_type: ValueType,
    },
    /// A system column.
    System(SystemField),
}

/// A test applied to an operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// Equal.
    Eq(Scalar),
    /// Not equal (empty values count as not equal).
    Ne(Scalar),
    /// Less than.
    Lt(Scalar),
    /// At most.
    Lte(Scalar),
    /// Greater than.
    Gt(Scalar),
    /// At least.
    Gte(Scalar),
    /// One of.
    In(Vec<Scalar>),
    /// None of (empty values count as none of).
    NotIn(Vec<Scalar>),
    /// Text contains, ignoring ASCII case.
    Contains(String),
    /// Text starts with (exact case).
    StartsWith(String),
    /// A multi-select holds at least one of the options.
    HasAny(Vec<String>),
    /// Is empty (true) or not empty (false).
    IsEmpty(bool),
    /// Within `[from, to)`; either end may be open. Relative dates and `between` compile here
    /// (`between` is inclusive: the caller passes `to` as an inclusive `Lte` instead).
    Range {
        /// Inclusive lower bound.
        from: Option<Scalar>,
        /// Upper bound.
        to: Option<Scalar>,
        /// Whether `to` is inclusive.
        to_inclusive: bool,
    },
}

/// A filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Every condition holds (true when empty).
    All(Vec<Condition>),
    /// At least one holds (false when empty).
    Any(Vec<Condition>),
    /// The condition does not hold.
    Not(Box<Condition>),
    /// A test on an operand of this record.
    Test {
        /// What is tested.
        operand: Operand,
        /// How.
        predicate: Predicate,
    },
    /// The record's reference field points at a live record of `table` matching `condition`.
    Related {
        /// The reference field.
        via: String,
        /// The referenced entity's table.
        table: String,
        /// The condition on the referenced record.
        condition: Box<Condition>,
    },
    /// The record is owned by one of these people (an access scope: compiled so that it narrows
    /// the index a query walks rather than choosing it).
    OwnedBy(Vec<Uuid>),
    /// The record is shared with a person as a collaborator (with edit rights, if `edit`).
    SharedWith {
        /// The entity's definition id.
        entity_id: Uuid,
        /// The person.
        account_id: Uuid,
        /// Only shares that allow editing.
        edit: bool,
    },
}

/// One sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// What to sort by.
    pub operand: Operand,
    /// Largest first. Empty values are the smallest: first ascending, last descending.
    pub descending: bool,
}

/// Which records a query sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deleted {
    /// Live records only.
    #[default]
    Exclude,
    /// Soft-deleted records only (the trash).
    Only,
}

/// A list query.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Filter (all records when `None`).
    pub filter: Option<Condition>,
    /// Sort keys; the id breaks ties.
    pub sort: Vec<SortKey>,
    /// Page size.
    pub limit: u64,
    /// Keyset cursor: the sort values and id of the last record of the previous page.
    pub after: Option<(Vec<Option<Scalar>>, Uuid)>,
    /// Live or deleted records.
    pub deleted: Deleted,
}

/// A date bucket for grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// `2026-11-25`.
    Day,
    /// ISO week `2026-W48`.
    Week,
    /// `2026-11`.
    Month,
    /// `2026-Q4`.
    Quarter,
    /// `2026`.
    Year,
}

impl Bucket {
    /// Parses a bucket name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            "quarter" => Some(Self::Quarter),
            "year" => Some(Self::Year),
            _ => None,
        }
    }

    /// The bucket label of a date.
    pub fn label(self, date: chrono::NaiveDate) -> String {
        use chrono::Datelike;
        match self {
            Self::Day => date.format("%Y-%m-%d").to_string(),
            Self::Week => {
                let week = date.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
            Self::Month => date.format("%Y-%m").to_string(),
            Self::Quarter => format!("{}-Q{}", date.year(), (date.month() - 1) / 3 + 1),
            Self::Year => date.format("%Y").to_string(),
        }
    }
}

/// A group-by key.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The field or system column.
    pub operand: Operand,
    /// For dates and datetimes: the bucket.
    pub bucket: Option<Bucket>,
    /// For datetimes: the workspace time zone the buckets are cut in.
    pub is_datetime: bool,
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricOp {
    /// Number of records.
    Count,
    /// Sum.
    Sum,
    /// Mean.
    Avg,
    /// Smallest.
    Min,
    /// Largest.
    Max,
}

impl MetricOp {
    /// Parses a metric name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "count" => Some(Self::Count),
            "sum" => Some(Self::Sum),
            "avg" => Some(Self::Avg),
            "min" => Some(Self::Min),
            "max" => Some(Self::Max),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
        }
    }
}

/// One metric of an aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The function.
    pub op: MetricOp,
    /// Its field (`None` for `count`).
    pub operand: Option<Operand>,
}

/// An aggregate query.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateQuery {
    /// Filter.
    pub filter: Option<Condition>,
    /// Group keys (none: one row over everything).
    pub groups: Vec<Group>,
    /// Metrics.
    pub metrics: Vec<Metric>,
    /// The workspace time zone (datetime buckets).
    pub time_zone: chrono_tz::Tz,
    /// Most groups returned (in group order).
    pub limit: u64,
}

/// A record as the in-memory evaluator sees it.
#[derive(Debug, Clone)]
pub struct RecordFacts<'a> {
    /// The stored document.
    pub doc: &'a Map<String, Value>,
    /// System columns.
    pub id: Uuid,
    /// Owner.
    pub owner: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Updated.
    pub updated_at: DateTime<Utc>,
}

/// The value of an operand in a stored record, as a scalar (`None` when empty).
pub fn value_of(operand: &Operand, record: &RecordFacts<'_>) -> Option<Scalar> {
    match operand {
        Operand::System(field) => match field {
            SystemField::Id => Some(Scalar::Uuid(record.id)),
            SystemField::Owner => record.owner.map(Scalar::Uuid),
            SystemField::CreatedAt => Some(Scalar::Time(record.created_at)),
            SystemField::UpdatedAt => Some(Scalar::Time(record.updated_at)),
            SystemField::CreatedBy | SystemField::UpdatedBy => None,
        },
        Operand::Field { key, value_type } => {
            let value = record.doc.get(key)?;
            match (value_type, value) {
                (ValueType::Text, Value::String(s)) => Some(Scalar::Text(s.clone())),
                (ValueType::Integer, Value::Number(n)) => n.as_i64().map(Scalar::Int),
                (ValueType::Real, Value::Number(n)) => n.as_f64().map(Scalar::Real),
                (ValueType::Boolean, Value::Bool(b)) => Some(Scalar::Bool(*b)),
                _ => None,
            }
        }
    }
}

fn options_of(operand: &Operand, record: &RecordFacts<'_>) -> Vec<String> {
    match operand {
        Operand::Field { key, .. } => record
            .doc
            .get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        Operand::System(_) => Vec::new(),
    }
}

fn is_empty(operand: &Operand, record: &RecordFacts<'_>) -> bool {
    match operand {
        Operand::Field { key, .. } => record.doc.get(key).is_none_or(Value::is_null),
        Operand::System(_) => value_of(operand, record).is_none(),
    }
}

fn cmp_is(value: Option<&Scalar>, operand: &Scalar, accept: impl Fn(Ordering) -> bool) -> bool {
    value.and_then(|v| v.compare(operand)).is_some_and(accept)
}

impl Condition {
    /// Whether a record satisfies the condition. `Related` and `SharedWith` conditions need
    /// other rows and are not evaluated here (they answer false).
    pub fn matches(&self, record: &RecordFacts<'_>) -> bool {
        match self {
            Self::All(items) => items.iter().all(|c| c.matches(record)),
            Self::Any(items) => items.iter().any(|c| c.matches(record)),
            Self::Not(inner) => !inner.matches(record),
            Self::Related { .. } | Self::SharedWith { .. } => false,
            Self::OwnedBy(owners) => record.owner.is_some_and(|o| owners.contains(&o)),
            Self::Test { operand, predicate } => {
                let value = value_of(operand, record);
                let v = value.as_ref();
                match predicate {
                    Predicate::Eq(x) => cmp_is(v, x, Ordering::is_eq),
                    Predicate::Ne(x) => !cmp_is(v, x, Ordering::is_eq),
                    Predicate::Lt(x) => cmp_is(v, x, Ordering::is_lt),
                    Predicate::Lte(x) => cmp_is(v, x, Ordering::is_le),
                    Predicate::Gt(x) => cmp_is(v, x, Ordering::is_gt),
                    Predicate::Gte(x) => cmp_is(v, x, Ordering::is_ge),
                    Predicate::In(xs) => xs.iter().any(|x| cmp_is(v, x, Ordering::is_eq)),
                    Predicate::NotIn(xs) => !xs.iter().any(|x| cmp_is(v, x, Ordering::is_eq)),
                    Predicate::Contains(needle) => match v {
                        Some(Scalar::Text(s)) => s
                            .to_ascii_lowercase()
                            .contains(&needle.to_ascii_lowercase()),
                        _ => false,
                    },
                    Predicate::StartsWith(prefix) => match v {
                        Some(Scalar::Text(s)) => s.starts_with(prefix.as_str()),
                        _ => false,
                    },
                    Predicate::HasAny(wanted) => {
                        let held = options_of(operand, record);
                        wanted.iter().any(|w| held.contains(w))
                    }
                    Predicate::IsEmpty(empty) => is_empty(operand, record) == *empty,
                    Predicate::Range {
                        from,
                        to,
                        to_inclusive,
                    } => {
                        v.is_some()
                            && from.as_ref().is_none_or(|f| cmp_is(v, f, Ordering::is_ge))
                            && to.as_ref().is_none_or(|t| {
                                if *to_inclusive {
                                    cmp_is(v, t, Ordering::is_le)
                                } else {
                                    cmp_is(v, t, Ordering::is_lt)
                                }
                            })
                    }
                }
            }
        }
    }
}

/// Orders two optional scalars with empty values smallest.
pub fn order_values(a: Option<&Scalar>, b: Option<&Scalar>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.compare(y).unwrap_or(Ordering::Equal),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn facts(doc: &Map<String, Value>) -> RecordFacts<'_> {
        RecordFacts {
            doc,
            id: Uuid::nil(),
            owner: None,
            created_at: DateTime::<Utc>::MIN_UTC,
            updated_at: DateTime::<Utc>::MIN_UTC,
        }
    }

    fn field(key: &str, value_type: ValueType) -> Operand {
        Operand::Field {
            key: key.to_owned(),
            value_type,
        }
    }

    #[test]
    fn empty_values_are_not_equal_to_anything() {
        let doc = json!({"stage": "won"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let ne = Condition::Test {
            operand: field("budget", ValueType::Integer),
            predicate: Predicate::Ne(Scalar::Int(5)),
        };
        let gt = Condition::Test {
            operand: field("budget", ValueType::Integer),
            predicate: Predicate::Gt(Scalar::Int(5)),
        };
        assert!(ne.matches(&facts(&doc)));
        assert!(!gt.matches(&facts(&doc)));
    }

    #[test]
    fn buckets_label_dates() {
        let date = chrono::NaiveDate::from_ymd_opt(2027, 1, 1).expect("date");
        assert_eq!(Bucket::Week.label(date), "2026-W53");
        assert_eq!(Bucket::Quarter.label(date), "2027-Q1");
        assert_eq!(Bucket::Month.label(date), "2027-01");
    }
}
