//! Report definitions: the typed form of a document, the checks that refuse a bad one at save
//! with a JSON pointer (and line and column inside formulas and templates), and periods.

use chrono::{Datelike, Duration, NaiveDate};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, FieldError};
use crate::script::{Script, ScriptEngine};

/// Fields every record has that reports may group by or filter periods on.
pub const SYSTEM_FIELDS: [&str; 5] = [
    "owner",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
];
const SYSTEM_TIMES: [&str; 2] = ["created_at", "updated_at"];
const DATE_KINDS: [&str; 2] = ["date", "datetime"];
const NUMERIC_KINDS: [&str; 4] = ["integer", "number", "money", "percent"];
const UNGROUPABLE_KINDS: [&str; 4] = ["multi_select", "sub_table", "attachment", "long_text"];

/// The named periods a report or dashboard filter accepts.
pub const PERIODS: [&str; 17] = [
    "all",
    "today",
    "yesterday",
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "this_quarter",
    "last_quarter",
    "this_year",
    "last_year",
    "last_7_days",
    "last_30_days",
    "last_90_days",
    "last_12_months",
    "this_fiscal_year",
    "last_fiscal_year",
];

/// A time period: everything, a named relative period, or dates from and to (both included).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Period {
    /// A named period (`this_month`, `all`, …).
    Named(String),
    /// From and to, both included.
    Range {
        /// First day.
        from: NaiveDate,
        /// Last day.
        to: NaiveDate,
    },
}

impl Period {
    /// Parses a period as a query string gives it: a name, or `from..to`.
    ///
    /// # Errors
    /// `Error::Invalid` at `pointer`.
    pub fn parse(text: &str, pointer: &str) -> Result<Self, Error> {
        if let Some((from, to)) = text.split_once("..") {
            let date = |s: &str| {
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                    .ok()
                    .filter(|d| (MIN_YEAR..=MAX_YEAR).contains(&d.year()))
            };
            return match (date(from), date(to)) {
                (Some(from), Some(to)) if from <= to => Ok(Self::Range { from, to }),
                _ => Err(Error::invalid(
                    pointer,
                    "period",
                    format!(
                        "a range of dates is YYYY-MM-DD..YYYY-MM-DD (years {MIN_YEAR}–{MAX_YEAR}), the first not after the second"
                    ),
                )),
            };
        }
        if PERIODS.contains(&text) {
            Ok(Self::Named(text.to_owned()))
        } else {
            Err(Error::invalid(
                pointer,
                "period",
                format!("unknown period {text:?}; use {}", PERIODS.join(", ")),
            ))
        }
    }

    /// Its name in links (`this_month`, `2026-01-01..2026-03-31`).
    pub fn name(&self) -> String {
        match self {
            Self::Named(name) => name.clone(),
            Self::Range { from, to } => format!("{from}..{to}"),
        }
    }

    /// The local dates `[start, end)` it covers on `today`; `None` for all time.
    pub fn bounds(&self, today: NaiveDate, fiscal_start: u32) -> Option<(NaiveDate, NaiveDate)> {
        let name = match self {
            Self::Range { from, to } => {
                return Some((*from, to.checked_add_signed(Duration::days(1))?));
            }
            Self::Named(name) => name.as_str(),
        };
        let day = Duration::days(1);
        let week = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
        let month = first_of(today.year(), today.month())?;
        let quarter = first_of(today.year(), today.month0() / 3 * 3 + 1)?;
        let year = first_of(today.year(), 1)?;
        let fiscal = {
            let start = first_of(today.year(), fiscal_start.clamp(1, 12))?;
            if start > today {
                add_months(start, -12)?
            } else {
                start
            }
        };
        Some(match name {
            "today" => (today, today + day),
            "yesterday" => (today - day, today),
            "this_week" => (week, week + Duration::days(7)),
            "last_week" => (week - Duration::days(7), week),
            "this_month" => (month, add_months(month, 1)?),
            "last_month" => (add_months(month, -1)?, month),
            "this_quarter" => (quarter, add_months(quarter, 3)?),
            "last_quarter" => (add_months(quarter, -3)?, quarter),
            "this_year" => (year, add_months(year, 12)?),
            "last_year" => (add_months(year, -12)?, year),
            "last_7_days" => (today - Duration::days(6), today + day),
            "last_30_days" => (today - Duration::days(29), today + day),
            "last_90_days" => (today - Duration::days(89), today + day),
            "last_12_months" => (add_months(month, -11)?, add_months(month, 1)?),
            "this_fiscal_year" => (fiscal, add_months(fiscal, 12)?),
            "last_fiscal_year" => (add_months(fiscal, -12)?, fiscal),
            _ => return None,
        })
    }
}

