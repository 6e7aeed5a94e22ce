//! Record pages under `/w/{workspace}/e/{entity}`: the list (table or kanban, with filters,
//! sort, pages and bulk actions), the record page (its form, related records and timeline),
//! and the create and edit forms. Every read and write goes through `records`, so the same
//! validation, access rules and workflows apply as in the API.

use std::collections::{HashMap, HashSet};

use axum::Router;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::member::{Member, enter, frame, with};
use super::{error_page, page};
use crate::app::Services;
use crate::definitions::{EntityModel, FieldKind, Kind, Snapshot};
use crate::error::{Error, FieldError, Result};
use crate::http::export::Sheet;
use crate::records::{NewRecord, RecordView, Shape};
use crate::render::forms::{self, Names, Section};
use crate::render::i18n::Locale;

/// The record pages.
pub(super) fn router() -> Router<Services> {
    let base = "/w/{workspace}/e/{entity}";
    Router::new()
        .route(base, get(list))
        .route(&format!("{base}/new"), get(new_form).post(create))
        .route(&format!("{base}/bulk"), post(bulk))
        .route(&format!("{base}/bulk-edit"), post(bulk_edit))
        .route(&format!("{base}/form-state"), post(form_state))
        .route(&format!("{base}/lookup"), get(lookup))
        .route(&format!("{base}/export.csv"), get(export_csv))
        .route(&format!("{base}/export.xlsx"), get(export_xlsx))
        .route(&format!("{base}/saved-views"), post(save_view))
        .route(
            &format!("{base}/saved-views/{{id}}/delete"),
            post(delete_view),
        )
        .route(&format!("{base}/{{id}}"), get(show))
        .route(&format!("{base}/{{id}}/edit"), get(edit_form).post(update))
        .route(&format!("{base}/{{id}}/set"), post(set_field))
        .route(&format!("{base}/{{id}}/delete"), post(delete))
        // claim, release, purge (the other actions on a record have routes of their own).
        .route(&format!("{base}/{{id}}/{{action}}"), post(record_action))
}

/// Largest number of cards a kanban shows per request.
const KANBAN_LIMIT: u64 = 500;
/// Largest number of records a reference picker offers without searching.
const OFFERED_LIMIT: u64 = 200;

pub(super) type Pairs = Vec<(String, String)>;

pub(super) fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Every value posted under `key` (the ids of a selection), in order.
pub(super) fn all_of(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

pub(super) fn query_pairs(raw: Option<&str>) -> Pairs {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// Where to go back to after an action: `candidate` when it is a local path under `within`
/// (visible ASCII only, as browsers read it), else `fallback`.
pub(super) fn back_to(candidate: Option<&str>, within: &str, fallback: String) -> String {
    candidate
        .filter(|b| b.starts_with(within) && b.bytes().all(|c| c.is_ascii_graphic() && c != b'\\'))
        .map_or(fallback, str::to_owned)
}

pub(super) fn see_other(to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
}

/// The answer to the page's script (a board move, a rule round trip, a search): the result, or
/// the failure as `{message}` in the reader's language with its status.
pub(super) fn for_script(result: Result<Response>, locale: Locale) -> Response {
    result.unwrap_or_else(|error| {
        let status = crate::http::error::status_of(&error);
        (
            status,
            axum::Json(json!({"message": problem_text(&error, locale)})),
        )
            .into_response()
    })
}

/// A page's result, failures drawn as an error page in the reader's language.
pub(super) fn finish(result: Result<Response>, locale: Locale) -> Response {
    result.unwrap_or_else(|error| error_page(error, locale))
}

/// The form layout for an entity: its form definition named `<entity>_form`, else the first
/// one for the entity.
pub(super) fn form_for<'s>(snapshot: &'s Snapshot, entity: &str) -> Option<&'s Value> {
    let forms = snapshot.of_kind(Kind::Form);
    let of_entity: Vec<&'s Value> = forms
        .iter()
        .filter(|(_, p)| p.document.get("entity").and_then(Value::as_str) == Some(entity))
        .map(|(_, p)| &*p.document)
        .collect();
    let preferred = format!("{entity}_form");
    forms
        .iter()
        .find(|(key, p)| *key == preferred && of_entity.contains(&&*p.document))
        .map(|(_, p)| &*p.document)
        .or_else(|| of_entity.first().copied())
}

/// The views of an entity: (key, document).
fn views_for<'s>(snapshot: &'s Snapshot, entity: &str) -> Vec<(&'s str, &'s Value)> {
    snapshot
        .of_kind(Kind::View)
        .into_iter()
        .filter(|(_, p)| p.document.get("entity").and_then(Value::as_str) == Some(entity))
        .map(|(key, p)| (key, &*p.document))
        .collect()
}

/// A record's title: its title field, else the start of its id.
pub(super) fn title_of(model: &EntityModel, fields: &Map<String, Value>, id: Uuid) -> String {
    crate::records::title_of(model, fields, id)
}

/// Names of the records and people that `records` refer to in `keys` (references the caller
/// cannot read stay unnamed).
pub(super) async fn names_for(
    services: &Services,
    member: &Member,
    model: &EntityModel,
    records: &[&Map<String, Value>],
    keys: &[String],
    with_people: bool,
) -> Result<Names> {
    let mut names = Names::default();
    let mut wanted: HashMap<String, HashSet<String>> = HashMap::new();
    for key in keys {
        if let Some(FieldKind::Reference { entity, .. }) = model.field(key).map(|f| &f.kind) {
            let ids = wanted.entry(entity.clone()).or_default();
            for fields in records {
                if let Some(Value::String(id)) = fields.get(key) {
                    ids.insert(id.clone());
                }
            }
        }
    }
    for (entity, ids) in wanted {
        names.records.extend(
            services
                .records()
                .titles(&member.ctx, &entity, ids.into_iter().collect())
                .await,
        );
    }
    if with_people {
        for person in crate::workspaces::members(services.db(), &member.access).await? {
            let id = person.account_id.to_string();
            names.people.insert(id.clone(), person.name.clone());
            if person.active {
                names.members.push((id, person.name));
            }
        }
    }
    Ok(names)
}

/// The record titles a reference picker offers (up to [`OFFERED_LIMIT`], by title).
async fn offer_references(
    services: &Services,
    member: &Member,
    sections: &[Section],
    names: &mut Names,
) {
    for widget in sections.iter().flat_map(|s| s.fields.iter()) {
        let Some(target) = widget.target.as_deref() else {
            continue;
        };
        if widget.readonly {
            continue;
        }
        let Some(model) = entity_model(services, &member.ctx, target).await else {
            continue;
        };
        let mut query = json!({"limit": OFFERED_LIMIT});
        if let Some(title) = &model.title_field {
            query["sort"] = json!([title]);
        }
        let Ok(page) = services.records().list(&member.ctx, target, &query).await else {
            continue;
        };
        let offered = page
            .records
            .iter()
            .map(|r| (r.id.to_string(), title_of(&model, &r.fields, r.id)))
            .collect::<Vec<_>>();
        for (id, title) in &offered {
            names.records.insert(id.clone(), title.clone());
        }
        names.offered.insert(widget.key.clone(), offered);
    }
}

/// The values a new record starts with (the fields' defaults).
pub(super) fn defaults_of(model: &EntityModel) -> Map<String, Value> {
    model
        .fields
        .iter()
        .filter_map(|f| f.default.clone().map(|d| (f.key.clone(), d)))
        .collect()
}

/// What the list page was asked for.
struct ListRequest {
    view: Option<String>,
    layout: String,
    group_by: Option<String>,
    q: String,
    sort: Option<String>,
    cursor: Option<String>,
    filters: Vec<(String, String)>,
    deleted: bool,
    pool: bool,
    /// A query-language filter from a report's drill-down link (JSON).
    drill: Option<String>,
}

fn list_request(pairs: &[(String, String)]) -> ListRequest {
    ListRequest {
        view: first(pairs, "view").map(str::to_owned),
        layout: first(pairs, "layout").unwrap_or("").to_owned(),
        group_by: first(pairs, "group_by").map(str::to_owned),
        q: first(pairs, "q").unwrap_or("").trim().to_owned(),
        sort: first(pairs, "sort")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        cursor: first(pairs, "cursor")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        filters: pairs
            .iter()
            .filter(|(k, v)| k.starts_with("f.") && !v.is_empty())
            .cloned()
            .collect(),
        deleted: first(pairs, "deleted") == Some("1"),
        pool: first(pairs, "pool") == Some("1"),
        drill: first(pairs, "filter")
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned),
    }
}

