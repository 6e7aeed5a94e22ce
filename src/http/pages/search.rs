//! `/w/{ws}/search?q=…[&entity=…]`: the global search page behind the search box of every
//! workspace page. It calls the same `Records::search` as the API, so it finds what the member
//! may read and nothing else.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::member::{frame, snapshot, with};
use super::page;
use super::records::{finish, problem_text};
use crate::app::Services;
use crate::error::Result;
use crate::records::search::SearchRequest;

/// The search page's route.
pub(super) fn router() -> Router<Services> {
    Router::new().route("/w/{workspace}/search", get(search))
}

#[derive(Debug, Default, Deserialize)]
struct SearchForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    entity: String,
}

async fn search(
    State(services): State<Services>,
    headers: HeaderMap,
    axum::extract::Path(slug): axum::extract::Path<String>,
    Query(form): Query<SearchForm>,
) -> Response {
    let here = format!("/w/{slug}/search");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    finish(draw(&services, &member, &here, form).await, locale)
}

async fn draw(
    services: &Services,
    member: &super::member::Member,
    here: &str,
    form: SearchForm,
) -> Result<Response> {
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, here).await?;
    let entity = (!form.entity.is_empty()).then(|| form.entity.clone());
    let mut context = json!({"query": form.q, "entity": form.entity, "section": "search"});
    if !form.q.trim().is_empty() {
        let request = SearchRequest {
            q: form.q.clone(),
            limit: Some(if entity.is_some() { 50 } else { 10 }),
            entity,
        };
        match services.records().search(&member.ctx, &request).await {
            Ok(found) => {
                let groups: Vec<Value> = found
                    .results
                    .iter()
                    .map(|group| {
                        let label = member.locale.label(Some(&group.label), &group.entity);
                        json!({
                            "entity": group.entity,
                            "label": label,
                            "more": group.more,
                            "records": group.records,
                        })
                    })
                    .collect();
                context["groups"] = json!(groups);
                context["indexing"] = json!(found.indexing);
                context["searched"] = json!(true);
            }
            // An entity that is gone or not readable is said on the page, like a bad query.
            Err(error) => {
                context["problem"] = json!(problem_text(&error, member.locale));
            }
        }
    }
    page("search.html", with(frame, context), StatusCode::OK)
}
