//! Public share links of forms (外链表单): a published form offered at an unguessable,
//! revocable URL to people without an account — a lead-capture form on a website. The link
//! names the member who owns what it creates; submissions go through the records service like
//! any create (validation, history, workflows), limited per visitor and link.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::access::Right;
use crate::auth::{hash_secret, random_secret};
use crate::clock::SharedClock;
use crate::definitions::{Kind, Snapshot};
use crate::domain::new_id;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::form_links::{self, FormLinkRow};
use crate::workspaces::Access;

/// Submissions one visitor may make through one link per window.
pub const SUBMISSIONS_PER_WINDOW: u32 = 10;
/// The window of [`SUBMISSIONS_PER_WINDOW`].
pub const WINDOW_MINUTES: i64 = 10;
/// Longest thank-you text, in characters.
const MAX_THANK_YOU: usize = 2000;

/// A share link as its admins see it (the secret is shown once, when it is made).
#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    /// Id.
    pub id: Uuid,
    /// The form's key.
    pub form: String,
    /// Who owns the records it creates.
    pub owner: Uuid,
    /// Whether it accepts submissions.
    pub enabled: bool,
    /// The text shown after a submission (`{"en": …, "zh-CN": …}`), if any.
    pub thank_you: Option<Value>,
    /// Made.
    pub created_at: DateTime<Utc>,
    /// The public path (`/f/<secret>`): only in the answer that made the link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl From<&FormLinkRow> for LinkView {
    fn from(row: &FormLinkRow) -> Self {
        Self {
            id: row.id,
            form: row.form.clone(),
            owner: row.owner_id,
            enabled: row.enabled,
            thank_you: row.settings.get("thank_you").cloned(),
            created_at: row.created_at,
            path: None,
        }
    }
}

/// What a new link says.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// Who owns what it creates (the caller when absent).
    pub owner: Option<Uuid>,
    /// The thank-you text by language.
    pub thank_you: Option<Value>,
}

/// Makes a share link for the published form `form` (those who manage definitions only).
///
/// # Errors
/// `Error::Forbidden`, `Error::NotFound` (form), `Error::Invalid` (owner, thank-you text).
pub async fn create(
    db: &Db,
    clock: &SharedClock,
    access: &Access,
    snapshot: &Snapshot,
    form: &str,
    input: NewLink,
) -> Result<LinkView> {
    access.require(Right::Definitions)?;
    if snapshot.get(Kind::Form, form).is_none() {
        return Err(Error::not_found(format!("published form {form:?}")));
    }
    let owner = input.owner.unwrap_or(access.account_id);
    let members = crate::workspaces::members(db, access).await?;
    if !members.iter().any(|m| m.account_id == owner && m.active) {
        return Err(Error::invalid(
            "/owner",
            "unknown_user",
            "the owner must be an active member of the workspace",
        ));
    }
    if let Some(text) = &input.thank_you {
        check_thank_you(text)?;
    }
    let secret = random_secret();
    let row = FormLinkRow {
        id: new_id(),
        workspace_id: access.workspace.id,
        form: form.to_owned(),
        secret_hash: hash_secret(&secret),
        owner_id: owner,
        settings: serde_json::json!({ "thank_you": input.thank_you }),
        enabled: true,
        created_at: clock.now(),
        created_by: Some(access.account_id),
    };
    form_links::insert(db.conn(), row.clone()).await?;
    let mut view = LinkView::from(&row);
    view.path = Some(format!("/f/{secret}"));
    Ok(view)
}

fn check_thank_you(text: &Value) -> Result<()> {
    let Some(map) = text.as_object() else {
        return Err(Error::invalid(
            "/thank_you",
            "type",
            "thank_you is {\"en\": …, \"zh-CN\": …}",
        ));
    };
    for (lang, value) in map {
        let pointer = format!("/thank_you/{lang}");
        if crate::render::i18n::Locale::from_tag(lang).is_none() {
            return Err(Error::invalid(
                pointer,
                "enum",
                "languages are en and zh-CN",
            ));
        }
        match value.as_str() {
            Some(s) if s.chars().count() <= MAX_THANK_YOU => {}
            _ => {
                return Err(Error::invalid(
                    pointer,
                    "maxLength",
                    format!("a text of at most {MAX_THANK_YOU} characters"),
                ));
            }
        }
    }
    Ok(())
}

