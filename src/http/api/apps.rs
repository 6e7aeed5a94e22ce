//! App templates: the gallery, cloning a template or importing a bundle into a workspace,
//! exporting a workspace's app, and upgrading an app to a new version of its template.

use std::collections::HashMap;

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::app::Services;
use crate::apps::{self, InstallOptions, InstallReport, Manifest, transfer, upgrade};
use crate::domain::Actor;
use crate::error::{Error, Result};
use crate::http::extract::{AppQuery, Authenticated, Workspace, parse_json};

use crate::apps::MAX_BUNDLE_BYTES as BUNDLE_BODY_LIMIT;

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/templates", get(catalogue))
        .route("/templates/{name}", get(template))
        .route("/templates/{name}/preview", get(template_preview))
        .route(
            "/w/{workspace}/apps",
            get(installed)
                .post(install)
                .layer(DefaultBodyLimit::max(BUNDLE_BODY_LIMIT)),
        )
        .route("/w/{workspace}/apps/export", get(export))
        .route(
            "/w/{workspace}/apps/{app}/upgrade",
            get(upgrade_plan)
                .post(upgrade_apply)
                .layer(DefaultBodyLimit::max(BUNDLE_BODY_LIMIT)),
        )
}

/// A template in the gallery.
#[derive(Debug, Serialize)]
struct TemplateView {
    #[serde(flatten)]
    manifest: Manifest,
    /// Definitions in all.
    definitions: usize,
    /// Definitions by kind.
    kinds: HashMap<&'static str, usize>,
    /// Role keys.
    roles: Vec<String>,
    /// Whether it can be cloned with sample records.
    sample_data: bool,
}

fn template_view(bundle: apps::Bundle) -> TemplateView {
    let mut kinds = HashMap::new();
    for def in &bundle.definitions {
        *kinds.entry(def.kind.as_str()).or_insert(0) += 1;
    }
    TemplateView {
        definitions: bundle.definitions.len(),
        kinds,
        roles: bundle.roles.iter().map(|r| r.key.clone()).collect(),
        sample_data: bundle.data.is_some() || apps::demo::has_sample_data(&bundle.manifest.name),
        manifest: bundle.manifest,
    }
}

async fn catalogue(_caller: Authenticated) -> Result<Json<Vec<TemplateView>>> {
    let mut all = Vec::new();
    for name in apps::built_in_names() {
        all.push(template_view(apps::built_in(&name)?));
    }
    Ok(Json(all))
}

#[derive(Debug, Serialize)]
struct TemplateDetail {
    #[serde(flatten)]
    summary: TemplateView,
    /// Every definition: kind, key and label.
    contents: Vec<Value>,
}

