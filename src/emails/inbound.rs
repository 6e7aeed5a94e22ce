//! Inbound mail: each workspace has an address `<slug>+<token>@<inbound domain>` (the token is
//! a secret an admin can rotate). Customers' replies reach it through the Reply-To of emails sent
//! from records, and members may BCC it from their own mailbox. A message is filed on the
//! records its thread started on (In-Reply-To/References naming a message we sent) and on the
//! records whose email fields hold the other party's address (the sender for mail from outside,
//! the recipients for a member's copy). What matches nothing is kept as unfiled for admins.

use std::collections::BTreeSet;

use mail_parser::{Address, HeaderValue, MessageParser};
use serde_json::json;
use uuid::Uuid;

use crate::app::Services;
use crate::definitions::FieldKind;
use crate::domain::new_id;
use crate::error::{Error, Result};
use crate::mail::receive::{Envelope, Inbox, Refusal};
use crate::store::emails::{self as rows, EmailRow, Link};
use crate::store::write::{Sharing, committed};

/// Most records one message is filed on.
const MAX_LINKS: usize = 20;
/// Most records of each entity one address is matched to.
const MATCHES_PER_ADDRESS: u64 = 5;

/// A new inbound address token: 20 hex digits from the OS generator (80 bits).
pub fn new_token() -> String {
    crate::auth::random_secret()[..20].to_owned()
}

/// The workspace slug and token of an inbound address on `domain`, if it is one.
fn parse_address<'a>(address: &'a str, domain: &str) -> Option<(&'a str, &'a str)> {
    let (local, host) = address.rsplit_once('@')?;
    if !host.eq_ignore_ascii_case(domain) {
        return None;
    }
    let (slug, token) = local.split_once('+')?;
    (!slug.is_empty() && !token.is_empty()).then_some((slug, token))
}

/// Takes mail for the workspaces' inbound addresses.
#[derive(Debug, Clone)]
pub struct Desk {
    /// The services (database, definitions).
    pub services: Services,
}

impl Desk {
    /// The workspace an inbound address leads to (`None`: no such address, or an old token).
    async fn workspace_of(&self, address: &str) -> Result<Option<Uuid>> {
        let domain = self.services.config().inbound_domain();
        let Some((slug, token)) = parse_address(address, &domain) else {
            return Ok(None);
        };
        let conn = self.services.db().conn();
        let Some(inbox) = rows::inbox_by_token(conn, &token.to_ascii_lowercase()).await? else {
            return Ok(None);
        };
        let workspace = crate::store::workspaces::find(conn, inbox.workspace_id).await?;
        Ok(workspace
            .filter(|w| w.slug.eq_ignore_ascii_case(slug))
            .map(|w| w.id))
    }

