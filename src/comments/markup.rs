//! Comment text (pure): markdown-lite (`**bold**`, `*italic*`, `` `code` ``, `[text](url)`,
//! bare `https://` links, `- ` lists, paragraphs and line breaks) with mention tokens
//! `@[name](user:<id>)` and `@[name](team:<id>)`. Bodies are checked before they are stored
//! (no HTML, only web and mail links, well-formed mentions) and drawn as escaped HTML or plain
//! text. The name in a token is only a hint: it is rewritten to the person's name at save.

use uuid::Uuid;

/// The longest comment, in characters.
pub const MAX_CHARS: usize = 10_000;
/// The most distinct people and teams one comment may mention.
pub const MAX_MENTIONS: usize = 20;

/// Someone a comment mentions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mention {
    /// A member.
    User(Uuid),
    /// A team or department (everyone in it and below).
    Team(Uuid),
}

impl Mention {
    fn kind(self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Team(_) => "team",
        }
    }

    fn id(self) -> Uuid {
        match self {
            Self::User(id) | Self::Team(id) => id,
        }
    }
}

/// Why a body is refused: a code and a message for the person writing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable code.
    pub code: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// One piece of a body's inline text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Mention(&'a str, Mention),
    /// A `[text](url)` link or a bare URL (text = url).
    Link(&'a str, &'a str),
    Code(&'a str),
    Strong(&'a str),
    Emphasis(&'a str),
}

/// A mention token at the start of `s` (`@[name](kind:id)`): the name, the mention and the
/// token's length; `Err` for a token that is malformed after its `](`.
fn mention_at(s: &str) -> Option<Result<(&str, Mention, usize), Refusal>> {
    let rest = s.strip_prefix("@[")?;
    let close = rest.find("](")?;
    let name = &rest[..close];
    if name.contains('\n') || name.contains('[') {
        return None;
    }
    let after = &rest[close + 2..];
    let end = after.find(')')?;
    let target = &after[..end];
    let (kind, id) = target.split_once(':')?;
    let mention = match (kind, Uuid::parse_str(id)) {
        ("user", Ok(id)) => Mention::User(id),
        ("team", Ok(id)) => Mention::Team(id),
        ("user" | "team", Err(_)) => {
            return Some(Err(refuse(
                "bad_mention",
                format!("the mention @[{name}]({target}) does not name a valid id"),
            )));
        }
        _ => return None,
    };
    Some(Ok((name, mention, 2 + close + 2 + end + 1)))
}

/// A `[text](url)` link at the start of `s`: text, url and length.
fn link_at(s: &str) -> Option<(&str, &str, usize)> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find("](")?;
    let text = &rest[..close];
    if text.is_empty() || text.contains('\n') || text.contains('[') {
        return None;
    }
    let after = &rest[close + 2..];
    let end = after.find(')')?;
    let url = &after[..end];
    if url.is_empty() || url.contains(char::is_whitespace) {
        return None;
    }
    Some((text, url, 1 + close + 2 + end + 1))
}

/// A bare `http(s)://` URL at the start of `s` (trailing punctuation left out): its length.
fn bare_url_at(s: &str) -> Option<usize> {
    if !(s.starts_with("https://") || s.starts_with("http://")) {
        return None;
    }
    let end = s
        .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
        .unwrap_or(s.len());
    let trimmed = s[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '，', '。']);
    (trimmed.len() > "https://".len()).then_some(trimmed.len())
}

/// `open … close` at the start of `s` with something other than space just inside: the inner
/// text and the whole length.
fn delimited<'a>(s: &'a str, open: &str, close: &str) -> Option<(&'a str, usize)> {
    let rest = s.strip_prefix(open)?;
    let end = rest.find(close)?;
    let inner = &rest[..end];
    if inner.is_empty()
        || inner.starts_with(char::is_whitespace)
        || inner.ends_with(char::is_whitespace)
        || inner.contains('\n')
    {
        return None;
    }
    Some((inner, open.len() + end + close.len()))
}

