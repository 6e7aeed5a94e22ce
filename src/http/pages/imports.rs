//! The import pages: `/w/{ws}/e/{entity}/import` (upload a CSV or XLSX; recent imports) and
//! `/w/{ws}/imports/{id}` (the column mapping with samples and suggestions, how rows are
//! written, Check and Import, live progress, the report of problems by line, Stop). They call
//! the same `imports` functions as the API.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use uuid::Uuid;

use super::member::{Member, frame, with};
use super::page;
use super::records::{Pairs, finish, first, problem_text, see_other};
use crate::app::Services;
use crate::error::{Error, Result};
use crate::imports::{self, ImportView, Mode, Settings, mapping};

/// The import pages' routes.
pub(super) fn router() -> Router<Services> {
    Router::new()
        .route(
            "/w/{workspace}/e/{entity}/import",
            get(start).post(upload).layer(DefaultBodyLimit::max(
                imports::MAX_FILE_BYTES as usize + 1024 * 1024,
            )),
        )
        .route("/w/{workspace}/imports/{id}", get(show).post(act))
}

async fn start(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity)): Path<(String, String)>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/import");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    finish(
        draw_start(&services, &member, &entity, &here, None, StatusCode::OK).await,
        locale,
    )
}

async fn draw_start(
    services: &Services,
    member: &Member,
    entity: &str,
    here: &str,
    problem: Option<(String, Vec<String>)>,
    status: StatusCode,
) -> Result<Response> {
    let shape = services.records().shape(&member.ctx, entity).await?;
    if !shape.can_create && !shape.can_update {
        return Err(Error::forbidden(format!(
            "your role may not create or change {entity} records"
        )));
    }
    let recent = services.imports().list(&member.ctx, Some(entity)).await?;
    let frame = frame(services, member, &shape.snapshot, here).await?;
    let (problem, problem_list) = problem.unzip();
    page(
        "import.html",
        with(
            frame,
            json!({
                "base": format!("/w/{}/e/{entity}", member.slug()),
                "entity_plural": plural(&shape.model, member, entity),
                "encodings": imports::source::ENCODINGS,
                "recent": recent,
                "problem": problem,
                "problem_list": problem_list,
            }),
        ),
        status,
    )
}

fn plural(model: &crate::definitions::EntityModel, member: &Member, entity: &str) -> String {
    let doc = &model.document;
    member
        .locale
        .label(
            doc.get("x-label-plural").or_else(|| doc.get("x-label")),
            entity,
        )
        .to_owned()
}

/// A refusal as the page's message and its list of details.
fn problem_of(error: &Error, member: &Member) -> (String, Vec<String>) {
    let details = match error {
        Error::Invalid { errors, .. } | Error::Conflict { errors, .. } if errors.len() > 1 => {
            errors
                .iter()
                .map(|e| format!("{}: {}", e.pointer, e.message))
                .collect()
        }
        _ => Vec::new(),
    };
    (problem_text(error, member.locale), details)
}

async fn upload(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity)): Path<(String, String)>,
    mut multipart: Multipart,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/import");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let done = async {
        let unreadable = |e: axum::extract::multipart::MultipartError| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge {
                    limit: imports::MAX_FILE_BYTES as usize,
                }
            } else {
                Error::invalid("/file", "unreadable", "the upload could not be read")
            }
        };
        let mut csrf = None;
        let mut encoding = None;
        let mut sheet = None;
        let mut file = None;
        while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
            match field.name().unwrap_or_default() {
                "file" => {
                    // The token comes first in the form: nothing is stored for a forged post.
                    member.check_csrf(csrf.as_deref())?;
                    let name = field.file_name().unwrap_or("import.csv").to_owned();
                    let spooled = crate::http::spool::spool(field, imports::MAX_FILE_BYTES).await?;
                    file = Some((name, spooled));
                }
                name => {
                    let name = name.to_owned();
                    let text = field.text().await.map_err(unreadable)?;
                    match name.as_str() {
                        "csrf_token" => csrf = Some(text),
                        "encoding" => encoding = Some(text).filter(|t| !t.is_empty()),
                        "sheet" => sheet = Some(text).filter(|t| !t.trim().is_empty()),
                        _ => {}
                    }
                }
            }
        }
        member.check_csrf(csrf.as_deref())?;
        let (name, spooled) = file
            .filter(|(_, f)| f.size > 0)
            .ok_or_else(|| Error::invalid("/file", "required", "choose a file"))?;
        services
            .imports()
            .upload(
                &member.ctx,
                &entity,
                &name,
                spooled.path(),
                encoding.as_deref(),
                sheet.as_deref(),
            )
            .await
    }
    .await;
    match done {
        Ok(view) => see_other(&format!("/w/{slug}/imports/{}", view.id)),
        Err(
            error @ (Error::Invalid { .. }
            | Error::Forbidden { .. }
            | Error::PayloadTooLarge { .. }),
        ) => {
            let status = crate::http::error::status_of(&error);
            let problem = problem_of(&error, &member);
            finish(
                draw_start(&services, &member, &entity, &here, Some(problem), status).await,
                locale,
            )
        }
        Err(error) => finish(Err(error), locale),
    }
}

fn import_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Error::not_found(format!("import {text:?}")))
}

async fn show(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, id)): Path<(String, String)>,
) -> Response {
    let here = format!("/w/{slug}/imports/{id}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let drawn = async {
        let view = services.imports().get(&member.ctx, import_id(&id)?).await?;
        draw(&services, &member, view, None, None, &here, StatusCode::OK).await
    }
    .await;
    finish(drawn, locale)
}

