//! Email from records: `/api/v1/w/{workspace}/entities/{entity}/records/{id}/emails` (the
//! record's emails; send one), `…/emails/draft` (an email written from a template),
//! `/entities/{entity}/email-templates`, the workspace's inbound address and the received mail
//! that matched no record.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::records::Caller;
use crate::app::Services;
use crate::emails::{Compose, Draft, EmailView, InboundAddress};
use crate::error::{Error, Result};
use crate::http::extract::{AppJson, AppQuery, Workspace};
use crate::printing::TemplateRef;
use crate::render::i18n::Locale;

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route(
            "/w/{workspace}/entities/{entity}/records/{id}/emails",
            get(list).post(send),
        )
        .route(
            "/w/{workspace}/entities/{entity}/records/{id}/emails/draft",
            get(draft),
        )
        .route(
            "/w/{workspace}/entities/{entity}/email-templates",
            get(templates),
        )
        .route("/w/{workspace}/inbound-address", get(inbound_address))
        .route(
            "/w/{workspace}/inbound-address/rotate",
            post(rotate_inbound_address),
        )
        .route("/w/{workspace}/emails/unfiled", get(unfiled))
        .route("/w/{workspace}/emails/{id}/file", post(file))
}

fn locale_of(lang: Option<&str>) -> Result<Locale> {
    match lang {
        None => Ok(Locale::En),
        Some(tag) => Locale::from_tag(tag)
            .ok_or_else(|| Error::invalid("/lang", "language", "lang is en or zh-CN")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LangQuery {
    /// `en` or `zh-CN` (default English).
    lang: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftQuery {
    template: Option<String>,
    lang: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEmail {
    template: Option<String>,
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    subject: Option<String>,
    body: Option<String>,
    /// The language a template is written in (default English).
    lang: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOn {
    entity: String,
    record_id: String,
}

async fn list(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
) -> Result<Json<Vec<EmailView>>> {
    Ok(Json(
        services
            .emails()
            .list(&caller.ctx, &ws.access, &entity, &id)
            .await?,
    ))
}

async fn send(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
    AppJson(body): AppJson<NewEmail>,
) -> Result<(StatusCode, Json<EmailView>)> {
    let locale = locale_of(body.lang.as_deref())?;
    let compose = Compose {
        template: body.template,
        to: body.to,
        cc: body.cc,
        subject: body.subject,
        body: body.body,
    };
    let email = services
        .emails()
        .send(&caller.ctx, &ws.access, &entity, &id, compose, locale)
        .await?;
    Ok((StatusCode::CREATED, Json(email)))
}

async fn draft(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
    Path((_, entity, id)): Path<(String, String, String)>,
    AppQuery(query): AppQuery<DraftQuery>,
) -> Result<Json<Draft>> {
    let locale = locale_of(query.lang.as_deref())?;
    Ok(Json(
        services
            .emails()
            .draft(
                &caller.ctx,
                &ws.access,
                &entity,
                &id,
                query.template.as_deref(),
                locale,
            )
            .await?,
    ))
}

async fn templates(
    State(services): State<Services>,
    caller: Caller,
    Path((_, entity)): Path<(String, String)>,
    AppQuery(query): AppQuery<LangQuery>,
) -> Result<Json<Vec<TemplateRef>>> {
    let locale = locale_of(query.lang.as_deref())?;
    Ok(Json(
        services
            .emails()
            .templates(&caller.ctx, &entity, locale)
            .await?,
    ))
}

async fn inbound_address(
    State(services): State<Services>,
    ws: Workspace,
) -> Result<Json<InboundAddress>> {
    Ok(Json(services.emails().inbound_address(&ws.access).await?))
}

async fn rotate_inbound_address(
    State(services): State<Services>,
    ws: Workspace,
) -> Result<Json<InboundAddress>> {
    Ok(Json(
        services.emails().rotate_inbound_address(&ws.access).await?,
    ))
}

async fn unfiled(State(services): State<Services>, ws: Workspace) -> Result<Json<Vec<EmailView>>> {
    Ok(Json(services.emails().unfiled(&ws.access).await?))
}

async fn file(
    State(services): State<Services>,
    ws: Workspace,
    caller: Caller,
    Path((_, id)): Path<(String, String)>,
    AppJson(body): AppJson<FileOn>,
) -> Result<Json<EmailView>> {
    Ok(Json(
        services
            .emails()
            .file(&caller.ctx, &ws.access, &id, &body.entity, &body.record_id)
            .await?,
    ))
}
