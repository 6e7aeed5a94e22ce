//! Pure value types shared by every module: identifiers and validated names. No IO here.

pub mod query;

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// A new time-ordered identifier (UUIDv7), the id of every row Formwork creates.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Who did something: written into history and definition versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A signed-in person, through the browser or an API token.
    Account {
        /// The account's id.
        id: Uuid,
    },
    /// Formwork itself (bootstrap, recomputes, housekeeping).
    System,
}

impl Actor {
    /// The account id, if a person acted.
    pub fn account_id(&self) -> Option<Uuid> {
        match self {
            Self::Account { id } => Some(*id),
            Self::System => None,
        }
    }
}

/// Trims a display name (of a person, workspace or token) and checks its length in characters.
///
/// # Errors
/// `Error::Invalid` at `pointer`.
pub fn display_name(value: &str, pointer: &str, max_chars: usize) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty()
        || trimmed.chars().count() > max_chars
        || trimmed.chars().any(char::is_control)
    {
        return Err(Error::invalid(
            pointer,
            "length",
            format!("a name is 1–{max_chars} characters, without control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Checks a lowercase identifier: starts with a letter, then letters, digits and one separator.
/// With `slug`, `-` is the separator; otherwise `_` is.
fn check_identifier(value: &str, max_len: usize, slug: bool) -> bool {
    let separator = if slug { '-' } else { '_' };
    let mut chars = value.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    first_ok
        && value.len() <= max_len
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == separator)
}

/// A workspace's URL segment: `[a-z][a-z0-9-]{1,39}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkspaceSlug(String);

impl WorkspaceSlug {
    /// Validates a slug.
    ///
    /// # Errors
    /// `Error::Invalid` at `/slug` when the text is not a valid slug or is reserved.
    pub fn parse(value: &str) -> Result<Self> {
        const RESERVED: [&str; 6] = ["api", "account", "static", "admin", "new", "healthz"];
        if value.len() < 2 || !check_identifier(value, 40, true) || value.ends_with('-') {
            return Err(Error::invalid(
                "/slug",
                "pattern",
                "a workspace slug is 2–40 characters: lowercase letters, digits and '-', starting with a letter",
            ));
        }
        if RESERVED.contains(&value) {
            return Err(Error::invalid(
                "/slug",
                "reserved",
                format!("{value:?} is reserved"),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for WorkspaceSlug {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl From<WorkspaceSlug> for String {
    fn from(slug: WorkspaceSlug) -> Self {
        slug.0
    }
}

impl fmt::Display for WorkspaceSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A normalised (trimmed, lowercased) email address used as an account's login.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Email(String);

impl Email {
    /// Normalises and checks an address (one `@`, non-empty local part, a dotted domain).
    ///
    /// # Errors
    /// `Error::Invalid` at `/email`.
    pub fn parse(value: &str) -> Result<Self> {
        let normalised = value.trim().to_lowercase();
        let valid = normalised.len() <= 254
            && normalised.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !normalised.chars().any(char::is_whitespace)
            });
        if valid {
            Ok(Self(normalised))
        } else {
            Err(Error::invalid(
                "/email",
                "format",
                "not a valid email address",
            ))
        }
    }

    /// The address text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A definition's stable key (entity key, form key, …): `[a-z][a-z0-9_]{0,62}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DefinitionKey(String);

impl DefinitionKey {
    /// Validates a key; `pointer` locates it in the caller's input.
    ///
    /// # Errors
    /// `Error::Invalid` at `pointer`.
    pub fn parse_at(value: &str, pointer: &str) -> Result<Self> {
        if check_identifier(value, 63, false) {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::invalid(
                pointer,
                "pattern",
                format!(
                    "{value:?} is not a valid key: 1–63 lowercase letters, digits and '_', starting with a letter"
                ),
            ))
        }
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DefinitionKey {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::parse_at(&value, "/key")
    }
}

impl From<DefinitionKey> for String {
    fn from(key: DefinitionKey) -> Self {
        key.0
    }
}

impl fmt::Display for DefinitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(WorkspaceSlug::parse("demo").is_ok());
        assert!(WorkspaceSlug::parse("sales-east-2").is_ok());
        for bad in [
            "",
            "a",
            "Demo",
            "1abc",
            "ab_c",
            "abc-",
            "api",
            &"x".repeat(41),
        ] {
            assert!(WorkspaceSlug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            Email::parse("  Admin@Example.COM ")
                .expect("valid")
                .as_str(),
            "admin@example.com"
        );
        for bad in ["", "a@", "@b.c", "a@b", "a b@c.d", "a@b@c.d", "a@.cn"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys() {
        assert!(DefinitionKey::parse_at("follow_up", "/key").is_ok());
        for bad in ["", "Lead", "1x", "a-b", &"x".repeat(64)] {
            assert!(DefinitionKey::parse_at(bad, "/key").is_err(), "{bad}");
        }
    }
}
