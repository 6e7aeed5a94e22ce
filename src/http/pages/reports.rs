//! Report pages: the catalog at `/w/{workspace}/reports` (dashboards and reports the member
//! may open), one report at `/w/{workspace}/reports/{key}`, a dashboard at
//! `/w/{workspace}/dashboards/{key}` — each with its filters (period, team, owner), charts
//! drawn on the server, numbers linked to the records behind them, and exports.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::member::{Member, frame, snapshot, with};
use super::records::{first, query_pairs};
use super::{error_page, page};
use crate::app::Services;
use crate::error::Result;
use crate::render::i18n::Locale;
use crate::reports::definition::PERIODS;
use crate::reports::{Filters, Outcome, present};

/// The report pages.
pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/reports", get(catalog))
        .route("/w/{workspace}/reports/{key}", get(report))
        .route("/w/{workspace}/dashboards/{key}", get(dashboard))
        .route("/w/{workspace}/targets", get(targets))
}

async fn targets(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let here = here_of(format!("/w/{slug}/targets"), raw.as_deref());
    let member = member_or_return!(&services, &headers, &slug, &here);
    draw_targets(&services, &member, &slug, raw.as_deref(), &here)
        .await
        .unwrap_or_else(|error| error_page(error, member.locale))
}

async fn draw_targets(
    services: &Services,
    member: &Member,
    slug: &str,
    raw: Option<&str>,
    here: &str,
) -> Result<Response> {
    use crate::reports::targets::TargetPeriod;
    use chrono::Datelike;
    let pairs = query_pairs(raw);
    let locale = member.locale;
    let measures = services.reports().target_measures(&member.ctx).await?;
    let today = services
        .clock()
        .now()
        .with_timezone(&member.ctx.time_zone)
        .date_naive();
    let start = member.ctx.calendar.fiscal_year_start;
    let this_year = if today.month() >= start {
        today.year()
    } else {
        today.year() - 1
    };
    let year = match first(&pairs, "fiscal_year").filter(|y| !y.is_empty()) {
        Some(text) => text.trim().parse::<i32>().map_err(|_| {
            crate::error::Error::invalid("/fiscal_year", "type", "a year such as 2026")
        })?,
        None => this_year,
    };
    let measure = first(&pairs, "measure")
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .or_else(|| measures.first().map(|(k, _)| k.clone()))
        .unwrap_or_default();
    let period_text = first(&pairs, "period").unwrap_or("year").to_owned();
    let period = TargetPeriod::parse(&period_text)?;
    let unit = match first(&pairs, "unit").filter(|u| !u.is_empty()) {
        Some(text) => Some(
            uuid::Uuid::parse_str(text)
                .map_err(|_| crate::error::Error::invalid("/unit", "uuid", "unit is an id"))?,
        ),
        None => None,
    };
    let progress = services
        .reports()
        .progress(&member.ctx, None, year, &measure, period, unit)
        .await?;
    let percent = |p: Option<rust_decimal::Decimal>| {
        p.map(|p| {
            let mut shown = (p * rust_decimal::Decimal::ONE_HUNDRED).round_dp(1);
            shown.rescale(1);
            shown.to_string()
        })
    };
    let amount = |d: rust_decimal::Decimal| {
        let mut shown = d.round_dp(2);
        shown.rescale(if shown.fract().is_zero() { 0 } else { 2 });
        locale.number(&shown.to_string())
    };
    let node = |n: &crate::reports::targets::Node| {
        json!({
            "kind": n.kind,
            "depth": n.depth,
            "name": n.name,
            "target": amount(n.target),
            "actual": amount(n.actual),
            "percent": percent(n.progress),
            "bar": n.progress.map(|p| (p * rust_decimal::Decimal::ONE_HUNDRED).round().min(rust_decimal::Decimal::ONE_HUNDRED).to_string()),
            "met": n.progress.is_some_and(|p| p >= rust_decimal::Decimal::ONE),
        })
    };
    let mut periods = vec![json!({"value": "year", "label": locale.text("targets.year")})];
    for q in 1..=4 {
        periods.push(json!({"value": format!("Q{q}"), "label": locale.text("targets.quarter").replace("{n}", &q.to_string())}));
    }
    for m in 1..=12 {
        periods.push(json!({"value": format!("M{m}"), "label": locale.text("targets.month").replace("{n}", &m.to_string())}));
    }
    let week = today.iso_week();
    let this_week = format!("{}-W{:02}", week.year(), week.week());
    periods.push(json!({"value": this_week, "label": locale.text("targets.this_week")}));
    for p in &mut periods {
        p["selected"] = json!(p["value"] == json!(progress.period));
    }
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, here).await?;
    let mut teams: Vec<Value> = member
        .access
        .policy
        .org()
        .units()
        .map(|u| json!({"value": u.id, "label": u.name, "selected": unit == Some(u.id)}))
        .collect();
    teams.sort_by(|a, b| a["label"].as_str().cmp(&b["label"].as_str()));
    page(
        "targets.html",
        with(
            frame,
            json!({
                "section": "reports",
                "year": year,
                "measure": measure,
                "measure_label": present::label_text(&progress.measure_label, locale),
                "measures": measures.iter().map(|(k, l)| json!({"value": k, "label": present::label_text(l, locale), "selected": *k == measure})).collect::<Vec<_>>(),
                "periods": periods,
                "teams": teams,
                "from": locale.date(progress.from),
                "to": locale.date(progress.to),
                "nodes": progress.nodes.iter().map(node).collect::<Vec<_>>(),
                "leaderboard": progress.leaderboard.iter().map(node).collect::<Vec<_>>(),
                "action": format!("/w/{slug}/targets"),
            }),
        ),
        StatusCode::OK,
    )
}

