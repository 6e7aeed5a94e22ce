//! `/api/v1/w/{workspace}/forms/{form}/links`: public share links of forms (外链表单) — make
//! one (its URL is in the answer, once), list them, revoke one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use uuid::Uuid;

use crate::app::Services;
use crate::error::{Error, Result};
use crate::forms::{self, LinkView, NewLink};
use crate::http::extract::{AppJson, Workspace};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/forms/{form}/links", get(list).post(create))
        .route("/w/{workspace}/forms/{form}/links/{id}", delete(revoke))
}

async fn create(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, form)): Path<(String, String)>,
    AppJson(body): AppJson<NewLink>,
) -> Result<(StatusCode, Json<LinkView>)> {
    let snapshot = services
        .registry()
        .snapshot(services.db(), ws.access.workspace.id, ws.scope().generation)
        .await?;
    let view = forms::create(
        services.db(),
        services.clock(),
        &ws.access,
        &snapshot,
        &form,
        body,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn list(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, form)): Path<(String, String)>,
) -> Result<Json<Vec<LinkView>>> {
    Ok(Json(forms::list(services.db(), &ws.access, &form).await?))
}

async fn revoke(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, _, id)): Path<(String, String, String)>,
) -> Result<StatusCode> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("form link"))?;
    forms::revoke(services.db(), &ws.access, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