/// The filter of the list page: the view's own, the quick search over text fields, and one
/// condition per filter input (`f.<field>`, `f.<field>.from`, `f.<field>.to`).
fn list_filter(
    model: &EntityModel,
    shape: &Shape,
    view: Option<&Value>,
    request: &ListRequest,
) -> Option<Value> {
    let mut all = Vec::new();
    if request.pool {
        all.push(json!({"field": "owner", "op": "is_empty"}));
    }
    if let Some(filter) = view.and_then(|v| v.get("filter")) {
        all.push(filter.clone());
    }
    if let Some(drill) = &request.drill {
        // Text that is not JSON goes on as a string: the query resolver refuses it by name.
        all.push(serde_json::from_str(drill).unwrap_or_else(|_| Value::String(drill.clone())));
    }
    if !request.q.is_empty() {
        let any: Vec<Value> = model
            .fields
            .iter()
            .filter(|f| {
                matches!(
                    f.kind,
                    FieldKind::Text | FieldKind::Email | FieldKind::Phone | FieldKind::LongText
                ) && shape.rule(&f.key) == crate::access::FieldRule::Visible
                    && !f.hidden
                    && f.computed.is_none()
            })
            .map(|f| json!({"field": f.key, "op": "contains", "value": request.q}))
            .collect();
        if !any.is_empty() {
            all.push(json!({"or": any}));
        }
    }
    for (name, value) in &request.filters {
        let Some(rest) = name.strip_prefix("f.") else {
            continue;
        };
        let (key, bound) = match rest.rsplit_once('.') {
            Some((key, "from")) => (key, Some("gte")),
            Some((key, "to")) => (key, Some("lte")),
            _ => (rest, None),
        };
        let op = match (bound, model.field(key).map(|f| &f.kind)) {
            (Some(op), _) => op,
            (None, Some(FieldKind::MultiSelect { .. })) => "contains",
            (
                None,
                Some(
                    FieldKind::Text
                    | FieldKind::LongText
                    | FieldKind::Email
                    | FieldKind::Phone
                    | FieldKind::Url,
                ),
            ) => "contains",
            _ => "eq",
        };
        let typed = match model.field(key).map(|f| &f.kind) {
            Some(FieldKind::Integer) => value
                .parse::<i64>()
                .map_or_else(|_| json!(value), |n| json!(n)),
            Some(FieldKind::Number | FieldKind::Percent) => value
                .parse::<f64>()
                .map_or_else(|_| json!(value), |n| json!(n)),
            Some(FieldKind::Boolean) => json!(value == "true"),
            _ => json!(value),
        };
        let field = if key == "owner" { "owner" } else { key };
        all.push(json!({"field": field, "op": op, "value": typed}));
    }
    match all.len() {
        0 => None,
        1 => all.pop(),
        _ => Some(json!({"and": all})),
    }
}

/// The inputs of the filter bar, built from the field kinds of the shown columns.
fn filter_inputs(
    model: &EntityModel,
    columns: &[String],
    request: &ListRequest,
    names: &Names,
    locale: Locale,
) -> Vec<Value> {
    let current = |name: &str| {
        request
            .filters
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
            .to_owned()
    };
    let properties = model.document.get("properties");
    columns
        .iter()
        .filter_map(|key| {
            let field = model.field(key)?;
            let spec = properties.and_then(|p| p.get(key));
            let label = locale.label(spec.and_then(|s| s.get("x-label")), key);
            let name = format!("f.{key}");
            let input = match &field.kind {
                FieldKind::SingleSelect { .. } | FieldKind::MultiSelect { .. } => {
                    let chosen = current(&name);
                    let options: Vec<Value> = forms::options(spec, locale)
                        .into_iter()
                        .map(|c| json!({"value": c.value, "label": c.label, "selected": c.value == chosen}))
                        .collect();
                    json!({"type": "select", "options": options})
                }
                FieldKind::User => {
                    let chosen = current(&name);
                    let options: Vec<Value> = names
                        .members
                        .iter()
                        .map(|(id, n)| json!({"value": id, "label": n, "selected": *id == chosen}))
                        .collect();
                    json!({"type": "select", "options": options})
                }
                FieldKind::Boolean => {
                    let chosen = current(&name);
                    json!({"type": "select", "options": [
                        {"value": "true", "label": locale.text("value.yes"), "selected": chosen == "true"},
                        {"value": "false", "label": locale.text("value.no"), "selected": chosen == "false"}]})
                }
                FieldKind::Date | FieldKind::DateTime => json!({"type": "date_range",
                    "from": current(&format!("{name}.from")), "to": current(&format!("{name}.to"))}),
                FieldKind::Integer | FieldKind::Number | FieldKind::Money { .. } | FieldKind::Percent => {
                    json!({"type": "number_range",
                        "from": current(&format!("{name}.from")), "to": current(&format!("{name}.to"))})
                }
                FieldKind::Text | FieldKind::Email | FieldKind::Phone | FieldKind::Url => {
                    json!({"type": "text", "value": current(&name)})
                }
                _ => return None,
            };
            let mut input = input;
            input["name"] = json!(name);
            input["label"] = json!(label);
            Some(input)
        })
        .collect()
}

async fn list(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let here = match &raw {
        Some(q) => format!("/w/{slug}/e/{entity}?{q}"),
        None => format!("/w/{slug}/e/{entity}"),
    };
    let pairs = query_pairs(raw.as_deref());
    let member = member_or_return!(&services, &headers, &slug, &here.clone());
    finish(
        draw_list(&services, &member, &entity, &pairs, &here).await,
        member.locale,
    )
}

async fn export_csv(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    export_list(
        &services,
        &headers,
        &slug,
        &entity,
        raw.as_deref(),
        Sheet::Csv,
    )
    .await
}

async fn export_xlsx(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    export_list(
        &services,
        &headers,
        &slug,
        &entity,
        raw.as_deref(),
        Sheet::Xlsx,
    )
    .await
}

/// The list page's records (its view, quick search, filters and sort; the recycle bin or the
/// pool when shown) as a spreadsheet of every visible field.
async fn export_list(
    services: &Services,
    headers: &HeaderMap,
    slug: &str,
    entity: &str,
    raw: Option<&str>,
    sheet: Sheet,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}");
    let member = member_or_return!(services, headers, slug, &here);
    let locale = member.locale;
    let done = async {
        let shape = services.records().shape(&member.ctx, entity).await?;
        let pairs = query_pairs(raw);
        let request = list_request(&pairs);
        let views = views_for(&shape.snapshot, entity);
        let view = request
            .view
            .as_deref()
            .and_then(|key| views.iter().find(|(k, _)| *k == key))
            .or_else(|| {
                views
                    .iter()
                    .find(|(_, v)| v.get("layout").and_then(Value::as_str) == Some("table"))
            })
            .map(|(_, v)| *v);
        let mut query = json!({});
        if let Some(filter) = list_filter(&shape.model, &shape, view, &request) {
            query["filter"] = filter;
        }
        let sort: Vec<Value> = match &request.sort {
            Some(text) => text
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| json!(s))
                .collect(),
            None => view
                .and_then(|v| v.get("sort"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        };
        if !sort.is_empty() {
            query["sort"] = json!(sort);
        }
        if request.deleted {
            query["deleted"] = json!(true);
        }
        crate::http::export::respond(
            services,
            member.ctx.clone(),
            &member.access,
            entity,
            query,
            sheet,
            locale,
        )
        .await
    }
    .await;
    finish(done, locale)
}

