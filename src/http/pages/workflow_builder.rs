//! The workflow designer at `/w/{workspace}/build/workflows/{key}`: the flow drawn as cards
//! (trigger → condition → steps, with branches and where each step goes), an editor per card
//! (pick the trigger and its fields, approvers by role or relation with deadlines and reminders,
//! recipients and bilingual messages with a preview), enable and disable, publish, the document
//! as JSON, and the workflow's runs with retry. Every change is one of
//! `workflows::designer`'s, checked against the workspace and saved as the draft at the revision
//! the page was drawn at; a step that would not save is shown as typed, unsaved.

use axum::Router;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::builder::{
    actor, check_revision, json_answer, json_call_allowed, json_document, posted_revision,
    problems_of,
};
use super::member::{Member, frame, snapshot, with};
use super::page;
use super::records::{Pairs, finish, first, query_pairs, see_other};
use crate::access::Right;
use crate::app::Services;
use crate::definitions::{Kind, designer as entity_designer, form_designer};
use crate::error::{Error, FieldError, Result};
use crate::workflows::designer::{
    self, APPROVERS, CASE_SLOTS, DESIGNED_STEPS, LEVEL_SLOTS, MODES, ON_DEADLINE, Posted,
    RECIPIENTS, STEP_TYPES, TRIGGERS, UNITS, WorkflowEdit,
};

/// The workflow designer's routes.
pub(super) fn router() -> Router<Services> {
    Router::new()
        .route(
            "/w/{workspace}/build/workflows",
            axum::routing::post(create_workflow),
        )
        .route(
            "/w/{workspace}/build/workflows/{key}",
            axum::routing::get(designer_page).post(edit),
        )
        .route(
            "/w/{workspace}/build/workflows/{key}/preview",
            axum::routing::post(preview_message),
        )
}

/// The workflows of the workspace for the builder's home: key, label, entity, state.
pub(super) async fn listed(services: &Services, member: &Member) -> Result<Vec<Value>> {
    let locale = member.locale;
    Ok(services
        .definitions()
        .list(member.ctx.scope, Some(Kind::Workflow))
        .await?
        .into_iter()
        .map(|d| {
            let doc = d.draft.as_ref().or(d.published.as_ref());
            json!({
                "key": d.key,
                "label": locale.label(doc.and_then(|doc| doc.get("label")), &d.key),
                "entity": doc.and_then(|doc| doc.get("entity")).cloned(),
                "enabled": d.published.as_ref().is_some_and(|p| p.get("enabled") != Some(&json!(false))),
                "published_version": d.published_version,
                "draft": d.draft.is_some(),
            })
        })
        .collect())
}