/// The first and last years a period may name.
pub const MIN_YEAR: i32 = 1900;
/// See [`MIN_YEAR`].
pub const MAX_YEAR: i32 = 9999;

/// The period just before `[start, end)` of `period` and as long: calendar periods (months,
/// quarters, years, fiscal years, the last 12 months) shift by their months — last month
/// before this month — and day counts (weeks, the last 30 days, ranges) by their days.
pub fn previous(
    period: &Period,
    start: NaiveDate,
    end: NaiveDate,
) -> Option<(NaiveDate, NaiveDate)> {
    let by_months = matches!(period, Period::Named(name) if name.contains("month")
        || name.contains("quarter")
        || name.contains("year"))
        && start.day() == 1
        && end.day() == 1;
    if by_months {
        let months = (end.year() - start.year()) * 12 + end.month() as i32 - start.month() as i32;
        return Some((add_months(start, -months)?, start));
    }
    let days = end - start;
    Some((start.checked_sub_signed(days)?, start))
}

fn first_of(year: i32, month: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, 1)
}

/// The first of the month `months` after the month of `date`.
pub fn add_months(date: NaiveDate, months: i32) -> Option<NaiveDate> {
    let total = date.year() * 12 + date.month0() as i32 + months;
    first_of(total.div_euclid(12), total.rem_euclid(12) as u32 + 1)
}

/// A group key of a report.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum GroupDoc {
    /// A field by key.
    Field(String),
    /// A field with a date bucket and a label.
    Detailed {
        /// The field.
        field: String,
        /// `day`, `week`, `month`, `quarter` or `year`.
        bucket: Option<String>,
        /// A label for the column.
        label: Option<Value>,
    },
}

impl GroupDoc {
    /// The field grouped on.
    pub fn field(&self) -> &str {
        match self {
            Self::Field(field) | Self::Detailed { field, .. } => field,
        }
    }

    /// Its bucket, if any.
    pub fn bucket(&self) -> Option<&str> {
        match self {
            Self::Field(_) => None,
            Self::Detailed { bucket, .. } => bucket.as_deref(),
        }
    }

    /// Its label, if the definition gives one.
    pub fn label(&self) -> Option<&Value> {
        match self {
            Self::Field(_) => None,
            Self::Detailed { label, .. } => label.as_ref(),
        }
    }
}

/// A measure as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MeasureDoc {
    /// Its key (formulas and sorts name it).
    pub key: String,
    /// Its label.
    pub label: Option<Value>,
    /// `count`, `sum`, `avg`, `min` or `max`.
    pub op: Option<String>,
    /// The field measured.
    pub field: Option<String>,
    /// Only the records this filter keeps count for this measure (won deals among all).
    pub filter: Option<Value>,
    /// A rhai expression over earlier measures.
    pub formula: Option<String>,
    /// How to show it.
    pub format: Option<Format>,
    /// Decimal places shown (formulas; default 2, percent 1).
    pub scale: Option<u32>,
}

/// How a measure's numbers are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A plain number.
    Number,
    /// A whole number.
    Integer,
    /// An amount of money.
    Money,
    /// A ratio shown as a percentage (0.25 → 25%).
    Percent,
}

/// A sort key as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SortDoc {
    /// A measure key or a group field.
    pub by: String,
    /// `asc` or `desc` (default `desc` for measures, `asc` for groups).
    pub direction: Option<String>,
}

