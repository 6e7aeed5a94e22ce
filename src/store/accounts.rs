//! Queries on `accounts`.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use uuid::Uuid;

use super::Conn;
use super::entities::account;
use crate::error::{Error, Result};

pub use account::Model as AccountRow;

/// Inserts an account; a taken email is a 409 at `/email`.
///
/// # Errors
/// `Error::Conflict` for a duplicate email, `Error::Db` otherwise.
pub async fn insert(conn: &impl Conn, row: AccountRow) -> Result<AccountRow> {
    let model = account::ActiveModel {
        id: Set(row.id),
        email: Set(row.email),
        name: Set(row.name),
        password_hash: Set(row.password_hash),
        is_active: Set(row.is_active),
        must_change_password: Set(row.must_change_password),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
    };
    model.insert(conn).await.map_err(|e| {
        if super::is_unique_violation(&e) {
            Error::conflict("/email", "taken", "an account with this email exists")
        } else {
            e.into()
        }
    })
}

/// The account with this (normalised) email.
///
/// # Errors
/// `Error::Db`.
pub async fn find_by_email(conn: &impl Conn, email: &str) -> Result<Option<AccountRow>> {
    Ok(account::Entity::find()
        .filter(account::Column::Email.eq(email))
        .one(conn)
        .await?)
}

/// The account with this id.
///
/// # Errors
/// `Error::Db`.
pub async fn find(conn: &impl Conn, id: Uuid) -> Result<Option<AccountRow>> {
    Ok(account::Entity::find_by_id(id).one(conn).await?)
}

/// How many accounts exist.
///
/// # Errors
/// `Error::Db`.
pub async fn count(conn: &impl Conn) -> Result<u64> {
    Ok(account::Entity::find().count(conn).await?)
}

/// Replaces the password hash and clears the must-change flag.
///
/// # Errors
/// `Error::Db`.
pub async fn set_password(
    conn: &impl Conn,
    id: Uuid,
    password_hash: String,
    now: DateTime<Utc>,
) -> Result<()> {
    let model = account::ActiveModel {
        id: Set(id),
        password_hash: Set(password_hash),
        must_change_password: Set(false),
        updated_at: Set(now),
        ..Default::default()
    };
    model.update(conn).await?;
    super::access_changed();
    Ok(())
}
