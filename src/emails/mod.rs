//! Email from records: a member writes to a customer's people from the record's page, starting
//! from an admin-written email template (definitions of kind `email_template`, subject and
//! body rendered in the text sandbox with what the member may see of the record), changes the
//! text, and sends it through the outbox; the message is kept on the record's timeline with its
//! delivery status. Replies come back through the workspace's inbound address ([`inbound`]) and
//! are filed on the record the thread started on and on the records whose email fields hold
//! the sender's address.

pub mod inbound;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::definitions::{FieldKind, Kind};
use crate::domain::new_id;
use crate::error::{Error, FieldError, Result};
use crate::records::{Context, Records};
use crate::render::i18n::Locale;
use crate::store::emails::{self as rows, EmailRow, Link};
use crate::store::write::{Sharing, committed};
use crate::workspaces::Access;

/// Most addresses (to and cc together) one email goes to.
pub const MAX_RECIPIENTS: usize = 10;
/// Longest subject, in characters.
pub const MAX_SUBJECT: usize = 300;
/// Longest body, in characters.
pub const MAX_BODY: usize = 100_000;
/// Most emails a record's timeline lists.
pub const TIMELINE_LIMIT: u64 = 200;
/// Most emails one member may send from records in an hour.
pub const MAX_PER_HOUR: u64 = 100;
/// Longest address (RFC 5321's path limit).
const MAX_ADDRESS: usize = 320;

/// Email use cases bound to the services.
#[derive(Debug, Clone, Copy)]
pub struct Emails<'a> {
    /// Records (reads with the caller's access, document contexts).
    pub records: Records<'a>,
    /// Whether email can be sent.
    pub mail_enabled: bool,
    /// The domain of inbound addresses, when inbound mail is taken.
    pub inbound_domain: Option<&'a str>,
}

/// An address the composer offers: the record's own, those of records it points to, and
/// those of records that refer to it (a customer's contacts).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Suggestion {
    /// The address.
    pub address: String,
    /// Whose it is (the record's title).
    pub name: String,
    /// The entity of that record.
    pub entity: String,
}

/// An email ready to be changed and sent.
#[derive(Debug, Clone, Serialize)]
pub struct Draft {
    /// The template it was written from.
    pub template: Option<String>,
    /// Addresses to send to (the first suggestion, when there is one).
    pub to: Vec<String>,
    /// The subject.
    pub subject: String,
    /// The body.
    pub body: String,
    /// Addresses the record leads to.
    pub suggestions: Vec<Suggestion>,
}

/// What a member sends.
#[derive(Debug, Clone, Default)]
pub struct Compose {
    /// The template to write from (its subject and body stand where those are not given).
    pub template: Option<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// Copies.
    pub cc: Vec<String>,
    /// The subject (final text, not a template).
    pub subject: Option<String>,
    /// The body (final text, not a template).
    pub body: Option<String>,
}

/// An email as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EmailView {
    /// Id.
    pub id: Uuid,
    /// `out` or `in`.
    pub direction: String,
    /// `queued`, `sent`, `failed` or `received`.
    pub status: String,
    /// Why the last delivery attempt failed.
    pub error: Option<String>,
    /// The sender's address.
    pub from_address: String,
    /// The sender's name.
    pub from_name: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Copies.
    pub cc: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// The template it was written from.
    pub template: Option<String>,
    /// The member who sent it (or whose copy it is).
    pub sent_by: Option<Uuid>,
    /// That member's name.
    pub sent_by_name: Option<String>,
    /// Our email this one answers.
    pub replies_to: Option<Uuid>,
    /// The RFC 5322 Message-ID (without brackets).
    pub message_id: String,
    /// Written or received.
    pub created_at: DateTime<Utc>,
    /// Handed to the SMTP server.
    pub sent_at: Option<DateTime<Utc>>,
}

/// The workspace's inbound address.
#[derive(Debug, Clone, Serialize)]
pub struct InboundAddress {
    /// Whether this server takes inbound mail at all.
    pub enabled: bool,
    /// The address (`<workspace>+<token>@<domain>`), when it does.
    pub address: Option<String>,
    /// The caller's personal address to BCC from their own mailbox (`<workspace>+<token>.<code>@…`):
    /// mail to it is filed as sent by them.
    pub bcc_address: Option<String>,
}

