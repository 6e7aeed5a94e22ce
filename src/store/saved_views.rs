//! Queries on `saved_views`.

use sea_orm::sea_query::Condition;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::Conn;
use super::entities::saved_view;
use crate::error::Result;

pub use saved_view::Model as SavedViewRow;

/// Stores a saved view.
///
/// # Errors
/// `Error::Db`.
pub async fn insert(conn: &impl Conn, row: SavedViewRow) -> Result<()> {
    saved_view::ActiveModel::from(row).insert(conn).await?;
    Ok(())
}

/// The views of an entity a member sees: their own and the shared ones, oldest first.
///
/// # Errors
/// `Error::Db`.
pub async fn visible_to(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity: &str,
    account_id: Uuid,
) -> Result<Vec<SavedViewRow>> {
    Ok(saved_view::Entity::find()
        .filter(saved_view::Column::WorkspaceId.eq(workspace_id))
        .filter(saved_view::Column::Entity.eq(entity))
        .filter(
            Condition::any()
                .add(saved_view::Column::AccountId.eq(account_id))
                .add(saved_view::Column::Shared.eq(true)),
        )
        .order_by_asc(saved_view::Column::CreatedAt)
        .all(conn)
        .await?)
}

/// One view of the workspace.
///
/// # Errors
/// `Error::Db`.
pub async fn find(conn: &impl Conn, workspace_id: Uuid, id: Uuid) -> Result<Option<SavedViewRow>> {
    Ok(saved_view::Entity::find_by_id(id)
        .filter(saved_view::Column::WorkspaceId.eq(workspace_id))
        .one(conn)
        .await?)
}

/// Deletes one view.
///
/// # Errors
/// `Error::Db`.
pub async fn delete(conn: &impl Conn, id: Uuid) -> Result<()> {
    saved_view::Entity::delete_by_id(id).exec(conn).await?;
    Ok(())
}
