//! `/api/v1/w/{workspace}/entities/{entity}/records/{id}/print/{template}`: a record drawn
//! with a print template (the document's cleaned HTML body, its paper and label).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::records::Caller;
use crate::app::Services;
use crate::error::{Error, Result};
use crate::http::extract::{AppQuery, Workspace};
use crate::printing::Printed;
use crate::render::i18n::Locale;

pub(super) fn router() -> Router<Services> {
    Router::new().route(
        "/w/{workspace}/entities/{entity}/records/{id}/print/{template}",
        get(print),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrintQuery {
    /// `en` or `zh-CN` (default English).
    lang: Option<String>,
}

async fn print(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
    Path((_, entity, id, template)): Path<(String, String, String, String)>,
    AppQuery(query): AppQuery<PrintQuery>,
) -> Result<Json<Printed>> {
    let locale = match query.lang.as_deref() {
        None => Locale::En,
        Some(tag) => Locale::from_tag(tag)
            .ok_or_else(|| Error::invalid("/lang", "language", "lang is en or zh-CN"))?,
    };
    Ok(Json(
        services
            .records()
            .print(
                &caller.ctx,
                &ws.access.workspace.name,
                &entity,
                &id,
                &template,
                locale,
            )
            .await?,
    ))
}