fn here_of(path: String, raw: Option<&str>) -> String {
    match raw {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path,
    }
}

async fn catalog(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    let here = format!("/w/{slug}/reports");
    let member = member_or_return!(&services, &headers, &slug, &here);
    draw_catalog(&services, &member, &here)
        .await
        .unwrap_or_else(|error| error_page(error, member.locale))
}

async fn draw_catalog(services: &Services, member: &Member, here: &str) -> Result<Response> {
    let (reports, dashboards) = services.reports().catalog(&member.ctx).await?;
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, here).await?;
    let locale = member.locale;
    let listed = |items: Vec<crate::reports::Listed>| -> Vec<Value> {
        items
            .into_iter()
            .map(|l| {
                json!({
                    "key": l.key,
                    "label": present::label_text(&l.label, locale),
                    "description": l.description.as_ref().map(|d| present::label_text(d, locale)),
                    "entity": l.entity.as_deref().map(|e| snapshot
                        .entity(e)
                        .map(|m| locale.label(m.document.get("x-label"), e).to_owned())
                        .unwrap_or_default()),
                })
            })
            .collect()
    };
    page(
        "reports.html",
        with(
            frame,
            json!({
                "section": "reports",
                "reports": listed(reports),
                "dashboards": listed(dashboards),
            }),
        ),
        StatusCode::OK,
    )
}

/// What the filter form asked for: `period` (or `from` and `to` for a custom range), `team`,
/// `owner`; empty inputs mean "as the report says".
fn filters_of(pairs: &[(String, String)]) -> Result<Filters> {
    let mut wanted: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k == "owner" || k == "team")
        .cloned()
        .collect();
    let from = first(pairs, "from").unwrap_or("").trim();
    let to = first(pairs, "to").unwrap_or("").trim();
    match first(pairs, "period").unwrap_or("") {
        "custom" if !from.is_empty() && !to.is_empty() => {
            wanted.push(("period".to_owned(), format!("{from}..{to}")));
        }
        "custom" | "" => {}
        period => wanted.push(("period".to_owned(), period.to_owned())),
    }
    Filters::parse(&wanted, false)
}

/// The filter form's choices: periods, teams and people, with the current ones selected.
async fn filter_form(
    services: &Services,
    member: &Member,
    pairs: &[(String, String)],
    offered: &[&str],
) -> Result<Value> {
    let current = |key: &str| first(pairs, key).unwrap_or("").to_owned();
    let locale = member.locale;
    let period = current("period");
    let periods: Vec<Value> = PERIODS
        .iter()
        .map(|p| {
            json!({"value": p, "label": locale.text(&format!("reports.period.{p}")), "selected": period == *p})
        })
        .collect();
    let team = current("team");
    let mut teams: Vec<Value> = member
        .access
        .policy
        .org()
        .units()
        .map(|u| json!({"value": u.id, "label": u.name, "selected": team == u.id.to_string()}))
        .collect();
    teams.sort_by(|a, b| a["label"].as_str().cmp(&b["label"].as_str()));
    let owner = current("owner");
    let people: Vec<Value> = crate::workspaces::members(services.db(), &member.access)
        .await?
        .into_iter()
        .filter(|m| m.active)
        .map(|m| json!({"value": m.account_id, "label": m.name, "selected": owner == m.account_id.to_string()}))
        .collect();
    Ok(json!({
        "offered": offered,
        "periods": periods,
        "custom": period == "custom",
        "from": current("from"),
        "to": current("to"),
        "teams": teams,
        "people": people,
        "active": !period.is_empty() || !team.is_empty() || !owner.is_empty(),
    }))
}

