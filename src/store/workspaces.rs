//! Queries on `workspaces` and `memberships`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, JoinType, QueryFilter, QueryOrder,
    QuerySelect, RelationDef, Set, sea_query::Expr,
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
    Ok(workspace::ActiveModel {
        id: Set(id),
        name: Set(name),
        time_zone: Set(time_zone),
        calendar: Set(calendar),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(conn)
    .await?)
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
    Ok(())
}

/// Every workspace's id and definitions generation.
///
/// # Errors
/// `Error::Db`.
pub async fn generations(conn: &impl Conn) -> Result<Vec<(Uuid, i64)>> {
    Ok(workspace::Entity::find()
        .select_only()
        .column(workspace::Column::Id)
        .column(workspace::Column::DefinitionsGeneration)
        .into_tuple()
        .all(conn)
        .await?)
}

/// Adds (or changes the role of) a member.
///
/// # Errors
/// `Error::Db`.
pub async fn upsert_membership(conn: &impl Conn, row: MembershipRow) -> Result<()> {
    let existing = membership::Entity::find_by_id((row.workspace_id, row.account_id))
        .one(conn)
        .await?;
    let model = membership::ActiveModel {
        workspace_id: Set(row.workspace_id),
        account_id: Set(row.account_id),
        role: Set(row.role),
        created_at: Set(row.created_at),
    };
    if existing.is_some() {
        membership::ActiveModel {
            created_at: sea_orm::ActiveValue::NotSet,
            ..model
        }
        .update(conn)
        .await?;
    } else {
        model.insert(conn).await?;
    }
    Ok(())
}

/// The membership of an account in a workspace.
///
/// # Errors
/// `Error::Db`.
pub async fn find_membership(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
) -> Result<Option<MembershipRow>> {
    Ok(membership::Entity::find_by_id((workspace_id, account_id))
        .one(conn)
        .await?)
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
