//! The form builder at `/w/{workspace}/build/forms/{key}`: the entity's fields not on the form,
//! the form's sections with their fields (drag them, or place and move them with buttons), a
//! field's help, width, widget and read-only flag, the rules that show or lock it (a simple
//! "when field is value" editor that writes rhai, or rhai itself), a preview, and the JSON.
//! Every edit is one of `definitions::form_designer`'s, saved as the form's draft at the
//! revision the page was drawn at.

use axum::Router;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::builder::{actor, check_revision, json_document, posted_revision, problems_of};
use super::member::{Member, frame, snapshot, with};
use super::page;
use super::records::{Pairs, finish, first, query_pairs, see_other};
use crate::access::{FieldRule, Right};
use crate::app::Services;
use crate::definitions::form_designer::{self, FormEdit, Placement, Rule};
use crate::definitions::{Kind, designer};
use crate::error::{Error, Result};
use crate::render::forms;

/// The form builder's routes.
pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/build/forms", post(create_form))
        .route(
            "/w/{workspace}/build/forms/{key}",
            get(form_page).post(edit_form),
        )
}

/// The entity's fields a form may show: key, kind and the widgets the kind allows (fields the
/// definition hides are left out).
fn fields_of(entity_doc: &Value) -> Vec<(String, String, Vec<String>)> {
    designer::field_keys(entity_doc)
        .into_iter()
        .filter_map(|key| {
            let property = entity_doc.pointer(&format!("/properties/{key}"))?;
            if property.get("x-hidden") == Some(&Value::Bool(true)) {
                return None;
            }
            let kind = property.get("x-kind")?.as_str()?.to_owned();
            let widgets = forms::widgets_for(&kind)
                .iter()
                .map(|w| (*w).to_owned())
                .collect();
            Some((key, kind, widgets))
        })
        .collect()
}

/// Creates a form for an entity (its first field placed) and opens it.
async fn create_form(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/build");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let done = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        member.access.require(Right::Definitions)?;
        let entity = first(&posted, "entity").unwrap_or_default().to_owned();
        let key = first(&posted, "key")
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map_or_else(|| format!("{entity}_form"), str::to_owned);
        let store = services.definitions();
        let entity_def = store.get(member.ctx.scope, Kind::Entity, &entity).await?;
        let entity_doc = entity_def
            .published
            .ok_or_else(|| Error::invalid("/entity", "unpublished", "publish the entity first"))?;
        if store.get(member.ctx.scope, Kind::Form, &key).await.is_ok() {
            return Err(Error::conflict(
                "/key",
                "taken",
                format!("a form {key:?} exists already"),
            ));
        }
        let first_field = designer::field_keys(&entity_doc)
            .into_iter()
            .next()
            .unwrap_or_else(|| "name".to_owned());
        let label_en = entity_doc
            .pointer("/x-label/en")
            .and_then(Value::as_str)
            .unwrap_or(&entity);
        let label_zh = entity_doc
            .pointer("/x-label/zh-CN")
            .and_then(Value::as_str)
            .unwrap_or("");
        store
            .save_draft(
                member.ctx.scope,
                Kind::Form,
                &key,
                form_designer::new_form(&entity, label_en, label_zh, &first_field),
                None,
                actor(&member),
            )
            .await?;
        Ok(see_other(&format!(
            "/w/{}/build/forms/{key}",
            member.slug()
        )))
    }
    .await;
    finish(done, locale)
}

