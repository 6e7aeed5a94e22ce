//! HTML pages rendered with minijinja: sign-in, the workspace chooser, and (in the submodules)
//! everything inside a workspace. Handlers are thin: they read the request, call the owning
//! module, and draw the result; failures become an HTML error page in the reader's language.

/// The member behind a page request, or (returned at once) the response that sends them to
/// sign in or explains why they may not enter.
macro_rules! member_or_return {
    ($services:expr, $headers:expr, $slug:expr, $here:expr) => {
        match super::member::enter($services, $headers, $slug, $here).await {
            Ok(member) => member,
            Err(response) => return response,
        }
    };
}

mod approvals;
mod apps;
mod builder;
mod calendar;
mod comments;
mod emails;
mod form_builder;
mod imports;
mod member;
mod merge;
mod notifications;
mod printing;
mod public;
mod records;
mod report_builder;
mod reports;
mod robots;
mod search;
mod workflow_builder;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::app::Services;
use crate::auth::{self, AccountView, Credential, Principal};
use crate::error::{Error, Result};
use crate::http::extract::{SESSION_COOKIE, cookie_in, session_cookie};
use crate::render::i18n::{LOCALES, Locale};
use crate::render::{Pages, static_asset};
use crate::store::accounts;
use crate::workspaces::{self, WorkspaceView};

/// Every page route.
pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/", get(root))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/workspaces", get(workspace_list))
        .route("/w/{workspace}/", get(member::home))
        .route("/w/{workspace}/jobs", get(member::jobs))
        .route("/w/{workspace}/jobs/{id}/retry", post(member::retry_job))
        .route("/account/language", post(set_language))
        .route("/static/{*path}", get(asset))
        .merge(records::router())
        .merge(comments::router())
        .merge(emails::router())
        .merge(calendar::router())
        .merge(printing::router())
        .merge(notifications::router())
        .merge(robots::router())
        .merge(merge::router())
        .merge(imports::router())
        .merge(search::router())
        .merge(public::router())
        .merge(approvals::router())
        .merge(apps::router())
        .merge(builder::router())
        .merge(form_builder::router())
        .merge(report_builder::router())
        .merge(workflow_builder::router())
        .merge(reports::router())
}

/// The signed-in browser session of a page request, if any.
struct PageSession {
    principal: Principal,
    account: AccountView,
    id_hash: String,
    csrf_token: String,
    /// The language the account chose, if it chose one.
    locale: Option<Locale>,
}

/// The cookie remembering the language chosen before signing in (or on this browser).
const LANGUAGE_COOKIE: &str = "fw_lang";

/// The page's language: the account's choice, else this browser's, else `Accept-Language`.
fn locale_for(headers: &HeaderMap, chosen: Option<Locale>) -> Locale {
    chosen
        .or_else(|| cookie_in(headers, LANGUAGE_COOKIE).and_then(Locale::from_tag))
        .unwrap_or_else(|| {
            Locale::negotiate(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok()),
            )
        })
}

/// The languages for the switcher, with the current one marked.
fn languages(current: Locale) -> serde_json::Value {
    LOCALES
        .iter()
        .map(|l| serde_json::json!({"tag": l.tag(), "name": l.native_name(), "current": *l == current}))
        .collect()
}

/// An error as an HTML page in the reader's language (4xx details are the reader's to see;
/// 5xx causes stay in the log).
fn error_page(error: Error, locale: Locale) -> Response {
    let status = crate::http::error::status_of(&error);
    if status == StatusCode::UNAUTHORIZED {
        return Redirect::to("/login").into_response();
    }
    let detail = if status.is_server_error() {
        tracing::error!(error = %error, "page failed");
        locale.text("error.internal")
    } else {
        error.to_string()
    };
    let context = serde_json::json!({
        "lang": locale.tag(),
        "status": status.as_u16(),
        "detail": detail,
    });
    match page("error.html", context, status) {
        Ok(response) => response,
        Err(_) => error.into_response(),
    }
}

