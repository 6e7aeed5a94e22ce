//! The approvals inbox at `/w/{workspace}/approvals` (waiting for me, done by me, submitted by
//! me, all for workflow managers), with batch approve and reject, and the actions a record page
//! offers on its pending approval: approve, reject, return, transfer, add an approver,
//! withdraw and resubmit — every one through `workflows::approvals::act`, as in the API.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use uuid::Uuid;

use super::member::{Member, frame, snapshot, with};
use super::records::{Pairs, all_of, first, query_pairs, see_other};
use super::{error_page, page};
use crate::app::Services;
use crate::error::{Error, Result};
use crate::workflows::approvals::{self, Act, ApprovalView};

/// The approval pages.
pub(super) fn router() -> Router<Services> {
    Router::new()
        .route("/w/{workspace}/approvals", get(inbox))
        .route("/w/{workspace}/approvals/act", post(act))
        .route("/w/{workspace}/runs/{id}", get(run_page))
        .route("/w/{workspace}/runs/{id}/{action}", post(run_action))
}

const BOXES: [&str; 4] = ["pending", "done", "submitted", "all"];

fn manager(member: &Member) -> bool {
    member.access.policy.may(crate::access::Right::Workflows)
}

/// Names of the workspace's members by id.
async fn people(services: &Services, member: &Member) -> Result<HashMap<Uuid, String>> {
    Ok(crate::workspaces::members(services.db(), &member.access)
        .await?
        .into_iter()
        .map(|m| (m.account_id, m.name))
        .collect())
}

