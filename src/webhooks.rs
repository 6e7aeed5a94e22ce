//! Outbound webhook subscriptions: admins subscribe a URL to the records of an entity (or of
//! every entity) being created, changed or deleted. A write notifies inside its own
//! transaction — one `outbox.webhook` job per subscription and record, enqueued with the change —
//! so a committed change is always delivered (at least once, retried with backoff) and a
//! rolled-back one never is. Deliveries are signed at send time with the subscription's secret:
//! `Formwork-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
//! Subscriptions live with the workspace's definitions snapshot (a change bumps its generation),
//! so a write finds its subscriptions without a query.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::definitions::{EntityModel, Snapshot};
use crate::domain::new_id;
use crate::error::{Error, FieldError, Result};
use crate::jobs::{self, NewJob};
use crate::records::{Context, codec};
use crate::store::webhooks::{self as rows, WebhookRow};
use crate::store::{Conn, Db};
use crate::workspaces::Access;

/// The events a subscription may ask for.
pub const EVENTS: &[&str] = &["created", "updated", "deleted"];

/// A subscription as the API shows it (its secret only when just created).
#[derive(Debug, Clone, Serialize)]
pub struct WebhookView {
    /// Id.
    pub id: Uuid,
    /// The entity (`*`: every entity).
    pub entity: String,
    /// The events.
    pub events: Vec<String>,
    /// Where deliveries go.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// Whether it delivers.
    pub enabled: bool,
    /// The signing secret: shown once, when created (or rotated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A subscription to create or the changes to one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// The entity key, or `*`.
    pub entity: Option<String>,
    /// Events (default: all).
    pub events: Option<Vec<String>>,
    /// The receiver's URL (`https://…`, or `http://…`).
    pub url: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Whether it delivers (default true).
    pub enabled: Option<bool>,
    /// Make a new secret (the old one stops verifying).
    #[serde(default)]
    pub rotate_secret: bool,
}

