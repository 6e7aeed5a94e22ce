//! Queries on `webhooks`.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::Conn;
use super::entities::webhook;
use crate::error::Result;

pub use webhook::Model as WebhookRow;

/// Stores a new subscription.
///
/// # Errors
/// `Error::Db`.
pub async fn insert(conn: &impl Conn, row: WebhookRow) -> Result<()> {
    webhook::ActiveModel::from(row).insert(conn).await?;
    Ok(())
}

/// Replaces a subscription's row.
///
/// # Errors
/// `Error::Db`.
pub async fn update(conn: &impl Conn, row: WebhookRow) -> Result<()> {
    webhook::ActiveModel::from(row)
        .reset_all()
        .update(conn)
        .await?;
    Ok(())
}

/// The workspace's subscriptions, oldest first.
///
/// # Errors
/// `Error::Db`.
pub async fn of_workspace(conn: &impl Conn, workspace_id: Uuid) -> Result<Vec<WebhookRow>> {
    Ok(webhook::Entity::find()
        .filter(webhook::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(webhook::Column::CreatedAt)
        .all(conn)
        .await?)
}

/// One subscription (of any workspace: deliveries look theirs up by id).
///
/// # Errors
/// `Error::Db`.
pub async fn find(conn: &impl Conn, id: Uuid) -> Result<Option<WebhookRow>> {
    Ok(webhook::Entity::find_by_id(id).one(conn).await?)
}

/// Deletes a subscription.
///
/// # Errors
/// `Error::Db`.
pub async fn delete(conn: &impl Conn, id: Uuid) -> Result<()> {
    webhook::Entity::delete_by_id(id).exec(conn).await?;
    Ok(())
}
