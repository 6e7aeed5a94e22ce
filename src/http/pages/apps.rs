//! The app gallery at `/w/{workspace}/apps`: the built-in templates with a clone form (prefix,
//! sample records), the workspace's installed apps with their export links, and the upgrade
//! page of an app (what a new template version changes, conflicts resolved per definition).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use uuid::Uuid;

use super::member::{Member, frame, snapshot, with};
use super::records::{Pairs, first, problem_text, see_other};
use super::{error_page, page};
use crate::access::Right;
use crate::app::Services;
use crate::apps::{self, InstallOptions, upgrade};
use crate::domain::Actor;
use crate::error::{Error, Result};
use crate::render::i18n::Locale;

/// The gallery pages.
pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/apps", get(gallery).post(clone))
        .route(
            "/w/{workspace}/apps/import",
            axum::routing::post(import).layer(axum::extract::DefaultBodyLimit::max(
                apps::MAX_BUNDLE_BYTES + 64 * 1024,
            )),
        )
        .route(
            "/w/{workspace}/apps/{app}/upgrade",
            get(upgrade_page).post(upgrade_apply),
        )
}

fn label(value: &Value, locale: Locale) -> String {
    crate::reports::present::label_text(value, locale)
}

async fn gallery(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    let here = format!("/w/{slug}/apps");
    let member = member_or_return!(&services, &headers, &slug, &here);
    draw_gallery(&services, &member, &here, Vec::new(), None, StatusCode::OK)
        .await
        .unwrap_or_else(|error| error_page(error, member.locale))
}

async fn draw_gallery(
    services: &Services,
    member: &Member,
    here: &str,
    problems: Vec<String>,
    notice: Option<String>,
    status: StatusCode,
) -> Result<Response> {
    draw_gallery_with(
        services,
        member,
        here,
        problems,
        notice,
        Value::Null,
        status,
    )
    .await
}

/// The gallery, with the report of an import checked or done (`Null`: none).
async fn draw_gallery_with(
    services: &Services,
    member: &Member,
    here: &str,
    problems: Vec<String>,
    notice: Option<String>,
    imported: Value,
    status: StatusCode,
) -> Result<Response> {
    member.access.require(Right::Templates)?;
    let locale = member.locale;
    let mut templates = Vec::new();
    for name in apps::built_in_names() {
        let bundle = apps::built_in(&name)?;
        let mut kinds: HashMap<&str, usize> = HashMap::new();
        for def in &bundle.definitions {
            *kinds.entry(def.kind.as_str()).or_default() += 1;
        }
        let manifest = serde_json::to_value(&bundle.manifest).unwrap_or(Value::Null);
        templates.push(json!({
            "name": name,
            "version": bundle.manifest.version,
            "title": label(&manifest["title"], locale),
            "description": label(&manifest["description"], locale),
            "entities": kinds.get("entity").copied().unwrap_or(0),
            "forms": kinds.get("form").copied().unwrap_or(0),
            "workflows": kinds.get("workflow").copied().unwrap_or(0),
            "reports": kinds.get("report").copied().unwrap_or(0) + kinds.get("dashboard").copied().unwrap_or(0),
            "roles": bundle.roles.len(),
            "sample_data": apps::demo::has_sample_data(&name),
            "preview": bundle.manifest.preview_image.is_some(),
        }));
    }
    let installed: Vec<Value> = apps::installed(services.db(), member.access.workspace.id)
        .await?
        .into_iter()
        .map(|row| {
            let available = apps::built_in(&row.template)
                .ok()
                .map(|b| b.manifest.version)
                .filter(|v| apps::is_newer(v, &row.version));
            json!({
                "id": row.id,
                "template": row.template,
                "title": label(&row.title, locale),
                "version": row.version,
                "prefix": row.prefix,
                "installed_at": row.installed_at.date_naive().to_string(),
                "available": available,
            })
        })
        .collect();
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, here).await?;
    page(
        "apps.html",
        with(
            frame,
            json!({
                "section": "apps",
                "templates": templates,
                "installed": installed,
                "problems": problems,
                "notice": notice,
                "imported": imported,
                "is_admin": member.access.is_admin(),
            }),
        ),
        status,
    )
}