async fn create_workflow(
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
        let key = first(&posted, "key").unwrap_or_default().trim().to_owned();
        let entity = first(&posted, "entity").unwrap_or_default();
        let store = services.definitions();
        let entity_doc = store
            .get(member.ctx.scope, Kind::Entity, entity)
            .await
            .ok()
            .and_then(|d| d.published)
            .ok_or_else(|| Error::invalid("/entity", "unknown_entity", "pick an entity"))?;
        if store
            .get(member.ctx.scope, Kind::Workflow, &key)
            .await
            .is_ok()
        {
            return Err(Error::conflict(
                "/key",
                "taken",
                format!("a workflow {key:?} exists already"),
            ));
        }
        let title = entity_doc
            .get("x-title")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| entity_designer::field_keys(&entity_doc).into_iter().next())
            .unwrap_or_else(|| "id".to_owned());
        let document = designer::new_workflow(
            first(&posted, "label_en").unwrap_or_default(),
            first(&posted, "label_zh").unwrap_or_default(),
            entity,
            &title,
        );
        store
            .save_draft(
                member.ctx.scope,
                Kind::Workflow,
                &key,
                document,
                None,
                actor(&member),
            )
            .await?;
        Ok(see_other(&format!(
            "/w/{}/build/workflows/{key}",
            member.slug()
        )))
    }
    .await;
    match done {
        Ok(response) => response,
        Err(error @ (Error::Invalid { .. } | Error::Conflict { .. })) => {
            let status = crate::http::error::status_of(&error);
            finish(
                super::builder::draw_home(
                    &services,
                    &member,
                    &here,
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

/// A change that was not saved, shown on the page as typed.
struct Unsaved {
    /// The document with the change, as the page draws it.
    document: Value,
    /// The step whose editor stays open (its index in `document`).
    open: Option<usize>,
    /// Whether that step is a new one (not in the saved document: the steps after it are one
    /// place further down there).
    new: bool,
}

/// The entity's fields for the editors: (key, kind) and their labels.
struct EntityFields {
    kinds: Vec<(String, String)>,
    views: Vec<Value>,
}

async fn entity_fields(services: &Services, member: &Member, entity: &str) -> EntityFields {
    let doc = services
        .definitions()
        .get(member.ctx.scope, Kind::Entity, entity)
        .await
        .ok()
        .and_then(|d| d.published);
    let Some(doc) = doc else {
        return EntityFields {
            kinds: Vec::new(),
            views: Vec::new(),
        };
    };
    let kinds = entity_designer::value_kinds(&doc);
    let views = kinds
        .iter()
        .map(|(key, kind)| {
            let property = doc.pointer(&format!("/properties/{key}"));
            let computed = property
                .and_then(|p| p.get("x-kind"))
                .and_then(Value::as_str)
                .is_some_and(|k| matches!(k, "formula" | "rollup" | "auto_number"));
            json!({
                "key": key,
                "kind": kind,
                "computed": computed,
                "label": member.locale.label(property.and_then(|p| p.get("x-label")), key),
                "options": property.and_then(|p| p.get("x-options")).cloned(),
            })
        })
        .collect();
    EntityFields { kinds, views }
}

async fn designer_page(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let here = format!("/w/{slug}/build/workflows/{key}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let query = query_pairs(raw.as_deref());
    finish(
        draw(
            &services,
            &member,
            &key,
            &query,
            None,
            Vec::new(),
            StatusCode::OK,
        )
        .await,
        locale,
    )
}

#[allow(clippy::too_many_lines)]
async fn draw(
    services: &Services,
    member: &Member,
    key: &str,
    query: &Pairs,
    unsaved: Option<Unsaved>,
    problems: Vec<Value>,
    status: StatusCode,
) -> Result<Response> {
    member.access.require(Right::Definitions)?;
    let locale = member.locale;
    let store = services.definitions();
    let scope = member.ctx.scope;
    let current = store.get(scope, Kind::Workflow, key).await?;
    let saved = current.working().cloned().unwrap_or_else(|| json!({}));
    let (document, open, new_at) = match unsaved {
        Some(Unsaved {
            document,
            open,
            new,
        }) => (document, open, open.filter(|_| new)),
        None => (saved, None, None),
    };
    let entity = document
        .get("entity")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let fields = entity_fields(services, member, &entity).await;
    let ids = designer::step_ids(&document);
    let step_label = |id: &str| -> String {
        document
            .get("steps")
            .and_then(Value::as_array)
            .and_then(|steps| {
                steps
                    .iter()
                    .find(|s| s.get("id").and_then(Value::as_str) == Some(id))
            })
            .map_or_else(
                || id.to_owned(),
                |s| locale.label(s.get("label"), id).to_owned(),
            )
    };
    let asked: Option<usize> = first(query, "edit").and_then(|e| e.parse().ok());
    // Runs waiting at each step (an approval, a wait), drawn on the flow.
    let mut waiting: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    if member.access.policy.may(Right::Workflows) {
        let filter = crate::store::workflows::RunFilter {
            workflow: Some(key.to_owned()),
            status: Some(crate::store::workflows::status::WAITING.to_owned()),
            ..Default::default()
        };
        let found = crate::workflows::service::list(
            &services.records(),
            &member.access,
            filter,
            Some(crate::workflows::service::MAX_PAGE),
        )
        .await?;
        for run in found {
            if let Some(cursor) = run.cursor {
                *waiting.entry(cursor).or_default() += 1;
            }
        }
    }
    let steps: Vec<Value> = document
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, step)| {
            let mut view = designer::step_view(step);
            let prefix = format!("/steps/{i}");
            let own: Vec<&Value> = problems
                .iter()
                .filter(|p| {
                    p.get("pointer")
                        .and_then(Value::as_str)
                        .is_some_and(|at| at == prefix || at.starts_with(&format!("{prefix}/")))
                })
                .collect();
            view["index"] = json!(i);
            // What the step's forms post: its place in the saved document, or "new".
            view["saved_index"] = match new_at {
                Some(at) if at == i => json!("new"),
                Some(at) if i > at => json!(i - 1),
                _ => json!(i),
            };
            view["waiting"] = json!(
                step.get("id")
                    .and_then(Value::as_str)
                    .and_then(|id| waiting.get(id))
                    .copied()
                    .unwrap_or(0)
            );
            view["problems"] = json!(own);
            view["open"] = json!(open == Some(i) || asked == Some(i) || !own.is_empty());
            view["title_text"] = json!(locale.label(step.get("label"), "").to_owned());
            view["follows"] = match designer::follows(&document, i) {
                Some(next) => json!({"id": next, "label": step_label(&next)}),
                None => Value::Null,
            };
            view
        })
        .collect();
    // A new step asked for by type, drawn with an empty editor (nothing is saved yet).
    let new_step = first(query, "new")
        .filter(|kind| DESIGNED_STEPS.contains(kind) || STEP_TYPES.contains(kind))
        .map(|kind| {
            let at: usize = first(query, "at")
                .and_then(|a| a.parse().ok())
                .unwrap_or(ids.len())
                .min(ids.len());
            let mut skeleton = json!({"id": designer::fresh_id(&document, kind), "type": kind});
            if kind == "approval" {
                skeleton["levels"] = json!([]);
            }
            let mut view = designer::step_view(&skeleton);
            view["at"] = json!(at);
            view["json"] = json!(serde_json::to_string_pretty(&skeleton).unwrap_or_default());
            view
        });
    let roles = crate::workspaces::roles(services.db(), services.access_cache(), &member.access)
        .await?
        .into_iter()
        .map(|r| json!({"key": r.key, "name": r.name}))
        .collect::<Vec<_>>();
    // Admins see the workspace's chat robots to post to; others keep what the step names.
    let robots: Vec<Value> = crate::robots::list(services.db(), &member.access)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| json!({"key": r.key, "kind": r.kind}))
        .collect();
    let robot_keys: Vec<Value> = robots.iter().map(|r| r["key"].clone()).collect();
    let entities: Vec<Value> = store
        .list(scope, Some(Kind::Entity))
        .await?
        .into_iter()
        .filter_map(|d| {
            let doc = d.published?;
            Some(json!({"key": d.key, "label": locale.label(doc.get("x-label"), &d.key)}))
        })
        .collect();
    let records: Vec<Value> = if entity.is_empty() {
        Vec::new()
    } else {
        match services
            .records()
            .list(&member.ctx, &entity, &json!({"limit": 20}))
            .await
        {
            Ok(found) => {
                let model = services.records().shape(&member.ctx, &entity).await?.model;
                found
                    .records
                    .iter()
                    .map(|r| json!({"id": r.id, "title": super::records::title_of(&model, &r.fields, r.id)}))
                    .collect()
            }
            Err(_) => Vec::new(),
        }
    };
    let runs: Option<Vec<Value>> = if member.access.policy.may(Right::Workflows) {
        let filter = crate::store::workflows::RunFilter {
            workflow: Some(key.to_owned()),
            ..Default::default()
        };
        let listed =
            crate::workflows::service::list(&services.records(), &member.access, filter, Some(20))
                .await?;
        Some(
            listed
                .into_iter()
                .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
                .collect(),
        )
    } else {
        None
    };
    let published_enabled = current
        .published
        .as_ref()
        .map(|p| p.get("enabled") != Some(&json!(false)));
    let trigger = document.get("trigger").cloned().unwrap_or(Value::Null);
    let snapshot = snapshot(services, member).await?;
    let here = format!("/w/{}/build/workflows/{key}", member.slug());
    let frame = frame(services, member, &snapshot, &here).await?;
    page(
        "builder_workflow.html",
        with(
            frame,
            json!({
                "section": "build",
                "key": key,
                "revision": current.revision,
                "published_version": current.published_version,
                "has_draft": current.draft.is_some(),
                "unsaved": open.is_some() || !problems.is_empty(),
                "live": published_enabled,
                "document": document,
                "label": locale.label(document.get("label"), key),
                "label_en": document.pointer("/label/en").cloned(),
                "label_zh": document.pointer("/label/zh-CN").cloned(),
                "enabled": document.get("enabled") != Some(&json!(false)),
                "entity": entity,
                "entities": entities,
                "fields": fields.views,
                "trigger": designer::trigger_view(&trigger),
                "condition": form_designer::parse_rule(document.get("condition").and_then(Value::as_str)),
                "condition_problems": problems.iter().filter(|p| p.get("pointer").and_then(Value::as_str).is_some_and(|at| at.starts_with("/condition"))).collect::<Vec<_>>(),
                "trigger_problems": problems.iter().filter(|p| p.get("pointer").and_then(Value::as_str).is_some_and(|at| at.starts_with("/trigger"))).collect::<Vec<_>>(),
                "steps": steps,
                "step_ids": ids,
                "new_step": new_step,
                "roles": roles,
                "robots": robots,
                "robot_keys": robot_keys,
                "records": records,
                "runs": runs,
                "triggers": TRIGGERS,
                "step_types": STEP_TYPES,
                "approvers": APPROVERS,
                "recipients": RECIPIENTS,
                "modes": MODES,
                "on_deadline": ON_DEADLINE,
                "units": UNITS,
                "rule_ops": form_designer::RULE_OPS,
                "level_slots": LEVEL_SLOTS,
                "case_slots": CASE_SLOTS,
                "json": serde_json::to_string_pretty(&document).unwrap_or_default(),
                "problems": problems,
            }),
        ),
        status,
    )
}

/// Problems of a save, with pointers relative to the workflow document.
fn located(error: &Error, locale: crate::render::i18n::Locale) -> Vec<Value> {
    problems_of(error, locale)
        .into_iter()
        .map(|mut p| {
            if let Some(at) = p.get("pointer").and_then(Value::as_str)
                && let Some(rest) = at.strip_prefix("/document")
            {
                p["pointer"] = json!(rest);
            }
            p
        })
        .collect()
}

async fn edit(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, key)): Path<(String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/build/workflows/{key}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    match apply(&services, &member, &key, &posted).await {
        Ok(to) => see_other(&to),
        Err((error, unsaved)) => match error {
            Error::Invalid { .. } | Error::Conflict { .. } | Error::NotFound(_) => {
                let status = crate::http::error::status_of(&error);
                // A stale page is redrawn with the other person's version.
                let unsaved = if matches!(error, Error::Conflict { .. }) {
                    None
                } else {
                    unsaved
                };
                finish(
                    draw(
                        &services,
                        &member,
                        &key,
                        &Vec::new(),
                        unsaved,
                        located(&error, locale),
                        status,
                    )
                    .await,
                    locale,
                )
            }
            other => finish(Err(other), locale),
        },
    }
}

/// The index posted as `index` (a step of the document).
fn posted_index(posted: &Pairs) -> Result<usize> {
    first(posted, "index")
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| Error::invalid("/index", "required", "which step? reload the page"))
}

