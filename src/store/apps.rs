//! Queries on `installed_apps`.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use super::Conn;
use super::entities::installed_app;
use crate::error::Result;

pub use installed_app::Model as InstalledAppRow;

/// Records an installed app.
///
/// # Errors
/// `Error::Db`.
pub async fn insert(conn: &impl Conn, row: InstalledAppRow) -> Result<()> {
    installed_app::ActiveModel::from(row).insert(conn).await?;
    Ok(())
}

/// The apps of a workspace, oldest first.
///
/// # Errors
/// `Error::Db`.
pub async fn list(conn: &impl Conn, workspace_id: Uuid) -> Result<Vec<InstalledAppRow>> {
    Ok(installed_app::Entity::find()
        .filter(installed_app::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(installed_app::Column::InstalledAt)
        .order_by_asc(installed_app::Column::Id)
        .all(conn)
        .await?)
}

/// One app of a workspace.
///
/// # Errors
/// `Error::Db`.
pub async fn find(
    conn: &impl Conn,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Option<InstalledAppRow>> {
    Ok(installed_app::Entity::find_by_id(id)
        .filter(installed_app::Column::WorkspaceId.eq(workspace_id))
        .one(conn)
        .await?)
}

/// Moves an app to a new template version with its new base.
///
/// # Errors
/// `Error::Db`.
pub async fn upgrade(
    conn: &impl Conn,
    id: Uuid,
    version: &str,
    base: serde_json::Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    installed_app::ActiveModel {
        id: Set(id),
        version: Set(version.to_owned()),
        base: Set(base),
        upgraded_at: Set(Some(now)),
        ..Default::default()
    }
    .update(conn)
    .await?;
    Ok(())
}
