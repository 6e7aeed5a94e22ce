//! Members, the org tree and roles of a workspace: who belongs, where they sit, whom they report
//! to, what each role may do; deactivation with the hand-over of a person's records.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Access, AccessCache, WorkspaceView, directory, new_membership};
use crate::access::{self, Right, Rights, UnitKind, org::MAX_DEPTH, rights};
use crate::audit::{self, Event};
use crate::clock::SharedClock;
use crate::definitions::Registry;
use crate::domain::{Email, display_name, new_id};
use crate::error::{Error, Result};
use crate::store::people::{self, MembershipChange, RoleRow, UnitRow};
use crate::store::records::{self as record_rows, HistoryRow, Stamp};
use crate::store::workspaces as rows;
use crate::store::{Db, accounts};

/// A member as listed.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    /// Account id.
    pub account_id: Uuid,
    /// Email.
    pub email: String,
    /// Name.
    pub name: String,
    /// Role key.
    pub role: String,
    /// Unit (none: the company itself).
    pub unit_id: Option<Uuid>,
    /// Manager.
    pub manager_id: Option<Uuid>,
    /// Whether they may still enter the workspace.
    pub active: bool,
    /// When they were deactivated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Joined.
    pub joined_at: DateTime<Utc>,
}

/// The members of the caller's workspace (every member may list them: owners are picked from
/// this list).
///
/// # Errors
/// `Error::Db`.
pub async fn members(db: &Db, access: &Access) -> Result<Vec<MemberView>> {
    let listed = rows::list_members(db.conn(), access.workspace.id).await?;
    let memberships = people::memberships(db.conn(), access.workspace.id).await?;
    Ok(listed
        .into_iter()
        .filter_map(|m| {
            let row = memberships.iter().find(|r| r.account_id == m.account_id)?;
            Some(MemberView {
                account_id: m.account_id,
                email: m.email,
                name: m.name,
                role: m.role,
                unit_id: row.unit_id,
                manager_id: row.manager_id,
                active: row.deactivated_at.is_none(),
                deactivated_at: row.deactivated_at,
                joined_at: m.joined_at,
            })
        })
        .collect())
}

async fn member(db: &Db, access: &Access, account_id: Uuid) -> Result<MemberView> {
    members(db, access)
        .await?
        .into_iter()
        .find(|m| m.account_id == account_id)
        .ok_or_else(|| Error::not_found(format!("member {account_id}")))
}

/// A security event of the caller in their workspace.
fn access_event(access: &Access, kind: &'static str, detail: Value) -> Event {
    Event {
        workspace_id: Some(access.workspace.id),
        account_id: Some(access.account_id),
        kind,
        detail,
    }
}

/// Whether the caller may give `role` to someone: owners only by owners, admins by owners and
/// admins, any other role by whoever manages members and holds at least its rights.
fn check_grantable(
    access: &Access,
    directory: &access::Directory,
    role: &str,
    pointer: &str,
) -> Result<()> {
    let Some(target) = directory.roles.get(role) else {
        let mut known: Vec<&str> = directory.roles.keys().map(String::as_str).collect();
        known.sort_unstable();
        return Err(Error::invalid(
            pointer,
            "unknown_role",
            format!("role must be one of {}", known.join(", ")),
        ));
    };
    let allowed = match role {
        "owner" => access.is_owner(),
        "admin" => access.is_admin(),
        _ => access.is_admin() || target.rights.within(&access.policy.rights),
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::forbidden_at(
            pointer,
            "escalation",
            format!("you may not grant the role {role:?}: it holds rights you do not have"),
        ))
    }
}

/// Refuses a role key the workspace does not have (at `/role`).
///
/// # Errors
/// `Error::Invalid`.
pub async fn check_role_exists(
    db: &Db,
    cache: &AccessCache,
    access: &Access,
    role: &str,
) -> Result<()> {
    let directory = directory(db, cache, access.workspace.id).await?;
    if directory.roles.contains_key(role) {
        Ok(())
    } else {
        Err(Error::invalid(
            "/role",
            "unknown_role",
            format!("no role {role:?} in this workspace"),
        ))
    }
}

