//! Our own extractors: JSON bodies with our error format, the authenticated caller, and the
//! workspace a request acts in.

use axum::extract::{FromRef, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::{Method, header, request::Parts};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::app::Services;
use crate::auth::{self, Credential, Principal};
use crate::definitions::Scope;
use crate::error::{Error, FieldError};
use crate::workspaces::{self, Access};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "fw_session";
/// The header carrying the CSRF token on unsafe requests made with a session cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A JSON body: malformed JSON is a 400 with line and column, a body of the wrong shape a 422
/// naming the JSON pointer, an oversized body a 413.
#[derive(Debug)]
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    Services: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or_default().trim();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !is_json {
            return Err(Error::BadRequest {
                detail: "expected a JSON body (Content-Type: application/json)".to_owned(),
                errors: Vec::new(),
            });
        }
        let limit = Services::from_ref(state).config().body_limit as usize;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge { limit }
            } else {
                Error::bad_request(rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(AppJson)
    }
}

/// A query string, rejected as a problem+json 400 naming what is wrong.
#[derive(Debug)]
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| Error::bad_request(rejection.body_text()))
    }
}

/// Parses JSON bytes into `T` with located errors.
///
/// # Errors
/// 400 for malformed JSON (with line and column), 422 for the wrong shape (with pointer).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| syntax_error(&e))?;
    // PostgreSQL cannot store U+0000 in text or jsonb; refuse it here rather than fail later.
    if let Some(pointer) = find_nul(&value, String::new()) {
        return Err(Error::invalid(
            pointer,
            "nul_character",
            "text may not contain the NUL character (U+0000)",
        ));
    }
    serde_path_to_error::deserialize::<_, T>(value).map_err(|error| {
        let pointer = pointer_of(error.path());
        Error::invalid(pointer, "type", strip_position(&error.inner().to_string()))
    })
}

fn find_nul(value: &serde_json::Value, pointer: String) -> Option<String> {
    match value {
        serde_json::Value::String(text) => text.contains('\0').then_some(pointer),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_nul(item, format!("{pointer}/{i}"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
            let child = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
            if key.contains('\0') {
                Some(child)
            } else {
                find_nul(item, child)
            }
        }),
        _ => None,
    }
}

fn syntax_error(error: &serde_json::Error) -> Error {
    Error::BadRequest {
        detail: "the body is not valid JSON".to_owned(),
        errors: vec![FieldError {
            pointer: String::new(),
            code: "json".to_owned(),
            message: strip_position(&error.to_string()),
            line: u32::try_from(error.line()).ok(),
            column: u32::try_from(error.column()).ok(),
            rule: None,
        }],
    }
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => {}
        }
    }
    pointer
}

/// The `Set-Cookie` value of a session cookie (empty value and age 0 to clear it).
///
/// # Errors
/// `Error::Internal` if the value cannot be a header.
pub fn session_cookie(
    services: &Services,
    value: &str,
    max_age_secs: i64,
) -> Result<axum::http::HeaderValue, Error> {
    let secure = if services.config().secure_cookies {
        "; Secure"
    } else {
        ""
    };
    axum::http::HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .map_err(Error::internal)
}

/// The value of cookie `name`.
pub fn cookie_in<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The authenticated caller (session cookie or bearer token). Unsafe requests made with a
/// session cookie must carry the session's CSRF token in `X-CSRF-Token`.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    Services: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(existing) = parts.extensions.get::<Authenticated>() {
            return Ok(existing.clone());
        }
        let services = Services::from_ref(state);
        let principal = if let Some(token) = bearer(parts) {
            auth::authenticate_token(
                services.db(),
                services.clock(),
                services.credentials(),
                token,
            )
            .await?
        } else if let Some(secret) = cookie_in(&parts.headers, SESSION_COOKIE) {
            auth::authenticate_session(
                services.db(),
                services.clock(),
                services.credentials(),
                services.session_policy(),
                secret,
            )
            .await?
        } else {
            None
        };
        let principal = principal.ok_or(Error::Unauthenticated)?;
        if let Credential::Token { token_id, .. } = &principal.credential {
            services.token_limiter().check(*token_id)?;
        }
        if let Credential::Session { csrf_token, .. } = &principal.credential {
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !safe && !sent.is_some_and(|sent| auth::same_secret(sent, csrf_token)) {
                return Err(Error::forbidden(
                    "missing or wrong X-CSRF-Token header for a cookie-authenticated request",
                ));
            }
        }
        let authenticated = Authenticated(principal);
        parts.extensions.insert(authenticated.clone());
        Ok(authenticated)
    }
}

/// A caller authenticated by a browser session (account-level routes; API tokens act only
/// inside their workspace).
#[derive(Debug, Clone)]
pub struct SessionUser {
    /// The caller.
    pub principal: Principal,
    /// The session's key.
    pub id_hash: String,
    /// The session's CSRF token.
    pub csrf_token: String,
}

impl<S> FromRequestParts<S> for SessionUser
where
    S: Send + Sync,
    Services: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        match &principal.credential {
            Credential::Session {
                id_hash,
                csrf_token,
            } => Ok(Self {
                id_hash: id_hash.clone(),
                csrf_token: csrf_token.clone(),
                principal,
            }),
            Credential::Token { .. } => Err(Error::forbidden(
                "API tokens act only inside their workspace; account routes need a session",
            )),
        }
    }
}

/// The workspace named in the path (`{workspace}`) and the caller's access to it.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The caller's access.
    pub access: Access,
}

impl Workspace {
    /// The definition scope of this request.
    pub fn scope(&self) -> Scope {
        Scope {
            workspace_id: self.access.workspace.id,
            generation: self.access.workspace.definitions_generation,
        }
    }
}

impl<S> FromRequestParts<S> for Workspace
where
    S: Send + Sync,
    Services: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::not_found("workspace"))?;
        let slug = params
            .iter()
            .find(|(name, _)| *name == "workspace")
            .map(|(_, value)| value.to_owned())
            .ok_or_else(|| Error::not_found("workspace"))?;
        let services = Services::from_ref(state);
        let access = workspaces::access(
            services.db(),
            services.clock(),
            services.access_cache(),
            &principal,
            &slug,
        )
        .await?;
        Ok(Self { access })
    }
}

/// The records context of a member acting in their workspace through `channel`.
pub fn member_context(
    access: &Access,
    channel: crate::records::Channel,
) -> crate::records::Context {
    crate::records::Context::for_member(access, channel)
}

/// A number from the body, else from `If-Match` (bare, quoted or weak): the revision of a
/// definition or the version of a record the client last read. `pointer` names it in errors.
///
/// # Errors
/// `Error::Invalid` when `If-Match` is not a number.
pub fn body_or_if_match(
    body: Option<i64>,
    headers: &axum::http::HeaderMap,
    pointer: &str,
) -> Result<Option<i64>, Error> {
    if body.is_some() {
        return Ok(body);
    }
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| Error::invalid(pointer, "if_match", "If-Match must be a number"))
}