/// A built-in template's preview image. SVG is served so that nothing in it runs.
async fn template_preview(_caller: Authenticated, Path(name): Path<String>) -> Result<Response> {
    let (bytes, media_type) = apps::built_in_preview(&name)
        .ok_or_else(|| Error::not_found(format!("a preview of template {name:?}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, media_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; sandbox",
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn template(
    _caller: Authenticated,
    Path(name): Path<String>,
) -> Result<Json<TemplateDetail>> {
    let bundle = apps::built_in(&name)?;
    let contents = bundle
        .definitions
        .iter()
        .map(|d| {
            serde_json::json!({
                "kind": d.kind.as_str(),
                "key": d.key,
                "label": d.document.get("label").or_else(|| d.document.get("x-label")),
            })
        })
        .collect();
    Ok(Json(TemplateDetail {
        summary: template_view(bundle),
        contents,
    }))
}

/// An installed app.
#[derive(Debug, Serialize)]
struct AppView {
    id: Uuid,
    template: String,
    version: String,
    title: Value,
    prefix: Option<String>,
    namespace: String,
    installed_at: chrono::DateTime<chrono::Utc>,
    upgraded_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The built-in template's version when it differs from the installed one.
    available: Option<String>,
}

async fn installed(State(services): State<Services>, ws: Workspace) -> Result<Json<Vec<AppView>>> {
    ws.access.require(crate::access::Right::Templates)?;
    let rows = apps::installed(services.db(), ws.scope().workspace_id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| AppView {
                available: apps::built_in(&row.template)
                    .ok()
                    .map(|b| b.manifest.version)
                    .filter(|v| apps::is_newer(v, &row.version)),
                id: row.id,
                template: row.template,
                version: row.version,
                title: row.title,
                prefix: row.prefix,
                namespace: row.namespace,
                installed_at: row.installed_at,
                upgraded_at: row.upgraded_at,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Install {
    /// A built-in template's name…
    template: Option<String>,
    /// …or a whole bundle document (`schemas/meta/template.schema.json`).
    bundle: Option<Value>,
    /// A prefix for every key, to keep another copy beside one installed.
    prefix: Option<String>,
    /// Also import the records: the bundle's data, or a built-in template's sample records.
    #[serde(default)]
    data: bool,
    /// Check everything and report what would be created, writing nothing.
    #[serde(default)]
    dry_run: bool,
    /// The language role names are written in (`en`, `zh-CN`).
    language: Option<String>,
}

/// Reads a JSON body up to [`BUNDLE_BODY_LIMIT`], with the same errors as [`AppJson`].
async fn bundle_body<T: serde::de::DeserializeOwned>(request: Request) -> Result<T> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or_default().trim() == "application/json");
    if !is_json {
        return Err(Error::BadRequest {
            detail: "expected a JSON body (Content-Type: application/json)".to_owned(),
            errors: Vec::new(),
        });
    }
    let bytes = axum::body::to_bytes(request.into_body(), BUNDLE_BODY_LIMIT)
        .await
        .map_err(|_| Error::PayloadTooLarge {
            limit: BUNDLE_BODY_LIMIT,
        })?;
    parse_json(&bytes)
}

async fn install(
    State(services): State<Services>,
    ws: Workspace,
    request: Request,
) -> Result<(StatusCode, Json<InstallReport>)> {
    ws.access.require(crate::access::Right::Templates)?;
    let body: Install = bundle_body(request).await?;
    if body.data {
        // Records arrive as they were: owners, history and all, past every access rule.
        ws.access.require_admin()?;
    }
    if let Some(prefix) = &body.prefix {
        apps::check_prefix(prefix)?;
    }
    let from_document = body.bundle.is_some();
    let bundle = match (body.template, body.bundle) {
        (Some(name), None) => apps::built_in(&name).map_err(|e| match e {
            Error::NotFound(what) => {
                Error::invalid("/template", "unknown_template", format!("{what} not found"))
            }
            other => other,
        })?,
        (None, Some(document)) => apps::from_document(&document).map_err(under_bundle)?,
        _ => {
            return Err(Error::invalid(
                "",
                "one_of",
                "give exactly one of template or bundle",
            ));
        }
    };
    let scope = ws.scope();
    let options = InstallOptions {
        prefix: body.prefix,
        language: body.language,
        data: body.data && from_document,
        sample: body.data && !from_document,
    };
    let report = apps::install(
        services.db(),
        services.clock(),
        services.registry(),
        scope.workspace_id,
        &bundle,
        &options,
        Actor::Account {
            id: ws.access.account_id,
        },
        body.dry_run,
    )
    .await
    .map_err(|e| if from_document { under_bundle(e) } else { e })?;
    let status = if report.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(report)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    app: Option<Uuid>,
    #[serde(default)]
    data: bool,
    name: Option<String>,
    version: Option<String>,
}

async fn export(
    State(services): State<Services>,
    ws: Workspace,
    AppQuery(query): AppQuery<ExportQuery>,
) -> Result<Response> {
    ws.access.require(crate::access::Right::Templates)?;
    if query.data {
        ws.access.require_admin()?;
    }
    let document = transfer::export(
        services.db(),
        ws.scope().workspace_id,
        &transfer::ExportOptions {
            app: query.app,
            data: query.data,
            name: query.name,
            version: query.version,
        },
    )
    .await?;
    let name = document
        .pointer("/manifest/name")
        .and_then(Value::as_str)
        .unwrap_or("app")
        .to_owned();
    let version = document
        .pointer("/manifest/version")
        .and_then(Value::as_str)
        .unwrap_or("1.0.0")
        .to_owned();
    let body = serde_json::to_vec_pretty(&document).map_err(Error::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}-{version}.json\""),
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Upgrade {
    /// A bundle document of the new version (default: the built-in template of the same name).
    bundle: Option<Value>,
    /// Resolutions of conflicts by `kind/key`: `theirs` or `mine`.
    #[serde(default)]
    resolutions: HashMap<String, upgrade::Resolution>,
    /// Plan only.
    #[serde(default)]
    dry_run: bool,
}

fn app_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Error::not_found(format!("app {text:?}")))
}

async fn offered(
    services: &Services,
    workspace_id: Uuid,
    app: Uuid,
    document: Option<&Value>,
) -> Result<apps::Bundle> {
    match document {
        Some(document) => apps::from_document(document).map_err(under_bundle),
        None => {
            let row = apps::installed(services.db(), workspace_id)
                .await?
                .into_iter()
                .find(|r| r.id == app)
                .ok_or_else(|| Error::not_found(format!("app {app}")))?;
            apps::built_in(&row.template)
        }
    }
}

async fn upgrade_plan(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, app)): Path<(String, String)>,
) -> Result<Json<upgrade::Plan>> {
    ws.access.require(crate::access::Right::Templates)?;
    let app = app_id(&app)?;
    let workspace_id = ws.scope().workspace_id;
    let bundle = offered(&services, workspace_id, app, None).await?;
    Ok(Json(
        upgrade::plan(services.db(), workspace_id, app, &bundle, &HashMap::new()).await?,
    ))
}

async fn upgrade_apply(
    State(services): State<Services>,
    ws: Workspace,
    Path((_, app)): Path<(String, String)>,
    request: Request,
) -> Result<Json<upgrade::Plan>> {
    ws.access.require(crate::access::Right::Templates)?;
    let app = app_id(&app)?;
    let body: Upgrade = bundle_body(request).await?;
    let workspace_id = ws.scope().workspace_id;
    let bundle = offered(&services, workspace_id, app, body.bundle.as_ref()).await?;
    let plan = if body.dry_run {
        upgrade::plan(services.db(), workspace_id, app, &bundle, &body.resolutions).await?
    } else {
        upgrade::apply(
            services.db(),
            services.clock(),
            services.registry(),
            workspace_id,
            app,
            &bundle,
            &body.resolutions,
            Actor::Account {
                id: ws.access.account_id,
            },
            ws.access.is_admin(),
        )
        .await?
    };
    Ok(Json(plan))
}

/// Locates a bundle document's problems inside the request body (`/bundle/...`).
fn under_bundle(error: Error) -> Error {
    let relocate = |errors: Vec<crate::error::FieldError>| {
        errors
            .into_iter()
            .map(|mut err| {
                if !err.pointer.starts_with("/bundle/") {
                    err.pointer = format!("/bundle{}", err.pointer);
                }
                err
            })
            .collect()
    };
    match error {
        Error::Invalid { detail, errors } => Error::Invalid {
            detail,
            errors: relocate(errors),
        },
        Error::Conflict { detail, errors } => Error::Conflict {
            detail,
            errors: relocate(errors),
        },
        other => other,
    }
}
