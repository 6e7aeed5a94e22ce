//! iCalendar (RFC 5545) text of a feed (pure): a `VCALENDAR` of `VEVENT`s, all-day events as
//! `DATE` values, timed ones in UTC; text values escaped (`\\`, `;`, `,`, newlines), content
//! lines folded at 75 octets without splitting a character, CRLF line ends.

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// One event of a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcsEvent {
    /// Stable across reads (the record and the field), so calendar apps update rather than add.
    pub uid: String,
    /// The title.
    pub summary: String,
    /// A longer text.
    pub description: String,
    /// Where to open it.
    pub url: Option<String>,
    /// When.
    pub start: Start,
    /// Last change of the record.
    pub modified: DateTime<Utc>,
}

/// When an event starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// All day.
    Day(NaiveDate),
    /// At an instant (shown for 30 minutes).
    At(DateTime<Utc>),
}

/// Escapes a TEXT value (RFC 5545 §3.3.11).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends one content line, folded at 75 octets (§3.1), with CRLF.
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars() {
        let size = c.len_utf8();
        if width + size > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += size;
    }
    out.push_str("\r\n");
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The feed's text.
pub fn render(name: &str, events: &[IcsEvent], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(&mut out, "PRODID:-//Formwork//Formwork CRM//EN");
    line(&mut out, "CALSCALE:GREGORIAN");
    line(&mut out, "METHOD:PUBLISH");
    line(&mut out, &format!("X-WR-CALNAME:{}", escape(name)));
    for event in events {
        line(&mut out, "BEGIN:VEVENT");
        line(&mut out, &format!("UID:{}", escape(&event.uid)));
        line(&mut out, &format!("DTSTAMP:{}", stamp(now)));
        match event.start {
            Start::Day(day) => {
                line(
                    &mut out,
                    &format!("DTSTART;VALUE=DATE:{}", day.format("%Y%m%d")),
                );
                let next = day.succ_opt().unwrap_or(day);
                line(
                    &mut out,
                    &format!("DTEND;VALUE=DATE:{}", next.format("%Y%m%d")),
                );
            }
            Start::At(at) => {
                line(&mut out, &format!("DTSTART:{}", stamp(at)));
                line(
                    &mut out,
                    &format!("DTEND:{}", stamp(at + Duration::minutes(30))),
                );
            }
        }
        line(&mut out, &format!("SUMMARY:{}", escape(&event.summary)));
        if !event.description.is_empty() {
            line(
                &mut out,
                &format!("DESCRIPTION:{}", escape(&event.description)),
            );
        }
        if let Some(url) = &event.url {
            line(&mut out, &format!("URL:{url}"));
        }
        line(
            &mut out,
            &format!("LAST-MODIFIED:{}", stamp(event.modified)),
        );
        line(&mut out, "END:VEVENT");
    }
    line(&mut out, "END:VCALENDAR");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_long_lines_are_folded_between_characters() {
        let now: DateTime<Utc> = "2026-12-06T10:00:00Z".parse().expect("now");
        let events = vec![
            IcsEvent {
                uid: "a@formwork".to_owned(),
                summary: "Call 王芳; re: quote, v2\\final\nsoon".to_owned(),
                description: "回访".repeat(30),
                url: Some("https://crm.example.com/w/demo/e/follow_up/1".to_owned()),
                start: Start::Day("2026-12-31".parse().expect("day")),
                modified: now,
            },
            IcsEvent {
                uid: "b@formwork".to_owned(),
                summary: "Visit".to_owned(),
                description: String::new(),
                url: None,
                start: Start::At("2026-12-07T01:30:00Z".parse().expect("at")),
                modified: now,
            },
        ];
        let text = render("Li's follow-ups", &events, now);
        assert!(text.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"));
        assert!(text.ends_with("END:VCALENDAR\r\n"));
        assert!(text.contains("SUMMARY:Call 王芳\\; re: quote\\, v2\\\\final\\nsoon\r\n"));
        assert!(text.contains("DTSTART;VALUE=DATE:20261231\r\nDTEND;VALUE=DATE:20270101\r\n"));
        assert!(text.contains("DTSTART:20261207T013000Z\r\nDTEND:20261207T020000Z\r\n"));
        for physical in text.split("\r\n") {
            assert!(
                physical.len() <= 75,
                "{physical:?} is {} octets",
                physical.len()
            );
        }
        // Unfolding gives the description back whole.
        let unfolded = text.replace("\r\n ", "");
        assert!(unfolded.contains(&format!("DESCRIPTION:{}\r\n", "回访".repeat(30))));
    }
}
