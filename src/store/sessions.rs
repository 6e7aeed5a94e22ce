//! Queries on `sessions`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, JoinType, QueryFilter, QuerySelect, Set,
};

use super::Conn;
use super::entities::{account, session};
use crate::error::Result;

pub use session::Model as SessionRow;

/// Stores a new session.
///
/// # Errors
/// `Error::Db`.
pub async fn insert(conn: &impl Conn, row: SessionRow) -> Result<()> {
    session::ActiveModel {
        id_hash: Set(row.id_hash),
        account_id: Set(row.account_id),
        csrf_token: Set(row.csrf_token),
        created_at: Set(row.created_at),
        last_seen_at: Set(row.last_seen_at),
        expires_at: Set(row.expires_at),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// The session with this secret hash, if its account is active (one query).
///
/// # Errors
/// `Error::Db`.
pub async fn find_of_active_account(conn: &impl Conn, id_hash: &str) -> Result<Option<SessionRow>> {
    Ok(session::Entity::find()
        .join(
            JoinType::InnerJoin,
            session::Entity::belongs_to(account::Entity)
                .from(session::Column::AccountId)
                .to(account::Column::Id)
                .into(),
        )
        .filter(session::Column::IdHash.eq(id_hash))
        .filter(account::Column::IsActive.eq(true))
        .one(conn)
        .await?)
}

/// Records activity on a session (extends its idle window).
///
/// # Errors
/// `Error::Db`.
pub async fn touch(conn: &impl Conn, id_hash: &str, now: DateTime<Utc>) -> Result<()> {
    session::Entity::update_many()
        .col_expr(session::Column::LastSeenAt, now.into())
        .filter(session::Column::IdHash.eq(id_hash))
        .exec(conn)
        .await?;
    Ok(())
}

/// Ends a session.
///
/// # Errors
/// `Error::Db`.
pub async fn delete(conn: &impl Conn, id_hash: &str) -> Result<()> {
    session::Entity::delete_by_id(id_hash.to_owned())
        .exec(conn)
        .await?;
    super::access_changed();
    Ok(())
}

/// Ends every session of an account (after a password change).
///
/// # Errors
/// `Error::Db`.
pub async fn delete_for_account(
    conn: &impl Conn,
    account_id: uuid::Uuid,
    except_hash: Option<&str>,
) -> Result<()> {
    let mut query =
        session::Entity::delete_many().filter(session::Column::AccountId.eq(account_id));
    if let Some(keep) = except_hash {
        query = query.filter(session::Column::IdHash.ne(keep));
    }
    query.exec(conn).await?;
    super::access_changed();
    Ok(())
}

/// Deletes sessions past their absolute expiry or idle too long; returns how many.
///
/// # Errors
/// `Error::Db`.
pub async fn purge_expired(
    conn: &impl Conn,
    now: DateTime<Utc>,
    idle_cutoff: DateTime<Utc>,
) -> Result<u64> {
    let result = session::Entity::delete_many()
        .filter(
            session::Column::ExpiresAt
                .lte(now)
                .or(session::Column::LastSeenAt.lt(idle_cutoff)),
        )
        .exec(conn)
        .await?;
    super::access_changed();
    Ok(result.rows_affected)
}
