//! `/api/v1/w/{workspace}`: the workspace, its settings and calendar, its clock, its members.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::app::Services;
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, AppQuery, Workspace};
use crate::workspaces::{self, MemberView, Settings, WorkspaceView};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}", get(show))
        .route(
            "/w/{workspace}/settings",
            get(settings).patch(update_settings),
        )
        .route("/w/{workspace}/clock", get(clock))
        .route("/w/{workspace}/calendar/working-days", get(working_days))
        .route("/w/{workspace}/members", get(members).post(add_member))
}

async fn show(ws: Workspace) -> Json<WorkspaceView> {
    Json(WorkspaceView::new(&ws.access.workspace, &ws.access.role))
}

async fn settings(ws: Workspace) -> Result<Json<Settings>> {
    Ok(Json(workspaces::settings_of(&ws.access.workspace)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    name: Option<String>,
    time_zone: Option<String>,
    calendar: Option<serde_json::Value>,
}

async fn update_settings(
    State(services): State<Services>,
    ws: Workspace,
    AppJson(body): AppJson<SettingsPatch>,
) -> Result<Json<Settings>> {
    Ok(Json(
        workspaces::update_settings(
            services.db(),
            services.clock(),
            &ws.access,
            body.name.as_deref(),
            body.time_zone.as_deref(),
            body.calendar.as_ref(),
        )
        .await?,
    ))
}

#[derive(Debug, Serialize)]
struct ClockView {
    now: DateTime<Utc>,
    time_zone: String,
    local: String,
    today: NaiveDate,
    is_working_day: bool,
}

/// What "now" and "today" are for this workspace (its zone, its calendar, the server clock).
async fn clock(State(services): State<Services>, ws: Workspace) -> Result<Json<ClockView>> {
    let settings = workspaces::settings_of(&ws.access.workspace)?;
    let zone = workspaces::check_time_zone(&settings.time_zone)?;
    let now = services.clock().now();
    let local = now.with_timezone(&zone);
    let today = local.date_naive();
    Ok(Json(ClockView {
        now,
        time_zone: settings.time_zone,
        local: local.to_rfc3339(),
        today,
        is_working_day: settings.calendar.is_working_day(today),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkingDaysQuery {
    from: String,
    add: Option<i64>,
    to: Option<String>,
}

#[derive(Debug, Serialize)]
struct WorkingDaysView {
    from: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    add: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_days: Option<i64>,
}

fn parse_date(value: &str, pointer: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| Error::invalid(pointer, "format", "expected a date as YYYY-MM-DD"))
}

/// `?from=D&add=N`: the date N working days after D; `?from=D&to=E`: working days in (D, E].
async fn working_days(
    ws: Workspace,
    AppQuery(query): AppQuery<WorkingDaysQuery>,
) -> Result<Json<WorkingDaysView>> {
    let calendar = workspaces::settings_of(&ws.access.workspace)?.calendar;
    let from = parse_date(&query.from, "/from")?;
    match (query.add, query.to) {
        (Some(add), None) => {
            if add.unsigned_abs() > 100_000 {
                return Err(Error::invalid(
                    "/add",
                    "range",
                    "add is at most 100000 working days",
                ));
            }
            let result = calendar
                .add_working_days(from, add)
                .ok_or_else(|| Error::invalid("/add", "range", "the result is out of range"))?;
            Ok(Json(WorkingDaysView {
                from,
                add: Some(add),
                result: Some(result),
                to: None,
                working_days: None,
            }))
        }
        (None, Some(to)) => {
            let to = parse_date(&to, "/to")?;
            Ok(Json(WorkingDaysView {
                from,
                add: None,
                result: None,
                to: Some(to),
                working_days: Some(calendar.working_days_between(from, to)),
            }))
        }
        _ => Err(Error::invalid(
            "",
            "one_of",
            "give exactly one of add or to",
        )),
    }
}

async fn members(State(services): State<Services>, ws: Workspace) -> Result<Json<Vec<MemberView>>> {
    Ok(Json(workspaces::members(services.db(), &ws.access).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    email: String,
    role: String,
}

async fn add_member(
    State(services): State<Services>,
    ws: Workspace,
    AppJson(body): AppJson<NewMember>,
) -> Result<(StatusCode, Json<MemberView>)> {
    let member = workspaces::add_member(
        services.db(),
        services.clock(),
        services.access_cache(),
        &ws.access,
        &body.email,
        &body.role,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(member)))
}
