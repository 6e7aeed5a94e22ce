//! The report builder at `/w/{workspace}/build/reports/{key}`: pick the entity, filters, the
//! date field and period, groupings and measures and the chart; a live preview runs the draft
//! for the person designing it; save, publish, and add the report to a dashboard. Every save is
//! the report's draft at the revision the page was drawn at.

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::builder::{actor, check_revision, problems_of};
use super::member::{Member, frame, snapshot, with};
use super::page;
use super::records::{Pairs, all_of, finish, first, see_other};
use crate::access::Right;
use crate::app::Services;
use crate::definitions::report_designer::{
    self, CHARTS, Condition, Measure, OPS, PERIODS, ReportSpec,
};
use crate::definitions::{Kind, designer};
use crate::error::{Error, Result};

/// The report builder's routes.
pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/build/reports", get(open_report))
        .route(
            "/w/{workspace}/build/reports/{key}",
            get(report_page).post(edit_report),
        )
}

/// Opens the builder on the report named in `?key=` (new or existing).
async fn open_report(
    Path(slug): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let pairs = super::records::query_pairs(raw.as_deref());
    let key = first(&pairs, "key").unwrap_or_default().trim().to_owned();
    let valid = key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && key.len() <= 63
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        see_other(&format!("/w/{slug}/build/reports/{key}"))
    } else {
        see_other(&format!("/w/{slug}/build"))
    }
}

fn spec_of_form(posted: &Pairs) -> ReportSpec {
    let text = |name: &str| first(posted, name).unwrap_or_default().to_owned();
    let zip3 = |a: &str, b: &str, c: &str| {
        let (a, b, c) = (all_of(posted, a), all_of(posted, b), all_of(posted, c));
        (0..a.len())
            .map(|i| {
                (
                    a[i].clone(),
                    b.get(i).cloned().unwrap_or_default(),
                    c.get(i).cloned().unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>()
    };
    let measures = {
        let (ops, fields, en, zh) = (
            all_of(posted, "measure_op"),
            all_of(posted, "measure_field"),
            all_of(posted, "measure_en"),
            all_of(posted, "measure_zh"),
        );
        (0..ops.len())
            .map(|i| Measure {
                op: ops[i].clone(),
                field: fields.get(i).cloned().unwrap_or_default(),
                label_en: en.get(i).cloned().unwrap_or_default(),
                label_zh: zh.get(i).cloned().unwrap_or_default(),
            })
            .collect()
    };
    let groups = {
        let (fields, buckets) = (
            all_of(posted, "group_field"),
            all_of(posted, "group_bucket"),
        );
        (0..fields.len())
            .map(|i| {
                (
                    fields[i].clone(),
                    buckets.get(i).cloned().unwrap_or_default(),
                )
            })
            .collect()
    };
    ReportSpec {
        label_en: text("label_en"),
        label_zh: text("label_zh"),
        entity: text("entity"),
        conditions: zip3("cond_field", "cond_op", "cond_value")
            .into_iter()
            .map(|(field, op, value)| Condition { field, op, value })
            .collect(),
        date_field: text("date_field"),
        period: text("period"),
        group_by: groups,
        measures,
        chart: text("chart"),
    }
}

/// The entity's fields and their kinds, for the form and to type values.
async fn kinds_of(services: &Services, member: &Member, entity: &str) -> Vec<(String, String)> {
    let Ok(def) = services
        .definitions()
        .get(member.ctx.scope, Kind::Entity, entity)
        .await
    else {
        return Vec::new();
    };
    let Some(doc) = def.published else {
        return Vec::new();
    };
    designer::value_kinds(&doc)
}

async fn report_page(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, key)): Path<(String, String)>,
) -> Response {
    let here = format!("/w/{slug}/build/reports/{key}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    finish(
        draw(
            &services,
            &member,
            &key,
            &here,
            None,
            Vec::new(),
            StatusCode::OK,
        )
        .await,
        locale,
    )
}

async fn draw(
    services: &Services,
    member: &Member,
    key: &str,
    here: &str,
    posted: Option<ReportSpec>,
    problems: Vec<Value>,
    status: StatusCode,
) -> Result<Response> {
    member.access.require(Right::Definitions)?;
    let locale = member.locale;
    let store = services.definitions();
    let existing = store.get(member.ctx.scope, Kind::Report, key).await.ok();
    let working = existing.as_ref().and_then(|d| d.working().cloned());
    let spec = posted.unwrap_or_else(|| {
        working
            .as_ref()
            .map(report_designer::spec_of)
            .unwrap_or_default()
    });
    let entities: Vec<Value> = store
        .list(member.ctx.scope, Some(Kind::Entity))
        .await?
        .into_iter()
        .filter_map(|d| {
            let doc = d.published?;
            Some(json!({"key": d.key, "label": locale.label(doc.get("x-label"), &d.key)}))
        })
        .collect();
    let kinds = kinds_of(services, member, &spec.entity).await;
    let entity_doc = store
        .get(member.ctx.scope, Kind::Entity, &spec.entity)
        .await
        .ok()
        .and_then(|d| d.published);
    let fields: Vec<Value> = kinds
        .iter()
        .map(|(k, kind)| {
            json!({
                "key": k,
                "kind": kind,
                "label": locale.label(entity_doc.as_ref().and_then(|d| d.pointer(&format!("/properties/{k}/x-label"))), k),
            })
        })
        .collect();
    // Rows for the form: what the spec has, then empty ones to add.
    let mut conditions: Vec<Value> = spec
        .conditions
        .iter()
        .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
        .collect();
    conditions.extend((0..2).map(|_| json!({"field": "", "op": "eq", "value": ""})));
    let mut measures: Vec<Value> = spec
        .measures
        .iter()
        .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
        .collect();
    measures.extend((0..2).map(|_| json!({"op": "", "field": "", "label_en": "", "label_zh": ""})));
    let mut groups: Vec<Value> = spec
        .group_by
        .iter()
        .map(|(f, b)| json!({"field": f, "bucket": b}))
        .collect();
    while groups.len() < 2 {
        groups.push(json!({"field": "", "bucket": ""}));
    }
    // The preview: the draft run for the person designing it.
    let preview = match &working {
        Some(doc) if problems.is_empty() => {
            match services
                .reports()
                .preview(&member.ctx, doc, &crate::reports::Filters::default())
                .await
            {
                Ok(outcome) => {
                    json!({"result": super::reports::shaped(&outcome, member, member.slug(), "")})
                }
                Err(error) => json!({"error": super::records::problem_text(&error, locale)}),
            }
        }
        _ => Value::Null,
    };
    let dashboards: Vec<Value> = store
        .list(member.ctx.scope, Some(Kind::Dashboard))
        .await?
        .into_iter()
        .filter_map(|d| {
            let doc = d.draft.or(d.published)?;
            Some(json!({"key": d.key, "label": locale.label(doc.get("label"), &d.key)}))
        })
        .collect();
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, here).await?;
    page(
        "builder_report.html",
        with(
            frame,
            json!({
                "section": "build",
                "key": key,
                "exists": existing.is_some(),
                "revision": existing.as_ref().map_or(0, |d| d.revision),
                "published_version": existing.as_ref().and_then(|d| d.published_version),
                "has_draft": existing.as_ref().is_some_and(|d| d.draft.is_some()),
                "spec": spec,
                "entities": entities,
                "fields": fields,
                "conditions": conditions,
                "measures": measures,
                "groups": groups,
                "ops": OPS,
                "charts": CHARTS,
                "periods": PERIODS,
                "preview": preview,
                "dashboards": dashboards,
                "json": working.map(|w| serde_json::to_string_pretty(&w).unwrap_or_default()),
                "problems": problems,
            }),
        ),
        status,
    )
}

