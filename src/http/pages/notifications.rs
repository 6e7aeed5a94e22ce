//! The notification centre's pages: the inbox (open one, mark read) and the member's settings
//! (channels per kind of event, the daily digest).

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;

use super::member::{frame, snapshot, with};
use super::records::{Pairs, finish, first, see_other};
use super::{error_page, page};
use crate::app::Services;
use crate::error::{Error, Result};
use crate::notifications::{self, Settings};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/notifications", get(inbox))
        .route("/w/{workspace}/notifications/read", post(mark_read))
        .route(
            "/w/{workspace}/notifications/settings",
            get(settings).post(save_settings),
        )
        .route("/w/{workspace}/notifications/{id}/open", get(open))
}

/// The member's notifications, newest first, with marking read.
async fn inbox(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    let here = format!("/w/{slug}/notifications");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let result = async {
        let snapshot = snapshot(&services, &member).await?;
        let frame = frame(&services, &member, &snapshot, &here).await?;
        let inbox =
            notifications::inbox(services.db(), &member.access, false, None, Some(200)).await?;
        page(
            "notifications.html",
            with(
                frame,
                json!({"notifications": inbox.notifications, "section": "notifications"}),
            ),
            StatusCode::OK,
        )
    }
    .await;
    result.unwrap_or_else(|error| error_page(error, locale))
}

/// Marks one notification (`id`) or all of them read, then returns to where the person was.
async fn mark_read(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/notifications");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let id = match first(&posted, "id").filter(|v| !v.is_empty()) {
            Some(text) => {
                Some(uuid::Uuid::parse_str(text).map_err(|_| Error::not_found("notification"))?)
            }
            None => None,
        };
        notifications::mark_read(services.db(), services.clock(), &member.access, id).await?;
        let back =
            super::records::back_to(first(&posted, "back"), &format!("/w/{slug}/"), here.clone());
        Ok(see_other(&back))
    }
    .await;
    finish(result, member.locale)
}

/// Opens a notification: marks it read and goes to what it is about.
async fn open(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, id)): Path<(String, String)>,
) -> Response {
    let here = format!("/w/{slug}/notifications");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        let id = uuid::Uuid::parse_str(&id).map_err(|_| Error::not_found("notification"))?;
        let opened =
            notifications::open(services.db(), services.clock(), &member.access, id).await?;
        let to = match (opened.entity, opened.record_id) {
            (Some(entity), Some(record)) => format!("/w/{slug}/e/{entity}/{record}"),
            _ => here.clone(),
        };
        Ok(see_other(&to))
    }
    .await;
    finish(result, member.locale)
}

async fn draw_settings(
    services: &Services,
    member: &super::member::Member,
    settings: Settings,
    saved: bool,
) -> Result<Response> {
    let here = format!("/w/{}/notifications/settings", member.slug());
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, &here).await?;
    page(
        "notification_settings.html",
        with(
            frame,
            json!({
                "settings": settings,
                "saved": saved,
                "mail_enabled": services.mail_enabled(),
                "hours": (0..24u8).map(|h| json!({"value": h, "label": format!("{h:02}:00")})).collect::<Vec<_>>(),
                "zone": member.access.workspace.time_zone,
                "section": "notifications",
            }),
        ),
        StatusCode::OK,
    )
}

/// The member's notification settings.
async fn settings(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    let here = format!("/w/{slug}/notifications/settings");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        let settings = notifications::my_settings(services.db(), &member.access).await?;
        draw_settings(&services, &member, settings, false).await
    }
    .await;
    finish(result, member.locale)
}

/// Saves the settings form (a box not sent is a channel turned off).
async fn save_settings(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/notifications/settings");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let on = |key: &str| first(&posted, key).is_some();
        let mut settings = Settings::default();
        settings.mention.in_app = on("mention.in_app");
        settings.mention.email = on("mention.email");
        settings.workflow.in_app = on("workflow.in_app");
        settings.workflow.email = on("workflow.email");
        settings.reply.in_app = on("reply.in_app");
        settings.reply.email = on("reply.email");
        settings.digest.enabled = on("digest.enabled");
        settings.digest.hour = match first(&posted, "digest.hour") {
            Some(text) => text
                .parse()
                .map_err(|_| Error::invalid("/digest/hour", "range", "the digest hour is 0–23"))?,
            None => settings.digest.hour,
        };
        let saved =
            notifications::save_settings(services.db(), services.clock(), &member.access, settings)
                .await?;
        draw_settings(&services, &member, saved, true).await
    }
    .await;
    finish(result, member.locale)
}
