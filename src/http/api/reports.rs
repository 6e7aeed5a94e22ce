//! `/api/v1/w/{workspace}/reports` and `/dashboards`: the catalog a member may open, a report
//! run (JSON) or exported (CSV, XLSX), a draft report previewed, a dashboard run. Every number
//! is computed through the records door, so it respects the caller's scope and field rules.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::records::Caller;
use crate::app::Services;
use crate::error::{Error, Result};
use crate::http::extract::AppJson;
use crate::render::i18n::Locale;
use crate::reports::targets::{Progress, SplitRequest, TargetPeriod};
use crate::reports::{Board, Filters, Outcome, export};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/reports", get(catalog))
        .route("/w/{workspace}/reports/preview", post(preview))
        .route("/w/{workspace}/reports/{key}/run", get(run))
        .route("/w/{workspace}/reports/{key}/export.csv", get(export_csv))
        .route("/w/{workspace}/reports/{key}/export.xlsx", get(export_xlsx))
        .route("/w/{workspace}/dashboards/{key}", get(dashboard))
        .route("/w/{workspace}/targets/progress", get(target_progress))
        .route("/w/{workspace}/targets/split", post(split_targets))
}

/// A progress query: `fiscal_year` and `measure` (required), `period`, `unit`, `entity`.
struct ProgressQuery {
    entity: Option<String>,
    year: i32,
    measure: String,
    period: TargetPeriod,
    unit: Option<uuid::Uuid>,
}

fn progress_query(raw: Option<&str>) -> Result<ProgressQuery> {
    let mut year = None;
    let mut measure = None;
    let mut period = TargetPeriod::Year;
    let mut unit = None;
    let mut entity = None;
    for (key, value) in pairs(raw) {
        match key.as_str() {
            "fiscal_year" => {
                year = Some(value.trim().parse::<i32>().map_err(|_| {
                    Error::invalid("/fiscal_year", "type", "fiscal_year is a year such as 2026")
                })?);
            }
            "measure" => measure = Some(value),
            "period" => period = TargetPeriod::parse(&value)?,
            "unit" if !value.is_empty() => {
                unit = Some(
                    uuid::Uuid::parse_str(value.trim())
                        .map_err(|_| Error::invalid("/unit", "uuid", "unit is an id"))?,
                );
            }
            "unit" => {}
            "entity" => entity = Some(value),
            other => {
                return Err(Error::invalid(
                    format!("/{other}"),
                    "unknown_parameter",
                    format!("unknown parameter {other:?}"),
                ));
            }
        }
    }
    Ok(ProgressQuery {
        entity,
        year: year
            .ok_or_else(|| Error::invalid("/fiscal_year", "required", "fiscal_year is required"))?,
        measure: measure
            .ok_or_else(|| Error::invalid("/measure", "required", "measure is required"))?,
        period,
        unit,
    })
}

async fn target_progress(
    State(services): State<Services>,
    caller: Caller,
    Path(_): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Progress>> {
    let query = progress_query(raw.as_deref())?;
    Ok(Json(
        services
            .reports()
            .progress(
                &caller.ctx,
                query.entity.as_deref(),
                query.year,
                &query.measure,
                query.period,
                query.unit,
            )
            .await?,
    ))
}

async fn split_targets(
    State(services): State<Services>,
    caller: Caller,
    Path(_): Path<String>,
    AppJson(request): AppJson<SplitRequest>,
) -> Result<Json<Value>> {
    let written = services.reports().split(&caller.ctx, &request).await?;
    Ok(Json(json!({"records": written})))
}

fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

async fn catalog(State(services): State<Services>, caller: Caller) -> Result<Json<Value>> {
    let (reports, dashboards) = services.reports().catalog(&caller.ctx).await?;
    Ok(Json(json!({"reports": reports, "dashboards": dashboards})))
}

async fn run(
    State(services): State<Services>,
    caller: Caller,
    Path((_, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Outcome>> {
    let filters = Filters::parse(&pairs(raw.as_deref()), true)?;
    Ok(Json(
        services.reports().run(&caller.ctx, &key, &filters).await?,
    ))
}

async fn preview(
    State(services): State<Services>,
    caller: Caller,
    Path(_): Path<String>,
    RawQuery(raw): RawQuery,
    AppJson(document): AppJson<Value>,
) -> Result<Json<Outcome>> {
    let filters = Filters::parse(&pairs(raw.as_deref()), true)?;
    Ok(Json(
        services
            .reports()
            .preview(&caller.ctx, &document, &filters)
            .await?,
    ))
}

/// The export's language (`lang`, else `Accept-Language`) and the report's filters.
fn export_request(raw: Option<&str>, headers: &HeaderMap) -> Result<(Locale, Filters)> {
    let mut pairs = pairs(raw);
    let lang = pairs
        .iter()
        .position(|(k, _)| k == "lang")
        .map(|i| pairs.remove(i).1);
    let locale = match lang {
        Some(tag) => Locale::from_tag(&tag)
            .ok_or_else(|| Error::invalid("/lang", "enum", "lang is en or zh-CN"))?,
        None => Locale::negotiate(
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        ),
    };
    Ok((locale, Filters::parse(&pairs, true)?))
}

fn attachment(bytes: Vec<u8>, content_type: &str, name: &str) -> Response {
    // The report key is `[a-z0-9_]`, safe in a header.
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// The report `key` as a file: its result for the caller, in the language asked for.
async fn export_file(
    services: &Services,
    caller: &Caller,
    headers: &HeaderMap,
    key: &str,
    raw: Option<&str>,
    as_xlsx: bool,
) -> Result<Response> {
    let (locale, filters) = export_request(raw, headers)?;
    let outcome = services.reports().run(&caller.ctx, key, &filters).await?;
    Ok(if as_xlsx {
        attachment(
            export::xlsx(&outcome, locale)?,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            &format!("{key}.xlsx"),
        )
    } else {
        attachment(
            export::csv(&outcome, locale)?,
            "text/csv; charset=utf-8",
            &format!("{key}.csv"),
        )
    })
}

async fn export_csv(
    State(services): State<Services>,
    caller: Caller,
    headers: HeaderMap,
    Path((_, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    export_file(&services, &caller, &headers, &key, raw.as_deref(), false).await
}

async fn export_xlsx(
    State(services): State<Services>,
    caller: Caller,
    headers: HeaderMap,
    Path((_, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    export_file(&services, &caller, &headers, &key, raw.as_deref(), true).await
}

async fn dashboard(
    State(services): State<Services>,
    caller: Caller,
    Path((_, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Board>> {
    let filters = Filters::parse(&pairs(raw.as_deref()), true)?;
    Ok(Json(
        services
            .reports()
            .dashboard(&caller.ctx, &key, &filters)
            .await?,
    ))
}
