//! Public share-link forms (外链表单) at `/f/{secret}`: no account needed. The form shows only
//! fields a stranger may fill (no reference or member pickers, which would list the workspace's
//! records and people); a submission creates the record through the records service with the
//! link's owner, channel `form`, the same validation and workflows; a honeypot field and a
//! per-visitor limit keep bots out; the same form sent twice makes one record.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::records::{Pairs, first, issue_token, redeem_token, see_other};
use super::{error_page, languages, locale_for, page};
use crate::app::Services;
use crate::definitions::{EntityModel, Kind, Scope};
use crate::domain::Actor;
use crate::error::{Error, FieldError, Result};
use crate::records::{Channel, Context, NewRecord};
use crate::render::forms::{self, Names, Section};
use crate::render::i18n::Locale;
use crate::store::form_links::FormLinkRow;

/// The honeypot: a field people never see (hidden by CSS, out of the tab order) and bots fill.
const HONEYPOT: &str = "website";

/// The public form routes.
pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/f/{secret}", get(show).post(submit))
        .route("/f/{secret}/thanks", get(thanks))
        .route("/f/{secret}/state", axum::routing::post(state))
}

/// An open link with what drawing and saving its form needs.
struct Opened {
    link: FormLinkRow,
    ctx: Context,
    model: Arc<EntityModel>,
    form: Arc<Value>,
}

async fn open(services: &Services, secret: &str) -> Result<Opened> {
    let gone = || Error::not_found("form");
    let link = crate::forms::open(services.db(), secret)
        .await?
        .ok_or_else(gone)?;
    let workspace = crate::store::workspaces::find(services.db().conn(), link.workspace_id)
        .await?
        .ok_or_else(gone)?;
    let scope = Scope {
        workspace_id: workspace.id,
        generation: workspace.definitions_generation,
    };
    let snapshot = services
        .registry()
        .snapshot(services.db(), scope.workspace_id, scope.generation)
        .await?;
    let form = snapshot
        .get(Kind::Form, &link.form)
        .map(|p| p.document.clone())
        .ok_or_else(gone)?;
    let entity = form
        .get("entity")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let model = snapshot.entity(entity).ok_or_else(gone)?;
    let ctx = Context {
        scope,
        actor: Actor::System,
        channel: Channel::Form,
        time_zone: crate::workspaces::zone_of(&workspace),
        policy: None,
        calendar: crate::workspaces::calendar_of(&workspace),
        origin: None,
    };
    Ok(Opened {
        link,
        ctx,
        model,
        form,
    })
}

/// The fields a stranger may fill: writable, shown, and not pickers over the workspace's data.
fn public_sections(opened: &Opened, locale: Locale) -> Vec<Section> {
    let visible = |_: &str| crate::access::FieldRule::Visible;
    let mut sections = forms::strict_layout(&opened.model, &opened.form, &visible, locale);
    for section in &mut sections {
        section.fields.retain(|w| {
            !w.readonly
                && !matches!(
                    w.widget,
                    "reference" | "user" | "attachment" | "subtable" | "computed"
                )
        });
    }
    sections.retain(|s| !s.fields.is_empty());
    sections
}

fn title_of(opened: &Opened, locale: Locale) -> String {
    locale
        .label(opened.form.get("label"), &opened.link.form)
        .to_owned()
}

/// What the visitor sent (or the defaults), and what was wrong with it.
struct Draft<'a> {
    values: &'a Map<String, Value>,
    posted: Option<&'a [(String, String)]>,
    errors: &'a [FieldError],
    token: &'a str,
}

fn draw(
    opened: &Opened,
    secret: &str,
    locale: Locale,
    draft: &Draft<'_>,
    status: StatusCode,
) -> Result<Response> {
    let Draft {
        values,
        posted,
        errors,
        token,
    } = *draft;
    let mut sections = public_sections(opened, locale);
    forms::fill(
        &mut sections,
        &opened.model,
        values,
        &Names::default(),
        opened.ctx.time_zone,
        locale,
    );
    if let Some(posted) = posted {
        for widget in sections.iter_mut().flat_map(|s| s.fields.iter_mut()) {
            if let Some(text) = first(posted, &widget.key)
                && !matches!(
                    widget.widget,
                    "select" | "radio" | "multiselect" | "checkbox"
                )
            {
                widget.value = text.to_owned();
            }
        }
    }
    forms::apply_rules(
        &mut sections,
        &opened.model,
        values,
        &crate::script::shared(),
    );
    let has_rules = sections
        .iter()
        .flat_map(|s| s.fields.iter())
        .any(|w| w.has_rules);
    let general = forms::attach_errors(&mut sections, errors, locale);
    page(
        "public_form.html",
        json!({
            "lang": locale.tag(),
            "languages": languages(locale),
            "here": format!("/f/{secret}"),
            "title": title_of(opened, locale),
            "action": format!("/f/{secret}"),
            "sections": sections,
            "token": token,
            "has_errors": !errors.is_empty(),
            "general_errors": general,
            "honeypot": HONEYPOT,
            "rules_url": has_rules.then(|| format!("/f/{secret}/state")),
        }),
        status,
    )
}

