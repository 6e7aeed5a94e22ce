//! `/api/v1/w/{workspace}/definitions`: drafts, publishing, versions and rollback of every
//! definition kind. Reading needs membership; changing needs an owner or admin.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::app::Services;
use crate::definitions::{DefinitionView, Kind, VersionView};
use crate::domain::Actor;
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, AppQuery, Workspace};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/definitions", get(list_all))
        .route("/w/{workspace}/definitions/{kind}", get(list_kind))
        .route("/w/{workspace}/definitions/{kind}/{key}", get(show))
        .route(
            "/w/{workspace}/definitions/{kind}/{key}/draft",
            put(save_draft).delete(discard_draft),
        )
        .route(
            "/w/{workspace}/definitions/{kind}/{key}/versions",
            get(versions).post(publish),
        )
        .route(
            "/w/{workspace}/definitions/{kind}/{key}/versions/{version}",
            get(version),
        )
}

fn actor(ws: &Workspace) -> Actor {
    Actor::Account {
        id: ws.access.account_id,
    }
}

/// The revision from the body, else from `If-Match`.
fn revision(body: Option<i64>, headers: &HeaderMap) -> Result<Option<i64>> {
    crate::http::extract::body_or_if_match(body, headers, "/revision")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KindFilter {
    kind: Option<String>,
}

async fn list_all(
    State(services): State<Services>,
    ws: Workspace,
    AppQuery(filter): AppQuery<KindFilter>,
) -> Result<Json<Vec<DefinitionView>>> {
    let kind = filter.kind.as_deref().map(Kind::parse).transpose()?;
    Ok(Json(services.definitions().list(ws.scope(), kind).await?))
}

async fn list_kind(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, kind)): Path<(String, String)>,
) -> Result<Json<Vec<DefinitionView>>> {
    let kind = Kind::parse(&kind)?;
    Ok(Json(
        services.definitions().list(ws.scope(), Some(kind)).await?,
    ))
}

async fn show(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, kind, key)): Path<(String, String, String)>,
) -> Result<Json<DefinitionView>> {
    let kind = Kind::parse(&kind)?;
    Ok(Json(
        services.definitions().get(ws.scope(), kind, &key).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Draft {
    document: Value,
    revision: Option<i64>,
}

async fn save_draft(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, kind, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    AppJson(body): AppJson<Draft>,
) -> Result<Json<DefinitionView>> {
    ws.access.require(crate::access::Right::Definitions)?;
    let kind = Kind::parse(&kind)?;
    let revision = revision(body.revision, &headers)?;
    Ok(Json(
        services
            .definitions()
            .save_draft(ws.scope(), kind, &key, body.document, revision, actor(&ws))
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevisionQuery {
    revision: Option<i64>,
}

async fn discard_draft(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, kind, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    AppQuery(query): AppQuery<RevisionQuery>,
) -> Result<Json<DefinitionView>> {
    ws.access.require(crate::access::Right::Definitions)?;
    let kind = Kind::parse(&kind)?;
    let revision = revision(query.revision, &headers)?.ok_or_else(|| {
        Error::invalid(
            "/revision",
            "required",
            "send the revision (query or If-Match)",
        )
    })?;
    Ok(Json(
        services
            .definitions()
            .discard_draft(ws.scope(), kind, &key, revision, actor(&ws))
            .await?,
    ))
}

async fn versions(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, kind, key)): Path<(String, String, String)>,
) -> Result<Json<Vec<VersionView>>> {
    let kind = Kind::parse(&kind)?;
    Ok(Json(
        services
            .definitions()
            .versions(ws.scope(), kind, &key)
            .await?,
    ))
}

async fn version(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, kind, key, version)): Path<(String, String, String, String)>,
) -> Result<Json<VersionView>> {
    let kind = Kind::parse(&kind)?;
    let number: i32 = version.parse().map_err(|_| Error::not_found("version"))?;
    services
        .definitions()
        .versions(ws.scope(), kind, &key)
        .await?
        .into_iter()
        .find(|v| v.version == number)
        .map(Json)
        .ok_or_else(|| Error::not_found(format!("version {number}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Publish {
    revision: Option<i64>,
    /// Republish this older version instead of the draft.
    rollback_to: Option<i32>,
}

async fn publish(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, kind, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    AppJson(body): AppJson<Publish>,
) -> Result<(StatusCode, Json<DefinitionView>)> {
    ws.access.require(crate::access::Right::Definitions)?;
    let kind = Kind::parse(&kind)?;
    let revision = revision(body.revision, &headers)?.ok_or_else(|| {
        Error::invalid(
            "/revision",
            "required",
            "send the revision you last read (body or If-Match)",
        )
    })?;
    let view = services
        .definitions()
        .publish(
            ws.scope(),
            kind,
            &key,
            revision,
            body.rollback_to,
            actor(&ws),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}
