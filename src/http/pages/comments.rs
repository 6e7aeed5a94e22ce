//! Comments from the record page: write one (a refusal redraws the page with the text kept),
//! edit or delete one's own, and the mention picker's suggestions.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::member::Member;
use super::records::{Pairs, finish, first, for_script, problem_text, see_other};
use crate::app::Services;
use crate::error::{Error, Result};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/e/{entity}/{id}/comments", post(create))
        .route(
            "/w/{workspace}/e/{entity}/{id}/mentionable",
            get(mentionable),
        )
        .route(
            "/w/{workspace}/e/{entity}/{id}/comments/{comment}/edit",
            post(edit),
        )
        .route(
            "/w/{workspace}/e/{entity}/{id}/comments/{comment}/delete",
            post(delete),
        )
}

/// A refused comment redraws the record page with the text and the problem; anything else is
/// the error page.
async fn redraw_or_fail(
    services: &Services,
    member: &Member,
    entity: &str,
    id: &str,
    comment: Option<&str>,
    draft: &str,
    error: Error,
) -> Response {
    if matches!(error, Error::Invalid { .. } | Error::Conflict { .. }) {
        let here = format!("/w/{}/e/{entity}/{id}", member.slug());
        let composer = json!({
            "comment": comment,
            "draft": draft,
            "error": problem_text(&error, member.locale),
        });
        let drawn =
            super::records::draw_record(services, member, entity, id, &here, Some(composer)).await;
        return finish(drawn, member.locale);
    }
    finish(Err(error), member.locale)
}

async fn create(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id)): Path<(String, String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let body = first(&posted, "body").unwrap_or_default();
    let result: Result<Response> = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let comment = services
            .comments()
            .create(&member.ctx, &member.access, &entity, &id, body)
            .await?;
        Ok(see_other(&format!("{here}#comment-{}", comment.id)))
    }
    .await;
    match result {
        Ok(response) => response,
        Err(error) => redraw_or_fail(&services, &member, &entity, &id, None, body, error).await,
    }
}

async fn edit(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id, comment)): Path<(String, String, String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let body = first(&posted, "body").unwrap_or_default();
    let result: Result<Response> = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let version = first(&posted, "version").and_then(|v| v.parse().ok());
        services
            .comments()
            .edit(&member.ctx, &member.access, &comment, body, version)
            .await?;
        Ok(see_other(&format!("{here}#comment-{comment}")))
    }
    .await;
    match result {
        Ok(response) => response,
        Err(error) => {
            redraw_or_fail(
                &services,
                &member,
                &entity,
                &id,
                Some(&comment),
                body,
                error,
            )
            .await
        }
    }
}

async fn delete(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id, comment)): Path<(String, String, String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        services
            .comments()
            .delete(&member.ctx, &member.access, &comment)
            .await?;
        Ok(see_other(&here))
    }
    .await;
    finish(result, member.locale)
}

#[derive(Debug, Deserialize)]
struct PickerQuery {
    #[serde(default)]
    q: String,
}

/// The picker's suggestions as JSON: `[{kind, id, name, detail}]`.
async fn mentionable(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id)): Path<(String, String, String)>,
    Query(query): Query<PickerQuery>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let found = services
        .comments()
        .mentionable(&member.ctx, &member.access, &entity, &id, &query.q, 8)
        .await
        .map(|found| axum::Json(found).into_response());
    for_script(found, member.locale)
}
