//! What a script uses, read from its text before it runs: the fields of `record` (and `old`) it
//! names, whether it reads the clock, and the records it looks up. Formulas need this to be
//! computed in dependency order, to reject cycles and unknown fields when they are saved, and to
//! know when they must be computed again.

/// Where in the source something was found (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    /// Line.
    pub line: u32,
    /// Column.
    pub column: u32,
}

/// A `lookup(entity, id)` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupUse {
    /// The entity, when written as a string literal.
    pub entity: Option<String>,
    /// The reference field holding the id, when written as `record.field`.
    pub via: Option<String>,
    /// Where.
    pub at: At,
}

/// What a script uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uses {
    /// Fields read as `record.field` or `record["field"]`, with where (first use of each).
    pub fields: Vec<(String, At)>,
    /// Fields read from `old`.
    pub old_fields: Vec<(String, At)>,
    /// Where `record` is used other than to name a field (passed whole, indexed by a variable).
    pub whole_record: Option<At>,
    /// Whether it calls `now()` or `today()`.
    pub clock: bool,
    /// Its `lookup` calls.
    pub lookups: Vec<LookupUse>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Punct(char),
}

/// Steps over the character at `i`, keeping line and column.
fn bump(i: &mut usize, line: &mut u32, column: &mut u32, chars: &[char]) {
    if chars.get(*i) == Some(&'\n') {
        *line += 1;
        *column = 1;
    } else {
        *column += 1;
    }
    *i += 1;
}

/// Reads the text of a backtick string from `i` up to its closing backtick (consumed) or up to an
/// interpolation `${` (consumed, and its depth pushed: code follows, which may open a string of
/// its own).
fn template_text(
    chars: &[char],
    i: &mut usize,
    line: &mut u32,
    column: &mut u32,
    interpolation_depths: &mut Vec<u32>,
) -> String {
    let mut text = String::new();
    while *i < chars.len() && chars[*i] != '`' {
        if chars[*i] == '$' && chars.get(*i + 1) == Some(&'{') {
            bump(i, line, column, chars);
            bump(i, line, column, chars);
            interpolation_depths.push(0);
            return text;
        }
        text.push(chars[*i]);
        bump(i, line, column, chars);
    }
    if *i < chars.len() {
        bump(i, line, column, chars);
    }
    text
}

/// The number of hashes opening a raw string at `i` (`#"`, `##"`, …), if one opens there.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    let hashes = chars[i..].iter().take_while(|c| **c == '#').count();
    (hashes > 0 && chars.get(i + hashes) == Some(&'"')).then_some(hashes)
}

/// Splits rhai source into identifiers, string literals and punctuation (numbers, comments and
/// whitespace dropped), each with its position. Errs on the side of seeing more: text it cannot
/// place is skipped, never a panic.
fn tokens(source: &str) -> Vec<(Token, At)> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut column) = (0_usize, 1_u32, 1_u32);
    // Open `${` interpolations inside backtick strings: code continues until the matching `}`.
    let mut interpolation_depths: Vec<u32> = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        let at = At { line, column };
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                bump(&mut i, &mut line, &mut column, &chars);
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0_u32;
            while i < chars.len() {
                let (a, b) = (chars[i], chars.get(i + 1).copied());
                if a == '/' && b == Some('*') {
                    depth += 1;
                    bump(&mut i, &mut line, &mut column, &chars);
                    bump(&mut i, &mut line, &mut column, &chars);
                } else if a == '*' && b == Some('/') {
                    depth = depth.saturating_sub(1);
                    bump(&mut i, &mut line, &mut column, &chars);
                    bump(&mut i, &mut line, &mut column, &chars);
                    if depth == 0 {
                        break;
                    }
                } else {
                    bump(&mut i, &mut line, &mut column, &chars);
                }
            }
        } else if c == '"' || c == '\'' {
            bump(&mut i, &mut line, &mut column, &chars);
            let mut text = String::new();
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    bump(&mut i, &mut line, &mut column, &chars);
                }
                text.push(chars[i]);
                bump(&mut i, &mut line, &mut column, &chars);
            }
            if i < chars.len() {
                bump(&mut i, &mut line, &mut column, &chars);
            }
            if c == '"' {
                out.push((Token::Str(text), at));
            }
        } else if c == '#' && raw_string_start(&chars, i).is_some() {
            // A raw string: #"…"#, with as many hashes on both sides.
            let hashes = raw_string_start(&chars, i).unwrap_or(1);
            for _ in 0..=hashes {
                bump(&mut i, &mut line, &mut column, &chars);
            }
            let mut text = String::new();
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        bump(&mut i, &mut line, &mut column, &chars);
                    }
                    break;
                }
                text.push(chars[i]);
                bump(&mut i, &mut line, &mut column, &chars);
            }
            out.push((Token::Str(text), at));
        } else if c == '`' {
            bump(&mut i, &mut line, &mut column, &chars);
            let text = template_text(
                &chars,
                &mut i,
                &mut line,
                &mut column,
                &mut interpolation_depths,
            );
            out.push((Token::Str(text), at));
        } else if c.is_alphabetic() || c == '_' {
            let mut word = String::new();
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                word.push(chars[i]);
                bump(&mut i, &mut line, &mut column, &chars);
            }
            out.push((Token::Ident(word), at));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                bump(&mut i, &mut line, &mut column, &chars);
            }
            // A decimal point followed by digits belongs to the number.
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                bump(&mut i, &mut line, &mut column, &chars);
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    bump(&mut i, &mut line, &mut column, &chars);
                }
            }
        } else if c.is_whitespace() {
            bump(&mut i, &mut line, &mut column, &chars);
        } else {
            if let Some(depth) = interpolation_depths.last_mut() {
                if c == '{' {
                    *depth += 1;
                } else if c == '}' {
                    if *depth == 0 {
                        // The interpolation ends: the rest is string text up to the backtick.
                        interpolation_depths.pop();
                        bump(&mut i, &mut line, &mut column, &chars);
                        template_text(
                            &chars,
                            &mut i,
                            &mut line,
                            &mut column,
                            &mut interpolation_depths,
                        );
                        continue;
                    }
                    *depth -= 1;
                }
            }
            out.push((Token::Punct(c), at));
            bump(&mut i, &mut line, &mut column, &chars);
        }
    }
    out
}