/// A result shaped for the page, its custom template run (an error shows in its place), and
/// its export links.
pub(super) fn shaped(outcome: &Outcome, member: &Member, slug: &str, export_query: &str) -> Value {
    let locale = member.locale;
    let list_url = format!("/w/{slug}/e/{}", outcome.entity);
    let mut view = present::view(outcome, locale, &list_url);
    if let Some(template) = &outcome.template {
        match present::render_template(template, &view) {
            Ok(html) => view["custom"] = json!(html),
            Err(error) => {
                view["custom_error"] = json!(template_problem(&error, locale));
            }
        }
    }
    let lang = format!("lang={}", locale.tag());
    let query = if export_query.is_empty() {
        lang
    } else {
        format!("{export_query}&{lang}")
    };
    view["export_csv"] = json!(format!(
        "/api/v1/w/{slug}/reports/{}/export.csv?{query}",
        outcome.report
    ));
    view["export_xlsx"] = json!(format!(
        "/api/v1/w/{slug}/reports/{}/export.xlsx?{query}",
        outcome.report
    ));
    view
}

fn template_problem(error: &crate::error::Error, locale: Locale) -> String {
    let located = error
        .field_errors()
        .first()
        .map(|e| match (e.line, e.column) {
            (Some(line), Some(column)) => format!("{} ({line}:{column})", e.message),
            _ => e.message.clone(),
        })
        .unwrap_or_else(|| error.to_string());
    format!("{} {located}", locale.text("reports.template_failed"))
}

/// The query string of the filters in force, for export links.
fn filter_query(filters: &Filters) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    if let Some(period) = &filters.period {
        out.append_pair("period", &period.name());
    }
    if let Some(team) = filters.team {
        out.append_pair("team", &team.to_string());
    }
    if let Some(owner) = filters.owner {
        out.append_pair("owner", &owner.to_string());
    }
    out.finish()
}

async fn report(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let here = here_of(format!("/w/{slug}/reports/{key}"), raw.as_deref());
    let member = member_or_return!(&services, &headers, &slug, &here);
    draw_report(&services, &member, &slug, &key, raw.as_deref(), &here)
        .await
        .unwrap_or_else(|error| error_page(error, member.locale))
}

async fn draw_report(
    services: &Services,
    member: &Member,
    slug: &str,
    key: &str,
    raw: Option<&str>,
    here: &str,
) -> Result<Response> {
    let pairs = query_pairs(raw);
    let filters = filters_of(&pairs)?;
    let outcome = services.reports().run(&member.ctx, key, &filters).await?;
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, here).await?;
    let form = filter_form(services, member, &pairs, &["period", "team", "owner"]).await?;
    page(
        "report.html",
        with(
            frame,
            json!({
                "section": "reports",
                "report": shaped(&outcome, member, slug, &filter_query(&filters)),
                "form": form,
                "action": format!("/w/{slug}/reports/{key}"),
            }),
        ),
        StatusCode::OK,
    )
}

async fn dashboard(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let here = here_of(format!("/w/{slug}/dashboards/{key}"), raw.as_deref());
    let member = member_or_return!(&services, &headers, &slug, &here);
    draw_dashboard(&services, &member, &slug, &key, raw.as_deref(), &here)
        .await
        .unwrap_or_else(|error| error_page(error, member.locale))
}

async fn draw_dashboard(
    services: &Services,
    member: &Member,
    slug: &str,
    key: &str,
    raw: Option<&str>,
    here: &str,
) -> Result<Response> {
    let pairs = query_pairs(raw);
    let filters = filters_of(&pairs)?;
    let board = services
        .reports()
        .dashboard(&member.ctx, key, &filters)
        .await?;
    let locale = member.locale;
    let export_query = filter_query(&filters);
    let tiles: Vec<Value> = board
        .tiles
        .iter()
        .map(|tile| {
            let title = tile.title.as_ref().map(|t| present::label_text(t, locale));
            json!({
                "report": tile.report,
                "title": title,
                "width": tile.width.clamp(1, 12),
                "height": tile.height.clamp(1, 4),
                "result": tile.outcome.as_ref().map(|o| shaped(o, member, slug, &export_query)),
                "error": tile.error.as_ref().map(|e| {
                    let located: Vec<String> = e.errors.iter().map(|f| format!("{} ({})", f.message, f.pointer)).collect();
                    if located.is_empty() { e.detail.clone() } else { format!("{} — {}", e.detail, located.join("; ")) }
                }),
            })
        })
        .collect();
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, here).await?;
    let offered: Vec<&str> = board.filters.iter().map(String::as_str).collect();
    let form = filter_form(services, member, &pairs, &offered).await?;
    page(
        "dashboard.html",
        with(
            frame,
            json!({
                "section": "reports",
                "dashboard": {
                    "key": board.key,
                    "label": present::label_text(&board.label, locale),
                    "description": board.description.as_ref().map(|d| present::label_text(d, locale)),
                    "tiles": tiles,
                },
                "form": form,
                "action": format!("/w/{slug}/dashboards/{key}"),
            }),
        ),
        StatusCode::OK,
    )
}
