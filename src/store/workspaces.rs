//! Queries on `workspaces` and `memberships`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, JoinType, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, RelationDef, Set,
    sea_query::{Expr, OnConflict},
};
use uuid::Uuid;

use super::Conn;
use super::entities::{account, membership, workspace};
use crate::error::{Error, Result};

pub use membership::Model as MembershipRow;
pub use workspace::Model as WorkspaceRow;

/// Inserts a workspace; a taken slug is a 409 at `/slug`.
///
/// # Errors
/// `Error::Conflict` for a duplicate slug, `Error::Db` otherwise.
pub async fn insert(conn: &impl Conn, row: WorkspaceRow) -> Result<WorkspaceRow> {
    workspace::ActiveModel {
        id: Set(row.id),
        slug: Set(row.slug),
        name: Set(row.name),
        time_zone: Set(row.time_zone),
        calendar: Set(row.calendar),
        definitions_generation: Set(row.definitions_generation),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
    }
    .insert(conn)
    .await
    .map_err(|e| {
        if super::is_unique_violation(&e) {
            Error::conflict("/slug", "taken", "a workspace with this slug exists")
        } else {
            e.into()
        }
    })
}

/// The workspace with this slug.
///
/// # Errors
/// `Error::Db`.
pub async fn find_by_slug(conn: &impl Conn, slug: &str) -> Result<Option<WorkspaceRow>> {
    Ok(workspace::Entity::find()
        .filter(workspace::Column::Slug.eq(slug))
        .one(conn)
        .await?)
}

/// Every workspace.
///
/// # Errors
/// `Error::Db`.
pub async fn all(conn: &impl Conn) -> Result<Vec<WorkspaceRow>> {
    Ok(workspace::Entity::find()
        .order_by_asc(workspace::Column::Slug)
        .all(conn)
        .await?)
}

/// The workspace with this id.
///
/// # Errors
/// `Error::Db`.
pub async fn find(conn: &impl Conn, id: Uuid) -> Result<Option<WorkspaceRow>> {
    Ok(workspace::Entity::find_by_id(id).one(conn).await?)
}

