//! The calendar page of an entity (month, week or agenda on one of its date fields, filtered
//! by owner or team; drag a record to another day to reschedule it), the member's calendar
//! feed (make, revoke), and the feed itself at `/feeds/{secret}.ics` for calendar apps.

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{Datelike, Duration, NaiveDate};
use serde_json::{Value, json};

use super::member::{Member, frame, snapshot, with};
use super::page;
use super::records::{Pairs, finish, first, for_script, query_pairs, see_other};
use crate::app::Services;
use crate::error::{Error, Result};
use crate::render::i18n::Locale;
use crate::schedule::{self, Filter, Mode};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/e/{entity}/calendar", get(show))
        .route(
            "/w/{workspace}/e/{entity}/{id}/reschedule",
            post(reschedule),
        )
        .route("/w/{workspace}/calendar-feed", post(feed_action))
        .route("/feeds/{file}", get(feed))
}

fn month_title(day: NaiveDate, locale: Locale) -> String {
    match locale {
        Locale::ZhCn => format!("{}年{}月", day.year(), day.month()),
        Locale::En => format!(
            "{} {}",
            locale.text(&format!("calendar.month.{}", day.month())),
            day.year()
        ),
    }
}

async fn draw(
    services: &Services,
    member: &Member,
    entity: &str,
    raw_query: Option<&str>,
    feed_url: Option<String>,
) -> Result<Response> {
    let pairs = query_pairs(raw_query);
    let locale = member.locale;
    let shape = services.records().shape(&member.ctx, entity).await?;
    let model = shape.model.clone();
    let today = services
        .clock()
        .now()
        .with_timezone(&member.ctx.time_zone)
        .date_naive();
    let mode = Mode::parse(first(&pairs, "mode").unwrap_or("month"))?;
    let anchor = match first(&pairs, "date").filter(|d| !d.is_empty()) {
        Some(text) => schedule::check_day(
            text.parse::<NaiveDate>()
                .map_err(|_| Error::invalid("/date", "date", "date is YYYY-MM-DD"))?,
            "/date",
        )?,
        None => today,
    };
    let owner = schedule::owner_of(first(&pairs, "owner"), member.access.account_id)?;
    let team = match first(&pairs, "team").filter(|t| !t.is_empty()) {
        Some(text) => Some(
            uuid::Uuid::parse_str(text)
                .map_err(|_| Error::invalid("/team", "unknown_team", "no such team"))?,
        ),
        None => None,
    };
    let (from, to) = mode.range(anchor);
    let found = services
        .schedule()
        .events(
            &member.ctx,
            &member.access,
            entity,
            first(&pairs, "field").filter(|f| !f.is_empty()),
            from,
            to,
            Filter { owner, team },
        )
        .await?;
    let base = format!("/w/{}/e/{entity}", member.slug());
    let properties = model.document.get("properties");
    let label_of = |key: &str| {
        locale
            .label(
                properties.and_then(|p| p.pointer(&format!("/{key}/x-label"))),
                key,
            )
            .to_owned()
    };
    let event_json = |e: &schedule::Event| {
        json!({
            "id": e.id,
            "title": e.title,
            "time": e.time.map(|t| t.format("%H:%M").to_string()),
            "version": e.version,
            "href": format!("{base}/{}", e.id),
        })
    };
    let mut days = Vec::new();
    let mut day = from;
    while day <= to {
        let events: Vec<Value> = found
            .events
            .iter()
            .filter(|e| e.date == day)
            .map(event_json)
            .collect();
        days.push(json!({
            "date": day.format("%Y-%m-%d").to_string(),
            "number": day.day(),
            "label": locale.date(day),
            "weekday": day.weekday().num_days_from_monday(),
            "in_month": day.month() == anchor.month(),
            "today": day == today,
            "events": events,
        }));
        day += Duration::days(1);
    }
    let weeks: Vec<Value> = days.chunks(7).map(|w| json!(w)).collect();
    let step = |forward: bool| -> NaiveDate {
        let sign = if forward { 1 } else { -1 };
        match mode {
            Mode::Month => {
                let months = anchor.year() * 12 + anchor.month0() as i32 + sign;
                NaiveDate::from_ymd_opt(months.div_euclid(12), months.rem_euclid(12) as u32 + 1, 1)
                    .unwrap_or(anchor)
            }
            Mode::Week => anchor + Duration::days(7 * i64::from(sign)),
            Mode::Agenda => anchor + Duration::days(30 * i64::from(sign)),
        }
    };
    let keep = |date: NaiveDate, mode_name: &str| {
        let mut out = vec![
            ("mode".to_owned(), mode_name.to_owned()),
            ("date".to_owned(), date.format("%Y-%m-%d").to_string()),
            ("field".to_owned(), found.field.clone()),
        ];
        for key in ["owner", "team"] {
            if let Some(v) = first(&pairs, key).filter(|v| !v.is_empty()) {
                out.push((key.to_owned(), v.to_owned()));
            }
        }
        format!(
            "{base}/calendar?{}",
            out.iter()
                .map(|(k, v)| format!("{k}={}", urlencoding(v)))
                .collect::<Vec<_>>()
                .join("&")
        )
    };
    let mode_name = match mode {
        Mode::Month => "month",
        Mode::Week => "week",
        Mode::Agenda => "agenda",
    };
    let modes: Vec<Value> = ["month", "week", "agenda"]
        .iter()
        .map(|m| json!({"name": m, "href": keep(anchor, m)}))
        .collect();
    let members = crate::workspaces::members(services.db(), &member.access).await?;
    let units =
        crate::workspaces::org_units(services.db(), services.access_cache(), &member.access)
            .await?;
    let feed = services.schedule().feed_state(&member.access).await?;
    let snapshot = snapshot(services, member).await?;
    let here = format!("{base}/calendar");
    let frame = frame(services, member, &snapshot, &here).await?;
    let doc = &model.document;
    page(
        "calendar.html",
        with(
            frame,
            json!({
                "entity": entity,
                "entity_label": locale.label(doc.get("x-label-plural").or_else(|| doc.get("x-label")), entity),
                "base": base,
                "field": found.field,
                "fields": schedule::date_fields(&model).iter().map(|k| json!({"key": k, "label": label_of(k)})).collect::<Vec<_>>(),
                "mode": mode_name,
                "title": match mode {
                    Mode::Month => month_title(anchor, locale),
                    _ => format!("{} – {}", locale.date(from), locale.date(to)),
                },
                "weekdays": (0..7).map(|d| locale.text(&format!("calendar.weekday.{d}"))).collect::<Vec<_>>(),
                "weeks": weeks,
                "days": days,
                "more": found.more,
                "prev": keep(step(false), mode_name),
                "next": keep(step(true), mode_name),
                "today_link": keep(today, mode_name),
                "modes": modes,
                "owner": first(&pairs, "owner").unwrap_or_default(),
                "team": first(&pairs, "team").unwrap_or_default(),
                "date": anchor.format("%Y-%m-%d").to_string(),
                "members": members.iter().filter(|m| m.active).map(|m| json!({"id": m.account_id, "name": m.name})).collect::<Vec<_>>(),
                "units": units.iter().map(|u| json!({"id": u.id, "name": u.name})).collect::<Vec<_>>(),
                "can_update": shape.can_update,
                "feed": feed,
                "feed_url": feed_url,
                "section": entity,
            }),
        ),
        StatusCode::OK,
    )
}

