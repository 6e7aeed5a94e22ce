//! The notification centre: each member's inbox (unread count, mark read), their settings —
//! which channels (in-app, email) tell them of which kind of event (mentions, workflow
//! messages, replies to emails they sent from records) and whether a daily digest email gathers what they have not read — and the
//! delivery of one person's notice through the channels they want, inside the caller's
//! transaction. The `notifications.digest` job sends the digests ([`digest`]).

pub mod digest;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::store::notifications::{self as rows, SettingsRow};
use crate::store::workflows::{self as inbox_rows, NotificationRow};
use crate::store::{Conn, Db};
use crate::workspaces::Access;

/// Most notifications listed at once.
pub const MAX_PAGE: u64 = 500;

/// What kind of event a notification tells of (each has its own channel settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Someone mentioned the person in a comment.
    Mention,
    /// A workflow's notify step.
    Workflow,
    /// A reply to an email the person sent from a record.
    Reply,
}

impl Kind {
    /// Its stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mention => "mention",
            Self::Workflow => "workflow",
            Self::Reply => "reply",
        }
    }
}

/// A channel a person may turn on or off per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The inbox.
    InApp,
    /// An email at once.
    Email,
}

/// The channels of one kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Channels {
    /// In the inbox.
    pub in_app: bool,
    /// By email at once.
    pub email: bool,
}

impl Default for Channels {
    fn default() -> Self {
        Self {
            in_app: true,
            email: true,
        }
    }
}

impl Channels {
    /// In the inbox only (a reply already reaches the person's own mailbox).
    pub fn in_app_only() -> Self {
        Self {
            in_app: true,
            email: false,
        }
    }
}

/// The daily digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Digest {
    /// Whether it is sent.
    pub enabled: bool,
    /// The hour (0–23, workspace time) it is sent at.
    pub hour: u8,
}

impl Default for Digest {
    fn default() -> Self {
        Self {
            enabled: false,
            hour: 8,
        }
    }
}

/// A member's notification settings (what someone who never chose gets: everything at once,
/// replies in the app only, and no digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Mentions in comments.
    pub mention: Channels,
    /// Workflow notify steps.
    pub workflow: Channels,
    /// Replies to emails the person sent from records.
    pub reply: Channels,
    /// The daily digest of unread notifications.
    pub digest: Digest,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mention: Channels::default(),
            workflow: Channels::default(),
            reply: Channels::in_app_only(),
            digest: Digest::default(),
        }
    }
}

impl Settings {
    /// Whether `channel` tells the person of `kind`.
    pub fn wants(&self, kind: Kind, channel: Channel) -> bool {
        let channels = match kind {
            Kind::Mention => self.mention,
            Kind::Workflow => self.workflow,
            Kind::Reply => self.reply,
        };
        match channel {
            Channel::InApp => channels.in_app,
            Channel::Email => channels.email,
        }
    }

    /// Checks values the types allow but the settings do not.
    ///
    /// # Errors
    /// `Error::Invalid` at `/digest/hour` for an hour past 23.
    pub fn check(&self) -> Result<()> {
        if self.digest.hour > 23 {
            return Err(Error::invalid(
                "/digest/hour",
                "range",
                "the digest hour is 0–23 (workspace time)",
            ));
        }
        Ok(())
    }

    fn stored(row: &SettingsRow) -> Self {
        serde_json::from_value(row.settings.clone()).unwrap_or_default()
    }
}

/// The settings of some members (defaults for those who never saved any).
///
/// # Errors
/// `Error::Db`.
pub async fn settings_of(
    conn: &impl Conn,
    workspace_id: Uuid,
    accounts: &[Uuid],
) -> Result<HashMap<Uuid, Settings>> {
    let stored = rows::settings_of(conn, workspace_id, accounts).await?;
    Ok(accounts
        .iter()
        .map(|id| {
            let settings = stored
                .iter()
                .find(|r| r.account_id == *id)
                .map(Settings::stored)
                .unwrap_or_default();
            (*id, settings)
        })
        .collect())
}

/// The people of `to` whom `channel` should tell of `kind`, in order.
///
/// # Errors
/// `Error::Db`.
pub async fn wanting(
    conn: &impl Conn,
    workspace_id: Uuid,
    to: &[Uuid],
    kind: Kind,
    channel: Channel,
) -> Result<Vec<Uuid>> {
    let settings = settings_of(conn, workspace_id, to).await?;
    Ok(to
        .iter()
        .filter(|id| settings.get(id).is_some_and(|s| s.wants(kind, channel)))
        .copied()
        .collect())
}

