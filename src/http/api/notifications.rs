//! `/api/v1/w/{workspace}/notifications`: the caller's inbox (unread count, mark read) and
//! their notification settings.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::Services;
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, AppQuery, Workspace};
use crate::notifications::{self, Inbox, Settings};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/notifications", get(inbox))
        .route("/w/{workspace}/notifications/read-all", post(read_all))
        .route(
            "/w/{workspace}/notifications/settings",
            get(settings).put(save_settings),
        )
        .route("/w/{workspace}/notifications/{id}/read", post(read))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InboxQuery {
    unread: Option<bool>,
    before: Option<Uuid>,
    limit: Option<u64>,
}

async fn inbox(
    State(services): State<Services>,
    ws: Workspace,
    AppQuery(query): AppQuery<InboxQuery>,
) -> Result<Json<Inbox>> {
    Ok(Json(
        notifications::inbox(
            services.db(),
            &ws.access,
            query.unread.unwrap_or(false),
            query.before,
            query.limit,
        )
        .await?,
    ))
}

async fn read(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("notification"))?;
    let changed =
        notifications::mark_read(services.db(), services.clock(), &ws.access, Some(id)).await?;
    Ok(Json(json!({"marked": changed})))
}

async fn read_all(State(services): State<Services>, ws: Workspace) -> Result<Json<Value>> {
    let changed =
        notifications::mark_read(services.db(), services.clock(), &ws.access, None).await?;
    Ok(Json(json!({"marked": changed})))
}

async fn settings(State(services): State<Services>, ws: Workspace) -> Result<Json<Settings>> {
    Ok(Json(
        notifications::my_settings(services.db(), &ws.access).await?,
    ))
}

async fn save_settings(
    State(services): State<Services>,
    ws: Workspace,
    AppJson(body): AppJson<Settings>,
) -> Result<Json<Settings>> {
    Ok(Json(
        notifications::save_settings(services.db(), services.clock(), &ws.access, body).await?,
    ))
}
