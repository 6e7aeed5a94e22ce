//! The UI's languages: message catalogs (`web/i18n/<tag>.json`), choosing a language, and
//! formatting dates, numbers and money the way each language's readers expect.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

/// A language of the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Locale {
    /// English.
    En,
    /// Simplified Chinese (mainland).
    ZhCn,
}

/// Every language the UI speaks, in the order the switcher lists them.
pub const LOCALES: [Locale; 2] = [Locale::ZhCn, Locale::En];

impl Locale {
    /// The BCP 47 tag (`en`, `zh-CN`), also the key of labels in definitions (`x-label`).
    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::ZhCn => "zh-CN",
        }
    }

    /// The language's own name, for the switcher.
    pub fn native_name(self) -> &'static str {
        match self {
            Self::En => "English",
            Self::ZhCn => "简体中文",
        }
    }

    /// The locale a tag names exactly (`en`, `zh-CN`), or none.
    pub fn from_tag(tag: &str) -> Option<Self> {
        LOCALES.into_iter().find(|l| l.tag() == tag)
    }

    /// The best language for an `Accept-Language` header (any Chinese → zh-CN; default en).
    pub fn negotiate(accept_language: Option<&str>) -> Self {
        let Some(header) = accept_language else {
            return Self::En;
        };
        let mut ranked: Vec<(f32, usize, &str)> = header
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut pieces = part.trim().split(';');
                let tag = pieces.next()?.trim();
                let quality = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (!tag.is_empty() && quality > 0.0).then_some((quality, i, tag))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, _, tag) in ranked {
            let primary = tag
                .split('-')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            match primary.as_str() {
                "zh" => return Self::ZhCn,
                "en" => return Self::En,
                _ => {}
            }
        }
        Self::En
    }

    /// The UI message `key` in this language (English when the language lacks it, the key
    /// itself when both do — a unit test keeps the catalogs complete).
    pub fn text(self, key: &str) -> String {
        let catalogs = catalogs();
        let own = match self {
            Self::En => &catalogs.en,
            Self::ZhCn => &catalogs.zh_cn,
        };
        own.get(key)
            .or_else(|| catalogs.en.get(key))
            .map_or_else(|| key.to_owned(), String::clone)
    }

    /// A definition's label (`{"en": …, "zh-CN": …}`) in this language, else English, else
    /// `fallback`.
    pub fn label<'a>(self, label: Option<&'a serde_json::Value>, fallback: &'a str) -> &'a str {
        label
            .and_then(|l| l.get(self.tag()).or_else(|| l.get("en")))
            .and_then(serde_json::Value::as_str)
            .unwrap_or(fallback)
    }

    /// A calendar date: `Dec 5, 2026` / `2026年12月5日`.
    pub fn date(self, date: NaiveDate) -> String {
        match self {
            Self::En => format!(
                "{} {}, {}",
                MONTHS_EN[date.month0() as usize],
                date.day(),
                date.year()
            ),
            Self::ZhCn => format!("{}年{}月{}日", date.year(), date.month(), date.day()),
        }
    }

    /// An instant in `zone`: `Dec 5, 2026 14:30` / `2026年12月5日 14:30`.
    pub fn date_time(self, at: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
        let local = at.with_timezone(&zone);
        format!(
            "{} {:02}:{:02}",
            self.date(local.date_naive()),
            local.hour(),
            local.minute()
        )
    }

    /// A decimal number given as text (`-1234567.5`) with thousands separators.
    pub fn number(self, text: &str) -> String {
        let (sign, digits) = match text.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", text),
        };
        let (whole, fraction) = match digits.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (digits, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return text.to_owned();
        }
        let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        match fraction {
            Some(f) if !f.is_empty() => format!("{sign}{grouped}.{f}"),
            _ => format!("{sign}{grouped}"),
        }
    }

    /// An amount (`"1234.50"`) in `currency`, as readers of this language write it:
    /// `CN¥1,234.50` in English, `¥1,234.50` in Chinese.
    pub fn money(self, amount: &str, currency: &str) -> String {
        let symbol = match (currency, self) {
            ("CNY", Self::ZhCn) => "¥",
            ("CNY", Self::En) => "CN¥",
            ("USD", Self::En) => "$",
            ("USD", Self::ZhCn) => "US$",
            ("EUR", _) => "€",
            ("GBP", _) => "£",
            ("JPY", Self::ZhCn) => "JP¥",
            ("JPY", Self::En) => "¥",
            ("HKD", _) => "HK$",
            _ => "",
        };
        let (sign, digits) = match amount.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", amount),
        };
        if symbol.is_empty() {
            format!("{sign}{currency} {}", self.number(digits))
        } else {
            format!("{sign}{symbol}{}", self.number(digits))
        }
    }
}

