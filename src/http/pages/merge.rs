//! The merge page of two duplicate records (撞单): both side by side, one choice per field that
//! differs, then the merge (the other record's references move to the one kept, and it goes to
//! the recycle bin).

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::member::{Member, frame, with};
use super::page;
use super::records::{Pairs, all_of, finish, first, names_for, problem_text, see_other, title_of};
use crate::access::FieldRule;
use crate::app::Services;
use crate::definitions::FieldKind;
use crate::error::{Error, Result};
use crate::records::merge::MergeRequest;
use crate::render::forms;

/// The merge page's routes.
pub(super) fn router() -> Router<Services> {
    Router::new().route(
        "/w/{workspace}/e/{entity}/{id}/merge/{other}",
        get(show).post(apply),
    )
}

async fn show(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id, other)): Path<(String, String, String, String)>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}/merge/{other}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    finish(
        draw(
            &services,
            &member,
            (&entity, &id, &other),
            &here,
            None,
            StatusCode::OK,
        )
        .await,
        locale,
    )
}

/// Draws the comparison of record `id` (kept) and `other` (merged into it).
async fn draw(
    services: &Services,
    member: &Member,
    (entity, id, other): (&str, &str, &str),
    here: &str,
    problem: Option<String>,
    status: StatusCode,
) -> Result<Response> {
    let locale = member.locale;
    let zone = member.ctx.time_zone;
    let shape = services.records().shape(&member.ctx, entity).await?;
    let model = shape.model.clone();
    let kept = services
        .records()
        .get(&member.ctx, entity, id, false)
        .await?;
    let merged = services
        .records()
        .get(&member.ctx, entity, other, false)
        .await?;
    let keys: Vec<String> = model.fields.iter().map(|f| f.key.clone()).collect();
    let names = names_for(
        services,
        member,
        &model,
        &[&kept.fields, &merged.fields],
        &keys,
        true,
    )
    .await?;
    let properties = model.document.get("properties");
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    let mut rows = Vec::new();
    for field in &model.fields {
        let rule = shape.rule(&field.key);
        if field.hidden
            || rule == FieldRule::Hidden
            || !field.is_writable()
            || matches!(field.kind, FieldKind::Attachment { .. })
        {
            continue;
        }
        let ours = kept.fields.get(&field.key);
        let theirs = merged.fields.get(&field.key);
        if ours == theirs || empty(theirs) {
            continue;
        }
        let choices = forms::options(properties.and_then(|p| p.get(&field.key)), locale);
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
        let editable = matches!(rule, FieldRule::Visible | FieldRule::Masked);
        rows.push(json!({
            "key": field.key,
            "label": locale.label(properties.and_then(|p| p.pointer(&format!("/{}/x-label", field.key))), &field.key),
            "ours": show(ours),
            "theirs": show(theirs),
            // An empty value is filled anyway; offering to keep it would only lose data.
            "fills": empty(ours) && editable,
            "editable": editable,
        }));
    }
    let base = format!("/w/{}/e/{entity}", member.slug());
    let snapshot = shape.snapshot.clone();
    let frame = frame(services, member, &snapshot, here).await?;
    let doc = &model.document;
    page(
        "record_merge.html",
        with(
            frame,
            json!({
                "base": base,
                "entity_label": locale.label(doc.get("x-label"), entity),
                "entity_plural": locale.label(doc.get("x-label-plural").or_else(|| doc.get("x-label")), entity),
                "kept": {"id": kept.id, "title": title_of(&model, &kept.fields, kept.id)},
                "merged": {"id": merged.id, "title": title_of(&model, &merged.fields, merged.id)},
                "rows": rows,
                "problem": problem,
            }),
        ),
        status,
    )
}

async fn apply(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id, other)): Path<(String, String, String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}/merge/{other}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let done = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let request = MergeRequest {
            duplicate: other.clone(),
            take: all_of(&posted, "take"),
            dry_run: false,
        };
        services
            .records()
            .merge(&member.ctx, &entity, &id, &request)
            .await
    }
    .await;
    match done {
        Ok(outcome) => see_other(&format!(
            "/w/{}/e/{entity}/{}",
            member.slug(),
            outcome.record.id
        )),
        Err(error @ (Error::Invalid { .. } | Error::Conflict { .. } | Error::Forbidden { .. })) => {
            let problem = problem_text(&error, locale);
            let status = crate::http::error::status_of(&error);
            finish(
                draw(
                    &services,
                    &member,
                    (&entity, &id, &other),
                    &here,
                    Some(problem),
                    status,
                )
                .await,
                locale,
            )
        }
        Err(error) => finish(Err(error), locale),
    }
}
