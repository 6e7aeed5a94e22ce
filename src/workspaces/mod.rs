//! Workspaces (tenants): creation, who may enter, members and roles, time zone and calendar.

mod members;

pub use members::*;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::access::{Directory, OrgTree, Person, Policy, Right, Rights, Role, Unit, UnitKind};
use crate::auth::{Credential, Principal};
use crate::calendar::BusinessCalendar;
use crate::clock::SharedClock;
use crate::domain::{WorkspaceSlug, display_name, new_id};
use crate::error::{Error, Result};
use crate::store::workspaces::{self as rows, MembershipRow, WorkspaceRow};
use crate::store::{Conn, Db, people};

/// The default time zone of a new workspace.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

/// A caller inside a workspace: what every workspace-scoped operation starts from.
#[derive(Debug, Clone)]
pub struct Access {
    /// The workspace.
    pub workspace: WorkspaceRow,
    /// The account acting.
    pub account_id: Uuid,
    /// Its role there.
    pub role: String,
    /// What it may do there.
    pub policy: Arc<Policy>,
    /// The workspace's business calendar (scripts' working-day functions).
    pub calendar: Arc<BusinessCalendar>,
}

impl Access {
    /// Whether the caller administers the workspace (owner or admin, not narrowed by a token).
    pub fn is_admin(&self) -> bool {
        self.policy.is_admin
    }

    /// Whether the caller owns the workspace (not through a token narrowed to another role).
    pub fn is_owner(&self) -> bool {
        self.policy.is_owner
    }

    /// Refuses non-admins.
    ///
    /// # Errors
    /// `Error::Forbidden`.
    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Error::forbidden(
                "only a workspace owner or admin may do this",
            ))
        }
    }

    /// Refuses callers without a management right.
    ///
    /// # Errors
    /// `Error::Forbidden`.
    pub fn require(&self, right: Right) -> Result<()> {
        if self.policy.may(right) {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "your role may not manage {}",
                right.name()
            )))
        }
    }
}

/// Resolves a caller's access to the workspace named by `slug`.
///
/// Anything the caller may not enter (no such workspace, not an active member, or a token bound
/// to another workspace) is the same 404, so workspace names do not leak.
///
/// # Errors
/// `Error::NotFound`.
pub async fn access(
    db: &Db,
    clock: &SharedClock,
    cache: &AccessCache,
    principal: &Principal,
    slug: &str,
) -> Result<Access> {
    let not_found = || Error::not_found(format!("workspace {slug:?}"));
    let token_role = match &principal.credential {
        Credential::Token { role, .. } => role.clone(),
        Credential::Session { .. } => None,
    };
    let key = (principal.account_id, slug.to_owned(), token_role.clone());
    let access = match cache.entries.get(&key) {
        Some(access) => access,
        None => {
            if WorkspaceSlug::parse(slug).is_err() {
                return Err(not_found());
            }
            let epoch = crate::store::access_epoch();
            let Some((workspace, role)) =
                rows::find_with_role(db.conn(), slug, principal.account_id).await?
            else {
                crate::audit::record(
                    db,
                    clock.now(),
                    crate::audit::Event {
                        workspace_id: None,
                        account_id: Some(principal.account_id),
                        kind: "access.denied",
                        detail: serde_json::json!({"workspace": slug, "status": 404}),
                    },
                )
                .await;
                return Err(not_found());
            };
            let directory = directory(db, cache, workspace.id).await?;
            let policy = Policy::new(
                &directory,
                principal.account_id,
                &role,
                token_role.as_deref(),
            );
            let calendar = calendar_of(&workspace);
            let access = Access {
                workspace,
                account_id: principal.account_id,
                role,
                policy: Arc::new(policy),
                calendar,
            };
            cache.entries.insert(key, access.clone(), epoch);
            access
        }
    };
    if let Credential::Token { workspace_id, .. } = &principal.credential
        && *workspace_id != access.workspace.id
    {
        crate::audit::record(
            db,
            clock.now(),
            crate::audit::Event {
                workspace_id: Some(access.workspace.id),
                account_id: Some(principal.account_id),
                kind: "access.denied",
                detail: serde_json::json!({"reason": "token bound to another workspace", "status": 404}),
            },
        )
        .await;
        return Err(not_found());
    }
    Ok(access)
}

/// The access `account_id` has to the workspace `workspace_id` as an active member (`None`
/// when they are not one), for work done on a person's behalf (reports a workflow emails).
///
/// # Errors
/// `Error::Db`.
pub async fn access_of(
    db: &Db,
    cache: &AccessCache,
    workspace_id: Uuid,
    account_id: Uuid,
) -> Result<Option<Access>> {
    access_narrowed(db, cache, workspace_id, account_id, None).await
}

