//! The one mapping from the crate's `Error` to an HTTP response: RFC 9457 problem+json.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{Error, FieldError};

/// The problem+json body.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

fn status_and_slug(error: &Error) -> (StatusCode, &'static str) {
    match error {
        Error::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad-request"),
        Error::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Error::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
        Error::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
        Error::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
        Error::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
        Error::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
        Error::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
        Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        // Two writers collided and the database rolled one back: nothing was written.
        Error::Db(e) if crate::store::is_transient(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        Error::Db(_) | Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// The HTTP status an error is answered with (pages show it in HTML).
pub fn status_of(error: &Error) -> StatusCode {
    status_and_slug(error).0
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, slug) = status_and_slug(&self);
        let detail = if status.is_server_error() {
            // The cause stays in the log; the caller learns only that it was not their fault.
            tracing::error!(error = %self, "request failed");
            if matches!(self, Error::Unavailable(_)) {
                "the service is not ready; try again shortly".to_owned()
            } else if status == StatusCode::SERVICE_UNAVAILABLE {
                "a concurrent change got in the way and nothing was written; send the request again"
                    .to_owned()
            } else {
                "an internal error occurred; it has been logged".to_owned()
            }
        } else {
            self.to_string()
        };
        let errors: &[FieldError] = match &self {
            Error::Invalid { errors, .. }
            | Error::Conflict { errors, .. }
            | Error::Forbidden { errors, .. }
            | Error::BadRequest { errors, .. } => errors,
            _ => &[],
        };
        let body = Problem {
            kind: format!("https://formwork.dev/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            errors,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Error::RateLimited { retry_after_secs } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"formwork\""),
            );
        }
        response
    }
}
