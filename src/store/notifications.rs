//! Queries on `notification_settings`, and the notifications a daily digest gathers.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::Conn;
use super::entities::{notification, notification_setting};
use crate::error::Result;

pub use notification_setting::Model as SettingsRow;

/// The stored settings of some members of a workspace (those who never saved any have none).
///
/// # Errors
/// `Error::Db`.
pub async fn settings_of(
    conn: &impl Conn,
    workspace_id: Uuid,
    accounts: &[Uuid],
) -> Result<Vec<SettingsRow>> {
    if accounts.is_empty() {
        return Ok(Vec::new());
    }
    Ok(notification_setting::Entity::find()
        .filter(notification_setting::Column::WorkspaceId.eq(workspace_id))
        .filter(notification_setting::Column::AccountId.is_in(accounts.iter().copied()))
        .all(conn)
        .await?)
}

/// Stores a member's settings (the digest's progress is kept).
///
/// # Errors
/// `Error::Db`.
pub async fn save(conn: &impl Conn, row: SettingsRow) -> Result<()> {
    notification_setting::Entity::insert(notification_setting::ActiveModel::from(row))
        .on_conflict(
            OnConflict::columns([
                notification_setting::Column::WorkspaceId,
                notification_setting::Column::AccountId,
            ])
            .update_columns([
                notification_setting::Column::Settings,
                notification_setting::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Sets a member's digest mark (the digest was just turned on: it starts from now).
///
/// # Errors
/// `Error::Db`.
pub async fn set_digest_mark(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
    at: DateTime<Utc>,
) -> Result<()> {
    notification_setting::Entity::update_many()
        .col_expr(
            notification_setting::Column::DigestSentAt,
            Expr::value(Some(at)),
        )
        .filter(notification_setting::Column::WorkspaceId.eq(workspace_id))
        .filter(notification_setting::Column::AccountId.eq(account_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// How many unread notifications a member has from `[from, to)`.
///
/// # Errors
/// `Error::Db`.
pub async fn count_unread_between(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<i64> {
    let count: Option<i64> = notification::Entity::find()
        .select_only()
        .column_as(notification::Column::Id.count(), "n")
        .filter(notification::Column::WorkspaceId.eq(workspace_id))
        .filter(notification::Column::AccountId.eq(account_id))
        .filter(notification::Column::ReadAt.is_null())
        .filter(notification::Column::CreatedAt.gte(from))
        .filter(notification::Column::CreatedAt.lt(to))
        .into_tuple()
        .one(conn)
        .await?;
    Ok(count.unwrap_or(0))
}

/// Every stored settings row of every workspace (the digest job picks those who want one).
///
/// # Errors
/// `Error::Db`.
pub async fn all_settings(conn: &impl Conn) -> Result<Vec<SettingsRow>> {
    Ok(notification_setting::Entity::find()
        .order_by_asc(notification_setting::Column::WorkspaceId)
        .order_by_asc(notification_setting::Column::AccountId)
        .all(conn)
        .await?)
}

/// Moves a member's digest mark to `at` if it still is `expected`; returns whether it did
/// (another worker sent this digest otherwise).
///
/// # Errors
/// `Error::Db`.
pub async fn advance_digest(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
    expected: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Result<bool> {
    let mut update = notification_setting::Entity::update_many()
        .col_expr(
            notification_setting::Column::DigestSentAt,
            Expr::value(Some(at)),
        )
        .filter(notification_setting::Column::WorkspaceId.eq(workspace_id))
        .filter(notification_setting::Column::AccountId.eq(account_id));
    update = match expected {
        Some(expected) => update.filter(notification_setting::Column::DigestSentAt.eq(expected)),
        None => update.filter(notification_setting::Column::DigestSentAt.is_null()),
    };
    Ok(update.exec(conn).await?.rows_affected == 1)
}

/// A member's unread notifications made in `[from, to)`, oldest first, at most `limit`.
///
/// # Errors
/// `Error::Db`.
pub async fn unread_between(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<notification::Model>> {
    Ok(notification::Entity::find()
        .filter(notification::Column::WorkspaceId.eq(workspace_id))
        .filter(notification::Column::AccountId.eq(account_id))
        .filter(notification::Column::ReadAt.is_null())
        .filter(notification::Column::CreatedAt.gte(from))
        .filter(notification::Column::CreatedAt.lt(to))
        .order_by_asc(notification::Column::CreatedAt)
        .limit(limit)
        .all(conn)
        .await?)
}

/// Deletes the notifications a comment's mentions made (the comment was deleted: its words
/// leave the inboxes too).
///
/// # Errors
/// `Error::Db`.
pub async fn delete_of_comment(
    conn: &impl Conn,
    workspace_id: Uuid,
    comment_id: Uuid,
) -> Result<u64> {
    Ok(notification::Entity::delete_many()
        .filter(notification::Column::WorkspaceId.eq(workspace_id))
        .filter(notification::Column::DedupeKey.starts_with(format!("mention:{comment_id}:")))
        .exec(conn)
        .await?
        .rows_affected)
}

/// Deletes every notification about the records `ids` of an entity (purged or erased: their
/// titles and the words about them go).
///
/// # Errors
/// `Error::Db`.
pub async fn delete_of_records(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity: &str,
    ids: &[Uuid],
) -> Result<()> {
    for chunk in ids.chunks(500) {
        notification::Entity::delete_many()
            .filter(notification::Column::WorkspaceId.eq(workspace_id))
            .filter(notification::Column::Entity.eq(entity))
            .filter(notification::Column::RecordId.is_in(chunk.iter().copied()))
            .exec(conn)
            .await?;
    }
    Ok(())
}