/// Applies one designer form: where to go next, or the error with the unsaved document.
async fn apply(
    services: &Services,
    member: &Member,
    key: &str,
    posted: &Pairs,
) -> std::result::Result<String, (Error, Option<Unsaved>)> {
    let plain = |error: Error| (error, None);
    member
        .check_csrf(first(posted, "csrf_token"))
        .map_err(plain)?;
    member.access.require(Right::Definitions).map_err(plain)?;
    let revision = posted_revision(posted).map_err(plain)?;
    let store = services.definitions();
    let scope = member.ctx.scope;
    let base = format!("/w/{}/build/workflows/{key}", member.slug());
    let current = store.get(scope, Kind::Workflow, key).await.map_err(plain)?;
    check_revision(current.revision, revision, "workflow").map_err(plain)?;
    let mut document = current.working().cloned().unwrap_or_else(|| json!({}));
    let entity = document
        .get("entity")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let fields = entity_fields(services, member, &entity).await.kinds;
    let form = Posted(posted);
    let op = first(posted, "op").unwrap_or_default();
    let mut open = None;
    let mut new_step = false;
    let mut anchor = String::new();
    let edit: Option<WorkflowEdit> = match op {
        "settings" => Some(WorkflowEdit::Settings {
            label_en: form.text("label_en").to_owned(),
            label_zh: form.text("label_zh").to_owned(),
            description: form.text("description").to_owned(),
            entity: form.text("entity").to_owned(),
        }),
        "trigger" => {
            anchor = "#trigger".to_owned();
            Some(WorkflowEdit::Trigger(
                designer::trigger_of(&form, &fields, document.get("trigger")).map_err(
                    |problems| {
                        (
                            Error::invalid_all("the trigger was not saved", problems),
                            None,
                        )
                    },
                )?,
            ))
        }
        "condition" => {
            anchor = "#condition".to_owned();
            Some(WorkflowEdit::Condition(
                designer::condition_of(&form, "cond", &fields, "/condition").map_err(
                    |problem| {
                        (
                            Error::invalid_all("the condition was not saved", vec![problem]),
                            None,
                        )
                    },
                )?,
            ))
        }
        "step" | "step_json" => {
            let index = match form.text("index") {
                "new" => None,
                other => Some(other.parse::<usize>().map_err(|_| {
                    plain(Error::invalid(
                        "/index",
                        "required",
                        "which step? reload the page",
                    ))
                })?),
            };
            let at: usize = form.text("at").parse().unwrap_or(usize::MAX);
            let old = index.and_then(|i| document.pointer(&format!("/steps/{i}")).cloned());
            let position = index.unwrap_or_else(|| at.min(designer::step_ids(&document).len()));
            let (mut step, mut problems) = if op == "step_json" {
                match json_document(form.text("step_json")) {
                    Ok(step) if step.is_object() => (step, Vec::new()),
                    Ok(_) => {
                        return Err(plain(Error::invalid(
                            format!("/steps/{position}"),
                            "type",
                            "a step is a JSON object with an id and a type",
                        )));
                    }
                    Err(error) => return Err(plain(error)),
                }
            } else {
                let kind = form.text("step_type");
                designer::step_of(kind, &form, &fields, old.as_ref())
            };
            if step
                .get("id")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                let kind = step
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("step")
                    .to_owned();
                step["id"] = json!(designer::fresh_id(&document, &kind));
            }
            let mut candidate = document.clone();
            if let Err(more) = designer::apply(
                &mut candidate,
                WorkflowEdit::PutStep {
                    index,
                    at: position,
                    step: step.clone(),
                },
            ) {
                problems.extend(more.into_iter().map(|p| FieldError {
                    pointer: p.pointer.replacen(&format!("/steps/{position}"), "", 1),
                    ..p
                }));
                if let Some(steps) = candidate.get_mut("steps").and_then(Value::as_array_mut) {
                    match index {
                        Some(i) if i < steps.len() => steps[i] = step,
                        _ => steps.insert(position.min(steps.len()), step),
                    }
                }
            }
            open = Some(position);
            new_step = index.is_none();
            anchor = format!("#step-{position}");
            if !problems.is_empty() {
                let problems = problems
                    .into_iter()
                    .map(|p| FieldError {
                        pointer: format!("/steps/{position}{}", p.pointer),
                        ..p
                    })
                    .collect();
                return Err((
                    Error::invalid_all("the step was not saved", problems),
                    Some(Unsaved {
                        document: candidate,
                        open,
                        new: index.is_none(),
                    }),
                ));
            }
            document = candidate;
            None
        }
        "step_up" | "step_down" => {
            let index = posted_index(posted).map_err(plain)?;
            Some(WorkflowEdit::MoveStep {
                index,
                up: op == "step_up",
            })
        }
        "step_remove" => Some(WorkflowEdit::RemoveStep {
            index: posted_index(posted).map_err(plain)?,
        }),
        "enable" | "disable" => Some(WorkflowEdit::Enabled(op == "enable")),
        "json" => {
            document = json_document(form.text("document")).map_err(plain)?;
            anchor = "#json".to_owned();
            None
        }
        "publish" => {
            store
                .publish(scope, Kind::Workflow, key, revision, None, actor(member))
                .await
                .map_err(plain)?;
            return Ok(format!("{base}?published=1"));
        }
        "discard" => {
            store
                .discard_draft(scope, Kind::Workflow, key, revision, actor(member))
                .await
                .map_err(plain)?;
            return Ok(base);
        }
        other => {
            return Err(plain(Error::invalid(
                "/op",
                "unknown_op",
                format!("the workflow designer does not know {other:?}"),
            )));
        }
    };
    if let Some(edit) = edit {
        designer::apply(&mut document, edit).map_err(|problems| {
            (
                Error::invalid_all("the change was not saved", problems),
                None,
            )
        })?;
    }
    // Fields, entities and roles are checked now, not only at publish: the designer saves
    // nothing that could not go live. Turning a workflow off or on changes nothing it refers to
    // (and a workflow whose references went stale must still be switched off).
    let switching = matches!(op, "enable" | "disable");
    let references = if switching {
        Vec::new()
    } else {
        let snapshot = snapshot(services, member).await.map_err(plain)?;
        let lookup = |entity: &str| {
            snapshot
                .get(Kind::Entity, entity)
                .map(|p| (*p.document).clone())
        };
        let mut problems = crate::workflows::definition::check_references(&lookup, &document, "");
        let roles: Vec<String> =
            crate::workspaces::roles(services.db(), services.access_cache(), &member.access)
                .await
                .map_err(plain)?
                .into_iter()
                .map(|r| r.key)
                .collect();
        problems.extend(
            crate::workflows::definition::roles_named(&document)
                .into_iter()
                .filter(|(_, role)| !roles.contains(role))
                .map(|(pointer, role)| {
                    FieldError::new(
                        pointer,
                        "unknown_role",
                        format!("the workspace has no role {role:?}"),
                    )
                }),
        );
        problems
    };
    if !references.is_empty() {
        return Err((
            Error::invalid_all("the workflow was not saved", references),
            Some(Unsaved {
                document,
                open,
                new: new_step,
            }),
        ));
    }
    let saved = store
        .save_draft(
            scope,
            Kind::Workflow,
            key,
            document.clone(),
            Some(revision),
            actor(member),
        )
        .await;
    let saved = match saved {
        Ok(saved) => saved,
        Err(error @ Error::Invalid { .. }) => {
            return Err((
                error,
                Some(Unsaved {
                    document,
                    open,
                    new: new_step,
                }),
            ));
        }
        Err(error) => return Err(plain(error)),
    };
    // Turning a live workflow on or off takes effect at once when nothing else is pending.
    if matches!(op, "enable" | "disable") && current.draft.is_none() {
        store
            .publish(
                scope,
                Kind::Workflow,
                key,
                saved.revision,
                None,
                actor(member),
            )
            .await
            .map_err(plain)?;
    }
    Ok(format!("{base}{anchor}"))
}

