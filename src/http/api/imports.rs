//! `/api/v1/w/{workspace}/imports`: spreadsheet imports. The file is the request body
//! (`POST …/imports?entity=lead&file_name=leads.csv`, any media type, up to 256 MB, streamed to
//! disk); then `…/{id}/check` (a dry run) or `…/{id}/run` with the settings, `…/{id}` for
//! progress, `…/{id}/problems` for the report, `…/{id}/cancel`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::records::Caller;
use crate::app::Services;
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, AppQuery};
use crate::imports::{ImportView, MAX_FILE_BYTES, ProblemView, Settings};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/imports", post(upload).get(list))
        .route("/w/{workspace}/imports/{id}", get(show))
        .route("/w/{workspace}/imports/{id}/check", post(check))
        .route("/w/{workspace}/imports/{id}/run", post(run))
        .route("/w/{workspace}/imports/{id}/cancel", post(cancel))
        .route("/w/{workspace}/imports/{id}/problems", get(problems))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    entity: String,
    file_name: Option<String>,
    encoding: Option<String>,
    sheet: Option<String>,
}

fn import_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Error::not_found(format!("import {text:?}")))
}

async fn upload(
    State(services): State<Services>,
    caller: Caller,
    AppQuery(query): AppQuery<UploadQuery>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<ImportView>)> {
    // Rights first: nothing is received for an entity the caller cannot import into.
    let shape = services.records().shape(&caller.ctx, &query.entity).await?;
    if !shape.can_create && !shape.can_update {
        return Err(Error::forbidden(format!(
            "your role may not create or change {} records",
            query.entity
        )));
    }
    let file = crate::http::spool::spool(body.into_data_stream(), MAX_FILE_BYTES).await?;
    let name = query.file_name.unwrap_or_else(|| "import.csv".to_owned());
    let view = services
        .imports()
        .upload(
            &caller.ctx,
            &query.entity,
            &name,
            file.path(),
            query.encoding.as_deref(),
            query.sheet.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    entity: Option<String>,
}

async fn list(
    State(services): State<Services>,
    caller: Caller,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<Json<Vec<ImportView>>> {
    Ok(Json(
        services
            .imports()
            .list(&caller.ctx, query.entity.as_deref())
            .await?,
    ))
}

async fn show(
    State(services): State<Services>,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ImportView>> {
    Ok(Json(
        services.imports().get(&caller.ctx, import_id(&id)?).await?,
    ))
}

async fn check(
    State(services): State<Services>,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    AppJson(settings): AppJson<Settings>,
) -> Result<(StatusCode, Json<ImportView>)> {
    start(&services, &caller, &id, settings, true).await
}

async fn run(
    State(services): State<Services>,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    AppJson(settings): AppJson<Settings>,
) -> Result<(StatusCode, Json<ImportView>)> {
    start(&services, &caller, &id, settings, false).await
}

/// Starts a dry run or the import: 202 with the import, its job queued.
async fn start(
    services: &Services,
    caller: &Caller,
    id: &str,
    settings: Settings,
    dry_run: bool,
) -> Result<(StatusCode, Json<ImportView>)> {
    let view = services
        .imports()
        .start(&caller.ctx, import_id(id)?, settings, dry_run)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

async fn cancel(
    State(services): State<Services>,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ImportView>> {
    Ok(Json(
        services
            .imports()
            .cancel(&caller.ctx, import_id(&id)?)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProblemQuery {
    after: Option<i64>,
    limit: Option<u64>,
}

async fn problems(
    State(services): State<Services>,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    AppQuery(query): AppQuery<ProblemQuery>,
) -> Result<Json<Vec<ProblemView>>> {
    Ok(Json(
        services
            .imports()
            .problems(
                &caller.ctx,
                import_id(&id)?,
                query.after.unwrap_or(0),
                query.limit.unwrap_or(100),
            )
            .await?,
    ))
}