/// Adds an existing account to the workspace (or changes its role). Needs the members right.
///
/// # Errors
/// `Error::Forbidden`, `Error::Invalid` (unknown role or account), `Error::Db`.
pub async fn add_member(
    db: &Db,
    clock: &SharedClock,
    cache: &AccessCache,
    access: &Access,
    email: &str,
    role: &str,
) -> Result<MemberView> {
    access.require(Right::Members)?;
    let directory = directory(db, cache, access.workspace.id).await?;
    check_grantable(access, &directory, role, "/role")?;
    let email = Email::parse(email)?;
    let account = accounts::find_by_email(db.conn(), email.as_str())
        .await?
        .ok_or_else(|| Error::invalid("/email", "unknown_account", "no account has this email"))?;
    if account.id == access.account_id {
        return Err(Error::forbidden_at(
            "/email",
            "own_membership",
            "you cannot change your own role; ask another owner or admin",
        ));
    }
    let now = clock.now();
    let tx = db.begin().await?;
    // The owner checks below and the write must see the same memberships.
    rows::lock(&tx, access.workspace.id, now).await?;
    let current = people::membership(&tx, access.workspace.id, account.id).await?;
    if let Some(current) = &current {
        check_target_rank(access, &current.role)?;
    }
    check_owner_change(&tx, access, current.as_ref().map(|m| m.role.as_str()), role).await?;
    match current {
        Some(current) => {
            people::update_membership(
                &tx,
                access.workspace.id,
                account.id,
                MembershipChange {
                    role: role.to_owned(),
                    unit_id: current.unit_id,
                    manager_id: current.manager_id,
                    deactivated_at: current.deactivated_at,
                },
            )
            .await?;
        }
        None => {
            rows::upsert_membership(
                &tx,
                new_membership(access.workspace.id, account.id, role.to_owned(), now),
            )
            .await?;
        }
    }
    audit::record_in(
        &tx,
        now,
        access_event(
            access,
            "member.role_changed",
            serde_json::json!({"member": account.id, "role": role}),
        ),
    )
    .await?;
    tx.commit().await?;
    crate::store::access_changed();
    member(db, access, account.id).await
}

/// The membership a members-right holder is about to `verb`: 404 when there is none; refused
/// for an owner unless the caller owns the workspace, and for an admin unless they administer it.
async fn member_to_change(
    db: &Db,
    access: &Access,
    account_id: Uuid,
    verb: &str,
) -> Result<crate::store::entities::membership::Model> {
    let current = people::membership(db.conn(), access.workspace.id, account_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("member {account_id}")))?;
    if current.role == "owner" && !access.is_owner() {
        return Err(Error::forbidden(format!(
            "only an owner may {verb} an owner"
        )));
    }
    check_target_rank(access, &current.role)?;
    Ok(current)
}

/// Refuses to act on an administrator's membership unless the caller is one (the members right
/// alone does not reach above itself).
fn check_target_rank(access: &Access, target_role: &str) -> Result<()> {
    if crate::access::is_admin_role(target_role) && !access.is_admin() {
        return Err(Error::forbidden(
            "only an owner or admin may change an owner's or admin's membership",
        ));
    }
    Ok(())
}

/// Refuses to demote an owner unless an owner does it and another owner remains.
async fn check_owner_change(
    tx: &crate::store::Tx,
    access: &Access,
    current: Option<&str>,
    role: &str,
) -> Result<()> {
    if current == Some("owner") && role != "owner" {
        if !access.is_owner() {
            return Err(Error::forbidden(
                "only an owner may change another owner's role",
            ));
        }
        if rows::count_owners(tx, access.workspace.id).await? <= 1 {
            return Err(Error::invalid(
                "/role",
                "last_owner",
                "a workspace keeps at least one owner; make someone else owner first",
            ));
        }
    }
    Ok(())
}

/// Changes to a member; absent parts are kept, `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct MemberPatch {
    /// New role.
    pub role: Option<String>,
    /// New unit.
    pub unit_id: Option<Option<Uuid>>,
    /// New manager.
    pub manager_id: Option<Option<Uuid>>,
}