async fn edit_report(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, key)): Path<(String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/build/reports/{key}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    match apply(&services, &member, &key, &posted).await {
        Ok(to) => see_other(&to),
        Err(error @ (Error::Invalid { .. } | Error::Conflict { .. } | Error::NotFound(_))) => {
            let status = crate::http::error::status_of(&error);
            let posted_spec = (first(&posted, "op") == Some("save")).then(|| spec_of_form(&posted));
            finish(
                draw(
                    &services,
                    &member,
                    &key,
                    &here,
                    posted_spec,
                    problems_of(&error, locale),
                    status,
                )
                .await,
                locale,
            )
        }
        Err(error) => finish(Err(error), locale),
    }
}

async fn apply(services: &Services, member: &Member, key: &str, posted: &Pairs) -> Result<String> {
    member.check_csrf(first(posted, "csrf_token"))?;
    member.access.require(Right::Definitions)?;
    let revision: i64 = first(posted, "revision")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let store = services.definitions();
    let scope = member.ctx.scope;
    let base = format!("/w/{}/build/reports/{key}", member.slug());
    let current = store.get(scope, Kind::Report, key).await.ok();
    check_revision(
        current.as_ref().map_or(0, |d| d.revision),
        revision,
        "report",
    )?;
    let expected = current.as_ref().map(|d| d.revision);
    match first(posted, "op").unwrap_or_default() {
        "save" => {
            let spec = spec_of_form(posted);
            let kinds = kinds_of(services, member, &spec.entity).await;
            if kinds.is_empty() {
                return Err(Error::invalid(
                    "/spec/entity",
                    "unknown_entity",
                    "pick a published entity",
                ));
            }
            let mut document = report_designer::document(&spec, &kinds)
                .map_err(|problems| Error::invalid_all("the report was not saved", problems))?;
            // What the builder does not edit (description, sort, formulas, template) stays.
            if let Some(old) = current.as_ref().and_then(|d| d.working().cloned()) {
                for keep in ["description", "sort", "limit", "funnel", "template"] {
                    if let Some(value) = old.get(keep) {
                        document[keep] = value.clone();
                    }
                }
            }
            store
                .save_draft(scope, Kind::Report, key, document, expected, actor(member))
                .await?;
            Ok(format!("{base}#preview"))
        }
        "publish" => {
            store
                .publish(scope, Kind::Report, key, revision, None, actor(member))
                .await?;
            Ok(base)
        }
        "add_to_dashboard" => {
            let board_key = first(posted, "dashboard").unwrap_or_default();
            let board = store.get(scope, Kind::Dashboard, board_key).await?;
            let mut document = board
                .working()
                .cloned()
                .ok_or_else(|| Error::not_found(format!("dashboard {board_key:?}")))?;
            report_designer::add_to_dashboard(&mut document, key, 6);
            store
                .save_draft(
                    scope,
                    Kind::Dashboard,
                    board_key,
                    document,
                    Some(board.revision),
                    actor(member),
                )
                .await?;
            let board = store.get(scope, Kind::Dashboard, board_key).await?;
            store
                .publish(
                    scope,
                    Kind::Dashboard,
                    board_key,
                    board.revision,
                    None,
                    actor(member),
                )
                .await?;
            Ok(format!("/w/{}/dashboards/{board_key}", member.slug()))
        }
        other => Err(Error::invalid(
            "/op",
            "unknown_op",
            format!("the report builder does not know {other:?}"),
        )),
    }
}