/// Updates name, time zone and calendar.
///
/// # Errors
/// `Error::Db`.
pub async fn update_settings(
    conn: &impl Conn,
    id: Uuid,
    name: String,
    time_zone: String,
    calendar: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<WorkspaceRow> {
    let row = workspace::ActiveModel {
        id: Set(id),
        name: Set(name),
        time_zone: Set(time_zone),
        calendar: Set(calendar),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(conn)
    .await?;
    super::access_changed();
    Ok(row)
}

/// Takes the workspace row's write lock for the rest of the transaction (PostgreSQL row lock;
/// SQLite's write lock), so that checks made next cannot be raced by another writer.
///
/// # Errors
/// `Error::Db`.
pub async fn lock(conn: &impl Conn, id: Uuid, now: DateTime<Utc>) -> Result<()> {
    workspace::Entity::update_many()
        .col_expr(workspace::Column::UpdatedAt, Expr::value(now))
        .filter(workspace::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Increments the definitions generation (other processes reload their registry when it moves).
///
/// # Errors
/// `Error::Db`.
pub async fn bump_generation(conn: &impl Conn, id: Uuid) -> Result<()> {
    workspace::Entity::update_many()
        .col_expr(
            workspace::Column::DefinitionsGeneration,
            Expr::col(workspace::Column::DefinitionsGeneration).add(1),
        )
        .filter(workspace::Column::Id.eq(id))
        .exec(conn)
        .await?;
    super::access_changed();
    Ok(())
}

/// Adds (or changes the role of) a member.
///
/// # Errors
/// `Error::Db`.
pub async fn upsert_membership(conn: &impl Conn, row: MembershipRow) -> Result<()> {
    let model = membership::ActiveModel {
        workspace_id: Set(row.workspace_id),
        account_id: Set(row.account_id),
        role: Set(row.role),
        created_at: Set(row.created_at),
        unit_id: Set(row.unit_id),
        manager_id: Set(row.manager_id),
        deactivated_at: Set(row.deactivated_at),
    };
    membership::Entity::insert(model)
        .on_conflict(
            OnConflict::columns([
                membership::Column::WorkspaceId,
                membership::Column::AccountId,
            ])
            .update_column(membership::Column::Role)
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    super::access_changed();
    Ok(())
}

/// The role of an account in a workspace, if it is a member.
///
/// # Errors
/// `Error::Db`.
pub async fn role_of(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
) -> Result<Option<String>> {
    Ok(membership::Entity::find_by_id((workspace_id, account_id))
        .one(conn)
        .await?
        .map(|m| m.role))
}

/// How many owners a workspace has.
///
/// # Errors
/// `Error::Db`.
pub async fn count_owners(conn: &impl Conn, workspace_id: Uuid) -> Result<u64> {
    Ok(membership::Entity::find()
        .filter(membership::Column::WorkspaceId.eq(workspace_id))
        .filter(membership::Column::Role.eq("owner"))
        .count(conn)
        .await?)
}

/// A workspace by slug with the role of `account_id` in it, when it is a member (one query).
///
/// # Errors
/// `Error::Db`.
pub async fn find_with_role(
    conn: &impl Conn,
    slug: &str,
    account_id: Uuid,
) -> Result<Option<(WorkspaceRow, String)>> {
    let found = workspace::Entity::find()
        .select_also(membership::Entity)
        .join(
            JoinType::InnerJoin,
            workspace::Entity::belongs_to(membership::Entity)
                .from(workspace::Column::Id)
                .to(membership::Column::WorkspaceId)
                .into(),
        )
        .filter(workspace::Column::Slug.eq(slug))
        .filter(membership::Column::AccountId.eq(account_id))
        .filter(membership::Column::DeactivatedAt.is_null())
        .one(conn)
        .await?;
    Ok(found.and_then(|(w, m)| Some((w, m?.role))))
}

/// The workspaces an account belongs to, with its role in each, by name.
///
/// # Errors
/// `Error::Db`.
pub async fn list_for_account(
    conn: &impl Conn,
    account_id: Uuid,
) -> Result<Vec<(WorkspaceRow, String)>> {
    let memberships = membership::Entity::find()
        .filter(membership::Column::AccountId.eq(account_id))
        .filter(membership::Column::DeactivatedAt.is_null())
        .all(conn)
        .await?;
    let ids: Vec<Uuid> = memberships.iter().map(|m| m.workspace_id).collect();
    let workspaces = workspace::Entity::find()
        .filter(workspace::Column::Id.is_in(ids))
        .order_by_asc(workspace::Column::Name)
        .all(conn)
        .await?;
    Ok(workspaces
        .into_iter()
        .filter_map(|w| {
            let role = memberships
                .iter()
                .find(|m| m.workspace_id == w.id)?
                .role
                .clone();
            Some((w, role))
        })
        .collect())
}

/// One member of a workspace as listed to admins.
#[derive(Debug, Clone)]
pub struct MemberRow {
    /// The account.
    pub account_id: Uuid,
    /// Its email.
    pub email: String,
    /// Its display name.
    pub name: String,
    /// Its role in the workspace.
    pub role: String,
    /// When it joined.
    pub joined_at: DateTime<Utc>,
}

fn membership_account() -> RelationDef {
    membership::Entity::belongs_to(account::Entity)
        .from(membership::Column::AccountId)
        .to(account::Column::Id)
        .into()
}

/// The members of a workspace, by email.
///
/// # Errors
/// `Error::Db`.
pub async fn list_members(conn: &impl Conn, workspace_id: Uuid) -> Result<Vec<MemberRow>> {
    let rows: Vec<(Uuid, String, String, String, DateTime<Utc>)> = membership::Entity::find()
        .select_only()
        .column(membership::Column::AccountId)
        .column(account::Column::Email)
        .column(account::Column::Name)
        .column(membership::Column::Role)
        .column(membership::Column::CreatedAt)
        .join(JoinType::InnerJoin, membership_account())
        .filter(membership::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(account::Column::Email)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(account_id, email, name, role, joined_at)| MemberRow {
            account_id,
            email,
            name,
            role,
            joined_at,
        })
        .collect())
}
