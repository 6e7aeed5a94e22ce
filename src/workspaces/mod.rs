//! Workspaces (tenants): creation, who may enter, members and roles, time zone and calendar.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::{BUILT_IN_ROLES, Credential, Principal, role_can_administer};
use crate::calendar::BusinessCalendar;
use crate::clock::SharedClock;
use crate::domain::{Email, WorkspaceSlug, display_name, new_id};
use crate::error::{Error, Result};
use crate::store::workspaces::{self as rows, MembershipRow, WorkspaceRow};
use crate::store::{Conn, Db, accounts};

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
}

impl Access {
    /// Whether the caller administers the workspace.
    pub fn is_admin(&self) -> bool {
        role_can_administer(&self.role)
    }

    /// Refuses non-admins.
    ///
    /// # Errors
    /// `Error::Forbidden`.
    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "only a workspace owner or admin may do this".to_owned(),
            ))
        }
    }
}

/// Resolves a caller's access to the workspace named by `slug`.
///
/// Anything the caller may not enter (no such workspace, not a member, or a token bound to
/// another workspace) is the same 404, so workspace names do not leak.
///
/// # Errors
/// `Error::NotFound`.
pub async fn access(
    db: &Db,
    cache: &AccessCache,
    principal: &Principal,
    slug: &str,
) -> Result<Access> {
    let not_found = || Error::not_found(format!("workspace {slug:?}"));
    let key = (principal.account_id, slug.to_owned());
    let access = match cache.get(&key) {
        Some(access) => access,
        None => {
            if WorkspaceSlug::parse(slug).is_err() {
                return Err(not_found());
            }
            let epoch = crate::store::access_epoch();
            let (workspace, role) = rows::find_with_role(db.conn(), slug, principal.account_id)
                .await?
                .ok_or_else(not_found)?;
            let access = Access {
                workspace,
                account_id: principal.account_id,
                role,
            };
            cache.insert(key, access.clone(), epoch);
            access
        }
    };
    if let Credential::Token { workspace_id, .. } = &principal.credential
        && *workspace_id != access.workspace.id
    {
        return Err(not_found());
    }
    Ok(access)
}

/// (account, workspace slug) → the account's access there, see [`crate::auth::cache`].
pub type AccessCache = crate::auth::EpochCache<(Uuid, String), Access>;

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
        MembershipRow {
            workspace_id: workspace.id,
            account_id: owner,
            role: "owner".to_owned(),
            created_at: now,
        },
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

/// A member as listed.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    /// Account id.
    pub account_id: Uuid,
    /// Email.
    pub email: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Joined.
    pub joined_at: DateTime<Utc>,
}

/// The members of the caller's workspace.
///
/// # Errors
/// `Error::Db`.
pub async fn members(db: &Db, access: &Access) -> Result<Vec<MemberView>> {
    Ok(rows::list_members(db.conn(), access.workspace.id)
        .await?
        .into_iter()
        .map(|m| MemberView {
            account_id: m.account_id,
            email: m.email,
            name: m.name,
            role: m.role,
            joined_at: m.joined_at,
        })
        .collect())
}

/// Adds an existing account to the workspace (or changes its role); admins only. Invitations
/// of people without an account come with the people-and-access issue.
///
/// # Errors
/// `Error::Forbidden`, `Error::Invalid` (unknown role or account), `Error::Db`.
pub async fn add_member(
    db: &Db,
    clock: &SharedClock,
    access: &Access,
    email: &str,
    role: &str,
) -> Result<MemberView> {
    access.require_admin()?;
    if !BUILT_IN_ROLES.contains(&role) {
        return Err(Error::invalid(
            "/role",
            "unknown_role",
            format!("role must be one of {}", BUILT_IN_ROLES.join(", ")),
        ));
    }
    if role == "owner" && access.role != "owner" {
        return Err(Error::Forbidden(
            "only an owner may make another owner".to_owned(),
        ));
    }
    let email = Email::parse(email)?;
    let account = accounts::find_by_email(db.conn(), email.as_str())
        .await?
        .ok_or_else(|| Error::invalid("/email", "unknown_account", "no account has this email"))?;
    let now = clock.now();
    let tx = db.begin().await?;
    // The owner checks below and the write must see the same memberships.
    rows::lock(&tx, access.workspace.id, now).await?;
    let current = rows::role_of(&tx, access.workspace.id, account.id).await?;
    if current.as_deref() == Some("owner") && role != "owner" {
        if access.role != "owner" {
            return Err(Error::Forbidden(
                "only an owner may change another owner's role".to_owned(),
            ));
        }
        if rows::count_owners(&tx, access.workspace.id).await? <= 1 {
            return Err(Error::invalid(
                "/role",
                "last_owner",
                "a workspace keeps at least one owner; make someone else owner first",
            ));
        }
    }
    rows::upsert_membership(
        &tx,
        MembershipRow {
            workspace_id: access.workspace.id,
            account_id: account.id,
            role: role.to_owned(),
            created_at: now,
        },
    )
    .await?;
    tx.commit().await?;
    crate::store::access_changed();
    Ok(MemberView {
        account_id: account.id,
        email: account.email,
        name: account.name,
        role: role.to_owned(),
        joined_at: now,
    })
}
