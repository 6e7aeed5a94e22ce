//! `GET /api/v1/w/{workspace}/search?q=…[&entity=…][&limit=…]`: global search over the
//! entities the caller may read.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::records::Caller;
use crate::app::Services;
use crate::error::Result;
use crate::http::extract::AppQuery;
use crate::records::search::{SearchRequest, SearchResults};

pub(super) fn router() -> Router<Services> {
    Router::new().route("/w/{workspace}/search", get(search))
}

async fn search(
    State(services): State<Services>,
    caller: Caller,
    AppQuery(request): AppQuery<SearchRequest>,
) -> Result<Json<SearchResults>> {
    Ok(Json(
        services.records().search(&caller.ctx, &request).await?,
    ))
}