/// The presentations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartType {
    /// Rows and columns.
    Table,
    /// First group down, second across.
    Pivot,
    /// Bars (second group: side by side).
    Bar,
    /// Bars stacked by the second group.
    StackedBar,
    /// Lines over the first group (second group: one line each).
    Line,
    /// Shares of a whole.
    Pie,
    /// Stages in order, with conversion between consecutive ones.
    Funnel,
    /// One number, optionally against the previous period.
    Number,
}

/// The presentation as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChartDoc {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ChartType,
    /// The measure drawn.
    pub measure: Option<String>,
    /// Compare with the previous period (single numbers).
    #[serde(default)]
    pub compare: bool,
    /// Bars run left to right.
    #[serde(default)]
    pub horizontal: bool,
}

/// A report document, typed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReportDoc {
    /// Label.
    pub label: Value,
    /// Description.
    pub description: Option<Value>,
    /// The entity measured.
    pub entity: String,
    /// A query-language filter.
    pub filter: Option<Value>,
    /// The field periods apply to.
    pub date_field: Option<String>,
    /// The default period.
    pub period: Option<Period>,
    /// Group keys (at most two).
    #[serde(default)]
    pub group_by: Vec<GroupDoc>,
    /// Measures.
    pub measures: Vec<MeasureDoc>,
    /// Sort.
    #[serde(default)]
    pub sort: Vec<SortDoc>,
    /// Most rows.
    pub limit: Option<usize>,
    /// Presentation.
    pub chart: Option<ChartDoc>,
    /// A custom minijinja template.
    pub template: Option<String>,
    /// Funnel analysis from history (funnel charts).
    pub funnel: Option<FunnelDoc>,
}

/// What a funnel needs besides its stage field (the first group key).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FunnelDoc {
    /// The stage values that mean "lost" (left out of the stages).
    #[serde(default)]
    pub lost: Vec<String>,
    /// The field holding why a record was lost.
    pub lost_reason: Option<String>,
}

/// A measure, compiled.
#[derive(Debug, Clone)]
pub enum MeasureKind {
    /// An aggregate the database computes.
    Aggregate {
        /// The function.
        op: String,
        /// Its field (`None` for count).
        field: Option<String>,
    },
    /// A formula over earlier measures, computed per row.
    Formula(Script),
}

/// A report, compiled for running.
#[derive(Debug, Clone)]
pub struct Report {
    /// Its key.
    pub key: String,
    /// The document.
    pub doc: ReportDoc,
    /// Measures in order, compiled.
    pub measures: Vec<(MeasureDoc, MeasureKind)>,
}

impl Report {
    /// Compiles a published (valid) report document.
    ///
    /// # Errors
    /// `Error::Invalid` listing every problem (a stored document that no longer checks).
    pub fn compile(engine: &ScriptEngine, key: &str, document: &Value) -> Result<Self, Error> {
        let doc: ReportDoc = serde_json::from_value(document.clone())
            .map_err(|e| Error::invalid("", "report", format!("not a report: {e}")))?;
        let mut measures = Vec::new();
        for (i, measure) in doc.measures.iter().enumerate() {
            let kind = match (&measure.formula, &measure.op) {
                (Some(source), _) => {
                    MeasureKind::Formula(engine.compile(source, &format!("/measures/{i}/formula"))?)
                }
                (None, Some(op)) => MeasureKind::Aggregate {
                    op: op.clone(),
                    field: measure.field.clone(),
                },
                (None, None) => {
                    return Err(Error::invalid(
                        format!("/measures/{i}"),
                        "measure",
                        "a measure has an op or a formula",
                    ));
                }
            };
            measures.push((measure.clone(), kind));
        }
        Ok(Self {
            key: key.to_owned(),
            doc,
            measures,
        })
    }

    /// The presentation (a table when none is given).
    pub fn chart(&self) -> ChartDoc {
        self.doc.chart.clone().unwrap_or(ChartDoc {
            kind: ChartType::Table,
            measure: None,
            compare: false,
            horizontal: false,
        })
    }
}

