//! Email from a record's page: the composer (written from one of the entity's email templates,
//! changed at will, sent through the outbox) and the refusal that redraws it with the text kept.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::member::{Member, frame, snapshot, with};
use super::page;
use super::records::{Pairs, finish, first, problem_text, see_other};
use crate::app::Services;
use crate::emails::{Compose, Draft};
use crate::error::{Error, Result};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .route(
            "/w/{workspace}/e/{entity}/{id}/email",
            get(compose).post(send),
        )
        .route("/w/{workspace}/mail", get(mail))
        .route("/w/{workspace}/mail/rotate", post(rotate))
        .route("/w/{workspace}/mail/{email}/file", post(file))
}

#[derive(Debug, Deserialize)]
struct ComposeQuery {
    template: Option<String>,
}

/// Addresses as typed in one box: separated by commas, semicolons or line breaks outside
/// quotes (`"Wang, Wei" <wang@example.com>` is one).
fn split_addresses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' | ';' | '\n' if !quoted => found.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    found.push(current);
    found
        .into_iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect()
}

async fn draw(
    services: &Services,
    member: &Member,
    entity: &str,
    id: &str,
    draft: Value,
    error: Option<String>,
) -> Result<Response> {
    let here = format!("/w/{}/e/{entity}/{id}/email", member.slug());
    let record = services
        .records()
        .get(&member.ctx, entity, id, false)
        .await?;
    let shape = services.records().shape(&member.ctx, entity).await?;
    let model = shape.model.clone();
    let doc = &model.document;
    let templates = services
        .emails()
        .templates(&member.ctx, entity, member.locale)
        .await?;
    let inbound = services.emails().inbound_address(&member.access).await?;
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, &here).await?;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page(
        "email_compose.html",
        with(
            frame,
            json!({
                "entity": entity,
                "entity_plural": member.locale.label(doc.get("x-label-plural").or_else(|| doc.get("x-label")), entity),
                "base": format!("/w/{}/e/{entity}", member.slug()),
                "record": {"id": record.id, "title": crate::records::title_of(&model, &record.fields, record.id)},
                "templates": templates,
                "draft": draft,
                "error": error,
                "mail_enabled": services.mail_enabled(),
                "inbound": inbound.address,
                "bcc": inbound.bcc_address,
            }),
        ),
        status,
    )
}

/// An email to the record's people with no template (its addresses only).
async fn plain_draft(
    services: &Services,
    member: &Member,
    entity: &str,
    id: &str,
) -> Result<Draft> {
    services
        .emails()
        .draft(&member.ctx, &member.access, entity, id, None, member.locale)
        .await
}

fn draft_value(draft: &Draft) -> Value {
    json!({
        "template": draft.template,
        "to": draft.to.join(", "),
        "cc": "",
        "subject": draft.subject,
        "body": draft.body,
        "suggestions": draft.suggestions,
    })
}

async fn compose(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id)): Path<(String, String, String)>,
    Query(query): Query<ComposeQuery>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}/email");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let template = query.template.filter(|t| !t.is_empty());
    let result = async {
        let emails = services.emails();
        let (draft, error) = match emails
            .draft(
                &member.ctx,
                &member.access,
                &entity,
                &id,
                template.as_deref(),
                member.locale,
            )
            .await
        {
            Ok(draft) => (draft_value(&draft), None),
            // A template that fails shows why, over an empty email.
            Err(error @ Error::Invalid { .. }) => {
                let plain = plain_draft(&services, &member, &entity, &id).await?;
                let mut value = draft_value(&plain);
                value["template"] = json!(template);
                (value, Some(problem_text(&error, member.locale)))
            }
            Err(other) => return Err(other),
        };
        draw(&services, &member, &entity, &id, draft, error).await
    }
    .await;
    finish(result, member.locale)
}