/// Splits one block's text into pieces.
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, Refusal> {
    let mut out = Vec::new();
    let mut plain = 0;
    let mut i = 0;
    let at_word_start = |i: usize| {
        text[..i]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || "([（".contains(c))
    };
    while i < text.len() {
        let rest = &text[i..];
        let found: Option<(Piece<'_>, usize)> = if rest.starts_with("@[") {
            match mention_at(rest) {
                Some(Ok((name, mention, len))) => Some((Piece::Mention(name, mention), len)),
                Some(Err(refusal)) => return Err(refusal),
                None => None,
            }
        } else if rest.starts_with('[') {
            link_at(rest).map(|(t, u, len)| (Piece::Link(t, u), len))
        } else if rest.starts_with('`') {
            delimited(rest, "`", "`").map(|(c, len)| (Piece::Code(c), len))
        } else if rest.starts_with("**") {
            delimited(rest, "**", "**").map(|(c, len)| (Piece::Strong(c), len))
        } else if rest.starts_with('*') {
            delimited(rest, "*", "*").map(|(c, len)| (Piece::Emphasis(c), len))
        } else if rest.starts_with("http") && at_word_start(i) {
            bare_url_at(rest).map(|len| (Piece::Link(&rest[..len], &rest[..len]), len))
        } else {
            None
        };
        match found {
            Some((piece, len)) => {
                if plain < i {
                    out.push(Piece::Text(&text[plain..i]));
                }
                out.push(piece);
                i += len;
                plain = i;
            }
            None => {
                i += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    if plain < text.len() {
        out.push(Piece::Text(&text[plain..]));
    }
    Ok(out)
}

/// Whether a link target may be followed from a comment.
fn safe_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:")
}

/// The first HTML tag in `body`, if any (`<` then a letter, `/` or `!`, and a `>` later).
fn html_tag(body: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(at) = body[from..].find('<') {
        let start = from + at;
        let rest = &body[start + 1..];
        if rest
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!')
            && let Some(end) = rest.find('>')
            && !rest[..end].contains('\n')
        {
            return Some(&body[start..start + 1 + end + 1]);
        }
        from = start + 1;
    }
    None
}

/// Checks the links and gathers the mentions of one line, inside bold and italics too (what is
/// drawn as a mention must have been checked as one).
fn collect(text: &str, mentions: &mut Vec<Mention>) -> Result<(), Refusal> {
    for piece in pieces(text)? {
        match piece {
            Piece::Link(_, url) if !safe_url(url) => {
                return Err(refuse(
                    "unsafe_link",
                    format!("links must be http(s) or mailto addresses, not {url:?}"),
                ));
            }
            Piece::Mention(_, mention) if !mentions.contains(&mention) => {
                mentions.push(mention);
            }
            Piece::Strong(inner) | Piece::Emphasis(inner) => collect(inner, mentions)?,
            _ => {}
        }
    }
    Ok(())
}

/// Checks a body as written and returns the distinct people and teams it mentions, in order.
///
/// # Errors
/// A [`Refusal`]: empty, too long, HTML, a link that is not a web or mail address, a malformed
/// mention, too many mentions.
pub fn check(body: &str) -> Result<Vec<Mention>, Refusal> {
    if body.trim().is_empty() {
        return Err(refuse("required", "a comment needs some text"));
    }
    let chars = body.chars().count();
    if chars > MAX_CHARS {
        return Err(refuse(
            "too_long",
            format!("a comment is at most {MAX_CHARS} characters; this one has {chars}"),
        ));
    }
    if let Some(tag) = html_tag(body) {
        let shown: String = tag.chars().take(40).collect();
        return Err(refuse(
            "html_not_allowed",
            format!(
                "comments are plain text with **bold**, *italic*, `code`, [links](https://…) and \
                 lists; HTML such as {shown} is not allowed"
            ),
        ));
    }
    let mut mentions: Vec<Mention> = Vec::new();
    for block in body.split('\n') {
        collect(block, &mut mentions)?;
    }
    if mentions.len() > MAX_MENTIONS {
        return Err(refuse(
            "too_many_mentions",
            format!(
                "a comment may mention at most {MAX_MENTIONS} people and teams; this one mentions {}",
                mentions.len()
            ),
        ));
    }
    Ok(mentions)
}

/// The body with each mention token's name replaced by `name_of` (the person's or team's
/// current name), so what is stored shows who was really meant.
pub fn with_names(body: &str, name_of: impl Fn(Mention) -> Option<String>) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.find("@[") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        match mention_at(tail) {
            Some(Ok((name, mention, len))) => {
                let name = name_of(mention).unwrap_or_else(|| name.to_owned());
                let clean = name.replace(['[', ']', '\n'], " ");
                out.push_str(&format!("@[{clean}]({}:{})", mention.kind(), mention.id()));
                rest = &tail[len..];
            }
            _ => {
                out.push_str("@[");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape(text: &str, out: &mut String) {
    out.push_str(&crate::render::escape_html(text));
}

fn inline_html(text: &str, out: &mut String) {
    let Ok(pieces) = pieces(text) else {
        escape(text, out);
        return;
    };
    for piece in pieces {
        match piece {
            Piece::Text(t) => escape(t, out),
            Piece::Mention(name, mention) => {
                out.push_str(&format!(
                    "<span class=\"mention\" data-{}=\"{}\">@",
                    mention.kind(),
                    mention.id()
                ));
                escape(name, out);
                out.push_str("</span>");
            }
            Piece::Link(t, url) if safe_url(url) => {
                out.push_str("<a href=\"");
                escape(url, out);
                out.push_str("\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">");
                escape(t, out);
                out.push_str("</a>");
            }
            Piece::Link(t, _) => escape(t, out),
            Piece::Code(c) => {
                out.push_str("<code>");
                escape(c, out);
                out.push_str("</code>");
            }
            Piece::Strong(inner) => {
                out.push_str("<strong>");
                inline_html(inner, out);
                out.push_str("</strong>");
            }
            Piece::Emphasis(inner) => {
                out.push_str("<em>");
                inline_html(inner, out);
                out.push_str("</em>");
            }
        }
    }
}

fn list_item(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    trimmed
        .strip_prefix("- ")
        .or_else(|| trimmed.strip_prefix("* "))
        .or_else(|| trimmed.strip_prefix("• "))
}

/// The body as HTML: every character of the text escaped, only the markup above turned into
/// elements.
pub fn to_html(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 32);
    let normalized = body.replace("\r\n", "\n");
    for block in normalized
        .split("\n\n")
        .map(|block| block.trim_matches('\n'))
    {
        if block.trim().is_empty() {
            continue;
        }
        let lines: Vec<&str> = block.split('\n').collect();
        if lines.iter().all(|l| list_item(l).is_some()) {
            out.push_str("<ul>");
            for line in lines {
                out.push_str("<li>");
                inline_html(list_item(line).unwrap_or(line), &mut out);
                out.push_str("</li>");
            }
            out.push_str("</ul>");
        } else {
            out.push_str("<p>");
            for (i, line) in lines.iter().enumerate() {
                if i > 0 {
                    out.push_str("<br>");
                }
                inline_html(line, &mut out);
            }
            out.push_str("</p>");
        }
    }
    out
}

/// The body as plain text (for notifications and email): mentions as `@name`, links as
/// `text (url)`, other markup kept as typed.
pub fn to_text(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    for (i, line) in body.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match pieces(line) {
            Ok(pieces) => {
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Mention(name, _) => {
                            out.push('@');
                            out.push_str(name);
                        }
                        Piece::Link(t, url) if t == url => out.push_str(url),
                        Piece::Link(t, url) => out.push_str(&format!("{t} ({url})")),
                        Piece::Code(c) => out.push_str(c),
                        Piece::Strong(c) | Piece::Emphasis(c) => out.push_str(c),
                    }
                }
            }
            Err(_) => out.push_str(line),
        }
    }
    out
}