/// The caller's settings.
///
/// # Errors
/// `Error::Db`.
pub async fn my_settings(db: &Db, access: &Access) -> Result<Settings> {
    Ok(
        settings_of(db.conn(), access.workspace.id, &[access.account_id])
            .await?
            .remove(&access.account_id)
            .unwrap_or_default(),
    )
}

/// Saves the caller's settings.
///
/// # Errors
/// `Error::Invalid` (see [`Settings::check`]), `Error::Db`.
pub async fn save_settings(
    db: &Db,
    clock: &SharedClock,
    access: &Access,
    settings: Settings,
) -> Result<Settings> {
    settings.check()?;
    let now = clock.now();
    let tx = db.write(crate::store::write::Sharing::Alone).await?;
    let before = rows::settings_of(&tx, access.workspace.id, &[access.account_id])
        .await?
        .first()
        .map(Settings::stored);
    rows::save(
        &tx,
        SettingsRow {
            workspace_id: access.workspace.id,
            account_id: access.account_id,
            settings: serde_json::to_value(settings).map_err(Error::internal)?,
            // A digest turned on now starts from now, not from the person's first day.
            digest_sent_at: Some(now),
            updated_at: now,
        },
    )
    .await?;
    // A digest turned on (again) covers what comes from now on, not what it was off for.
    if settings.digest.enabled && before.is_some_and(|b| !b.digest.enabled) {
        rows::set_digest_mark(&tx, access.workspace.id, access.account_id, now).await?;
    }
    crate::store::write::committed(tx.commit().await?)?;
    Ok(settings)
}

/// One notice for one person, written in their language by the caller.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The workspace.
    pub workspace_id: Uuid,
    /// Who is told.
    pub account_id: Uuid,
    /// What kind of event it is.
    pub kind: Kind,
    /// Who caused it.
    pub actor: Option<Uuid>,
    /// Title (also the email's subject).
    pub title: String,
    /// Plain text.
    pub body: String,
    /// The record it is about.
    pub record: Option<(String, Uuid)>,
    /// A link to open it (absolute when a public URL is configured), for the email.
    pub link: Option<String>,
    /// Unique per event and person: delivering twice tells once.
    pub key: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// What [`deliver`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Delivered {
    /// Put in the inbox.
    pub in_app: bool,
    /// Queued as email.
    pub email: bool,
}

/// Delivers a notice through the channels its person wants, inside `tx`: an inbox row and/or
/// an email through the outbox (when `mail_enabled`).
///
/// # Errors
/// `Error::Db`.
pub async fn deliver(
    tx: &impl Conn,
    clock: &SharedClock,
    mail_enabled: bool,
    settings: &Settings,
    notice: &Notice,
) -> Result<Delivered> {
    let mut done = Delivered::default();
    if settings.wants(notice.kind, Channel::InApp) {
        inbox_rows::insert_notifications(
            tx,
            vec![NotificationRow {
                id: crate::domain::new_id(),
                workspace_id: notice.workspace_id,
                account_id: notice.account_id,
                title: notice.title.clone(),
                body: notice.body.clone(),
                entity: notice.record.as_ref().map(|(e, _)| e.clone()),
                record_id: notice.record.as_ref().map(|(_, id)| *id),
                run_id: None,
                dedupe_key: Some(notice.key.clone()),
                created_at: notice.at,
                read_at: None,
                kind: notice.kind.name().to_owned(),
                actor_id: notice.actor,
            }],
        )
        .await?;
        done.in_app = true;
    }
    if mail_enabled
        && settings.wants(notice.kind, Channel::Email)
        && let Some(account) = crate::store::accounts::find(tx, notice.account_id).await?
    {
        let text = match &notice.link {
            Some(link) => format!("{}\n\n{link}\n", notice.body),
            None => notice.body.clone(),
        };
        crate::mail::queue_once(
            tx,
            clock,
            &crate::mail::Email {
                to: account.email,
                subject: notice.title.clone(),
                text,
                html: None,
                ..Default::default()
            },
            notice.workspace_id,
            format!("mail:{}", notice.key),
        )
        .await?;
        done.email = true;
    }
    Ok(done)
}

