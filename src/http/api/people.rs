//! `/api/v1/w/{workspace}`: members (change, deactivate with hand-over, reactivate, remove), the
//! org tree, roles, the caller's own rights, and the audit log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::app::Services;
use crate::audit::{self, EventView};
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, AppQuery, Workspace};
use crate::store::people::AuditFilter;
use crate::workspaces::{
    self, HandOver, InvitationView, MemberPatch, MemberView, RoleView, UnitInput, UnitView,
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route(
            "/w/{workspace}/members/{account}",
            get(show_member).patch(update_member).delete(remove_member),
        )
        .route(
            "/w/{workspace}/members/{account}/deactivate",
            post(deactivate),
        )
        .route(
            "/w/{workspace}/members/{account}/reactivate",
            post(reactivate),
        )
        .route("/w/{workspace}/members/{account}/manager", get(manager))
        .route("/w/{workspace}/org/units", get(units).post(create_unit))
        .route(
            "/w/{workspace}/org/units/{id}",
            axum::routing::patch(update_unit).delete(delete_unit),
        )
        .route("/w/{workspace}/roles", get(roles))
        .route(
            "/w/{workspace}/roles/{key}",
            put(save_role).delete(delete_role),
        )
        .route("/w/{workspace}/access", get(my_access))
        .route("/w/{workspace}/invitations", get(invitations).post(invite))
        .route(
            "/w/{workspace}/invitations/{id}",
            axum::routing::delete(revoke_invitation),
        )
        .route("/w/{workspace}/audit", get(audit_log))
}

fn account_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Error::not_found(format!("member {text:?}")))
}

async fn show_member(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, account)): Path<(String, String)>,
) -> Result<Json<MemberView>> {
    let id = account_id(&account)?;
    workspaces::members(services.db(), &ws.access)
        .await?
        .into_iter()
        .find(|m| m.account_id == id)
        .map(Json)
        .ok_or_else(|| Error::not_found(format!("member {id}")))
}

/// Distinguishes an absent key (keep) from `null` (clear).
fn some<'de, D, T>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    role: Option<String>,
    #[serde(default, deserialize_with = "some")]
    unit_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "some")]
    manager_id: Option<Option<Uuid>>,
}

async fn update_member(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, account)): Path<(String, String)>,
    AppJson(body): AppJson<MemberBody>,
) -> Result<Json<MemberView>> {
    let id = account_id(&account)?;
    Ok(Json(
        workspaces::update_member(
            services.db(),
            services.clock(),
            services.access_cache(),
            &ws.access,
            id,
            MemberPatch {
                role: body.role,
                unit_id: body.unit_id,
                manager_id: body.manager_id,
            },
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeactivateBody {
    hand_over_to: Option<Uuid>,
}

async fn deactivate(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, account)): Path<(String, String)>,
    AppJson(body): AppJson<DeactivateBody>,
) -> Result<Json<HandOver>> {
    let id = account_id(&account)?;
    Ok(Json(
        workspaces::deactivate(
            services.db(),
            services.clock(),
            services.registry(),
            &ws.access,
            id,
            body.hand_over_to,
        )
        .await?,
    ))
}

async fn reactivate(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, account)): Path<(String, String)>,
) -> Result<Json<MemberView>> {
    let id = account_id(&account)?;
    Ok(Json(
        workspaces::reactivate(services.db(), services.clock(), &ws.access, id).await?,
    ))
}

async fn remove_member(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, account)): Path<(String, String)>,
) -> Result<StatusCode> {
    let id = account_id(&account)?;
    workspaces::remove_member(services.db(), services.clock(), &ws.access, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
struct ManagerView {
    account_id: Uuid,
    manager_id: Option<Uuid>,
}

async fn manager(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, account)): Path<(String, String)>,
) -> Result<Json<ManagerView>> {
    let id = account_id(&account)?;
    let manager_id =
        workspaces::manager_of(services.db(), services.access_cache(), &ws.access, id).await?;
    Ok(Json(ManagerView {
        account_id: id,
        manager_id,
    }))
}