fn view(row: EmailRow, names: &HashMap<Uuid, String>) -> EmailView {
    let list = |key: &str| -> Vec<String> {
        row.recipients
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    EmailView {
        to: list("to"),
        cc: list("cc"),
        id: row.id,
        direction: row.direction,
        status: row.status,
        error: row.error,
        from_address: row.from_address,
        from_name: row.from_name,
        subject: row.subject,
        body: row.body,
        template: row.template,
        sent_by_name: row.sent_by.and_then(|id| names.get(&id).cloned()),
        sent_by: row.sent_by,
        replies_to: row.replies_to,
        message_id: row.message_id,
        created_at: row.created_at,
        sent_at: row.sent_at,
    }
}

/// The address part of `text` (`Li Na <li@example.com>` or `li@example.com`), lowercased, if it
/// is one.
pub fn address_of(text: &str) -> Option<String> {
    let mailbox = text.trim().parse::<lettre::message::Mailbox>().ok()?;
    Some(mailbox.email.to_string().to_lowercase())
}

/// Checks a list of recipients at `pointer`, returning them as written (trimmed).
fn recipients(list: &[String], pointer: &str, problems: &mut Vec<FieldError>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let item = item.trim();
        if item.len() > MAX_ADDRESS
            || item.chars().any(char::is_control)
            || address_of(item).is_none()
        {
            problems.push(FieldError::new(
                format!("{pointer}/{i}"),
                "bad_address",
                format!("{item:?} is not an email address such as li@example.com"),
            ));
            continue;
        }
        out.push(item.to_owned());
    }
    out
}