async fn draw_list(
    services: &Services,
    member: &Member,
    entity: &str,
    pairs: &[(String, String)],
    here: &str,
) -> Result<Response> {
    let locale = member.locale;
    let shape = services.records().shape(&member.ctx, entity).await?;
    let model = shape.model.clone();
    let request = list_request(pairs);
    let views = views_for(&shape.snapshot, entity);
    let view = request
        .view
        .as_deref()
        .and_then(|key| views.iter().find(|(k, _)| *k == key))
        .or_else(|| {
            views
                .iter()
                .find(|(_, v)| v.get("layout").and_then(Value::as_str) == Some("table"))
        })
        .copied();
    let view_doc = view.map(|(_, v)| v);
    let view_layout = view_doc
        .and_then(|v| v.get("layout"))
        .and_then(Value::as_str)
        .unwrap_or("table");
    let layout = match request.layout.as_str() {
        "kanban" | "table" => request.layout.clone(),
        _ if view_layout == "kanban" => "kanban".to_owned(),
        _ => "table".to_owned(),
    };
    let visible = |key: &str| {
        model
            .field(key)
            .is_some_and(|f| !f.hidden && shape.rule(key) != crate::access::FieldRule::Hidden)
    };
    let columns: Vec<String> = view_doc
        .and_then(|v| v.get("columns"))
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(Value::as_str)
                .filter(|k| visible(k))
                .map(str::to_owned)
                .collect()
        })
        .filter(|c: &Vec<String>| !c.is_empty())
        .unwrap_or_else(|| {
            model
                .fields
                .iter()
                .filter(|f| {
                    visible(&f.key)
                        && !matches!(f.kind, FieldKind::SubTable { .. } | FieldKind::LongText)
                })
                .take(6)
                .map(|f| f.key.clone())
                .collect()
        });
    let selects: Vec<(String, String)> = model
        .fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::SingleSelect { .. }) && visible(&f.key))
        .map(|f| {
            let spec = model
                .document
                .pointer(&format!("/properties/{}/x-label", f.key));
            (f.key.clone(), locale.label(spec, &f.key).to_owned())
        })
        .collect();
    let group_by = request
        .group_by
        .clone()
        .filter(|g| selects.iter().any(|(k, _)| k == g))
        .or_else(|| {
            view_doc
                .and_then(|v| v.get("group_by"))
                .and_then(Value::as_str)
                .filter(|g| selects.iter().any(|(k, _)| k == g))
                .map(str::to_owned)
        })
        .or_else(|| selects.first().map(|(k, _)| k.clone()));
    let layout = if layout == "kanban" && group_by.is_none() {
        "table".to_owned()
    } else {
        layout
    };
    let sort: Vec<Value> = match &request.sort {
        Some(text) => text
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| json!(s))
            .collect(),
        None => view_doc
            .and_then(|v| v.get("sort"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    };
    let page_size = view_doc
        .and_then(|v| v.get("page_size"))
        .and_then(Value::as_u64)
        .unwrap_or(50);
    let mut query = json!({
        "sort": sort,
        "limit": if layout == "kanban" { KANBAN_LIMIT } else { page_size },
        "total": "exact",
    });
    if let Some(filter) = list_filter(&model, &shape, view_doc, &request) {
        query["filter"] = filter;
    }
    if request.deleted {
        query["deleted"] = json!(true);
    }
    if let Some(cursor) = &request.cursor
        && layout == "table"
    {
        query["cursor"] = json!(cursor);
    }
    let snapshot = shape.snapshot.clone();
    let frame = frame(services, member, &snapshot, here).await?;
    let saved = crate::views::list(services.db(), &member.access, entity).await?;
    let (listed, problem) = match services.records().list(&member.ctx, entity, &query).await {
        Ok(listed) => (Some(listed), None),
        Err(
            error @ (Error::Invalid { .. } | Error::Forbidden { .. } | Error::BadRequest { .. }),
        ) => (None, Some(problem_text(&error, locale))),
        Err(other) => return Err(other),
    };
    let records = listed
        .as_ref()
        .map(|p| p.records.as_slice())
        .unwrap_or_default();
    let mut keys = columns.clone();
    keys.extend(group_by.clone());
    let field_maps: Vec<&Map<String, Value>> = records.iter().map(|r| &r.fields).collect();
    let names = names_for(services, member, &model, &field_maps, &keys, true).await?;
    let properties = model.document.get("properties");
    let choices_of = |key: &str| forms::options(properties.and_then(|p| p.get(key)), locale);
    let zone = member.ctx.time_zone;
    // Each column's options once, not once per cell.
    let column_choices: HashMap<&str, Vec<forms::Choice>> = columns
        .iter()
        .map(|key| (key.as_str(), choices_of(key)))
        .collect();
    let no_choices = Vec::new();
    let cells = |record: &RecordView| -> Vec<Value> {
        columns
            .iter()
            .filter_map(|key| {
                let field = model.field(key)?;
                let value = record.fields.get(key).cloned().unwrap_or(Value::Null);
                let choices = column_choices.get(key.as_str()).unwrap_or(&no_choices);
                let color = match &value {
                    Value::String(v) => choices
                        .iter()
                        .find(|c| c.value == *v)
                        .and_then(|c| c.color.clone()),
                    _ => None,
                };
                Some(json!({
                    "key": key,
                    "text": forms::display(field, choices, &value, &names, zone, locale),
                    "color": color,
                    "kind": field.kind.name(),
                }))
            })
            .collect()
    };
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "version": r.version,
                "title": title_of(&model, &r.fields, r.id),
                "cells": cells(r),
                "owner": r.owner.map(|o| names.people.get(&o.to_string()).cloned().unwrap_or_default()),
                "group": group_by.as_ref().and_then(|g| r.fields.get(g)).cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    let headers: Vec<Value> = columns
        .iter()
        .map(|key| {
            let label = locale.label(
                properties.and_then(|p| p.pointer(&format!("/{key}/x-label"))),
                key,
            );
            let sorted = sort.first().and_then(Value::as_str);
            let (next, state) = match sorted {
                Some(s) if s == key => (format!("-{key}"), "asc"),
                Some(s) if s.strip_prefix('-') == Some(key.as_str()) => (key.clone(), "desc"),
                _ => (key.clone(), "none"),
            };
            json!({"key": key, "label": label, "sort_to": next, "sorted": state,
                   "sortable": model.field(key).is_some_and(|f| f.kind.is_indexable() || f.computed.is_some())})
        })
        .collect();
    let lanes: Vec<Value> = if layout == "kanban" {
        let group = group_by.clone().unwrap_or_default();
        let mut lanes: Vec<Value> = choices_of(&group)
            .into_iter()
            .map(|c| {
                let cards: Vec<&Value> = rows
                    .iter()
                    .filter(|r| r["group"].as_str() == Some(c.value.as_str()))
                    .collect();
                json!({"value": c.value, "label": c.label, "color": c.color, "cards": cards, "count": cards.len()})
            })
            .collect();
        let known: HashSet<String> = choices_of(&group).into_iter().map(|c| c.value).collect();
        let empty: Vec<&Value> = rows
            .iter()
            .filter(|r| r["group"].as_str().is_none_or(|g| !known.contains(g)))
            .collect();
        if !empty.is_empty() {
            lanes.insert(
                0,
                json!({"value": "", "label": locale.text("kanban.no_value"), "color": null, "cards": empty, "count": empty.len()}),
            );
        }
        // Each lane names its neighbours: a card's keyboard controls move it one lane left or
        // right (cheaper to draw than a list of every lane on every card).
        let real: Vec<(String, String)> = lanes
            .iter()
            .filter_map(|l| {
                let value = l["value"].as_str().filter(|v| !v.is_empty())?;
                Some((
                    value.to_owned(),
                    l["label"].as_str().unwrap_or(value).to_owned(),
                ))
            })
            .collect();
        for lane in &mut lanes {
            let at = real
                .iter()
                .position(|(v, _)| Some(v.as_str()) == lane["value"].as_str());
            let neighbour = |i: Option<usize>| {
                i.and_then(|i| real.get(i))
                    .map(|(value, label)| json!({"value": value, "label": label}))
            };
            lane["prev"] = json!(neighbour(at.and_then(|i| i.checked_sub(1))));
            lane["next"] = json!(neighbour(at.map(|i| i + 1).or(Some(0))));
        }
        lanes
    } else {
        Vec::new()
    };
    let base = format!("/w/{}/e/{entity}", member.slug());
    let keep = |drop: &[&str]| -> String {
        let kept: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| !drop.contains(&k.as_str()))
            .cloned()
            .collect();
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(kept)
            .finish()
    };
    let doc = &model.document;
    let context = json!({
        "entity": entity,
        "entity_label": locale.label(doc.get("x-label"), entity),
        "entity_plural": locale.label(doc.get("x-label-plural").or_else(|| doc.get("x-label")), entity),
        "base": base,
        "layout": layout,
        "group_by": group_by,
        "selects": selects.iter().map(|(k, l)| json!({"key": k, "label": l, "selected": Some(k) == group_by.as_ref()})).collect::<Vec<_>>(),
        "views": views.iter().map(|(k, v)| json!({"key": k, "label": locale.label(v.get("label"), k),
            "layout": v.get("layout"), "date_field": v.get("date_field"), "current": view.is_some_and(|(c, _)| c == *k)})).collect::<Vec<_>>(),
        "has_calendar": !crate::schedule::date_fields(&model).is_empty(),
        "view": view.map(|(k, _)| k),
        "headers": headers,
        // A board draws its lanes; the rows would only be carried twice.
        "rows": if layout == "kanban" { Vec::new() } else { rows },
        "lanes": lanes,
        "total": listed.as_ref().and_then(|p| p.total),
        "next_cursor": listed.as_ref().and_then(|p| p.next_cursor.clone()),
        "keep_without_cursor": keep(&["cursor"]),
        "keep_without_sort": keep(&["sort", "cursor"]),
        "keep_without_layout": keep(&["layout", "group_by", "cursor"]),
        "q": request.q,
        "filters": filter_inputs(&model, &columns, &request, &names, locale),
        "filtering": !request.filters.is_empty() || !request.q.is_empty(),
        "drill": request.drill,
        "active_filters": request.filters.len(),
        "title_field": model.title_field,
        "deleted": request.deleted,
        "pool": request.pool,
        "has_pool": shape.pool,
        "problem": problem,
        "can_create": shape.can_create,
        "can_update": shape.can_update,
        "can_delete": shape.can_delete,
        "is_admin": shape.is_admin,
        "members": names.members.iter().map(|(id, n)| json!({"id": id, "name": n})).collect::<Vec<_>>(),
        "saved_views": saved,
        "saved_current": first(pairs, "saved"),
        "can_share": member.access.policy.may(crate::access::Right::Definitions),
    });
    // A list the query language refuses (a bad filter in the URL) is drawn with the problem
    // on it, and answered as what it is: 422.
    let status = if context["problem"].is_null() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page("record_list.html", with(frame, context), status)
}