/// Evaluates a formula measure over the values of the measures before it; a division by zero
/// or an empty input gives `None`.
///
/// # Errors
/// `Error::Invalid` when the formula fails for another reason or gives no number.
pub fn evaluate(
    engine: &ScriptEngine,
    script: &Script,
    inputs: &[(&str, Option<Decimal>)],
    pointer: &str,
) -> Result<Option<Decimal>, Error> {
    // An empty measure is `()`: a formula that uses it fails (and shows as empty), one that
    // does not still computes.
    let variables = inputs
        .iter()
        .map(|(name, value)| {
            (
                *name,
                value.map_or(rhai::Dynamic::UNIT, rhai::Dynamic::from_decimal),
            )
        })
        .collect();
    let has_empty = inputs.iter().any(|(_, v)| v.is_none());
    match engine.eval(script, variables, pointer) {
        Ok(result) if result.is_unit() => Ok(None),
        Ok(result) => number_of(&result).map(Some).ok_or_else(|| {
            Error::invalid(
                pointer,
                "formula_type",
                format!(
                    "a measure formula gives a number, not {}",
                    result.type_name()
                ),
            )
        }),
        Err(Error::Invalid { errors, .. })
            if errors
                .iter()
                .any(|e| e.message.to_lowercase().contains("division by zero")) =>
        {
            Ok(None)
        }
        // Arithmetic on an empty measure.
        Err(Error::Invalid { .. }) if has_empty => Ok(None),
        Err(e) => Err(e),
    }
}

fn number_of(value: &rhai::Dynamic) -> Option<Decimal> {
    if let Some(d) = value.clone().try_cast::<Decimal>() {
        return Some(d);
    }
    if let Ok(i) = value.as_int() {
        return Some(Decimal::from(i));
    }
    value
        .as_float()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(|f| Decimal::try_from(f).ok())
}

