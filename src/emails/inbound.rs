//! Inbound mail: each workspace has an address `<slug>+<token>@<inbound domain>` (the token is
//! a secret an admin can rotate); customers' replies reach it through the Reply-To of emails
//! sent from records. Each member also has a personal address `<slug>+<token>.<code>@…` (the
//! code an HMAC of the token and their account under a key the server never shows) to BCC from
//! their own mailbox: only mail to that address is filed as sent by them — a `From:` header
//! naming a member proves nothing, and nobody can work out a colleague's code. A
//! message is filed on the records its thread started on (In-Reply-To/References naming a
//! message we sent) and on the records whose email fields hold the other party's address (the
//! sender for mail from outside, the recipients for a member's copy). What matches nothing is
//! kept as unfiled for admins.

use std::collections::BTreeSet;

use hmac::{Hmac, Mac};
use mail_parser::{Address, HeaderValue, MessageParser};
use serde_json::json;
use sha2::{Digest, Sha256};
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

/// The code of a member's personal inbound address: 12 hex digits of an HMAC of the token and
/// their account under the workspace's secret key (a new token gives everyone a new address;
/// knowing the token and someone's account id is not enough to make theirs).
pub fn member_code(secret: &str, token: &str, account_id: Uuid) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(token.as_bytes());
    mac.update(b"\0");
    mac.update(account_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())[..12].to_owned()
}

/// An inbound address on `domain` taken apart: the workspace slug, the token, and a member's
/// code when it is a personal address.
fn parse_address<'a>(
    address: &'a str,
    domain: &str,
) -> Option<(&'a str, &'a str, Option<&'a str>)> {
    let (local, host) = address.rsplit_once('@')?;
    if !host.eq_ignore_ascii_case(domain) {
        return None;
    }
    let (slug, rest) = local.split_once('+')?;
    let (token, code) = match rest.split_once('.') {
        Some((token, code)) => (token, Some(code).filter(|c| !c.is_empty())?.into()),
        None => (rest, None),
    };
    (!slug.is_empty() && !token.is_empty()).then_some((slug, token, code))
}

/// Where an inbound address leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    /// The workspace.
    workspace_id: Uuid,
    /// The member whose personal address it is.
    member: Option<Uuid>,
}

/// Takes mail for the workspaces' inbound addresses.
#[derive(Debug, Clone)]
pub struct Desk {
    /// The services (database, definitions).
    pub services: Services,
}

impl Desk {
    /// Where an inbound address leads (`None`: no such address, an old token, or a code that
    /// is no current member's).
    async fn target_of(&self, address: &str) -> Result<Option<Target>> {
        let domain = self.services.config().inbound_domain();
        let Some((slug, token, code)) = parse_address(address, &domain) else {
            return Ok(None);
        };
        let token = token.to_ascii_lowercase();
        let conn = self.services.db().conn();
        let Some(inbox) = rows::inbox_by_token(conn, &token).await? else {
            return Ok(None);
        };
        let Some(workspace) = crate::store::workspaces::find(conn, inbox.workspace_id)
            .await?
            .filter(|w| w.slug.eq_ignore_ascii_case(slug))
        else {
            return Ok(None);
        };
        let member = match code {
            None => None,
            Some(code) => {
                let code = code.to_ascii_lowercase();
                let members = crate::store::workspaces::list_members(conn, workspace.id).await?;
                let Some(found) = members.iter().find(|m| {
                    crate::auth::same_secret(
                        &member_code(&inbox.secret, &token, m.account_id),
                        &code,
                    )
                }) else {
                    return Ok(None);
                };
                Some(found.account_id)
            }
        };
        Ok(Some(Target {
            workspace_id: workspace.id,
            member,
        }))
    }

