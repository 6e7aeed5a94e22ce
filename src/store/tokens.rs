//! Queries on `api_tokens`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::Conn;
use super::entities::{account, api_token};
use crate::error::Result;

pub use api_token::Model as TokenRow;

/// Stores a new token.
///
/// # Errors
/// `Error::Db`.
pub async fn insert(conn: &impl Conn, row: TokenRow) -> Result<TokenRow> {
    Ok(api_token::ActiveModel {
        id: Set(row.id),
        workspace_id: Set(row.workspace_id),
        account_id: Set(row.account_id),
        name: Set(row.name),
        prefix: Set(row.prefix),
        secret_hash: Set(row.secret_hash),
        created_at: Set(row.created_at),
        expires_at: Set(row.expires_at),
        last_used_at: Set(row.last_used_at),
        revoked_at: Set(row.revoked_at),
        role: Set(row.role),
    }
    .insert(conn)
    .await?)
}

/// The token with this secret hash, if its account is active (one query).
///
/// # Errors
/// `Error::Db`.
pub async fn find_by_hash_of_active_account(
    conn: &impl Conn,
    secret_hash: &str,
) -> Result<Option<TokenRow>> {
    Ok(api_token::Entity::find()
        .join(
            JoinType::InnerJoin,
            api_token::Entity::belongs_to(account::Entity)
                .from(api_token::Column::AccountId)
                .to(account::Column::Id)
                .into(),
        )
        .filter(api_token::Column::SecretHash.eq(secret_hash))
        .filter(account::Column::IsActive.eq(true))
        .one(conn)
        .await?)
}

/// The tokens of a workspace, newest first (revoked ones included, marked).
///
/// # Errors
/// `Error::Db`.
pub async fn list(conn: &impl Conn, workspace_id: Uuid) -> Result<Vec<TokenRow>> {
    Ok(api_token::Entity::find()
        .filter(api_token::Column::WorkspaceId.eq(workspace_id))
        .order_by_desc(api_token::Column::CreatedAt)
        .all(conn)
        .await?)
}

/// Revokes a token of a workspace; false when there is no such live token.
///
/// # Errors
/// `Error::Db`.
pub async fn revoke(
    conn: &impl Conn,
    workspace_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool> {
    let result = api_token::Entity::update_many()
        .col_expr(api_token::Column::RevokedAt, Some(now).into())
        .filter(api_token::Column::Id.eq(id))
        .filter(api_token::Column::WorkspaceId.eq(workspace_id))
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    super::access_changed();
    Ok(result.rows_affected > 0)
}

/// Records that a token was used.
///
/// # Errors
/// `Error::Db`.
pub async fn touch(conn: &impl Conn, id: Uuid, now: DateTime<Utc>) -> Result<()> {
    api_token::Entity::update_many()
        .col_expr(api_token::Column::LastUsedAt, Some(now).into())
        .filter(api_token::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}