/// Every problem with a report document on its own (after its meta-schema): unique measure
/// keys, formulas that compile and name only earlier measures, sorts and charts that fit the
/// groups and measures, a template that compiles.
pub fn check_document(document: &Value, prefix: &str) -> Vec<FieldError> {
    let mut problems = Vec::new();
    let doc: ReportDoc = match serde_json::from_value(document.clone()) {
        Ok(doc) => doc,
        Err(e) => {
            problems.push(FieldError::new(prefix, "report", e.to_string()));
            return problems;
        }
    };
    let engine = crate::script::shared();
    let mut earlier: Vec<&str> = Vec::new();
    for (i, measure) in doc.measures.iter().enumerate() {
        let at = format!("{prefix}/measures/{i}");
        if earlier.contains(&measure.key.as_str()) {
            problems.push(FieldError::new(
                format!("{at}/key"),
                "duplicate",
                format!("measure {:?} appears twice", measure.key),
            ));
        }
        if measure.op.as_deref() == Some("count") && measure.field.is_some() {
            problems.push(FieldError::new(
                format!("{at}/field"),
                "measure",
                "count counts records; it takes no field",
            ));
        }
        if measure.op.as_deref().is_some_and(|op| op != "count") && measure.field.is_none() {
            problems.push(FieldError::new(
                format!("{at}/field"),
                "required",
                format!(
                    "{} needs a field",
                    measure.op.as_deref().unwrap_or_default()
                ),
            ));
        }
        if let Some(source) = &measure.formula {
            let pointer = format!("{at}/formula");
            match engine.compile(source, &pointer) {
                Err(Error::Invalid { errors, .. }) => problems.extend(errors),
                Err(other) => problems.push(FieldError::new(pointer, "formula", other.to_string())),
                Ok(script) => {
                    // A trial run with every earlier measure at 1 finds unknown names (with line
                    // and column) and results that are not numbers.
                    let inputs: Vec<(&str, Option<Decimal>)> =
                        earlier.iter().map(|k| (*k, Some(Decimal::ONE))).collect();
                    match evaluate(&engine, &script, &inputs, &pointer) {
                        Err(Error::Invalid { errors, .. }) => problems.extend(errors),
                        Err(other) => {
                            problems.push(FieldError::new(pointer, "formula", other.to_string()));
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
        earlier.push(&measure.key);
    }
    let groups: Vec<&str> = doc.group_by.iter().map(GroupDoc::field).collect();
    for (i, sort) in doc.sort.iter().enumerate() {
        if !earlier.contains(&sort.by.as_str()) && !groups.contains(&sort.by.as_str()) {
            problems.push(FieldError::new(
                format!("{prefix}/sort/{i}/by"),
                "unknown_measure",
                format!(
                    "{:?} is neither a measure nor a group key of the report",
                    sort.by
                ),
            ));
        }
    }
    if let Some(chart) = &doc.chart {
        if let Some(measure) = &chart.measure
            && !earlier.contains(&measure.as_str())
        {
            problems.push(FieldError::new(
                format!("{prefix}/chart/measure"),
                "unknown_measure",
                format!("the report has no measure {measure:?}"),
            ));
        }
        let (least, most, needs) = match chart.kind {
            ChartType::Table => (0, 2, "any number of group keys"),
            ChartType::Number => (0, 0, "no group key"),
            ChartType::Pie | ChartType::Funnel => (1, 1, "exactly one group key"),
            ChartType::Pivot | ChartType::StackedBar => (2, 2, "two group keys"),
            ChartType::Bar | ChartType::Line => (1, 2, "one or two group keys"),
        };
        if groups.len() < least || groups.len() > most {
            problems.push(FieldError::new(
                format!("{prefix}/chart/type"),
                "chart",
                format!(
                    "a {} chart needs {needs}; the report has {}",
                    serde_json::to_value(chart.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    groups.len()
                ),
            ));
        }
        if chart.compare && chart.kind != ChartType::Number {
            problems.push(FieldError::new(
                format!("{prefix}/chart/compare"),
                "chart",
                "only a single number compares with the previous period",
            ));
        }
        if chart.compare && doc.date_field.is_none() {
            problems.push(FieldError::new(
                format!("{prefix}/chart/compare"),
                "chart",
                "comparing with the previous period needs a date_field",
            ));
        }
    }
    if let Some(Period::Range { from, to }) = &doc.period
        && from > to
    {
        problems.push(FieldError::new(
            format!("{prefix}/period/to"),
            "period",
            "the period ends before it starts",
        ));
    }
    if doc.period.is_some() && doc.date_field.is_none() {
        problems.push(FieldError::new(
            format!("{prefix}/date_field"),
            "required",
            "a period needs the date field it applies to",
        ));
    }
    if doc.funnel.is_some() && doc.chart.as_ref().map(|c| c.kind) != Some(ChartType::Funnel) {
        problems.push(FieldError::new(
            format!("{prefix}/funnel"),
            "chart",
            "a funnel analysis needs a funnel chart",
        ));
    }
    if let Some(template) = &doc.template
        && let Err(problem) =
            super::present::check_template(template, &format!("{prefix}/template"))
    {
        problems.push(problem);
    }
    problems
}

/// A field's kind; for formulas and rollups, the kind of their result.
fn kind_of<'a>(entity: &'a Value, field: &str) -> Option<&'a str> {
    let field = entity.get("properties")?.get(field)?;
    let kind = field.get("x-kind")?.as_str()?;
    match kind {
        "formula" | "rollup" => field
            .get("x-result")
            .and_then(Value::as_str)
            .or(Some("number")),
        other => Some(other),
    }
}

/// Every reference from a report to something missing or unfit: the entity, the fields of
/// groups, measures, the date field and the filter.
pub fn check_references(
    entity_doc: &dyn Fn(&str) -> Option<Value>,
    document: &Value,
    prefix: &str,
) -> Vec<FieldError> {
    let mut problems = Vec::new();
    let Ok(doc) = serde_json::from_value::<ReportDoc>(document.clone()) else {
        return problems;
    };
    let Some(entity) = entity_doc(&doc.entity) else {
        problems.push(FieldError::new(
            format!("{prefix}/entity"),
            "unknown_entity",
            format!("entity {:?} does not exist", doc.entity),
        ));
        return problems;
    };
    let mut field = |pointer: String, name: &str| -> Option<String> {
        if SYSTEM_FIELDS.contains(&name) {
            return Some(
                if SYSTEM_TIMES.contains(&name) {
                    "datetime"
                } else {
                    "user"
                }
                .to_owned(),
            );
        }
        match kind_of(&entity, name) {
            Some(kind) => Some(kind.to_owned()),
            None => {
                problems.push(FieldError::new(
                    pointer,
                    "unknown_field",
                    format!("entity {:?} has no field {name:?}", doc.entity),
                ));
                None
            }
        }
    };
    let mut unfit = Vec::new();
    for (i, group) in doc.group_by.iter().enumerate() {
        let pointer = match group {
            GroupDoc::Field(_) => format!("{prefix}/group_by/{i}"),
            GroupDoc::Detailed { .. } => format!("{prefix}/group_by/{i}/field"),
        };
        let Some(kind) = field(pointer.clone(), group.field()) else {
            continue;
        };
        if UNGROUPABLE_KINDS.contains(&kind.as_str()) {
            unfit.push(FieldError::new(
                pointer,
                "field_kind",
                format!("a {kind} field cannot be grouped"),
            ));
        } else if group.bucket().is_some() && !DATE_KINDS.contains(&kind.as_str()) {
            unfit.push(FieldError::new(
                format!("{prefix}/group_by/{i}/bucket"),
                "bucket",
                "buckets apply to dates and datetimes",
            ));
        }
    }
    for (i, measure) in doc.measures.iter().enumerate() {
        let (Some(op), Some(name)) = (&measure.op, &measure.field) else {
            continue;
        };
        let pointer = format!("{prefix}/measures/{i}/field");
        let Some(kind) = field(pointer.clone(), name) else {
            continue;
        };
        // Measures are numbers (formulas compute with them); the latest date of something is
        // a list sorted by that date.
        if !NUMERIC_KINDS.contains(&kind.as_str()) {
            unfit.push(FieldError::new(
                pointer,
                "field_kind",
                format!("{op} does not apply to the {kind} field {name:?}"),
            ));
        }
    }
    if let Some(funnel) = &doc.funnel {
        let stage = doc
            .group_by
            .first()
            .map(GroupDoc::field)
            .unwrap_or_default();
        if kind_of(&entity, stage) != Some("single_select") {
            unfit.push(FieldError::new(
                format!("{prefix}/group_by/0"),
                "field_kind",
                "a funnel's stages are the options of a single-select field",
            ));
        }
        let options: Vec<&str> = entity
            .pointer(&format!("/properties/{stage}/x-options"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("value").and_then(Value::as_str))
            .collect();
        for (i, lost) in funnel.lost.iter().enumerate() {
            if !options.contains(&lost.as_str()) {
                unfit.push(FieldError::new(
                    format!("{prefix}/funnel/lost/{i}"),
                    "unknown_option",
                    format!("{stage:?} has no option {lost:?}"),
                ));
            }
        }
        if let Some(reason) = &funnel.lost_reason {
            let pointer = format!("{prefix}/funnel/lost_reason");
            if let Some(kind) = field(pointer.clone(), reason)
                && kind != "single_select"
            {
                unfit.push(FieldError::new(
                    pointer,
                    "field_kind",
                    "the lost reason is a single-select field",
                ));
            }
        }
    }
    if let Some(name) = &doc.date_field {
        let pointer = format!("{prefix}/date_field");
        if let Some(kind) = field(pointer.clone(), name)
            && !DATE_KINDS.contains(&kind.as_str())
        {
            unfit.push(FieldError::new(
                pointer,
                "field_kind",
                format!("the date field {name:?} is a {kind}, not a date or datetime"),
            ));
        }
    }
    let mut filters: Vec<(String, &Value)> = Vec::new();
    if let Some(filter) = &doc.filter {
        filters.push((format!("{prefix}/filter"), filter));
    }
    for (i, measure) in doc.measures.iter().enumerate() {
        if let Some(filter) = &measure.filter {
            filters.push((format!("{prefix}/measures/{i}/filter"), filter));
        }
    }
    for (at, filter) in filters {
        let mut named = Vec::new();
        filter_fields(filter, &at, &mut named);
        for (pointer, name) in named {
            // `customer.industry`: the reference must exist here; the related field is checked
            // when the report runs.
            let own = name.split('.').next().unwrap_or_default();
            if own != "id" {
                field(pointer, own);
            }
        }
    }
    problems.extend(unfit);
    problems
}

/// The field names a filter condition tree mentions, with their pointers.
fn filter_fields(filter: &Value, pointer: &str, out: &mut Vec<(String, String)>) {
    let Some(map) = filter.as_object() else {
        return;
    };
    for key in ["and", "or"] {
        if let Some(items) = map.get(key).and_then(Value::as_array) {
            for (i, item) in items.iter().enumerate() {
                filter_fields(item, &format!("{pointer}/{key}/{i}"), out);
            }
        }
    }
    if let Some(inner) = map.get("not") {
        filter_fields(inner, &format!("{pointer}/not"), out);
    }
    if let Some(name) = map.get("field").and_then(Value::as_str) {
        out.push((format!("{pointer}/field"), name.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn periods_cover_calendar_and_fiscal_spans() {
        let today = d("2026-12-05");
        let named = |name: &str, fiscal| Period::Named(name.to_owned()).bounds(today, fiscal);
        assert_eq!(
            named("this_month", 1),
            Some((d("2026-12-01"), d("2027-01-01")))
        );
        assert_eq!(
            named("last_quarter", 1),
            Some((d("2026-07-01"), d("2026-10-01")))
        );
        assert_eq!(
            named("last_12_months", 1),
            Some((d("2026-01-01"), d("2027-01-01")))
        );
        // A fiscal year from April: Apr 2026 – Mar 2027.
        assert_eq!(
            named("this_fiscal_year", 4),
            Some((d("2026-04-01"), d("2027-04-01")))
        );
        assert_eq!(
            Period::Named("this_fiscal_year".into()).bounds(d("2026-02-10"), 4),
            Some((d("2025-04-01"), d("2026-04-01")))
        );
        assert_eq!(named("all", 1), None);
        let range = Period::parse("2026-01-01..2026-03-31", "").expect("range");
        assert_eq!(
            range.bounds(today, 1),
            Some((d("2026-01-01"), d("2026-04-01")))
        );
        assert!(Period::parse("2026-03-31..2026-01-01", "").is_err());
        assert!(Period::parse("someday", "").is_err());
    }

    #[test]
    fn the_previous_period_has_the_same_shape() {
        let named = |n: &str| Period::Named(n.to_owned());
        assert_eq!(
            previous(&named("this_month"), d("2026-12-01"), d("2027-01-01")),
            Some((d("2026-11-01"), d("2026-12-01")))
        );
        assert_eq!(
            previous(&named("this_quarter"), d("2026-10-01"), d("2027-01-01")),
            Some((d("2026-07-01"), d("2026-10-01")))
        );
        assert_eq!(
            previous(&named("this_week"), d("2026-11-30"), d("2026-12-07")),
            Some((d("2026-11-23"), d("2026-11-30")))
        );
        // The last 30 days ending on Apr 30 start on Apr 1: the 30 days before, not March.
        assert_eq!(
            previous(&named("last_30_days"), d("2026-04-01"), d("2026-05-01")),
            Some((d("2026-03-02"), d("2026-04-01")))
        );
        let range = Period::parse("2026-02-01..2026-02-28", "").expect("range");
        assert_eq!(
            previous(&range, d("2026-02-01"), d("2026-03-01")),
            Some((d("2026-01-04"), d("2026-02-01")))
        );
        assert!(Period::parse("2026-01-01..+262143-12-31", "").is_err());
        assert!(Period::parse("-262144-01-01..2026-01-01", "").is_err());
    }

    #[test]
    fn formulas_divide_exactly_and_zero_gives_nothing() {
        let engine = crate::script::shared();
        let script = engine.compile("won / deals", "").expect("compiles");
        let value = evaluate(
            &engine,
            &script,
            &[
                ("won", Some(Decimal::new(1, 0))),
                ("deals", Some(Decimal::new(3, 0))),
            ],
            "",
        )
        .expect("runs")
        .expect("a number");
        assert_eq!(value.round_dp(4), Decimal::new(3333, 4));
        let zero = evaluate(
            &engine,
            &script,
            &[("won", Some(Decimal::ONE)), ("deals", Some(Decimal::ZERO))],
            "",
        )
        .expect("runs");
        assert_eq!(zero, None);
        // An empty measure empties only the formulas that use it.
        let only_deals = engine.compile("deals * 2", "").expect("compiles");
        let inputs = [("avg_size", None), ("deals", Some(Decimal::new(3, 0)))];
        assert_eq!(
            evaluate(&engine, &only_deals, &inputs, "").expect("runs"),
            Some(Decimal::new(6, 0))
        );
        let uses_empty = engine.compile("avg_size / deals", "").expect("compiles");
        assert_eq!(
            evaluate(&engine, &uses_empty, &inputs, "").expect("runs"),
            None
        );
        let percent = engine.compile("won * 100 / deals", "").expect("compiles");
        let value = evaluate(
            &engine,
            &percent,
            &[
                ("won", Some(Decimal::new(1, 0))),
                ("deals", Some(Decimal::new(4, 0))),
            ],
            "",
        )
        .expect("runs");
        assert_eq!(value, Some(Decimal::new(25, 0)));
    }

    #[test]
    fn document_problems_are_located() {
        let report = json!({
            "label": {"en": "Won"}, "entity": "opportunity",
            "group_by": ["stage"],
            "measures": [
                {"key": "deals", "op": "count"},
                {"key": "rate", "formula": "won / deals"},
                {"key": "deals", "op": "sum", "field": "amount"}
            ],
            "sort": [{"by": "ghost"}],
            "chart": {"type": "number", "measure": "nope"}
        });
        let problems = check_document(&report, "/document");
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.pointer.as_str(), p.code.as_str()))
            .collect();
        assert!(
            found.contains(&("/document/measures/2/key", "duplicate")),
            "{found:?}"
        );
        assert!(
            found.contains(&("/document/sort/0/by", "unknown_measure")),
            "{found:?}"
        );
        assert!(
            found.contains(&("/document/chart/measure", "unknown_measure")),
            "{found:?}"
        );
        assert!(
            found.contains(&("/document/chart/type", "chart")),
            "{found:?}"
        );
        let formula = problems
            .iter()
            .find(|p| p.pointer == "/document/measures/1/formula")
            .expect("the formula names an unknown measure");
        assert_eq!(
            (formula.line, formula.column),
            (Some(1), Some(1)),
            "{formula:?}"
        );
    }

    #[test]
    fn references_check_fields_and_kinds() {
        let entity = json!({"properties": {
            "stage": {"x-kind": "single_select"},
            "amount": {"x-kind": "money"},
            "name": {"x-kind": "text"},
            "closed_on": {"x-kind": "date"},
            "tags": {"x-kind": "multi_select"}
        }});
        let lookup = |key: &str| (key == "opportunity").then(|| entity.clone());
        let report = json!({
            "label": {"en": "Won"}, "entity": "opportunity",
            "date_field": "name",
            "filter": {"and": [{"field": "ghost", "op": "eq", "value": 1}]},
            "group_by": [{"field": "stage", "bucket": "month"}, "tags"],
            "measures": [{"key": "total", "op": "sum", "field": "name"},
                         {"key": "last", "op": "max", "field": "closed_on"}]
        });
        let problems = check_references(&lookup, &report, "");
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.pointer.as_str(), p.code.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("/filter/and/0/field", "unknown_field"),
                ("/group_by/0/bucket", "bucket"),
                ("/group_by/1", "field_kind"),
                ("/measures/0/field", "field_kind"),
                ("/measures/1/field", "field_kind"),
                ("/date_field", "field_kind"),
            ],
            "{problems:?}"
        );
        let orphan = json!({"label": {"en": "X"}, "entity": "ghost", "measures": [{"key": "n", "op": "count"}]});
        assert_eq!(
            check_references(&lookup, &orphan, "")[0].code,
            "unknown_entity"
        );
    }
}