    /// Files one message in the workspace (as a copy of what `member` sent, when it came to
    /// their personal address); false when it was there already (a redelivery).
    ///
    /// # Errors
    /// `Error::Invalid` (not a message), `Error::Db`.
    pub async fn file(&self, workspace_id: Uuid, member: Option<Uuid>, raw: &[u8]) -> Result<bool> {
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
        let answered = thread
            .iter()
            .find(|e| e.direction == "out" && e.source == "composed");
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
                    let page = match self.services.records().list(&ctx, &model.key, &query).await {
                        Ok(page) => page,
                        // An address no email field could hold (`root@localhost`) matches none.
                        Err(Error::Invalid { .. }) => continue,
                        Err(other) => return Err(other),
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
            source: "inbound".to_owned(),
            // Without a Message-ID the message's own bytes name it, so a redelivery is still
            // filed once.
            message_id: message
                .message_id()
                .map(|m| m.chars().take(250).collect())
                .unwrap_or_else(|| {
                    format!(
                        "{}@received.invalid",
                        &hex::encode(Sha256::digest(raw))[..32]
                    )
                }),
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
            sent_by: member,
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
        // The member who wrote the email this answers hears of the reply (mail from outside
        // only, on a record they can still read).
        let notice = match (direction, answered) {
            ("in", Some(original)) => self.reply_notice(original, &row, &links).await?,
            _ => None,
        };
        let tx = self.services.db().write(Sharing::Alone).await?;
        let filed = rows::insert(&tx, row, &links).await?;
        if filed && let Some((settings, notice)) = &notice {
            crate::notifications::deliver(
                &tx,
                self.services.clock(),
                self.services.mail_enabled(),
                settings,
                notice,
            )
            .await?;
        }
        committed(tx.commit().await?)?;
        Ok(filed)
    }
}

impl Desk {
    /// The notice telling the sender of `original` of the reply `reply`, in their language,
    /// about the first record of the thread they can read (`None`: they left the workspace or
    /// can read none of them).
    async fn reply_notice(
        &self,
        original: &EmailRow,
        reply: &EmailRow,
        links: &[Link],
    ) -> Result<Option<(crate::notifications::Settings, crate::notifications::Notice)>> {
        let Some(sender) = original.sent_by else {
            return Ok(None);
        };
        let db = self.services.db();
        let (Some(theirs), Some(account)) = (
            crate::workspaces::access_of(
                db,
                self.services.access_cache(),
                reply.workspace_id,
                sender,
            )
            .await?,
            crate::store::accounts::find(db.conn(), sender).await?,
        ) else {
            return Ok(None);
        };
        let ctx = crate::records::Context::for_member(&theirs, crate::records::Channel::Ui);
        let records = self.services.records();
        let mut about = None;
        for link in links {
            if records.can_read(&ctx, &link.entity, link.record_id).await? {
                about = Some(link.clone());
                break;
            }
        }
        let Some(about) = about else {
            return Ok(None);
        };
        let locale = crate::store::accounts::language_of(&account);
        let who = if !reply.from_name.is_empty() {
            reply.from_name.clone()
        } else if self.services.emails().masks_addresses(&ctx).await? {
            // Their role masks email fields: the address is masked here too.
            crate::access::mask(&json!(reply.from_address), true)
                .as_str()
                .unwrap_or("****")
                .to_owned()
        } else {
            reply.from_address.clone()
        };
        let settings = crate::notifications::settings_of(db.conn(), reply.workspace_id, &[sender])
            .await?
            .remove(&sender)
            .unwrap_or_default();
        let notice = crate::notifications::Notice {
            workspace_id: reply.workspace_id,
            account_id: sender,
            kind: crate::notifications::Kind::Reply,
            actor: None,
            title: locale
                .text("notifications.reply_title")
                .replace("{who}", &who)
                .replace("{subject}", &reply.subject),
            body: reply.body.chars().take(500).collect(),
            record: Some((about.entity.clone(), about.record_id)),
            link: Some(format!(
                "{}/w/{}/e/{}/{}#email-{}",
                self.services.config().public_url.trim_end_matches('/'),
                theirs.workspace.slug,
                about.entity,
                about.record_id,
                reply.id
            )),
            key: format!("reply:{}", reply.id),
            at: reply.created_at,
        };
        Ok(Some((settings, notice)))
    }
}

#[async_trait::async_trait]
impl Inbox for Desk {
    async fn accepts(&self, address: &str) -> Result<bool, Refusal> {
        match self.target_of(address).await {
            Ok(target) => Ok(target.is_some()),
            Err(e) => {
                tracing::warn!(error = %e, "looking up an inbound address failed");
                Err(Refusal::Temporary("cannot take mail now".to_owned()))
            }
        }
    }

    async fn deliver(&self, envelope: &Envelope, message: &[u8]) -> Result<(), Refusal> {
        let unavailable = |e: Error| {
            tracing::warn!(error = %e, "filing an inbound email failed");
            Refusal::Temporary("cannot file the message now".to_owned())
        };
        // One filing per workspace: a member's personal address makes it their copy.
        let mut targets: Vec<Target> = Vec::new();
        for recipient in &envelope.recipients {
            let Some(target) = self.target_of(recipient).await.map_err(unavailable)? else {
                continue;
            };
            match targets
                .iter_mut()
                .find(|t| t.workspace_id == target.workspace_id)
            {
                Some(known) => known.member = known.member.or(target.member),
                None => targets.push(target),
            }
        }
        for target in targets {
            match self.file(target.workspace_id, target.member, message).await {
                Ok(_) => {}
                Err(Error::Invalid { .. }) => {
                    return Err(Refusal::Permanent("not an email message".to_owned()));
                }
                Err(e) => return Err(unavailable(e)),
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
            Some(("demo", "abc123", None))
        );
        assert_eq!(
            parse_address("demo+abc123.0f1e2d3c4b5a@in.example.com", "in.example.com"),
            Some(("demo", "abc123", Some("0f1e2d3c4b5a")))
        );
        assert_eq!(
            parse_address("demo+abc123.@in.example.com", "in.example.com"),
            None
        );
        let someone = Uuid::from_u128(7);
        assert_eq!(member_code("key", "abc", someone).len(), 12);
        assert_ne!(
            member_code("key", "abc", someone),
            member_code("key", "abd", someone)
        );
        assert_ne!(
            member_code("key", "abc", someone),
            member_code("kez", "abc", someone)
        );
        assert_ne!(
            member_code("key", "abc", someone),
            member_code("key", "abc", Uuid::from_u128(8))
        );
        assert_eq!(parse_address("demo@in.example.com", "in.example.com"), None);
        assert_eq!(parse_address("demo+x@other.com", "in.example.com"), None);
        assert_eq!(parse_address("+x@in.example.com", "in.example.com"), None);
        let token = new_token();
        assert_eq!(token.len(), 20);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
