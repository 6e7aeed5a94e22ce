//! How a report's result is shown: numbers formatted per measure and language, a table or
//! pivot, charts drawn as SVG on the server (bars, stacked bars, lines, pies, funnels, single
//! numbers against the previous period), every number linked to the records behind it, and
//! admin-written templates run in a sandbox.

use std::fmt::Write as _;
use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Value, json};

use super::{ChartType, Format, MeasureColumn, Outcome, Row};
use crate::error::{Error, FieldError};
use crate::render::i18n::Locale;

/// Instructions one custom report template may run.
pub const TEMPLATE_FUEL: u64 = 200_000;
/// Largest output of a custom report template (bytes).
pub const TEMPLATE_MAX_OUTPUT: usize = 256 * 1024;
/// Largest custom report template (bytes).
pub const TEMPLATE_MAX_SOURCE: usize = 20_000;

const PALETTE: [&str; 10] = [
    "#1677ff", "#52c41a", "#faad14", "#eb2f96", "#13c2c2", "#722ed1", "#fa541c", "#2f54eb",
    "#a0d911", "#8c8c8c",
];
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 300.0;

pub use crate::render::escape_html as escape;

/// A measure's value as its readers write it (`CN¥1,234.50`, `25.0%`, `1,204`).
pub fn format_value(value: Option<Decimal>, column: &MeasureColumn, locale: Locale) -> String {
    let Some(value) = value else {
        return "—".to_owned();
    };
    match column.format {
        Format::Percent => match value.checked_mul(Decimal::ONE_HUNDRED) {
            Some(percent) => format!(
                "{}%",
                locale.number(&fixed(percent.round_dp(column.scale), column.scale))
            ),
            None => "—".to_owned(),
        },
        Format::Money => {
            let amount = fixed(value.round_dp(column.scale), column.scale);
            match &column.currency {
                Some(currency) => locale.money(&amount, currency),
                None => locale.number(&amount),
            }
        }
        Format::Integer => locale.number(&value.round_dp(0).normalize().to_string()),
        Format::Number => locale.number(&fixed(value.round_dp(column.scale), column.scale)),
    }
}

/// A decimal with exactly `scale` places.
fn fixed(value: Decimal, scale: u32) -> String {
    let mut value = value;
    value.rescale(scale);
    value.to_string()
}

/// The text of a label object in `locale`.
pub fn label_text(label: &Value, locale: Locale) -> String {
    match label {
        Value::String(text) => text.clone(),
        other => locale.label(Some(other), "").to_owned(),
    }
}

/// The link listing the records behind `filter` (`list_url` is the entity's list page).
pub fn drill_link(list_url: &str, filter: &Value) -> String {
    if filter.is_null() {
        return list_url.to_owned();
    }
    let encoded: String = form_urlencoded::byte_serialize(filter.to_string().as_bytes()).collect();
    format!("{list_url}?filter={encoded}")
}

/// The link behind one measure of a row: the row's records, narrowed by the measure's own
/// filter (the won deals of a win rate's "won" column).
pub fn measure_link(list_url: &str, row_filter: &Value, measure: &MeasureColumn) -> String {
    match &measure.filter {
        Some(own) if row_filter.is_null() => drill_link(list_url, own),
        Some(own) => drill_link(list_url, &json!({"and": [row_filter, own]})),
        None => drill_link(list_url, row_filter),
    }
}

/// The result shaped for the page templates: labels and numbers as text in `locale`, links,
/// the chart as SVG, and for pivots the grid.
pub fn view(outcome: &Outcome, locale: Locale, list_url: &str) -> Value {
    let measures = &outcome.measures;
    let rows: Vec<Value> = outcome
        .rows
        .iter()
        .map(|row| {
            json!({
                "keys": row.keys.iter().map(|k| json!({
                    "text": label_text(&k.label, locale),
                    "color": k.color,
                    "empty": k.value.is_null(),
                })).collect::<Vec<_>>(),
                "values": row.values.iter().zip(measures).map(|(v, m)| format_value(*v, m, locale)).collect::<Vec<_>>(),
                "links": measures.iter().map(|m| measure_link(list_url, &row.filter, m)).collect::<Vec<_>>(),
                "link": drill_link(list_url, &row.filter),
            })
        })
        .collect();
    let totals: Vec<String> = outcome
        .totals
        .iter()
        .zip(measures)
        .map(|(v, m)| format_value(*v, m, locale))
        .collect();
    let chart = chart_svg(outcome, locale, list_url);
    let number =
        (outcome.chart == ChartType::Number).then(|| number_view(outcome, locale, list_url));
    json!({
        "report": outcome.report,
        "label": label_text(&outcome.label, locale),
        "description": outcome.description.as_ref().map(|d| label_text(d, locale)),
        "entity": outcome.entity,
        "chart": outcome.chart,
        "groups": outcome.groups.iter().map(|g| label_text(&g.label, locale)).collect::<Vec<_>>(),
        "measures": measures.iter().map(|m| label_text(&m.label, locale)).collect::<Vec<_>>(),
        "rows": rows,
        "totals": totals,
        "total_link": drill_link(list_url, &outcome.filter),
        "period": outcome.period.as_ref().map(|p| json!({
            "name": p.name,
            "text": format!("{} – {}", locale.date(p.from), locale.date(p.to)),
        })),
        "svg": chart,
        "number": number,
        "pivot": (outcome.chart == ChartType::Pivot).then(|| pivot_view(outcome, locale, list_url)),
        "truncated": outcome.truncated,
        "funnel": outcome.funnel.as_ref().map(|f| funnel_view(f, locale, list_url)),
    })
}

