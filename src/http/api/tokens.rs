//! `/api/v1/w/{workspace}/tokens`: API tokens bound to the workspace (secret shown once).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::Services;
use crate::auth::{self, Credential, TokenView};
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, Authenticated, Workspace};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/tokens", get(list).post(create))
        .route("/w/{workspace}/tokens/{id}", delete(revoke))
}

async fn list(State(services): State<Services>, ws: Workspace) -> Result<Json<Vec<TokenView>>> {
    Ok(Json(
        auth::list_tokens(
            services.db(),
            ws.access.workspace.id,
            ws.access.account_id,
            ws.access.is_admin(),
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    expires_at: Option<DateTime<Utc>>,
    role: Option<String>,
}

#[derive(Debug, Serialize)]
struct CreatedToken {
    #[serde(flatten)]
    token: TokenView,
    /// The secret; shown only in this response.
    secret: String,
}

async fn create(
    State(services): State<Services>,
    ws: Workspace,
    credential: Authenticated,
    AppJson(body): AppJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>)> {
    // A leaked token must not be able to mint tokens that outlive its revocation.
    if matches!(credential.0.credential, Credential::Token { .. }) {
        return Err(Error::forbidden(
            "API tokens are created by a signed-in person, not by another token",
        ));
    }
    if let Some(role) = &body.role {
        crate::workspaces::check_role_exists(
            services.db(),
            services.access_cache(),
            &ws.access,
            role,
        )
        .await?;
    }
    let (token, secret) = auth::create_token(
        services.db(),
        services.clock(),
        ws.access.workspace.id,
        ws.access.account_id,
        &body.name,
        body.expires_at,
        body.role.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

async fn revoke(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("token"))?;
    auth::revoke_token(
        services.db(),
        services.clock(),
        ws.access.workspace.id,
        id,
        ws.access.account_id,
        ws.access.is_admin(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
