//! The function library scripts see beyond rhai's own (docs/scripting.md): the clock, dates and
//! working days from the workspace's business calendar, exact money and rounding, empty values,
//! lists and sub-table rows, and `lookup` of a related record. Dates are ISO text
//! (`2026-12-05`), datetimes RFC 3339 text in UTC; every function given `()` where a value is
//! missing answers `()` instead of failing, so formulas over optional fields stay simple.

// rhai hands registered functions their arguments by value; taking them by reference is not an
// option here.
#![allow(clippy::needless_pass_by_value)]

use chrono::{DateTime, Datelike, Duration, NaiveDate, SecondsFormat, Utc};
use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FuncRegistration, ImmutableString, Map as RhaiMap,
};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};

use super::with_env;

/// Largest number of working days one call may step over (about ten years).
pub const MAX_WORKING_DAYS: i64 = 3_660;

/// The error a script gets from a library function.
type Outcome = Result<Dynamic, Box<EvalAltResult>>;

fn fail(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        rhai::Position::NONE,
    ))
}

/// The message of the error `lookup` gives when the record is not loaded yet (the evaluator
/// loads it and runs the script again; users never see it).
pub const LOOKUP_PENDING: &str = "lookup pending";

/// Registers the library on `engine`. Functions reading the clock, the calendar, the time zone
/// or loaded records are volatile: the optimizer never evaluates them at compile time (it does
/// evaluate the others on constant arguments, such as `decimal("0.13")`).
pub fn register(engine: &mut Engine) {
    FuncRegistration::new("now")
        .with_volatility(true)
        .register_into_engine(engine, now);
    FuncRegistration::new("today")
        .with_volatility(true)
        .register_into_engine(engine, today);
    engine.register_fn("date", make_date);
    FuncRegistration::new("days_between")
        .with_volatility(true)
        .register_into_engine(engine, days_between);
    FuncRegistration::new("add_days")
        .with_volatility(true)
        .register_into_engine(engine, add_days);
    FuncRegistration::new("add_months")
        .with_volatility(true)
        .register_into_engine(engine, add_months);
    FuncRegistration::new("add_working_days")
        .with_volatility(true)
        .register_into_engine(engine, add_working_days);
    FuncRegistration::new("working_days_between")
        .with_volatility(true)
        .register_into_engine(engine, working_days_between);
    FuncRegistration::new("is_working_day")
        .with_volatility(true)
        .register_into_engine(engine, is_working_day);
    FuncRegistration::new("year")
        .with_volatility(true)
        .register_into_engine(engine, |d: Dynamic| date_part(&d, |d| i64::from(d.year())));
    FuncRegistration::new("month")
        .with_volatility(true)
        .register_into_engine(engine, |d: Dynamic| date_part(&d, |d| i64::from(d.month())));
    FuncRegistration::new("day")
        .with_volatility(true)
        .register_into_engine(engine, |d: Dynamic| date_part(&d, |d| i64::from(d.day())));
    FuncRegistration::new("quarter")
        .with_volatility(true)
        .register_into_engine(engine, |d: Dynamic| {
            date_part(&d, |d| i64::from((d.month() - 1) / 3 + 1))
        });
    FuncRegistration::new("weekday")
        .with_volatility(true)
        .register_into_engine(engine, |d: Dynamic| {
            date_part(&d, |d| i64::from(d.weekday().number_from_monday()))
        });
    engine.register_fn("decimal", to_decimal);
    engine.register_fn("round_to", round_to);
    engine.register_fn("empty", |value: Dynamic| is_empty(&value));
    engine.register_fn(
        "coalesce",
        |value: Dynamic, fallback: Dynamic| {
            if is_empty(&value) { fallback } else { value }
        },
    );
    engine.register_fn("sum", |items: Array| sum(&items));
    engine.register_fn("sum", |rows: Array, column: ImmutableString| {
        sum(&pluck(&rows, &column))
    });
    engine.register_fn("avg", |items: Array| average(&items));
    engine.register_fn("avg", |rows: Array, column: ImmutableString| {
        average(&pluck(&rows, &column))
    });
    engine.register_fn("min_of", |items: Array| {
        extreme(&items, std::cmp::Ordering::Less)
    });
    engine.register_fn("max_of", |items: Array| {
        extreme(&items, std::cmp::Ordering::Greater)
    });
    engine.register_fn("pluck", |rows: Array, column: ImmutableString| {
        pluck(&rows, &column)
    });
    FuncRegistration::new("lookup")
        .with_volatility(true)
        .register_into_engine(engine, lookup);
}

