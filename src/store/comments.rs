//! Queries on `comments` and `comment_revisions`.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::Conn;
use super::entities::{comment, comment_revision};
use crate::error::Result;

pub use comment::Model as CommentRow;
pub use comment_revision::Model as RevisionRow;

/// Stores a new comment.
///
/// # Errors
/// `Error::Db`.
pub async fn insert(conn: &impl Conn, row: CommentRow) -> Result<()> {
    comment::ActiveModel::from(row).insert(conn).await?;
    Ok(())
}

/// Replaces a comment's row if it still has version `expected`, keeping what it was in a
/// revision; returns whether it did (another change came first otherwise).
///
/// # Errors
/// `Error::Db`.
pub async fn replace(
    conn: &impl Conn,
    row: CommentRow,
    expected: i64,
    revision: RevisionRow,
) -> Result<bool> {
    use sea_orm::sea_query::Expr;
    let changed = comment::Entity::update_many()
        .col_expr(comment::Column::Body, Expr::value(row.body.clone()))
        .col_expr(comment::Column::Mentions, Expr::value(row.mentions.clone()))
        .col_expr(comment::Column::Version, Expr::value(row.version))
        .col_expr(comment::Column::EditedAt, Expr::value(row.edited_at))
        .col_expr(comment::Column::DeletedAt, Expr::value(row.deleted_at))
        .col_expr(comment::Column::DeletedBy, Expr::value(row.deleted_by))
        .filter(comment::Column::Id.eq(row.id))
        .filter(comment::Column::Version.eq(expected))
        .exec(conn)
        .await?
        .rows_affected;
    if changed == 0 {
        return Ok(false);
    }
    comment_revision::ActiveModel::from(revision)
        .insert(conn)
        .await?;
    Ok(true)
}

/// One comment of a workspace.
///
/// # Errors
/// `Error::Db`.
pub async fn find(conn: &impl Conn, workspace_id: Uuid, id: Uuid) -> Result<Option<CommentRow>> {
    Ok(comment::Entity::find_by_id(id)
        .filter(comment::Column::WorkspaceId.eq(workspace_id))
        .one(conn)
        .await?)
}

/// The comments on a record, oldest first.
///
/// # Errors
/// `Error::Db`.
pub async fn of_record(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity: &str,
    record_id: Uuid,
) -> Result<Vec<CommentRow>> {
    Ok(comment::Entity::find()
        .filter(comment::Column::WorkspaceId.eq(workspace_id))
        .filter(comment::Column::Entity.eq(entity))
        .filter(comment::Column::RecordId.eq(record_id))
        .order_by_asc(comment::Column::CreatedAt)
        .order_by_asc(comment::Column::Id)
        .all(conn)
        .await?)
}

/// A comment's earlier bodies, oldest first.
///
/// # Errors
/// `Error::Db`.
pub async fn revisions(conn: &impl Conn, comment_id: Uuid) -> Result<Vec<RevisionRow>> {
    Ok(comment_revision::Entity::find()
        .filter(comment_revision::Column::CommentId.eq(comment_id))
        .order_by_asc(comment_revision::Column::ChangedAt)
        .order_by_asc(comment_revision::Column::Id)
        .all(conn)
        .await?)
}

/// Deletes every comment (and its revisions) on the records `ids` of an entity: the records
/// were purged or erased, and what was said about them goes with them.
///
/// # Errors
/// `Error::Db`.
pub async fn delete_of_records(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity: &str,
    ids: &[Uuid],
) -> Result<()> {
    for chunk in ids.chunks(500) {
        let doomed: Vec<Uuid> = comment::Entity::find()
            .filter(comment::Column::WorkspaceId.eq(workspace_id))
            .filter(comment::Column::Entity.eq(entity))
            .filter(comment::Column::RecordId.is_in(chunk.iter().copied()))
            .all(conn)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        if doomed.is_empty() {
            continue;
        }
        comment_revision::Entity::delete_many()
            .filter(comment_revision::Column::CommentId.is_in(doomed.iter().copied()))
            .exec(conn)
            .await?;
        comment::Entity::delete_many()
            .filter(comment::Column::Id.is_in(doomed))
            .exec(conn)
            .await?;
    }
    Ok(())
}
