//! The no-code builders' pages, starting with the entity designer at
//! `/w/{workspace}/build/entities/{key}`: fields listed in order (drag or move them), a field
//! editor for every kind with its options, hide and restore, the entity's labels and title,
//! "required when" rules, the draft's changes against the published version, the dry run of a
//! kind change, publish, discard, roll back, and the document as JSON. Every edit is one of
//! `definitions::designer`'s, saved as a draft with the revision the page was drawn at, so two
//! people editing the same entity get a conflict rather than losing a change.

use axum::Router;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::member::{Member, frame, snapshot, with};
use super::page;
use super::records::{Pairs, all_of, finish, first, problem_text, query_pairs, see_other};
use crate::access::Right;
use crate::app::Services;
use crate::definitions::designer::{self, DESIGNER_KINDS, Edit, FieldSpec, OptionSpec};
use crate::definitions::{DefinitionView, Kind};
use crate::domain::Actor;
use crate::error::{Error, FieldError, Result};
use crate::render::i18n::Locale;

/// The builders' routes.
pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/build", get(home).post(create_entity))
        .route(
            "/w/{workspace}/build/entities/{key}",
            get(designer_page).post(edit),
        )
        .route(
            "/w/{workspace}/build/entities/{key}/check-formula",
            axum::routing::post(check_formula),
        )
}

/// The person acting on a builder page.
pub(super) fn actor(member: &Member) -> Actor {
    Actor::Account {
        id: member.access.account_id,
    }
}

fn label_of(value: Option<&Value>, locale: Locale, fallback: &str) -> String {
    locale.label(value, fallback).to_owned()
}

/// The builder's home: the workspace's entities with their state, and a new entity.
async fn home(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    let here = format!("/w/{slug}/build");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    finish(
        draw_home(&services, &member, &here, Vec::new(), StatusCode::OK).await,
        locale,
    )
}

/// The builder's home, with the problems of a refused creation.
pub(super) async fn draw_home(
    services: &Services,
    member: &Member,
    here: &str,
    problems: Vec<Value>,
    status: StatusCode,
) -> Result<Response> {
    member.access.require(Right::Definitions)?;
    let locale = member.locale;
    let entities: Vec<Value> = services
        .definitions()
        .list(member.ctx.scope, Some(Kind::Entity))
        .await?
        .into_iter()
        .map(|d| {
            let doc = d.draft.as_ref().or(d.published.as_ref());
            json!({
                "key": d.key,
                "label": label_of(doc.and_then(|doc| doc.get("x-label")), locale, &d.key),
                "fields": doc.map_or(0, |doc| designer::field_keys(doc).len()),
                "published_version": d.published_version,
                "draft": d.draft.is_some(),
            })
        })
        .collect();
    let reports: Vec<Value> = services
        .definitions()
        .list(member.ctx.scope, Some(Kind::Report))
        .await?
        .into_iter()
        .map(|d| {
            let doc = d.draft.as_ref().or(d.published.as_ref());
            json!({"key": d.key, "label": label_of(doc.and_then(|doc| doc.get("label")), locale, &d.key)})
        })
        .collect();
    let workflows = super::workflow_builder::listed(services, member).await?;
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, here).await?;
    page(
        "builder_home.html",
        with(
            frame,
            json!({"section": "build", "entities": entities, "reports": reports, "workflows": workflows, "problems": problems}),
        ),
        status,
    )
}