/// A notification as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationView {
    /// Id.
    pub id: Uuid,
    /// What kind of event (`mention`, `workflow`, `reply`).
    pub kind: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// The entity of the record it is about.
    pub entity: Option<String>,
    /// The record.
    pub record_id: Option<Uuid>,
    /// The workflow run that sent it.
    pub run_id: Option<Uuid>,
    /// Who caused it.
    pub actor_id: Option<Uuid>,
    /// Sent.
    pub created_at: DateTime<Utc>,
    /// Read (none: unread).
    pub read_at: Option<DateTime<Utc>>,
}

impl From<NotificationRow> for NotificationView {
    fn from(row: NotificationRow) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            title: row.title,
            body: row.body,
            entity: row.entity,
            record_id: row.record_id,
            run_id: row.run_id,
            actor_id: row.actor_id,
            created_at: row.created_at,
            read_at: row.read_at,
        }
    }
}

/// A page of the caller's notifications.
#[derive(Debug, Clone, Serialize)]
pub struct Inbox {
    /// Unread in all.
    pub unread: i64,
    /// This page, newest first.
    pub notifications: Vec<NotificationView>,
}

/// The caller's notifications.
///
/// # Errors
/// `Error::Invalid` for a bad limit.
pub async fn inbox(
    db: &Db,
    access: &Access,
    unread_only: bool,
    before: Option<Uuid>,
    limit: Option<u64>,
) -> Result<Inbox> {
    let limit = limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::invalid(
            "/limit",
            "range",
            format!("limit is 1–{MAX_PAGE}"),
        ));
    }
    let conn = db.conn();
    Ok(Inbox {
        unread: inbox_rows::unread_count(conn, access.workspace.id, access.account_id).await?,
        notifications: inbox_rows::notifications(
            conn,
            access.workspace.id,
            access.account_id,
            unread_only,
            before,
            limit,
        )
        .await?
        .into_iter()
        .map(NotificationView::from)
        .collect(),
    })
}

/// Marks one of the caller's notifications read (or, with `None`, all of them); returns how
/// many changed.
///
/// # Errors
/// `Error::NotFound` for another person's or an unknown notification.
pub async fn mark_read(
    db: &Db,
    clock: &SharedClock,
    access: &Access,
    id: Option<Uuid>,
) -> Result<u64> {
    let conn = db.conn();
    if let Some(id) = id
        && inbox_rows::notification(conn, access.workspace.id, access.account_id, id)
            .await?
            .is_none()
    {
        return Err(Error::not_found("notification"));
    }
    inbox_rows::mark_read(
        conn,
        access.workspace.id,
        access.account_id,
        id,
        clock.now(),
    )
    .await
}

/// One of the caller's notifications, marked read (opening it from the inbox).
///
/// # Errors
/// `Error::NotFound` for another person's or an unknown notification.
pub async fn open(
    db: &Db,
    clock: &SharedClock,
    access: &Access,
    id: Uuid,
) -> Result<NotificationView> {
    let conn = db.conn();
    let row = inbox_rows::notification(conn, access.workspace.id, access.account_id, id)
        .await?
        .ok_or_else(|| Error::not_found("notification"))?;
    if row.read_at.is_none() {
        inbox_rows::mark_read(
            conn,
            access.workspace.id,
            access.account_id,
            Some(id),
            clock.now(),
        )
        .await?;
    }
    Ok(row.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_default_to_everything_at_once() {
        let settings: Settings =
            serde_json::from_value(json!({"mention": {"email": false}})).expect("valid");
        assert!(settings.wants(Kind::Mention, Channel::InApp));
        assert!(!settings.wants(Kind::Mention, Channel::Email));
        assert!(settings.wants(Kind::Workflow, Channel::Email));
        assert!(!settings.digest.enabled);
        assert!(serde_json::from_value::<Settings>(json!({"mention": {"sms": true}})).is_err());
        let late: Settings =
            serde_json::from_value(json!({"digest": {"enabled": true, "hour": 24}}))
                .expect("typed");
        let Err(Error::Invalid { errors, .. }) = late.check() else {
            panic!("hour 24 accepted");
        };
        assert_eq!(errors[0].pointer, "/digest/hour");
    }
}
