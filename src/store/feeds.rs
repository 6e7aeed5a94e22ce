//! Queries on `calendar_feeds`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::Conn;
use super::entities::calendar_feed;
use crate::error::Result;

pub use calendar_feed::Model as FeedRow;

/// Stores a new feed address.
///
/// # Errors
/// `Error::Db`.
pub async fn insert(conn: &impl Conn, row: FeedRow) -> Result<()> {
    calendar_feed::ActiveModel::from(row).insert(conn).await?;
    Ok(())
}

/// Revokes a member's live feed addresses; returns how many.
///
/// # Errors
/// `Error::Db`.
pub async fn revoke(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64> {
    Ok(calendar_feed::Entity::update_many()
        .col_expr(calendar_feed::Column::RevokedAt, Expr::value(Some(now)))
        .filter(calendar_feed::Column::WorkspaceId.eq(workspace_id))
        .filter(calendar_feed::Column::AccountId.eq(account_id))
        .filter(calendar_feed::Column::RevokedAt.is_null())
        .exec(conn)
        .await?
        .rows_affected)
}

/// A member's live feed, if any.
///
/// # Errors
/// `Error::Db`.
pub async fn live_of(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
) -> Result<Option<FeedRow>> {
    Ok(calendar_feed::Entity::find()
        .filter(calendar_feed::Column::WorkspaceId.eq(workspace_id))
        .filter(calendar_feed::Column::AccountId.eq(account_id))
        .filter(calendar_feed::Column::RevokedAt.is_null())
        .order_by_desc(calendar_feed::Column::CreatedAt)
        .one(conn)
        .await?)
}

/// The feed with this secret hash (revoked or not).
///
/// # Errors
/// `Error::Db`.
pub async fn by_hash(conn: &impl Conn, secret_hash: &str) -> Result<Option<FeedRow>> {
    Ok(calendar_feed::Entity::find()
        .filter(calendar_feed::Column::SecretHash.eq(secret_hash))
        .one(conn)
        .await?)
}

/// Notes when a feed was last read.
///
/// # Errors
/// `Error::Db`.
pub async fn touch(conn: &impl Conn, id: Uuid, now: DateTime<Utc>) -> Result<()> {
    calendar_feed::Entity::update_many()
        .col_expr(calendar_feed::Column::LastReadAt, Expr::value(Some(now)))
        .filter(calendar_feed::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}
