//! Queries on `definitions` and `definition_versions`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use super::Conn;
use super::entities::{definition, definition_version};
use crate::error::Result;

pub use definition::Model as DefinitionRow;
pub use definition_version::Model as VersionRow;

/// The definition of `kind` and `key` in a workspace.
///
/// # Errors
/// `Error::Db`.
pub async fn find(
    conn: &impl Conn,
    workspace_id: Uuid,
    kind: &str,
    key: &str,
) -> Result<Option<DefinitionRow>> {
    Ok(definition::Entity::find()
        .filter(definition::Column::WorkspaceId.eq(workspace_id))
        .filter(definition::Column::Kind.eq(kind))
        .filter(definition::Column::Key.eq(key))
        .one(conn)
        .await?)
}

/// The definitions of a workspace, optionally of one kind, by kind and key.
///
/// # Errors
/// `Error::Db`.
pub async fn list(
    conn: &impl Conn,
    workspace_id: Uuid,
    kind: Option<&str>,
) -> Result<Vec<DefinitionRow>> {
    let mut query =
        definition::Entity::find().filter(definition::Column::WorkspaceId.eq(workspace_id));
    if let Some(kind) = kind {
        query = query.filter(definition::Column::Kind.eq(kind));
    }
    Ok(query
        .order_by_asc(definition::Column::Kind)
        .order_by_asc(definition::Column::Key)
        .all(conn)
        .await?)
}

/// Inserts a new definition row (revision 1).
///
/// # Errors
/// `Error::Db` (a unique violation when another request created it first).
pub async fn insert(conn: &impl Conn, row: DefinitionRow) -> Result<DefinitionRow> {
    Ok(definition::ActiveModel {
        id: Set(row.id),
        workspace_id: Set(row.workspace_id),
        kind: Set(row.kind),
        key: Set(row.key),
        revision: Set(row.revision),
        draft: Set(row.draft),
        published_version: Set(row.published_version),
        latest_version: Set(row.latest_version),
        created_at: Set(row.created_at),
        created_by: Set(row.created_by),
        updated_at: Set(row.updated_at),
        updated_by: Set(row.updated_by),
    }
    .insert(conn)
    .await?)
}

/// What an update of a definition row changes; `None` leaves a column alone.
#[derive(Debug, Default)]
pub struct DefinitionChange {
    /// New draft (`Some(None)` clears it).
    pub draft: Option<Option<serde_json::Value>>,
    /// New published version pointer.
    pub published_version: Option<i32>,
    /// New latest version number.
    pub latest_version: Option<i32>,
}

/// Applies `change` only if the row is still at `expected_revision`, bumping the revision.
/// Returns false when another writer got there first (the caller answers 409).
///
/// # Errors
/// `Error::Db`.
pub async fn update_if_revision(
    conn: &impl Conn,
    id: Uuid,
    expected_revision: i64,
    change: DefinitionChange,
    by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<bool> {
    // A revision that cannot be incremented was never issued: it is simply stale.
    let Some(next_revision) = expected_revision.checked_add(1) else {
        return Ok(false);
    };
    let mut update = definition::Entity::update_many()
        .col_expr(definition::Column::Revision, Expr::value(next_revision))
        .col_expr(definition::Column::UpdatedAt, Expr::value(now))
        .col_expr(definition::Column::UpdatedBy, Expr::value(by));
    if let Some(draft) = change.draft {
        update = update.col_expr(definition::Column::Draft, Expr::value(draft));
    }
    if let Some(version) = change.published_version {
        update = update.col_expr(definition::Column::PublishedVersion, Expr::value(version));
    }
    if let Some(version) = change.latest_version {
        update = update.col_expr(definition::Column::LatestVersion, Expr::value(version));
    }
    let result = update
        .filter(definition::Column::Id.eq(id))
        .filter(definition::Column::Revision.eq(expected_revision))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Stores an immutable version.
///
/// # Errors
/// `Error::Db`.
pub async fn insert_version(conn: &impl Conn, row: VersionRow) -> Result<()> {
    definition_version::ActiveModel {
        definition_id: Set(row.definition_id),
        version: Set(row.version),
        document: Set(row.document),
        origin: Set(row.origin),
        created_at: Set(row.created_at),
        created_by: Set(row.created_by),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// One version of a definition.
///
/// # Errors
/// `Error::Db`.
pub async fn find_version(
    conn: &impl Conn,
    definition_id: Uuid,
    version: i32,
) -> Result<Option<VersionRow>> {
    Ok(
        definition_version::Entity::find_by_id((definition_id, version))
            .one(conn)
            .await?,
    )
}

/// Every version of a definition, newest first.
///
/// # Errors
/// `Error::Db`.
pub async fn list_versions(conn: &impl Conn, definition_id: Uuid) -> Result<Vec<VersionRow>> {
    Ok(definition_version::Entity::find()
        .filter(definition_version::Column::DefinitionId.eq(definition_id))
        .order_by_desc(definition_version::Column::Version)
        .all(conn)
        .await?)
}

/// A published definition as the live registry holds it.
#[derive(Debug, Clone)]
pub struct PublishedRow {
    /// The definition's id (an entity's record table is named by it).
    pub id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Its key.
    pub key: String,
    /// The published version number.
    pub version: i32,
    /// The published document.
    pub document: serde_json::Value,
}

/// Every published definition of a workspace (one query).
///
/// # Errors
/// `Error::Db`.
pub async fn published(conn: &impl Conn, workspace_id: Uuid) -> Result<Vec<PublishedRow>> {
    use definition::Column as D;
    use definition_version::Column as V;
    let query = Query::select()
        .column((definition::Entity, D::Id))
        .column((definition::Entity, D::Kind))
        .column((definition::Entity, D::Key))
        .column((definition_version::Entity, V::Version))
        .column((definition_version::Entity, V::Document))
        .from(definition_version::Entity)
        .inner_join(
            definition::Entity,
            Expr::col((definition::Entity, D::Id))
                .equals((definition_version::Entity, V::DefinitionId))
                .and(
                    Expr::col((definition::Entity, D::PublishedVersion))
                        .equals((definition_version::Entity, V::Version)),
                ),
        )
        .and_where(Expr::col((definition::Entity, D::WorkspaceId)).eq(workspace_id))
        .to_owned();
    let rows = conn.query_all(&query).await?;
    rows.into_iter()
        .map(|row| {
            Ok(PublishedRow {
                id: row.try_get("", "id")?,
                kind: row.try_get("", "kind")?,
                key: row.try_get("", "key")?,
                version: row.try_get("", "version")?,
                document: row.try_get("", "document")?,
            })
        })
        .collect()
}