impl Emails<'_> {
    /// The email templates of `entity` in the snapshot the caller sees, by label.
    ///
    /// # Errors
    /// `Error::NotFound` for an entity the caller cannot read.
    pub async fn templates(
        &self,
        ctx: &Context,
        entity: &str,
        locale: Locale,
    ) -> Result<Vec<crate::printing::TemplateRef>> {
        let shape = self.records.shape(ctx, entity).await?;
        Ok(crate::printing::templates_of(
            &shape.snapshot,
            Kind::EmailTemplate,
            entity,
            locale,
        ))
    }

    /// An email to the people of record `id`, written from `template` when one is named, in
    /// `locale`, as the caller may see the record.
    ///
    /// # Errors
    /// `Error::NotFound` (record), `Error::Invalid` at `/template` (unknown, or it fails).
    pub async fn draft(
        &self,
        ctx: &Context,
        access: &Access,
        entity: &str,
        id: &str,
        template: Option<&str>,
        locale: Locale,
    ) -> Result<Draft> {
        let mut context = self
            .records
            .document_context(ctx, &access.workspace.name, entity, id, locale)
            .await?;
        let shape = self.records.shape(ctx, entity).await?;
        let suggestions = suggestions(&shape.snapshot, entity, &context);
        let (subject, body) = match template {
            Some(key) => {
                let document = shape
                    .snapshot
                    .get(Kind::EmailTemplate, key)
                    .map(|p| p.document.clone())
                    .filter(|d| d.get("entity").and_then(Value::as_str) == Some(entity))
                    .ok_or_else(|| {
                        Error::invalid(
                            "/template",
                            "unknown_template",
                            format!("{entity} has no email template {key:?}"),
                        )
                    })?;
                let sender = self.sender(access).await?;
                context.insert(
                    "sender".to_owned(),
                    json!({"name": sender.name, "email": sender.email}),
                );
                let context = Value::Object(context);
                let part = |name: &str| -> Result<String> {
                    let source = document
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    crate::render::sandbox::render(source, &context, &format!("/template/{name}"))
                };
                let subject = part("subject")?;
                // A subject is one line whatever the template made of it.
                let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
                (subject, part("body")?)
            }
            None => (String::new(), String::new()),
        };
        Ok(Draft {
            template: template.map(str::to_owned),
            to: suggestions
                .first()
                .map(|s| vec![s.address.clone()])
                .unwrap_or_default(),
            subject,
            body,
            suggestions,
        })
    }

    /// The caller's account (their name and address sign what they send).
    async fn sender(&self, access: &Access) -> Result<crate::store::accounts::AccountRow> {
        crate::store::accounts::find(self.records.db.conn(), access.account_id)
            .await?
            .ok_or_else(|| Error::forbidden("your account is gone"))
    }

    /// Sends an email from record `id` of `entity`: checked, kept on the record's timeline as
    /// `queued`, and queued in the outbox in one transaction (the worker sends it and marks it
    /// `sent`, or `failed` when the server refuses it for good).
    ///
    /// # Errors
    /// `Error::Conflict` (`mail_disabled`) when no SMTP server is set up, `Error::NotFound`,
    /// `Error::Invalid` naming each bad part (`/to/0` `bad_address`, `/subject`, `/body`,
    /// `/template`).
    pub async fn send(
        &self,
        ctx: &Context,
        access: &Access,
        entity: &str,
        id: &str,
        compose: Compose,
        locale: Locale,
    ) -> Result<EmailView> {
        let record = self.records.get(ctx, entity, id, false).await?;
        // Writing to a record's people acts for the record: it takes the right to change it.
        self.records
            .check_may_update(ctx, entity, record.id)
            .await?;
        if !self.mail_enabled {
            return Err(Error::conflict(
                "",
                "mail_disabled",
                "this server sends no email: FORMWORK_SMTP_URL is not set",
            ));
        }
        let draft = match (&compose.template, &compose.subject, &compose.body) {
            (Some(template), None, _) | (Some(template), _, None) => Some(
                self.draft(ctx, access, entity, id, Some(template), locale)
                    .await?,
            ),
            (Some(template), Some(_), Some(_)) => {
                // The template is named for the record only; it must still be one of the entity.
                if self
                    .templates(ctx, entity, locale)
                    .await?
                    .iter()
                    .all(|t| &t.key != template)
                {
                    return Err(Error::invalid(
                        "/template",
                        "unknown_template",
                        format!("{entity} has no email template {template:?}"),
                    ));
                }
                None
            }
            _ => None,
        };
        let subject = compose
            .subject
            .clone()
            .or_else(|| draft.as_ref().map(|d| d.subject.clone()))
            .unwrap_or_default();
        let body = compose
            .body
            .clone()
            .or_else(|| draft.as_ref().map(|d| d.body.clone()))
            .unwrap_or_default();
        let mut problems = Vec::new();
        let to = recipients(&compose.to, "/to", &mut problems);
        let cc = recipients(&compose.cc, "/cc", &mut problems);
        if compose.to.is_empty() {
            problems.push(FieldError::new(
                "/to",
                "required",
                "name at least one recipient",
            ));
        }
        if to.len() + cc.len() > MAX_RECIPIENTS {
            problems.push(FieldError::new(
                "/to",
                "too_many",
                format!("an email goes to at most {MAX_RECIPIENTS} addresses"),
            ));
        }
        let subject = subject.trim().to_owned();
        if subject.is_empty() {
            problems.push(FieldError::new("/subject", "required", "write a subject"));
        } else if subject.chars().count() > MAX_SUBJECT {
            problems.push(FieldError::new(
                "/subject",
                "too_long",
                format!("a subject is at most {MAX_SUBJECT} characters"),
            ));
        } else if subject.chars().any(char::is_control) {
            problems.push(FieldError::new(
                "/subject",
                "one_line",
                "a subject is one line",
            ));
        }
        if body.trim().is_empty() {
            problems.push(FieldError::new("/body", "required", "write a message"));
        } else if body.chars().count() > MAX_BODY {
            problems.push(FieldError::new(
                "/body",
                "too_long",
                format!("a message is at most {MAX_BODY} characters"),
            ));
        }
        if !problems.is_empty() {
            return Err(Error::invalid_all("the email cannot be sent", problems));
        }
        let now = self.records.clock.now();
        let sender = self.sender(access).await?;
        let email_id = new_id();
        let domain = self.inbound_domain.unwrap_or("formwork.invalid");
        let message_id = format!("{email_id}@{domain}");
        let mut reply_to = vec![format!("{} <{}>", quoted(&sender.name), sender.email)];
        if let Some(inbound) = self.inbound_address(access).await?.address {
            reply_to.push(inbound);
        }
        let from_name = format!("{} ({})", sender.name, access.workspace.name);
        let row = EmailRow {
            id: email_id,
            workspace_id: access.workspace.id,
            direction: "out".to_owned(),
            source: "composed".to_owned(),
            message_id: message_id.clone(),
            replies_to: None,
            from_address: sender.email.clone(),
            from_name: from_name.clone(),
            recipients: json!({"to": to, "cc": cc}),
            subject: subject.clone(),
            body: body.clone(),
            template: compose.template.clone(),
            sent_by: Some(access.account_id),
            status: "queued".to_owned(),
            error: None,
            created_at: now,
            sent_at: None,
        };
        let email = crate::mail::Email {
            to: to.join(", "),
            subject,
            text: body,
            cc,
            reply_to,
            from_name: Some(clean_name(&from_name)),
            message_id: Some(message_id),
            tracking: Some(email_id),
            ..Default::default()
        };
        let tx = self.records.db.write(Sharing::Alone).await?;
        // Counted in the write's transaction: on SQLite writes take turns, so the limit is
        // exact; on PostgreSQL sends at the same instant may pass it by a few.
        let recent = rows::sent_since(
            &tx,
            access.workspace.id,
            access.account_id,
            now - chrono::Duration::hours(1),
        )
        .await?;
        if recent >= MAX_PER_HOUR {
            return Err(Error::RateLimited {
                retry_after_secs: 600,
            });
        }
        rows::insert(
            &tx,
            row.clone(),
            &[Link {
                entity: entity.to_owned(),
                record_id: record.id,
            }],
        )
        .await?;
        crate::mail::queue_once(
            &tx,
            self.records.clock,
            &email,
            access.workspace.id,
            rows::job_key(email_id),
        )
        .await?;
        committed(tx.commit().await?)?;
        let names = HashMap::from([(access.account_id, sender.name)]);
        Ok(view(row, &names))
    }

    /// The emails filed on record `id` of `entity`, newest first, for those who can read it.
    ///
    /// # Errors
    /// `Error::NotFound` (record).
    pub async fn list(
        &self,
        ctx: &Context,
        access: &Access,
        entity: &str,
        id: &str,
    ) -> Result<Vec<EmailView>> {
        let record = self.records.get(ctx, entity, id, true).await?;
        let names = self.names(access).await?;
        self.of_record(ctx, access, entity, record.id, &names).await
    }

    /// The emails filed on record `record_id`, which the caller has just read, newest first;
    /// `names` are the members' names by account (the record page has them already).
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn of_record(
        &self,
        ctx: &Context,
        access: &Access,
        entity: &str,
        record_id: Uuid,
        names: &HashMap<Uuid, String>,
    ) -> Result<Vec<EmailView>> {
        let found = rows::of_record(
            self.records.db.conn(),
            access.workspace.id,
            entity,
            record_id,
            TIMELINE_LIMIT,
        )
        .await?;
        let masked = self.masks_addresses(ctx).await?;
        let given_up = self.given_up(access, &found).await?;
        Ok(found
            .into_iter()
            .map(|row| {
                let mut email = view(row, names);
                if let Some(why) = given_up.get(&email.id) {
                    email.status = "failed".to_owned();
                    email.error = Some(why.clone());
                }
                if masked {
                    mask_addresses(&mut email);
                }
                email
            })
            .collect())
    }

    /// Why the outbox gave up on those of `emails` still marked queued: their job died or was
    /// cancelled without the sender's handler recording it (a worker that kept dying on it).
    async fn given_up(
        &self,
        access: &Access,
        emails: &[EmailRow],
    ) -> Result<HashMap<Uuid, String>> {
        let queued: HashMap<String, Uuid> = emails
            .iter()
            .filter(|e| e.status == "queued" && e.source == "composed")
            .map(|e| {
                (
                    crate::jobs::scoped_key(Some(access.workspace.id), &rows::job_key(e.id)),
                    e.id,
                )
            })
            .collect();
        if queued.is_empty() {
            return Ok(HashMap::new());
        }
        let jobs =
            crate::store::jobs::by_keys(self.records.db.conn(), queued.keys().cloned().collect())
                .await?;
        Ok(jobs
            .into_iter()
            .filter(|job| job.status == "dead" || job.status == "cancelled")
            .filter_map(|job| {
                let id = queued.get(job.dedupe_key.as_deref()?)?;
                Some((
                    *id,
                    job.last_error
                        .unwrap_or_else(|| "the outbox gave up on this email".to_owned()),
                ))
            })
            .collect())
    }

    /// Whether the caller's role hides or masks an email field of an entity they read: then
    /// the addresses of emails are masked for them too (the fields' rule holds in the timeline).
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn masks_addresses(&self, ctx: &Context) -> Result<bool> {
        let Some(policy) = &ctx.policy else {
            return Ok(false);
        };
        if policy.is_admin {
            return Ok(false);
        }
        let snapshot = self
            .records
            .registry
            .snapshot(
                self.records.db,
                ctx.scope.workspace_id,
                ctx.scope.generation,
            )
            .await?;
        Ok(snapshot.entities().iter().any(|model| {
            let lens = crate::records::guard::Lens::new(ctx, model);
            lens.reach(crate::records::Operation::Read) != crate::access::Reach::None
                && model
                    .fields
                    .iter()
                    .filter(|f| f.kind == FieldKind::Email)
                    .any(|f| {
                        let rule = lens.field(model, &f.key);
                        rule.masks() || rule == crate::access::FieldRule::Hidden
                    })
        }))
    }

    async fn names(&self, access: &Access) -> Result<HashMap<Uuid, String>> {
        Ok(
            crate::store::workspaces::list_members(self.records.db.conn(), access.workspace.id)
                .await?
                .into_iter()
                .map(|m| (m.account_id, m.name))
                .collect(),
        )
    }

    /// The workspace's inbound address (made on first use).
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn inbound_address(&self, access: &Access) -> Result<InboundAddress> {
        let Some(domain) = self.inbound_domain else {
            return Ok(InboundAddress {
                enabled: false,
                address: None,
                bcc_address: None,
            });
        };
        let conn = self.records.db.conn();
        let row = match rows::inbox_of(conn, access.workspace.id).await? {
            Some(row) => row,
            None => {
                let tx = self.records.db.write(Sharing::Alone).await?;
                rows::put_inbox(&tx, self.new_inbox(access), false).await?;
                committed(tx.commit().await?)?;
                rows::inbox_of(conn, access.workspace.id)
                    .await?
                    .ok_or_else(|| Error::internal("the inbound address was not kept"))?
            }
        };
        let slug = &access.workspace.slug;
        Ok(InboundAddress {
            enabled: true,
            address: Some(format!("{slug}+{}@{domain}", row.token)),
            bcc_address: Some(format!(
                "{slug}+{}.{}@{domain}",
                row.token,
                inbound::member_code(&row.secret, &row.token, access.account_id)
            )),
        })
    }

    /// Gives the workspace a new inbound address; mail to the old one is refused from now on.
    ///
    /// # Errors
    /// `Error::Forbidden` (not an admin), `Error::Conflict` when inbound mail is off.
    pub async fn rotate_inbound_address(&self, access: &Access) -> Result<InboundAddress> {
        access.require_admin()?;
        if self.inbound_domain.is_none() {
            return Err(Error::conflict(
                "",
                "inbound_disabled",
                "this server takes no inbound mail: FORMWORK_INBOUND_SMTP_LISTEN is not set",
            ));
        }
        let tx = self.records.db.write(Sharing::Alone).await?;
        rows::put_inbox(&tx, self.new_inbox(access), true).await?;
        committed(tx.commit().await?)?;
        self.inbound_address(access).await
    }

    fn new_inbox(&self, access: &Access) -> rows::InboxRow {
        rows::InboxRow {
            workspace_id: access.workspace.id,
            token: inbound::new_token(),
            secret: crate::auth::random_secret(),
            created_at: self.records.clock.now(),
        }
    }

    /// Received emails filed on no record (nobody's address matched), newest first; for
    /// admins.
    ///
    /// # Errors
    /// `Error::Forbidden`.
    pub async fn unfiled(&self, access: &Access) -> Result<Vec<EmailView>> {
        access.require_admin()?;
        let found =
            rows::unfiled(self.records.db.conn(), access.workspace.id, TIMELINE_LIMIT).await?;
        let names = self.names(access).await?;
        Ok(found.into_iter().map(|row| view(row, &names)).collect())
    }

    /// Files an email on record `id` of `entity` too (an admin placing an unfiled reply).
    ///
    /// # Errors
    /// `Error::Forbidden`, `Error::NotFound` (email or record).
    pub async fn file(
        &self,
        ctx: &Context,
        access: &Access,
        email: &str,
        entity: &str,
        id: &str,
    ) -> Result<EmailView> {
        access.require_admin()?;
        let email_id = Uuid::parse_str(email).map_err(|_| Error::not_found("email"))?;
        let row = rows::find(self.records.db.conn(), access.workspace.id, email_id)
            .await?
            .ok_or_else(|| Error::not_found("email"))?;
        let record = self.records.get(ctx, entity, id, false).await?;
        let tx = self.records.db.write(Sharing::Alone).await?;
        rows::add_links(
            &tx,
            access.workspace.id,
            email_id,
            &[Link {
                entity: entity.to_owned(),
                record_id: record.id,
            }],
        )
        .await?;
        committed(tx.commit().await?)?;
        let names = self.names(access).await?;
        Ok(view(row, &names))
    }
}