/// An error's message for the top of a page, in the reader's language.
pub(super) fn problem_text(error: &Error, locale: Locale) -> String {
    if crate::http::error::status_of(error).is_server_error() {
        // The cause is for the log, not the page.
        tracing::error!(%error, "a page action failed");
        return locale.text(if matches!(error, Error::Unavailable(_) | Error::Db(_)) {
            "error.title_503"
        } else {
            "error.internal"
        });
    }
    let located = match error {
        Error::Invalid { errors, .. }
        | Error::Conflict { errors, .. }
        | Error::Forbidden { errors, .. }
        | Error::BadRequest { errors, .. } => errors.first(),
        _ => None,
    };
    located.map_or_else(
        || error.to_string(),
        |e| format!("{} ({})", forms::message_of(e, locale), e.pointer),
    )
}

/// How long a new-record form may be sent after it was drawn.
const TOKEN_HOURS: i64 = 24;

/// The idempotency token of a new-record form: the id the record will get, when the token
/// expires, and a MAC over both and `audience` (the session and entity, or the public link)
/// under the installation's key — so ids are only ever chosen by this server, for this form.
pub(super) fn issue_token(key: &str, audience: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let id = crate::domain::new_id();
    let expires = (now + chrono::Duration::hours(TOKEN_HOURS)).timestamp();
    format!("{id}.{expires}.{}", token_mac(key, audience, id, expires))
}

fn token_mac(key: &str, audience: &str, id: Uuid, expires: i64) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(audience.as_bytes());
    mac.update(b"\n");
    mac.update(id.as_bytes());
    mac.update(&expires.to_be_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// The record id a form token carries, if this server issued it for `audience` and it has not
/// expired.
pub(super) fn redeem_token(
    key: &str,
    audience: &str,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Uuid> {
    let mut parts = token.split('.');
    let id = Uuid::parse_str(parts.next()?).ok()?;
    let expires: i64 = parts.next()?.parse().ok()?;
    let mac = parts.next()?;
    if parts.next().is_some() || now.timestamp() > expires {
        return None;
    }
    crate::auth::same_secret(&token_mac(key, audience, id, expires), mac).then_some(id)
}

/// Whom a member's new-record form is for: their session and the entity.
fn audience(member: &Member, entity: &str) -> String {
    format!("{}/{entity}", member.session.id_hash)
}

/// The form page (new or edit), with values, problems and what others saved meanwhile.
struct FormPage<'a> {
    shape: &'a Shape,
    record: Option<&'a RecordView>,
    values: Map<String, Value>,
    posted: Option<&'a [(String, String)]>,
    errors: Vec<FieldError>,
    stale: Option<&'a RecordView>,
    token: Option<String>,
    version: Option<i64>,
    /// The values the edit form starts from (sent back as `_original`).
    original: Option<&'a Map<String, Value>>,
}

async fn draw_form(
    services: &Services,
    member: &Member,
    entity: &str,
    form: FormPage<'_>,
    status: StatusCode,
) -> Result<Response> {
    let locale = member.locale;
    let shape = form.shape;
    let model = &shape.model;
    let rules = |key: &str| shape.rule(key);
    let mut sections = forms::layout(model, form_for(&shape.snapshot, entity), &rules, locale);
    let keys: Vec<String> = model.fields.iter().map(|f| f.key.clone()).collect();
    let mut names = names_for(services, member, model, &[&form.values], &keys, true).await?;
    offer_references(services, member, &sections, &mut names).await;
    let zone = member.ctx.time_zone;
    forms::fill(&mut sections, model, &form.values, &names, zone, locale);
    if form.posted.is_none() {
        forms::fill_totals(
            &mut sections,
            form.record.and_then(|r| r.totals.as_ref()),
            locale,
        );
    }
    forms::apply_rules(&mut sections, model, &form.values, &services.scripts());
    let has_rules = sections
        .iter()
        .flat_map(|s| s.fields.iter())
        .any(|w| w.has_rules);
    if let Some(posted) = form.posted {
        // Show what the person typed, exactly, not its parsed form.
        for widget in sections.iter_mut().flat_map(|s| s.fields.iter_mut()) {
            if matches!(
                widget.widget,
                "text" | "textarea" | "number" | "money" | "percent" | "date" | "datetime"
            ) && let Some(text) = first(posted, &widget.key)
            {
                widget.value = text.to_owned();
            }
        }
    }
    if let Some(theirs) = form.stale {
        for widget in sections.iter_mut().flat_map(|s| s.fields.iter_mut()) {
            let Some(field) = model.field(&widget.key) else {
                continue;
            };
            // `theirs` holds the fields both people changed, as saved by the other.
            let Some(saved) = theirs.fields.get(&widget.key).cloned() else {
                continue;
            };
            let mine = form.values.get(&widget.key).cloned().unwrap_or(Value::Null);
            if !widget.readonly && saved != mine {
                let shown = forms::display(field, &widget.choices, &saved, &names, zone, locale);
                widget.theirs = Some(if shown.is_empty() {
                    locale.text("value.empty")
                } else {
                    shown
                });
            }
        }
    }
    let general = forms::attach_errors(&mut sections, &form.errors, locale);
    let snapshot = shape.snapshot.clone();
    let base = format!("/w/{}/e/{entity}", member.slug());
    let (action, here) = match form.record {
        Some(record) => (
            format!("{base}/{}/edit", record.id),
            format!("{base}/{}/edit", record.id),
        ),
        None => (format!("{base}/new"), format!("{base}/new")),
    };
    let frame = frame(services, member, &snapshot, &here).await?;
    let doc = &model.document;
    let context = json!({
        "entity": entity,
        "entity_label": locale.label(doc.get("x-label"), entity),
        "entity_plural": locale.label(doc.get("x-label-plural").or_else(|| doc.get("x-label")), entity),
        "base": base,
        "action": action,
        "sections": sections,
        "record": form.record.map(|r| json!({"id": r.id, "title": title_of(model, &r.fields, r.id)})),
        "version": form.version,
        "original": form.original.map(|o| Value::Object(o.clone()).to_string()),
        "token": form.token,
        "general_errors": general,
        "has_errors": !form.errors.is_empty(),
        "stale": form.stale.is_some(),
        "rules_url": has_rules.then(|| format!("{base}/form-state")),
    });
    page("record_form.html", with(frame, context), status)
}

async fn new_form(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity)): Path<(String, String)>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/new");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        let shape = services.records().shape(&member.ctx, &entity).await?;
        if !shape.can_create {
            return Err(Error::forbidden(format!(
                "your role may not create {entity} records"
            )));
        }
        let defaults: Map<String, Value> = shape
            .model
            .fields
            .iter()
            .filter_map(|f| f.default.clone().map(|d| (f.key.clone(), d)))
            .collect();
        let form = FormPage {
            shape: &shape,
            record: None,
            values: defaults,
            posted: None,
            errors: Vec::new(),
            stale: None,
            token: Some(issue_token(
                services.form_key().await?,
                &audience(&member, &entity),
                services.clock().now(),
            )),
            version: None,
            original: None,
        };
        draw_form(&services, &member, &entity, form, StatusCode::OK).await
    }
    .await;
    finish(result, member.locale)
}

