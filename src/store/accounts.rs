//! Queries on `accounts`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait as _};
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
        totp_secret: Set(row.totp_secret),
        totp_enabled_at: Set(row.totp_enabled_at),
        totp_last_step: Set(row.totp_last_step),
        totp_recovery: Set(row.totp_recovery),
        locale: Set(row.locale),
        seen_locale: Set(row.seen_locale),
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

/// Sets (or clears) the language an account chose for the UI.
///
/// # Errors
/// `Error::Db`.
pub async fn set_locale(
    conn: &impl Conn,
    id: Uuid,
    locale: Option<String>,
    now: DateTime<Utc>,
) -> Result<()> {
    let model = account::ActiveModel {
        id: Set(id),
        locale: Set(locale),
        updated_at: Set(now),
        ..Default::default()
    };
    model.update(conn).await?;
    Ok(())
}

/// Records the language someone signed in with (not a choice: their fallback language).
///
/// # Errors
/// `Error::Db`.
pub async fn set_seen_locale(conn: &impl Conn, id: Uuid, locale: &str) -> Result<()> {
    account::Entity::update_many()
        .col_expr(account::Column::SeenLocale, Expr::value(locale.to_owned()))
        .filter(account::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// The language to write to an account in: the one it chose, else the one it last signed in
/// with, else English.
pub fn language_of(row: &AccountRow) -> crate::render::i18n::Locale {
    row.locale
        .as_deref()
        .or(row.seen_locale.as_deref())
        .and_then(crate::render::i18n::Locale::from_tag)
        .unwrap_or(crate::render::i18n::Locale::En)
}

/// Sets (or clears) an account's two-factor secret, whether it is on, and its last used step.
///
/// # Errors
/// `Error::Db`.
pub async fn set_totp(
    conn: &impl Conn,
    id: Uuid,
    secret: Option<String>,
    enabled_at: Option<DateTime<Utc>>,
    last_step: Option<i64>,
) -> Result<()> {
    account::Entity::update_many()
        .col_expr(account::Column::TotpSecret, Expr::value(secret))
        .col_expr(account::Column::TotpEnabledAt, Expr::value(enabled_at))
        .col_expr(account::Column::TotpLastStep, Expr::value(last_step))
        .filter(account::Column::Id.eq(id))
        .exec(conn)
        .await?;
    super::access_changed();
    Ok(())
}

/// Stores an account's recovery codes (a JSON array of their hashes; none: no codes).
///
/// # Errors
/// `Error::Db`.
pub async fn set_recovery(conn: &impl Conn, id: Uuid, hashes: Option<String>) -> Result<()> {
    account::Entity::update_many()
        .col_expr(account::Column::TotpRecovery, Expr::value(hashes))
        .filter(account::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Replaces the recovery codes if they are still `old` (so one code cannot be used twice by two
/// concurrent sign-ins); false when they changed meanwhile.
///
/// # Errors
/// `Error::Db`.
pub async fn swap_recovery(conn: &impl Conn, id: Uuid, old: &str, new: String) -> Result<bool> {
    Ok(account::Entity::update_many()
        .col_expr(account::Column::TotpRecovery, Expr::value(Some(new)))
        .filter(account::Column::Id.eq(id))
        .filter(account::Column::TotpRecovery.eq(old))
        .exec(conn)
        .await?
        .rows_affected
        == 1)
}

/// Records that a two-factor step was used, unless it (or a later one) was already: false then,
/// so a code cannot be used twice even by two concurrent logins.
///
/// # Errors
/// `Error::Db`.
pub async fn use_totp_step(conn: &impl Conn, id: Uuid, step: i64) -> Result<bool> {
    Ok(account::Entity::update_many()
        .col_expr(account::Column::TotpLastStep, Expr::value(Some(step)))
        .filter(account::Column::Id.eq(id))
        .filter(
            account::Column::TotpLastStep
                .is_null()
                .or(account::Column::TotpLastStep.lt(step)),
        )
        .exec(conn)
        .await?
        .rows_affected
        == 1)
}

use super::entities::password_reset;
pub use super::entities::password_reset::Model as PasswordResetRow;

/// Stores a password-reset link.
///
/// # Errors
/// `Error::Db`.
pub async fn insert_reset(conn: &impl Conn, row: PasswordResetRow) -> Result<()> {
    password_reset::ActiveModel {
        id: Set(row.id),
        account_id: Set(row.account_id),
        token_hash: Set(row.token_hash),
        created_at: Set(row.created_at),
        expires_at: Set(row.expires_at),
        used_at: Set(row.used_at),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// How many reset links an account was sent since `since`.
///
/// # Errors
/// `Error::Db`.
pub async fn count_resets_since(conn: &impl Conn, id: Uuid, since: DateTime<Utc>) -> Result<u64> {
    Ok(password_reset::Entity::find()
        .filter(password_reset::Column::AccountId.eq(id))
        .filter(password_reset::Column::CreatedAt.gt(since))
        .count(conn)
        .await?)
}

/// The unused, unexpired reset link with this secret hash: (its id, its account).
///
/// # Errors
/// `Error::Db`.
pub async fn find_reset(
    conn: &impl Conn,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<(Uuid, Uuid)>> {
    Ok(password_reset::Entity::find()
        .filter(password_reset::Column::TokenHash.eq(token_hash))
        .filter(password_reset::Column::UsedAt.is_null())
        .filter(password_reset::Column::ExpiresAt.gt(now))
        .one(conn)
        .await?
        .map(|row| (row.id, row.account_id)))
}

/// Marks a reset link used; false when it was used meanwhile.
///
/// # Errors
/// `Error::Db`.
pub async fn mark_reset_used(conn: &impl Conn, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
    Ok(password_reset::Entity::update_many()
        .col_expr(password_reset::Column::UsedAt, Expr::value(Some(now)))
        .filter(password_reset::Column::Id.eq(id))
        .filter(password_reset::Column::UsedAt.is_null())
        .exec(conn)
        .await?
        .rows_affected
        == 1)
}
