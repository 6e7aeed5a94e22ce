//! `/api/v1/w/{workspace}/jobs`: background jobs of the workspace, their attempts, and retrying
//! dead ones (admins).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::Services;
use crate::error::{Error, Result};
use crate::http::extract::{AppQuery, Workspace};
use crate::jobs::{self, AttemptView, JobView};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/jobs", get(list))
        .route("/w/{workspace}/jobs/{id}", get(show))
        .route("/w/{workspace}/jobs/{id}/retries", post(retry))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobQuery {
    status: Option<String>,
    limit: Option<u64>,
}

async fn list(
    State(services): State<Services>,
    ws: Workspace,
    AppQuery(query): AppQuery<JobQuery>,
) -> Result<Json<Vec<JobView>>> {
    let admin = ws.access.is_admin();
    Ok(Json(
        jobs::list(
            services.db(),
            ws.access.workspace.id,
            query.status.as_deref(),
            query.limit,
        )
        .await?
        .into_iter()
        .map(|job| redact(job, admin))
        .collect(),
    ))
}

/// Payloads and checkpoints may carry URLs, record ids and other details: only admins see them.
fn redact(mut job: JobView, admin: bool) -> JobView {
    if !admin {
        job.payload = serde_json::Value::Null;
        job.checkpoint = None;
    }
    job
}

#[derive(Debug, Serialize)]
struct JobDetail {
    #[serde(flatten)]
    job: JobView,
    attempt_log: Vec<AttemptView>,
}

fn job_id(raw: &str) -> Result<Uuid> {
    Uuid::parse_str(raw).map_err(|_| Error::not_found("job"))
}

async fn show(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<JobDetail>> {
    let (job, attempt_log) = jobs::get(services.db(), ws.access.workspace.id, job_id(&id)?).await?;
    Ok(Json(JobDetail {
        job: redact(job, ws.access.is_admin()),
        attempt_log,
    }))
}

async fn retry(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<JobView>> {
    ws.access.require_admin()?;
    Ok(Json(
        jobs::retry_dead(
            services.db(),
            services.clock(),
            ws.access.workspace.id,
            job_id(&id)?,
        )
        .await?,
    ))
}
