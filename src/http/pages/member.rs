//! A member inside a workspace: who they are, what they may do, in which language they read,
//! and the frame every workspace page shares (navigation, counts, language switcher). Also the
//! workspace home.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{PageSession, error_page, languages, locale_for, page, page_session, to_login};
use crate::app::Services;
use crate::auth;
use crate::definitions::{Kind, Snapshot};
use crate::error::{Error, Result};
use crate::http::extract::member_context;
use crate::records::{Channel, Context};
use crate::render::i18n::Locale;
use crate::workspaces::{self, Access, WorkspaceView};

/// A signed-in member on a workspace page.
pub(super) struct Member {
    /// The browser session.
    pub(super) session: PageSession,
    /// Their access to the workspace.
    pub(super) access: Access,
    /// Their records context (channel `ui`).
    pub(super) ctx: Context,
    /// The page's language.
    pub(super) locale: Locale,
}

impl Member {
    /// The workspace's address segment.
    pub(super) fn slug(&self) -> &str {
        &self.access.workspace.slug
    }

    /// Refuses a form whose CSRF token is not the session's.
    pub(super) fn check_csrf(&self, sent: Option<&str>) -> Result<()> {
        if sent.is_some_and(|t| auth::same_secret(t, &self.session.csrf_token)) {
            Ok(())
        } else {
            Err(Error::forbidden(
                "the form expired or was not sent from this site; reload the page",
            ))
        }
    }
}

/// The member behind a page request, or the response sending the browser to sign in first
/// (then back to `here`).
pub(super) async fn enter(
    services: &Services,
    headers: &HeaderMap,
    slug: &str,
    here: &str,
) -> std::result::Result<Member, Response> {
    let fallback = locale_for(headers, None);
    let session = match page_session(services, headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return Err(to_login(here)),
        Err(error) => return Err(error_page(error, fallback)),
    };
    let locale = locale_for(headers, session.locale);
    let access = workspaces::access(
        services.db(),
        services.clock(),
        services.access_cache(),
        &session.principal,
        slug,
    )
    .await
    .map_err(|e| error_page(e, locale))?;
    let ctx = member_context(&access, Channel::Ui);
    Ok(Member {
        session,
        access,
        ctx,
        locale,
    })
}

/// The definitions the member's workspace runs on.
pub(super) async fn snapshot(services: &Services, member: &Member) -> Result<Arc<Snapshot>> {
    services
        .registry()
        .snapshot(
            services.db(),
            member.access.workspace.id,
            member.access.workspace.definitions_generation,
        )
        .await
}

/// The entities the member may read, for navigation: key, label, plural label.
pub(super) fn readable_entities(snapshot: &Snapshot, member: &Member) -> Vec<Value> {
    snapshot
        .of_kind(Kind::Entity)
        .into_iter()
        .filter(|(key, _)| member.access.policy.grant(key).read != crate::access::Reach::None)
        .map(|(key, published)| {
            let doc = &published.document;
            json!({
                "key": key,
                "label": member.locale.label(doc.get("x-label"), key),
                "plural": member.locale.label(
                    doc.get("x-label-plural").or_else(|| doc.get("x-label")),
                    key,
                ),
            })
        })
        .collect()
}

/// What every workspace page's frame shows: the account, language, workspace, navigation and
/// the member's counts.
pub(super) async fn frame(
    services: &Services,
    member: &Member,
    snapshot: &Snapshot,
    here: &str,
) -> Result<Value> {
    let unread = crate::notifications::inbox(services.db(), &member.access, true, None, Some(1))
        .await?
        .unread;
    let pending = crate::workflows::approvals::pending_count(
        services.db(),
        member.access.workspace.id,
        member.access.account_id,
    )
    .await?;
    Ok(json!({
        "account": member.session.account,
        "csrf_token": member.session.csrf_token,
        "lang": member.locale.tag(),
        "languages": languages(member.locale),
        "here": here,
        "time_zone": member.access.workspace.time_zone,
        "workspace": WorkspaceView::new(&member.access.workspace, &member.access.role),
        "nav": readable_entities(snapshot, member),
        "unread": unread,
        "pending_approvals": pending,
        "is_admin": member.access.is_admin(),
        "can_build": member.access.require(crate::access::Right::Definitions).is_ok(),
        "inbound_mail": services.config().inbound_enabled(),
    }))
}

/// Merges `extra` into the frame.
pub(super) fn with(mut frame: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(more)) = (frame.as_object_mut(), extra) {
        base.extend(more);
    }
    frame
}

/// The workspace home: its entities, the member's pending approvals and notifications.
pub(super) async fn home(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    let here = format!("/w/{slug}/");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    match draw_home(&services, &member, &here).await {
        Ok(response) => response,
        Err(error) => error_page(error, locale),
    }
}

async fn draw_home(services: &Services, member: &Member, here: &str) -> Result<Response> {
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, here).await?;
    let approvals = crate::workflows::approvals::inbox(
        services.db(),
        member.access.workspace.id,
        member.access.account_id,
        false,
        "pending",
        10,
    )
    .await?;
    let inbox =
        crate::notifications::inbox(services.db(), &member.access, false, None, Some(10)).await?;
    let settings = workspaces::settings_of(&member.access.workspace)?;
    let zone = workspaces::check_time_zone(&settings.time_zone)?;
    let today = services.clock().now().with_timezone(&zone).date_naive();
    let agenda = agenda(services, member, &snapshot, today).await;
    page(
        "workspace_home.html",
        with(
            frame,
            json!({
                "today": member.locale.date(today),
                "working_day": settings.calendar.is_working_day(today),
                "approvals": approvals,
                "notifications": inbox.notifications,
                "agenda": agenda,
            }),
        ),
        StatusCode::OK,
    )
    .map(IntoResponse::into_response)
}

