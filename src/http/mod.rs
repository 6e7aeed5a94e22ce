//! HTTP: the router (production and tests both build it here), middleware, and feature routers.

mod api;
pub mod error;
mod export;
pub mod extract;
mod pages;
pub(crate) mod spool;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::app::Services;

/// Longest a request may take before it is answered 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest a spreadsheet upload may take (a 100 MB file over a slow line).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);
use crate::error::{Error, Result};

/// The whole application's router over `services`.
pub fn router(services: Services) -> Router {
    let body_limit = services.config().body_limit as usize;
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api::router())
        .merge(pages::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            services.clone(),
            measured,
        ))
        .layer(axum::middleware::from_fn(timed_out))
        .layer(CatchPanicLayer::custom(panicked))
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
    // The peer address keys per-visitor limits (public forms).
    axum::serve(
        listener,
        router(services).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
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

/// Counts the request by its route template (`/api/v1/w/{workspace}/…`: the raw path would
/// make a series per record) and how long it took.
async fn measured(
    State(services): State<Services>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    // MatchedPath is an Arc inside: cloning it copies no text.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let response = next.run(request).await;
    services.metrics().observe(
        method.as_str(),
        route.as_ref().map_or("unmatched", |r| r.as_str()),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`: the Prometheus text format (`docs/operations.md`).
async fn metrics(
    State(services): State<Services>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response> {
    if let Some(secret) = &services.config().metrics_token {
        let sent = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !sent.is_some_and(|t| crate::auth::same_secret(t, secret)) {
            return Err(Error::Unauthenticated);
        }
    }
    let now = services.clock().now();
    let gauges = crate::store::jobs::gauges(services.db().conn(), now).await?;
    let text = services.metrics().render(&gauges, now);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn not_found() -> Error {
    Error::not_found("route")
}

async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}

/// A handler that panicked: answered as a problem+json 500, the panic logged.
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    Error::internal("a request handler panicked").into_response()
}

async fn timed_out(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = request.uri().path();
    let limit = if request.method() == axum::http::Method::POST
        && (path.ends_with("/imports") || path.ends_with("/import"))
    {
        UPLOAD_TIMEOUT
    } else {
        REQUEST_TIMEOUT
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Error::Unavailable("the request took too long".to_owned()).into_response(),
    }
}
