//! Business calendars: working days, holidays and make-up workdays (调休), with working-day arithmetic.
//!
//! Pure logic, no IO. Scripts, SLAs and approval deadlines use it through a workspace's calendar.

use std::collections::BTreeSet;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError, Result};

/// The most holidays or make-up workdays one calendar may list (about 25 years of public holidays).
pub const MAX_LISTED_DAYS: usize = 2_000;

/// A workspace's business calendar, in the form stored and sent through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessCalendar {
    /// Days of the week that are not worked (default Saturday and Sunday).
    #[serde(default = "default_weekend", with = "weekday_names")]
    pub weekend: WeekdaySet,
    /// Dates that are not worked although they fall on a working weekday.
    #[serde(default)]
    pub holidays: BTreeSet<NaiveDate>,
    /// Make-up workdays: weekend dates that are worked (调休上班).
    #[serde(default)]
    pub workdays: BTreeSet<NaiveDate>,
    /// The month (1–12) the fiscal year starts in (default January): reports' fiscal periods
    /// and sales targets follow it.
    #[serde(default = "january")]
    pub fiscal_year_start: u32,
}

fn january() -> u32 {
    1
}

fn default_weekend() -> WeekdaySet {
    WeekdaySet::from_days(&[Weekday::Sat, Weekday::Sun])
}

/// A set of days of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WeekdaySet(u8);

impl WeekdaySet {
    /// The set of the given days.
    pub fn from_days(days: &[Weekday]) -> Self {
        Self(
            days.iter()
                .fold(0, |bits, day| bits | 1 << day.num_days_from_monday()),
        )
    }

    /// Whether `day` is in the set.
    pub fn contains(&self, day: &Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }

    /// How many days are in the set.
    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

impl Default for BusinessCalendar {
    fn default() -> Self {
        Self {
            weekend: default_weekend(),
            holidays: BTreeSet::new(),
            workdays: BTreeSet::new(),
            fiscal_year_start: january(),
        }
    }
}

impl BusinessCalendar {
    /// Parses and checks a calendar document, listing every problem by JSON pointer.
    ///
    /// # Errors
    /// `Error::Invalid` when the document has the wrong shape, no working weekday, too many
    /// listed dates, or a date that is both a holiday and a make-up workday.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let calendar: Self = serde_json::from_value(value.clone())
            .map_err(|e| Error::invalid("", "calendar", format!("invalid calendar: {e}")))?;
        calendar.validate()?;
        Ok(calendar)
    }

    /// Checks the invariants that make working-day arithmetic terminate and mean something.
    ///
    /// # Errors
    /// `Error::Invalid` listing every violated rule.
    pub fn validate(&self) -> Result<()> {
        let mut errors = Vec::new();
        if self.weekend.len() >= 7 {
            errors.push(FieldError::new(
                "/weekend",
                "no_working_days",
                "at least one day of the week must be a working day",
            ));
        }
        if self.holidays.len() > MAX_LISTED_DAYS {
            errors.push(FieldError::new(
                "/holidays",
                "too_many",
                format!("at most {MAX_LISTED_DAYS} holidays"),
            ));
        }
        if self.workdays.len() > MAX_LISTED_DAYS {
            errors.push(FieldError::new(
                "/workdays",
                "too_many",
                format!("at most {MAX_LISTED_DAYS} make-up workdays"),
            ));
        }
        if !(1..=12).contains(&self.fiscal_year_start) {
            errors.push(FieldError::new(
                "/fiscal_year_start",
                "range",
                "the fiscal year starts in a month from 1 to 12",
            ));
        }
        for date in self.holidays.intersection(&self.workdays) {
            errors.push(FieldError::new(
                "/workdays",
                "conflict",
                format!("{date} is listed both as a holiday and as a make-up workday"),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid_all("invalid business calendar", errors))
        }
    }

    /// Whether `date` is worked: a make-up workday, or a non-holiday, non-weekend day.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.workdays.contains(&date) {
            return true;
        }
        !self.holidays.contains(&date) && !self.weekend.contains(&date.weekday())
    }

    /// The date `n` working days after `start` (before it when `n` is negative).
    ///
    /// `start` itself never counts; with `n == 0` the answer is `start`. Returns `None` only when
    /// the result would leave chrono's date range.
    pub fn add_working_days(&self, start: NaiveDate, n: i64) -> Option<NaiveDate> {
        let step = if n >= 0 { 1 } else { -1 };
        let mut remaining = n.unsigned_abs();
        let mut date = start;
        // Terminates: at least one weekday is worked and listed holidays are finite.
        while remaining > 0 {
            date = date.checked_add_signed(Duration::days(step))?;
            if self.is_working_day(date) {
                remaining -= 1;
            }
        }
        Some(date)
    }

    /// Working days `d` with `from < d <= to`; negative when `to` is before `from`.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to < from {
            return -self.working_days_between(to, from);
        }
        if to == from {
            return 0;
        }
        let total_days = (to - from).num_days();
        let full_weeks = total_days / 7;
        let worked_per_week = 7 - self.weekend.len() as i64;
        let mut count = full_weeks * worked_per_week;
        // The whole weeks contain every weekday once; count the remainder day by day.
        let mut date = from + Duration::days(full_weeks * 7);
        while date < to {
            date += Duration::days(1);
            if !self.weekend.contains(&date.weekday()) {
                count += 1;
            }
        }
        // Then correct for listed dates inside the range.
        for holiday in self.holidays.range(from.succ_opt().unwrap_or(from)..=to) {
            if !self.weekend.contains(&holiday.weekday()) {
                count -= 1;
            }
        }
        for workday in self.workdays.range(from.succ_opt().unwrap_or(from)..=to) {
            if self.weekend.contains(&workday.weekday()) {
                count += 1;
            }
        }
        count
    }
}