/// What the message preview sends: the texts typed and the record to render them with.
#[derive(Debug, serde::Deserialize)]
struct PreviewRequest {
    #[serde(default)]
    texts: serde_json::Map<String, Value>,
    #[serde(default)]
    record_id: Option<String>,
}

/// Renders the typed message texts with a record of the workflow's entity: `{rendered}` by
/// name, or `{problems}` with line and column. Nothing is saved or sent.
async fn preview_message(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, key)): Path<(String, String)>,
    axum::Json(body): axum::Json<PreviewRequest>,
) -> Response {
    let here = format!("/w/{slug}/build/workflows/{key}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let done = async {
        json_call_allowed(&member, &headers)?;
        let current = services
            .definitions()
            .get(member.ctx.scope, Kind::Workflow, &key)
            .await?;
        let document = current.working().cloned().unwrap_or_else(|| json!({}));
        let entity = document
            .get("entity")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let record = match body.record_id.as_deref().filter(|r| !r.is_empty()) {
            Some(id) if !entity.is_empty() => {
                let view = services
                    .records()
                    .get(&member.ctx, entity, id, false)
                    .await?;
                let mut fields = view.fields.clone();
                fields.insert("id".to_owned(), json!(view.id));
                fields.insert("owner".to_owned(), json!(view.owner));
                fields.insert("created_at".to_owned(), json!(view.created_at));
                fields.insert("updated_at".to_owned(), json!(view.updated_at));
                Value::Object(fields)
            }
            _ => json!({}),
        };
        let now = services.clock().now();
        let context = designer::preview_context(
            record,
            &key,
            locale.label(document.get("label"), &key),
            now,
            now.with_timezone(&member.ctx.time_zone).date_naive(),
        );
        let mut rendered = serde_json::Map::new();
        let mut problems = Vec::new();
        for (name, text) in &body.texts {
            let Some(text) = text.as_str().filter(|t| !t.trim().is_empty()) else {
                continue;
            };
            match crate::render::sandbox::render(text, &context, &format!("/{name}")) {
                Ok(out) => {
                    rendered.insert(name.clone(), json!(out));
                }
                Err(error) => problems.extend(problems_of(&error, locale)),
            }
        }
        Ok::<_, Error>(json!({"rendered": rendered, "problems": problems}))
    }
    .await;
    json_answer(done, locale)
}