/// The funnel analysis as a table: each stage now, reached, converted, lost after it, days in
/// it; and the lost reasons.
fn funnel_view(funnel: &super::funnel::Funnel, locale: Locale, list_url: &str) -> Value {
    let percent = |d: Option<Decimal>| {
        d.map_or_else(
            || "—".to_owned(),
            |d| format!("{}%", fixed((d * Decimal::ONE_HUNDRED).round_dp(1), 1)),
        )
    };
    let total_lost = funnel.lost.max(1);
    json!({
        "records": funnel.records,
        "lost": funnel.lost,
        "lost_before_first": funnel.lost_before_first,
        "truncated": funnel.truncated,
        "most_lost_at": funnel.most_lost_at.as_ref().and_then(|v| funnel.stages.iter().find(|s| &s.value == v)).map(|s| label_text(&s.label, locale)),
        "stages": funnel.stages.iter().map(|s| json!({
            "label": label_text(&s.label, locale),
            "color": s.color,
            "current": s.current,
            "reached": s.reached,
            "conversion": percent(s.conversion),
            "lost_here": s.lost_here,
            "avg_days": s.avg_days.map_or_else(|| "—".to_owned(), |d| locale.number(&fixed(d, 1))),
            "link": drill_link(list_url, &s.filter),
        })).collect::<Vec<_>>(),
        "reasons": funnel.reasons.iter().map(|r| json!({
            "label": label_text(&r.label, locale),
            "color": r.color,
            "count": r.count,
            "share": format!("{}%", fixed((Decimal::from(r.count) * Decimal::ONE_HUNDRED / Decimal::from(total_lost)).round_dp(1), 1)),
            "link": drill_link(list_url, &r.filter),
        })).collect::<Vec<_>>(),
    })
}

/// A shaped result (`view`'s output) as plain text: the label, the period, then the number or
/// one line per row.
pub fn plain_text(shaped: &Value, link: Option<&str>) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut out = format!("{}\n", text(&shaped["label"]));
    if let Some(period) = shaped["period"]["text"].as_str() {
        out.push_str(period);
        out.push('\n');
    }
    out.push('\n');
    if shaped["number"].is_object() {
        out.push_str(&format!(
            "{}: {}\n",
            text(&shaped["number"]["label"]),
            text(&shaped["number"]["value"])
        ));
    } else {
        let measures: Vec<String> = shaped["measures"]
            .as_array()
            .map(|m| m.iter().map(text).collect())
            .unwrap_or_default();
        for row in shaped["rows"].as_array().into_iter().flatten() {
            let keys: Vec<String> = row["keys"]
                .as_array()
                .map(|k| k.iter().map(|k| text(&k["text"])).collect())
                .unwrap_or_default();
            let values: Vec<String> = row["values"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .zip(&measures)
                        .map(|(v, m)| format!("{m} {}", text(v)))
                        .collect()
                })
                .unwrap_or_default();
            out.push_str(&format!("{}: {}\n", keys.join(" · "), values.join(", ")));
        }
    }
    if let Some(link) = link {
        out.push_str(&format!("\n{link}\n"));
    }
    out
}

fn number_view(outcome: &Outcome, locale: Locale, list_url: &str) -> Value {
    let m = outcome.chart_measure;
    let column = &outcome.measures[m];
    let now = outcome.totals.get(m).copied().flatten();
    let before = outcome
        .previous
        .as_ref()
        .and_then(|p| p.get(m).copied().flatten());
    let change = match (now, before) {
        (Some(now), Some(before)) if !before.is_zero() => now
            .checked_sub(before)
            .and_then(|d| d.checked_div(before.abs()))
            .and_then(|r| r.checked_mul(Decimal::ONE_HUNDRED)),
        _ => None,
    };
    json!({
        "value": format_value(now, column, locale),
        "label": label_text(&column.label, locale),
        "link": measure_link(list_url, &outcome.filter, column),
        "previous": outcome.previous.as_ref().map(|_| format_value(before, column, locale)),
        "previous_period": outcome.previous_period.as_ref().map(|p| format!("{} – {}", locale.date(p.from), locale.date(p.to))),
        "change": change.map(|c| format!("{}{}%", if c.is_sign_positive() && !c.is_zero() { "+" } else { "" }, fixed(c.round_dp(1), 1))),
        "direction": change.map(|c| if c.is_zero() { "flat" } else if c.is_sign_positive() { "up" } else { "down" }),
    })
}