/// Masks every address of an email (`l***@example.com`).
fn mask_addresses(email: &mut EmailView) {
    let mask = |address: &str| -> String {
        let text = address_of(address).unwrap_or_else(|| address.to_owned());
        crate::access::mask(&json!(text), true)
            .as_str()
            .unwrap_or("****")
            .to_owned()
    };
    email.from_address = mask(&email.from_address);
    for list in [&mut email.to, &mut email.cc] {
        for address in list.iter_mut() {
            *address = mask(address);
        }
    }
}

/// A display name without what could break out of a header (quotes, brackets, line breaks).
fn clean_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '<' | '>' | '\\'))
        .collect();
    clean.trim().to_owned()
}

/// A display name quoted for a `Name <address>` mailbox.
fn quoted(name: &str) -> String {
    format!("\"{}\"", clean_name(name))
}

/// The addresses a document context leads to: the record's email fields, then those of the
/// records it points to, then those of records referring to it; each address once.
fn suggestions(
    snapshot: &crate::definitions::Snapshot,
    entity: &str,
    context: &Map<String, Value>,
) -> Vec<Suggestion> {
    let mut found: Vec<Suggestion> = Vec::new();
    let mut add = |entity: &str, fields: &Map<String, Value>| {
        let Some(model) = snapshot.entity(entity) else {
            return;
        };
        for field in &model.fields {
            if !matches!(field.kind, FieldKind::Email) {
                continue;
            }
            let Some(address) = fields.get(&field.key).and_then(Value::as_str) else {
                continue;
            };
            // A masked address (`l***@…`) is not one to write to.
            if address.contains("***")
                || found.iter().any(|s| s.address == address)
                || found.len() >= 50
            {
                continue;
            }
            let record_id = fields
                .get("id")
                .and_then(Value::as_str)
                .and_then(|i| Uuid::parse_str(i).ok())
                .unwrap_or_default();
            found.push(Suggestion {
                address: address.to_owned(),
                name: crate::records::title_of(&model, fields, record_id),
                entity: entity.to_owned(),
            });
        }
    };
    if let Some(record) = context.get("record").and_then(Value::as_object) {
        add(entity, record);
    }
    if let (Some(model), Some(refs)) = (
        snapshot.entity(entity),
        context.get("refs").and_then(Value::as_object),
    ) {
        let targets: BTreeMap<&str, &str> = model
            .fields
            .iter()
            .filter_map(|f| match &f.kind {
                FieldKind::Reference { entity: target, .. } => {
                    Some((f.key.as_str(), target.as_str()))
                }
                _ => None,
            })
            .collect();
        for (field, fields) in refs {
            if let (Some(target), Some(fields)) = (targets.get(field.as_str()), fields.as_object())
            {
                add(target, fields);
            }
        }
    }
    if let Some(related) = context.get("related").and_then(Value::as_object) {
        for (other, list) in related {
            for fields in list.as_array().into_iter().flatten() {
                if let Some(fields) = fields.as_object() {
                    add(other, fields);
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_named_by_pointer() {
        let mut problems = Vec::new();
        let good = recipients(
            &[
                "li.na@example.com".to_owned(),
                "Wang Wei <Wang@Example.com>".to_owned(),
                "nope".to_owned(),
                "a@b.com\r\nBcc: x@y.com".to_owned(),
            ],
            "/to",
            &mut problems,
        );
        assert_eq!(good.len(), 2);
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].pointer, "/to/2");
        assert_eq!(problems[1].pointer, "/to/3");
        assert_eq!(
            address_of("Wang Wei <Wang@Example.com>").as_deref(),
            Some("wang@example.com")
        );
        assert_eq!(quoted("Li \"Na\" <x>\r\n"), "\"Li Na x\"");
    }
}