/// Reads what `source` uses. A script that does not compile may give partial answers; compile
/// it first.
pub fn analyse(source: &str) -> Uses {
    let tokens = tokens(source);
    let mut uses = Uses::default();
    let ident = |i: usize| match tokens.get(i) {
        Some((Token::Ident(name), _)) => Some(name.as_str()),
        _ => None,
    };
    let punct = |i: usize, c: char| matches!(tokens.get(i), Some((Token::Punct(p), _)) if *p == c);
    let string = |i: usize| match tokens.get(i) {
        Some((Token::Str(text), _)) => Some(text.as_str()),
        _ => None,
    };
    let after_dot = |i: usize| i > 0 && punct(i - 1, '.');
    let mut i = 0;
    while i < tokens.len() {
        let at = tokens[i].1;
        match ident(i) {
            Some(name @ ("record" | "old")) if !after_dot(i) => {
                // `record.field`, `record?.field`, `record["field"]`.
                let dot = if punct(i + 1, '.') {
                    Some(i + 2)
                } else if punct(i + 1, '?') && punct(i + 2, '.') {
                    Some(i + 3)
                } else {
                    None
                };
                let named = match dot {
                    Some(j) => ident(j)
                        .filter(|_| !punct(j + 1, '('))
                        .map(|field| (field.to_owned(), j + 1)),
                    None if punct(i + 1, '[') && punct(i + 3, ']') => {
                        string(i + 2).map(|field| (field.to_owned(), i + 4))
                    }
                    None => None,
                };
                let list = if name == "record" {
                    &mut uses.fields
                } else {
                    &mut uses.old_fields
                };
                match named {
                    Some((field, next)) => {
                        if !list.iter().any(|(f, _)| *f == field) {
                            list.push((field, at));
                        }
                        i = next;
                        continue;
                    }
                    None if name == "record" && uses.whole_record.is_none() => {
                        uses.whole_record = Some(at);
                    }
                    None => {}
                }
            }
            Some("now" | "today") if !after_dot(i) && punct(i + 1, '(') => uses.clock = true,
            Some("lookup") if !after_dot(i) && punct(i + 1, '(') => {
                let entity = string(i + 2).map(str::to_owned);
                let via = (entity.is_some()
                    && punct(i + 3, ',')
                    && ident(i + 4) == Some("record")
                    && punct(i + 5, '.')
                    && punct(i + 7, ')'))
                .then(|| ident(i + 6).map(str::to_owned))
                .flatten();
                uses.lookups.push(LookupUse { entity, via, at });
            }
            _ => {}
        }
        i += 1;
    }
    uses
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[(String, At)]) -> Vec<&str> {
        list.iter().map(|(f, _)| f.as_str()).collect()
    }

    #[test]
    fn finds_fields_clock_and_lookups() {
        let uses = analyse(
            "// record.in_comment\nlet s = record.budget * 2; /* record.nope */\n\
             if record[\"stage\"] == \"won\" && old.stage != \"won\" { s += 1 }\n\
             let c = lookup(\"customer\", record.customer);\n\
             let t = `text record.not_code ${record.size + 1} more`;\n\
             s + days_between(record.created_on, today()) + record.budget.round(2)",
        );
        assert_eq!(
            names(&uses.fields),
            ["budget", "stage", "customer", "size", "created_on"]
        );
        assert_eq!(uses.fields[0].1, At { line: 2, column: 9 });
        assert_eq!(names(&uses.old_fields), ["stage"]);
        assert!(uses.clock);
        assert_eq!(uses.whole_record, None);
        assert_eq!(
            uses.lookups,
            [LookupUse {
                entity: Some("customer".to_owned()),
                via: Some("customer".to_owned()),
                at: At { line: 4, column: 9 }
            }]
        );
    }

    #[test]
    fn raw_strings_and_nested_templates_hide_nothing() {
        let uses = analyse("let s = #\"x\"y\"#; let v = record.secret; v + \"\"");
        assert_eq!(names(&uses.fields), ["secret"]);
        let uses = analyse("if true { `${`a`}` } else { \"\" }; record.secret");
        assert_eq!(names(&uses.fields), ["secret"]);
        let uses = analyse("`a ${record.x} b ${`c ${record.y}`} d`; record.z");
        assert_eq!(names(&uses.fields), ["x", "y", "z"]);
    }

    #[test]
    fn a_record_used_whole_is_noticed() {
        let uses = analyse("let r = record;\nr.budget");
        assert_eq!(uses.whole_record, Some(At { line: 1, column: 9 }));
        let uses = analyse("record.keys().len()");
        assert!(uses.whole_record.is_some());
        let uses = analyse("lookup(name, 1)");
        assert_eq!(uses.lookups[0].entity, None);
        assert!(!analyse("x.now() + 1.5").clock);
    }
}