async fn clone(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/apps");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let done = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        member.access.require(Right::Templates)?;
        let name = first(&posted, "template").unwrap_or_default();
        let bundle = apps::built_in(name)
            .map_err(|_| Error::invalid("/template", "unknown_template", "pick a template"))?;
        let prefix = first(&posted, "prefix")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        let sample = first(&posted, "sample").is_some();
        if sample {
            member.access.require_admin()?;
        }
        apps::install(
            services.db(),
            services.clock(),
            services.registry(),
            member.access.workspace.id,
            &bundle,
            &InstallOptions {
                prefix,
                language: Some(locale.tag().to_owned()),
                data: false,
                sample,
            },
            Actor::Account {
                id: member.access.account_id,
            },
            false,
        )
        .await
    }
    .await;
    match done {
        Ok(report) => draw_gallery(
            &services,
            &member,
            &here,
            Vec::new(),
            Some(
                locale
                    .text("apps.installed_notice")
                    .replace("{title}", &installed_title(&report.template, locale))
                    .replace("{version}", &report.version)
                    .replace("{n}", &report.created.len().to_string()),
            ),
            StatusCode::OK,
        )
        .await
        .unwrap_or_else(|error| error_page(error, locale)),
        Err(error @ (Error::Invalid { .. } | Error::Conflict { .. })) => {
            let problems = problem_lines(&error, locale);
            draw_gallery(
                &services,
                &member,
                &here,
                problems,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
            .unwrap_or_else(|error| error_page(error, locale))
        }
        Err(error) => error_page(error, locale),
    }
}

/// What an import form posted.
#[derive(Default)]
struct ImportForm {
    csrf: Option<String>,
    file: Option<Vec<u8>>,
    prefix: Option<String>,
    data: bool,
    check_only: bool,
}

/// Reads the import form's parts (the bundle file among them). The CSRF token must come before
/// the file (the page's form sends it first): nothing is buffered for a forged request.
async fn read_import_form(member: &Member, mut multipart: Multipart) -> Result<ImportForm> {
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge {
                limit: apps::MAX_BUNDLE_BYTES,
            }
        } else {
            Error::invalid("/bundle", "unreadable", "the upload could not be read")
        }
    };
    let mut form = ImportForm::default();
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "bundle" => {
                member.check_csrf(form.csrf.as_deref())?;
                let bytes = field.bytes().await.map_err(unreadable)?;
                form.file = (!bytes.is_empty()).then(|| bytes.to_vec());
            }
            other => {
                let text = field.text().await.map_err(unreadable)?;
                match other {
                    "csrf_token" => form.csrf = Some(text),
                    "prefix" => {
                        form.prefix = Some(text.trim().to_owned()).filter(|p| !p.is_empty());
                    }
                    "data" => form.data = true,
                    "check" => form.check_only = true,
                    _ => {}
                }
            }
        }
    }
    Ok(form)
}

/// Imports (or only checks) an exported app uploaded as its JSON file.
async fn import(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    multipart: Multipart,
) -> Response {
    let here = format!("/w/{slug}/apps");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let done = async {
        member.access.require(Right::Templates)?;
        let form = read_import_form(&member, multipart).await?;
        member.check_csrf(form.csrf.as_deref())?;
        if form.data {
            // Records arrive as they were: owners, history and all, past every access rule.
            member.access.require_admin()?;
        }
        if let Some(prefix) = &form.prefix {
            apps::check_prefix(prefix)?;
        }
        let bytes = form
            .file
            .ok_or_else(|| Error::invalid("/bundle", "required", "choose the app's file"))?;
        let document: Value = crate::http::extract::parse_json(&bytes)?;
        let bundle = apps::from_document(&document)?;
        let report = apps::install(
            services.db(),
            services.clock(),
            services.registry(),
            member.access.workspace.id,
            &bundle,
            &InstallOptions {
                prefix: form.prefix,
                language: Some(locale.tag().to_owned()),
                data: form.data,
                sample: false,
            },
            Actor::Account {
                id: member.access.account_id,
            },
            form.check_only,
        )
        .await?;
        Ok::<_, Error>((report, bundle))
    }
    .await;
    match done {
        Ok((report, bundle)) => {
            let manifest = serde_json::to_value(&bundle.manifest).unwrap_or(Value::Null);
            let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
            for created in &report.created {
                *kinds.entry(created.kind.as_str().to_owned()).or_default() += 1;
            }
            let imported = json!({
                "checked_only": report.dry_run,
                "title": label(&manifest["title"], locale),
                "version": report.version,
                "prefix": report.prefix,
                "definitions": report.created.len(),
                "kinds": kinds.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(" · "),
                "roles": report.roles,
                "records": report.data.as_ref().map(|d| d.records.iter().map(|(e, n)| format!("{e} {n}")).collect::<Vec<_>>().join(" · ")),
                "history": report.data.as_ref().map(|d| d.history),
                "attachments": report.data.as_ref().map(|d| d.attachments),
                "people": report.data.as_ref().map(|d| d.people.iter().map(|p| json!({"email": p.email, "name": p.name, "matched": p.matched})).collect::<Vec<_>>()),
            });
            draw_gallery_with(
                &services,
                &member,
                &here,
                Vec::new(),
                None,
                imported,
                if report.dry_run {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
            )
            .await
            .unwrap_or_else(|error| error_page(error, locale))
        }
        Err(
            error
            @ (Error::Invalid { .. } | Error::Conflict { .. } | Error::PayloadTooLarge { .. }),
        ) => {
            let status = crate::http::error::status_of(&error);
            draw_gallery(
                &services,
                &member,
                &here,
                problem_lines(&error, locale),
                None,
                status,
            )
            .await
            .unwrap_or_else(|error| error_page(error, locale))
        }
        Err(error) => error_page(error, locale),
    }
}

fn installed_title(template: &str, locale: Locale) -> String {
    apps::built_in(template)
        .ok()
        .and_then(|b| serde_json::to_value(&b.manifest.title).ok())
        .map_or_else(|| template.to_owned(), |title| label(&title, locale))
}

/// One line per located problem (a clash names every definition).
fn problem_lines(error: &Error, locale: Locale) -> Vec<String> {
    match error {
        Error::Invalid { errors, .. } | Error::Conflict { errors, .. } if !errors.is_empty() => {
            errors
                .iter()
                .map(|e| format!("{}: {}", e.pointer, e.message))
                .collect()
        }
        other => vec![problem_text(other, locale)],
    }
}

fn app_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Error::not_found(format!("app {text:?}")))
}