async fn create(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity)): Path<(String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/new");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = save_new(&services, &member, &entity, &posted).await;
    finish(result, member.locale)
}

async fn save_new(
    services: &Services,
    member: &Member,
    entity: &str,
    posted: &[(String, String)],
) -> Result<Response> {
    member.check_csrf(first(posted, "csrf_token"))?;
    let key = services.form_key().await?;
    let id = first(posted, "_token")
        .and_then(|t| redeem_token(key, &audience(member, entity), t, services.clock().now()))
        .ok_or_else(|| {
            Error::bad_request(
                "the form's token is missing or was not issued to you; reload the page",
            )
        })?;
    let record_page = format!("/w/{}/e/{entity}/{id}", member.slug());
    // The same form sent twice: the first made the record; show it.
    if exists(services, member, entity, id).await {
        return Ok(see_other(&record_page));
    }
    let shape = services.records().shape(&member.ctx, entity).await?;
    let rules = |key: &str| shape.rule(key);
    let mut sections = forms::layout(
        &shape.model,
        form_for(&shape.snapshot, entity),
        &rules,
        member.locale,
    );
    let mut local = Vec::new();
    let fields = forms::read_ruled(
        &mut sections,
        &shape.model,
        posted,
        &defaults_of(&shape.model),
        member.ctx.time_zone,
        &services.scripts(),
        &mut local,
    );
    let to_create: Map<String, Value> = fields
        .iter()
        .filter(|(_, v)| !v.is_null() && *v != &Value::Array(Vec::new()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let attempt = services
        .records()
        .create(
            &member.ctx,
            entity,
            NewRecord {
                fields: to_create,
                owner: None,
                id: Some(id),
            },
        )
        .await;
    match attempt {
        Ok(_) => Ok(see_other(&record_page)),
        Err(error) if exists(services, member, entity, id).await => {
            tracing::debug!(%error, "a repeated form found its record made");
            Ok(see_other(&record_page))
        }
        Err(
            Error::Invalid { errors, .. }
            | Error::Conflict { errors, .. }
            | Error::Forbidden { errors, .. },
        ) if !errors.is_empty() => {
            local.extend(errors);
            let form = FormPage {
                shape: &shape,
                record: None,
                values: fields,
                posted: Some(posted),
                errors: local,
                stale: None,
                token: first(posted, "_token").map(str::to_owned),
                version: None,
                original: None,
            };
            draw_form(
                services,
                member,
                entity,
                form,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(other) => Err(other),
    }
}

async fn exists(services: &Services, member: &Member, entity: &str, id: Uuid) -> bool {
    services
        .records()
        .get(&member.ctx, entity, &id.to_string(), true)
        .await
        .is_ok()
}

async fn edit_form(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id)): Path<(String, String, String)>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}/edit");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        let shape = services.records().shape(&member.ctx, &entity).await?;
        let record = services
            .records()
            .get(&member.ctx, &entity, &id, false)
            .await?;
        let form = FormPage {
            shape: &shape,
            record: Some(&record),
            values: record.fields.clone(),
            posted: None,
            errors: Vec::new(),
            stale: None,
            token: None,
            version: Some(record.version),
            original: Some(&record.fields),
        };
        draw_form(&services, &member, &entity, form, StatusCode::OK).await
    }
    .await;
    finish(result, member.locale)
}

async fn update(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id)): Path<(String, String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}/edit");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = save_edit(&services, &member, &entity, &id, &posted).await;
    finish(result, member.locale)
}