    /// Files one message in the workspace; false when it was there already (a redelivery).
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn file(&self, workspace_id: Uuid, raw: &[u8]) -> Result<bool> {
        let message = MessageParser::default()
            .parse(raw)
            .ok_or_else(|| Error::invalid("/message", "not_a_message", "not an email message"))?;
        let Some((ctx, snapshot)) = crate::workflows::runtime::system_context(
            self.services.db(),
            self.services.registry(),
            workspace_id,
            None,
        )
        .await?
        else {
            return Ok(false);
        };
        let conn = self.services.db().conn();
        let addresses = |found: Option<&Address<'_>>| -> Vec<(String, String)> {
            found
                .map(|a| a.clone().into_list())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|a| {
                    let address = a.address.as_deref()?.trim().to_lowercase();
                    let name = a.name.as_deref().unwrap_or_default().trim().to_owned();
                    address.contains('@').then_some((address, name))
                })
                .collect()
        };
        let from = addresses(message.from()).into_iter().next();
        let (from_address, from_name) = from.unwrap_or_default();
        let to = addresses(message.to());
        let cc = addresses(message.cc());
        let domain = self.services.config().inbound_domain();
        // Our own inbound addresses are where the message came in, not whom it is about.
        let outside = |list: &[(String, String)]| -> Vec<String> {
            list.iter()
                .filter(|(a, _)| parse_address(a, &domain).is_none())
                .map(|(a, _)| a.clone())
                .collect()
        };
        let members = crate::store::workspaces::list_members(conn, workspace_id).await?;
        let member = members
            .iter()
            .find(|m| m.email.eq_ignore_ascii_case(&from_address));
        let (direction, counterparts) = match member {
            // A member's BCC copy: it is about the people it went to.
            Some(_) => ("out", [outside(&to), outside(&cc)].concat()),
            None => ("in", vec![from_address.clone()]),
        };
        // The thread: our messages this one names.
        let mut named: Vec<String> = Vec::new();
        for header in [message.in_reply_to(), message.references()] {
            match header {
                HeaderValue::Text(id) => named.push(id.to_string()),
                HeaderValue::TextList(ids) => named.extend(ids.iter().map(ToString::to_string)),
                _ => {}
            }
        }
        named.truncate(50);
        let thread = rows::by_message_ids(conn, workspace_id, &named).await?;
        let replies_to = thread.iter().find(|e| e.direction == "out").map(|e| e.id);
        let thread_ids: Vec<Uuid> = thread.iter().map(|e| e.id).collect();
        let mut links: Vec<Link> = Vec::new();
        for (_, link) in rows::links_of(conn, &thread_ids).await? {
            if !links.contains(&link) {
                links.push(link);
            }
        }
        // The records whose email fields hold the other party's address.
        let unique: BTreeSet<String> = counterparts.into_iter().take(MAX_LINKS).collect();
        for model in snapshot.entities() {
            for field in model.fields.iter().filter(|f| f.kind == FieldKind::Email) {
                for address in &unique {
                    if links.len() >= MAX_LINKS {
                        break;
                    }
                    let query = json!({
                        "filter": {"field": field.key, "op": "eq", "value": address},
                        "limit": MATCHES_PER_ADDRESS,
                    });
                    let Ok(page) = self.services.records().list(&ctx, &model.key, &query).await
                    else {
                        continue;
                    };
                    for record in page.records {
                        let link = Link {
                            entity: model.key.clone(),
                            record_id: record.id,
                        };
                        if !links.contains(&link) && links.len() < MAX_LINKS {
                            links.push(link);
                        }
                    }
                }
            }
        }
        let body = message
            .body_text(0)
            .map(|b| b.into_owned())
            .unwrap_or_default();
        // Line breaks as the timeline shows them; trailing blank lines dropped.
        let body = body.replace("\r\n", "\n");
        let body: String = body.trim_end().chars().take(super::MAX_BODY).collect();
        let subject: String = message
            .subject()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(super::MAX_SUBJECT * 2)
            .collect();
        let now = self.services.clock().now();
        let id = new_id();
        let row = EmailRow {
            id,
            workspace_id,
            direction: direction.to_owned(),
            message_id: message
                .message_id()
                .map(|m| m.chars().take(250).collect())
                .unwrap_or_else(|| format!("{id}@received.invalid")),
            replies_to,
            from_address: from_address.chars().take(250).collect(),
            from_name: from_name.chars().take(250).collect(),
            recipients: json!({
                "to": to.iter().map(|(a, _)| a).collect::<Vec<_>>(),
                "cc": cc.iter().map(|(a, _)| a).collect::<Vec<_>>(),
            }),
            subject,
            body,
            template: None,
            sent_by: member.map(|m| m.account_id),
            status: if direction == "out" {
                "sent"
            } else {
                "received"
            }
            .to_owned(),
            error: None,
            created_at: now,
            sent_at: (direction == "out").then_some(now),
        };
        let tx = self.services.db().write(Sharing::Alone).await?;
        let filed = rows::insert(&tx, row, &links).await?;
        committed(tx.commit().await?)?;
        Ok(filed)
    }
}

#[async_trait::async_trait]
impl Inbox for Desk {
    async fn accepts(&self, address: &str) -> bool {
        matches!(self.workspace_of(address).await, Ok(Some(_)))
    }

    async fn deliver(&self, envelope: &Envelope, message: &[u8]) -> Result<(), Refusal> {
        let mut workspaces: Vec<Uuid> = Vec::new();
        for recipient in &envelope.recipients {
            match self.workspace_of(recipient).await {
                Ok(Some(id)) if !workspaces.contains(&id) => workspaces.push(id),
                Ok(_) => {}
                Err(e) => return Err(Refusal::Temporary(e.to_string())),
            }
        }
        for workspace in workspaces {
            match self.file(workspace, message).await {
                Ok(_) => {}
                Err(Error::Invalid { .. }) => {
                    return Err(Refusal::Permanent("not an email message".to_owned()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "filing an inbound email failed");
                    return Err(Refusal::Temporary("cannot file the message now".to_owned()));
                }
            }
        }
        Ok(())
    }
}

/// Takes inbound mail on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    services: Services,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let settings = crate::mail::receive::Settings {
        hostname: services.config().inbound_domain(),
        max_size: usize::try_from(services.config().inbound_max_bytes).unwrap_or(usize::MAX),
    };
    crate::mail::receive::serve(
        listener,
        std::sync::Arc::new(Desk { services }),
        settings,
        shutdown,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_addresses_name_a_workspace_and_a_token() {
        assert_eq!(
            parse_address("demo+abc123@In.Example.com", "in.example.com"),
            Some(("demo", "abc123"))
        );
        assert_eq!(parse_address("demo@in.example.com", "in.example.com"), None);
        assert_eq!(parse_address("demo+x@other.com", "in.example.com"), None);
        assert_eq!(parse_address("+x@in.example.com", "in.example.com"), None);
        let token = new_token();
        assert_eq!(token.len(), 20);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