fn now() -> Dynamic {
    with_env(|env| {
        let instant = env.map_or_else(Utc::now, |env| {
            env.used_clock.set(true);
            env.now
        });
        Dynamic::from(instant.to_rfc3339_opts(SecondsFormat::Secs, true))
    })
}

fn today() -> Dynamic {
    with_env(|env| {
        let date = env.map_or_else(
            || Utc::now().date_naive(),
            |env| {
                env.used_clock.set(true);
                env.today()
            },
        );
        Dynamic::from(date.to_string())
    })
}

/// A date from a script value: a date's text, or a datetime's text (its date in the workspace
/// time zone). `Ok(None)` for `()`.
fn parse_date(value: &Dynamic) -> Result<Option<NaiveDate>, Box<EvalAltResult>> {
    if value.is_unit() {
        return Ok(None);
    }
    let Ok(text) = value.clone().into_immutable_string() else {
        return Err(fail(format!(
            "expected a date (text such as \"2026-12-05\"), got {}",
            super::values::type_name(value)
        )));
    };
    if let Ok(date) = NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        return Ok(Some(date));
    }
    if let Ok(instant) = DateTime::parse_from_rfc3339(&text) {
        let zone = with_env(|env| env.map_or(chrono_tz::UTC, |env| env.time_zone));
        return Ok(Some(instant.with_timezone(&zone).date_naive()));
    }
    Err(fail(format!("{text:?} is not a date (YYYY-MM-DD)")))
}

fn date_value(date: Option<NaiveDate>) -> Outcome {
    date.map(|d| Dynamic::from(d.to_string()))
        .ok_or_else(|| fail("the date is out of range"))
}

fn make_date(year: i64, month: i64, day: i64) -> Outcome {
    let parts = (
        i32::try_from(year).ok(),
        u32::try_from(month).ok(),
        u32::try_from(day).ok(),
    );
    match parts {
        (Some(y), Some(m), Some(d)) => NaiveDate::from_ymd_opt(y, m, d)
            .map(|date| Dynamic::from(date.to_string()))
            .ok_or_else(|| fail(format!("{year}-{month}-{day} is not a date"))),
        _ => Err(fail(format!("{year}-{month}-{day} is not a date"))),
    }
}

fn days_between(from: Dynamic, to: Dynamic) -> Outcome {
    match (parse_date(&from)?, parse_date(&to)?) {
        (Some(from), Some(to)) => Ok(Dynamic::from_int((to - from).num_days())),
        _ => Ok(Dynamic::UNIT),
    }
}

fn add_days(date: Dynamic, days: i64) -> Outcome {
    match parse_date(&date)? {
        Some(date) => {
            date_value(Duration::try_days(days).and_then(|span| date.checked_add_signed(span)))
        }
        None => Ok(Dynamic::UNIT),
    }
}

fn add_months(date: Dynamic, months: i64) -> Outcome {
    let Some(date) = parse_date(&date)? else {
        return Ok(Dynamic::UNIT);
    };
    let shifted = match u32::try_from(months.unsigned_abs()) {
        Ok(n) if months >= 0 => date.checked_add_months(chrono::Months::new(n)),
        Ok(n) => date.checked_sub_months(chrono::Months::new(n)),
        Err(_) => None,
    };
    date_value(shifted)
}

fn working_days_limit(days: i64) -> Result<(), Box<EvalAltResult>> {
    if days.abs() > MAX_WORKING_DAYS {
        Err(fail(format!(
            "at most {MAX_WORKING_DAYS} working days in one step"
        )))
    } else {
        Ok(())
    }
}

fn add_working_days(date: Dynamic, days: i64) -> Outcome {
    working_days_limit(days)?;
    let Some(date) = parse_date(&date)? else {
        return Ok(Dynamic::UNIT);
    };
    with_env(|env| {
        let calendar = env.map(|e| e.calendar.clone()).unwrap_or_default();
        date_value(calendar.add_working_days(date, days))
    })
}

fn working_days_between(from: Dynamic, to: Dynamic) -> Outcome {
    match (parse_date(&from)?, parse_date(&to)?) {
        (Some(from), Some(to)) => {
            working_days_limit((to - from).num_days() * 5 / 7)?;
            with_env(|env| {
                let calendar = env.map(|e| e.calendar.clone()).unwrap_or_default();
                Ok(Dynamic::from_int(calendar.working_days_between(from, to)))
            })
        }
        _ => Ok(Dynamic::UNIT),
    }
}