/// A two-key result as a grid: first key down, second across, the chart measure in the cells.
fn pivot_view(outcome: &Outcome, locale: Locale, list_url: &str) -> Value {
    let m = outcome.chart_measure;
    let column = &outcome.measures[m];
    let (downs, acrosses) = series_keys(&outcome.rows);
    let cell = |d: &str, a: &str| {
        outcome
            .rows
            .iter()
            .find(|r| key_id(r, 0) == d && key_id(r, 1) == a)
    };
    json!({
        "measure": label_text(&column.label, locale),
        "columns": acrosses.iter().map(|(_, label)| label_text(label, locale)).collect::<Vec<_>>(),
        "rows": downs.iter().map(|(d, label)| json!({
            "text": label_text(label, locale),
            "cells": acrosses.iter().map(|(a, _)| match cell(d, a) {
                Some(row) => json!({
                    "text": format_value(row.values.get(m).copied().flatten(), column, locale),
                    "link": measure_link(list_url, &row.filter, column),
                }),
                None => json!({"text": "", "link": null}),
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn key_id(row: &Row, i: usize) -> String {
    row.keys
        .get(i)
        .map(|k| k.value.to_string())
        .unwrap_or_default()
}

/// The distinct first and second keys of rows, in row order, with their labels.
type Keys = Vec<(String, Value)>;
fn series_keys(rows: &[Row]) -> (Keys, Keys) {
    let mut firsts: Keys = Vec::new();
    let mut seconds: Keys = Vec::new();
    for row in rows {
        for (i, list) in [(0, &mut firsts), (1, &mut seconds)] {
            if let Some(key) = row.keys.get(i) {
                let id = key.value.to_string();
                if !list.iter().any(|(x, _)| *x == id) {
                    list.push((id, key.label.clone()));
                }
            }
        }
    }
    (firsts, seconds)
}

fn number_of(value: Option<Decimal>) -> f64 {
    value.and_then(|v| v.to_f64()).unwrap_or(0.0)
}

fn short(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(most.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// A round axis maximum at or above `max`.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// A short axis figure (`1.2万`, `12k`).
fn axis_figure(value: f64, locale: Locale) -> String {
    let abs = value.abs();
    match locale {
        Locale::ZhCn if abs >= 1e8 => format!("{}亿", trim(value / 1e8)),
        Locale::ZhCn if abs >= 1e4 => format!("{}万", trim(value / 1e4)),
        Locale::En if abs >= 1e9 => format!("{}B", trim(value / 1e9)),
        Locale::En if abs >= 1e6 => format!("{}M", trim(value / 1e6)),
        Locale::En if abs >= 1e3 => format!("{}k", trim(value / 1e3)),
        _ => trim(value),
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

struct Svg {
    out: String,
}

impl Svg {
    fn new(title: &str) -> Self {
        Self::sized(title, WIDTH, HEIGHT)
    }

    fn sized(title: &str, width: f64, height: f64) -> Self {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="chart" role="img" font-family="system-ui, 'Noto Sans CJK SC', sans-serif" font-size="14"><title>{}</title>"#,
            escape(title)
        );
        Self { out }
    }

    fn link_start(&mut self, href: &str, title: &str) {
        let _ = write!(
            self.out,
            r#"<a href="{}"><title>{}</title>"#,
            escape(href),
            escape(title)
        );
    }

    fn link_end(&mut self) {
        self.out.push_str("</a>");
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, class: &str, text: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" class="{class}">{}</text>"#,
            escape(text)
        );
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// The chart of a result as an SVG document (`None` for tables, pivots and single numbers, or
/// when there is nothing to draw).
pub fn chart_svg(outcome: &Outcome, locale: Locale, list_url: &str) -> Option<String> {
    if outcome.rows.is_empty() {
        return None;
    }
    match outcome.chart {
        ChartType::Bar | ChartType::StackedBar | ChartType::Line => {
            Some(series_chart(outcome, locale, list_url))
        }
        ChartType::Pie => Some(pie(outcome, locale, list_url)),
        ChartType::Funnel => Some(funnel(outcome, locale, list_url)),
        ChartType::Table | ChartType::Pivot | ChartType::Number => None,
    }
}

fn colour(index: usize, own: Option<&str>) -> String {
    own.filter(|c| crate::render::forms::is_color(c))
        .map_or_else(|| PALETTE[index % PALETTE.len()].to_owned(), str::to_owned)
}

/// A category's text on an axis: month and quarter buckets read as the language writes them
/// (`Jan`, `1月`), with the year on the first one and on January.
fn axis_label(label: &Value, bucket: Option<&str>, locale: Locale, first: bool) -> String {
    let text = label_text(label, locale);
    let parts = text.split_once('-');
    match (bucket, parts) {
        (Some("month"), Some((year, month))) => {
            let Ok(month) = month.parse::<usize>() else {
                return text;
            };
            let with_year = first || month == 1;
            match locale {
                Locale::ZhCn if with_year => format!("{year}年{month}月"),
                Locale::ZhCn => format!("{month}月"),
                Locale::En => {
                    let name = MONTHS.get(month.wrapping_sub(1)).copied().unwrap_or("?");
                    if with_year {
                        format!("{name} {year}")
                    } else {
                        name.to_owned()
                    }
                }
            }
        }
        (Some("quarter"), Some((year, quarter))) if first || quarter == "Q1" => {
            format!("{quarter} {year}")
        }
        (Some("quarter"), Some((_, quarter))) => quarter.to_owned(),
        _ => short(&text, 14),
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Bars (side by side or stacked, up or across) and lines: the first key along the category
/// axis, the second (if any) as series.
fn series_chart(outcome: &Outcome, locale: Locale, list_url: &str) -> String {
    let m = outcome.chart_measure;
    let column = &outcome.measures[m];
    let title = label_text(&outcome.label, locale);
    let bucket = outcome.groups.first().and_then(|g| g.bucket.as_deref());
    let (categories, series) = series_keys(&outcome.rows);
    let series: Keys = if series.is_empty() {
        vec![(String::new(), column.label.clone())]
    } else {
        series
    };
    let value_at = |c: &str, s: &str| -> Option<&Row> {
        outcome
            .rows
            .iter()
            .find(|r| key_id(r, 0) == c && (s.is_empty() || key_id(r, 1) == s))
    };
    let stacked = outcome.chart == ChartType::StackedBar;
    let line = outcome.chart == ChartType::Line;
    let across = outcome.horizontal && !line;
    let max = categories
        .iter()
        .map(|(c, _)| {
            let values = series
                .iter()
                .map(|(s, _)| number_of(value_at(c, s).and_then(|r| r.values[m])));
            if stacked {
                values.filter(|v| *v > 0.0).sum::<f64>()
            } else {
                values.fold(0.0, f64::max)
            }
        })
        .fold(0.0, f64::max);
    let top = nice_max(max);
    let legend = series.len() > 1;
    let (left, right, upper, lower) = match (across, legend) {
        (true, _) => (150.0, 16.0, 8.0, if legend { 56.0 } else { 30.0 }),
        (false, true) => (64.0, 12.0, 16.0, 64.0),
        (false, false) => (64.0, 12.0, 16.0, 40.0),
    };
    let plot_w = WIDTH - left - right;
    let plot_h = HEIGHT - upper - lower;
    // Distance along the value axis of a value, from the axis.
    let extent = |v: f64| (v.max(0.0) / top) * if across { plot_w } else { plot_h };
    let mut svg = Svg::new(&title);
    for i in 0..=4 {
        let value = top * f64::from(i) / 4.0;
        let figure = axis_figure(value, locale);
        if across {
            let x = left + plot_w * f64::from(i) / 4.0;
            let _ = write!(
                svg.out,
                r##"<line x1="{x:.1}" y1="{upper}" x2="{x:.1}" y2="{:.1}" stroke="#e5e7eb"/>"##,
                upper + plot_h
            );
            svg.text(x, upper + plot_h + 18.0, "middle", "axis", &figure);
        } else {
            let y = upper + plot_h - plot_h * f64::from(i) / 4.0;
            let _ = write!(
                svg.out,
                r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e7eb"/>"##,
                left + plot_w
            );
            svg.text(left - 6.0, y + 5.0, "end", "axis", &figure);
        }
    }
    let count = categories.len().max(1) as f64;
    let band = if across {
        plot_h / count
    } else {
        plot_w / count
    };
    let label_every = if across {
        1
    } else {
        (categories.len() as f64 / 12.0).ceil().max(1.0) as usize
    };
    for (i, (_, label)) in categories.iter().enumerate() {
        if i % label_every != 0 {
            continue;
        }
        let text = axis_label(label, bucket, locale, i == 0);
        if across {
            let y = upper + band * (i as f64 + 0.5) + 5.0;
            svg.text(left - 8.0, y, "end", "axis", &short(&text, 16));
        } else {
            let x = left + band * (i as f64 + 0.5);
            svg.text(x, upper + plot_h + 20.0, "middle", "axis", &text);
        }
    }
    if line {
        let y_of = |v: f64| upper + plot_h - extent(v);
        for (s, (sid, slabel)) in series.iter().enumerate() {
            let colour = colour(s, None);
            let points: Vec<(f64, f64, Option<&Row>)> = categories
                .iter()
                .enumerate()
                .map(|(i, (c, _))| {
                    let row = value_at(c, sid);
                    let v = number_of(row.and_then(|r| r.values[m]));
                    (left + band * (i as f64 + 0.5), y_of(v), row)
                })
                .collect();
            let path: Vec<String> = points
                .iter()
                .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
                .collect();
            let _ = write!(
                svg.out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2.5" points="{}"/>"#,
                path.join(" ")
            );
            for (x, y, row) in points {
                if let Some(row) = row {
                    let tip = format!(
                        "{} · {}: {}",
                        label_text(&row.keys[0].label, locale),
                        label_text(slabel, locale),
                        format_value(row.values[m], column, locale)
                    );
                    svg.link_start(&measure_link(list_url, &row.filter, column), &tip);
                    let _ = write!(
                        svg.out,
                        r#"<circle cx="{x:.1}" cy="{y:.1}" r="4.5" fill="{colour}"/>"#
                    );
                    svg.link_end();
                }
            }
        }
    } else {
        let inner = band * 0.7;
        let each = if stacked {
            inner
        } else {
            inner / series.len() as f64
        };
        for (i, (c, _)) in categories.iter().enumerate() {
            let mut base = 0.0;
            for (s, (sid, slabel)) in series.iter().enumerate() {
                let Some(row) = value_at(c, sid) else {
                    continue;
                };
                let v = number_of(row.values[m]).max(0.0);
                // Position across the band, then from and to along the value axis.
                let offset = band * i as f64
                    + (band - inner) / 2.0
                    + if stacked { 0.0 } else { each * s as f64 };
                let (from, to) = if stacked {
                    let from = extent(base);
                    base += v;
                    (from, extent(base))
                } else {
                    (0.0, extent(v))
                };
                let thickness = (each - 1.0).max(1.0);
                let (x, y, w, h) = if across {
                    (left + from, upper + offset, to - from, thickness)
                } else {
                    (left + offset, upper + plot_h - to, thickness, to - from)
                };
                let own = if series.len() == 1 {
                    row.keys[0].color.as_deref()
                } else {
                    row.keys.get(1).and_then(|k| k.color.as_deref())
                };
                let shown = format_value(row.values[m], column, locale);
                let tip = format!(
                    "{}{}: {shown}",
                    label_text(&row.keys[0].label, locale),
                    if series.len() > 1 {
                        format!(" · {}", label_text(slabel, locale))
                    } else {
                        String::new()
                    },
                );
                svg.link_start(&measure_link(list_url, &row.filter, column), &tip);
                let _ = write!(
                    svg.out,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                    w.max(0.0),
                    h.max(0.0),
                    colour(s, own)
                );
                svg.link_end();
                if across && series.len() == 1 {
                    svg.text(x + w + 6.0, y + h / 2.0 + 5.0, "start", "figure", &shown);
                }
            }
        }
    }
    if legend {
        let mut x = left;
        let y = HEIGHT - 14.0;
        for (s, (_, label)) in series.iter().enumerate().take(8) {
            let text = short(&label_text(label, locale), 14);
            let _ = write!(
                svg.out,
                r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/>"#,
                y - 11.0,
                colour(s, None)
            );
            svg.text(x + 16.0, y, "start", "legend", &text);
            x += 30.0 + 8.5 * text.chars().count() as f64;
            if x > WIDTH - 60.0 {
                break;
            }
        }
    }
    svg.finish()
}

fn pie(outcome: &Outcome, locale: Locale, list_url: &str) -> String {
    let m = outcome.chart_measure;
    let column = &outcome.measures[m];
    let mut svg = Svg::sized(&label_text(&outcome.label, locale), 520.0, HEIGHT);
    let total: f64 = outcome
        .rows
        .iter()
        .map(|r| number_of(r.values[m]).max(0.0))
        .sum();
    let (cx, cy, radius) = (130.0, HEIGHT / 2.0, 120.0);
    if total <= 0.0 {
        let _ = write!(
            svg.out,
            r##"<circle cx="{cx}" cy="{cy}" r="{radius}" fill="#f0f0f0"/>"##
        );
    }
    let mut angle = -std::f64::consts::FRAC_PI_2;
    for (i, row) in outcome.rows.iter().enumerate() {
        let v = number_of(row.values[m]).max(0.0);
        if total <= 0.0 || v <= 0.0 {
            continue;
        }
        let share = v / total;
        let tip = format!(
            "{}: {} ({:.1}%)",
            label_text(&row.keys[0].label, locale),
            format_value(row.values[m], column, locale),
            share * 100.0
        );
        svg.link_start(&measure_link(list_url, &row.filter, column), &tip);
        let fill = colour(i, row.keys[0].color.as_deref());
        if share >= 0.9999 {
            let _ = write!(
                svg.out,
                r#"<circle cx="{cx}" cy="{cy}" r="{radius}" fill="{fill}"/>"#
            );
        } else {
            let end = angle + share * std::f64::consts::TAU;
            let (x1, y1) = (cx + radius * angle.cos(), cy + radius * angle.sin());
            let (x2, y2) = (cx + radius * end.cos(), cy + radius * end.sin());
            let large = i32::from(share > 0.5);
            let _ = write!(
                svg.out,
                r##"<path d="M{cx},{cy} L{x1:.2},{y1:.2} A{radius},{radius} 0 {large} 1 {x2:.2},{y2:.2} Z" fill="{fill}" stroke="#fff" stroke-width="1"/>"##
            );
            angle = end;
        }
        svg.link_end();
    }
    for (i, row) in outcome.rows.iter().enumerate().take(11) {
        let y = 26.0 + 25.0 * i as f64;
        let v = number_of(row.values[m]).max(0.0);
        let _ = write!(
            svg.out,
            r#"<rect x="266" y="{:.1}" width="14" height="14" fill="{}"/>"#,
            y - 12.0,
            colour(i, row.keys[0].color.as_deref())
        );
        let share = if total > 0.0 { v / total * 100.0 } else { 0.0 };
        svg.text(
            286.0,
            y,
            "start",
            "legend",
            &format!(
                "{} {share:.0}%",
                short(&label_text(&row.keys[0].label, locale), 12),
            ),
        );
    }
    svg.finish()
}

/// One bar of a funnel.
struct FunnelBar {
    label: String,
    value: f64,
    shown: String,
    /// The bar's tooltip, when it says more than "label: shown".
    tip: Option<String>,
    link: String,
    color: Option<String>,
    /// A note at the right end: records lost after this stage.
    note: Option<String>,
}

/// The bars of a funnel: from the history analysis when the report has one (records that
/// reached each stage), else from the rows, counted as "at this stage or a later one".
fn funnel_bars(outcome: &Outcome, locale: Locale, list_url: &str) -> Vec<FunnelBar> {
    if let Some(analysis) = &outcome.funnel {
        return analysis
            .stages
            .iter()
            .map(|s| FunnelBar {
                label: label_text(&s.label, locale),
                value: s.reached as f64,
                shown: locale.number(&s.reached.to_string()),
                // The link lists the records in the stage now; the tip says so.
                tip: Some(
                    locale
                        .text("reports.funnel.bar_tip")
                        .replace("{stage}", &label_text(&s.label, locale))
                        .replace("{reached}", &locale.number(&s.reached.to_string()))
                        .replace("{now}", &locale.number(&s.current.to_string())),
                ),
                link: drill_link(list_url, &s.filter),
                color: s.color.clone(),
                note: (s.lost_here > 0).then(|| {
                    locale
                        .text("reports.funnel.lost_here")
                        .replace("{n}", &s.lost_here.to_string())
                }),
            })
            .collect();
    }
    let m = outcome.chart_measure;
    let column = &outcome.measures[m];
    // Stages are the rows with a value, in the report's order; records without one are no
    // stage of the funnel.
    let rows: Vec<&Row> = outcome
        .rows
        .iter()
        .filter(|r| r.keys.first().is_some_and(|k| !k.value.is_null()))
        .take(12)
        .collect();
    let mut running = Decimal::ZERO;
    let mut cumulative: Vec<Decimal> = rows
        .iter()
        .rev()
        .map(|r| {
            let value = r.values.get(m).copied().flatten().unwrap_or_default();
            running = running
                .checked_add(value.max(Decimal::ZERO))
                .unwrap_or(running);
            running
        })
        .collect();
    cumulative.reverse();
    let field = outcome
        .groups
        .first()
        .map(|g| g.field.as_str())
        .unwrap_or_default();
    rows.iter()
        .enumerate()
        .zip(cumulative)
        .map(|((i, row), total)| {
            // The bar counts this stage and every later one; so does its link.
            let values: Vec<Value> = rows[i..].iter().map(|r| r.keys[0].value.clone()).collect();
            let mut filter = vec![json!({"field": field, "op": "in", "value": values})];
            if !outcome.filter.is_null() {
                filter.insert(0, outcome.filter.clone());
            }
            if let Some(own) = &column.filter {
                filter.push(own.clone());
            }
            let label = label_text(&row.keys[0].label, locale);
            let shown = format_value(Some(total), column, locale);
            FunnelBar {
                tip: Some(
                    locale
                        .text("reports.funnel.later_tip")
                        .replace("{stage}", &label)
                        .replace("{n}", &shown),
                ),
                label,
                value: number_of(Some(total)),
                shown,
                link: drill_link(list_url, &json!({"and": filter})),
                color: row.keys[0].color.clone(),
                note: None,
            }
        })
        .collect()
}

/// Stages in order as centred bars, each as wide as the records that reached it, with the
/// conversion from each stage to the next.
fn funnel(outcome: &Outcome, locale: Locale, list_url: &str) -> String {
    let mut svg = Svg::new(&label_text(&outcome.label, locale));
    let bars = funnel_bars(outcome, locale, list_url);
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let step = HEIGHT / bars.len().max(1) as f64;
    let (centre, widest) = (330.0, 300.0);
    for (i, bar) in bars.iter().enumerate() {
        let w = if max > 0.0 {
            (widest * bar.value / max).max(4.0)
        } else {
            4.0
        };
        let y = step * i as f64 + 2.0;
        let h = (step - 6.0).max(4.0);
        let middle = y + h / 2.0 + 5.0;
        let rate = (i > 0).then(|| {
            let before = bars[i - 1].value;
            if before > 0.0 {
                format!("{:.1}%", bar.value / before * 100.0)
            } else {
                "—".to_owned()
            }
        });
        let tip = format!(
            "{}{}",
            bar.tip
                .clone()
                .unwrap_or_else(|| format!("{}: {}", bar.label, bar.shown)),
            rate.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
        );
        svg.link_start(&bar.link, &tip);
        let _ = write!(
            svg.out,
            r#"<rect x="{:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="3" fill="{}"/>"#,
            centre - w / 2.0,
            colour(i, bar.color.as_deref())
        );
        svg.link_end();
        svg.text(8.0, middle, "start", "legend", &short(&bar.label, 12));
        let inside = w > 60.0;
        svg.text(
            if inside {
                centre
            } else {
                centre + w / 2.0 + 6.0
            },
            middle,
            if inside { "middle" } else { "start" },
            if inside { "value" } else { "figure" },
            &bar.shown,
        );
        let right = match (&rate, &bar.note) {
            (Some(rate), Some(note)) => format!("→ {rate} · {note}"),
            (Some(rate), None) => format!("→ {rate}"),
            (None, Some(note)) => note.clone(),
            (None, None) => String::new(),
        };
        if !right.is_empty() {
            svg.text(WIDTH - 8.0, middle, "end", "rate", &right);
        }
    }
    svg.finish()
}

fn template_env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_recursion_limit(32);
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env
    })
}

/// Checks that a custom report template compiles (line and column on error).
///
/// # Errors
/// One `FieldError` (`template_syntax` or `template_size`).
pub fn check_template(source: &str, pointer: &str) -> Result<(), FieldError> {
    crate::render::sandbox::check_in(template_env(), TEMPLATE_MAX_SOURCE, source, pointer)
}

/// Runs a custom report template over the shaped result (`view`'s output) in the sandbox:
/// HTML-escaped values, a fuel budget, an output cap.
///
/// # Errors
/// `Error::Invalid` at `/template` (`template_error`, or `template_limit` when the fuel or
/// the output cap ran out).
pub fn render_template(source: &str, shaped: &Value) -> Result<String, Error> {
    let pointer = "/template";
    // A template that does not compile or is too long is explained by the same check a
    // publish runs.
    check_template(source, pointer)
        .map_err(|problem| Error::invalid_all("the template is invalid", vec![problem]))?;
    let html = crate::render::sandbox::render_capped(
        template_env(),
        source,
        shaped,
        TEMPLATE_MAX_OUTPUT,
        pointer,
    )?;
    Ok(sanitize(&html))
}

/// A template's HTML with everything that could run or reach out removed (scripts, event
/// handlers, `javascript:` links, styles, frames): values are escaped as they are rendered, and
/// this holds even where a template turns escaping off.
fn sanitize(html: &str) -> String {
    ammonia::Builder::default()
        .add_generic_attributes(&["class"])
        .clean(html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::{GroupCell, GroupColumn};

    fn outcome(chart: ChartType, rows: Vec<(&str, Option<&str>, i64)>) -> Outcome {
        let two = rows.iter().any(|r| r.1.is_some());
        Outcome {
            report: "r".into(),
            label: json!({"en": "Deals <by> stage", "zh-CN": "各阶段商机"}),
            description: None,
            entity: "opportunity".into(),
            chart,
            chart_measure: 0,
            horizontal: false,
            period: None,
            groups: vec![GroupColumn {
                field: "stage".into(),
                bucket: None,
                label: json!({"en": "Stage"}),
            }],
            measures: vec![MeasureColumn {
                key: "amount".into(),
                label: json!({"en": "Amount"}),
                format: Format::Money,
                scale: 2,
                currency: Some("CNY".into()),
                filter: None,
            }],
            rows: rows
                .into_iter()
                .map(|(a, b, v)| Row {
                    keys: std::iter::once(a)
                        .chain(b.filter(|_| two))
                        .map(|k| GroupCell {
                            value: json!(k),
                            label: json!(k),
                            color: None,
                        })
                        .collect(),
                    values: vec![Some(Decimal::new(v, 2))],
                    filter: json!({"field": "stage", "op": "eq", "value": a}),
                })
                .collect(),
            totals: vec![Some(Decimal::new(100, 0))],
            filter: Value::Null,
            previous: None,
            previous_period: None,
            truncated: false,
            funnel: None,
            template: None,
        }
    }

    fn well_formed(svg: &str) {
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}: {svg}"));
    }

    #[test]
    fn every_chart_is_well_formed_svg() {
        let rows = vec![
            ("lead & co", Some("a"), 150_000),
            ("<proposal>", Some("b"), 0),
            ("won", Some("a"), -500),
            ("won", Some("b"), 99_999_999),
        ];
        for chart in [
            ChartType::Bar,
            ChartType::StackedBar,
            ChartType::Line,
            ChartType::Pie,
            ChartType::Funnel,
        ] {
            let svg = chart_svg(
                &outcome(chart, rows.clone()),
                Locale::ZhCn,
                "/w/x/e/opportunity",
            )
            .expect("a chart");
            well_formed(&svg);
            assert!(svg.contains("?filter="), "{chart:?} links to records");
        }
        let empty = outcome(ChartType::Pie, vec![("a", None, 0)]);
        well_formed(&chart_svg(&empty, Locale::En, "/l").expect("a chart"));
    }

    #[test]
    fn values_format_per_measure_and_language() {
        let money = MeasureColumn {
            key: "m".into(),
            label: Value::Null,
            format: Format::Money,
            scale: 2,
            currency: Some("CNY".into()),
            filter: None,
        };
        assert_eq!(
            format_value(Some(Decimal::new(123456789, 2)), &money, Locale::En),
            "CN¥1,234,567.89"
        );
        assert_eq!(format_value(None, &money, Locale::En), "—");
        let percent = MeasureColumn {
            format: Format::Percent,
            scale: 1,
            currency: None,
            ..money.clone()
        };
        assert_eq!(
            format_value(
                Some(Decimal::new(1, 0) / Decimal::new(3, 0)),
                &percent,
                Locale::ZhCn
            ),
            "33.3%"
        );
        let integer = MeasureColumn {
            format: Format::Integer,
            scale: 0,
            currency: None,
            ..money
        };
        assert_eq!(
            format_value(Some(Decimal::new(12045, 0)), &integer, Locale::En),
            "12,045"
        );
    }

    #[test]
    fn templates_are_escaped_and_limited() {
        let shaped = json!({"label": "<b>x</b>", "rows": [1, 2, 3]});
        let html = render_template(
            "<h1>{{ label }}</h1>{% for r in rows %}{{ r }}{% endfor %}",
            &shaped,
        )
        .expect("renders");
        assert_eq!(html, "<h1>&lt;b&gt;x&lt;/b&gt;</h1>123");
        let forever = render_template(
            "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
            &shaped,
        )
        .expect_err("runs out");
        assert_eq!(forever.field_errors()[0].code, "template_limit");
        let flood = render_template(
            "{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}",
            &shaped,
        )
        .expect_err("too much output");
        assert_eq!(flood.field_errors()[0].code, "template_limit");
        // Turning escaping off or writing markup by hand still runs nothing.
        let sneaky = render_template(
            "{% autoescape false %}{{ label }}{% endautoescape %}<a href=\"javascript:alert(1)\" onclick=\"x()\">go</a><script>alert(2)</script>",
            &json!({"label": "<img src=x onerror=alert(3)>"}),
        )
        .expect("renders");
        assert!(
            !sneaky.contains("onerror") && !sneaky.contains("javascript:"),
            "{sneaky}"
        );
        assert!(
            !sneaky.contains("<script") && !sneaky.contains("onclick"),
            "{sneaky}"
        );
        let broken = check_template("{% for %}", "/template").expect_err("syntax");
        assert_eq!(broken.line, Some(1));
    }
}