async fn save_edit(
    services: &Services,
    member: &Member,
    entity: &str,
    id: &str,
    posted: &[(String, String)],
) -> Result<Response> {
    member.check_csrf(first(posted, "csrf_token"))?;
    let version = first(posted, "_version")
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| {
            Error::bad_request("the form lacks the record's version; reload the page")
        })?;
    let shape = services.records().shape(&member.ctx, entity).await?;
    let current = services
        .records()
        .get(&member.ctx, entity, id, false)
        .await?;
    let rules = |key: &str| shape.rule(key);
    let mut sections = forms::layout(
        &shape.model,
        form_for(&shape.snapshot, entity),
        &rules,
        member.locale,
    );
    let mut local = Vec::new();
    let typed = forms::read_ruled(
        &mut sections,
        &shape.model,
        posted,
        &current.fields,
        member.ctx.time_zone,
        &services.scripts(),
        &mut local,
    );
    // What the person changed since the form was drawn (its values ride along in `_original`):
    // only that is sent, so fields they did not touch keep whatever others saved meanwhile,
    // and fields they may not write stay out of the request.
    let original: Map<String, Value> = first(posted, "_original")
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_else(|| current.fields.clone());
    let model = &shape.model;
    let changed: Map<String, Value> = typed
        .iter()
        .filter(|(k, v)| !same_value(model.field(k).map(|f| &f.kind), original.get(*k), v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let record_page = format!("/w/{}/e/{entity}/{id}", member.slug());
    if changed.is_empty() && local.is_empty() {
        return Ok(see_other(&record_page));
    }
    let attempt = services
        .records()
        .update(&member.ctx, entity, id, &changed, None, Some(version))
        .await;
    match attempt {
        Ok(_) => Ok(see_other(&record_page)),
        Err(Error::Conflict { errors, .. }) if errors.iter().any(|e| e.code == "stale_version") => {
            // Someone saved first. The form comes back with what is saved now, the person's own
            // changes on top, a note at each field both changed, and the current version: the
            // next save applies their changes knowingly and nothing else.
            let fresh = services
                .records()
                .get(&member.ctx, entity, id, false)
                .await?;
            let mut values = fresh.fields.clone();
            values.extend(changed.clone());
            let both_changed: Map<String, Value> = fresh
                .fields
                .iter()
                .filter(|(k, v)| {
                    changed.contains_key(*k)
                        && !same_value(model.field(k).map(|f| &f.kind), original.get(*k), v)
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut theirs = fresh.clone();
            theirs.fields = both_changed;
            let form = FormPage {
                shape: &shape,
                record: Some(&fresh),
                values,
                posted: None,
                errors: Vec::new(),
                stale: Some(&theirs),
                token: None,
                version: Some(fresh.version),
                original: Some(&fresh.fields),
            };
            draw_form(services, member, entity, form, StatusCode::CONFLICT).await
        }
        Err(
            Error::Invalid { errors, .. }
            | Error::Conflict { errors, .. }
            | Error::Forbidden { errors, .. },
        ) if !errors.is_empty() => {
            local.extend(errors);
            let mut values = current.fields.clone();
            values.extend(typed.clone());
            let form = FormPage {
                shape: &shape,
                record: Some(&current),
                values,
                posted: Some(posted),
                errors: local,
                stale: None,
                token: None,
                version: Some(version),
                original: Some(&original),
            };
            draw_form(
                services,
                member,
                entity,
                form,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(other) => Err(other),
    }
}

/// Whether a stored value and a typed one mean the same (money `12500` is `12500.00`; files
/// are their ids); text compares as text.
fn same_value(kind: Option<&FieldKind>, stored: Option<&Value>, typed: &Value) -> bool {
    let numeric = matches!(
        kind,
        Some(FieldKind::Money { .. } | FieldKind::Number | FieldKind::Percent | FieldKind::Integer)
    );
    match (stored.unwrap_or(&Value::Null), typed) {
        (Value::Array(files), Value::Array(ids))
            if files.iter().all(|f| f.get("id").is_some()) && !files.is_empty() =>
        {
            files.len() == ids.len() && files.iter().zip(ids).all(|(f, id)| f.get("id") == Some(id))
        }
        (Value::String(a), Value::String(b)) if numeric => {
            a == b
                || matches!(
                    (a.parse::<rust_decimal::Decimal>(), b.parse::<rust_decimal::Decimal>()),
                    (Ok(x), Ok(y)) if x == y
                )
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// Sets one field (a kanban card dropped on another lane, or its keyboard "move to" form).
/// Scripts (`X-Requested-With: fetch`) get JSON; a plain form post returns to the list.
async fn set_field(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id)): Path<(String, String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let from_script = headers
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes() == b"fetch");
    let member = match enter(&services, &headers, &slug, &format!("/w/{slug}/e/{entity}")).await {
        Ok(member) => member,
        Err(response) => return response,
    };
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let field = first(&posted, "field").unwrap_or_default();
        let value = first(&posted, "value").unwrap_or_default();
        let version = first(&posted, "version").and_then(|v| v.parse::<i64>().ok());
        let shape = services.records().shape(&member.ctx, &entity).await?;
        let kind = shape.model.field(field).map(|f| &f.kind);
        if !matches!(
            kind,
            Some(FieldKind::SingleSelect { .. } | FieldKind::User | FieldKind::Date)
        ) {
            return Err(Error::invalid(
                "/field",
                "unknown_field",
                format!("{field:?} cannot be set from a board"),
            ));
        }
        let mut fields = Map::new();
        fields.insert(
            field.to_owned(),
            if value.is_empty() {
                Value::Null
            } else {
                Value::String(value.to_owned())
            },
        );
        services
            .records()
            .update(&member.ctx, &entity, &id, &fields, None, version)
            .await
    }
    .await;
    let back = format!(
        "/w/{slug}/e/{entity}?layout=kanban&group_by={}",
        first(&posted, "field").unwrap_or_default()
    );
    match (result, from_script) {
        (Ok(view), true) => {
            axum::Json(json!({"id": view.id, "version": view.version})).into_response()
        }
        (Ok(_), false) => see_other(&back),
        (Err(error), true) => for_script(Err(error), member.locale),
        (Err(error), false) => error_page(error, member.locale),
    }
}

/// Saves the list as it is filtered and sorted now under a name (`name`, `query`, `shared`).
async fn save_view(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity)): Path<(String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let list = format!("/w/{slug}/e/{entity}");
    let member = member_or_return!(&services, &headers, &slug, &list);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        services.records().shape(&member.ctx, &entity).await?;
        let query = query_pairs(first(&posted, "query"));
        let view = crate::views::save(
            services.db(),
            services.clock().now(),
            &member.access,
            &entity,
            first(&posted, "name").unwrap_or_default(),
            &query,
            first(&posted, "shared") == Some("true"),
        )
        .await?;
        let joiner = if view.query.is_empty() { "" } else { "&" };
        Ok(see_other(&format!(
            "{list}?{}{joiner}saved={}",
            view.query, view.id
        )))
    }
    .await;
    finish(result, member.locale)
}

async fn delete_view(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id)): Path<(String, String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let list = format!("/w/{slug}/e/{entity}");
    let member = member_or_return!(&services, &headers, &slug, &list);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("saved view"))?;
        crate::views::delete(services.db(), &member.access, id).await?;
        Ok(see_other(&list))
    }
    .await;
    finish(result, member.locale)
}

/// Records of an entity whose title holds `q` (reference pickers search as the person types):
/// `[{id, title}]`, at most 20, only what the member may read.
async fn lookup(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let member = member_or_return!(&services, &headers, &slug, &format!("/w/{slug}/e/{entity}"));
    let pairs = query_pairs(raw.as_deref());
    let q = first(&pairs, "q").unwrap_or_default().trim().to_owned();
    let result = async {
        let shape = services.records().shape(&member.ctx, &entity).await?;
        let model = &shape.model;
        let mut query = json!({"limit": 20});
        if let Some(title) = model
            .title_field
            .as_deref()
            .filter(|t| shape.rule(t) == crate::access::FieldRule::Visible)
        {
            query["sort"] = json!([title]);
            if !q.is_empty() {
                query["filter"] = json!({"field": title, "op": "contains", "value": q});
            }
        }
        let page = services
            .records()
            .list(&member.ctx, &entity, &query)
            .await?;
        let found: Vec<Value> = page
            .records
            .iter()
            .map(|r| json!({"id": r.id, "title": title_of(model, &r.fields, r.id)}))
            .collect();
        Ok(axum::Json(found).into_response())
    }
    .await;
    for_script(result, member.locale)
}

/// The form rules' verdict for the values being typed (the page asks as they change): which
/// fields are hidden and which are read-only.
async fn form_state(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity)): Path<(String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let member = member_or_return!(&services, &headers, &slug, &format!("/w/{slug}/e/{entity}"));
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let shape = services.records().shape(&member.ctx, &entity).await?;
        let base = match first(&posted, "_record").filter(|r| !r.is_empty()) {
            Some(id) => {
                services
                    .records()
                    .get(&member.ctx, &entity, id, false)
                    .await?
                    .fields
            }
            None => defaults_of(&shape.model),
        };
        let rules = |key: &str| shape.rule(key);
        let mut sections = forms::layout(
            &shape.model,
            form_for(&shape.snapshot, &entity),
            &rules,
            member.locale,
        );
        let mut ignored = Vec::new();
        forms::read_ruled(
            &mut sections,
            &shape.model,
            &posted,
            &base,
            member.ctx.time_zone,
            &services.scripts(),
            &mut ignored,
        );
        let (hidden, readonly) = forms::rule_state(&sections);
        Ok(axum::Json(json!({"hidden": hidden, "readonly": readonly})).into_response())
    }
    .await;
    for_script(result, member.locale)
}

async fn delete(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id)): Path<(String, String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        services.records().delete(&member.ctx, &entity, &id).await?;
        Ok(see_other(&format!("/w/{}/e/{entity}", member.slug())))
    }
    .await;
    finish(result, member.locale)
}

/// Claims a record from the public pool, releases one to it, or purges one from the recycle
/// bin (admins), then shows the record (or the list).
async fn record_action(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id, action)): Path<(String, String, String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let records = services.records();
        match action.as_str() {
            "claim" => {
                records.claim(&member.ctx, &entity, &id).await?;
                Ok(see_other(&here))
            }
            "release" => {
                records.release(&member.ctx, &entity, &id).await?;
                Ok(see_other(&format!("/w/{slug}/e/{entity}?pool=1")))
            }
            "purge" => {
                if !member.access.is_admin() {
                    return Err(Error::forbidden(
                        "only a workspace owner or admin may purge records",
                    ));
                }
                records.purge(&member.ctx, &entity, &id).await?;
                Ok(see_other(&format!("/w/{slug}/e/{entity}?deleted=1")))
            }
            _ => Err(Error::not_found("route")),
        }
    }
    .await;
    finish(result, member.locale)
}