/// Changes a member's role, unit or manager. Needs the members right; nobody changes their
/// own membership (moving oneself would widen one's own team scope).
///
/// # Errors
/// `Error::NotFound`, `Error::Forbidden`, `Error::Invalid`.
pub async fn update_member(
    db: &Db,
    clock: &SharedClock,
    cache: &AccessCache,
    access: &Access,
    account_id: Uuid,
    patch: MemberPatch,
) -> Result<MemberView> {
    access.require(Right::Members)?;
    let directory = directory(db, cache, access.workspace.id).await?;
    let current = people::membership(db.conn(), access.workspace.id, account_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("member {account_id}")))?;
    if account_id == access.account_id {
        return Err(Error::forbidden(
            "you cannot change your own membership; ask another owner or admin",
        ));
    }
    let mut problems = Vec::new();
    if let Some(role) = &patch.role {
        match check_grantable(access, &directory, role, "/role") {
            Ok(()) => {}
            Err(Error::Invalid { errors, .. }) => problems.extend(errors),
            Err(other) => return Err(other),
        }
    }
    if let Some(Some(unit)) = patch.unit_id
        && directory.org.unit(unit).is_none()
    {
        problems.push(crate::error::FieldError::new(
            "/unit_id",
            "unknown_unit",
            "no such unit in this workspace",
        ));
    }
    if let Some(Some(manager)) = patch.manager_id {
        let chain_closes = {
            // Walking up from the new manager must not reach the member.
            let mut seen = vec![account_id];
            let mut next = Some(manager);
            let mut closes = false;
            while let Some(id) = next {
                if seen.contains(&id) {
                    closes = true;
                    break;
                }
                seen.push(id);
                next = directory.org.manager_of(id);
            }
            closes
        };
        if directory.org.person(manager).is_none() {
            problems.push(crate::error::FieldError::new(
                "/manager_id",
                "unknown_user",
                "the manager must be a member of this workspace",
            ));
        } else if chain_closes {
            problems.push(crate::error::FieldError::new(
                "/manager_id",
                "cycle",
                "a person cannot report, directly or not, to someone who reports to them",
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::invalid_all("invalid member change", problems));
    }
    let now = clock.now();
    let tx = db.begin().await?;
    rows::lock(&tx, access.workspace.id, now).await?;
    let role = patch.role.clone().unwrap_or_else(|| current.role.clone());
    check_target_rank(access, &current.role)?;
    check_owner_change(&tx, access, Some(&current.role), &role).await?;
    if current.role == "owner" && !access.is_owner() {
        return Err(Error::forbidden("only an owner may change an owner"));
    }
    people::update_membership(
        &tx,
        access.workspace.id,
        account_id,
        MembershipChange {
            role: role.clone(),
            unit_id: patch.unit_id.unwrap_or(current.unit_id),
            manager_id: patch.manager_id.unwrap_or(current.manager_id),
            deactivated_at: current.deactivated_at,
        },
    )
    .await?;
    if role != current.role {
        audit::record_in(
            &tx,
            now,
            access_event(
                access,
                "member.role_changed",
                serde_json::json!({"member": account_id, "from": current.role, "role": role}),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    crate::store::access_changed();
    member(db, access, account_id).await
}

/// What a hand-over moved.
#[derive(Debug, Clone, Serialize)]
pub struct HandOver {
    /// The person whose records were handed over.
    pub from: Uuid,
    /// The colleague who received them.
    pub to: Option<Uuid>,
    /// Records moved, by entity key.
    pub records: BTreeMap<String, usize>,
}

/// Deactivates a member (they can no longer enter; their sessions elsewhere are unaffected)
/// and, with `hand_over_to`, gives every record they own to that colleague in the same
/// transaction, each with a history entry. Needs the members right.
///
/// # Errors
/// `Error::NotFound`, `Error::Forbidden`, `Error::Invalid` (bad colleague).
pub async fn deactivate(
    db: &Db,
    clock: &SharedClock,
    registry: &Registry,
    access: &Access,
    account_id: Uuid,
    hand_over_to: Option<Uuid>,
) -> Result<HandOver> {
    access.require(Right::Members)?;
    let current = member_to_change(db, access, account_id, "deactivate").await?;
    if account_id == access.account_id {
        return Err(Error::forbidden("you cannot deactivate yourself"));
    }
    // Handing records over moves them beyond anyone's reach but an administrator's.
    if hand_over_to.is_some() && !access.is_admin() {
        return Err(Error::forbidden_at(
            "/hand_over_to",
            "admin_only",
            "only an owner or admin may hand a person's records over",
        ));
    }
    if let Some(to) = hand_over_to {
        let receiver = people::membership(db.conn(), access.workspace.id, to).await?;
        if to == account_id || receiver.is_none_or(|r| r.deactivated_at.is_some()) {
            return Err(Error::invalid(
                "/hand_over_to",
                "unknown_user",
                "records go to another active member of this workspace",
            ));
        }
    }
    let now = clock.now();
    let snapshot = registry
        .snapshot(
            db,
            access.workspace.id,
            access.workspace.definitions_generation,
        )
        .await?;
    let tx = db.begin().await?;
    rows::lock(&tx, access.workspace.id, now).await?;
    if current.role == "owner" && rows::count_owners(&tx, access.workspace.id).await? <= 1 {
        return Err(Error::invalid(
            "",
            "last_owner",
            "a workspace keeps at least one active owner; make someone else owner first",
        ));
    }
    let mut moved = BTreeMap::new();
    if let Some(to) = hand_over_to {
        for model in snapshot.entities() {
            let stamp = Stamp {
                at: now,
                by: Some(access.account_id),
            };
            let ids = record_rows::reassign_owner(
                &tx,
                &model.table(),
                Some(account_id),
                Some(to),
                None,
                stamp,
            )
            .await?;
            if ids.is_empty() {
                continue;
            }
            let history: Vec<HistoryRow> = ids
                .iter()
                .map(|id| HistoryRow {
                    id: new_id(),
                    workspace_id: access.workspace.id,
                    entity_id: model.definition_id,
                    record_id: *id,
                    at: now,
                    actor_id: Some(access.account_id),
                    actor_kind: "account".to_owned(),
                    channel: "system".to_owned(),
                    operation: "update".to_owned(),
                    changes: serde_json::json!({
                        "fields": {},
                        "owner": {"old": account_id, "new": to},
                        "reason": "hand_over",
                    }),
                })
                .collect();
            record_rows::insert_history(&tx, &history).await?;
            moved.insert(model.key.clone(), ids.len());
        }
    }
    people::update_membership(
        &tx,
        access.workspace.id,
        account_id,
        MembershipChange {
            role: current.role.clone(),
            unit_id: current.unit_id,
            manager_id: current.manager_id,
            deactivated_at: Some(current.deactivated_at.unwrap_or(now)),
        },
    )
    .await?;
    audit::record_in(&tx, now, access_event(access, "member.deactivated", serde_json::json!({"member": account_id, "hand_over_to": hand_over_to, "records": moved}))).await?;
    tx.commit().await?;
    crate::store::access_changed();
    Ok(HandOver {
        from: account_id,
        to: hand_over_to,
        records: moved,
    })
}

/// Lets a deactivated member in again. Needs the members right.
///
/// # Errors
/// `Error::NotFound`, `Error::Forbidden`.
pub async fn reactivate(
    db: &Db,
    clock: &SharedClock,
    access: &Access,
    account_id: Uuid,
) -> Result<MemberView> {
    access.require(Right::Members)?;
    let current = member_to_change(db, access, account_id, "reactivate").await?;
    let now = clock.now();
    let tx = db.begin().await?;
    people::update_membership(
        &tx,
        access.workspace.id,
        account_id,
        MembershipChange {
            deactivated_at: None,
            role: current.role,
            unit_id: current.unit_id,
            manager_id: current.manager_id,
        },
    )
    .await?;
    audit::record_in(
        &tx,
        now,
        access_event(
            access,
            "member.reactivated",
            serde_json::json!({"member": account_id}),
        ),
    )
    .await?;
    tx.commit().await?;
    crate::store::access_changed();
    member(db, access, account_id).await
}

/// Removes a deactivated member from the workspace: their shares go, their records keep them as
/// owner (hand them over first, when deactivating). Needs the members right.
///
/// # Errors
/// `Error::NotFound`, `Error::Forbidden`, `Error::Conflict` (still active).
pub async fn remove_member(
    db: &Db,
    clock: &SharedClock,
    access: &Access,
    account_id: Uuid,
) -> Result<()> {
    access.require(Right::Members)?;
    let current = member_to_change(db, access, account_id, "remove").await?;
    if current.deactivated_at.is_none() {
        return Err(Error::conflict(
            "",
            "active",
            "deactivate the member (handing their records over) before removing them",
        ));
    }
    let now = clock.now();
    let tx = db.begin().await?;
    people::remove_membership(&tx, access.workspace.id, account_id).await?;
    people::delete_shares_of(&tx, access.workspace.id, account_id).await?;
    audit::record_in(
        &tx,
        now,
        access_event(
            access,
            "member.removed",
            serde_json::json!({"member": account_id}),
        ),
    )
    .await?;
    tx.commit().await?;
    crate::store::access_changed();
    Ok(())
}

// ---- org tree ----

/// A unit as listed.
#[derive(Debug, Clone, Serialize)]
pub struct UnitView {
    /// Id.
    pub id: Uuid,
    /// The unit above (none: the company).
    pub parent_id: Option<Uuid>,
    /// `department` or `team`.
    pub kind: &'static str,
    /// Name.
    pub name: String,
    /// The people in it.
    pub members: Vec<Uuid>,
}

/// The org tree: its units with their members (every member may read it).
///
/// # Errors
/// `Error::Db`.
pub async fn org_units(db: &Db, cache: &AccessCache, access: &Access) -> Result<Vec<UnitView>> {
    let directory = directory(db, cache, access.workspace.id).await?;
    let mut units: Vec<UnitView> = directory
        .org
        .units()
        .map(|u| UnitView {
            id: u.id,
            parent_id: u.parent,
            kind: u.kind.name(),
            name: u.name.clone(),
            members: Vec::new(),
        })
        .collect();
    for unit in &mut units {
        let mut members: Vec<Uuid> = people::memberships(db.conn(), access.workspace.id)
            .await?
            .into_iter()
            .filter(|m| m.unit_id == Some(unit.id))
            .map(|m| m.account_id)
            .collect();
        members.sort_unstable();
        unit.members = members;
    }
    units.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(units)
}

/// A unit to create or the new state of one.
#[derive(Debug, Clone)]
pub struct UnitInput {
    /// Parent (none: the company).
    pub parent_id: Option<Uuid>,
    /// `department` or `team`.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// Creates (`id` none) or changes a unit. Needs the members right.
///
/// # Errors
/// `Error::Forbidden`, `Error::NotFound`, `Error::Invalid` (kind, name, parent, cycle, depth).
pub async fn save_unit(
    db: &Db,
    clock: &SharedClock,
    cache: &AccessCache,
    access: &Access,
    id: Option<Uuid>,
    input: UnitInput,
) -> Result<UnitView> {
    access.require(Right::Members)?;
    let directory = directory(db, cache, access.workspace.id).await?;
    let existing = match id {
        Some(id) => Some(
            directory
                .org
                .unit(id)
                .cloned()
                .ok_or_else(|| Error::not_found(format!("unit {id}")))?,
        ),
        None => None,
    };
    // Reshaping the units above oneself (retyping one's department, moving one's team) would
    // widen one's own team or department scope.
    if let (Some(id), false) = (id, access.is_admin()) {
        let own_chain = directory
            .org
            .person(access.account_id)
            .and_then(|p| p.unit)
            .map(|unit| directory.org.ancestors_and_self(unit))
            .unwrap_or_default();
        if own_chain.contains(&id) {
            return Err(Error::forbidden(
                "you cannot change a unit you belong to or sit below; ask an owner or admin",
            ));
        }
    }
    let mut problems = Vec::new();
    let kind = UnitKind::parse(&input.kind);
    if kind.is_none() {
        problems.push(crate::error::FieldError::new(
            "/kind",
            "enum",
            "a unit is a department or a team",
        ));
    }
    let name = match display_name(&input.name, "/name", 200) {
        Ok(name) => name,
        Err(Error::Invalid { errors, .. }) => {
            problems.extend(errors);
            String::new()
        }
        Err(other) => return Err(other),
    };
    if let Some(parent) = input.parent_id {
        if directory.org.unit(parent).is_none() {
            problems.push(crate::error::FieldError::new(
                "/parent_id",
                "unknown_unit",
                "no such unit in this workspace",
            ));
        } else if id.is_some_and(|id| directory.org.would_cycle(id, parent)) {
            problems.push(crate::error::FieldError::new(
                "/parent_id",
                "cycle",
                "a unit cannot sit below itself",
            ));
        } else if directory.org.depth(parent) >= MAX_DEPTH {
            problems.push(crate::error::FieldError::new(
                "/parent_id",
                "depth",
                format!("the org tree is at most {MAX_DEPTH} levels deep"),
            ));
        }
    }
    let Some(kind) = kind.filter(|_| problems.is_empty()) else {
        return Err(Error::invalid_all("invalid unit", problems));
    };
    let now = clock.now();
    let row = UnitRow {
        id: id.unwrap_or_else(new_id),
        workspace_id: access.workspace.id,
        parent_id: input.parent_id,
        kind: kind.name().to_owned(),
        name,
        created_at: now,
        updated_at: now,
    };
    let saved = match existing {
        Some(_) => {
            let created_at = people::units(db.conn(), access.workspace.id)
                .await?
                .into_iter()
                .find(|u| u.id == row.id)
                .map_or(now, |u| u.created_at);
            people::update_unit(db.conn(), UnitRow { created_at, ..row }).await?
        }
        None => people::insert_unit(db.conn(), row).await?,
    };
    Ok(UnitView {
        id: saved.id,
        parent_id: saved.parent_id,
        kind: kind.name(),
        name: saved.name,
        members: Vec::new(),
    })
}

/// Deletes an empty unit (no units below it, nobody in it). Needs the members right.
///
/// # Errors
/// `Error::Forbidden`, `Error::NotFound`, `Error::Conflict` (not empty).
pub async fn delete_unit(db: &Db, cache: &AccessCache, access: &Access, id: Uuid) -> Result<()> {
    access.require(Right::Members)?;
    let directory = directory(db, cache, access.workspace.id).await?;
    if directory.org.unit(id).is_none() {
        return Err(Error::not_found(format!("unit {id}")));
    }
    if directory.org.units().any(|u| u.parent == Some(id))
        || people::count_unit_members(db.conn(), access.workspace.id, id).await? > 0
    {
        return Err(Error::conflict(
            "",
            "not_empty",
            "move the unit's people and sub-units elsewhere first",
        ));
    }
    people::delete_unit(db.conn(), access.workspace.id, id).await?;
    Ok(())
}

/// The manager of a member, when they have one.
///
/// # Errors
/// `Error::NotFound` for someone who is not a member.
pub async fn manager_of(
    db: &Db,
    cache: &AccessCache,
    access: &Access,
    account_id: Uuid,
) -> Result<Option<Uuid>> {
    let directory = directory(db, cache, access.workspace.id).await?;
    if directory.org.person(account_id).is_none() {
        return Err(Error::not_found(format!("member {account_id}")));
    }
    Ok(directory.org.manager_of(account_id))
}

// ---- roles ----

/// A role as listed.
#[derive(Debug, Clone, Serialize)]
pub struct RoleView {
    /// Key.
    pub key: String,
    /// Name.
    pub name: String,
    /// Whether it is built in.
    pub built_in: bool,
    /// Whether its rights can be changed (not owner and admin).
    pub editable: bool,
    /// What it grants.
    pub rights: Value,
}

fn role_view(role: &access::Role) -> RoleView {
    RoleView {
        key: role.key.clone(),
        name: role.name.clone(),
        built_in: role.built_in,
        editable: !rights::FIXED.contains(&role.key.as_str()),
        rights: role.rights.to_json(),
    }
}

/// The roles of the workspace, built-in first.
///
/// # Errors
/// `Error::Db`.
pub async fn roles(db: &Db, cache: &AccessCache, access: &Access) -> Result<Vec<RoleView>> {
    let directory = directory(db, cache, access.workspace.id).await?;
    let mut roles: Vec<&access::Role> = directory.roles.values().collect();
    let rank = |key: &str| {
        rights::BUILT_IN
            .iter()
            .position(|k| *k == key)
            .unwrap_or(rights::BUILT_IN.len())
    };
    roles.sort_by(|a, b| rank(&a.key).cmp(&rank(&b.key)).then(a.key.cmp(&b.key)));
    Ok(roles.into_iter().map(role_view).collect())
}

/// Whether a custom role key is well formed: lower-case words joined by `_`, optionally with a
/// bundle prefix (`crm.sales_rep`).
fn check_role_key(key: &str) -> Result<()> {
    let ok = (2..=64).contains(&key.len())
        && key.split('.').count() <= 2
        && key.split('.').all(|part| {
            part.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "/key",
            "pattern",
            "a role key is 2–64 lower-case letters, digits and _, optionally prefixed (crm.sales_rep)",
        ))
    }
}

/// Creates or replaces a role (built-in manager, member and viewer can be changed; owner and
/// admin cannot). Needs the members right; a non-admin saves only roles within their own rights.
///
/// # Errors
/// `Error::Forbidden`, `Error::Invalid` (key, name, rights, each located).
pub async fn save_role(
    db: &Db,
    clock: &SharedClock,
    registry: &Registry,
    access: &Access,
    key: &str,
    name: &str,
    rights_doc: &Value,
) -> Result<RoleView> {
    access.require(Right::Members)?;
    if rights::FIXED.contains(&key) {
        return Err(Error::forbidden(format!(
            "the {key} role always holds every right and cannot be changed"
        )));
    }
    if !rights::BUILT_IN.contains(&key) {
        check_role_key(key)?;
    }
    let name = display_name(name, "/name", 100)?;
    let snapshot = registry
        .snapshot(
            db,
            access.workspace.id,
            access.workspace.definitions_generation,
        )
        .await?;
    let fields = |entity: &str| {
        snapshot
            .entity(entity)
            .map(|m| m.fields.iter().map(|f| f.key.clone()).collect::<Vec<_>>())
    };
    let parsed = Rights::parse(rights_doc, "/rights", &fields)?;
    if !access.is_admin() && !parsed.within(&access.policy.rights) {
        return Err(Error::forbidden_at(
            "/rights",
            "escalation",
            "a role you save cannot grant more than your own role",
        ));
    }
    let now = clock.now();
    let tx = db.begin().await?;
    people::upsert_role(
        &tx,
        RoleRow {
            workspace_id: access.workspace.id,
            key: key.to_owned(),
            name: name.clone(),
            rights: parsed.to_json(),
            created_at: now,
            updated_at: now,
        },
    )
    .await?;
    audit::record_in(
        &tx,
        now,
        access_event(
            access,
            "role.saved",
            serde_json::json!({"role": key, "rights": parsed.to_json()}),
        ),
    )
    .await?;
    tx.commit().await?;
    crate::store::access_changed();
    Ok(role_view(&access::Role {
        key: key.to_owned(),
        name,
        rights: parsed,
        built_in: rights::BUILT_IN.contains(&key),
    }))
}

/// Deletes a custom role nobody holds, or resets a built-in role to its defaults. Needs the
/// members right.
///
/// # Errors
/// `Error::Forbidden`, `Error::NotFound`, `Error::Conflict` (still held).
pub async fn delete_role(db: &Db, clock: &SharedClock, access: &Access, key: &str) -> Result<()> {
    access.require(Right::Members)?;
    if rights::FIXED.contains(&key) {
        return Err(Error::forbidden(format!(
            "the {key} role cannot be changed"
        )));
    }
    let built_in = rights::BUILT_IN.contains(&key);
    // Resetting a built-in role restores its defaults, which may be wider than what was saved.
    if built_in
        && !access.is_admin()
        && !rights::built_in(key).is_some_and(|defaults| defaults.within(&access.policy.rights))
    {
        return Err(Error::forbidden_at(
            "",
            "escalation",
            format!("resetting {key} would grant rights you do not have"),
        ));
    }
    if !built_in && people::role_holders(db.conn(), access.workspace.id, key).await? > 0 {
        return Err(Error::conflict(
            "",
            "in_use",
            format!("members or API tokens hold the role {key:?}; give them another role first"),
        ));
    }
    let now = clock.now();
    let tx = db.begin().await?;
    if !people::delete_role(&tx, access.workspace.id, key).await? && !built_in {
        return Err(Error::not_found(format!("role {key:?}")));
    }
    audit::record_in(
        &tx,
        now,
        access_event(
            access,
            if built_in {
                "role.reset"
            } else {
                "role.deleted"
            },
            serde_json::json!({"role": key}),
        ),
    )
    .await?;
    tx.commit().await?;
    crate::store::access_changed();
    Ok(())
}

// ---- invitations ----

/// Longest an invitation may stay open.
pub const MAX_INVITATION_DAYS: i64 = 30;

/// An invitation as listed (never with its secret).
#[derive(Debug, Clone, Serialize)]
pub struct InvitationView {
    /// Id.
    pub id: Uuid,
    /// Whom it is for.
    pub email: String,
    /// The role they get.
    pub role: String,
    /// Who invited.
    pub invited_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

impl From<&people::InvitationRow> for InvitationView {
    fn from(row: &people::InvitationRow) -> Self {
        Self {
            id: row.id,
            email: row.email.clone(),
            role: row.role.clone(),
            invited_by: row.invited_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
        }
    }
}

/// Invites someone by email with a role (the members right, and a role the caller may grant);
/// returns the invitation and its secret, which goes into the link (shown once). With
/// `public_url` (an SMTP server is configured) the link is also emailed to the invitee, in the
/// same transaction as the invitation.
///
/// # Errors
/// `Error::Forbidden`, `Error::Invalid` (email, role, expiry).
#[allow(clippy::too_many_arguments)]
pub async fn invite(
    db: &Db,
    clock: &SharedClock,
    cache: &AccessCache,
    access: &Access,
    email: &str,
    role: &str,
    days: Option<i64>,
    public_url: Option<&str>,
) -> Result<(InvitationView, String)> {
    access.require(Right::Members)?;
    let directory = directory(db, cache, access.workspace.id).await?;
    check_grantable(access, &directory, role, "/role")?;
    let email = Email::parse(email)?;
    let days = days.unwrap_or(7);
    if !(1..=MAX_INVITATION_DAYS).contains(&days) {
        return Err(Error::invalid(
            "/expires_in_days",
            "range",
            format!("an invitation stays open 1–{MAX_INVITATION_DAYS} days"),
        ));
    }
    let now = clock.now();
    let secret = crate::auth::random_secret();
    let tx = db.begin().await?;
    let row = people::insert_invitation(
        &tx,
        people::InvitationRow {
            id: new_id(),
            workspace_id: access.workspace.id,
            email: email.as_str().to_owned(),
            role: role.to_owned(),
            token_hash: crate::auth::hash_secret(&secret),
            invited_by: Some(access.account_id),
            created_at: now,
            expires_at: now + chrono::Duration::days(days),
            accepted_at: None,
            revoked_at: None,
        },
    )
    .await?;
    audit::record_in(
        &tx,
        now,
        access_event(
            access,
            "member.invited",
            serde_json::json!({"invitation": row.id, "email": row.email, "role": role,
                               "emailed": public_url.is_some()}),
        ),
    )
    .await?;
    if let Some(public_url) = public_url {
        crate::mail::queue(
            &tx,
            clock,
            &crate::mail::Email {
                to: row.email.clone(),
                subject: format!(
                    "Join {} on Formwork / 加入 Formwork 工作区",
                    access.workspace.name
                ),
                text: format!(
                    "You are invited to the workspace {name} on Formwork as {role}.\n\
                     Open this link within {days} days to join:\n\n{url}/invitations/{secret}\n\n\
                     您受邀以 {role} 身份加入 Formwork 工作区「{name}」，请在 {days} 天内打开上面的链接。\n",
                    name = access.workspace.name,
                    url = public_url.trim_end_matches('/'),
                ),
                html: None,
                ..Default::default()
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok((InvitationView::from(&row), secret))
}

/// The open invitations of the workspace (the members right).
///
/// # Errors
/// `Error::Forbidden`, `Error::Db`.
pub async fn invitations(
    db: &Db,
    clock: &SharedClock,
    access: &Access,
) -> Result<Vec<InvitationView>> {
    access.require(Right::Members)?;
    let now = clock.now();
    Ok(people::pending_invitations(db.conn(), access.workspace.id)
        .await?
        .iter()
        .filter(|row| row.expires_at > now)
        .map(InvitationView::from)
        .collect())
}

/// Revokes an open invitation (the members right).
///
/// # Errors
/// `Error::Forbidden`, `Error::NotFound`.
pub async fn revoke_invitation(
    db: &Db,
    clock: &SharedClock,
    access: &Access,
    id: Uuid,
) -> Result<()> {
    access.require(Right::Members)?;
    let pending = people::pending_invitations(db.conn(), access.workspace.id).await?;
    if !pending.iter().any(|row| row.id == id)
        || !people::close_invitation(db.conn(), id, clock.now(), false).await?
    {
        return Err(Error::not_found(format!("invitation {id}")));
    }
    Ok(())
}

/// What accepting an invitation needs from someone without an account yet.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    /// Display name.
    pub name: Option<String>,
    /// Password.
    pub password: Option<String>,
}

/// Accepts an invitation by its secret: as the signed-in account with the invited email, or,
/// when no account has that email, by creating one (name and password). Single use.
///
/// # Errors
/// `Error::NotFound` (unknown, used, revoked or expired: one answer), `Error::Unauthenticated`
/// (the email has an account: sign in as it first), `Error::Forbidden` (signed in as someone
/// else), `Error::Invalid` (name or password for a new account).
pub async fn accept_invitation(
    db: &Db,
    clock: &SharedClock,
    secret: &str,
    signed_in: Option<Uuid>,
    new_account: NewAccount,
) -> Result<WorkspaceView> {
    let now = clock.now();
    let gone = || Error::not_found("invitation");
    if secret.len() > 200 || secret.contains('\0') {
        return Err(gone());
    }
    let invitation = people::invitation_by_hash(db.conn(), &crate::auth::hash_secret(secret))
        .await?
        .filter(|i| i.accepted_at.is_none() && i.revoked_at.is_none() && i.expires_at > now)
        .ok_or_else(gone)?;
    let existing = accounts::find_by_email(db.conn(), &invitation.email).await?;
    let account_id = match (&existing, signed_in) {
        (Some(account), Some(me)) if account.id == me => account.id,
        (Some(_), Some(_)) => {
            return Err(Error::forbidden(
                "this invitation is for another email; sign in as that account",
            ));
        }
        (Some(_), None) => return Err(Error::Unauthenticated),
        (None, _) => {
            let name = new_account.name.unwrap_or_default();
            let password = new_account.password.unwrap_or_default();
            crate::auth::create_account(
                db.conn(),
                clock,
                &invitation.email,
                &name,
                &password,
                false,
            )
            .await
            .map_err(|e| match e {
                Error::Invalid { errors, .. } => Error::invalid_all(
                    "a new account needs a name and a password of at least 10 characters",
                    errors
                        .into_iter()
                        .map(|mut e| {
                            if e.pointer == "/password" || e.pointer.is_empty() {
                                e.pointer = "/password".to_owned();
                            }
                            e
                        })
                        .collect(),
                ),
                other => other,
            })?
            .id
        }
    };
    let tx = db.begin().await?;
    if !people::close_invitation(&tx, invitation.id, now, true).await? {
        return Err(gone());
    }
    match people::membership(&tx, invitation.workspace_id, account_id).await? {
        Some(current) if current.deactivated_at.is_none() => {}
        Some(_) => {
            return Err(Error::forbidden(
                "your membership was deactivated; ask an administrator to reactivate it",
            ));
        }
        None => {
            rows::upsert_membership(
                &tx,
                new_membership(
                    invitation.workspace_id,
                    account_id,
                    invitation.role.clone(),
                    now,
                ),
            )
            .await?;
        }
    }
    audit::record_in(
        &tx,
        now,
        Event {
            workspace_id: Some(invitation.workspace_id),
            account_id: Some(account_id),
            kind: "member.joined",
            detail: serde_json::json!({"invitation": invitation.id, "role": invitation.role}),
        },
    )
    .await?;
    tx.commit().await?;
    crate::store::access_changed();
    let workspace = rows::find(db.conn(), invitation.workspace_id)
        .await?
        .ok_or_else(gone)?;
    let role = people::membership(db.conn(), workspace.id, account_id)
        .await?
        .map_or(invitation.role, |m| m.role);
    Ok(super::WorkspaceView::new(&workspace, &role))
}
