//! `/api/v1/account`: login, logout, the signed-in account, password, workspaces.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::Services;
use crate::auth::{self, AccountView};
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, SessionUser, session_cookie};
use crate::store::accounts;
use crate::workspaces::{self, WorkspaceView};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/", get(me))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/password", put(change_password))
        .route("/workspaces", get(list_workspaces).post(create_workspace))
        .route("/security-events", get(security_events))
        .route("/invitations/accept", post(accept_invitation))
        .route("/two-factor/setup", post(two_factor_setup))
        .route("/two-factor/enable", post(two_factor_enable))
        .route("/two-factor/disable", post(two_factor_disable))
        .route("/password-reset", post(request_password_reset))
        .route("/password-reset/confirm", post(confirm_password_reset))
}

async fn two_factor_setup(
    State(services): State<Services>,
    user: SessionUser,
) -> Result<Json<auth::TotpSetup>> {
    Ok(Json(
        auth::setup_totp(services.db(), user.principal.account_id).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TwoFactorCode {
    code: String,
    password: Option<String>,
}

#[derive(Debug, Serialize)]
struct RecoveryCodes {
    /// Each usable once in place of an authenticator code; shown only in this response.
    recovery_codes: Vec<String>,
}

async fn two_factor_enable(
    State(services): State<Services>,
    user: SessionUser,
    AppJson(body): AppJson<TwoFactorCode>,
) -> Result<Json<RecoveryCodes>> {
    let recovery_codes = auth::enable_totp(
        services.db(),
        services.clock(),
        user.principal.account_id,
        &body.code,
    )
    .await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

async fn two_factor_disable(
    State(services): State<Services>,
    user: SessionUser,
    AppJson(body): AppJson<TwoFactorCode>,
) -> Result<StatusCode> {
    auth::disable_totp(
        services.db(),
        services.clock(),
        user.principal.account_id,
        body.password.as_deref().unwrap_or_default(),
        &body.code,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    email: String,
}

/// Always 202: whether an account has this email is not for the caller to learn.
async fn request_password_reset(
    State(services): State<Services>,
    AppJson(body): AppJson<ResetRequest>,
) -> Result<StatusCode> {
    auth::request_password_reset(
        services.db(),
        services.clock(),
        auth::ResetMail {
            enabled: services.mail_enabled(),
            public_url: &services.config().public_url,
        },
        &body.email,
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetConfirm {
    token: String,
    new_password: String,
}

async fn confirm_password_reset(
    State(services): State<Services>,
    AppJson(body): AppJson<ResetConfirm>,
) -> Result<StatusCode> {
    auth::reset_password(
        services.db(),
        services.clock(),
        &body.token,
        &body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptInvitation {
    token: String,
    name: Option<String>,
    password: Option<String>,
}

/// Accepts an invitation: open to anyone holding its secret (a capability link); someone whose
/// email already has an account signs in first.
async fn accept_invitation(
    State(services): State<Services>,
    mut parts: axum::http::request::Parts,
    AppJson(body): AppJson<AcceptInvitation>,
) -> Result<(StatusCode, Json<WorkspaceView>)> {
    use axum::extract::FromRequestParts;
    let signed_in = SessionUser::from_request_parts(&mut parts, &services)
        .await
        .ok()
        .map(|user| user.principal.account_id);
    let workspace = workspaces::accept_invitation(
        services.db(),
        services.clock(),
        &body.token,
        signed_in,
        workspaces::NewAccount {
            name: body.name,
            password: body.password,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(workspace)))
}

/// The signed-in account's own security events (logins, failures, lockouts), newest first.
async fn security_events(
    State(services): State<Services>,
    user: SessionUser,
) -> Result<Json<Vec<crate::audit::EventView>>> {
    Ok(Json(
        crate::audit::list(
            services.db(),
            crate::store::people::AuditFilter {
                account_id: Some(user.principal.account_id),
                kind: Some("auth.".to_owned()),
                ..Default::default()
            },
            Some(100),
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
    /// The authenticator code, for accounts with two-factor sign-in.
    totp: Option<String>,
}

#[derive(Debug, Serialize)]
struct SessionView {
    account: AccountView,
    csrf_token: String,
    expires_at: Option<DateTime<Utc>>,
    workspaces: Vec<WorkspaceView>,
}

async fn login(
    State(services): State<Services>,
    AppJson(body): AppJson<Login>,
) -> Result<Response> {
    let session = auth::login(
        services.db(),
        services.clock(),
        services.limiter(),
        services.session_policy(),
        &body.email,
        &body.password,
        body.totp.as_deref(),
    )
    .await?;
    let workspaces = workspaces::list_for(services.db(), session.account.id).await?;
    let max_age = (session.expires_at - services.clock().now()).num_seconds();
    let cookie = session_cookie(&services, &session.secret, max_age)?;
    let view = SessionView {
        account: AccountView::from(&session.account),
        csrf_token: session.csrf_token,
        expires_at: Some(session.expires_at),
        workspaces,
    };
    let mut response = Json(view).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

async fn logout(State(services): State<Services>, user: SessionUser) -> Result<Response> {
    auth::logout(services.db(), &user.id_hash).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&services, "", 0)?);
    Ok(response)
}

async fn me(State(services): State<Services>, user: SessionUser) -> Result<Json<SessionView>> {
    let account = accounts::find(services.db().conn(), user.principal.account_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    Ok(Json(SessionView {
        account: AccountView::from(&account),
        csrf_token: user.csrf_token,
        expires_at: None,
        workspaces: workspaces::list_for(services.db(), account.id).await?,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(services): State<Services>,
    user: SessionUser,
    AppJson(body): AppJson<PasswordChange>,
) -> Result<StatusCode> {
    auth::change_password(
        services.db(),
        services.clock(),
        user.principal.account_id,
        Some(&user.id_hash),
        &body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_workspaces(
    State(services): State<Services>,
    user: SessionUser,
) -> Result<Json<Vec<WorkspaceView>>> {
    Ok(Json(
        workspaces::list_for(services.db(), user.principal.account_id).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWorkspace {
    slug: String,
    name: String,
    time_zone: Option<String>,
}

async fn create_workspace(
    State(services): State<Services>,
    user: SessionUser,
    AppJson(body): AppJson<NewWorkspace>,
) -> Result<(StatusCode, Json<WorkspaceView>)> {
    let tx = services.db().begin().await?;
    let workspace = workspaces::create(
        &tx,
        services.clock(),
        user.principal.account_id,
        &body.slug,
        &body.name,
        body.time_zone.as_deref(),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(WorkspaceView::new(&workspace, "owner")),
    ))
}