async fn send(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, entity, id)): Path<(String, String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/e/{entity}/{id}/email");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let text = |name: &str| first(&posted, name).unwrap_or_default().to_owned();
    let compose = Compose {
        template: Some(text("template")).filter(|t| !t.is_empty()),
        to: split_addresses(&text("to")),
        cc: split_addresses(&text("cc")),
        subject: Some(text("subject")),
        body: Some(text("body")),
    };
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let sent = services
            .emails()
            .send(
                &member.ctx,
                &member.access,
                &entity,
                &id,
                compose,
                member.locale,
            )
            .await?;
        Ok(see_other(&format!(
            "/w/{slug}/e/{entity}/{id}#email-{}",
            sent.id
        )))
    }
    .await;
    match result {
        Ok(response) => response,
        Err(error @ (Error::Invalid { .. } | Error::Conflict { .. })) => {
            let suggestions = plain_draft(&services, &member, &entity, &id)
                .await
                .map(|d| d.suggestions)
                .unwrap_or_default();
            let draft = json!({
                "template": text("template"),
                "to": text("to"),
                "cc": text("cc"),
                "subject": text("subject"),
                "body": text("body"),
                "suggestions": suggestions,
            });
            let message = problem_text(&error, member.locale);
            let drawn = draw(&services, &member, &entity, &id, draft, Some(message)).await;
            finish(drawn, member.locale)
        }
        Err(error) => finish(Err(error), member.locale),
    }
}

/// Unfiled emails offered records without being searched for.
const AUTO_SUGGESTED: usize = 10;

#[derive(Debug, Deserialize)]
struct MailQuery {
    /// The unfiled email a search is for.
    email: Option<String>,
    /// What to search for it.
    q: Option<String>,
    /// Set after an email was filed.
    filed: Option<String>,
}

/// Records a search offers to file an email on (`q`), with their entity's label.
async fn candidates(services: &Services, member: &Member, q: &str) -> Vec<Value> {
    let request = crate::records::search::SearchRequest {
        q: q.to_owned(),
        entity: None,
        limit: Some(5),
    };
    let Ok(found) = services.records().search(&member.ctx, &request).await else {
        return Vec::new();
    };
    found
        .results
        .into_iter()
        .flat_map(|group| {
            let label = member
                .locale
                .label(Some(&group.label), &group.entity)
                .to_owned();
            group.records.into_iter().map(move |hit| {
                json!({"entity": group.entity, "label": label, "id": hit.id, "title": hit.title})
            })
        })
        .take(10)
        .collect()
}

/// The workspace's mail (admins): its inbound address (rotate it) and the received mail no
/// record matched, each with records to file it on (found from its sender, or searched).
async fn mail(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Query(query): Query<MailQuery>,
) -> Response {
    let here = format!("/w/{slug}/mail");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        let emails = services.emails();
        let unfiled = emails.unfiled(&member.access).await?;
        let address = emails.inbound_address(&member.access).await?;
        let mut items = Vec::new();
        for (i, email) in unfiled.into_iter().enumerate() {
            let searched = query
                .email
                .as_deref()
                .is_some_and(|e| e == email.id.to_string());
            let q = match (&query.q, searched) {
                (Some(q), true) if !q.trim().is_empty() => q.trim().to_owned(),
                _ if !email.from_name.trim().is_empty() => email.from_name.clone(),
                _ => email
                    .from_address
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            };
            // Suggestions for the first few and the one searched: a long list costs no more.
            let found = if searched || i < AUTO_SUGGESTED {
                Some(candidates(&services, &member, &q).await)
            } else {
                None
            };
            let mut item = serde_json::to_value(&email).map_err(Error::internal)?;
            item["q"] = json!(q);
            item["candidates"] = json!(found);
            items.push(item);
        }
        let snapshot = snapshot(&services, &member).await?;
        let frame = frame(&services, &member, &snapshot, &here).await?;
        page(
            "mail.html",
            with(
                frame,
                json!({
                    "address": address,
                    "unfiled": items,
                    "filed": query.filed.is_some(),
                    "section": "mail",
                }),
            ),
            StatusCode::OK,
        )
    }
    .await;
    finish(result, member.locale)
}

async fn rotate(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/mail");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        services
            .emails()
            .rotate_inbound_address(&member.access)
            .await?;
        Ok(see_other(&here))
    }
    .await;
    finish(result, member.locale)
}

async fn file(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, email)): Path<(String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/mail");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let entity = first(&posted, "entity").unwrap_or_default();
        let record = first(&posted, "record_id").unwrap_or_default();
        services
            .emails()
            .file(&member.ctx, &member.access, &email, entity, record)
            .await?;
        Ok(see_other(&format!("{here}?filed=1")))
    }
    .await;
    finish(result, member.locale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_on_commas_semicolons_and_lines() {
        assert_eq!(
            split_addresses("a@x.com, b@y.com;\n c@z.com ,,"),
            vec!["a@x.com", "b@y.com", "c@z.com"]
        );
        assert_eq!(
            split_addresses("\"Wang, Wei\" <wang@example.com>; li@example.com"),
            vec!["\"Wang, Wei\" <wang@example.com>", "li@example.com"]
        );
    }
}
