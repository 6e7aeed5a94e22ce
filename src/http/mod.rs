//! HTTP: the router (production and tests both build it here), middleware, and feature routers.

mod api;
pub mod error;
pub mod extract;
mod pages;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::Services;
use crate::error::{Error, Result};

/// The whole application's router over `services`.
pub fn router(services: Services) -> Router {
    let body_limit = services.config().body_limit as usize;
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest("/api/v1", api::router())
        .merge(pages::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(services)
}

/// Serves `services` on `listener` until `shutdown` completes, then finishes open requests.
///
/// # Errors
/// `Error::Internal` if the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, router(services))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::internal)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(services): State<Services>) -> Result<impl IntoResponse> {
    services.db().ping().await?;
    Ok(axum::Json(serde_json::json!({ "status": "ready" })))
}

async fn not_found() -> Error {
    Error::not_found("route")
}

async fn method_not_allowed() -> Error {
    Error::BadRequest {
        detail: "method not allowed on this route".to_owned(),
        errors: Vec::new(),
    }
}