fn is_working_day(date: Dynamic) -> Outcome {
    let Some(date) = parse_date(&date)? else {
        return Ok(Dynamic::UNIT);
    };
    with_env(|env| {
        let calendar = env.map(|e| e.calendar.clone()).unwrap_or_default();
        Ok(Dynamic::from_bool(calendar.is_working_day(date)))
    })
}

fn date_part(value: &Dynamic, part: impl Fn(NaiveDate) -> i64) -> Outcome {
    Ok(parse_date(value)?.map_or(Dynamic::UNIT, |d| Dynamic::from_int(part(d))))
}

/// A number as an exact decimal (`None` for what is not a number).
fn decimal_of(value: &Dynamic) -> Option<Decimal> {
    if let Ok(d) = value.as_decimal() {
        Some(d)
    } else if let Ok(i) = value.as_int() {
        Some(Decimal::from(i))
    } else if let Ok(f) = value.as_float() {
        Decimal::from_f64(f)
    } else {
        None
    }
}

fn to_decimal(value: Dynamic) -> Outcome {
    if value.is_unit() {
        return Ok(Dynamic::UNIT);
    }
    if let Some(d) = decimal_of(&value) {
        return Ok(Dynamic::from_decimal(d));
    }
    if let Ok(text) = value.clone().into_immutable_string() {
        return text
            .trim()
            .parse::<Decimal>()
            .map(Dynamic::from_decimal)
            .map_err(|_| fail(format!("{text:?} is not a number")));
    }
    Err(fail(format!(
        "decimal() needs a number or its text, got {}",
        super::values::type_name(&value)
    )))
}

/// Rounds half away from zero (四舍五入) to `digits` after the point; decimals stay exact,
/// floats stay floats.
fn round_to(value: Dynamic, digits: i64) -> Outcome {
    let Ok(digits) = u32::try_from(digits) else {
        return Err(fail("round_to needs 0 or more digits"));
    };
    let digits = digits.min(28);
    if value.is_unit() {
        Ok(Dynamic::UNIT)
    } else if let Ok(d) = value.as_decimal() {
        Ok(Dynamic::from_decimal(d.round_dp_with_strategy(
            digits,
            RoundingStrategy::MidpointAwayFromZero,
        )))
    } else if value.is_int() {
        Ok(value)
    } else if let Ok(f) = value.as_float() {
        Ok(Decimal::from_f64(f)
            .map(|d| d.round_dp_with_strategy(digits, RoundingStrategy::MidpointAwayFromZero))
            .and_then(|d| d.to_f64())
            .map_or(Dynamic::from_float(f), Dynamic::from_float))
    } else {
        Err(fail(format!(
            "round_to needs a number, got {}",
            super::values::type_name(&value)
        )))
    }
}

fn is_empty(value: &Dynamic) -> bool {
    if value.is_unit() {
        return true;
    }
    if let Ok(text) = value.clone().into_immutable_string() {
        return text.trim().is_empty();
    }
    if let Some(items) = value.read_lock::<Array>() {
        return items.is_empty();
    }
    if let Some(map) = value.read_lock::<RhaiMap>() {
        return map.is_empty();
    }
    false
}

/// The numbers of a list, exact: decimals when any is a decimal, else integers when all are,
/// else floats; empty values are skipped.
fn numbers(items: &[Dynamic]) -> Result<Vec<&Dynamic>, Box<EvalAltResult>> {
    let mut found = Vec::with_capacity(items.len());
    for item in items {
        if item.is_unit() {
            continue;
        }
        if decimal_of(item).is_none() {
            return Err(fail(format!(
                "a list to add up holds {}",
                super::values::type_name(item)
            )));
        }
        found.push(item);
    }
    Ok(found)
}

fn sum(items: &[Dynamic]) -> Outcome {
    let found = numbers(items)?;
    if found.iter().all(|v| v.is_int()) {
        let mut total: i64 = 0;
        for value in &found {
            total = total
                .checked_add(value.as_int().unwrap_or_default())
                .ok_or_else(|| fail("the sum is too large"))?;
        }
        return Ok(Dynamic::from_int(total));
    }
    if found.iter().any(|v| v.is_float()) && !found.iter().any(|v| v.is_decimal()) {
        return Ok(Dynamic::from_float(
            found
                .iter()
                .map(|v| {
                    v.as_float()
                        .unwrap_or_else(|_| v.as_int().unwrap_or_default() as f64)
                })
                .sum(),
        ));
    }
    let mut total = Decimal::ZERO;
    for value in &found {
        total = total
            .checked_add(decimal_of(value).unwrap_or_default())
            .ok_or_else(|| fail("the sum is too large"))?;
    }
    Ok(Dynamic::from_decimal(total))
}