/// Days ahead the agenda looks.
const AGENDA_DAYS: i64 = 7;
/// Days back it still shows overdue items (older ones belong to a list, not to today's page).
const OVERDUE_DAYS: i64 = 30;

/// The member's agenda: records they own in calendar views marked `agenda` (leads to follow
/// up, visits, contract ends…) dated up to a week ahead or overdue by at most a month, the
/// longest overdue first.
async fn agenda(
    services: &Services,
    member: &Member,
    snapshot: &Snapshot,
    today: chrono::NaiveDate,
) -> Vec<Value> {
    let mut items = Vec::new();
    let horizon = today + chrono::Duration::days(AGENDA_DAYS);
    let oldest = today - chrono::Duration::days(OVERDUE_DAYS);
    for view in crate::schedule::calendar_views(snapshot) {
        let (doc, entity, field) = (view.document, view.entity, view.field);
        if doc.get("agenda").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let Some(model) = snapshot.entity(entity) else {
            continue;
        };
        let is_instant = matches!(
            model.field(field).map(|f| &f.kind),
            Some(crate::definitions::FieldKind::DateTime)
        );
        let bound = |day: chrono::NaiveDate, end: &str| {
            if is_instant {
                json!(format!("{}T{end}Z", day.format("%Y-%m-%d")))
            } else {
                json!(day.format("%Y-%m-%d").to_string())
            }
        };
        let (since, until) = (bound(oldest, "00:00:00"), bound(horizon, "23:59:59"));
        let mut conditions = vec![
            json!({"field": "owner", "op": "eq", "value": member.access.account_id.to_string()}),
            json!({"field": field, "op": "between", "value": [since, until]}),
        ];
        if let Some(filter) = doc.get("filter") {
            conditions.push(filter.clone());
        }
        let query = json!({"filter": {"and": conditions}, "sort": [field], "limit": 10});
        let Ok(page) = services.records().list(&member.ctx, entity, &query).await else {
            continue;
        };
        for record in page.records {
            let date = record
                .fields
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let day =
                chrono::NaiveDate::parse_from_str(date.get(..10).unwrap_or(""), "%Y-%m-%d").ok();
            items.push(json!({
                "entity": entity,
                "label": member.locale.label(model.document.get("x-label"), entity),
                "id": record.id,
                "title": super::records::title_of(&model, &record.fields, record.id),
                "date": day.map(|d| member.locale.date(d)).unwrap_or(date.clone()),
                "sort": date,
                "overdue": day.is_some_and(|d| d < today),
            }));
        }
    }
    items.sort_by(|a, b| a["sort"].as_str().cmp(&b["sort"].as_str()));
    items.truncate(10);
    items
}

/// Background work of the workspace (recomputes, index builds, imports, deliveries) with its
/// progress; the page refreshes itself while something runs. Admins see errors and may retry
/// work that gave up.
pub(super) async fn jobs(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    let here = format!("/w/{slug}/jobs");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let result = async {
        let snapshot = snapshot(&services, &member).await?;
        let frame = frame(&services, &member, &snapshot, &here).await?;
        let admin = member.access.is_admin();
        let listed =
            crate::jobs::list(services.db(), member.access.workspace.id, None, Some(100)).await?;
        let live = listed
            .iter()
            .any(|j| matches!(j.status.as_str(), "queued" | "running"));
        let items: Vec<Value> = listed
            .iter()
            .map(|job| {
                let percent = job
                    .progress_total
                    .filter(|t| *t > 0)
                    .map(|t| (job.progress_done.saturating_mul(100) / t).clamp(0, 100));
                let key = format!("jobs.kind.{}", job.kind);
                let label = locale.text(&key);
                json!({
                    "id": job.id,
                    "kind": if label == key { job.kind.clone() } else { label },
                    "status": job.status,
                    "done": job.progress_done,
                    "total": job.progress_total,
                    "percent": percent,
                    "attempts": job.attempts,
                    "updated_at": job.updated_at,
                    "error": if admin { job.last_error.clone() } else { None },
                })
            })
            .collect();
        page(
            "jobs.html",
            with(
                frame,
                json!({"jobs": items, "live": live, "section": "jobs"}),
            ),
            StatusCode::OK,
        )
    }
    .await;
    result.unwrap_or_else(|error| error_page(error, locale))
}

/// Puts work that gave up back in the queue (admins).
pub(super) async fn retry_job(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, id)): Path<(String, String)>,
    axum::extract::Form(posted): axum::extract::Form<Vec<(String, String)>>,
) -> Response {
    let here = format!("/w/{slug}/jobs");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let result = async {
        let token = posted
            .iter()
            .find(|(k, _)| k == "csrf_token")
            .map(|(_, v)| v.as_str());
        member.check_csrf(token)?;
        member.access.require_admin()?;
        let id = uuid::Uuid::parse_str(&id).map_err(|_| Error::not_found("job"))?;
        crate::jobs::retry_dead(
            services.db(),
            services.clock(),
            member.access.workspace.id,
            id,
        )
        .await?;
        Ok(super::records::see_other(&here))
    }
    .await;
    result.unwrap_or_else(|error| error_page(error, locale))
}
