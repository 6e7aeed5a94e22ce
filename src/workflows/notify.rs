//! Telling people: recipients resolved from a run (the record's owner, the owner's manager,
//! whoever triggered the run, a user, everyone with a role, a user field), and the channels that
//! reach them. In-app notifications are rows with a read state; email goes through the outbox
//! (at least once, one queued message per step and person). Each person's notification settings
//! decide which of these channels reach them. Chat robots are a later channel.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::domain::new_id;
use crate::error::{Error, Result};
use crate::store::workflows::{self as rows, NotificationRow};
use crate::store::write::Write;

/// One message to deliver, to resolved people.
#[derive(Debug, Clone)]
pub struct Message {
    /// The workspace.
    pub workspace_id: Uuid,
    /// The people.
    pub to: Vec<Uuid>,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// The record it is about.
    pub record: Option<(String, Uuid)>,
    /// The run sending it.
    pub run_id: Uuid,
    /// Unique per step execution: a step run again delivers nothing twice.
    pub key: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A way to reach people, inside the step's transaction.
#[async_trait::async_trait]
pub trait Channel: Send + Sync + std::fmt::Debug {
    /// Its name in definitions (`in_app`, `email`).
    fn name(&self) -> &'static str;

    /// Delivers (or queues) the message; returns what it did, for the run log.
    async fn deliver(&self, tx: &Write, clock: &SharedClock, message: &Message) -> Result<Value>;
}

/// In-app notifications.
#[derive(Debug)]
pub struct InApp;

#[async_trait::async_trait]
impl Channel for InApp {
    fn name(&self) -> &'static str {
        "in_app"
    }

    async fn deliver(&self, tx: &Write, _clock: &SharedClock, message: &Message) -> Result<Value> {
        let wanting = crate::notifications::wanting(
            tx,
            message.workspace_id,
            &message.to,
            crate::notifications::Kind::Workflow,
            crate::notifications::Channel::InApp,
        )
        .await?;
        let rows = wanting
            .iter()
            .map(|account| NotificationRow {
                id: new_id(),
                workspace_id: message.workspace_id,
                account_id: *account,
                title: message.title.clone(),
                body: message.body.clone(),
                entity: message.record.as_ref().map(|(e, _)| e.clone()),
                record_id: message.record.as_ref().map(|(_, id)| *id),
                run_id: Some(message.run_id),
                dedupe_key: Some(format!("{}:{account}", message.key)),
                created_at: message.at,
                read_at: None,
                kind: crate::notifications::Kind::Workflow.name().to_owned(),
                actor_id: None,
            })
            .collect();
        rows::insert_notifications(tx, rows).await?;
        let declined = message.to.len() - wanting.len();
        if declined > 0 {
            return Ok(json!({"notified": wanting.len(), "declined_by_settings": declined}));
        }
        Ok(json!({"notified": wanting.len()}))
    }
}

/// Email through the outbox (SMTP; needs `FORMWORK_SMTP_URL`).
#[derive(Debug)]
pub struct Email {
    /// Whether an SMTP server is configured; without one, email is skipped (and logged so).
    pub enabled: bool,
}

#[async_trait::async_trait]
impl Channel for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    async fn deliver(&self, tx: &Write, clock: &SharedClock, message: &Message) -> Result<Value> {
        if !self.enabled {
            return Ok(json!({"skipped": "no SMTP server is configured (FORMWORK_SMTP_URL)"}));
        }
        let wanting = crate::notifications::wanting(
            tx,
            message.workspace_id,
            &message.to,
            crate::notifications::Kind::Workflow,
            crate::notifications::Channel::Email,
        )
        .await?;
        let mut queued = Vec::new();
        for account in &wanting {
            let Some(row) = crate::store::accounts::find(tx, *account).await? else {
                continue;
            };
            let email = crate::mail::Email {
                to: row.email.clone(),
                subject: message.title.clone(),
                text: message.body.clone(),
                html: None,
                ..Default::default()
            };
            crate::mail::queue_once(
                tx,
                clock,
                &email,
                message.workspace_id,
                format!("{}:{account}", message.key),
            )
            .await?;
            queued.push(row.email);
        }
        let declined = message.to.len() - wanting.len();
        if declined > 0 {
            return Ok(json!({"emailed": queued, "declined_by_settings": declined}));
        }
        Ok(json!({"emailed": queued}))
    }
}

/// The channel named `name`.
pub fn channel(name: &str, email_enabled: bool) -> Result<Box<dyn Channel>> {
    match name {
        "in_app" => Ok(Box::new(InApp)),
        "email" => Ok(Box::new(Email {
            enabled: email_enabled,
        })),
        other => Err(Error::invalid(
            "/channels",
            "channel",
            format!("unknown channel {other:?}"),
        )),
    }
}

/// What a run knows to resolve recipients.
#[derive(Debug, Clone, Default)]
pub struct Audience {
    /// The record's owner.
    pub owner: Option<Uuid>,
    /// Whoever triggered the run.
    pub triggered_by: Option<Uuid>,
    /// The record's user fields (stored values).
    pub user_fields: HashMap<String, Value>,
}

/// The active members a recipient list names, in order, each once. Unknown or inactive people
/// are left out (a manager who left is not an error); what was left out is reported.
pub fn resolve(
    recipients: &[String],
    audience: &Audience,
    directory: &crate::access::Directory,
    roles_of: &HashMap<Uuid, String>,
) -> (Vec<Uuid>, Vec<String>) {
    let active = |id: &Uuid| directory.org.person(*id).is_some_and(|p| p.active);
    let mut found: Vec<Uuid> = Vec::new();
    let mut missing = Vec::new();
    let mut add = |id: Option<Uuid>, what: &str, found: &mut Vec<Uuid>| match id {
        Some(id) if active(&id) => {
            if !found.contains(&id) {
                found.push(id);
            }
        }
        _ => missing.push(what.to_owned()),
    };
    for recipient in recipients {
        match recipient.split_once(':') {
            None if recipient == "owner" => add(audience.owner, recipient, &mut found),
            None if recipient == "owner_manager" => add(
                audience.owner.and_then(|o| directory.org.manager_of(o)),
                recipient,
                &mut found,
            ),
            None if recipient == "triggered_by" => {
                add(audience.triggered_by, recipient, &mut found);
            }
            Some(("user", id)) => add(id.parse().ok(), recipient, &mut found),
            Some(("role", role)) => {
                let mut holders: Vec<Uuid> = roles_of
                    .iter()
                    .filter(|(_, r)| r.as_str() == role)
                    .map(|(id, _)| *id)
                    .collect();
                holders.sort();
                if holders.is_empty() {
                    add(None, recipient, &mut found);
                }
                for holder in holders {
                    add(Some(holder), recipient, &mut found);
                }
            }
            Some(("field", field)) => {
                let ids: Vec<Uuid> = match audience.user_fields.get(field) {
                    Some(Value::String(id)) => id.parse().ok().into_iter().collect(),
                    Some(Value::Array(ids)) => ids
                        .iter()
                        .filter_map(|v| v.as_str()?.parse().ok())
                        .collect(),
                    _ => Vec::new(),
                };
                if ids.is_empty() {
                    add(None, recipient, &mut found);
                }
                for id in ids {
                    add(Some(id), recipient, &mut found);
                }
            }
            _ => add(None, recipient, &mut found),
        }
    }
    (found, missing)
}