fn average(items: &[Dynamic]) -> Outcome {
    let count = numbers(items)?.len();
    if count == 0 {
        return Ok(Dynamic::UNIT);
    }
    let total = sum(items)?;
    if let Ok(d) = total.as_decimal() {
        Ok(Dynamic::from_decimal(
            (d / Decimal::from(count)).normalize(),
        ))
    } else if let Ok(i) = total.as_int() {
        Ok(Dynamic::from_float(i as f64 / count as f64))
    } else {
        Ok(Dynamic::from_float(
            total.as_float().unwrap_or_default() / count as f64,
        ))
    }
}

fn extreme(items: &[Dynamic], wanted: std::cmp::Ordering) -> Outcome {
    let mut best: Option<&Dynamic> = None;
    for item in items.iter().filter(|v| !v.is_unit()) {
        let better = match best {
            None => true,
            Some(current) => match (decimal_of(item), decimal_of(current)) {
                (Some(a), Some(b)) => a.cmp(&b) == wanted,
                _ => match (
                    item.clone().into_immutable_string(),
                    current.clone().into_immutable_string(),
                ) {
                    (Ok(a), Ok(b)) => a.as_str().cmp(b.as_str()) == wanted,
                    _ => {
                        return Err(fail("min_of and max_of compare numbers or texts"));
                    }
                },
            },
        };
        if better {
            best = Some(item);
        }
    }
    Ok(best.cloned().unwrap_or(Dynamic::UNIT))
}

fn pluck(rows: &[Dynamic], column: &str) -> Array {
    rows.iter()
        .map(|row| {
            row.read_lock::<RhaiMap>()
                .and_then(|map| map.get(column).cloned())
                .unwrap_or(Dynamic::UNIT)
        })
        .collect()
}

fn lookup(entity: ImmutableString, id: Dynamic) -> Outcome {
    if id.is_unit() {
        return Ok(Dynamic::UNIT);
    }
    let Ok(id) = id.into_immutable_string() else {
        return Err(fail("lookup needs a record id (text)"));
    };
    with_env(|env| {
        let Some(env) = env else {
            return Err(fail("lookup is not available here"));
        };
        if let Some(allowed) = env.allowed_lookups.borrow().as_ref()
            && !allowed.iter().any(|e| e.as_str() == entity.as_str())
        {
            return Err(fail(format!(
                "this formula does not declare a lookup of {entity:?} (write lookup(\"{entity}\", record.reference_field))"
            )));
        }
        let key = (entity.to_string(), id.to_string());
        if let Some(found) = env.lookups.borrow().get(&key) {
            return Ok(found.clone());
        }
        env.wanted.borrow_mut().push(key);
        Err(fail(LOOKUP_PENDING))
    })
}

/// One function of the script library as the formula editor's reference shows it.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FunctionDoc {
    /// How it is called.
    pub call: &'static str,
    /// What it does, in English.
    pub en: &'static str,
    /// What it does, in Chinese.
    pub zh: &'static str,
    /// An example call (checked by a test to give `result`; empty when it needs records).
    pub example: &'static str,
    /// What the example gives.
    pub result: &'static str,
}

