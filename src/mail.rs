//! Outgoing email: messages are queued as `outbox.email` jobs (so a crash or an unreachable
//! server loses none; delivery is at least once, each message carrying its job id as Message-ID
//! so receivers can drop duplicates) and sent over SMTP by the worker.

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
#[derive(Debug, Clone, Serialize, Deserialize)]
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

    async fn run(&self, _ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let email: Email = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(format!("not an email: {e}")))?;
        let to = email
            .to
            .parse::<Mailbox>()
            .map_err(|e| JobFailure::Fatal(format!("bad recipient: {e}")))?;
        let builder = Message::builder()
            .from(self.mailer.from.clone())
            .to(to)
            .subject(email.subject)
            .message_id(Some(format!("<{}@formwork>", job.id)));
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
        self.mailer
            .transport
            .send(message)
            .await
            .map_err(|e| JobFailure::Retry(format!("SMTP: {e}")))?;
        Ok(())
    }
}