async fn create_entity(
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
        let label_en = first(&posted, "label_en").unwrap_or_default();
        let label_zh = first(&posted, "label_zh").unwrap_or_default();
        if label_en.trim().is_empty() && label_zh.trim().is_empty() {
            return Err(Error::invalid(
                "/label_en",
                "required",
                "give the entity a name",
            ));
        }
        let store = services.definitions();
        if store
            .get(member.ctx.scope, Kind::Entity, &key)
            .await
            .is_ok()
        {
            return Err(Error::conflict(
                "/key",
                "taken",
                format!("an entity {key:?} exists already"),
            ));
        }
        store
            .save_draft(
                member.ctx.scope,
                Kind::Entity,
                &key,
                designer::new_entity(label_en, label_zh),
                None,
                actor(&member),
            )
            .await?;
        Ok(see_other(&format!(
            "/w/{}/build/entities/{key}",
            member.slug()
        )))
    }
    .await;
    match done {
        Ok(response) => response,
        Err(error @ (Error::Invalid { .. } | Error::Conflict { .. })) => {
            let status = crate::http::error::status_of(&error);
            finish(
                draw_home(
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

/// An error's located problems for a page: `{pointer, message}`.
pub(super) fn problems_of(error: &Error, locale: Locale) -> Vec<Value> {
    let located = error.field_errors();
    if located.is_empty() {
        return vec![json!({"pointer": "", "message": problem_text(error, locale)})];
    }
    located
        .iter()
        .map(|e| json!({"pointer": e.pointer, "message": e.message, "line": e.line, "column": e.column}))
        .collect()
}

async fn designer_page(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, key)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let here = format!("/w/{slug}/build/entities/{key}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let pairs = query_pairs(raw.as_deref());
    let editing = first(&pairs, "field").map(str::to_owned);
    let adding = first(&pairs, "add").is_some();
    finish(
        draw_designer(
            &services,
            &member,
            &key,
            &here,
            Draw {
                editing,
                adding,
                ..Draw::default()
            },
            StatusCode::OK,
        )
        .await,
        locale,
    )
}

/// What the designer page shows besides the entity.
#[derive(Default)]
struct Draw {
    /// The field being edited.
    editing: Option<String>,
    /// Whether the add-field form is open.
    adding: bool,
    /// A field spec as posted (kept when it was refused).
    posted: Option<FieldSpec>,
    /// Problems of the last edit.
    problems: Vec<Value>,
    /// A notice of what the last action did.
    notice: Option<String>,
    /// JSON as posted (kept when it was refused).
    json: Option<String>,
}

fn spec_view(spec: &FieldSpec) -> Value {
    let mut view = serde_json::to_value(spec).unwrap_or(Value::Null);
    // Three empty rows to add options without a script.
    let mut options: Vec<Value> = spec
        .options
        .iter()
        .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
        .collect();
    for _ in 0..3 {
        options.push(serde_json::to_value(OptionSpec::default()).unwrap_or(Value::Null));
    }
    view["options"] = Value::Array(options);
    view
}

async fn draw_designer(
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
    let definition: DefinitionView = store.get(member.ctx.scope, Kind::Entity, key).await?;
    let working = definition.working().cloned().unwrap_or_else(|| json!({}));
    let required_when = designer::conditional_requirements(&working);
    let fields: Vec<Value> = designer::field_keys(&working)
        .iter()
        .filter_map(|k| designer::field_spec(&working, k))
        .map(|spec| {
            let property = working.pointer(&format!("/properties/{}", spec.key));
            let condition = required_when
                .iter()
                .find(|(field, _, _)| *field == spec.key)
                .map(|(_, when, equals)| format!("{when} = {equals}"));
            json!({
                "key": spec.key,
                "label": label_of(property.and_then(|p| p.get("x-label")), locale, &spec.key),
                "kind": spec.kind,
                "required": spec.required,
                "required_when": condition,
                "unique": spec.unique,
                "indexed": spec.indexed,
                "hidden": spec.hidden,
                "title": working.get("x-title-field").and_then(Value::as_str) == Some(spec.key.as_str()),
            })
        })
        .collect();
    let editing = match (&draw.posted, &draw.editing) {
        (Some(spec), _) => Some(spec_view(spec)),
        (None, Some(field)) => designer::field_spec(&working, field).map(|s| spec_view(&s)),
        (None, None) if draw.adding => Some(spec_view(&FieldSpec {
            kind: "text".to_owned(),
            ..FieldSpec::default()
        })),
        _ => None,
    };
    let is_new_field = editing.as_ref().is_some_and(|e| {
        e["key"]
            .as_str()
            .is_none_or(|k| working.pointer(&format!("/properties/{k}")).is_none())
    });
    let entities: Vec<Value> = store
        .list(member.ctx.scope, Some(Kind::Entity))
        .await?
        .into_iter()
        .filter(|d| d.published.is_some())
        .map(|d| {
            json!({"key": d.key, "label": label_of(d.published.as_ref().and_then(|p| p.get("x-label")), locale, &d.key)})
        })
        .collect();
    let changes = match (&definition.published, &definition.draft) {
        (Some(published), Some(draft)) => designer::diff(published, draft),
        (None, Some(draft)) => designer::diff(&json!({}), draft),
        _ => Vec::new(),
    };
    // The dry run of a draft changing kinds: what would not convert.
    // Scanning every record is for drafts that change what stored values must satisfy.
    let affects_records = matches!(
        (&definition.published, &definition.draft),
        (Some(published), Some(draft)) if designer::affects_records(published, draft)
    );
    let impact = if affects_records {
        match services.records().impact(&member.ctx, key).await {
            Ok(impact) => serde_json::to_value(&impact).unwrap_or(Value::Null),
            Err(error) => json!({"error": problem_text(&error, locale)}),
        }
    } else {
        Value::Null
    };
    let versions = store.versions(member.ctx.scope, Kind::Entity, key).await?;
    let forms: Vec<Value> = store
        .list(member.ctx.scope, Some(Kind::Form))
        .await?
        .into_iter()
        .filter_map(|d| {
            let doc = d.draft.as_ref().or(d.published.as_ref())?;
            (doc.get("entity").and_then(Value::as_str) == Some(key)).then(|| {
                json!({"key": d.key, "label": label_of(doc.get("label"), locale, &d.key), "draft": d.draft.is_some()})
            })
        })
        .collect();
    let entity_spec = json!({
        "label_en": working.pointer("/x-label/en"),
        "label_zh": working.pointer("/x-label/zh-CN"),
        "plural_en": working.pointer("/x-label-plural/en"),
        "plural_zh": working.pointer("/x-label-plural/zh-CN"),
        "title_field": working.get("x-title-field"),
    });
    // Records to try a formula on, and the recompute after a publish.
    let sample_records: Vec<Value> = if definition.published.is_some() {
        match services
            .records()
            .list(&member.ctx, key, &json!({"limit": 20}))
            .await
        {
            Ok(page) => {
                let model = services.records().shape(&member.ctx, key).await?.model;
                page.records
                    .iter()
                    .map(|r| json!({"id": r.id, "title": super::records::title_of(&model, &r.fields, r.id)}))
                    .collect()
            }
            Err(_) => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let recompute = crate::jobs::list(services.db(), member.access.workspace.id, None, Some(500))
        .await?
        .into_iter()
        .find(|job| {
            job.kind == crate::records::recompute::RECOMPUTE_JOB
                && job.payload.get("entity").and_then(Value::as_str) == Some(key)
        })
        .map(|job| {
            json!({
                "status": job.status,
                "done": job.progress_done,
                "total": job.progress_total,
                "running": matches!(job.status.as_str(), "queued" | "running"),
            })
        });
    let json_text = draw
        .json
        .clone()
        .unwrap_or_else(|| serde_json::to_string_pretty(&working).unwrap_or_default());
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, here).await?;
    page(
        "builder_entity.html",
        with(
            frame,
            json!({
                "section": "build",
                "key": key,
                "label": label_of(working.get("x-label"), locale, key),
                "revision": definition.revision,
                "published_version": definition.published_version,
                "latest_version": definition.latest_version,
                "has_draft": definition.draft.is_some(),
                "fields": fields,
                "editing": editing,
                "is_new_field": is_new_field,
                "kinds": DESIGNER_KINDS,
                "entities": entities,
                "entity_spec": entity_spec,
                "required_when": required_when.iter().map(|(f, w, e)| json!({"field": f, "when": w, "equals": e})).collect::<Vec<_>>(),
                "changes": changes,
                "impact": impact,
                "versions": versions,
                "forms": forms,
                "result_kinds": designer::RESULT_KINDS,
                "functions": crate::script::library::REFERENCE,
                "sample_records": sample_records,
                "recompute": recompute,
                "json": json_text,
                "problems": draw.problems,
                "notice": draw.notice,
            }),
        ),
        status,
    )
}

/// The field spec a field editor posted.
fn posted_spec(posted: &Pairs) -> FieldSpec {
    let text = |name: &str| first(posted, name).unwrap_or_default().to_owned();
    let on = |name: &str| first(posted, name).is_some();
    let values = all_of(posted, "option_value");
    let en = all_of(posted, "option_en");
    let zh = all_of(posted, "option_zh");
    let colors = all_of(posted, "option_color");
    let options = values
        .iter()
        .enumerate()
        .map(|(i, value)| OptionSpec {
            value: value.clone(),
            label_en: en.get(i).cloned().unwrap_or_default(),
            label_zh: zh.get(i).cloned().unwrap_or_default(),
            color: colors.get(i).cloned().unwrap_or_default(),
        })
        .collect();
    FieldSpec {
        key: text("field_key"),
        kind: text("kind"),
        label_en: text("label_en"),
        label_zh: text("label_zh"),
        help_en: text("help_en"),
        help_zh: text("help_zh"),
        required: on("required"),
        unique: on("unique"),
        indexed: on("indexed"),
        hidden: on("hidden"),
        search: match text("search").as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        options,
        reference: text("reference"),
        on_delete: text("on_delete"),
        currency: if text("kind") == "formula" {
            text("result_currency")
        } else {
            text("currency")
        },
        minimum: text("minimum"),
        maximum: text("maximum"),
        min_length: text("min_length"),
        max_length: text("max_length"),
        pattern: text("pattern"),
        default: text("default"),
        number_pattern: text("number_pattern"),
        formula: text("formula"),
        result: text("result"),
        locked_kind: false,
    }
}

/// What a designer form asks for.
enum Action {
    /// An edit of the document, saved as the draft.
    Edit(Box<Edit>),
    /// The document as JSON, saved as the draft.
    Json(String),
    /// Publish the draft.
    Publish,
    /// Throw the draft away.
    Discard,
    /// Publish an older version again.
    Rollback(i32),
}

impl Action {
    fn edit(edit: Edit) -> Self {
        Self::Edit(Box::new(edit))
    }
}

fn action_of(posted: &Pairs) -> Result<Action> {
    let text = |name: &str| first(posted, name).unwrap_or_default().to_owned();
    Ok(match first(posted, "op").unwrap_or_default() {
        "add_field" => Action::edit(Edit::AddField(posted_spec(posted))),
        "update_field" => Action::edit(Edit::UpdateField(posted_spec(posted))),
        "move_up" | "move_down" => Action::edit(Edit::MoveField {
            key: text("field_key"),
            by: if first(posted, "op") == Some("move_up") {
                -1
            } else {
                1
            },
        }),
        "reorder" => Action::edit(Edit::Reorder(
            text("order")
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
        "hide" | "restore" => Action::edit(Edit::SetHidden {
            key: text("field_key"),
            hidden: first(posted, "op") == Some("hide"),
        }),
        "entity" => Action::edit(Edit::Entity {
            label_en: text("label_en"),
            label_zh: text("label_zh"),
            plural_en: text("plural_en"),
            plural_zh: text("plural_zh"),
            title_field: text("title_field"),
        }),
        "require_when" => Action::edit(Edit::RequireWhen {
            field: text("rule_field"),
            when: text("rule_when"),
            equals: text("rule_equals"),
        }),
        "json" => Action::Json(text("document")),
        "publish" => Action::Publish,
        "discard" => Action::Discard,
        "rollback" => Action::Rollback(text("version").parse().map_err(|_| {
            Error::invalid("/version", "version", "pick a version to roll back to")
        })?),
        other => {
            return Err(Error::invalid(
                "/op",
                "unknown_op",
                format!("the designer does not know {other:?}"),
            ));
        }
    })
}

async fn edit(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, key)): Path<(String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/build/entities/{key}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let done = apply(&services, &member, &key, &posted).await;
    match done {
        Ok(to) => see_other(&to),
        Err(error @ (Error::Invalid { .. } | Error::Conflict { .. } | Error::NotFound(_))) => {
            let status = crate::http::error::status_of(&error);
            let problems = problems_of(&error, locale);
            let op = first(&posted, "op").unwrap_or_default();
            let draw = Draw {
                editing: first(&posted, "field_key").map(str::to_owned),
                adding: op == "add_field",
                posted: matches!(op, "add_field" | "update_field").then(|| posted_spec(&posted)),
                problems,
                notice: None,
                json: (op == "json")
                    .then(|| first(&posted, "document").unwrap_or_default().to_owned()),
            };
            finish(
                draw_designer(&services, &member, &key, &here, draw, status).await,
                locale,
            )
        }
        Err(error) => finish(Err(error), locale),
    }
}

/// Applies one designer form; answers where to go next.
async fn apply(services: &Services, member: &Member, key: &str, posted: &Pairs) -> Result<String> {
    member.check_csrf(first(posted, "csrf_token"))?;
    member.access.require(Right::Definitions)?;
    let revision = posted_revision(posted)?;
    let store = services.definitions();
    let scope = member.ctx.scope;
    let base = format!("/w/{}/build/entities/{key}", member.slug());
    let current = store.get(scope, Kind::Entity, key).await?;
    check_revision(current.revision, revision, "entity")?;
    match action_of(posted)? {
        Action::Edit(edit) => {
            let mut document = current.working().cloned().unwrap_or_else(|| json!({}));
            designer::apply(&mut document, &edit)
                .map_err(|problems| Error::invalid_all("the change was not saved", problems))?;
            store
                .save_draft(
                    scope,
                    Kind::Entity,
                    key,
                    document,
                    Some(revision),
                    actor(member),
                )
                .await?;
            let focus = match &*edit {
                Edit::AddField(spec) | Edit::UpdateField(spec) => {
                    format!("?field={}#field-editor", spec.key.trim())
                }
                Edit::MoveField { key, .. } | Edit::SetHidden { key, .. } => {
                    format!("#f-{key}")
                }
                _ => String::new(),
            };
            Ok(format!("{base}{focus}"))
        }
        Action::Json(text) => {
            let document = json_document(&text)?;
            store
                .save_draft(
                    scope,
                    Kind::Entity,
                    key,
                    document,
                    Some(revision),
                    actor(member),
                )
                .await?;
            Ok(format!("{base}#json"))
        }
        Action::Publish => {
            store
                .publish(scope, Kind::Entity, key, revision, None, actor(member))
                .await?;
            Ok(format!("{base}?published=1"))
        }
        Action::Discard => {
            store
                .discard_draft(scope, Kind::Entity, key, revision, actor(member))
                .await?;
            Ok(base)
        }
        Action::Rollback(version) => {
            store
                .publish(
                    scope,
                    Kind::Entity,
                    key,
                    revision,
                    Some(version),
                    actor(member),
                )
                .await?;
            Ok(format!("{base}?published=1"))
        }
    }
}

/// What the formula editor sends while someone types.
#[derive(Debug, serde::Deserialize)]
struct FormulaCheck {
    field: String,
    formula: String,
    #[serde(default)]
    result: String,
    #[serde(default)]
    record_id: Option<String>,
}

/// Checks a formula as the designer would save it (syntax, fields, form, cycles: the entity's
/// own checks, with line and column) and, when it passes, runs it on a record: `{problems}` or
/// `{value}`. Nothing is saved.
async fn check_formula(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, key)): Path<(String, String)>,
    axum::Json(body): axum::Json<FormulaCheck>,
) -> Response {
    let here = format!("/w/{slug}/build/entities/{key}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let done = async {
        json_call_allowed(&member, &headers)?;
        let current = services
            .definitions()
            .get(member.ctx.scope, Kind::Entity, &key)
            .await?;
        let mut document = current.working().cloned().unwrap_or_else(|| json!({}));
        let field = body.field.trim();
        let mut spec = designer::field_spec(&document, field).unwrap_or_else(|| FieldSpec {
            key: if field.is_empty() {
                "new_formula".to_owned()
            } else {
                field.to_owned()
            },
            label_en: "Formula".to_owned(),
            ..FieldSpec::default()
        });
        spec.kind = "formula".to_owned();
        spec.formula = body.formula.clone();
        spec.result = body.result.clone();
        let edit = if document
            .pointer(&format!("/properties/{}", spec.key))
            .is_some()
        {
            Edit::UpdateField(spec.clone())
        } else {
            Edit::AddField(spec.clone())
        };
        if let Err(problems) = designer::apply(&mut document, &edit) {
            return Ok(json!({"problems": problems}));
        }
        let prefix = format!("/properties/{}", spec.key);
        let problems: Vec<FieldError> =
            crate::definitions::check_document(Kind::Entity, &document, "")
                .into_iter()
                .filter(|p| p.pointer.starts_with(&prefix) || p.pointer.is_empty())
                .collect();
        if !problems.is_empty() {
            return Ok(json!({"problems": problems}));
        }
        let value = services
            .records()
            .test_script(
                &member.ctx,
                services.scripts(),
                &key,
                &body.formula,
                body.record_id.as_deref().filter(|r| !r.is_empty()),
                None,
            )
            .await;
        Ok::<_, Error>(match value {
            Ok(outcome) => json!({"value": outcome}),
            Err(error) => json!({"problems": problems_of(&error, locale)}),
        })
    }
    .await;
    json_answer(done, locale)
}

/// Refuses a builder's JSON call (sent by its page's script) without the session's CSRF token
/// in the header or without the definitions right.
pub(super) fn json_call_allowed(member: &Member, headers: &HeaderMap) -> Result<()> {
    let sent = headers
        .get(crate::http::extract::CSRF_HEADER)
        .and_then(|v| v.to_str().ok());
    member.check_csrf(sent)?;
    member.access.require(Right::Definitions)
}

/// A builder's JSON answer: the value, or `{problems}` with the error's status.
pub(super) fn json_answer(done: Result<Value>, locale: Locale) -> Response {
    use axum::response::IntoResponse;
    match done {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(error) => (
            crate::http::error::status_of(&error),
            axum::Json(json!({"problems": problems_of(&error, locale)})),
        )
            .into_response(),
    }
}

/// The revision a builder page was drawn at, as its form posted it.
pub(super) fn posted_revision(posted: &Pairs) -> Result<i64> {
    first(posted, "revision")
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| {
            Error::invalid(
                "/revision",
                "required",
                "the page's revision is missing; reload it",
            )
        })
}

/// Refuses a change made on a page drawn before someone else's change to the same `what`.
pub(super) fn check_revision(current: i64, posted: i64, what: &str) -> Result<()> {
    if current == posted {
        return Ok(());
    }
    Err(Error::conflict(
        "/revision",
        "stale_revision",
        format!(
            "someone changed this {what} since you opened the page; your change was not saved. The page now shows their version: apply your change again."
        ),
    ))
}

/// A document typed in a builder's JSON panel (a syntax error located by line and column).
pub(super) fn json_document(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::Invalid {
        detail: "the JSON is not valid".to_owned(),
        errors: vec![FieldError {
            line: u32::try_from(e.line()).ok(),
            column: u32::try_from(e.column()).ok(),
            ..FieldError::new("/document", "json", e.to_string())
        }],
    })
}