/// The bulk edit form: every writable field of the layout, each with a box to apply it to all
/// the selected records.
async fn draw_bulk_edit(
    services: &Services,
    member: &Member,
    entity: &str,
    ids: &[String],
    problems: &[String],
    posted: &[(String, String)],
    status: StatusCode,
) -> Result<Response> {
    let locale = member.locale;
    let shape = services.records().shape(&member.ctx, entity).await?;
    if !shape.can_update {
        return Err(Error::forbidden(format!(
            "your role may not change {entity} records"
        )));
    }
    let model = &shape.model;
    let rules = |key: &str| shape.rule(key);
    let mut sections = forms::layout(model, form_for(&shape.snapshot, entity), &rules, locale);
    for section in &mut sections {
        // Fields under a form rule depend on each record's values; they are edited one by one.
        section.fields.retain(|w| {
            !w.readonly
                && w.visible_when.is_none()
                && w.readonly_when.is_none()
                && !matches!(w.widget, "subtable" | "attachment" | "computed")
        });
    }
    sections.retain(|s| !s.fields.is_empty());
    let keys: Vec<String> = model.fields.iter().map(|f| f.key.clone()).collect();
    let mut names = names_for(services, member, model, &[], &keys, true).await?;
    offer_references(services, member, &sections, &mut names).await;
    forms::fill(
        &mut sections,
        model,
        &Map::new(),
        &names,
        member.ctx.time_zone,
        locale,
    );
    for widget in sections.iter_mut().flat_map(|s| s.fields.iter_mut()) {
        if let Some(text) = first(posted, &widget.key) {
            widget.value = text.to_owned();
        }
    }
    let applied: Vec<&str> = posted
        .iter()
        .filter(|(k, _)| k == "_apply")
        .map(|(_, v)| v.as_str())
        .collect();
    let snapshot = shape.snapshot.clone();
    let base = format!("/w/{}/e/{entity}", member.slug());
    let frame = frame(services, member, &snapshot, &format!("{base}/bulk-edit")).await?;
    let doc = &model.document;
    page(
        "bulk_edit.html",
        with(
            frame,
            json!({
                "entity": entity,
                "entity_plural": locale.label(doc.get("x-label-plural").or_else(|| doc.get("x-label")), entity),
                "base": base,
                "ids": ids,
                "sections": sections,
                "applied": applied,
                "problems": problems,
            }),
        ),
        status,
    )
}

