//! The report builder's form: entity, simple filters, the date field and period, up to two
//! groupings (dates by day, week, month, quarter or year), measures and the chart, turned into a
//! report document (and read back from one), plus adding a report to a dashboard. Pure
//! functions; the documents are checked by the same meta-schema and references as any report.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::FieldError;

/// One simple condition of the report's filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Condition {
    /// The field.
    pub field: String,
    /// `eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `in`, `contains`, `is_null`, `is_not_null`.
    pub op: String,
    /// The value (comma-separated for `in`).
    pub value: String,
}

/// One measure.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Measure {
    /// `count`, `sum`, `avg`, `min`, `max`.
    pub op: String,
    /// The field (none for count).
    pub field: String,
    /// English label.
    pub label_en: String,
    /// Chinese label.
    pub label_zh: String,
}

/// The report builder's form.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReportSpec {
    /// English label.
    pub label_en: String,
    /// Chinese label.
    pub label_zh: String,
    /// The entity counted.
    pub entity: String,
    /// Filter conditions (all must hold).
    pub conditions: Vec<Condition>,
    /// The date field periods apply to.
    pub date_field: String,
    /// The default period.
    pub period: String,
    /// Groupings: (field, date bucket or empty).
    pub group_by: Vec<(String, String)>,
    /// Measures.
    pub measures: Vec<Measure>,
    /// Chart type.
    pub chart: String,
}

/// Operators the builder offers.
pub const OPS: [&str; 10] = [
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "contains",
    "is_null",
    "is_not_null",
];

/// Chart types.
pub const CHARTS: [&str; 7] = [
    "table",
    "bar",
    "stacked_bar",
    "line",
    "pie",
    "number",
    "pivot",
];

/// Periods (the reports' own list).
pub use crate::reports::definition::PERIODS;

/// The kind of each field of the entity, to type filter values: `(key, kind)`.
pub type Kinds = [(String, String)];

fn typed(value: &str, kind: &str) -> Value {
    let value = value.trim();
    match kind {
        "integer" | "number" | "money" | "percent" => value
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| value.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| json!(value)),
        "boolean" => match value {
            "true" => json!(true),
            "false" => json!(false),
            other => json!(other),
        },
        _ => json!(value),
    }
}