/// The links of a form.
///
/// # Errors
/// `Error::Forbidden`.
pub async fn list(db: &Db, access: &Access, form: &str) -> Result<Vec<LinkView>> {
    access.require(Right::Definitions)?;
    Ok(form_links::of_form(db.conn(), access.workspace.id, form)
        .await?
        .iter()
        .map(LinkView::from)
        .collect())
}

/// Turns a link off for good (its URL then answers 404).
///
/// # Errors
/// `Error::Forbidden`; `Error::NotFound` for an unknown or already revoked link.
pub async fn revoke(db: &Db, access: &Access, id: Uuid) -> Result<()> {
    access.require(Right::Definitions)?;
    if form_links::disable(db.conn(), access.workspace.id, id).await? {
        Ok(())
    } else {
        Err(Error::not_found("form link"))
    }
}

/// The live link a secret opens, if any.
///
/// # Errors
/// `Error::Db`.
pub async fn open(db: &Db, secret: &str) -> Result<Option<FormLinkRow>> {
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    Ok(form_links::by_secret(db.conn(), &hash_secret(secret))
        .await?
        .filter(|link| link.enabled))
}

/// Counts submissions per visitor and link in a fixed window (in memory, per process; with
/// several processes each enforces its own window, as the login limiter does).
#[derive(Debug, Default)]
pub struct SubmissionLimiter {
    seen: Mutex<HashMap<String, (u32, DateTime<Utc>)>>,
}

impl SubmissionLimiter {
    /// Counts one submission for `key`.
    ///
    /// # Errors
    /// `Error::RateLimited` once the window's allowance is used.
    pub fn check(&self, key: &str, now: DateTime<Utc>) -> Result<()> {
        let Ok(mut seen) = self.seen.lock() else {
            return Ok(());
        };
        if seen.len() > 100_000 {
            seen.retain(|_, (_, since)| now - *since < Duration::minutes(WINDOW_MINUTES));
        }
        let entry = seen.entry(key.to_owned()).or_insert((0, now));
        if now - entry.1 >= Duration::minutes(WINDOW_MINUTES) {
            *entry = (0, now);
        }
        if entry.0 >= SUBMISSIONS_PER_WINDOW {
            let end = entry.1 + Duration::minutes(WINDOW_MINUTES);
            return Err(Error::RateLimited {
                retry_after_secs: (end - now).num_seconds().max(1) as u64,
            });
        }
        entry.0 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visitor_gets_a_window_of_submissions() {
        let limiter = SubmissionLimiter::default();
        let t0 = Utc::now();
        for _ in 0..SUBMISSIONS_PER_WINDOW {
            limiter
                .check("link/1.2.3.4", t0)
                .expect("within the allowance");
        }
        assert!(limiter.check("link/1.2.3.4", t0).is_err());
        assert!(
            limiter.check("link/5.6.7.8", t0).is_ok(),
            "others are not held up"
        );
        let later = t0 + Duration::minutes(WINDOW_MINUTES);
        assert!(
            limiter.check("link/1.2.3.4", later).is_ok(),
            "the window ends"
        );
    }

    #[test]
    fn thank_you_texts_are_checked() {
        assert!(check_thank_you(&serde_json::json!({"en": "Thanks!", "zh-CN": "感谢！"})).is_ok());
        assert!(check_thank_you(&serde_json::json!({"fr": "Merci"})).is_err());
        assert!(check_thank_you(&serde_json::json!("Thanks")).is_err());
        assert!(check_thank_you(&serde_json::json!({"en": "x".repeat(2001)})).is_err());
    }
}
