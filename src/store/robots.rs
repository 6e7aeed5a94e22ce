//! Queries on `chat_robots`.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::Conn;
use super::entities::chat_robot;
use crate::error::Result;

pub use chat_robot::Model as RobotRow;

/// Stores a new robot.
///
/// # Errors
/// `Error::Db` (a key taken meanwhile is a unique violation).
pub async fn insert(conn: &impl Conn, row: RobotRow) -> Result<()> {
    chat_robot::ActiveModel::from(row).insert(conn).await?;
    Ok(())
}

/// Replaces a robot's row.
///
/// # Errors
/// `Error::Db`.
pub async fn update(conn: &impl Conn, row: RobotRow) -> Result<()> {
    chat_robot::ActiveModel::from(row)
        .reset_all()
        .update(conn)
        .await?;
    Ok(())
}

/// The workspace's robots by key.
///
/// # Errors
/// `Error::Db`.
pub async fn of_workspace(conn: &impl Conn, workspace_id: Uuid) -> Result<Vec<RobotRow>> {
    Ok(chat_robot::Entity::find()
        .filter(chat_robot::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(chat_robot::Column::Key)
        .all(conn)
        .await?)
}

/// A robot of the workspace by key.
///
/// # Errors
/// `Error::Db`.
pub async fn by_key(conn: &impl Conn, workspace_id: Uuid, key: &str) -> Result<Option<RobotRow>> {
    Ok(chat_robot::Entity::find()
        .filter(chat_robot::Column::WorkspaceId.eq(workspace_id))
        .filter(chat_robot::Column::Key.eq(key))
        .one(conn)
        .await?)
}

/// A robot by id (deliveries look theirs up by id).
///
/// # Errors
/// `Error::Db`.
pub async fn find(conn: &impl Conn, id: Uuid) -> Result<Option<RobotRow>> {
    Ok(chat_robot::Entity::find_by_id(id).one(conn).await?)
}

/// Deletes a robot.
///
/// # Errors
/// `Error::Db`.
pub async fn delete(conn: &impl Conn, id: Uuid) -> Result<()> {
    chat_robot::Entity::delete_by_id(id).exec(conn).await?;
    Ok(())
}
