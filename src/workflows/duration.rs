//! ISO 8601 durations as workflows write them (`P3D`, `PT2H`, `P1W`, `P1DT12H`), and the instant
//! a duration leads to from another, in calendar time or in working days.

use chrono::{DateTime, Duration, Utc};

use crate::calendar::BusinessCalendar;

/// A parsed duration: whole days (weeks counted as 7) and a time part in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Days (weeks included).
    pub days: i64,
    /// Hours, minutes and seconds, in seconds.
    pub seconds: i64,
}

impl Span {
    /// Parses `P[nW][nD][T[nH][nM][nS]]`; `None` for anything else or an empty duration.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix('P')?;
        let (date, time) = match rest.split_once('T') {
            Some((date, time)) if !time.is_empty() => (date, Some(time)),
            Some(_) => return None,
            None => (rest, None),
        };
        let mut span = Span {
            days: 0,
            seconds: 0,
        };
        let mut any = false;
        for (part, units) in [(date, "WD"), (time.unwrap_or(""), "HMS")] {
            let mut number = String::new();
            let mut last_unit = None;
            for c in part.chars() {
                if c.is_ascii_digit() {
                    number.push(c);
                    continue;
                }
                let position = units.find(c)?;
                // Units in order, each once, each with a number.
                if last_unit.is_some_and(|l| l >= position) || number.is_empty() {
                    return None;
                }
                last_unit = Some(position);
                let n: i64 = number.parse().ok()?;
                number.clear();
                any = true;
                match c {
                    'W' => span.days = span.days.checked_add(n.checked_mul(7)?)?,
                    'D' => span.days = span.days.checked_add(n)?,
                    'H' => span.seconds = span.seconds.checked_add(n.checked_mul(3600)?)?,
                    'M' => span.seconds = span.seconds.checked_add(n.checked_mul(60)?)?,
                    _ => span.seconds = span.seconds.checked_add(n)?,
                }
            }
            if !number.is_empty() {
                return None;
            }
        }
        (any && span.days <= 36_600 && span.seconds <= 36_600 * 86_400).then_some(span)
    }

    /// The instant this span after (or, with `before`, before) `from`: calendar time, or whole
    /// working days of `calendar` in `zone` (the time of day kept).
    pub fn apply(
        self,
        from: DateTime<Utc>,
        before: bool,
        working_days: Option<(&BusinessCalendar, chrono_tz::Tz)>,
    ) -> Option<DateTime<Utc>> {
        let sign = if before { -1 } else { 1 };
        match working_days {
            Some((calendar, zone)) => {
                let local = from.with_timezone(&zone);
                let date = calendar.add_working_days(local.date_naive(), sign * self.days)?;
                let moved = date.and_time(local.time());
                let at = moved
                    .and_local_timezone(zone)
                    .earliest()?
                    .with_timezone(&Utc);
                at.checked_add_signed(Duration::seconds(sign * self.seconds))
            }
            None => from.checked_add_signed(Duration::seconds(
                sign * (self.days.checked_mul(86_400)? + self.seconds),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_iso_forms_workflows_use() {
        assert_eq!(
            Span::parse("P3D"),
            Some(Span {
                days: 3,
                seconds: 0
            })
        );
        assert_eq!(
            Span::parse("P1W"),
            Some(Span {
                days: 7,
                seconds: 0
            })
        );
        assert_eq!(
            Span::parse("P1DT12H30M5S"),
            Some(Span {
                days: 1,
                seconds: 12 * 3600 + 30 * 60 + 5
            })
        );
        assert_eq!(
            Span::parse("PT2H"),
            Some(Span {
                days: 0,
                seconds: 7200
            })
        );
        for bad in [
            "", "P", "PT", "3D", "P3", "PD", "P1D2W", "PT1H1H", "P1DT", "P-1D", "P1Y",
        ] {
            assert_eq!(Span::parse(bad), None, "{bad}");
        }
    }
}