mod weekday_names {
    use chrono::Weekday;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use super::WeekdaySet;

    const NAMES: [(&str, Weekday); 7] = [
        ("mon", Weekday::Mon),
        ("tue", Weekday::Tue),
        ("wed", Weekday::Wed),
        ("thu", Weekday::Thu),
        ("fri", Weekday::Fri),
        ("sat", Weekday::Sat),
        ("sun", Weekday::Sun),
    ];

    pub(super) fn serialize<S: Serializer>(
        days: &WeekdaySet,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let names: Vec<&str> = NAMES
            .iter()
            .filter(|(_, day)| days.contains(day))
            .map(|(name, _)| *name)
            .collect();
        serializer.collect_seq(names)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<WeekdaySet, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        let days = names
            .iter()
            .map(|name| {
                NAMES
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, day)| *day)
                    .ok_or_else(|| {
                        D::Error::custom(format!("unknown weekday {name:?}; use mon..sun"))
                    })
            })
            .collect::<Result<Vec<Weekday>, D::Error>>()?;
        Ok(WeekdaySet::from_days(&days))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    /// China's 2026 National Day: Oct 1–7 off; Sun Sep 27 and Sat Oct 10 are make-up workdays.
    fn china_october() -> BusinessCalendar {
        BusinessCalendar {
            holidays: (1..=7).map(|day| d(&format!("2026-10-0{day}"))).collect(),
            workdays: [d("2026-09-27"), d("2026-10-10")].into_iter().collect(),
            ..BusinessCalendar::default()
        }
    }

    #[test]
    fn weekends_are_skipped() {
        let cal = BusinessCalendar::default();
        // Friday + 1 working day = Monday.
        assert_eq!(
            cal.add_working_days(d("2026-11-20"), 1),
            Some(d("2026-11-23"))
        );
        assert_eq!(
            cal.add_working_days(d("2026-11-23"), -1),
            Some(d("2026-11-20"))
        );
        assert_eq!(
            cal.add_working_days(d("2026-11-22"), 0),
            Some(d("2026-11-22"))
        );
    }

    #[test]
    fn holidays_and_makeup_days_count() {
        let cal = china_october();
        // Wed Sep 30 + 1 working day: Oct 1–7 off, Thu Oct 8.
        assert_eq!(
            cal.add_working_days(d("2026-09-30"), 1),
            Some(d("2026-10-08"))
        );
        // Fri Oct 9 + 1: Sat Oct 10 is a make-up workday.
        assert_eq!(
            cal.add_working_days(d("2026-10-09"), 1),
            Some(d("2026-10-10"))
        );
        // Sat Sep 26 + 1: Sun Sep 27 is worked.
        assert_eq!(
            cal.add_working_days(d("2026-09-26"), 1),
            Some(d("2026-09-27"))
        );
    }

    #[test]
    fn between_matches_day_by_day_count() {
        let cal = china_october();
        let start = d("2026-09-01");
        for offset in 0..120 {
            let end = start + Duration::days(offset);
            let mut expected = 0;
            let mut day = start;
            while day < end {
                day += Duration::days(1);
                if cal.is_working_day(day) {
                    expected += 1;
                }
            }
            assert_eq!(cal.working_days_between(start, end), expected, "to {end}");
            assert_eq!(cal.working_days_between(end, start), -expected);
        }
    }

    #[test]
    fn add_and_between_agree() {
        let cal = china_october();
        let start = d("2026-09-25");
        for n in 0..40 {
            let end = cal.add_working_days(start, n).expect("in range");
            assert_eq!(cal.working_days_between(start, end), n);
        }
    }

    #[test]
    fn invalid_calendars_list_every_problem() {
        let doc = serde_json::json!({
            "weekend": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "holidays": ["2026-10-01"],
            "workdays": ["2026-10-01"]
        });
        let Err(Error::Invalid { errors, .. }) = BusinessCalendar::from_json(&doc) else {
            panic!("expected invalid");
        };
        let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/weekend", "/workdays"]);
        let bad_day = serde_json::json!({"weekend": ["caturday"]});
        assert!(BusinessCalendar::from_json(&bad_day).is_err());
    }

    #[test]
    fn round_trips_through_json() {
        let cal = china_october();
        let json = serde_json::to_value(&cal).expect("serialize");
        assert_eq!(json["weekend"], serde_json::json!(["sat", "sun"]));
        assert_eq!(BusinessCalendar::from_json(&json).expect("parse"), cal);
    }
}
