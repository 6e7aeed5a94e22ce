//! `/api/v1/w/{workspace}/entities/{entity}/records/{id}/comments` and
//! `/api/v1/w/{workspace}/comments/{id}`: comments on records, their edits, deletion and
//! earlier versions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::records::Caller;
use crate::app::Services;
use crate::comments::{Candidate, CommentView, RevisionView};
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, AppQuery, Workspace};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route(
            "/w/{workspace}/entities/{entity}/records/{id}/comments",
            get(list).post(create),
        )
        .route(
            "/w/{workspace}/comments/{id}",
            axum::routing::patch(edit).delete(delete),
        )
        .route("/w/{workspace}/comments/{id}/revisions", get(revisions))
        .route(
            "/w/{workspace}/entities/{entity}/records/{id}/mentionable",
            get(mentionable),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MentionableQuery {
    #[serde(default)]
    q: String,
    limit: Option<usize>,
}

async fn mentionable(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
    AppQuery(query): AppQuery<MentionableQuery>,
) -> Result<Json<Vec<Candidate>>> {
    let limit = query.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(Error::invalid("/limit", "range", "limit is 1–50"));
    }
    Ok(Json(
        services
            .comments()
            .mentionable(&caller.ctx, &ws.access, &entity, &id, &query.q, limit)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewComment {
    body: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentEdit {
    body: String,
    version: Option<i64>,
}

async fn list(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
) -> Result<Json<Vec<CommentView>>> {
    Ok(Json(
        services
            .comments()
            .list(&caller.ctx, &ws.access, &entity, &id)
            .await?,
    ))
}

async fn create(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
    AppJson(body): AppJson<NewComment>,
) -> Result<(StatusCode, Json<CommentView>)> {
    let comment = services
        .comments()
        .create(&caller.ctx, &ws.access, &entity, &id, &body.body)
        .await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

async fn edit(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    AppJson(body): AppJson<CommentEdit>,
) -> Result<Json<CommentView>> {
    Ok(Json(
        services
            .comments()
            .edit(&caller.ctx, &ws.access, &id, &body.body, body.version)
            .await?,
    ))
}

async fn delete(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    services
        .comments()
        .delete(&caller.ctx, &ws.access, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revisions(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Vec<RevisionView>>> {
    Ok(Json(
        services
            .comments()
            .revisions(&caller.ctx, &ws.access, &id)
            .await?,
    ))
}