async fn template_of(services: &Services, member: &Member, app: Uuid) -> Result<apps::Bundle> {
    let row = apps::installed(services.db(), member.access.workspace.id)
        .await?
        .into_iter()
        .find(|r| r.id == app)
        .ok_or_else(|| Error::not_found(format!("app {app}")))?;
    apps::built_in(&row.template)
}

async fn upgrade_page(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, app)): Path<(String, String)>,
) -> Response {
    let here = format!("/w/{slug}/apps/{app}/upgrade");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let result = async {
        member.access.require(Right::Templates)?;
        let app = app_id(&app)?;
        let bundle = template_of(&services, &member, app).await?;
        let plan = upgrade::plan(
            services.db(),
            member.access.workspace.id,
            app,
            &bundle,
            &HashMap::new(),
        )
        .await?;
        draw_plan(&services, &member, &here, &plan, Vec::new(), StatusCode::OK).await
    }
    .await;
    result.unwrap_or_else(|error| error_page(error, locale))
}

async fn draw_plan(
    services: &Services,
    member: &Member,
    here: &str,
    plan: &upgrade::Plan,
    problems: Vec<String>,
    status: StatusCode,
) -> Result<Response> {
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, here).await?;
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .map(|c| {
            json!({
                "name": c.name(),
                "kind": c.kind,
                "key": c.key,
                "action": c.action,
                "conflicts": c.conflicts,
            })
        })
        .collect();
    let mut problems = problems;
    problems.extend(
        plan.problems
            .iter()
            .map(|p| format!("{}: {}", p.pointer, p.message)),
    );
    page(
        "app_upgrade.html",
        with(
            frame,
            json!({
                "section": "apps",
                "plan": {"app": plan.app, "template": plan.template, "from": plan.from, "to": plan.to,
                         "applied": plan.applied, "conflicts": plan.conflicts()},
                "changes": changes,
                "problems": problems,
            }),
        ),
        status,
    )
}

async fn upgrade_apply(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, app)): Path<(String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/apps/{app}/upgrade");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        member.access.require(Right::Templates)?;
        let app = app_id(&app)?;
        let bundle = template_of(&services, &member, app).await?;
        let resolutions: HashMap<String, upgrade::Resolution> = posted
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("resolve:")?;
                let resolution = match v.as_str() {
                    "theirs" => upgrade::Resolution::Theirs,
                    "mine" => upgrade::Resolution::Mine,
                    _ => return None,
                };
                Some((name.to_owned(), resolution))
            })
            .collect();
        let applied = upgrade::apply(
            services.db(),
            services.clock(),
            services.registry(),
            member.access.workspace.id,
            app,
            &bundle,
            &resolutions,
            Actor::Account {
                id: member.access.account_id,
            },
            member.access.is_admin(),
        )
        .await;
        match applied {
            Ok(plan) if plan.conflicts() == 0 => Ok(see_other(&format!("/w/{slug}/apps"))),
            Ok(plan) => {
                draw_plan(&services, &member, &here, &plan, Vec::new(), StatusCode::OK).await
            }
            Err(error @ Error::Invalid { .. }) => {
                let plan = upgrade::plan(
                    services.db(),
                    member.access.workspace.id,
                    app,
                    &bundle,
                    &resolutions,
                )
                .await?;
                draw_plan(
                    &services,
                    &member,
                    &here,
                    &plan,
                    problem_lines(&error, locale),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await
            }
            Err(error) => Err(error),
        }
    }
    .await;
    result.unwrap_or_else(|error| error_page(error, locale))
}