fn view(row: &WebhookRow, secret: bool) -> WebhookView {
    WebhookView {
        id: row.id,
        entity: row.entity.clone(),
        events: serde_json::from_value(row.events.clone()).unwrap_or_default(),
        url: row.url.clone(),
        description: row.description.clone(),
        enabled: row.enabled,
        secret: secret.then(|| row.secret.clone()),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn not_found(id: Uuid) -> Error {
    Error::not_found(format!("webhook {id}"))
}

fn new_secret() -> String {
    format!("whsec_{}", crate::auth::random_secret())
}

/// Checks the fields of a subscription as they will be stored.
fn check(row: &WebhookRow, snapshot: &Snapshot) -> Result<()> {
    let mut problems = Vec::new();
    if row.entity != "*" && snapshot.entity(&row.entity).is_none() {
        problems.push(FieldError::new(
            "/entity",
            "unknown_entity",
            format!(
                "no published entity {:?} (use \"*\" for every entity)",
                row.entity
            ),
        ));
    }
    let events: Vec<String> = serde_json::from_value(row.events.clone()).unwrap_or_default();
    if events.is_empty() {
        problems.push(FieldError::new(
            "/events",
            "empty",
            "choose at least one event",
        ));
    }
    for (i, event) in events.iter().enumerate() {
        if !EVENTS.contains(&event.as_str()) {
            problems.push(FieldError::new(
                format!("/events/{i}"),
                "unknown_event",
                format!("{event:?} is not one of {}", EVENTS.join(", ")),
            ));
        }
    }
    match reqwest::Url::parse(&row.url) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && url.host_str().is_some() => {}
        _ => problems.push(FieldError::new(
            "/url",
            "url",
            format!("{:?} is not an http(s) URL", row.url),
        )),
    }
    if row.url.len() > 2000 || row.description.chars().count() > 500 {
        problems.push(FieldError::new(
            "/url",
            "too_long",
            "the URL or description is too long",
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_all("the webhook is invalid", problems))
    }
}

/// The workspace's subscriptions (admins).
///
/// # Errors
/// `Error::Forbidden` for non-admins.
pub async fn list(db: &Db, access: &Access) -> Result<Vec<WebhookView>> {
    access.require_admin()?;
    Ok(rows::of_workspace(db.conn(), access.workspace.id)
        .await?
        .iter()
        .map(|r| view(r, false))
        .collect())
}

/// One subscription (admins).
///
/// # Errors
/// `Error::NotFound`, `Error::Forbidden`.
pub async fn get(db: &Db, access: &Access, id: Uuid) -> Result<WebhookView> {
    access.require_admin()?;
    Ok(view(&own(db, access, id).await?, false))
}

async fn own(db: &Db, access: &Access, id: Uuid) -> Result<WebhookRow> {
    rows::find(db.conn(), id)
        .await?
        .filter(|r| r.workspace_id == access.workspace.id)
        .ok_or_else(|| not_found(id))
}

/// Subscribes (admins); the answer carries the secret, once.
///
/// # Errors
/// `Error::Invalid` at `/entity`, `/events`, `/url`; `Error::Forbidden`.
pub async fn create(
    db: &Db,
    clock: &SharedClock,
    snapshot: &Snapshot,
    access: &Access,
    input: WebhookInput,
) -> Result<WebhookView> {
    access.require_admin()?;
    let now = clock.now();
    let row = WebhookRow {
        id: new_id(),
        workspace_id: access.workspace.id,
        entity: input.entity.unwrap_or_default(),
        events: json!(
            input
                .events
                .unwrap_or_else(|| EVENTS.iter().map(|e| (*e).to_owned()).collect())
        ),
        url: input.url.unwrap_or_default().trim().to_owned(),
        secret: new_secret(),
        description: input.description.unwrap_or_default(),
        enabled: input.enabled.unwrap_or(true),
        created_by: access.account_id,
        created_at: now,
        updated_at: now,
    };
    check(&row, snapshot)?;
    let tx = db.write(crate::store::Sharing::Alone).await?;
    crate::store::workspaces::bump_generation(&tx, access.workspace.id).await?;
    rows::insert(&tx, row.clone()).await?;
    crate::audit::record_in(
        &tx,
        now,
        crate::audit::Event {
            workspace_id: Some(access.workspace.id),
            account_id: Some(access.account_id),
            kind: "webhook.created",
            detail: json!({"webhook": row.id, "url": row.url, "entity": row.entity}),
        },
    )
    .await?;
    crate::store::write::committed(tx.commit().await?)?;
    Ok(view(&row, true))
}

/// Changes a subscription (admins); a rotated secret is in the answer, once.
///
/// # Errors
/// As [`create`]; `Error::NotFound`.
pub async fn update(
    db: &Db,
    clock: &SharedClock,
    snapshot: &Snapshot,
    access: &Access,
    id: Uuid,
    input: WebhookInput,
) -> Result<WebhookView> {
    access.require_admin()?;
    let mut row = own(db, access, id).await?;
    if let Some(entity) = input.entity {
        row.entity = entity;
    }
    if let Some(events) = input.events {
        row.events = json!(events);
    }
    if let Some(url) = input.url {
        row.url = url.trim().to_owned();
    }
    if let Some(description) = input.description {
        row.description = description;
    }
    if let Some(enabled) = input.enabled {
        row.enabled = enabled;
    }
    if input.rotate_secret {
        row.secret = new_secret();
    }
    row.updated_at = clock.now();
    check(&row, snapshot)?;
    let tx = db.write(crate::store::Sharing::Alone).await?;
    crate::store::workspaces::bump_generation(&tx, access.workspace.id).await?;
    rows::update(&tx, row.clone()).await?;
    crate::store::write::committed(tx.commit().await?)?;
    Ok(view(&row, input.rotate_secret))
}

/// Unsubscribes (admins); deliveries still queued are dropped when they come due.
///
/// # Errors
/// `Error::NotFound`, `Error::Forbidden`.
pub async fn delete(db: &Db, access: &Access, id: Uuid) -> Result<()> {
    access.require_admin()?;
    own(db, access, id).await?;
    let tx = db.write(crate::store::Sharing::Alone).await?;
    crate::store::workspaces::bump_generation(&tx, access.workspace.id).await?;
    rows::delete(&tx, id).await?;
    crate::store::write::committed(tx.commit().await?)?;
    Ok(())
}

/// The latest deliveries of a subscription: their jobs (state, attempts, last error).
///
/// # Errors
/// `Error::NotFound`, `Error::Forbidden`.
pub async fn deliveries(db: &Db, access: &Access, id: Uuid) -> Result<Vec<jobs::JobView>> {
    access.require_admin()?;
    own(db, access, id).await?;
    let wanted = id.to_string();
    Ok(jobs::list(db, access.workspace.id, None, Some(500))
        .await?
        .into_iter()
        .filter(|j| {
            j.kind == DELIVERY_JOB
                && j.payload.get("subscription").and_then(Value::as_str) == Some(&wanted)
        })
        .take(100)
        .collect())
}

/// The job kind delivering webhooks.
pub const DELIVERY_JOB: &str = "outbox.webhook";

/// Enqueues, in the write's transaction, a delivery per subscription watching `model`'s
/// records for each change (`before` none: created; `after` none: deleted).
///
/// # Errors
/// `Error::Db`.
pub async fn on_write(
    conn: &impl Conn,
    clock: &SharedClock,
    ctx: &Context,
    snapshot: &Snapshot,
    model: &EntityModel,
    changes: &[crate::workflows::Change<'_>],
) -> Result<()> {
    let subscriptions = snapshot.webhooks_on(&model.key);
    if subscriptions.is_empty() {
        return Ok(());
    }
    let now = clock.now();
    for change in changes {
        let event = match (change.before, change.after) {
            (None, Some(_)) => "created",
            (Some(_), Some(_)) => "updated",
            (Some(_), None) => "deleted",
            (None, None) => continue,
        };
        let fields = change
            .after
            .or(change.before)
            .map(|doc| codec::decode_doc(model, doc))
            .unwrap_or_default();
        let changed: Vec<String> = match (change.before, change.after) {
            (Some(before), Some(after)) => model
                .fields
                .iter()
                .filter(|f| before.get(&f.key) != after.get(&f.key))
                .map(|f| f.key.clone())
                .collect(),
            _ => Vec::new(),
        };
        for subscription in &subscriptions {
            let wanted = subscription
                .events
                .as_array()
                .is_some_and(|e| e.iter().any(|v| v == event));
            if !wanted {
                continue;
            }
            let delivery = new_id();
            let body = json!({
                "id": delivery,
                "type": format!("record.{event}"),
                "occurred_at": now,
                "workspace": ctx.scope.workspace_id,
                "entity": model.key,
                "record": {"id": change.id, "owner": change.owner, "fields": fields},
                "changed": changed,
                "by": ctx.actor.account_id(),
                "channel": ctx.channel.as_str(),
            });
            let mut job = NewJob::new(
                DELIVERY_JOB,
                json!({"url": subscription.url, "body": body, "subscription": subscription.id}),
            );
            job.workspace_id = Some(ctx.scope.workspace_id);
            job.dedupe_key = Some(jobs::scoped_key(
                Some(ctx.scope.workspace_id),
                &format!("webhook:{delivery}"),
            ));
            jobs::enqueue(conn, clock, job).await?;
        }
    }
    Ok(())
}

/// The `Formwork-Signature` header of `body` sent at `at` (unix seconds).
pub fn signature(secret: &str, at: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length: this never fails.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{at}.").as_bytes());
    mac.update(body);
    format!("t={at},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_time_and_the_body() {
        let a = signature("whsec_x", 1_700_000_000, b"{\"a\":1}");
        assert!(a.starts_with("t=1700000000,v1="));
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature("whsec_x", 1_700_000_001, b"{\"a\":1}"));
        assert_ne!(a, signature("whsec_y", 1_700_000_000, b"{\"a\":1}"));
        assert_ne!(a, signature("whsec_x", 1_700_000_000, b"{\"a\":2}"));
        assert_eq!(a, signature("whsec_x", 1_700_000_000, b"{\"a\":1}"));
    }
}