/// The report document of `spec` for an entity whose fields are `kinds`.
///
/// # Errors
/// Every problem, under `/spec`.
pub fn document(spec: &ReportSpec, kinds: &Kinds) -> Result<Value, Vec<FieldError>> {
    let mut problems = Vec::new();
    let kind_of = |key: &str| {
        kinds
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, kind)| kind.as_str())
    };
    let mut doc = Map::new();
    match super::designer::label_value(&spec.label_en, &spec.label_zh) {
        Some(l) => {
            doc.insert("label".to_owned(), l);
        }
        None => problems.push(FieldError::new(
            "/spec/label_en",
            "required",
            "name the report",
        )),
    }
    doc.insert("entity".to_owned(), json!(spec.entity));
    let mut tests = Vec::new();
    for (i, c) in spec.conditions.iter().enumerate() {
        if c.field.trim().is_empty() {
            continue;
        }
        let Some(kind) = kind_of(&c.field) else {
            problems.push(FieldError::new(
                format!("/spec/conditions/{i}/field"),
                "unknown_field",
                format!("the entity has no field {:?}", c.field),
            ));
            continue;
        };
        if !OPS.contains(&c.op.as_str()) {
            problems.push(FieldError::new(
                format!("/spec/conditions/{i}/op"),
                "enum",
                format!("pick one of {}", OPS.join(", ")),
            ));
            continue;
        }
        let mut test = json!({"field": c.field, "op": c.op});
        match c.op.as_str() {
            "is_null" | "is_not_null" => {}
            "in" => {
                test["value"] = Value::Array(
                    c.value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(|v| typed(v, kind))
                        .collect(),
                );
            }
            _ => test["value"] = typed(&c.value, kind),
        }
        tests.push(test);
    }
    match tests.len() {
        0 => {}
        1 => {
            doc.insert("filter".to_owned(), tests.remove(0));
        }
        _ => {
            doc.insert("filter".to_owned(), json!({"and": tests}));
        }
    }
    let date_field = spec.date_field.trim();
    if !date_field.is_empty() {
        if matches!(kind_of(date_field), Some("date" | "datetime")) {
            doc.insert("date_field".to_owned(), json!(date_field));
            let period = spec.period.trim();
            if !period.is_empty() {
                if PERIODS.contains(&period) {
                    doc.insert("period".to_owned(), json!(period));
                } else {
                    problems.push(FieldError::new("/spec/period", "enum", "pick a period"));
                }
            }
        } else {
            problems.push(FieldError::new(
                "/spec/date_field",
                "field_kind",
                "the period applies to a date or date-and-time field",
            ));
        }
    }
    let mut groups = Vec::new();
    for (i, (field, bucket)) in spec.group_by.iter().enumerate() {
        if field.trim().is_empty() {
            continue;
        }
        match kind_of(field) {
            None => problems.push(FieldError::new(
                format!("/spec/group_by/{i}/field"),
                "unknown_field",
                format!("the entity has no field {field:?}"),
            )),
            Some("date" | "datetime") => {
                let bucket = if bucket.is_empty() {
                    "month"
                } else {
                    bucket.as_str()
                };
                groups.push(json!({"field": field, "bucket": bucket}));
            }
            Some(_) => groups.push(json!(field)),
        }
    }
    if !groups.is_empty() {
        doc.insert("group_by".to_owned(), Value::Array(groups));
    }
    let mut measures = Vec::new();
    for (i, m) in spec.measures.iter().enumerate() {
        if m.op.trim().is_empty() {
            continue;
        }
        let key = format!("m{}", i + 1);
        let mut measure = json!({"key": key, "op": m.op});
        if m.op != "count" {
            match kind_of(&m.field) {
                Some("integer" | "number" | "money" | "percent" | "formula" | "rollup") => {
                    measure["field"] = json!(m.field);
                }
                Some(_) if matches!(m.op.as_str(), "min" | "max") => {
                    measure["field"] = json!(m.field);
                }
                _ => {
                    problems.push(FieldError::new(
                        format!("/spec/measures/{i}/field"),
                        "field_kind",
                        "sum and average take a number field",
                    ));
                    continue;
                }
            }
        }
        if let Some(l) = super::designer::label_value(&m.label_en, &m.label_zh) {
            measure["label"] = l;
        }
        measures.push(measure);
    }
    if measures.is_empty() {
        problems.push(FieldError::new(
            "/spec/measures",
            "required",
            "add at least one measure (count, sum, …)",
        ));
    }
    doc.insert("measures".to_owned(), Value::Array(measures));
    let chart = if spec.chart.is_empty() {
        "table"
    } else {
        spec.chart.as_str()
    };
    if CHARTS.contains(&chart) {
        doc.insert("chart".to_owned(), json!({"type": chart}));
    } else {
        problems.push(FieldError::new("/spec/chart", "enum", "pick a chart"));
    }
    if problems.is_empty() {
        Ok(Value::Object(doc))
    } else {
        Err(problems)
    }
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| text(Some(i)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The builder's form for a report document (the parts it does not edit stay in the JSON).
pub fn spec_of(doc: &Value) -> ReportSpec {
    let tests: Vec<&Value> = match doc.get("filter") {
        Some(f) if f.get("and").is_some() => f["and"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        Some(f) if f.get("field").is_some() => vec![f],
        _ => Vec::new(),
    };
    ReportSpec {
        label_en: text(doc.pointer("/label/en")),
        label_zh: text(doc.pointer("/label/zh-CN")),
        entity: text(doc.get("entity")),
        conditions: tests
            .into_iter()
            .map(|t| Condition {
                field: text(t.get("field")),
                op: text(t.get("op")),
                value: text(t.get("value")),
            })
            .collect(),
        date_field: text(doc.get("date_field")),
        period: text(doc.get("period")),
        group_by: doc
            .get("group_by")
            .and_then(Value::as_array)
            .map(|groups| {
                groups
                    .iter()
                    .map(|g| match g {
                        Value::String(field) => (field.clone(), String::new()),
                        other => (text(other.get("field")), text(other.get("bucket"))),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        measures: doc
            .get("measures")
            .and_then(Value::as_array)
            .map(|measures| {
                measures
                    .iter()
                    .map(|m| Measure {
                        op: text(m.get("op")),
                        field: text(m.get("field")),
                        label_en: text(m.pointer("/label/en")),
                        label_zh: text(m.pointer("/label/zh-CN")),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        chart: text(doc.pointer("/chart/type")),
    }
}

/// Adds report `report` to dashboard document `dashboard` as a tile `width` columns wide
/// (once: a report already on it is left where it is).
pub fn add_to_dashboard(dashboard: &mut Value, report: &str, width: u32) {
    let Some(items) = dashboard.get_mut("items").and_then(Value::as_array_mut) else {
        dashboard["items"] = json!([{"report": report, "width": width.clamp(1, 12)}]);
        return;
    };
    if items
        .iter()
        .any(|i| i.get("report").and_then(Value::as_str) == Some(report))
    {
        return;
    }
    items.push(json!({"report": report, "width": width.clamp(1, 12)}));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> Vec<(String, String)> {
        [
            ("stage", "single_select"),
            ("amount", "money"),
            ("closed_on", "date"),
            ("name", "text"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn won_by_month() -> ReportSpec {
        ReportSpec {
            label_en: "Won by month".into(),
            label_zh: "每月赢单".into(),
            entity: "opportunity".into(),
            conditions: vec![Condition {
                field: "stage".into(),
                op: "in".into(),
                value: "won, signed".into(),
            }],
            date_field: "closed_on".into(),
            period: "last_12_months".into(),
            group_by: vec![("closed_on".into(), "month".into())],
            measures: vec![Measure {
                op: "sum".into(),
                field: "amount".into(),
                label_en: "Won".into(),
                label_zh: "赢单金额".into(),
            }],
            chart: "bar".into(),
        }
    }

    #[test]
    fn a_spec_becomes_a_report_and_back() {
        let doc = document(&won_by_month(), &kinds()).expect("document");
        assert_eq!(
            doc,
            json!({"label": {"en": "Won by month", "zh-CN": "每月赢单"}, "entity": "opportunity",
                   "filter": {"field": "stage", "op": "in", "value": ["won", "signed"]},
                   "date_field": "closed_on", "period": "last_12_months",
                   "group_by": [{"field": "closed_on", "bucket": "month"}],
                   "measures": [{"key": "m1", "op": "sum", "field": "amount", "label": {"en": "Won", "zh-CN": "赢单金额"}}],
                   "chart": {"type": "bar"}})
        );
        let back = spec_of(&doc);
        assert_eq!(back.conditions[0].value, "won, signed");
        assert_eq!(
            back.group_by,
            [("closed_on".to_owned(), "month".to_owned())]
        );
        assert_eq!(document(&back, &kinds()).expect("again"), doc);
    }

    #[test]
    fn bad_specs_name_every_problem() {
        let mut spec = won_by_month();
        spec.label_en = String::new();
        spec.label_zh = String::new();
        spec.conditions.push(Condition {
            field: "ghost".into(),
            op: "eq".into(),
            value: "x".into(),
        });
        spec.date_field = "name".into();
        spec.measures = vec![Measure {
            op: "sum".into(),
            field: "name".into(),
            ..Measure::default()
        }];
        let problems = document(&spec, &kinds()).expect_err("refused");
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/spec/label_en",
                "/spec/conditions/1/field",
                "/spec/date_field",
                "/spec/measures/0/field",
                "/spec/measures"
            ]
        );
    }

    #[test]
    fn a_report_is_added_to_a_dashboard_once() {
        let mut board = json!({"label": {"en": "Board"}, "items": [{"report": "a", "width": 6}]});
        add_to_dashboard(&mut board, "won", 6);
        add_to_dashboard(&mut board, "won", 12);
        assert_eq!(
            board["items"],
            json!([{"report": "a", "width": 6}, {"report": "won", "width": 6}])
        );
    }
}
