//! Queries on `form_links`.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::Conn;
use super::entities::form_link;
use crate::error::Result;

pub use form_link::Model as FormLinkRow;

/// Stores a new link.
///
/// # Errors
/// `Error::Db`.
pub async fn insert(conn: &impl Conn, row: FormLinkRow) -> Result<()> {
    form_link::ActiveModel::from(row).insert(conn).await?;
    Ok(())
}

/// The link whose secret hashes to `secret_hash`.
///
/// # Errors
/// `Error::Db`.
pub async fn by_secret(conn: &impl Conn, secret_hash: &str) -> Result<Option<FormLinkRow>> {
    Ok(form_link::Entity::find()
        .filter(form_link::Column::SecretHash.eq(secret_hash))
        .one(conn)
        .await?)
}

/// The links of a workspace's form, oldest first.
///
/// # Errors
/// `Error::Db`.
pub async fn of_form(conn: &impl Conn, workspace_id: Uuid, form: &str) -> Result<Vec<FormLinkRow>> {
    Ok(form_link::Entity::find()
        .filter(form_link::Column::WorkspaceId.eq(workspace_id))
        .filter(form_link::Column::Form.eq(form))
        .order_by_asc(form_link::Column::CreatedAt)
        .all(conn)
        .await?)
}

/// Turns a link of the workspace off; returns whether one was.
///
/// # Errors
/// `Error::Db`.
pub async fn disable(conn: &impl Conn, workspace_id: Uuid, id: Uuid) -> Result<bool> {
    let result = form_link::Entity::update_many()
        .col_expr(
            form_link::Column::Enabled,
            sea_orm::sea_query::Expr::value(false),
        )
        .filter(form_link::Column::WorkspaceId.eq(workspace_id))
        .filter(form_link::Column::Id.eq(id))
        .filter(form_link::Column::Enabled.eq(true))
        .exec(conn)
        .await?;
    Ok(result.rows_affected > 0)
}
