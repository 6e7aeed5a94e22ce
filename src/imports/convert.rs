//! A spreadsheet cell as the API value of a field, by the field's kind: numbers and money with
//! thousands separators, currency signs and decimal commas; dates in the common orders and in
//! Chinese (2026年3月5日), Excel serial dates; yes/no in English and Chinese; options by value
//! or by label in any language; people by email or name. Linked records are resolved by the
//! caller (they need the database): conversion only trims them.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use serde_json::Value;

use super::source::{Cell, number_text};
use crate::definitions::entity::{Field, FieldKind};
use crate::records::codec;

/// Why a cell does not convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable code.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// What conversion needs besides the field: option labels, people, the date order, the zone.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// Per select field: normalised value or label (any language) → option value.
    pub options: HashMap<String, HashMap<String, String>>,
    /// Normalised email or name → account ids (a name two people share is ambiguous).
    pub people: HashMap<String, Vec<String>>,
    /// Whether `03/04/2026` is the 3rd of April (else March 4th).
    pub day_first: bool,
    /// The workspace's zone, for date-times without an offset.
    pub zone: chrono_tz::Tz,
}

/// A text as matched against labels and headers: trimmed, lowercased, inner spaces dropped.
pub fn fold(text: &str) -> String {
    text.trim()
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

impl Lookup {
    /// The option values of an entity's select fields by their folded values and labels.
    pub fn options_of(
        model: &crate::definitions::EntityModel,
    ) -> HashMap<String, HashMap<String, String>> {
        let mut all = HashMap::new();
        for field in &model.fields {
            let (FieldKind::SingleSelect { options: values }
            | FieldKind::MultiSelect { options: values }) = &field.kind
            else {
                continue;
            };
            let mut map: HashMap<String, String> =
                values.iter().map(|v| (fold(v), v.clone())).collect();
            let spec = model
                .document
                .pointer(&format!("/properties/{}", field.key));
            let listed = spec
                .and_then(|s| s.get("x-options").or_else(|| s.pointer("/items/x-options")))
                .and_then(Value::as_array);
            for option in listed.into_iter().flatten() {
                let Some(value) = option.get("value").and_then(Value::as_str) else {
                    continue;
                };
                match option.get("label") {
                    Some(Value::Object(labels)) => {
                        for label in labels.values().filter_map(Value::as_str) {
                            map.entry(fold(label)).or_insert_with(|| value.to_owned());
                        }
                    }
                    Some(Value::String(label)) => {
                        map.entry(fold(label)).or_insert_with(|| value.to_owned());
                    }
                    _ => {}
                }
            }
            all.insert(field.key.clone(), map);
        }
        all
    }
}

/// The API value of `cell` for `field`: `Ok(None)` for an empty cell.
///
/// # Errors
/// A [`Refusal`] naming what is wrong with the cell.
pub fn convert(field: &Field, cell: &Cell, lookup: &Lookup) -> Result<Option<Value>, Refusal> {
    match cell {
        Cell::Empty => return Ok(None),
        Cell::Text(t) if t.trim().is_empty() => return Ok(None),
        Cell::Formula(f) => {
            return Err(refuse(
                "formula",
                format!(
                    "the cell holds the formula ={f} but no computed value; open and save the file in Excel, or paste values"
                ),
            ));
        }
        Cell::Error(e) => {
            return Err(refuse(
                "cell_error",
                format!("the cell shows the error {e}"),
            ));
        }
        _ => {}
    }
    let text = || match cell {
        // A leading apostrophe is how spreadsheets (and Formwork's exports) keep text that
        // starts like a formula.
        Cell::Text(t) => {
            let t = t.trim();
            match t.strip_prefix('\'') {
                Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest.to_owned(),
                _ => t.to_owned(),
            }
        }
        other => other.text(),
    };
    Ok(Some(match &field.kind {
        FieldKind::Text | FieldKind::LongText | FieldKind::Phone | FieldKind::Url => {
            Value::String(match cell {
                Cell::Text(t) if field.kind == FieldKind::LongText => t.clone(),
                _ => text(),
            })
        }
        FieldKind::Email => Value::String(text().to_lowercase()),
        FieldKind::Integer => {
            let n = number(cell)?;
            if n.fract() != 0.0 || n.abs() > 9_007_199_254_740_991.0 {
                return Err(refuse(
                    "number",
                    format!("{} is not a whole number", text()),
                ));
            }
            Value::from(n as i64)
        }
        FieldKind::Number => float_value(number(cell)?)?,
        FieldKind::Percent => match cell {
            Cell::Text(t) if t.trim().ends_with(['%', '％']) => float_value(number(cell)?)?,
            _ => float_value(number(cell)?)?,
        },
        FieldKind::Money { scale, .. } => {
            let decimal = match cell {
                // A spreadsheet's binary fraction, rounded to the currency's digits.
                Cell::Number(n) => format!("{n:.prec$}", prec = *scale as usize),
                _ => money_text(&text())?,
            };
            codec::parse_money(&Value::String(decimal.clone()), *scale, "")
                .map_err(|p| refuse("money", p.message))?;
            Value::String(decimal)
        }
        FieldKind::Boolean => Value::Bool(boolean(cell)?),
        FieldKind::Date => {
            Value::String(date(cell, lookup.day_first)?.format("%Y-%m-%d").to_string())
        }
        FieldKind::DateTime => {
            let local = datetime(cell, lookup.day_first)?;
            let at = match local {
                Moment::Instant(at) => at,
                Moment::Local(naive) => lookup
                    .zone
                    .from_local_datetime(&naive)
                    .earliest()
                    .ok_or_else(|| {
                        refuse("date", format!("{naive} does not exist in {}", lookup.zone))
                    })?
                    .with_timezone(&chrono::Utc),
            };
            Value::String(codec::canonical_datetime(at))
        }
        FieldKind::SingleSelect { .. } => Value::String(option(field, &text(), lookup)?),
        FieldKind::MultiSelect { .. } => {
            let mut chosen: Vec<String> = Vec::new();
            for part in text()
                .split([',', ';', '，', '；', '、', '|', '\n'])
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                let value = option(field, part, lookup)?;
                if !chosen.contains(&value) {
                    chosen.push(value);
                }
            }
            Value::from(chosen)
        }
        FieldKind::User => Value::String(person(&text(), lookup)?),
        FieldKind::Reference { .. } => Value::String(text()),
        FieldKind::Attachment { .. }
        | FieldKind::SubTable { .. }
        | FieldKind::AutoNumber { .. } => {
            return Err(refuse(
                "not_importable",
                format!(
                    "{} fields are not imported from spreadsheets",
                    field.kind.name()
                ),
            ));
        }
    }))
}