/// Settings read back from the mapping form.
fn settings_of(posted: &Pairs, columns: usize) -> Settings {
    let mapping = (0..columns)
        .map(|i| {
            first(posted, &format!("map_{i}"))
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        })
        .collect();
    Settings {
        mapping,
        mode: match first(posted, "mode") {
            Some("upsert") => Mode::Upsert,
            Some("update") => Mode::Update,
            _ => Mode::Insert,
        },
        key: first(posted, "key")
            .filter(|k| !k.is_empty())
            .map(str::to_owned),
        day_first: first(posted, "day_first").is_some(),
        skip_invalid: first(posted, "skip_invalid").is_some(),
        workflows: first(posted, "workflows").is_some(),
        batch_size: imports::DEFAULT_BATCH,
    }
}

async fn act(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, id)): Path<(String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/imports/{id}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let mut tried = None;
    let done = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let id = import_id(&id)?;
        let view = services.imports().get(&member.ctx, id).await?;
        match first(&posted, "action") {
            Some("cancel") => services.imports().cancel(&member.ctx, id).await,
            Some(action @ ("check" | "run")) => {
                let settings = settings_of(&posted, view.layout.headers.len());
                tried = Some(settings.clone());
                services
                    .imports()
                    .start(&member.ctx, id, settings, action == "check")
                    .await
            }
            _ => Err(Error::invalid("/action", "unknown", "unknown action")),
        }
    }
    .await;
    match done {
        Ok(_) => see_other(&here),
        Err(error @ (Error::Invalid { .. } | Error::Conflict { .. })) => {
            let status = crate::http::error::status_of(&error);
            let problem = problem_of(&error, &member);
            let drawn = async {
                let view = services.imports().get(&member.ctx, import_id(&id)?).await?;
                draw(
                    &services,
                    &member,
                    view,
                    tried,
                    Some(problem),
                    &here,
                    status,
                )
                .await
            }
            .await;
            finish(drawn, locale)
        }
        Err(error) => finish(Err(error), locale),
    }
}

/// The import's page: its file, state and report, and the mapping form while it can still run.
async fn draw(
    services: &Services,
    member: &Member,
    view: ImportView,
    tried: Option<Settings>,
    problem: Option<(String, Vec<String>)>,
    here: &str,
    status: StatusCode,
) -> Result<Response> {
    let locale = member.locale;
    let shape = services.records().shape(&member.ctx, &view.entity).await?;
    let model = &shape.model;
    let properties = model.document.get("properties");
    let writable = |key: &str| {
        matches!(
            shape.rule(key),
            crate::access::FieldRule::Visible | crate::access::FieldRule::Masked
        )
    };
    let mut targets: Vec<Value> = mapping::targets(model, &writable)
        .iter()
        .map(|f| {
            json!({
                "key": f.key,
                "label": locale.label(properties.and_then(|p| p.pointer(&format!("/{}/x-label", f.key))), &f.key),
            })
        })
        .collect();
    targets.push(json!({"key": mapping::OWNER, "label": locale.text("import.owner")}));
    targets.push(json!({"key": mapping::ID, "label": locale.text("import.record_id")}));
    let settings: Settings = match tried {
        Some(s) => s,
        None => view
            .settings
            .clone()
            .and_then(|s| serde_json::from_value(s).ok())
            .unwrap_or_else(|| Settings {
                mapping: view.suggested_mapping.clone(),
                mode: Mode::Insert,
                key: None,
                day_first: false,
                skip_invalid: true,
                workflows: false,
                batch_size: imports::DEFAULT_BATCH,
            }),
    };
    let columns: Vec<Value> = view
        .layout
        .headers
        .iter()
        .enumerate()
        .map(|(i, header)| {
            let sample: Vec<&str> = view
                .layout
                .sample
                .iter()
                .filter_map(|row| row.get(i).map(String::as_str))
                .filter(|v| !v.trim().is_empty())
                .take(3)
                .collect();
            json!({
                "index": i,
                "header": header,
                "sample": sample,
                "target": settings.mapping.get(i).cloned().flatten(),
            })
        })
        .collect();
    let running = matches!(view.status.as_str(), "running" | "checking" | "cancelling");
    let editable = matches!(view.status.as_str(), "uploaded" | "checked" | "failed")
        && !(view.status == "failed" && view.counters.batches > 0);
    let problems = if view.counters.problems > 0 {
        services
            .imports()
            .problems(&member.ctx, view.id, 0, 100)
            .await?
    } else {
        Vec::new()
    };
    let percent = (view.counters.read * 100)
        .checked_div(view.layout.rows)
        .map_or(100, |p| p.min(100));
    let entity = view.entity.clone();
    let frame = frame(services, member, &shape.snapshot, here).await?;
    let (problem, problem_list) = problem.unzip();
    page(
        "import.html",
        with(
            frame,
            json!({
                "base": format!("/w/{}/e/{entity}", member.slug()),
                "entity_plural": plural(model, member, &entity),
                "more_problems": view.counters.problems > problems.len() as u64,
                "import": view,
                "running": running,
                "editable": editable,
                "percent": percent,
                "columns": columns,
                "targets": targets,
                "settings": settings,
                "problems": problems,
                "problem": problem,
                "problem_list": problem_list,
            }),
        ),
        status,
    )
}