/// The library's functions, for the formula editor (`docs/scripting.md` has the details).
pub const REFERENCE: &[FunctionDoc] = &[
    FunctionDoc {
        call: "today()",
        en: "today's date in the workspace time zone",
        zh: "工作区时区的今天日期",
        example: "today()",
        result: "2026-10-01",
    },
    FunctionDoc {
        call: "now()",
        en: "the current instant (UTC)",
        zh: "当前时间（UTC）",
        example: "now()",
        result: "2026-09-30T17:00:00Z",
    },
    FunctionDoc {
        call: "date(y, m, d)",
        en: "a date",
        zh: "构造日期",
        example: "date(2026, 2, 28)",
        result: "2026-02-28",
    },
    FunctionDoc {
        call: "days_between(from, to)",
        en: "calendar days from one date to another",
        zh: "两个日期相差的天数",
        example: "days_between(\"2026-01-31\", \"2026-03-01\")",
        result: "29",
    },
    FunctionDoc {
        call: "add_days(date, n)",
        en: "a date n days later (n may be negative)",
        zh: "日期加 n 天",
        example: "add_days(date(2026, 12, 31), 1)",
        result: "2027-01-01",
    },
    FunctionDoc {
        call: "add_months(date, n)",
        en: "a date n months later, clamped to the month's end",
        zh: "日期加 n 个月（月底对齐）",
        example: "add_months(\"2026-01-31\", 1)",
        result: "2026-02-28",
    },
    FunctionDoc {
        call: "add_working_days(date, n)",
        en: "n working days later by the business calendar",
        zh: "按工作日历加 n 个工作日",
        example: "add_working_days(\"2026-09-30\", 1)",
        result: "2026-10-02",
    },
    FunctionDoc {
        call: "working_days_between(from, to)",
        en: "working days between two dates",
        zh: "两个日期之间的工作日数",
        example: "working_days_between(\"2026-09-28\", \"2026-10-05\")",
        result: "4",
    },
    FunctionDoc {
        call: "is_working_day(date)",
        en: "whether a date is a working day",
        zh: "是否为工作日",
        example: "is_working_day(\"2026-10-01\")",
        result: "false",
    },
    FunctionDoc {
        call: "year(d), month(d), day(d)",
        en: "parts of a date",
        zh: "日期的年、月、日",
        example: "month(\"2026-08-15\")",
        result: "8",
    },
    FunctionDoc {
        call: "quarter(d)",
        en: "the quarter, 1 to 4",
        zh: "季度（1–4）",
        example: "quarter(\"2026-08-15\")",
        result: "3",
    },
    FunctionDoc {
        call: "weekday(d)",
        en: "day of the week, Monday 1 to Sunday 7",
        zh: "星期几（周一为 1）",
        example: "weekday(\"2026-12-05\")",
        result: "6",
    },
    FunctionDoc {
        call: "decimal(x)",
        en: "an exact decimal number (write rates this way)",
        zh: "精确小数（税率等请这样写）",
        example: "decimal(\"0.13\")",
        result: "0.13",
    },
    FunctionDoc {
        call: "round_to(x, digits)",
        en: "rounded half away from zero (四舍五入)",
        zh: "四舍五入到指定小数位",
        example: "round_to(decimal(\"-2.345\"), 2)",
        result: "-2.35",
    },
    FunctionDoc {
        call: "empty(x)",
        en: "whether a value is missing or blank",
        zh: "是否为空",
        example: "empty(\"  \")",
        result: "true",
    },
    FunctionDoc {
        call: "coalesce(x, fallback)",
        en: "x, or the fallback when x is empty",
        zh: "为空时取备选值",
        example: "coalesce((), 7)",
        result: "7",
    },
    FunctionDoc {
        call: "sum(list), sum(rows, \"column\")",
        en: "the sum of numbers, or of a line-item column",
        zh: "求和（或明细表某列求和）",
        example: "sum([1, 2, 3])",
        result: "6",
    },
    FunctionDoc {
        call: "avg(list), avg(rows, \"column\")",
        en: "the average",
        zh: "平均值",
        example: "avg([decimal(\"1\"), decimal(\"2\")])",
        result: "1.5",
    },
    FunctionDoc {
        call: "min_of(list), max_of(list)",
        en: "the smallest or largest item",
        zh: "最小值 / 最大值",
        example: "max_of([3, 9, (), 4])",
        result: "9",
    },
    FunctionDoc {
        call: "pluck(rows, \"column\")",
        en: "one column of line items",
        zh: "取明细表的一列",
        example: "pluck([#{a: 1}, #{a: 2}], \"a\")",
        result: "[1, 2]",
    },
    FunctionDoc {
        call: "lookup(\"entity\", record.ref)",
        en: "a related record (by a reference field)",
        zh: "读取关联记录",
        example: "",
        result: "",
    },
];

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::calendar::BusinessCalendar;
    use crate::script::{Env, ScriptEngine};

    fn env() -> Rc<Env> {
        let mut calendar = BusinessCalendar::default();
        calendar
            .holidays
            .insert(NaiveDate::from_ymd_opt(2026, 10, 1).expect("date"));
        Rc::new(Env::new(
            Utc.with_ymd_and_hms(2026, 9, 30, 17, 0, 0)
                .single()
                .expect("time"),
            chrono_tz::Asia::Shanghai,
            Arc::new(calendar),
        ))
    }

    fn run(source: &str) -> Dynamic {
        let engine = ScriptEngine::default();
        let script = engine.compile(source, "/s").expect("compiles");
        engine
            .eval_in(&env(), &script, vec![], "/s")
            .unwrap_or_else(|e| panic!("{source}: {e:?}"))
    }

    fn text(value: Dynamic) -> String {
        value.to_string()
    }

    #[test]
    fn the_reference_examples_give_what_they_say() {
        for doc in REFERENCE.iter().filter(|d| !d.example.is_empty()) {
            assert_eq!(text(run(doc.example)), doc.result, "{}", doc.call);
        }
    }

    #[test]
    fn dates_follow_the_workspace_zone_and_calendar() {
        // 17:00 UTC on 30 September is 1 October in Shanghai, a holiday in this calendar.
        assert_eq!(text(run("today()")), "2026-10-01");
        assert_eq!(text(run("now()")), "2026-09-30T17:00:00Z");
        assert!(!run("is_working_day(today())").as_bool().expect("bool"));
        assert_eq!(
            text(run("add_working_days(\"2026-09-30\", 1)")),
            "2026-10-02"
        );
        assert_eq!(
            run("working_days_between(\"2026-09-28\", \"2026-10-05\")").as_int(),
            Ok(4)
        );
        assert_eq!(
            run("days_between(\"2026-01-31\", \"2026-03-01\")").as_int(),
            Ok(29)
        );
        assert_eq!(text(run("add_months(\"2026-01-31\", 1)")), "2026-02-28");
        assert_eq!(text(run("add_days(date(2026, 12, 31), 1)")), "2027-01-01");
        assert_eq!(run("quarter(\"2026-08-15\")").as_int(), Ok(3));
        assert_eq!(run("weekday(\"2026-12-05\")").as_int(), Ok(6));
        assert!(run("days_between((), today())").is_unit());
    }

    #[test]
    fn money_stays_exact() {
        assert_eq!(text(run("round_to(decimal(\"2.345\"), 2)")), "2.35");
        assert_eq!(text(run("round_to(decimal(\"-2.345\"), 2)")), "-2.35");
        assert_eq!(
            text(run("sum([decimal(\"0.10\"), decimal(\"0.20\"), 1])")),
            "1.30"
        );
        assert_eq!(run("sum([1, 2, ()])").as_int(), Ok(3));
        assert_eq!(
            text(run(
                "sum([#{a: decimal(\"1.5\")}, #{a: decimal(\"2.25\")}], \"a\")"
            )),
            "3.75"
        );
        assert_eq!(text(run("avg([decimal(\"1\"), decimal(\"2\")])")), "1.5");
        assert_eq!(run("max_of([3, 9, (), 4])").as_int(), Ok(9));
        assert_eq!(text(run("min_of([\"b\", \"a\"])")), "a");
        assert!(run("empty(\"  \")").as_bool().expect("bool"));
        assert_eq!(run("coalesce((), 7)").as_int(), Ok(7));
    }

    #[test]
    fn bad_input_is_a_located_error() {
        let engine = ScriptEngine::default();
        for source in [
            "add_working_days(today(), 100000)",
            "date(2026, 2, 30)",
            "days_between(\"someday\", today())",
            "sum([1, \"x\"])",
        ] {
            let script = engine.compile(source, "/s").expect("compiles");
            let Err(crate::error::Error::Invalid { errors, .. }) =
                engine.eval_in(&env(), &script, vec![], "/s")
            else {
                panic!("{source} should fail");
            };
            assert_eq!(errors[0].code, "script_error", "{source}");
            assert!(errors[0].line.is_some(), "{source}: {errors:?}");
        }
    }

    #[test]
    fn lookups_ask_then_answer() {
        let engine = ScriptEngine::default();
        let script = engine
            .compile("let c = lookup(\"customer\", \"c1\"); c.name", "/s")
            .expect("compiles");
        let env = env();
        assert!(engine.eval_in(&env, &script, vec![], "/s").is_err());
        assert_eq!(
            env.take_wanted(),
            [("customer".to_owned(), "c1".to_owned())]
        );
        let mut found = RhaiMap::new();
        found.insert("name".into(), Dynamic::from("华为"));
        env.lookups.borrow_mut().insert(
            ("customer".to_owned(), "c1".to_owned()),
            Dynamic::from_map(found),
        );
        let value = engine.eval_in(&env, &script, vec![], "/s").expect("runs");
        assert_eq!(value.to_string(), "华为");
    }
}