async fn units(State(services): State<Services>, ws: Workspace) -> Result<Json<Vec<UnitView>>> {
    Ok(Json(
        workspaces::org_units(services.db(), services.access_cache(), &ws.access).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitBody {
    #[serde(default)]
    parent_id: Option<Uuid>,
    kind: String,
    name: String,
}

async fn create_unit(
    State(services): State<Services>,
    ws: Workspace,
    AppJson(body): AppJson<UnitBody>,
) -> Result<(StatusCode, Json<UnitView>)> {
    let unit = workspaces::save_unit(
        services.db(),
        services.clock(),
        services.access_cache(),
        &ws.access,
        None,
        UnitInput {
            parent_id: body.parent_id,
            kind: body.kind,
            name: body.name,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(unit)))
}

fn unit_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Error::not_found(format!("unit {text:?}")))
}

async fn update_unit(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
    AppJson(body): AppJson<UnitBody>,
) -> Result<Json<UnitView>> {
    let id = unit_id(&id)?;
    Ok(Json(
        workspaces::save_unit(
            services.db(),
            services.clock(),
            services.access_cache(),
            &ws.access,
            Some(id),
            UnitInput {
                parent_id: body.parent_id,
                kind: body.kind,
                name: body.name,
            },
        )
        .await?,
    ))
}

async fn delete_unit(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let id = unit_id(&id)?;
    workspaces::delete_unit(services.db(), services.access_cache(), &ws.access, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn roles(State(services): State<Services>, ws: Workspace) -> Result<Json<Vec<RoleView>>> {
    Ok(Json(
        workspaces::roles(services.db(), services.access_cache(), &ws.access).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    name: String,
    rights: Value,
}

async fn save_role(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, key)): Path<(String, String)>,
    AppJson(body): AppJson<RoleBody>,
) -> Result<Json<RoleView>> {
    Ok(Json(
        workspaces::save_role(
            services.db(),
            services.clock(),
            services.registry(),
            &ws.access,
            &key,
            &body.name,
            &body.rights,
        )
        .await?,
    ))
}

async fn delete_role(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, key)): Path<(String, String)>,
) -> Result<StatusCode> {
    workspaces::delete_role(services.db(), services.clock(), &ws.access, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
struct AccessView {
    account_id: Uuid,
    role: String,
    is_admin: bool,
    rights: Value,
}

/// What the caller may do here (the UI hides what it may not).
async fn my_access(ws: Workspace) -> Json<AccessView> {
    Json(AccessView {
        account_id: ws.access.account_id,
        role: ws.access.role.clone(),
        is_admin: ws.access.is_admin(),
        rights: ws.access.policy.rights.to_json(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    kind: Option<String>,
    account_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: Option<u64>,
}

/// The workspace's security events, newest first (owners and admins).
async fn audit_log(
    State(services): State<Services>,
    ws: Workspace,
    AppQuery(query): AppQuery<AuditQuery>,
) -> Result<Json<Vec<EventView>>> {
    ws.access.require_admin()?;
    Ok(Json(
        audit::list(
            services.db(),
            AuditFilter {
                workspace_id: Some(ws.access.workspace.id),
                account_id: query.account_id,
                kind: query.kind,
                before: query.before,
            },
            query.limit,
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    email: String,
    role: String,
    expires_in_days: Option<i64>,
}

#[derive(Debug, Serialize)]
struct CreatedInvitation {
    #[serde(flatten)]
    invitation: InvitationView,
    /// The secret of the link; shown only in this response.
    token: String,
    /// The page that accepts it.
    link: String,
}

async fn invite(
    State(services): State<Services>,
    ws: Workspace,
    AppJson(body): AppJson<InviteBody>,
) -> Result<(StatusCode, Json<CreatedInvitation>)> {
    let (invitation, token) = workspaces::invite(
        services.db(),
        services.clock(),
        services.access_cache(),
        &ws.access,
        &body.email,
        &body.role,
        body.expires_in_days,
        services
            .mail_enabled()
            .then_some(services.config().public_url.as_str()),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvitation {
            invitation,
            link: format!("/invitations/{token}"),
            token,
        }),
    ))
}

async fn invitations(
    State(services): State<Services>,
    ws: Workspace,
) -> Result<Json<Vec<InvitationView>>> {
    Ok(Json(
        workspaces::invitations(services.db(), services.clock(), &ws.access).await?,
    ))
}

async fn revoke_invitation(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("invitation"))?;
    workspaces::revoke_invitation(services.db(), services.clock(), &ws.access, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