async fn show(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(secret): Path<String>,
) -> Response {
    let locale = locale_for(&headers, None);
    let result = async {
        let opened = open(&services, &secret).await?;
        let defaults = super::records::defaults_of(&opened.model);
        let token = issue_token(
            services.form_key().await?,
            &format!("link:{}", opened.link.id),
            services.clock().now(),
        );
        let draft = Draft {
            values: &defaults,
            posted: None,
            errors: &[],
            token: &token,
        };
        draw(&opened, &secret, locale, &draft, StatusCode::OK)
    }
    .await;
    result.unwrap_or_else(|error| error_page(error, locale))
}

async fn submit(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(secret): Path<String>,
    extensions: axum::http::Extensions,
    Form(posted): Form<Pairs>,
) -> Response {
    let locale = locale_for(&headers, None);
    let visitor = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |ConnectInfo(a)| a.ip().to_string());
    let result = async {
        let opened = open(&services, &secret).await?;
        let thanks = format!("/f/{secret}/thanks");
        services.form_limiter().check(
            &format!("{}/{visitor}", opened.link.id),
            services.clock().now(),
        )?;
        // A bot filled the invisible field: it is told all went well, and nothing is kept.
        if first(&posted, HONEYPOT).is_some_and(|v| !v.is_empty()) {
            tracing::info!(link = %opened.link.id, "a public form submission filled the honeypot; dropped");
            return Ok(see_other(&thanks));
        }
        let key = services.form_key().await?;
        let id = first(&posted, "_token")
            .and_then(|t| {
                redeem_token(key, &format!("link:{}", opened.link.id), t, services.clock().now())
            })
            .ok_or_else(|| Error::bad_request("the form expired; reload the page"))?;
        let records = services.records();
        if made(&services, &opened, id).await {
            return Ok(see_other(&thanks));
        }
        let mut sections = public_sections(&opened, locale);
        let mut local = Vec::new();
        let fields = forms::read_ruled(
            &mut sections,
            &opened.model,
            &posted,
            &super::records::defaults_of(&opened.model),
            opened.ctx.time_zone,
            &services.scripts(),
            &mut local,
        );
        let to_create: Map<String, Value> = fields
            .iter()
            .filter(|(_, v)| !v.is_null() && *v != &Value::Array(Vec::new()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let attempt = records
            .create(
                &opened.ctx,
                &opened.model.key,
                NewRecord {
                    fields: to_create,
                    owner: Some(opened.link.owner_id),
                    id: Some(id),
                },
            )
            .await;
        match attempt {
            Ok(_) => Ok(see_other(&thanks)),
            Err(_) if made(&services, &opened, id).await => Ok(see_other(&thanks)),
            Err(Error::Invalid { errors, .. } | Error::Conflict { errors, .. })
                if !errors.is_empty() =>
            {
                // "Another lead has this email" would tell a stranger what the CRM holds.
                local.extend(errors.into_iter().map(|mut e| {
                    if e.code == "unique" {
                        e.code = "not_accepted".to_owned();
                        e.message = "this value cannot be accepted".to_owned();
                    }
                    e
                }));
                let token = first(&posted, "_token").unwrap_or_default().to_owned();
                let draft = Draft {
                    values: &fields,
                    posted: Some(&posted),
                    errors: &local,
                    token: &token,
                };
                draw(
                    &opened,
                    &secret,
                    locale,
                    &draft,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
            }
            Err(other) => Err(other),
        }
    }
    .await;
    result.unwrap_or_else(|error| error_page(error, locale))
}

/// The form rules' verdict for what the visitor is typing (their page asks as it changes).
async fn state(
    State(services): State<Services>,
    Path(secret): Path<String>,
    Form(posted): Form<Pairs>,
) -> Response {
    let result = async {
        let opened = open(&services, &secret).await?;
        let mut sections = public_sections(&opened, Locale::En);
        let mut ignored = Vec::new();
        forms::read_ruled(
            &mut sections,
            &opened.model,
            &posted,
            &super::records::defaults_of(&opened.model),
            opened.ctx.time_zone,
            &services.scripts(),
            &mut ignored,
        );
        let (hidden, readonly) = forms::rule_state(&sections);
        Ok::<_, Error>(json!({"hidden": hidden, "readonly": readonly}))
    }
    .await;
    match result {
        Ok(state) => axum::Json(state).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Whether the record a form token names was made already (the form was sent before).
async fn made(services: &Services, opened: &Opened, id: uuid::Uuid) -> bool {
    services
        .records()
        .get(&opened.ctx, &opened.model.key, &id.to_string(), true)
        .await
        .is_ok()
}

async fn thanks(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(secret): Path<String>,
) -> Response {
    let locale = locale_for(&headers, None);
    let result = async {
        let opened = open(&services, &secret).await?;
        let text = opened
            .link
            .settings
            .get("thank_you")
            .filter(|t| t.is_object())
            .map(|t| locale.label(Some(t), "").to_owned())
            .filter(|t| !t.is_empty());
        page(
            "public_thanks.html",
            json!({
                "lang": locale.tag(),
                "languages": languages(locale),
                "here": format!("/f/{secret}/thanks"),
                "title": title_of(&opened, locale),
                "text": text,
                "again": format!("/f/{secret}"),
            }),
            StatusCode::OK,
        )
    }
    .await;
    result.unwrap_or_else(|error| error_page(error, locale))
}