fn float_value(n: f64) -> Result<Value, Refusal> {
    serde_json::Number::from_f64(n)
        .map(Value::Number)
        .ok_or_else(|| refuse("number", "not a finite number"))
}

/// A number from a cell: `1,234.5`, `1 234,5`, `1.234,5`, `12.5%`, `(300)`, full-width digits.
fn number(cell: &Cell) -> Result<f64, Refusal> {
    match cell {
        Cell::Number(n) => Ok(*n),
        Cell::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Cell::Text(t) => {
            let decimal = money_text(t.trim().trim_end_matches(['%', '％']))?;
            decimal
                .parse::<f64>()
                .map_err(|_| refuse("number", format!("{t:?} is not a number")))
        }
        other => Err(refuse(
            "number",
            format!("{:?} is not a number", other.text()),
        )),
    }
}

/// A decimal text from how people write amounts: currency signs and codes dropped, thousands
/// separators dropped, a decimal comma made a point, `(300)` and `300-` negative.
fn money_text(raw: &str) -> Result<String, Refusal> {
    let bad = || refuse("number", format!("{raw:?} is not a number or amount"));
    let mut text: String = raw
        .trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            '．' => '.',
            '，' => ',',
            '－' | '−' => '-',
            other => other,
        })
        .collect();
    for code in [
        "CNY", "RMB", "USD", "EUR", "GBP", "JPY", "HKD", "元", "圆", "块",
    ] {
        text = text.replace(code, "");
    }
    let mut negative = false;
    let mut digits = String::with_capacity(text.len());
    let trimmed = text.trim();
    let inner = if trimmed.starts_with('(') && trimmed.ends_with(')') {
        negative = true;
        &trimmed[1..trimmed.len() - 1]
    } else {
        trimmed
    };
    for c in inner.chars() {
        match c {
            '0'..='9' | '.' | ',' | 'e' | 'E' => digits.push(c),
            '-' => negative = !negative,
            '+' | '¥' | '￥' | '$' | '€' | '£' | ' ' | '\u{a0}' | '\u{202f}' | '\'' | '_' => {}
            _ => return Err(bad()),
        }
    }
    let commas = digits.matches(',').count();
    let points = digits.matches('.').count();
    let normalised = match (commas, points) {
        (0, _) => digits.clone(),
        (_, 0) => {
            // 1,234,567 (thousands) or 1234,5 (a decimal comma).
            let groups: Vec<&str> = digits.split(',').collect();
            if groups.len() > 1 && groups[1..].iter().all(|g| g.len() == 3) && !groups[0].is_empty()
            {
                digits.replace(',', "")
            } else if commas == 1 {
                digits.replace(',', ".")
            } else {
                return Err(bad());
            }
        }
        _ => {
            // Both: the last one is the decimal mark.
            let last_comma = digits.rfind(',').unwrap_or(0);
            let last_point = digits.rfind('.').unwrap_or(0);
            if last_point > last_comma {
                digits.replace(',', "")
            } else {
                digits.replace('.', "").replace(',', ".")
            }
        }
    };
    if normalised.is_empty() || normalised.matches('.').count() > 1 || normalised == "." {
        return Err(bad());
    }
    if normalised.parse::<f64>().is_err() {
        return Err(bad());
    }
    Ok(if negative {
        format!("-{normalised}")
    } else {
        normalised
    })
}