const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

struct Catalogs {
    en: BTreeMap<String, String>,
    zh_cn: BTreeMap<String, String>,
}

fn catalogs() -> &'static Catalogs {
    static CATALOGS: OnceLock<Catalogs> = OnceLock::new();
    CATALOGS.get_or_init(|| Catalogs {
        en: parse_catalog(include_str!("../../web/i18n/en.json")),
        zh_cn: parse_catalog(include_str!("../../web/i18n/zh-CN.json")),
    })
}

/// A catalog that does not parse is empty (keys show through); a unit test parses both.
fn parse_catalog(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Every message key of a language's catalog (for the completeness test).
pub fn keys(locale: Locale) -> Vec<&'static str> {
    let catalogs = catalogs();
    match locale {
        Locale::En => catalogs.en.keys().map(String::as_str).collect(),
        Locale::ZhCn => catalogs.zh_cn.keys().map(String::as_str).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogs_parse_and_hold_the_same_keys() {
        let en: BTreeMap<String, String> =
            serde_json::from_str(include_str!("../../web/i18n/en.json")).expect("en.json");
        let zh: BTreeMap<String, String> =
            serde_json::from_str(include_str!("../../web/i18n/zh-CN.json")).expect("zh-CN.json");
        let only_en: Vec<&String> = en.keys().filter(|k| !zh.contains_key(*k)).collect();
        let only_zh: Vec<&String> = zh.keys().filter(|k| !en.contains_key(*k)).collect();
        assert!(only_en.is_empty(), "missing in zh-CN: {only_en:?}");
        assert!(only_zh.is_empty(), "missing in en: {only_zh:?}");
        assert!(en.values().chain(zh.values()).all(|v| !v.trim().is_empty()));
    }

    #[test]
    fn accept_language_picks_the_best_supported_language() {
        assert_eq!(Locale::negotiate(None), Locale::En);
        assert_eq!(
            Locale::negotiate(Some("zh-CN,zh;q=0.9,en;q=0.8")),
            Locale::ZhCn
        );
        assert_eq!(Locale::negotiate(Some("zh-TW")), Locale::ZhCn);
        assert_eq!(
            Locale::negotiate(Some("fr, en;q=0.5, zh;q=0.4")),
            Locale::En
        );
        assert_eq!(Locale::negotiate(Some("en;q=0.2, zh;q=0.9")), Locale::ZhCn);
        assert_eq!(Locale::negotiate(Some("de, zh;q=0")), Locale::En);
        assert_eq!(Locale::negotiate(Some(";;,,q=")), Locale::En);
    }

    #[test]
    fn numbers_dates_and_money_follow_the_language() {
        let en = Locale::En;
        let zh = Locale::ZhCn;
        assert_eq!(en.number("1234567.5"), "1,234,567.5");
        assert_eq!(en.number("-999"), "-999");
        assert_eq!(en.number("-1000"), "-1,000");
        assert_eq!(en.number("abc"), "abc");
        assert_eq!(zh.money("1234.50", "CNY"), "¥1,234.50");
        assert_eq!(en.money("1234.50", "CNY"), "CN¥1,234.50");
        assert_eq!(en.money("-5.00", "USD"), "-$5.00");
        assert_eq!(zh.money("100", "CHF"), "CHF 100");
        let day = NaiveDate::from_ymd_opt(2026, 12, 5).expect("date");
        assert_eq!(en.date(day), "Dec 5, 2026");
        assert_eq!(zh.date(day), "2026年12月5日");
        let at = DateTime::parse_from_rfc3339("2026-12-05T06:30:00Z")
            .expect("instant")
            .with_timezone(&Utc);
        assert_eq!(
            zh.date_time(at, chrono_tz::Asia::Shanghai),
            "2026年12月5日 14:30"
        );
    }

    #[test]
    fn labels_fall_back_to_english_then_the_key() {
        let label = serde_json::json!({"en": "Lead", "zh-CN": "线索"});
        assert_eq!(Locale::ZhCn.label(Some(&label), "lead"), "线索");
        let only_en = serde_json::json!({"en": "Lead"});
        assert_eq!(Locale::ZhCn.label(Some(&only_en), "lead"), "Lead");
        assert_eq!(Locale::En.label(None, "lead"), "lead");
    }
}
