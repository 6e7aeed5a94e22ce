//! Queries of people and access: org units, roles, a member's place and status, collaborators on
//! records, owner hand-overs, and the audit log.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait as _, OnConflict, Order, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::entities::{audit_event, membership, org_unit, role};
use super::records::{get_uuid, uuid_value};
use super::{Conn, backend_of};
use crate::error::{Error, Result};

pub use audit_event::Model as AuditRow;
pub use org_unit::Model as UnitRow;
pub use role::Model as RoleRow;

/// Every unit of a workspace.
///
/// # Errors
/// `Error::Db`.
pub async fn units(conn: &impl Conn, workspace_id: Uuid) -> Result<Vec<UnitRow>> {
    Ok(org_unit::Entity::find()
        .filter(org_unit::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(org_unit::Column::Name)
        .all(conn)
        .await?)
}

/// Inserts a unit.
///
/// # Errors
/// `Error::Db`.
pub async fn insert_unit(conn: &impl Conn, row: UnitRow) -> Result<UnitRow> {
    let row = org_unit::ActiveModel {
        id: Set(row.id),
        workspace_id: Set(row.workspace_id),
        parent_id: Set(row.parent_id),
        kind: Set(row.kind),
        name: Set(row.name),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
    }
    .insert(conn)
    .await?;
    super::access_changed();
    Ok(row)
}

/// Changes a unit's name, kind and parent.
///
/// # Errors
/// `Error::Db`.
pub async fn update_unit(conn: &impl Conn, row: UnitRow) -> Result<UnitRow> {
    let row = org_unit::ActiveModel {
        id: Set(row.id),
        workspace_id: Set(row.workspace_id),
        parent_id: Set(row.parent_id),
        kind: Set(row.kind),
        name: Set(row.name),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
    }
    .update(conn)
    .await?;
    super::access_changed();
    Ok(row)
}

/// Deletes a unit.
///
/// # Errors
/// `Error::Db`.
pub async fn delete_unit(conn: &impl Conn, workspace_id: Uuid, id: Uuid) -> Result<bool> {
    let done = org_unit::Entity::delete_many()
        .filter(org_unit::Column::WorkspaceId.eq(workspace_id))
        .filter(org_unit::Column::Id.eq(id))
        .exec(conn)
        .await?
        .rows_affected
        == 1;
    super::access_changed();
    Ok(done)
}

/// The stored roles of a workspace.
///
/// # Errors
/// `Error::Db`.
pub async fn roles(conn: &impl Conn, workspace_id: Uuid) -> Result<Vec<RoleRow>> {
    Ok(role::Entity::find()
        .filter(role::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(role::Column::Key)
        .all(conn)
        .await?)
}

/// Creates or replaces a role.
///
/// # Errors
/// `Error::Db`.
pub async fn upsert_role(conn: &impl Conn, row: RoleRow) -> Result<()> {
    role::Entity::insert(role::ActiveModel {
        workspace_id: Set(row.workspace_id),
        key: Set(row.key),
        name: Set(row.name),
        rights: Set(row.rights),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
    })
    .on_conflict(
        OnConflict::columns([role::Column::WorkspaceId, role::Column::Key])
            .update_columns([
                role::Column::Name,
                role::Column::Rights,
                role::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    super::access_changed();
    Ok(())
}

/// Deletes a stored role; false when there was none.
///
/// # Errors
/// `Error::Db`.
pub async fn delete_role(conn: &impl Conn, workspace_id: Uuid, key: &str) -> Result<bool> {
    let done = role::Entity::delete_many()
        .filter(role::Column::WorkspaceId.eq(workspace_id))
        .filter(role::Column::Key.eq(key))
        .exec(conn)
        .await?
        .rows_affected
        == 1;
    super::access_changed();
    Ok(done)
}

/// How many members (active or not) and live API tokens hold a role.
///
/// # Errors
/// `Error::Db`.
pub async fn role_holders(conn: &impl Conn, workspace_id: Uuid, key: &str) -> Result<u64> {
    let members = membership::Entity::find()
        .filter(membership::Column::WorkspaceId.eq(workspace_id))
        .filter(membership::Column::Role.eq(key))
        .count(conn)
        .await?;
    let tokens = super::entities::api_token::Entity::find()
        .filter(super::entities::api_token::Column::WorkspaceId.eq(workspace_id))
        .filter(super::entities::api_token::Column::Role.eq(key))
        .filter(super::entities::api_token::Column::RevokedAt.is_null())
        .count(conn)
        .await?;
    Ok(members + tokens)
}

/// Every membership of a workspace (active or not).
///
/// # Errors
/// `Error::Db`.
pub async fn memberships(conn: &impl Conn, workspace_id: Uuid) -> Result<Vec<membership::Model>> {
    Ok(membership::Entity::find()
        .filter(membership::Column::WorkspaceId.eq(workspace_id))
        .all(conn)
        .await?)
}

/// One membership.
///
/// # Errors
/// `Error::Db`.
pub async fn membership(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
) -> Result<Option<membership::Model>> {
    Ok(membership::Entity::find_by_id((workspace_id, account_id))
        .one(conn)
        .await?)
}

/// A member's new role, place and status.
#[derive(Debug, Clone)]
pub struct MembershipChange {
    /// Role key.
    pub role: String,
    /// Unit (none: the company).
    pub unit_id: Option<Uuid>,
    /// Manager.
    pub manager_id: Option<Uuid>,
    /// When deactivated (none: active).
    pub deactivated_at: Option<DateTime<Utc>>,
}

/// Changes a membership; false when there is none.
///
/// # Errors
/// `Error::Db`.
pub async fn update_membership(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
    change: MembershipChange,
) -> Result<bool> {
    let done = membership::Entity::update_many()
        .col_expr(membership::Column::Role, Expr::value(change.role))
        .col_expr(membership::Column::UnitId, Expr::value(change.unit_id))
        .col_expr(
            membership::Column::ManagerId,
            Expr::value(change.manager_id),
        )
        .col_expr(
            membership::Column::DeactivatedAt,
            Expr::value(change.deactivated_at),
        )
        .filter(membership::Column::WorkspaceId.eq(workspace_id))
        .filter(membership::Column::AccountId.eq(account_id))
        .exec(conn)
        .await?
        .rows_affected
        == 1;
    super::access_changed();
    Ok(done)
}

/// Removes a membership, and clears it as anyone's manager; false when there was none.
///
/// # Errors
/// `Error::Db`.
pub async fn remove_membership(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
) -> Result<bool> {
    membership::Entity::update_many()
        .col_expr(
            membership::Column::ManagerId,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(membership::Column::WorkspaceId.eq(workspace_id))
        .filter(membership::Column::ManagerId.eq(account_id))
        .exec(conn)
        .await?;
    let done = membership::Entity::delete_many()
        .filter(membership::Column::WorkspaceId.eq(workspace_id))
        .filter(membership::Column::AccountId.eq(account_id))
        .exec(conn)
        .await?
        .rows_affected
        == 1;
    super::access_changed();
    Ok(done)
}

/// How many members a unit has.
///
/// # Errors
/// `Error::Db`.
pub async fn count_unit_members(conn: &impl Conn, workspace_id: Uuid, unit: Uuid) -> Result<u64> {
    Ok(membership::Entity::find()
        .filter(membership::Column::WorkspaceId.eq(workspace_id))
        .filter(membership::Column::UnitId.eq(unit))
        .count(conn)
        .await?)
}

// ---- collaborators ----

/// A person a record is shared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollaboratorRow {
    /// The person.
    pub account_id: Uuid,
    /// Whether they may edit.
    pub can_edit: bool,
    /// When they were added.
    pub added_at: DateTime<Utc>,
    /// By whom.
    pub added_by: Option<Uuid>,
}

/// Adds a collaborator to a record, or changes their rights.
///
/// # Errors
/// `Error::Db`.
pub async fn upsert_collaborator(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity_id: Uuid,
    record_id: Uuid,
    row: &CollaboratorRow,
) -> Result<()> {
    let backend = backend_of(conn);
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new("record_collaborators"))
        .columns(
            [
                "entity_id",
                "record_id",
                "account_id",
                "workspace_id",
                "can_edit",
                "added_at",
                "added_by",
            ]
            .map(Alias::new),
        )
        .values_panic([
            Expr::val(uuid_value(backend, entity_id)),
            Expr::val(uuid_value(backend, record_id)),
            Expr::val(uuid_value(backend, row.account_id)),
            Expr::val(uuid_value(backend, workspace_id)),
            Expr::val(row.can_edit),
            Expr::val(row.added_at),
            Expr::val(match row.added_by {
                Some(id) => uuid_value(backend, id),
                None => uuid_value(backend, Uuid::nil()),
            }),
        ])
        .on_conflict(
            OnConflict::columns(["entity_id", "record_id", "account_id"].map(Alias::new))
                .update_column(Alias::new("can_edit"))
                .to_owned(),
        );
    conn.execute(&insert).await?;
    Ok(())
}

/// Removes a collaborator; false when there was none.
///
/// # Errors
/// `Error::Db`.
pub async fn delete_collaborator(
    conn: &impl Conn,
    entity_id: Uuid,
    record_id: Uuid,
    account_id: Uuid,
) -> Result<bool> {
    let backend = backend_of(conn);
    let mut delete = Query::delete();
    delete
        .from_table(Alias::new("record_collaborators"))
        .and_where(Expr::col(Alias::new("entity_id")).eq(uuid_value(backend, entity_id)))
        .and_where(Expr::col(Alias::new("record_id")).eq(uuid_value(backend, record_id)))
        .and_where(Expr::col(Alias::new("account_id")).eq(uuid_value(backend, account_id)));
    Ok(conn.execute(&delete).await?.rows_affected() == 1)
}

/// The collaborators of a record, oldest first.
///
/// # Errors
/// `Error::Db`.
pub async fn collaborators(
    conn: &impl Conn,
    entity_id: Uuid,
    record_id: Uuid,
) -> Result<Vec<CollaboratorRow>> {
    let backend = backend_of(conn);
    let mut select = Query::select();
    select
        .columns(["account_id", "can_edit", "added_at", "added_by"].map(Alias::new))
        .from(Alias::new("record_collaborators"))
        .and_where(Expr::col(Alias::new("entity_id")).eq(uuid_value(backend, entity_id)))
        .and_where(Expr::col(Alias::new("record_id")).eq(uuid_value(backend, record_id)))
        .order_by(Alias::new("added_at"), Order::Asc);
    conn.query_all(&select)
        .await?
        .iter()
        .map(|row| {
            Ok(CollaboratorRow {
                account_id: get_uuid(row, backend, "account_id")?
                    .ok_or_else(|| Error::internal("collaborator without account"))?,
                can_edit: row.try_get("", "can_edit")?,
                added_at: row.try_get("", "added_at")?,
                added_by: get_uuid(row, backend, "added_by")?.filter(|id| !id.is_nil()),
            })
        })
        .collect()
}

/// Whether a record is shared with a person: `None` (not shared), or whether they may edit.
///
/// # Errors
/// `Error::Db`.
pub async fn shared_with(
    conn: &impl Conn,
    entity_id: Uuid,
    record_id: Uuid,
    account_id: Uuid,
) -> Result<Option<bool>> {
    let backend = backend_of(conn);
    let mut select = Query::select();
    select
        .column(Alias::new("can_edit"))
        .from(Alias::new("record_collaborators"))
        .and_where(Expr::col(Alias::new("entity_id")).eq(uuid_value(backend, entity_id)))
        .and_where(Expr::col(Alias::new("record_id")).eq(uuid_value(backend, record_id)))
        .and_where(Expr::col(Alias::new("account_id")).eq(uuid_value(backend, account_id)));
    Ok(match conn.query_one(&select).await? {
        Some(row) => Some(row.try_get("", "can_edit")?),
        None => None,
    })
}

/// Whether anything of an entity is shared with a person.
///
/// # Errors
/// `Error::Db`.
pub async fn has_shares(conn: &impl Conn, entity_id: Uuid, account_id: Uuid) -> Result<bool> {
    let backend = backend_of(conn);
    let mut select = Query::select();
    select
        .expr(Expr::cust("1"))
        .from(Alias::new("record_collaborators"))
        .and_where(Expr::col(Alias::new("entity_id")).eq(uuid_value(backend, entity_id)))
        .and_where(Expr::col(Alias::new("account_id")).eq(uuid_value(backend, account_id)))
        .limit(1);
    Ok(conn.query_one(&select).await?.is_some())
}

/// Removes every share of a person in a workspace (when they leave it).
///
/// # Errors
/// `Error::Db`.
pub async fn delete_shares_of(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
) -> Result<()> {
    let backend = backend_of(conn);
    let mut delete = Query::delete();
    delete
        .from_table(Alias::new("record_collaborators"))
        .and_where(Expr::col(Alias::new("workspace_id")).eq(uuid_value(backend, workspace_id)))
        .and_where(Expr::col(Alias::new("account_id")).eq(uuid_value(backend, account_id)));
    conn.execute(&delete).await?;
    Ok(())
}

// ---- audit ----

/// Appends a security event.
///
/// # Errors
/// `Error::Db`.
pub async fn insert_audit(conn: &impl Conn, row: AuditRow) -> Result<()> {
    audit_event::ActiveModel {
        id: Set(row.id),
        workspace_id: Set(row.workspace_id),
        account_id: Set(row.account_id),
        kind: Set(row.kind),
        detail: Set(row.detail),
        at: Set(row.at),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Events of this workspace.
    pub workspace_id: Option<Uuid>,
    /// Events of this account.
    pub account_id: Option<Uuid>,
    /// Events of this kind (or kind prefix ending in `.`).
    pub kind: Option<String>,
    /// Only events older than this one (ids are time-ordered).
    pub before: Option<Uuid>,
}

/// Audit events, newest first.
///
/// # Errors
/// `Error::Db`.
pub async fn audit(conn: &impl Conn, filter: AuditFilter, limit: u64) -> Result<Vec<AuditRow>> {
    let mut query = audit_event::Entity::find();
    if let Some(workspace_id) = filter.workspace_id {
        query = query.filter(audit_event::Column::WorkspaceId.eq(workspace_id));
    }
    if let Some(account_id) = filter.account_id {
        query = query.filter(audit_event::Column::AccountId.eq(account_id));
    }
    if let Some(kind) = filter.kind {
        query = match kind.strip_suffix('.') {
            Some(prefix) => {
                query.filter(audit_event::Column::Kind.starts_with(format!("{prefix}.")))
            }
            None => query.filter(audit_event::Column::Kind.eq(kind)),
        };
    }
    if let Some(before) = filter.before {
        query = query.filter(audit_event::Column::Id.lt(before));
    }
    Ok(query
        .order_by_desc(audit_event::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}

// ---- invitations ----

use super::entities::invitation;
pub use super::entities::invitation::Model as InvitationRow;

/// Stores an invitation.
///
/// # Errors
/// `Error::Db`.
pub async fn insert_invitation(conn: &impl Conn, row: InvitationRow) -> Result<InvitationRow> {
    Ok(invitation::ActiveModel {
        id: Set(row.id),
        workspace_id: Set(row.workspace_id),
        email: Set(row.email),
        role: Set(row.role),
        token_hash: Set(row.token_hash),
        invited_by: Set(row.invited_by),
        created_at: Set(row.created_at),
        expires_at: Set(row.expires_at),
        accepted_at: Set(row.accepted_at),
        revoked_at: Set(row.revoked_at),
    }
    .insert(conn)
    .await?)
}

/// The pending (not accepted, not revoked) invitations of a workspace, newest first.
///
/// # Errors
/// `Error::Db`.
pub async fn pending_invitations(
    conn: &impl Conn,
    workspace_id: Uuid,
) -> Result<Vec<InvitationRow>> {
    Ok(invitation::Entity::find()
        .filter(invitation::Column::WorkspaceId.eq(workspace_id))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .order_by_desc(invitation::Column::CreatedAt)
        .all(conn)
        .await?)
}

/// The invitation with this secret hash.
///
/// # Errors
/// `Error::Db`.
pub async fn invitation_by_hash(
    conn: &impl Conn,
    token_hash: &str,
) -> Result<Option<InvitationRow>> {
    Ok(invitation::Entity::find()
        .filter(invitation::Column::TokenHash.eq(token_hash))
        .one(conn)
        .await?)
}

/// Marks a pending invitation accepted or revoked; false when it was not pending any more.
///
/// # Errors
/// `Error::Db`.
pub async fn close_invitation(
    conn: &impl Conn,
    id: Uuid,
    at: DateTime<Utc>,
    accepted: bool,
) -> Result<bool> {
    let column = if accepted {
        invitation::Column::AcceptedAt
    } else {
        invitation::Column::RevokedAt
    };
    Ok(invitation::Entity::update_many()
        .col_expr(column, Expr::value(Some(at)))
        .filter(invitation::Column::Id.eq(id))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .exec(conn)
        .await?
        .rows_affected
        == 1)
}