async fn page_session(services: &Services, headers: &HeaderMap) -> Result<Option<PageSession>> {
    let Some(secret) = cookie_in(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let principal = auth::authenticate_session(
        services.db(),
        services.clock(),
        services.credentials(),
        services.session_policy(),
        secret,
    )
    .await?;
    let Some(principal) = principal else {
        return Ok(None);
    };
    let Credential::Session {
        id_hash,
        csrf_token,
    } = principal.credential.clone()
    else {
        return Ok(None);
    };
    let Some(account) = accounts::find(services.db().conn(), principal.account_id).await? else {
        return Ok(None);
    };
    Ok(Some(PageSession {
        principal,
        locale: account.locale.as_deref().and_then(Locale::from_tag),
        account: AccountView::from(&account),
        id_hash,
        csrf_token,
    }))
}

fn page(name: &str, context: impl Serialize, status: StatusCode) -> Result<Response> {
    let html = Pages::shared()?.render(name, context)?;
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Scripts only from our own files: a value that slipped through escaping still cannot run.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    Ok(response)
}

fn to_login(next: &str) -> Response {
    let target = format!("/login?next={}", urlencode(next));
    Redirect::to(&target).into_response()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Only local paths are followed after sign-in (no open redirects).
fn safe_next(next: Option<&str>) -> String {
    match next {
        // Visible ASCII only (browsers drop tabs and newlines, which could turn `/\t/x` into
        // `//x`), a single leading slash, and no backslash.
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

async fn root(State(services): State<Services>, headers: HeaderMap) -> Result<Response> {
    let Some(session) = page_session(&services, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let workspaces = workspaces::list_for(services.db(), session.principal.account_id).await?;
    Ok(match workspaces.as_slice() {
        [only] => Redirect::to(&format!("/w/{}/", only.slug)).into_response(),
        _ => Redirect::to("/workspaces").into_response(),
    })
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_page(
    State(services): State<Services>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Result<Response> {
    let next = safe_next(query.next.as_deref());
    if page_session(&services, &headers).await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    login_form(
        &services,
        &headers,
        serde_json::json!({ "next": next, "email": "", "error": null }),
        StatusCode::OK,
    )
}

#[derive(Debug, Deserialize)]
struct LanguageForm {
    lang: String,
    next: Option<String>,
    csrf_token: Option<String>,
}

/// Switches the UI language: for the account when signed in (kept across browsers), and for
/// this browser in a cookie (the sign-in page and public forms).
async fn set_language(
    State(services): State<Services>,
    headers: HeaderMap,
    Form(form): Form<LanguageForm>,
) -> Result<Response> {
    if !same_origin(&headers) {
        return Err(Error::forbidden("cross-site request refused"));
    }
    let locale = Locale::from_tag(&form.lang)
        .ok_or_else(|| Error::invalid("/lang", "enum", "lang is en or zh-CN"))?;
    // Pages without a session's token (sign-in, public forms) switch this browser only; with
    // one, the account's choice changes too.
    if let (Some(session), Some(sent)) = (
        page_session(&services, &headers).await?,
        form.csrf_token.as_deref(),
    ) {
        if !auth::same_secret(sent, &session.csrf_token) {
            return Err(Error::forbidden("wrong CSRF token"));
        }
        accounts::set_locale(
            services.db().conn(),
            session.principal.account_id,
            Some(locale.tag().to_owned()),
            services.clock().now(),
        )
        .await?;
    }
    let mut response = Redirect::to(&safe_next(form.next.as_deref())).into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    let secure = if services.config().secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = HeaderValue::from_str(&format!(
        "{LANGUAGE_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000{secure}",
        locale.tag()
    ))
    .map_err(Error::internal)?;
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// The cookie holding the sign-in form's CSRF token (double submit: the form carries the same
/// value; a cross-site page can make a browser send the cookie but cannot read it).
const LOGIN_CSRF_COOKIE: &str = "fw_login_csrf";

/// The sign-in page with a CSRF token in the form, and the cookie that must match it (reused
/// while the browser keeps it, so several open tabs all work).
fn login_form(
    services: &Services,
    headers: &HeaderMap,
    mut context: serde_json::Value,
    status: StatusCode,
) -> Result<Response> {
    let token = cookie_in(headers, LOGIN_CSRF_COOKIE)
        .filter(|t| t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()))
        .map_or_else(auth::random_secret, str::to_owned);
    context["csrf_token"] = serde_json::Value::String(token.clone());
    let locale = locale_for(headers, None);
    context["lang"] = serde_json::Value::from(locale.tag());
    context["languages"] = languages(locale);
    let mut response = page("login.html", context, status)?;
    let secure = if services.config().secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = axum::http::HeaderValue::from_str(&format!(
        "{LOGIN_CSRF_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=86400{secure}"
    ))
    .map_err(Error::internal)?;
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
    totp: Option<String>,
    csrf_token: Option<String>,
}

/// A cross-site form post carries a foreign `Origin`; refuse it (login CSRF).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

async fn login(
    State(services): State<Services>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response> {
    if !same_origin(&headers) {
        return Err(Error::forbidden("cross-site sign-in refused"));
    }
    let expected = cookie_in(&headers, LOGIN_CSRF_COOKIE);
    if !expected
        .zip(form.csrf_token.as_deref())
        .is_some_and(|(a, b)| auth::same_secret(a, b))
    {
        return Err(Error::forbidden(
            "the sign-in form expired or was not sent from this site; reload the page",
        ));
    }
    let next = safe_next(form.next.as_deref());
    let attempt = auth::login(
        services.db(),
        services.clock(),
        services.limiter(),
        services.session_policy(),
        &form.email,
        &form.password,
        form.totp.as_deref().filter(|code| !code.is_empty()),
    )
    .await;
    let session = match attempt {
        Ok(session) => session,
        Err(Error::Invalid { .. }) => {
            // The password was right and the account asks for its authenticator code.
            return login_form(
                &services,
                &headers,
                serde_json::json!({ "next": next, "email": form.email, "totp": true,
                    "error": "login.totp_needed" }),
                StatusCode::UNAUTHORIZED,
            );
        }
        Err(error @ (Error::Unauthenticated | Error::RateLimited { .. })) => {
            let (message, status) = match error {
                Error::RateLimited { .. } => ("login.too_many", StatusCode::TOO_MANY_REQUESTS),
                _ => ("login.wrong", StatusCode::UNAUTHORIZED),
            };
            return login_form(
                &services,
                &headers,
                serde_json::json!({ "next": next, "email": form.email, "error": message }),
                status,
            );
        }
        Err(other) => return Err(other),
    };
    // The language they sign in with is what notifications and emails sent to them later
    // (with no browser to ask) fall back to, until they choose one.
    let seen = locale_for(&headers, None).tag();
    if session.account.seen_locale.as_deref() != Some(seen) {
        accounts::set_seen_locale(services.db().conn(), session.account.id, seen).await?;
    }
    let max_age = (session.expires_at - services.clock().now()).num_seconds();
    let mut response = Redirect::to(&next).into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&services, &session.secret, max_age)?,
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct LogoutForm {
    csrf_token: String,
}

async fn logout(
    State(services): State<Services>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Result<Response> {
    if let Some(session) = page_session(&services, &headers).await? {
        if !auth::same_secret(&session.csrf_token, &form.csrf_token) {
            return Err(Error::forbidden("wrong CSRF token"));
        }
        auth::logout(services.db(), &session.id_hash).await?;
    }
    let mut response = Redirect::to("/login").into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&services, "", 0)?);
    Ok(response)
}

async fn workspace_list(State(services): State<Services>, headers: HeaderMap) -> Result<Response> {
    let Some(session) = page_session(&services, &headers).await? else {
        return Ok(to_login("/workspaces"));
    };
    let list: Vec<WorkspaceView> =
        workspaces::list_for(services.db(), session.principal.account_id).await?;
    let locale = locale_for(&headers, session.locale);
    page(
        "workspaces.html",
        serde_json::json!({
            "account": session.account,
            "csrf_token": session.csrf_token,
            "workspaces": list,
            "lang": locale.tag(),
            "languages": languages(locale),
            "here": "/workspaces",
        }),
        StatusCode::OK,
    )
}

async fn asset(Path(path): Path<String>) -> Result<Response> {
    let (body, content_type) =
        static_asset(&path).ok_or_else(|| Error::not_found("static asset"))?;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(response)
}