async fn form_page(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let here = format!("/w/{slug}/build/forms/{key}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let pairs = query_pairs(raw.as_deref());
    let field = first(&pairs, "field").map(str::to_owned);
    let as_role = first(&pairs, "as_role")
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    finish(
        draw(
            &services,
            &member,
            &key,
            &here,
            Draw {
                field,
                as_role,
                ..Draw::default()
            },
            StatusCode::OK,
        )
        .await,
        locale,
    )
}

#[derive(Default)]
struct Draw {
    field: Option<String>,
    /// The role the preview shows the form as (none: full rights).
    as_role: Option<String>,
    problems: Vec<Value>,
    json: Option<String>,
}

async fn draw(
    services: &Services,
    member: &Member,
    key: &str,
    here: &str,
    draw: Draw,
    status: StatusCode,
) -> Result<Response> {
    member.access.require(Right::Definitions)?;
    let locale = member.locale;
    let store = services.definitions();
    let definition = store.get(member.ctx.scope, Kind::Form, key).await?;
    let working = definition.working().cloned().unwrap_or_else(|| json!({}));
    let entity = working
        .get("entity")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let shape = services.records().shape(&member.ctx, &entity).await?;
    let entity_doc = (*shape.model.document).clone();
    let fields = fields_of(&entity_doc);
    let label = |field: &str| {
        locale
            .label(
                entity_doc.pointer(&format!("/properties/{field}/x-label")),
                field,
            )
            .to_owned()
    };
    let kind_of = |field: &str| {
        fields
            .iter()
            .find(|(k, _, _)| k == field)
            .map_or("text".to_owned(), |(_, kind, _)| kind.clone())
    };
    let sections: Vec<Value> = working
        .get("sections")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| {
            let placed: Vec<Value> = s
                .get("fields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let field = p.get("field")?.as_str()?;
                    Some(json!({
                        "key": field,
                        "label": label(field),
                        "kind": kind_of(field),
                        "span": p.get("span"),
                        "widget": p.get("widget"),
                        "readonly": p.get("readonly") == Some(&Value::Bool(true)) || p.get("readonly_when").is_some(),
                        "visible_when": p.get("visible_when"),
                    }))
                })
                .collect();
            json!({
                "title": s.get("title").map(|t| locale.label(Some(t), "").to_owned()),
                "title_en": s.pointer("/title/en"),
                "title_zh": s.pointer("/title/zh-CN"),
                "columns": s.get("columns").and_then(Value::as_u64).unwrap_or(1),
                "collapsed": s.get("collapsed") == Some(&Value::Bool(true)),
                "fields": placed,
            })
        })
        .collect();
    let unplaced: Vec<Value> = fields
        .iter()
        .filter(|(k, _, _)| form_designer::position_of(&working, k).is_none())
        .map(|(k, kind, _)| json!({"key": k, "label": label(k), "kind": kind}))
        .collect();
    let placement = draw.field.as_deref().and_then(|field| {
        let (s, i) = form_designer::position_of(&working, field)?;
        let p = working.pointer(&format!("/sections/{s}/fields/{i}"))?;
        let text = |ptr: &str| p.pointer(ptr).and_then(Value::as_str).unwrap_or("").to_owned();
        Some(json!({
            "field": field,
            "label": label(field),
            "help_en": text("/help/en"),
            "help_zh": text("/help/zh-CN"),
            "span": p.get("span").map(Value::to_string).unwrap_or_default(),
            "widget": text("/widget"),
            "widgets": fields.iter().find(|(k, _, _)| k == field).map(|(_, _, w)| w.clone()).unwrap_or_default(),
            "readonly": p.get("readonly") == Some(&Value::Bool(true)),
            "visible": form_designer::parse_rule(p.get("visible_when").and_then(Value::as_str)),
            "readonly_when": form_designer::parse_rule(p.get("readonly_when").and_then(Value::as_str)),
        }))
    });
    // The preview: the draft laid out as the form draws it, for full rights or as a role sees
    // it (its hidden fields left out, read-only and masked ones marked).
    let directory = crate::workspaces::directory(
        services.db(),
        services.access_cache(),
        member.access.workspace.id,
    )
    .await?;
    let mut roles: Vec<Value> = directory
        .roles
        .values()
        .map(|r| json!({"key": r.key, "name": r.name}))
        .collect();
    roles.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let grant = draw
        .as_role
        .as_deref()
        .and_then(|role| directory.roles.get(role))
        .map(|role| role.rights.grant(&entity));
    let rule_for = |field: &str| {
        grant
            .as_ref()
            .map_or(FieldRule::Visible, |g| g.field(field))
    };
    let preview: Vec<Value> = forms::strict_layout(&shape.model, &working, &rule_for, locale)
        .into_iter()
        .map(|s| {
            json!({
                "title": s.title,
                "columns": s.columns,
                "widgets": s.fields.iter().filter(|w| !w.hidden).map(|w| json!({
                    "label": w.label, "span": w.span, "required": w.required,
                    "kind": kind_of(&w.key), "rule": form_designer::position_of(&working, &w.key)
                        .and_then(|(s, i)| working.pointer(&format!("/sections/{s}/fields/{i}/visible_when")))
                        .is_some(),
                    "readonly": w.readonly,
                    "access": match rule_for(&w.key) {
                        FieldRule::Masked | FieldRule::MaskedReadOnly => "masked",
                        FieldRule::ReadOnly => "read_only",
                        _ => "",
                    },
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let role_view = grant.as_ref().map(|g| {
        json!({
            "key": draw.as_role,
            "may_create": g.create != crate::access::Reach::None,
            "hidden": shape.model.fields.iter()
                .filter(|f| !f.hidden && g.field(&f.key) == FieldRule::Hidden)
                .map(|f| label(&f.key))
                .collect::<Vec<_>>(),
        })
    });
    let all_fields: Vec<Value> = fields
        .iter()
        .map(|(k, _, _)| json!({"key": k, "label": label(k)}))
        .collect();
    let json_text = draw
        .json
        .unwrap_or_else(|| serde_json::to_string_pretty(&working).unwrap_or_default());
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, here).await?;
    page(
        "builder_form.html",
        with(
            frame,
            json!({
                "section": "build",
                "key": key,
                "form_entity": entity,
                "entity_label": locale.label(entity_doc.get("x-label"), &entity),
                "label": locale.label(working.get("label"), key),
                "revision": definition.revision,
                "published_version": definition.published_version,
                "has_draft": definition.draft.is_some(),
                "sections": sections,
                "unplaced": unplaced,
                "placement": placement,
                "all_fields": all_fields,
                "preview": preview,
                "roles": roles,
                "as_role": role_view,
                "json": json_text,
                "problems": draw.problems,
            }),
        ),
        status,
    )
}

fn rule_of(posted: &Pairs, name: &str) -> Rule {
    let text = |suffix: &str| {
        first(posted, &format!("{name}_{suffix}"))
            .unwrap_or_default()
            .to_owned()
    };
    Rule {
        field: text("field"),
        op: text("op"),
        value: text("value"),
        script: text("script"),
    }
}

fn edit_of(posted: &Pairs) -> Result<Option<FormEdit>> {
    let text = |name: &str| first(posted, name).unwrap_or_default().to_owned();
    let index = |name: &str| {
        text(name)
            .parse::<usize>()
            .map_err(|_| Error::invalid(format!("/{name}"), "index", "not a position"))
    };
    Ok(Some(match first(posted, "op").unwrap_or_default() {
        "place" => FormEdit::Place {
            field: text("field"),
            section: index("section")?,
        },
        "remove" => FormEdit::Remove {
            field: text("field"),
        },
        "up" | "down" => FormEdit::Move {
            field: text("field"),
            by: if text("op") == "up" { -1 } else { 1 },
        },
        "arrange" => {
            let layout: Vec<Vec<String>> = serde_json::from_str(&text("layout")).map_err(|e| {
                Error::invalid(
                    "/layout",
                    "json",
                    format!("the layout is not a list of lists: {e}"),
                )
            })?;
            FormEdit::Arrange(layout)
        }
        "settings" => FormEdit::Settings(Box::new(Placement {
            field: text("field"),
            help_en: text("help_en"),
            help_zh: text("help_zh"),
            span: text("span"),
            widget: text("widget"),
            readonly: first(posted, "readonly").is_some(),
            visible: rule_of(posted, "visible"),
            readonly_when: rule_of(posted, "readonly_when"),
        })),
        "section" => FormEdit::Section {
            index: index("index")?,
            title_en: text("title_en"),
            title_zh: text("title_zh"),
            columns: text("columns").parse().unwrap_or(0),
            collapsed: first(posted, "collapsed").is_some(),
        },
        "section_up" | "section_down" => FormEdit::MoveSection {
            index: index("index")?,
            by: if text("op") == "section_up" { -1 } else { 1 },
        },
        "label" => FormEdit::Label {
            en: text("label_en"),
            zh: text("label_zh"),
        },
        _ => return Ok(None),
    }))
}

async fn edit_form(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, key)): Path<(String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/build/forms/{key}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    match apply(&services, &member, &key, &posted).await {
        Ok(to) => see_other(&to),
        Err(error @ (Error::Invalid { .. } | Error::Conflict { .. })) => {
            let status = crate::http::error::status_of(&error);
            let op = first(&posted, "op").unwrap_or_default();
            let draw_state = Draw {
                field: (op == "settings")
                    .then(|| first(&posted, "field").unwrap_or_default().to_owned()),
                problems: problems_of(&error, locale),
                json: (op == "json")
                    .then(|| first(&posted, "document").unwrap_or_default().to_owned()),
                as_role: None,
            };
            finish(
                draw(&services, &member, &key, &here, draw_state, status).await,
                locale,
            )
        }
        Err(error) => finish(Err(error), locale),
    }
}

async fn apply(services: &Services, member: &Member, key: &str, posted: &Pairs) -> Result<String> {
    member.check_csrf(first(posted, "csrf_token"))?;
    member.access.require(Right::Definitions)?;
    let revision = posted_revision(posted)?;
    let store = services.definitions();
    let scope = member.ctx.scope;
    let base = format!("/w/{}/build/forms/{key}", member.slug());
    let current = store.get(scope, Kind::Form, key).await?;
    check_revision(current.revision, revision, "form")?;
    let op = first(posted, "op").unwrap_or_default();
    match op {
        "publish" => {
            store
                .publish(scope, Kind::Form, key, revision, None, actor(member))
                .await?;
            return Ok(base);
        }
        "discard" => {
            store
                .discard_draft(scope, Kind::Form, key, revision, actor(member))
                .await?;
            return Ok(base);
        }
        "json" => {
            let text = first(posted, "document").unwrap_or_default();
            let document = json_document(text)?;
            store
                .save_draft(
                    scope,
                    Kind::Form,
                    key,
                    document,
                    Some(revision),
                    actor(member),
                )
                .await?;
            return Ok(format!("{base}#json"));
        }
        _ => {}
    }
    let edit = edit_of(posted)?.ok_or_else(|| {
        Error::invalid(
            "/op",
            "unknown_op",
            format!("the form builder does not know {op:?}"),
        )
    })?;
    let mut document = current.working().cloned().unwrap_or_else(|| json!({}));
    let entity = document
        .get("entity")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let entity_doc = store
        .get(scope, Kind::Entity, &entity)
        .await?
        .published
        .unwrap_or_else(|| json!({}));
    form_designer::apply(&mut document, &fields_of(&entity_doc), &edit)
        .map_err(|problems| Error::invalid_all("the change was not saved", problems))?;
    store
        .save_draft(
            scope,
            Kind::Form,
            key,
            document,
            Some(revision),
            actor(member),
        )
        .await?;
    Ok(match &edit {
        FormEdit::Place { field, .. } => format!("{base}?field={field}#placement"),
        FormEdit::Settings(placement) => format!("{base}?field={}#placement", placement.field),
        FormEdit::Move { field, .. } => format!("{base}#p-{field}"),
        _ => base,
    })
}
