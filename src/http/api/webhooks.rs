//! `/api/v1/w/{workspace}/webhooks`: outbound webhook subscriptions (admins) and their recent
//! deliveries.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use uuid::Uuid;

use crate::app::Services;
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, Workspace};
use crate::jobs::JobView;
use crate::webhooks::{self, WebhookInput, WebhookView};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/webhooks", get(list).post(create))
        .route(
            "/w/{workspace}/webhooks/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/w/{workspace}/webhooks/{id}/deliveries", get(deliveries))
}

fn webhook_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Error::not_found(format!("webhook {text:?}")))
}

async fn list(State(services): State<Services>, ws: Workspace) -> Result<Json<Vec<WebhookView>>> {
    Ok(Json(webhooks::list(services.db(), &ws.access).await?))
}

async fn create(
    State(services): State<Services>,
    ws: Workspace,
    AppJson(input): AppJson<WebhookInput>,
) -> Result<(StatusCode, Json<WebhookView>)> {
    let snapshot = services
        .registry()
        .snapshot(services.db(), ws.access.workspace.id, ws.scope().generation)
        .await?;
    let view = webhooks::create(
        services.db(),
        services.clock(),
        &snapshot,
        &ws.access,
        input,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn show(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<WebhookView>> {
    Ok(Json(
        webhooks::get(services.db(), &ws.access, webhook_id(&id)?).await?,
    ))
}

async fn update(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
    AppJson(input): AppJson<WebhookInput>,
) -> Result<Json<WebhookView>> {
    let snapshot = services
        .registry()
        .snapshot(services.db(), ws.access.workspace.id, ws.scope().generation)
        .await?;
    Ok(Json(
        webhooks::update(
            services.db(),
            services.clock(),
            &snapshot,
            &ws.access,
            webhook_id(&id)?,
            input,
        )
        .await?,
    ))
}

async fn remove(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    webhooks::delete(services.db(), &ws.access, webhook_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn deliveries(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Vec<JobView>>> {
    Ok(Json(
        webhooks::deliveries(services.db(), &ws.access, webhook_id(&id)?).await?,
    ))
}