/// Applies the fields ticked in the bulk edit form to every selected record (each record
/// on its own: those that refuse the change are listed, the others are changed).
async fn bulk_edit(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity)): Path<(String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let ids = all_of(&posted, "id");
        let applied: HashSet<&str> = posted
            .iter()
            .filter(|(k, _)| k == "_apply")
            .map(|(_, v)| v.as_str())
            .collect();
        if ids.is_empty() || applied.is_empty() {
            let problem = member.locale.text("bulk.nothing");
            return draw_bulk_edit(
                &services,
                &member,
                &entity,
                &ids,
                &[problem],
                &posted,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        let shape = services.records().shape(&member.ctx, &entity).await?;
        let rules = |key: &str| shape.rule(key);
        let sections = forms::layout(
            &shape.model,
            form_for(&shape.snapshot, &entity),
            &rules,
            member.locale,
        );
        let mut local = Vec::new();
        let ruled: HashSet<&str> = sections
            .iter()
            .flat_map(|s| s.fields.iter())
            .filter(|w| w.visible_when.is_some() || w.readonly_when.is_some())
            .map(|w| w.key.as_str())
            .collect();
        let fields: Map<String, Value> = forms::read_input(
            &sections,
            &shape.model,
            &posted,
            member.ctx.time_zone,
            &mut local,
        )
        .into_iter()
        .filter(|(k, _)| applied.contains(k.as_str()) && !ruled.contains(k.as_str()))
        .collect();
        if let Some(problem) = local.first() {
            let text = forms::message_of(problem, member.locale);
            return draw_bulk_edit(
                &services,
                &member,
                &entity,
                &ids,
                &[text],
                &posted,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        let mut problems = Vec::new();
        for id in &ids {
            if let Err(error) = services
                .records()
                .update(&member.ctx, &entity, id, &fields, None, None)
                .await
            {
                problems.push(format!("{id}: {}", problem_text(&error, member.locale)));
            }
        }
        if problems.is_empty() {
            Ok(see_other(&here))
        } else {
            draw_bulk_edit(
                &services,
                &member,
                &entity,
                &ids,
                &problems,
                &posted,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
    .await;
    finish(result, member.locale)
}

/// Bulk actions on the selected rows of a list: delete, restore, or assign an owner.
async fn bulk(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity)): Path<(String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let ids = all_of(&posted, "id");
        if ids.is_empty() {
            return Err(Error::invalid(
                "/id",
                "required",
                "select at least one record",
            ));
        }
        let records = services.records();
        match first(&posted, "action") {
            Some("delete") => {
                for id in &ids {
                    records.delete(&member.ctx, &entity, id).await?;
                }
            }
            Some("restore") => {
                for id in &ids {
                    records.restore(&member.ctx, &entity, id).await?;
                }
            }
            Some("claim") => {
                for id in &ids {
                    records.claim(&member.ctx, &entity, id).await?;
                }
            }
            Some("purge") => {
                if !member.access.is_admin() {
                    return Err(Error::forbidden(
                        "only a workspace owner or admin may purge records",
                    ));
                }
                for id in &ids {
                    records.purge(&member.ctx, &entity, id).await?;
                }
            }
            Some("edit") => {
                return draw_bulk_edit(&services, &member, &entity, &ids, &[], &[], StatusCode::OK)
                    .await;
            }
            Some("assign") => {
                let owner = first(&posted, "owner")
                    .and_then(|o| Uuid::parse_str(o).ok())
                    .ok_or_else(|| Error::invalid("/owner", "required", "choose the new owner"))?;
                records.transfer(&member.ctx, &entity, &ids, owner).await?;
            }
            _ => {
                return Err(Error::invalid(
                    "/action",
                    "enum",
                    "action is delete, restore, purge, claim or assign",
                ));
            }
        }
        let list = format!("/w/{}/e/{entity}", member.slug());
        let back = back_to(first(&posted, "back"), &list, list.clone());
        Ok(see_other(&back))
    }
    .await;
    finish(result, member.locale)
}

async fn show(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id)): Path<(String, String, String)>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}");
    let member = member_or_return!(&services, &headers, &slug, &here.clone());
    let result = draw_record(&services, &member, &entity, &id, &here, None).await;
    finish(result, member.locale)
}

/// The record page; `composer` (`{comment, draft, error}`) redraws a refused comment with the
/// person's text kept and the problem shown.
pub(super) async fn draw_record(
    services: &Services,
    member: &Member,
    entity: &str,
    id: &str,
    here: &str,
    composer: Option<Value>,
) -> Result<Response> {
    let locale = member.locale;
    let composer_refused = composer.as_ref().is_some_and(|c| c.get("error").is_some());
    let zone = member.ctx.time_zone;
    let shape = services.records().shape(&member.ctx, entity).await?;
    let model = shape.model.clone();
    let record = services
        .records()
        .get(&member.ctx, entity, id, true)
        .await?;
    let rules = |key: &str| shape.rule(key);
    let mut sections = forms::layout(&model, form_for(&shape.snapshot, entity), &rules, locale);
    let keys: Vec<String> = model.fields.iter().map(|f| f.key.clone()).collect();
    let history = services.records().history(&member.ctx, entity, id).await?;
    // Names for the record's own references and for those in its history.
    let mut mentioned: Vec<Map<String, Value>> = vec![record.fields.clone()];
    for entry in &history {
        if let Some(changes) = entry.changes.get("fields").and_then(Value::as_object) {
            for side in ["old", "new"] {
                mentioned.push(
                    changes
                        .iter()
                        .filter_map(|(k, c)| c.get(side).map(|v| (k.clone(), v.clone())))
                        .collect(),
                );
            }
        }
    }
    let refs: Vec<&Map<String, Value>> = mentioned.iter().collect();
    let names = names_for(services, member, &model, &refs, &keys, true).await?;
    forms::fill(&mut sections, &model, &record.fields, &names, zone, locale);
    forms::fill_totals(&mut sections, record.totals.as_ref(), locale);
    forms::apply_rules(&mut sections, &model, &record.fields, &services.scripts());
    let properties = model.document.get("properties");
    let label_of = |key: &str| {
        locale
            .label(
                properties.and_then(|p| p.pointer(&format!("/{key}/x-label"))),
                key,
            )
            .to_owned()
    };
    let person = |id: Option<Uuid>| {
        id.map(|i| {
            names
                .people
                .get(&i.to_string())
                .cloned()
                .unwrap_or_else(|| i.to_string().chars().take(8).collect())
        })
    };
    let mut timeline: Vec<Value> = history
        .iter()
        .rev()
        .map(|entry| {
            let changes: Vec<Value> = entry
                .changes
                .get("fields")
                .and_then(Value::as_object)
                .map(|changes| {
                    changes
                        .iter()
                        .filter_map(|(key, change)| {
                            let field = model.field(key)?;
                            if shape.rule(key) == crate::access::FieldRule::Hidden || field.hidden {
                                return None;
                            }
                            let choices =
                                forms::options(properties.and_then(|p| p.get(key)), locale);
                            let show = |v: Option<&Value>| {
                                forms::display(
                                    field,
                                    &choices,
                                    v.unwrap_or(&Value::Null),
                                    &names,
                                    zone,
                                    locale,
                                )
                            };
                            Some(json!({
                                "label": label_of(key),
                                "old": show(change.get("old")),
                                "new": show(change.get("new")),
                            }))
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "kind": "history",
                "at": entry.at,
                "who": person(entry.actor).unwrap_or_else(|| locale.text("timeline.system")),
                "channel": entry.channel,
                "operation": entry.operation,
                "changes": changes,
            })
        })
        .collect();
    let related = related_records(
        services,
        member,
        &shape.snapshot,
        entity,
        &record,
        &names.people,
    )
    .await;
    // Follow-ups, quotes and the like made for this record join its story.
    for group in &related {
        for item in group["records"].as_array().into_iter().flatten() {
            timeline.push(json!({
                "kind": "related",
                "at": item["created_at"],
                "who": item["created_by"],
                "entity": group["entity"],
                "label": group["singular"],
                "title": item["title"],
                "id": item["id"],
            }));
        }
    }
    // Comments join the story beside the history.
    for comment in services
        .comments()
        .list(&member.ctx, &member.access, entity, id)
        .await?
    {
        let mut entry = serde_json::to_value(&comment).map_err(Error::internal)?;
        entry["kind"] = json!("comment");
        entry["at"] = json!(comment.created_at);
        timeline.push(entry);
    }
    let people: HashMap<Uuid, String> = names
        .people
        .iter()
        .filter_map(|(id, n)| Uuid::parse_str(id).ok().map(|u| (u, n.clone())))
        .collect();
    // Emails sent from the record or filed on it.
    for email in services
        .emails()
        .of_record(&member.ctx, &member.access, entity, record.id, &people)
        .await?
    {
        let mut entry = serde_json::to_value(&email).map_err(Error::internal)?;
        entry["kind"] = json!("email");
        entry["at"] = json!(email.created_at);
        timeline.push(entry);
    }
    let manager = member.access.policy.may(crate::access::Right::Workflows);
    // Workflow runs on the record, for those who manage workflows (others see their effects
    // in the history and the approvals).
    if manager {
        let filter = crate::store::workflows::RunFilter {
            record: Some((entity.to_owned(), record.id)),
            ..Default::default()
        };
        let labels: HashMap<String, String> = shape
            .snapshot
            .of_kind(Kind::Workflow)
            .into_iter()
            .map(|(key, p)| {
                (
                    key.to_owned(),
                    locale.label(p.document.get("label"), key).to_owned(),
                )
            })
            .collect();
        for run in
            crate::workflows::service::list(&services.records(), &member.access, filter, Some(20))
                .await
                .unwrap_or_default()
        {
            timeline.push(json!({
                "kind": "workflow",
                "id": run.id,
                "at": run.created_at,
                "workflow": labels.get(&run.workflow).cloned().unwrap_or_else(|| run.workflow.clone()),
                "status": run.status,
                "error": run.error,
            }));
        }
    }
    let instant = |entry: &Value| {
        entry["at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    timeline.sort_by_key(|entry| std::cmp::Reverse(instant(entry)));
    let approvals: Vec<Value> = crate::workflows::approvals::of_record(
        services.db(),
        member.access.workspace.id,
        member.access.account_id,
        manager,
        entity,
        record.id,
    )
    .await?
    .iter()
    .map(|a| super::approvals::present(a, member.access.account_id, &people, locale))
    .collect();
    let duplicates: Vec<Value> = if record.deleted_at.is_none() {
        services
            .records()
            .duplicates_of(&member.ctx, entity, &record.id.to_string())
            .await?
            .into_iter()
            .map(|d| {
                json!({
                    "id": d.id,
                    "title": d.title.unwrap_or_else(|| d.id.to_string()),
                    "owner": d.owner_name.unwrap_or_else(|| locale.text("duplicates.no_owner")),
                    "created_at": d.created_at,
                    "matched": d.matched.iter().map(|k| model.field(k).map_or(k.clone(), |f| locale.label(model.document.pointer(&format!("/properties/{k}/x-label")), &f.key).to_owned())).collect::<Vec<_>>().join(" + "),
                    "readable": d.readable,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let can_email = record.deleted_at.is_none()
        && services.mail_enabled()
        && shape.can_update
        && services
            .records()
            .can_update(&member.ctx, entity, record.id)
            .await?;
    let snapshot = shape.snapshot.clone();
    let frame = frame(services, member, &snapshot, here).await?;
    let doc = &model.document;
    let context = json!({
        "duplicates": duplicates,
        "entity": entity,
        "entity_label": locale.label(doc.get("x-label"), entity),
        "entity_plural": locale.label(doc.get("x-label-plural").or_else(|| doc.get("x-label")), entity),
        "base": format!("/w/{}/e/{entity}", member.slug()),
        "record": {
            "id": record.id,
            "version": record.version,
            "title": title_of(&model, &record.fields, record.id),
            "owner": person(record.owner),
            "created_at": record.created_at,
            "created_by": person(record.created_by),
            "updated_at": record.updated_at,
            "updated_by": person(record.updated_by),
            "deleted": record.deleted_at.is_some(),
            "in_pool": record.owner.is_none() && shape.pool,
            "mine": record.owner == Some(member.access.account_id),
        },
        "has_pool": shape.pool,
        "is_admin": member.access.is_admin(),
        "sections": sections,
        "timeline": timeline,
        "related": related,
        "approvals": approvals,
        "members": names.members.iter().map(|(id, n)| json!({"id": id, "name": n})).collect::<Vec<_>>(),
        "can_update": shape.can_update,
        "can_delete": shape.can_delete,
        "can_comment": record.deleted_at.is_none(),
        "can_email": can_email,
        "print_templates": crate::printing::templates_for(&shape.snapshot, entity, locale),
        "composer": composer,
    });
    let status = if composer_refused {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page("record_page.html", with(frame, context), status)
}

/// Records of other entities that refer to this one (first few of each), for the record page.
async fn related_records(
    services: &Services,
    member: &Member,
    snapshot: &Snapshot,
    entity: &str,
    record: &RecordView,
    people: &HashMap<String, String>,
) -> Vec<Value> {
    let locale = member.locale;
    let mut out = Vec::new();
    for referrer in snapshot.referrers(entity) {
        let model = &referrer.entity;
        if member.access.policy.grant(&model.key).read == crate::access::Reach::None {
            continue;
        }
        let query = json!({
            "filter": {"field": referrer.field, "op": "eq", "value": record.id.to_string()},
            "limit": 10, "total": "exact", "sort": ["-updated_at"],
        });
        let Ok(page) = services
            .records()
            .list(&member.ctx, &model.key, &query)
            .await
        else {
            continue;
        };
        let doc = &model.document;
        out.push(json!({
            "entity": model.key,
            "label": locale.label(doc.get("x-label-plural").or_else(|| doc.get("x-label")), &model.key),
            "singular": locale.label(doc.get("x-label"), &model.key),
            "via": referrer.field,
            "total": page.total,
            "records": page.records.iter().map(|r| json!({
                "id": r.id, "title": title_of(model, &r.fields, r.id), "updated_at": r.updated_at,
                "created_at": r.created_at,
                "created_by": r.created_by.and_then(|c| people.get(&c.to_string()).cloned()),
            })).collect::<Vec<_>>(),
        }));
    }
    out
}

/// The published model of `entity` in the caller's workspace, if there is one.
async fn entity_model(
    services: &Services,
    ctx: &crate::records::Context,
    entity: &str,
) -> Option<std::sync::Arc<EntityModel>> {
    services
        .registry()
        .snapshot(services.db(), ctx.scope.workspace_id, ctx.scope.generation)
        .await
        .ok()?
        .entity(entity)
}
