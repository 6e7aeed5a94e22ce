//! A record printed with one of its entity's print templates: a standalone page sized as the
//! paper, with the workspace's header, ready for the browser's print dialog (or "save as PDF").

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

use super::page;
use super::records::finish;
use crate::app::Services;

pub(super) fn router() -> Router<Services> {
    Router::new().route(
        "/w/{workspace}/e/{entity}/{id}/print/{template}",
        get(print),
    )
}

async fn print(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id, template)): Path<(String, String, String, String)>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}/print/{template}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        let printed = services
            .records()
            .print(
                &member.ctx,
                &member.access.workspace.name,
                &entity,
                &id,
                &template,
                member.locale,
            )
            .await?;
        page(
            "print.html",
            json!({
                "printed": printed,
                "workspace_name": member.access.workspace.name,
                "lang": member.locale.tag(),
                "back": format!("/w/{slug}/e/{entity}/{id}"),
            }),
            StatusCode::OK,
        )
    }
    .await;
    finish(result, member.locale)
}