/// Percent-encodes a query value.
fn urlencoding(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn show(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity)): Path<(String, String)>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/calendar");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = draw(&services, &member, &entity, raw.as_deref(), None).await;
    finish(result, member.locale)
}

/// Moves a record to another day (a dropped calendar item): JSON `{id, version}` for the
/// page's script, or back to the calendar for a plain form.
async fn reschedule(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id)): Path<(String, String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/calendar");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let from_script = headers
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes() == b"fetch");
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let day: NaiveDate = first(&posted, "date")
            .unwrap_or_default()
            .parse()
            .map_err(|_| Error::invalid("/date", "date", "date is YYYY-MM-DD"))?;
        let version = first(&posted, "version").and_then(|v| v.parse().ok());
        services
            .schedule()
            .reschedule(
                &member.ctx,
                &entity,
                &id,
                first(&posted, "field").unwrap_or_default(),
                day,
                version,
            )
            .await
    }
    .await;
    match (result, from_script) {
        (Ok(view), true) => {
            axum::Json(json!({"id": view.id, "version": view.version})).into_response()
        }
        (Ok(_), false) => see_other(&here),
        (Err(error), true) => for_script(Err(error), member.locale),
        (Err(error), false) => finish(Err(error), member.locale),
    }
}

/// Makes (`action=create`) or revokes (`action=revoke`) the member's feed, then shows the
/// calendar it was asked from (with the new address, once).
async fn feed_action(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let entity = first(&posted, "entity").unwrap_or_default().to_owned();
        let url = match first(&posted, "action") {
            Some("create") => services.schedule().create_feed(&member.access).await?.url,
            Some("revoke") => {
                services.schedule().revoke_feed(&member.access).await?;
                None
            }
            _ => return Err(Error::invalid("/action", "action", "create or revoke")),
        };
        draw(&services, &member, &entity, None, url).await
    }
    .await;
    finish(result, member.locale)
}

/// The iCalendar feed (no session: the secret in the address is the key).
async fn feed(State(services): State<Services>, Path(file): Path<String>) -> Response {
    let secret = file.strip_suffix(".ics").unwrap_or(&file);
    match services.schedule().feed(secret).await {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
                (header::CACHE_CONTROL, "private, max-age=300"),
            ],
            text,
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}
