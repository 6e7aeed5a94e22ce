//! `/api/v1/w/{workspace}/entities/{entity}/calendar` (records on a span of days),
//! `…/records/{id}/reschedule` (move one to another day) and `/calendar-feed` (the caller's
//! iCalendar feed address: make, read, revoke).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::records::Caller;
use crate::app::Services;
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, AppQuery, Workspace};
use crate::records::RecordView;
use crate::schedule::{CalendarView, FeedView, Filter};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/entities/{entity}/calendar", get(events))
        .route(
            "/w/{workspace}/entities/{entity}/records/{id}/reschedule",
            post(reschedule),
        )
        .route(
            "/w/{workspace}/calendar-feed",
            get(feed).post(create_feed).delete(revoke_feed),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarQuery {
    field: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// An account id, or `me`.
    owner: Option<String>,
    team: Option<Uuid>,
}

/// A required day parameter.
fn day(value: Option<&str>, name: &str) -> Result<NaiveDate> {
    let text = value.ok_or_else(|| {
        Error::invalid(
            format!("/{name}"),
            "required",
            format!("{name} is a day, YYYY-MM-DD"),
        )
    })?;
    text.parse().map_err(|_| {
        Error::invalid(
            format!("/{name}"),
            "date",
            format!("{name} is a day, YYYY-MM-DD, not {text:?}"),
        )
    })
}

async fn events(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
    Path((_, entity)): Path<(String, String)>,
    AppQuery(query): AppQuery<CalendarQuery>,
) -> Result<Json<CalendarView>> {
    let filter = Filter {
        owner: crate::schedule::owner_of(query.owner.as_deref(), ws.access.account_id)?,
        team: query.team,
    };
    Ok(Json(
        services
            .schedule()
            .events(
                &caller.ctx,
                &ws.access,
                &entity,
                query.field.as_deref(),
                day(query.from.as_deref(), "from")?,
                day(query.to.as_deref(), "to")?,
                filter,
            )
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    field: String,
    date: NaiveDate,
    version: Option<i64>,
}

async fn reschedule(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
    AppJson(body): AppJson<Move>,
) -> Result<Json<RecordView>> {
    Ok(Json(
        services
            .schedule()
            .reschedule(
                &caller.ctx,
                &entity,
                &id,
                &body.field,
                body.date,
                body.version,
            )
            .await?,
    ))
}

async fn feed(State(services): State<Services>, ws: Workspace) -> Result<Json<Value>> {
    let state = services.schedule().feed_state(&ws.access).await?;
    Ok(Json(json!({"feed": state})))
}

async fn create_feed(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
) -> Result<(StatusCode, Json<FeedView>)> {
    // A feed is read later with the member's own rights; an API token may be narrower, so a
    // feed is made by the person, signed in.
    if caller.ctx.channel == crate::records::Channel::Api {
        return Err(Error::forbidden(
            "a calendar feed address is made from a signed-in session, not with an API token",
        ));
    }
    let made = services.schedule().create_feed(&ws.access).await?;
    Ok((StatusCode::CREATED, Json(made)))
}

async fn revoke_feed(State(services): State<Services>, ws: Workspace) -> Result<StatusCode> {
    if services.schedule().revoke_feed(&ws.access).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::not_found("calendar feed"))
    }
}
