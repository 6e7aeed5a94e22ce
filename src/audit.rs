//! The audit log of security events: logins and their failures, lockouts, role and membership
//! changes, tokens, permission denials, erasures. Events that accompany a change are written in
//! its transaction; denials and failed logins are written on their own (a failure to write one
//! is logged, never turned into a different answer to the caller).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::new_id;
use crate::error::{Error, Result};
use crate::store::people::{self, AuditFilter, AuditRow};
use crate::store::{Conn, Db};

/// Most events returned by one listing.
pub const MAX_PAGE: u64 = 500;

/// One security event to record.
#[derive(Debug, Clone)]
pub struct Event {
    /// The workspace it happened in (none for account-level events such as logins).
    pub workspace_id: Option<Uuid>,
    /// The account that acted (or tried to).
    pub account_id: Option<Uuid>,
    /// What happened, dotted (`auth.login`, `access.denied`, `role.saved`).
    pub kind: &'static str,
    /// Details (never secrets).
    pub detail: Value,
}

impl Event {
    /// An account-level event (sign-in, two-factor, password) of `account_id`.
    pub fn of_account(account_id: Uuid, kind: &'static str, detail: Value) -> Self {
        Self {
            workspace_id: None,
            account_id: Some(account_id),
            kind,
            detail,
        }
    }
}

/// Records an event inside the caller's transaction.
///
/// # Errors
/// `Error::Db`.
pub async fn record_in(conn: &impl Conn, at: DateTime<Utc>, event: Event) -> Result<()> {
    people::insert_audit(
        conn,
        AuditRow {
            id: new_id(),
            workspace_id: event.workspace_id,
            account_id: event.account_id,
            kind: event.kind.to_owned(),
            detail: event.detail,
            at,
        },
    )
    .await
}

/// Records an event on its own; a failure is logged and swallowed, since the answer to the
/// caller (a refusal, a failed login) must not change because the log could not be written.
pub async fn record(db: &Db, at: DateTime<Utc>, event: Event) {
    let kind = event.kind;
    if let Err(error) = record_in(db.conn(), at, event).await {
        tracing::error!(%error, kind, "could not write an audit event");
    }
}

/// An event as listed.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// Id (time-ordered; pass it as `before` for older events).
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub account_id: Option<Uuid>,
    /// What.
    pub kind: String,
    /// Details.
    pub detail: Value,
}

/// Lists events, newest first.
///
/// # Errors
/// `Error::Invalid` for a limit out of range; `Error::Db`.
pub async fn list(db: &Db, filter: AuditFilter, limit: Option<u64>) -> Result<Vec<EventView>> {
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::invalid(
            "/limit",
            "range",
            format!("limit is 1–{MAX_PAGE}"),
        ));
    }
    Ok(people::audit(db.conn(), filter, limit)
        .await?
        .into_iter()
        .map(|row| EventView {
            id: row.id,
            at: row.at,
            account_id: row.account_id,
            kind: row.kind,
            detail: row.detail,
        })
        .collect())
}