/// The first `limit` characters of `text`, with an ellipsis when cut.
pub fn excerpt(text: &str, limit: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(limit).collect();
    if chars.next().is_some() {
        format!("{}…", head.trim_end())
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LI: &str = "0190a0b0-0000-7000-8000-000000000001";
    const SALES: &str = "0190a0b0-0000-7000-8000-0000000000aa";

    #[test]
    fn mentions_are_found_once_each_in_order() {
        let body = format!("@[Li](user:{LI}) and @[Sales](team:{SALES}), see @[Li Lei](user:{LI})");
        let found = check(&body).expect("valid");
        assert_eq!(
            found,
            vec![
                Mention::User(LI.parse().expect("id")),
                Mention::Team(SALES.parse().expect("id"))
            ]
        );
        assert_eq!(
            check("@[x](user:not-an-id)").expect_err("bad").code,
            "bad_mention"
        );
        // An `@[` that is not a token is plain text.
        assert_eq!(check("mail me @[ later").expect("plain"), vec![]);
        // Inside bold or italics a mention is still a mention, checked as one.
        assert_eq!(
            check(&format!("**ask @[Li](user:{LI})** and *[x](javascript:y)*"))
                .expect_err("unsafe nested link")
                .code,
            "unsafe_link"
        );
        assert_eq!(
            check(&format!("**ask @[Li](user:{LI})**")).expect("nested"),
            vec![Mention::User(LI.parse().expect("id"))]
        );
    }

    #[test]
    fn html_scripts_and_unsafe_links_are_refused() {
        assert_eq!(
            check("hi <script>alert(1)</script>")
                .expect_err("html")
                .code,
            "html_not_allowed"
        );
        assert_eq!(
            check("<img src=x onerror=alert(1)>")
                .expect_err("html")
                .code,
            "html_not_allowed"
        );
        assert_eq!(
            check("[click](javascript:alert(1))").expect_err("js").code,
            "unsafe_link"
        );
        // Comparisons are not tags.
        assert!(check("price < 100 and > 50").is_ok());
        assert!(check("a<b").is_ok());
        assert_eq!(check("  \n ").expect_err("empty").code, "required");
        assert_eq!(
            check(&"长".repeat(MAX_CHARS + 1)).expect_err("long").code,
            "too_long"
        );
        assert!(check(&"长".repeat(MAX_CHARS)).is_ok());
    }

    #[test]
    fn markup_is_drawn_as_escaped_html() {
        let body = format!(
            "**Deal** is *close* — `v2` & <b\n- call @[Li](user:{LI})\n- see https://example.com/q?a=1&b=2.\n\n[Quote](https://x.test/\"q)"
        );
        let html = to_html(&body);
        assert_eq!(
            html,
            format!(
                "<p><strong>Deal</strong> is <em>close</em> — <code>v2</code> &amp; &lt;b<br>- call \
                 <span class=\"mention\" data-user=\"{LI}\">@Li</span><br>- see <a \
                 href=\"https://example.com/q?a=1&amp;b=2\" rel=\"noopener noreferrer nofollow\" \
                 target=\"_blank\">https://example.com/q?a=1&amp;b=2</a>.</p><p><a \
                 href=\"https://x.test/&quot;q\" rel=\"noopener noreferrer nofollow\" \
                 target=\"_blank\">Quote</a></p>"
            )
        );
        assert_eq!(
            to_html("- one\n- **two**"),
            "<ul><li>one</li><li><strong>two</strong></li></ul>"
        );
        assert_eq!(to_html("<script>"), "<p>&lt;script&gt;</p>");
    }

    #[test]
    fn names_are_rewritten_and_text_is_plain() {
        let body = format!("thanks @[Boss](user:{LI}) [doc](https://d.test)");
        let renamed = with_names(&body, |m| match m {
            Mention::User(_) => Some("李雷".to_owned()),
            Mention::Team(_) => None,
        });
        assert_eq!(
            renamed,
            format!("thanks @[李雷](user:{LI}) [doc](https://d.test)")
        );
        assert_eq!(to_text(&renamed), "thanks @李雷 doc (https://d.test)");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("abc", 3), "abc");
    }
}
