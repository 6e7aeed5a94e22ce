//! Search terms: what global search stores for a field value and looks up for a query.
//!
//! Latin text is cut into words, found by prefix ("ali" finds "Alibaba"). Chinese, Japanese and
//! Korean text has no spaces, so a run of such characters is stored as its overlapping pairs
//! of characters plus its last character: "星辰科技" → 星辰, 辰科, 科技, 技. A query's run of two
//! or more characters must then have all its pairs in the same value (the caller checks the
//! run is really there, since pairs may come from different places), and a single character is
//! looked up as a prefix of the pairs. Phone numbers are stored as their digits, without a
//! leading country code, and their last 4 and 8 digits, so "13812345678", "+86 138-1234-5678",
//! "5678" and "12345678" all find "+86 138 1234 5678". Everything is lowercased and
//! full-width letters and digits are read as their ASCII forms.
//!
//! Changing what terms are made from a value changes [`TOKENISER`], which rebuilds the terms of
//! every entity.

/// The version of the rules below; part of an entity's search signature.
pub const TOKENISER: &str = "v1";

/// Terms longer than this are cut (queries too, so a prefix still finds them).
const MAX_TERM_CHARS: usize = 32;
/// Most terms one value makes (a long text indexes its beginning).
const MAX_TERMS_PER_VALUE: usize = 96;
/// Most tokens one query looks up.
const MAX_QUERY_TOKENS: usize = 8;

/// How a value is cut into terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Words and character pairs.
    Text,
    /// A phone number's digits.
    Phone,
}

/// One thing a query looks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Terms starting with this.
    Prefix(String),
    /// This term exactly (a pair of CJK characters).
    Exact(String),
}

impl Token {
    /// The term text.
    pub fn text(&self) -> &str {
        match self {
            Self::Prefix(text) | Self::Exact(text) => text,
        }
    }
}

/// A parsed query: the tokens to look up, and the CJK runs a found value must contain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// Tokens, most selective first.
    pub tokens: Vec<Token>,
    /// Runs of two or more CJK characters (normalised), to check in the values found.
    pub phrases: Vec<String>,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF       // Hiragana, Katakana
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0x20000..=0x3134F) // CJK extensions B–G
}

/// A character as search compares it: full-width ASCII as ASCII, lowercased.
fn normal_chars(c: char) -> impl Iterator<Item = char> {
    let c = match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    };
    c.to_lowercase()
}

/// `text` lowercased with full-width forms folded, as terms are made from it.
pub fn normalise(text: &str) -> String {
    text.chars().flat_map(normal_chars).collect()
}

enum Piece {
    Word(String),
    Run(Vec<char>),
}

fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut run: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, out: &mut Vec<Piece>| {
        if !word.is_empty() {
            out.push(Piece::Word(std::mem::take(word)));
        }
    };
    let flush_run = |run: &mut Vec<char>, out: &mut Vec<Piece>| {
        if !run.is_empty() {
            out.push(Piece::Run(std::mem::take(run)));
        }
    };
    for c in text.chars().flat_map(normal_chars) {
        if is_cjk(c) {
            flush_word(&mut word, &mut out);
            run.push(c);
        } else if c.is_alphanumeric() {
            flush_run(&mut run, &mut out);
            word.push(c);
        } else {
            flush_word(&mut word, &mut out);
            flush_run(&mut run, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    flush_run(&mut run, &mut out);
    out
}

fn cut(text: &str) -> String {
    text.chars().take(MAX_TERM_CHARS).collect()
}

fn digits(text: &str) -> String {
    text.chars()
        .flat_map(normal_chars)
        .filter(char::is_ascii_digit)
        .collect()
}

/// The terms stored for one value.
pub fn terms(flavour: Flavour, text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |term: String| {
        if !term.is_empty() && out.len() < MAX_TERMS_PER_VALUE && !out.contains(&term) {
            out.push(term);
        }
    };
    match flavour {
        Flavour::Phone => {
            let all = digits(text);
            if all.is_empty() {
                return out;
            }
            push(cut(&all));
            if let Some(national) = national_number(text, &all) {
                push(cut(national));
            }
            for tail in [8, 4] {
                if all.len() > tail {
                    push(all[all.len() - tail..].to_owned());
                }
            }
        }
        Flavour::Text => {
            for piece in pieces(text) {
                match piece {
                    Piece::Word(word) => push(cut(&word)),
                    Piece::Run(run) => {
                        for pair in run.windows(2) {
                            push(pair.iter().collect());
                        }
                        if let Some(last) = run.last() {
                            push(last.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

/// The length of the country calling code `digits` start with: E.164 codes are a prefix code
/// (1 and 7 alone; the two-digit ones below; every other is three digits long).
fn country_code_len(digits: &str) -> usize {
    const TWO_DIGITS: [&str; 44] = [
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else if TWO_DIGITS.iter().any(|code| digits.starts_with(code)) {
        2
    } else {
        3
    }
}

/// The number without its country code, when `text` is written internationally (`+86 …`,
/// `0086 …`); `all` is its digits.
fn national_number<'a>(text: &str, all: &'a str) -> Option<&'a str> {
    let trimmed = text.trim_start();
    let international = if trimmed.starts_with('+') || trimmed.starts_with('＋') {
        all
    } else {
        all.strip_prefix("00")?
    };
    let national = international.get(country_code_len(international)..)?;
    (national.len() >= 4).then_some(national)
}

/// Whether a query reads as a phone number: digits and phone punctuation only, with at least
/// three digits (`138-1234`, `+86 138 1234 5678`, `(010) 1234`).
fn is_phone_like(query: &str) -> bool {
    let digit_count = query.chars().filter(char::is_ascii_digit).count();
    digit_count >= 3
        && query
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '+' | '(' | ')' | '.'))
}

/// The tokens a query looks up; empty when it has nothing to look up (only punctuation).
pub fn parse(query: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let query = normalise(query);
    if is_phone_like(&query) {
        let all = digits(&query);
        // Numbers are stored without their country code too, so an international query finds
        // a number written with or without one.
        let wanted = national_number(&query, &all).unwrap_or(&all);
        parsed.tokens.push(Token::Prefix(cut(wanted)));
        return parsed;
    }
    let push = |token: Token, tokens: &mut Vec<Token>| {
        if !tokens.contains(&token) {
            tokens.push(token);
        }
    };
    for piece in pieces(&query) {
        match piece {
            Piece::Word(word) => push(Token::Prefix(cut(&word)), &mut parsed.tokens),
            Piece::Run(run) if run.len() == 1 => {
                push(Token::Prefix(run[0].to_string()), &mut parsed.tokens);
            }
            Piece::Run(run) => {
                for pair in run.windows(2) {
                    push(Token::Exact(pair.iter().collect()), &mut parsed.tokens);
                }
                parsed.phrases.push(run.iter().collect());
            }
        }
    }
    // Exact pairs and long prefixes select fewest terms: they drive the lookup.
    parsed.tokens.sort_by_key(|token| match token {
        Token::Exact(_) => (0, 0),
        Token::Prefix(text) => (1, usize::MAX - text.chars().count()),
    });
    parsed.tokens.truncate(MAX_QUERY_TOKENS);
    parsed
}

/// The first term after every term starting with `prefix` (search reads `[prefix, upper)`).
pub fn upper_bound(prefix: &str) -> String {
    // U+10FFFF sorts after every character in UTF-8 byte order (SQLite's BINARY collation and
    // PostgreSQL's "C"), and terms are never made of it.
    format!("{prefix}\u{10FFFF}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercased_and_full_width_folded() {
        assert_eq!(
            terms(Flavour::Text, "Alice.Wong@Example.com"),
            ["alice", "wong", "example", "com"]
        );
        assert_eq!(terms(Flavour::Text, "ＡＢＣ１２３ Ltd"), ["abc123", "ltd"]);
        assert!(terms(Flavour::Text, " --- ").is_empty());
    }

    #[test]
    fn chinese_is_stored_as_pairs_and_its_last_character() {
        assert_eq!(
            terms(Flavour::Text, "星辰科技 ERP二期"),
            ["星辰", "辰科", "科技", "技", "erp", "二期", "期"]
        );
        assert_eq!(terms(Flavour::Text, "王"), ["王"]);
        let parsed = parse("星辰科技");
        assert_eq!(
            parsed.tokens,
            [
                Token::Exact("星辰".into()),
                Token::Exact("辰科".into()),
                Token::Exact("科技".into())
            ]
        );
        assert_eq!(parsed.phrases, ["星辰科技"]);
        // One character finds pairs starting with it and a run's last character.
        assert_eq!(parse("技").tokens, [Token::Prefix("技".into())]);
    }

    #[test]
    fn phones_are_found_by_their_digits_with_or_without_country_code() {
        let stored = terms(Flavour::Phone, "+86 138-1234-5678");
        for query in [
            "13812345678",
            "+86 138 1234 5678",
            "138-1234",
            "5678",
            "12345678",
        ] {
            let token = parse(query).tokens.remove(0);
            assert!(
                stored.iter().any(|t| t.starts_with(token.text())),
                "{query} should find {stored:?}"
            );
        }
        let landline = terms(Flavour::Phone, "010-6543 2109");
        assert!(landline.contains(&"65432109".to_owned()));
        assert!(terms(Flavour::Phone, "n/a").is_empty());
    }

    #[test]
    fn queries_put_the_most_selective_token_first() {
        let parsed = parse("wang 星辰 a");
        assert_eq!(
            parsed.tokens,
            [
                Token::Exact("星辰".into()),
                Token::Prefix("wang".into()),
                Token::Prefix("a".into())
            ]
        );
        assert!(parse("  ,; ").tokens.is_empty());
        assert!(upper_bound("ab").as_str() > "abzzzz");
        assert!(upper_bound("ab").as_str() < "ac");
    }

    #[test]
    fn long_values_are_bounded() {
        let long = format!("{}{}", "word ".repeat(10), "x".repeat(100));
        let made = terms(Flavour::Text, &long);
        assert_eq!(made, ["word", &"x".repeat(MAX_TERM_CHARS)]);
        let many: String = (0..500).map(|i| format!("w{i} ")).collect();
        assert_eq!(terms(Flavour::Text, &many).len(), MAX_TERMS_PER_VALUE);
    }
}
