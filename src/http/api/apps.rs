//! App templates: the built-in catalogue and installing a template or a bundle into a workspace.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::Services;
use crate::apps::{self, InstallReport, Manifest};
use crate::domain::Actor;
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, Authenticated, Workspace};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/templates", get(catalogue))
        .route("/w/{workspace}/apps", post(install))
}

#[derive(Debug, Serialize)]
struct TemplateView {
    #[serde(flatten)]
    manifest: Manifest,
    definitions: usize,
}

async fn catalogue(_caller: Authenticated) -> Result<Json<Vec<TemplateView>>> {
    let mut all = Vec::new();
    for name in apps::built_in_names() {
        let bundle = apps::built_in(&name)?;
        all.push(TemplateView {
            definitions: bundle.definitions.len(),
            manifest: bundle.manifest,
        });
    }
    Ok(Json(all))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Install {
    /// A built-in template's name…
    template: Option<String>,
    /// …or a whole bundle document (`schemas/meta/template.schema.json`).
    bundle: Option<Value>,
}

async fn install(
    State(services): State<Services>,
    ws: Workspace,
    AppJson(body): AppJson<Install>,
) -> Result<(StatusCode, Json<InstallReport>)> {
    ws.access.require(crate::access::Right::Templates)?;
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
    let report = apps::install(
        services.db(),
        services.clock(),
        services.registry(),
        scope.workspace_id,
        &bundle,
        Actor::Account {
            id: ws.access.account_id,
        },
    )
    .await
    .map_err(|e| if from_document { under_bundle(e) } else { e })?;
    Ok((StatusCode::CREATED, Json(report)))
}

/// Locates a bundle document's problems inside the request body (`/bundle/...`).
fn under_bundle(error: Error) -> Error {
    let relocate = |errors: Vec<crate::error::FieldError>| {
        errors
            .into_iter()
            .map(|mut err| {
                err.pointer = format!("/bundle{}", err.pointer);
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
