//! Queries on `emails`, `email_links` and `mail_inboxes`.

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use super::Conn;
use super::entities::{email, email_link, mail_inbox};
use crate::error::Result;

pub use email::Model as EmailRow;
pub use mail_inbox::Model as InboxRow;

/// A record an email is filed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The entity key.
    pub entity: String,
    /// The record.
    pub record_id: Uuid,
}

/// Stores an email filed on `links`; returns false (storing nothing) when the workspace
/// already has a message with its Message-ID.
///
/// # Errors
/// `Error::Db`.
pub async fn insert(conn: &impl Conn, row: EmailRow, links: &[Link]) -> Result<bool> {
    let (id, workspace_id) = (row.id, row.workspace_id);
    let inserted = email::Entity::insert(email::ActiveModel::from(row))
        .on_conflict(
            OnConflict::columns([email::Column::WorkspaceId, email::Column::MessageId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    if inserted == 0 {
        return Ok(false);
    }
    for link in links {
        email_link::ActiveModel::from(email_link::Model {
            email_id: id,
            entity: link.entity.clone(),
            record_id: link.record_id,
            workspace_id,
        })
        .insert(conn)
        .await?;
    }
    Ok(true)
}

/// The emails filed on a record, newest first (at most `limit`).
///
/// # Errors
/// `Error::Db`.
pub async fn of_record(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity: &str,
    record_id: Uuid,
    limit: u64,
) -> Result<Vec<EmailRow>> {
    let filed = email_link::Entity::find()
        .select_only()
        .column(email_link::Column::EmailId)
        .filter(email_link::Column::WorkspaceId.eq(workspace_id))
        .filter(email_link::Column::Entity.eq(entity))
        .filter(email_link::Column::RecordId.eq(record_id))
        .into_query();
    Ok(email::Entity::find()
        .filter(email::Column::WorkspaceId.eq(workspace_id))
        .filter(email::Column::Id.in_subquery(filed))
        .order_by_desc(email::Column::CreatedAt)
        .order_by_desc(email::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}

/// One email of a workspace.
///
/// # Errors
/// `Error::Db`.
pub async fn find(conn: &impl Conn, workspace_id: Uuid, id: Uuid) -> Result<Option<EmailRow>> {
    Ok(email::Entity::find_by_id(id)
        .filter(email::Column::WorkspaceId.eq(workspace_id))
        .one(conn)
        .await?)
}

/// The records each of the emails `ids` is filed on.
///
/// # Errors
/// `Error::Db`.
pub async fn links_of(conn: &impl Conn, ids: &[Uuid]) -> Result<Vec<(Uuid, Link)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(email_link::Entity::find()
        .filter(email_link::Column::EmailId.is_in(ids.iter().copied()))
        .all(conn)
        .await?
        .into_iter()
        .map(|l| {
            (
                l.email_id,
                Link {
                    entity: l.entity,
                    record_id: l.record_id,
                },
            )
        })
        .collect())
}

/// The workspace's emails with one of `message_ids` (the thread a reply names).
///
/// # Errors
/// `Error::Db`.
pub async fn by_message_ids(
    conn: &impl Conn,
    workspace_id: Uuid,
    message_ids: &[String],
) -> Result<Vec<EmailRow>> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(email::Entity::find()
        .filter(email::Column::WorkspaceId.eq(workspace_id))
        .filter(email::Column::MessageId.is_in(message_ids.iter().cloned()))
        .limit(50)
        .all(conn)
        .await?)
}

/// Received emails filed on no record (nobody matched), newest first.
///
/// # Errors
/// `Error::Db`.
pub async fn unfiled(conn: &impl Conn, workspace_id: Uuid, limit: u64) -> Result<Vec<EmailRow>> {
    let filed = email_link::Entity::find()
        .select_only()
        .column(email_link::Column::EmailId)
        .filter(email_link::Column::WorkspaceId.eq(workspace_id))
        .into_query();
    Ok(email::Entity::find()
        .filter(email::Column::WorkspaceId.eq(workspace_id))
        .filter(email::Column::Id.not_in_subquery(filed))
        .order_by_desc(email::Column::CreatedAt)
        .order_by_desc(email::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}

/// Files an email on more records (those already there are kept).
///
/// # Errors
/// `Error::Db`.
pub async fn add_links(
    conn: &impl Conn,
    workspace_id: Uuid,
    email_id: Uuid,
    links: &[Link],
) -> Result<()> {
    for link in links {
        email_link::Entity::insert(email_link::ActiveModel::from(email_link::Model {
            email_id,
            entity: link.entity.clone(),
            record_id: link.record_id,
            workspace_id,
        }))
        .on_conflict(
            OnConflict::columns([
                email_link::Column::EmailId,
                email_link::Column::Entity,
                email_link::Column::RecordId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}

/// The outbox key of the email `id`'s delivery job (unscoped).
pub fn job_key(id: Uuid) -> String {
    format!("email:{id}")
}

/// Records the outcome of sending a queued email (`sent`, or `failed` with why).
///
/// # Errors
/// `Error::Db`.
pub async fn set_status(
    conn: &impl Conn,
    id: Uuid,
    status: &str,
    error: Option<String>,
    sent_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<()> {
    email::Entity::update_many()
        .col_expr(email::Column::Status, Expr::value(status))
        .col_expr(email::Column::Error, Expr::value(error))
        .col_expr(email::Column::SentAt, Expr::value(sent_at))
        .filter(email::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Removes the records `ids` of an entity from their emails, and deletes the emails then filed
/// nowhere (the records were purged: their correspondence goes with them, while what is also
/// filed elsewhere stays there); with `whole`, deletes every email filed on them wherever else
/// it is filed (the person was erased: nothing of their mail may remain).
///
/// # Errors
/// `Error::Db`.
pub async fn delete_of_records(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity: &str,
    ids: &[Uuid],
    whole: bool,
) -> Result<Vec<Uuid>> {
    let mut deleted = Vec::new();
    for chunk in ids.chunks(500) {
        let touched: Vec<Uuid> = email_link::Entity::find()
            .filter(email_link::Column::WorkspaceId.eq(workspace_id))
            .filter(email_link::Column::Entity.eq(entity))
            .filter(email_link::Column::RecordId.is_in(chunk.iter().copied()))
            .all(conn)
            .await?
            .into_iter()
            .map(|l| l.email_id)
            .collect();
        if touched.is_empty() {
            continue;
        }
        email_link::Entity::delete_many()
            .filter(email_link::Column::WorkspaceId.eq(workspace_id))
            .filter(email_link::Column::Entity.eq(entity))
            .filter(email_link::Column::RecordId.is_in(chunk.iter().copied()))
            .exec(conn)
            .await?;
        let still_filed: Vec<Uuid> = if whole {
            Vec::new()
        } else {
            email_link::Entity::find()
                .filter(email_link::Column::EmailId.is_in(touched.iter().copied()))
                .all(conn)
                .await?
                .into_iter()
                .map(|l| l.email_id)
                .collect()
        };
        let orphans: Vec<Uuid> = touched
            .into_iter()
            .filter(|id| !still_filed.contains(id))
            .collect();
        if !orphans.is_empty() {
            email::Entity::delete_many()
                .filter(email::Column::Id.is_in(orphans.iter().copied()))
                .exec(conn)
                .await?;
            deleted.extend(orphans);
        }
    }
    Ok(deleted)
}

/// How many emails a member sent from records of a workspace since `since`.
///
/// # Errors
/// `Error::Db`.
pub async fn sent_since(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<u64> {
    use sea_orm::PaginatorTrait;
    Ok(email::Entity::find()
        .filter(email::Column::WorkspaceId.eq(workspace_id))
        .filter(email::Column::SentBy.eq(account_id))
        .filter(email::Column::CreatedAt.gte(since))
        .filter(email::Column::Source.eq("composed"))
        .count(conn)
        .await?)
}

/// The workspace's inbound address token, if it has one.
///
/// # Errors
/// `Error::Db`.
pub async fn inbox_of(conn: &impl Conn, workspace_id: Uuid) -> Result<Option<InboxRow>> {
    Ok(mail_inbox::Entity::find_by_id(workspace_id)
        .one(conn)
        .await?)
}

/// The workspace whose inbound address has `token`.
///
/// # Errors
/// `Error::Db`.
pub async fn inbox_by_token(conn: &impl Conn, token: &str) -> Result<Option<InboxRow>> {
    Ok(mail_inbox::Entity::find()
        .filter(mail_inbox::Column::Token.eq(token))
        .one(conn)
        .await?)
}

/// Gives the workspace the inbound token `row.token` unless it has one (`replace`: always).
///
/// # Errors
/// `Error::Db`.
pub async fn put_inbox(conn: &impl Conn, row: InboxRow, replace: bool) -> Result<()> {
    let mut conflict = OnConflict::column(mail_inbox::Column::WorkspaceId);
    if replace {
        conflict.update_columns([
            mail_inbox::Column::Token,
            mail_inbox::Column::Secret,
            mail_inbox::Column::CreatedAt,
        ]);
    } else {
        conflict.do_nothing();
    }
    mail_inbox::Entity::insert(mail_inbox::ActiveModel::from(row))
        .on_conflict(conflict.to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}