fn boolean(cell: &Cell) -> Result<bool, Refusal> {
    match cell {
        Cell::Bool(b) => Ok(*b),
        Cell::Number(n) if *n == 1.0 || *n == 0.0 => Ok(*n == 1.0),
        other => {
            let text = fold(&other.text());
            match text.as_str() {
                "true" | "yes" | "y" | "1" | "on" | "x" | "✓" | "✔" | "√" | "是" | "对" | "有"
                | "真" => Ok(true),
                "false" | "no" | "n" | "0" | "off" | "-" | "✗" | "×" | "否" | "错" | "无"
                | "假" | "不是" => Ok(false),
                _ => Err(refuse(
                    "boolean",
                    format!("{:?} is neither yes nor no", other.text()),
                )),
            }
        }
    }
}

/// Excel's day count (1900 system) as a date, for numbers in cells not formatted as dates.
fn excel_serial(n: f64) -> Option<NaiveDateTime> {
    if !(1.0..=2_958_465.0).contains(&n) {
        return None;
    }
    let base = NaiveDate::from_ymd_opt(1899, 12, 30)?.and_time(NaiveTime::MIN);
    let millis = (n * 86_400_000.0).round() as i64;
    base.checked_add_signed(chrono::Duration::milliseconds(millis))
}

enum Moment {
    Instant(chrono::DateTime<chrono::Utc>),
    Local(NaiveDateTime),
}

fn date(cell: &Cell, day_first: bool) -> Result<NaiveDate, Refusal> {
    match datetime(cell, day_first)? {
        Moment::Local(at) => Ok(at.date()),
        Moment::Instant(at) => Ok(at.date_naive()),
    }
}

fn datetime(cell: &Cell, day_first: bool) -> Result<Moment, Refusal> {
    match cell {
        Cell::Date(at) => Ok(Moment::Local(*at)),
        Cell::Number(n) => excel_serial(*n)
            .map(Moment::Local)
            .ok_or_else(|| refuse("date", format!("{} is not a date", number_text(*n)))),
        other => {
            let text = other.text();
            parse_moment(text.trim(), day_first).ok_or_else(|| {
                refuse(
                    "date",
                    format!("{text:?} is not a date such as 2026-03-05, 2026/3/5, 2026年3月5日 or 05/03/2026"),
                )
            })
        }
    }
}

fn parse_moment(text: &str, day_first: bool) -> Option<Moment> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(Moment::Instant(at.with_timezone(&chrono::Utc)));
    }
    if let Some(date) = named_month(text) {
        return Some(Moment::Local(date.and_time(NaiveTime::MIN)));
    }
    // A date, then perhaps a time: split at the first space or T after the date part.
    let text = text
        .replace(['年', '月'], "-")
        .replace('日', " ")
        .replace(['/', '.'], "-");
    let text = text.trim();
    let (date_part, time_part) = match text.find([' ', 'T']) {
        Some(i) => (&text[..i], text[i + 1..].trim()),
        None => (text, ""),
    };
    let date = parse_date_part(date_part, day_first)?;
    let time = if time_part.is_empty() {
        NaiveTime::MIN
    } else {
        [
            "%H:%M:%S%.f",
            "%H:%M:%S",
            "%H:%M",
            "%I:%M %p",
            "%I:%M:%S %p",
            "%H时%M分",
            "%H点%M分",
        ]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(time_part, f).ok())?
    };
    Some(Moment::Local(date.and_time(time)))
}