/// As [`access_of`], narrowed to `token_role` as the person's API token was (an import started
/// through such a token runs with no more rights than the token had).
///
/// # Errors
/// `Error::Db`.
pub async fn access_narrowed(
    db: &Db,
    cache: &AccessCache,
    workspace_id: Uuid,
    account_id: Uuid,
    token_role: Option<&str>,
) -> Result<Option<Access>> {
    let Some(workspace) = rows::find(db.conn(), workspace_id).await? else {
        return Ok(None);
    };
    let Some((workspace, role)) =
        rows::find_with_role(db.conn(), &workspace.slug, account_id).await?
    else {
        return Ok(None);
    };
    let directory = directory(db, cache, workspace.id).await?;
    let policy = Policy::new(&directory, account_id, &role, token_role);
    let calendar = calendar_of(&workspace);
    Ok(Some(Access {
        workspace,
        account_id,
        role,
        policy: Arc::new(policy),
        calendar,
    }))
}

/// The roles and org tree of a workspace (cached like access).
///
/// # Errors
/// `Error::Db`.
pub async fn directory(db: &Db, cache: &AccessCache, workspace_id: Uuid) -> Result<Arc<Directory>> {
    if let Some(directory) = cache.directories.get(&workspace_id) {
        return Ok(directory);
    }
    let epoch = crate::store::access_epoch();
    let directory = Arc::new(load_directory(db.conn(), workspace_id).await?);
    cache
        .directories
        .insert(workspace_id, directory.clone(), epoch);
    Ok(directory)
}

/// Reads the roles and org tree of a workspace.
///
/// # Errors
/// `Error::Db`.
pub async fn load_directory(conn: &impl Conn, workspace_id: Uuid) -> Result<Directory> {
    let units = people::units(conn, workspace_id)
        .await?
        .into_iter()
        .filter_map(|u| {
            Some(Unit {
                id: u.id,
                parent: u.parent_id,
                kind: UnitKind::parse(&u.kind)?,
                name: u.name,
            })
        })
        .collect();
    let persons = people::memberships(conn, workspace_id)
        .await?
        .into_iter()
        .map(|m| Person {
            account_id: m.account_id,
            unit: m.unit_id,
            manager: m.manager_id,
            active: m.deactivated_at.is_none(),
        })
        .collect();
    let mut roles = Vec::new();
    for row in people::roles(conn, workspace_id).await? {
        // Validated when saved; rules on entities or fields removed since simply match nothing.
        let rights = lenient_rights(&row.rights);
        roles.push(Role {
            key: row.key,
            name: row.name,
            rights,
            built_in: false,
        });
    }
    Ok(Directory::new(OrgTree::new(units, persons), roles))
}

/// Rights read from storage without checking entity and field names against the published
/// definitions (those may have changed since the role was saved).
fn lenient_rights(value: &serde_json::Value) -> Rights {
    serde_json::from_value::<StoredRights>(value.clone())
        .map(StoredRights::into_rights)
        .unwrap_or_default()
}

/// The stored form of rights, read leniently.
#[derive(Debug, serde::Deserialize)]
struct StoredRights {
    #[serde(default)]
    entities: std::collections::BTreeMap<String, StoredEntityRights>,
    #[serde(default)]
    manage: crate::access::Manage,
}

#[derive(Debug, serde::Deserialize)]
struct StoredEntityRights {
    create: Option<crate::access::Reach>,
    read: Option<crate::access::Reach>,
    update: Option<crate::access::Reach>,
    delete: Option<crate::access::Reach>,
    pool: Option<bool>,
    #[serde(default)]
    fields: std::collections::BTreeMap<String, crate::access::FieldRule>,
}

impl StoredRights {
    fn into_rights(self) -> Rights {
        Rights {
            entities: self
                .entities
                .into_iter()
                .map(|(key, e)| {
                    (
                        key,
                        crate::access::EntityRights {
                            create: e.create,
                            read: e.read,
                            update: e.update,
                            delete: e.delete,
                            pool: e.pool,
                            fields: e.fields,
                        },
                    )
                })
                .collect(),
            manage: self.manage,
        }
    }
}

/// (account, workspace slug, token role) → the account's access there, and workspace → its
/// directory; see [`crate::auth::cache`].
#[derive(Debug, Default)]
pub struct AccessCache {
    entries: crate::auth::EpochCache<(Uuid, String, Option<String>), Access>,
    directories: crate::auth::EpochCache<Uuid, Arc<Directory>>,
}

/// A workspace as shown to its members.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceView {
    /// Id.
    pub id: Uuid,
    /// URL segment.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
    /// The caller's role.
    pub role: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl WorkspaceView {
    /// The view of a workspace for a caller with `role`.
    pub fn new(row: &WorkspaceRow, role: &str) -> Self {
        Self {
            id: row.id,
            slug: row.slug.clone(),
            name: row.name.clone(),
            time_zone: row.time_zone.clone(),
            role: role.to_owned(),
            created_at: row.created_at,
        }
    }
}

fn check_name(name: &str) -> Result<String> {
    display_name(name, "/name", 200)
}

/// Checks an IANA time zone name.
///
/// # Errors
/// `Error::Invalid` at `/time_zone`.
pub fn check_time_zone(name: &str) -> Result<chrono_tz::Tz> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        Error::invalid(
            "/time_zone",
            "unknown_time_zone",
            format!("{name:?} is not an IANA time zone such as Asia/Shanghai"),
        )
    })
}

