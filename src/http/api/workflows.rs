//! `/api/v1/w/{workspace}/workflow-runs`, `/workflows/{key}/runs` and `/approvals`: workflow
//! runs and their logs (retry, cancel), manual starts, and approvals.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::records::Caller;
use crate::app::Services;
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, AppQuery, Workspace};
use crate::store::workflows::RunFilter;
use crate::workflows::RunView;
use crate::workflows::approvals::{self, Act, ApprovalView};
use crate::workflows::service::{self, Started};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/workflow-runs", get(list))
        .route("/w/{workspace}/workflow-runs/{id}", get(show))
        .route("/w/{workspace}/workflow-runs/{id}/retry", post(retry))
        .route("/w/{workspace}/workflow-runs/{id}/cancel", post(cancel))
        .route("/w/{workspace}/workflows/{key}/runs", post(start))
        .route("/w/{workspace}/approvals", get(approvals))
        .route("/w/{workspace}/approvals/{id}", get(approval))
        .route(
            "/w/{workspace}/approvals/{id}/actions",
            post(approval_action),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunQuery {
    workflow: Option<String>,
    status: Option<String>,
    entity: Option<String>,
    record: Option<Uuid>,
    before: Option<Uuid>,
    limit: Option<u64>,
}

fn run_id(raw: &str) -> Result<Uuid> {
    Uuid::parse_str(raw).map_err(|_| Error::not_found("workflow run"))
}

async fn list(
    State(services): State<Services>,
    ws: Workspace,
    AppQuery(query): AppQuery<RunQuery>,
) -> Result<Json<Vec<RunView>>> {
    let record = match (query.entity, query.record) {
        (Some(entity), Some(id)) => Some((entity, id)),
        (None, None) => None,
        _ => {
            return Err(Error::invalid(
                "/record",
                "pair",
                "filter by record with both entity and record",
            ));
        }
    };
    let filter = RunFilter {
        workflow: query.workflow,
        status: query.status,
        record,
        before: query.before,
    };
    Ok(Json(
        service::list(&services.records(), &ws.access, filter, query.limit).await?,
    ))
}

async fn show(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<RunView>> {
    Ok(Json(
        service::get(&services.records(), &ws.access, run_id(&id)?).await?,
    ))
}

async fn retry(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<RunView>> {
    Ok(Json(
        service::retry(&services.records(), &ws.access, run_id(&id)?).await?,
    ))
}

async fn cancel(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<RunView>> {
    Ok(Json(
        service::cancel(&services.records(), &ws.access, run_id(&id)?).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(default)]
    records: Vec<String>,
}

async fn start(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
    Path((_, key)): Path<(String, String)>,
    AppJson(body): AppJson<StartBody>,
) -> Result<(axum::http::StatusCode, Json<Started>)> {
    let started = service::start_manual(
        &services.records(),
        &ws.access,
        &caller.ctx,
        &key,
        &body.records,
    )
    .await?;
    Ok((axum::http::StatusCode::ACCEPTED, Json(started)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalQuery {
    #[serde(rename = "box")]
    which: Option<String>,
    limit: Option<u64>,
}

fn approval_id(raw: &str) -> Result<Uuid> {
    Uuid::parse_str(raw).map_err(|_| Error::not_found("approval"))
}

async fn approvals(
    State(services): State<Services>,
    ws: Workspace,
    AppQuery(query): AppQuery<ApprovalQuery>,
) -> Result<Json<Vec<ApprovalView>>> {
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > service::MAX_PAGE {
        return Err(Error::invalid(
            "/limit",
            "range",
            format!("limit is 1–{}", service::MAX_PAGE),
        ));
    }
    Ok(Json(
        approvals::inbox(
            services.db(),
            ws.access.workspace.id,
            ws.access.account_id,
            ws.access.policy.may(crate::access::Right::Workflows),
            query.which.as_deref().unwrap_or("pending"),
            limit,
        )
        .await?,
    ))
}

async fn approval(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ApprovalView>> {
    Ok(Json(
        approvals::get(
            services.db(),
            ws.access.workspace.id,
            ws.access.account_id,
            ws.access.policy.may(crate::access::Right::Workflows),
            approval_id(&id)?,
        )
        .await?,
    ))
}

async fn approval_action(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
    AppJson(act): AppJson<Act>,
) -> Result<Json<ApprovalView>> {
    let id = approval_id(&id)?;
    // Someone with no part in it learns nothing of it.
    approvals::get(
        services.db(),
        ws.access.workspace.id,
        ws.access.account_id,
        ws.access.policy.may(crate::access::Right::Workflows),
        id,
    )
    .await?;
    Ok(Json(
        approvals::act(
            services.db(),
            services.clock(),
            ws.access.workspace.id,
            approvals::Actor {
                id: ws.access.account_id,
                manager: ws.access.policy.may(crate::access::Right::Workflows),
            },
            id,
            act,
        )
        .await?,
    ))
}