/// An approval as pages show it: names instead of ids, the reader's own part, and what the
/// reader may do with it.
pub(super) fn present(
    approval: &ApprovalView,
    reader: Uuid,
    names: &HashMap<Uuid, String>,
    locale: crate::render::i18n::Locale,
) -> Value {
    let name = |id: Option<Uuid>| {
        id.map(|i| {
            names
                .get(&i)
                .cloned()
                .unwrap_or_else(|| i.to_string().chars().take(8).collect())
        })
    };
    let my_task = approval
        .tasks
        .iter()
        .any(|t| t.approver == reader && t.status == "pending");
    let mine = approval.submitter == Some(reader);
    let trail: Vec<Value> = approval
        .trail
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let by = e
                        .get("by")
                        .and_then(Value::as_str)
                        .and_then(|s| Uuid::parse_str(s).ok());
                    json!({
                        "at": e.get("at"),
                        "by": name(by),
                        "action": e.get("action"),
                        "comment": e.get("comment"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "id": approval.id,
        "title": approval.title,
        "status": approval.status,
        "entity": approval.entity,
        "record_id": approval.record_id,
        "submitter": name(approval.submitter),
        "level": approval.level + 1,
        "levels": approval.levels.as_array().map_or(0, Vec::len),
        "level_label": usize::try_from(approval.level)
            .ok()
            .and_then(|i| approval.levels.get(i))
            .and_then(|level| level.get("label"))
            .map(|label| locale.label(Some(label), "").to_owned())
            .filter(|label| !label.is_empty()),
        "due_at": approval.due_at,
        "created_at": approval.created_at,
        "tasks": approval.tasks.iter().map(|t| json!({
            "approver": name(Some(t.approver)),
            "level": t.level + 1,
            "status": t.status,
            "comment": t.comment,
            "acted_at": t.acted_at,
        })).collect::<Vec<_>>(),
        "trail": trail,
        "can_decide": my_task && approval.status == "pending",
        "can_withdraw": mine && matches!(approval.status.as_str(), "pending" | "returned"),
        "can_resubmit": mine && approval.status == "returned",
    })
}

async fn inbox(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let here = match &raw {
        Some(q) => format!("/w/{slug}/approvals?{q}"),
        None => format!("/w/{slug}/approvals"),
    };
    let member = member_or_return!(&services, &headers, &slug, &here);
    let pairs = query_pairs(raw.as_deref());
    let which = first(&pairs, "box").unwrap_or("pending").to_owned();
    draw_inbox(
        &services,
        &member,
        &which,
        &here,
        Vec::new(),
        StatusCode::OK,
    )
    .await
    .unwrap_or_else(|error| error_page(error, member.locale))
}

async fn draw_inbox(
    services: &Services,
    member: &Member,
    which: &str,
    here: &str,
    problems: Vec<String>,
    status: StatusCode,
) -> Result<Response> {
    if !BOXES.contains(&which) {
        return Err(Error::invalid(
            "/box",
            "enum",
            "box is pending, done, submitted or all",
        ));
    }
    let listed = approvals::inbox(
        services.db(),
        member.access.workspace.id,
        member.access.account_id,
        manager(member),
        which,
        200,
    )
    .await?;
    let names = people(services, member).await?;
    let items: Vec<Value> = listed
        .iter()
        .map(|a| present(a, member.access.account_id, &names, member.locale))
        .collect();
    let snapshot = snapshot(services, member).await?;
    let frame = frame(services, member, &snapshot, here).await?;
    let boxes: Vec<Value> = BOXES
        .iter()
        .filter(|b| **b != "all" || manager(member))
        .map(|b| json!({"key": b, "current": *b == which}))
        .collect();
    page(
        "approvals.html",
        with(
            frame,
            json!({
                "box": which,
                "boxes": boxes,
                "items": items,
                "problems": problems,
                "section": "approvals",
            }),
        ),
        status,
    )
}

/// Reads the action a form asks for.
fn act_of(posted: &[(String, String)]) -> Result<Act> {
    let comment = first(posted, "comment")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let person = |key: &str| {
        first(posted, key)
            .and_then(|v| Uuid::parse_str(v).ok())
            .ok_or_else(|| Error::invalid(format!("/{key}"), "required", "choose a member"))
    };
    Ok(match first(posted, "action").unwrap_or_default() {
        "approve" => Act::Approve { comment },
        "reject" => Act::Reject { comment },
        "return" => Act::Return {
            to_level: first(posted, "to_level")
                .filter(|v| !v.is_empty())
                .and_then(|v| v.parse::<i32>().ok())
                .map(|l| l - 1),
            comment,
        },
        "transfer" => Act::Transfer {
            to: person("to")?,
            comment,
        },
        "add_approver" => Act::AddApprover {
            approver: person("approver")?,
            position: first(posted, "position").unwrap_or("before").to_owned(),
            comment,
        },
        "withdraw" => Act::Withdraw { comment },
        "resubmit" => Act::Resubmit { comment },
        other => {
            return Err(Error::invalid(
                "/action",
                "enum",
                format!("unknown approval action {other:?}"),
            ));
        }
    })
}

/// Acts on one or several approvals (batch approve from the inbox, any action from a record
/// page); what could not be done is listed, what could is done.
async fn act(
    State(services): State<Services>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/approvals");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let act = act_of(&posted)?;
        let ids: Vec<Uuid> = all_of(&posted, "id")
            .iter()
            .filter_map(|v| Uuid::parse_str(v).ok())
            .collect();
        if ids.is_empty() {
            return Err(Error::invalid(
                "/id",
                "required",
                "select at least one approval",
            ));
        }
        let mut problems = Vec::new();
        for id in ids {
            let done = async {
                approvals::get(
                    services.db(),
                    member.access.workspace.id,
                    member.access.account_id,
                    manager(&member),
                    id,
                )
                .await?;
                approvals::act(
                    services.db(),
                    services.clock(),
                    member.access.workspace.id,
                    approvals::Actor {
                        id: member.access.account_id,
                        manager: manager(&member),
                    },
                    id,
                    act.clone(),
                )
                .await
            }
            .await;
            if let Err(error) = done {
                problems.push(format!(
                    "{id}: {}",
                    super::records::problem_text(&error, member.locale)
                ));
            }
        }
        let back = super::records::back_to(
            first(&posted, "back"),
            &format!("/w/{}/", member.slug()),
            here.clone(),
        );
        if problems.is_empty() {
            Ok(see_other(&back))
        } else {
            let which = first(&posted, "box").unwrap_or("pending").to_owned();
            draw_inbox(
                &services,
                &member,
                &which,
                &here,
                problems,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
    .await;
    result.unwrap_or_else(|error| error_page(error, locale))
}

/// One workflow run, for those who manage workflows: where it stands, its step-by-step log,
/// and retry (failed) or cancel (running or waiting).
pub(super) async fn run_page(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, id)): Path<(String, String)>,
) -> Response {
    let here = format!("/w/{slug}/runs/{id}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let result = async {
        let id = Uuid::parse_str(&id).map_err(|_| Error::not_found("workflow run"))?;
        let run = crate::workflows::service::get(&services.records(), &member.access, id).await?;
        let snapshot = snapshot(&services, &member).await?;
        let label = snapshot
            .get(crate::definitions::Kind::Workflow, &run.workflow)
            .map(|p| {
                locale
                    .label(p.document.get("label"), &run.workflow)
                    .to_owned()
            })
            .unwrap_or_else(|| run.workflow.clone());
        let frame = frame(&services, &member, &snapshot, &here).await?;
        page(
            "run.html",
            with(frame, json!({"run": run, "label": label})),
            StatusCode::OK,
        )
    }
    .await;
    result.unwrap_or_else(|error| error_page(error, locale))
}

/// Retries a failed run or cancels one that has not ended, then shows it again.
pub(super) async fn run_action(
    State(services): State<Services>,
    headers: HeaderMap,
    Path((slug, id, action)): Path<(String, String, String)>,
    Form(posted): Form<Pairs>,
) -> Response {
    let here = format!("/w/{slug}/runs/{id}");
    let member = member_or_return!(&services, &headers, &slug, &here);
    let locale = member.locale;
    let result = async {
        member.check_csrf(first(&posted, "csrf_token"))?;
        let run = Uuid::parse_str(&id).map_err(|_| Error::not_found("workflow run"))?;
        let records = services.records();
        match action.as_str() {
            "retry" => crate::workflows::service::retry(&records, &member.access, run).await?,
            "cancel" => crate::workflows::service::cancel(&records, &member.access, run).await?,
            _ => return Err(Error::not_found("route")),
        };
        Ok(see_other(&here))
    }
    .await;
    result.unwrap_or_else(|error| error_page(error, locale))
}