/// A new, active membership placed at the company level.
pub(crate) fn new_membership(
    workspace_id: Uuid,
    account_id: Uuid,
    role: String,
    now: DateTime<Utc>,
) -> MembershipRow {
    MembershipRow {
        workspace_id,
        account_id,
        role,
        created_at: now,
        unit_id: None,
        manager_id: None,
        deactivated_at: None,
    }
}

/// Creates a workspace with `owner` as its owner, inside the caller's transaction.
///
/// # Errors
/// `Error::Invalid` for a bad slug, name or zone; `Error::Conflict` for a taken slug.
pub async fn create(
    conn: &impl Conn,
    clock: &SharedClock,
    owner: Uuid,
    slug: &str,
    name: &str,
    time_zone: Option<&str>,
) -> Result<WorkspaceRow> {
    let slug = WorkspaceSlug::parse(slug)?;
    let name = check_name(name)?;
    let time_zone = time_zone.unwrap_or(DEFAULT_TIME_ZONE);
    check_time_zone(time_zone)?;
    let now = clock.now();
    let calendar = serde_json::to_value(BusinessCalendar::default()).map_err(Error::internal)?;
    let workspace = rows::insert(
        conn,
        WorkspaceRow {
            id: new_id(),
            slug: slug.as_str().to_owned(),
            name,
            time_zone: time_zone.to_owned(),
            calendar,
            definitions_generation: 0,
            created_at: now,
            updated_at: now,
        },
    )
    .await?;
    rows::upsert_membership(
        conn,
        new_membership(workspace.id, owner, "owner".to_owned(), now),
    )
    .await?;
    Ok(workspace)
}

/// The workspaces of an account.
///
/// # Errors
/// `Error::Db`.
pub async fn list_for(db: &Db, account_id: Uuid) -> Result<Vec<WorkspaceView>> {
    Ok(rows::list_for_account(db.conn(), account_id)
        .await?
        .iter()
        .map(|(w, role)| WorkspaceView::new(w, role))
        .collect())
}

/// A workspace's settings as stored and edited.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Display name.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Business calendar.
    pub calendar: BusinessCalendar,
}

/// A workspace's time zone (Asia/Shanghai if the stored one is unreadable: it was checked
/// when saved).
pub fn zone_of(workspace: &WorkspaceRow) -> chrono_tz::Tz {
    check_time_zone(&workspace.time_zone).unwrap_or(chrono_tz::Asia::Shanghai)
}

/// A workspace's business calendar (the default if the stored one is unreadable: it was
/// checked when saved).
pub fn calendar_of(workspace: &WorkspaceRow) -> Arc<BusinessCalendar> {
    Arc::new(BusinessCalendar::from_json(&workspace.calendar).unwrap_or_default())
}

/// The settings of a workspace.
///
/// # Errors
/// `Error::Internal` if the stored calendar is unreadable.
pub fn settings_of(workspace: &WorkspaceRow) -> Result<Settings> {
    Ok(Settings {
        name: workspace.name.clone(),
        time_zone: workspace.time_zone.clone(),
        calendar: BusinessCalendar::from_json(&workspace.calendar).map_err(Error::internal)?,
    })
}

/// Changes name, time zone and/or calendar (admins only); absent parts are kept.
///
/// # Errors
/// `Error::Forbidden` for non-admins; `Error::Invalid` listing every problem.
pub async fn update_settings(
    db: &Db,
    clock: &SharedClock,
    access: &Access,
    name: Option<&str>,
    time_zone: Option<&str>,
    calendar: Option<&serde_json::Value>,
) -> Result<Settings> {
    access.require_admin()?;
    let mut problems = Vec::new();
    let current = settings_of(&access.workspace)?;
    let name = match name.map(check_name).transpose() {
        Ok(name) => name.unwrap_or(current.name),
        Err(Error::Invalid { errors, .. }) => {
            problems.extend(errors);
            String::new()
        }
        Err(e) => return Err(e),
    };
    let time_zone = match time_zone {
        Some(zone) => match check_time_zone(zone) {
            Ok(_) => zone.to_owned(),
            Err(Error::Invalid { errors, .. }) => {
                problems.extend(errors);
                String::new()
            }
            Err(e) => return Err(e),
        },
        None => current.time_zone,
    };
    let calendar = match calendar {
        Some(doc) => match BusinessCalendar::from_json(doc) {
            Ok(calendar) => calendar,
            Err(Error::Invalid { errors, .. }) => {
                problems.extend(errors.into_iter().map(|mut e| {
                    e.pointer = format!("/calendar{}", e.pointer);
                    e
                }));
                BusinessCalendar::default()
            }
            Err(e) => return Err(e),
        },
        None => current.calendar,
    };
    if !problems.is_empty() {
        return Err(Error::invalid_all("invalid workspace settings", problems));
    }
    let stored = serde_json::to_value(&calendar).map_err(Error::internal)?;
    let row = rows::update_settings(
        db.conn(),
        access.workspace.id,
        name,
        time_zone,
        stored,
        clock.now(),
    )
    .await?;
    settings_of(&row)
}