fn parse_date_part(text: &str, day_first: bool) -> Option<NaiveDate> {
    if text.len() == 8 && text.bytes().all(|b| b.is_ascii_digit()) {
        return NaiveDate::parse_from_str(text, "%Y%m%d").ok();
    }
    let parts: Vec<&str> = text.split('-').filter(|p| !p.is_empty()).collect();
    if parts.len() == 3 && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())) {
        let n: Vec<u32> = parts.iter().filter_map(|p| p.parse().ok()).collect();
        if n.len() != 3 {
            return None;
        }
        let (y, m, d) = if parts[0].len() == 4 {
            (n[0], n[1], n[2])
        } else if parts[2].len() == 4 || parts[2].len() == 2 {
            let year = if parts[2].len() == 2 {
                2000 + n[2]
            } else {
                n[2]
            };
            // An order is forced when one number cannot be a month.
            if n[0] > 12 || (day_first && n[1] <= 12) {
                (year, n[1], n[0])
            } else {
                (year, n[0], n[1])
            }
        } else {
            return None;
        };
        return NaiveDate::from_ymd_opt(y as i32, m, d);
    }
    named_month(text)
}

/// `5 Mar 2026`, `Mar 5, 2026`, `5-Mar-2026`, `March 5, 2026`.
fn named_month(text: &str) -> Option<NaiveDate> {
    if !text.chars().any(char::is_alphabetic) {
        return None;
    }
    [
        "%d-%b-%Y",
        "%d %b %Y",
        "%b %d, %Y",
        "%B %d, %Y",
        "%d %B %Y",
        "%b %d %Y",
    ]
    .iter()
    .find_map(|f| NaiveDate::parse_from_str(text, f).ok())
}

fn option(field: &Field, text: &str, lookup: &Lookup) -> Result<String, Refusal> {
    lookup
        .options
        .get(&field.key)
        .and_then(|m| m.get(&fold(text)))
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = match &field.kind {
                FieldKind::SingleSelect { options } | FieldKind::MultiSelect { options } => {
                    options.iter().map(String::as_str).collect()
                }
                _ => Vec::new(),
            };
            refuse(
                "option",
                format!("{text:?} is none of the options ({})", known.join(", ")),
            )
        })
}

