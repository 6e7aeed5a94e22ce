//! Outgoing email: messages are queued as `outbox.email` jobs (so a crash or an unreachable
//! server loses none; delivery is at least once, each message carrying its job id as Message-ID
//! so receivers can drop duplicates) and sent over SMTP by the worker. [`receive`] is the other
//! direction: a small SMTP server taking mail for the workspaces' inbound addresses.

pub mod receive;

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::jobs::{Handler, JobContext, JobFailure};
use crate::jobs::{NewJob, enqueue};
use crate::store::Conn;
use crate::store::jobs::JobRow;

/// The job kind that sends one email.
pub const EMAIL_JOB: &str = "outbox.email";

/// One email to send.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Email {
    /// Recipient address.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// An HTML body sent beside the text (multipart/alternative), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Copies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    /// Where replies go (instead of the sender).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reply_to: Vec<String>,
    /// The sender's display name (the address is always the configured one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_name: Option<String>,
    /// The Message-ID to send with (without brackets); the job's id otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The `emails` row that tracks this message (its status follows the delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<uuid::Uuid>,
}

impl Email {
    /// A plain email to one person.
    pub fn new(to: impl Into<String>, subject: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            subject: subject.into(),
            text: text.into(),
            html: None,
            cc: Vec::new(),
            reply_to: Vec::new(),
            from_name: None,
            message_id: None,
            tracking: None,
        }
    }
}

/// Queues an email inside the caller's transaction.
///
/// # Errors
/// `Error::Db`.
pub async fn queue(conn: &impl Conn, clock: &SharedClock, email: &Email) -> Result<()> {
    let payload = serde_json::to_value(email).map_err(Error::internal)?;
    let mut job = NewJob::new(EMAIL_JOB, payload);
    job.max_attempts = 10;
    enqueue(conn, clock, job).await?;
    Ok(())
}

/// Queues an email once per `key` in a workspace (a workflow step run again queues no second
/// copy), inside the caller's transaction.
///
/// # Errors
/// `Error::Db`.
pub async fn queue_once(
    conn: &impl Conn,
    clock: &SharedClock,
    email: &Email,
    workspace_id: uuid::Uuid,
    key: String,
) -> Result<Option<uuid::Uuid>> {
    let payload = serde_json::to_value(email).map_err(Error::internal)?;
    let mut job = NewJob::new(EMAIL_JOB, payload);
    job.max_attempts = 10;
    job.workspace_id = Some(workspace_id);
    job.dedupe_key = Some(key);
    enqueue(conn, clock, job).await
}

/// An SMTP server to send through.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    /// A mailer for `smtp://`, `smtp+starttls://` or `smtps://` URLs, sending as `from`.
    ///
    /// # Errors
    /// `Error::Invalid` naming `FORMWORK_SMTP_URL` or `FORMWORK_MAIL_FROM`.
    pub fn new(url: &str, from: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid(
                "/FORMWORK_SMTP_URL",
                "smtp_url",
                format!("FORMWORK_SMTP_URL {why}"),
            )
        };
        let parsed = reqwest::Url::parse(url).map_err(|_| bad("is not a URL"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| bad("has no host"))?
            .to_owned();
        let builder = match parsed.scheme() {
            "smtp" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
            "smtp+starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                .map_err(|_| bad("names a host TLS cannot be set up for"))?,
            "smtps" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                .map_err(|_| bad("names a host TLS cannot be set up for"))?,
            _ => return Err(bad("must start with smtp://, smtp+starttls:// or smtps://")),
        };
        let mut builder = builder.timeout(Some(Duration::from_secs(20)));
        if let Some(port) = parsed.port() {
            builder = builder.port(port);
        }
        if !parsed.username().is_empty() {
            builder = builder.credentials(Credentials::new(
                parsed.username().to_owned(),
                parsed.password().unwrap_or_default().to_owned(),
            ));
        }
        let from = from.parse::<Mailbox>().map_err(|_| {
            Error::invalid(
                "/FORMWORK_MAIL_FROM",
                "mail_from",
                "FORMWORK_MAIL_FROM is not an email address such as Formwork <crm@example.com>",
            )
        })?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

/// `outbox.email`: sends one queued email; a refused or unreachable server is retried with
/// backoff, a malformed message fails for good.
#[derive(Debug, Clone)]
pub struct SendEmail {
    /// The server.
    pub mailer: Mailer,
}

#[async_trait::async_trait]
impl Handler for SendEmail {
    fn kind(&self) -> &'static str {
        EMAIL_JOB
    }

    async fn run(&self, ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let email: Email = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(format!("not an email: {e}")))?;
        let tracking = email.tracking;
        let outcome = self.send(job, email).await;
        if let Some(id) = tracking {
            let last_try = job.attempts >= job.max_attempts;
            let (status, error, sent_at) = match &outcome {
                Ok(()) => ("sent", None, Some(ctx.clock.now())),
                Err(JobFailure::Fatal(why)) => ("failed", Some(why.clone()), None),
                Err(JobFailure::Retry(why)) if last_try => ("failed", Some(why.clone()), None),
                Err(JobFailure::Retry(why)) => ("queued", Some(why.clone()), None),
            };
            if let Err(e) =
                crate::store::emails::set_status(ctx.db.conn(), id, status, error, sent_at).await
            {
                // The message is out (or its failure known); a retry would send it again, so
                // the status is left behind rather than the email repeated.
                tracing::warn!(email = %id, error = %e, "recording an email's delivery failed");
            }
        }
        outcome
    }
}

impl SendEmail {
    async fn send(&self, job: &JobRow, email: Email) -> Result<(), JobFailure> {
        let mailbox = |address: &str| {
            address
                .parse::<Mailbox>()
                .map_err(|e| JobFailure::Fatal(format!("bad address {address:?}: {e}")))
        };
        let from = match email.from_name {
            Some(name) => Mailbox::new(Some(name), self.mailer.from.email.clone()),
            None => self.mailer.from.clone(),
        };
        // `to` may list several addresses, separated by commas.
        let to: lettre::message::Mailboxes = email
            .to
            .parse()
            .map_err(|e| JobFailure::Fatal(format!("bad address {:?}: {e}", email.to)))?;
        let mut builder = Message::builder().from(from).subject(email.subject);
        for mailbox in to {
            builder = builder.to(mailbox);
        }
        builder = builder.message_id(Some(format!(
            "<{}>",
            email
                .message_id
                .unwrap_or_else(|| format!("{}@formwork", job.id))
        )));
        for cc in &email.cc {
            builder = builder.cc(mailbox(cc)?);
        }
        for reply_to in &email.reply_to {
            builder = builder.reply_to(mailbox(reply_to)?);
        }
        let message = match email.html {
            // Rendered by Formwork with autoescaping: values never become markup.
            Some(html) => builder.multipart(lettre::message::MultiPart::alternative_plain_html(
                email.text, html,
            )),
            // Plain text, declared as UTF-8: Chinese reads right, and no value is ever markup.
            None => builder
                .header(lettre::message::header::ContentType::TEXT_PLAIN)
                .body(email.text),
        }
        .map_err(|e| JobFailure::Fatal(format!("bad message: {e}")))?;
        self.mailer.transport.send(message).await.map_err(|e| {
            // A permanent refusal (5xx: no such mailbox, rejected) will not change.
            if e.is_permanent() {
                JobFailure::Fatal(format!("SMTP: {e}"))
            } else {
                JobFailure::Retry(format!("SMTP: {e}"))
            }
        })?;
        Ok(())
    }
}