fn person(text: &str, lookup: &Lookup) -> Result<String, Refusal> {
    if let Ok(id) = uuid::Uuid::parse_str(text.trim()) {
        return Ok(id.to_string());
    }
    match lookup.people.get(&fold(text)).map(Vec::as_slice) {
        Some([one]) => Ok(one.clone()),
        Some([_, _, ..]) => Err(refuse(
            "ambiguous_user",
            format!("several members are called {text:?}: use their email"),
        )),
        _ => Err(refuse(
            "unknown_user",
            format!("no member of this workspace has the email or name {text:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(kind: FieldKind) -> Field {
        Field::plain("f", kind)
    }

    fn lookup(day_first: bool) -> Lookup {
        let mut options = HashMap::new();
        options.insert(
            "f".to_owned(),
            HashMap::from([
                ("web_form".to_owned(), "web_form".to_owned()),
                ("官网表单".to_owned(), "web_form".to_owned()),
                ("webform".to_owned(), "web_form".to_owned()),
                ("referral".to_owned(), "referral".to_owned()),
            ]),
        );
        Lookup {
            options,
            people: HashMap::from([
                ("ada@example.com".to_owned(), vec!["a1".to_owned()]),
                ("李雷".to_owned(), vec!["a2".to_owned(), "a3".to_owned()]),
            ]),
            day_first,
            zone: chrono_tz::Asia::Shanghai,
        }
    }

    fn text(t: &str) -> Cell {
        Cell::Text(t.to_owned())
    }

    #[allow(clippy::needless_pass_by_value)]
    fn ok(kind: FieldKind, cell: Cell) -> Value {
        convert(&field(kind), &cell, &lookup(false))
            .expect("converts")
            .expect("a value")
    }

    #[test]
    fn amounts_are_read_as_people_write_them() {
        let money = || FieldKind::Money {
            currency: "CNY".to_owned(),
            scale: 2,
        };
        for (raw, want) in [
            ("¥1,234.50", "1234.50"),
            ("1.234,50 €", "1234.50"),
            ("１２３４．５", "1234.5"),
            ("(300)", "-300"),
            ("RMB 2 000", "2000"),
            ("-12,5", "-12.5"),
        ] {
            assert_eq!(
                ok(money(), text(raw)),
                Value::String(want.to_owned()),
                "{raw}"
            );
        }
        assert_eq!(
            ok(money(), Cell::Number(0.1 + 0.2)),
            Value::String("0.30".to_owned())
        );
        let error = convert(&field(money()), &text("12.345"), &lookup(false));
        assert_eq!(error.expect_err("3 decimals").code, "money");
        assert!(convert(&field(money()), &text("abc"), &lookup(false)).is_err());
        assert_eq!(ok(FieldKind::Integer, text("1,200")), Value::from(1200));
        assert!(convert(&field(FieldKind::Integer), &text("1.5"), &lookup(false)).is_err());
        assert_eq!(
            ok(FieldKind::Percent, text("12.5%")),
            serde_json::json!(12.5)
        );
    }

    #[test]
    fn dates_in_common_orders_and_chinese_and_excel_serials() {
        for (raw, want) in [
            ("2026-03-05", "2026-03-05"),
            ("2026/3/5", "2026-03-05"),
            ("2026年3月5日", "2026-03-05"),
            ("20260305", "2026-03-05"),
            ("03/05/2026", "2026-03-05"),
            ("25/12/2026", "2026-12-25"),
            ("Mar 5, 2026", "2026-03-05"),
            ("2026-03-05 14:30", "2026-03-05"),
        ] {
            assert_eq!(
                ok(FieldKind::Date, text(raw)),
                Value::String(want.to_owned()),
                "{raw}"
            );
        }
        let dmy = convert(&field(FieldKind::Date), &text("03/05/2026"), &lookup(true));
        assert_eq!(
            dmy.expect("dmy"),
            Some(Value::String("2026-05-03".to_owned()))
        );
        assert_eq!(
            ok(FieldKind::Date, Cell::Number(46086.0)),
            Value::String("2026-03-05".to_owned())
        );
        assert_eq!(
            convert(&field(FieldKind::Date), &text("2026-02-30"), &lookup(false))
                .expect_err("no such day")
                .code,
            "date"
        );
        // Shanghai is UTC+8: a local 09:30 is 01:30 UTC.
        assert_eq!(
            ok(FieldKind::DateTime, text("2026-03-05 09:30")),
            Value::String("2026-03-05T01:30:00.000Z".to_owned())
        );
        assert_eq!(
            ok(FieldKind::DateTime, text("2026-03-05T09:30:00Z")),
            Value::String("2026-03-05T09:30:00.000Z".to_owned())
        );
    }

    #[test]
    fn options_people_booleans_and_bad_cells() {
        let select = FieldKind::SingleSelect {
            options: vec!["web_form".to_owned(), "referral".to_owned()],
        };
        assert_eq!(
            ok(select.clone(), text("官网表单")),
            Value::String("web_form".to_owned())
        );
        assert_eq!(
            ok(select.clone(), text(" Web Form ")),
            Value::String("web_form".to_owned())
        );
        assert_eq!(
            convert(&field(select), &text("fax"), &lookup(false))
                .expect_err("unknown")
                .code,
            "option"
        );
        let multi = FieldKind::MultiSelect {
            options: vec!["web_form".to_owned(), "referral".to_owned()],
        };
        assert_eq!(
            ok(multi, text("官网表单、referral")),
            serde_json::json!(["web_form", "referral"])
        );
        assert_eq!(
            ok(FieldKind::User, text("Ada@Example.com")),
            Value::String("a1".to_owned())
        );
        assert_eq!(
            convert(&field(FieldKind::User), &text("李雷"), &lookup(false))
                .expect_err("two")
                .code,
            "ambiguous_user"
        );
        assert_eq!(ok(FieldKind::Boolean, text("是")), Value::Bool(true));
        assert_eq!(ok(FieldKind::Boolean, text("No")), Value::Bool(false));
        assert_eq!(
            ok(FieldKind::Text, text("'=1+2")),
            Value::String("=1+2".to_owned())
        );
        assert_eq!(
            convert(
                &field(FieldKind::Text),
                &Cell::Formula("A1*2".to_owned()),
                &lookup(false)
            )
            .expect_err("formula")
            .code,
            "formula"
        );
        assert_eq!(
            convert(
                &field(FieldKind::Number),
                &Cell::Error("#DIV/0!".to_owned()),
                &lookup(false)
            )
            .expect_err("error")
            .code,
            "cell_error"
        );
        assert_eq!(
            convert(&field(FieldKind::Text), &text("   "), &lookup(false)),
            Ok(None)
        );
    }
}
