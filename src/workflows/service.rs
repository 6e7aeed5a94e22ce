//! What people do with workflows besides defining them: read runs and their logs, retry or
//! cancel a run, start a manual workflow on records (their notifications are in `notifications`).

use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::definition::Trigger;
use super::{RunView, StepView, runtime, triggers};
use crate::access::Right;
use crate::error::{Error, Result};
use crate::records::{Context, Records};
use crate::store::workflows::{self as rows, RunFilter};
use crate::store::write::Sharing;
use crate::workspaces::Access;

/// Most runs (or notifications) listed at once.
pub const MAX_PAGE: u64 = 500;
/// Most records a manual start takes at once.
pub const MAX_SELECTION: usize = 500;

fn may_manage(access: &Access) -> Result<()> {
    if access.policy.may(Right::Workflows) {
        Ok(())
    } else {
        Err(Error::forbidden(
            "reading and changing workflow runs needs the right to manage workflows",
        ))
    }
}

/// Runs of the workspace, newest first.
///
/// # Errors
/// `Error::Forbidden` without the workflows right; `Error::Invalid` for a bad status or limit.
pub async fn list(
    records: &Records<'_>,
    access: &Access,
    filter: RunFilter,
    limit: Option<u64>,
) -> Result<Vec<RunView>> {
    may_manage(access)?;
    if let Some(status) = &filter.status
        && ![
            rows::status::RUNNING,
            rows::status::WAITING,
            rows::status::COMPLETED,
            rows::status::FAILED,
            rows::status::CANCELLED,
        ]
        .contains(&status.as_str())
    {
        return Err(Error::invalid(
            "/status",
            "enum",
            "status is running, waiting, completed, failed or cancelled",
        ));
    }
    let limit = limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::invalid(
            "/limit",
            "range",
            format!("limit is 1–{MAX_PAGE}"),
        ));
    }
    Ok(
        rows::runs(records.db.conn(), access.workspace.id, filter, limit)
            .await?
            .into_iter()
            .map(RunView::from)
            .collect(),
    )
}

async fn find(records: &Records<'_>, access: &Access, id: Uuid) -> Result<rows::RunRow> {
    rows::find_run(records.db.conn(), id)
        .await?
        .filter(|run| run.workspace_id == access.workspace.id)
        .ok_or_else(|| Error::not_found("workflow run"))
}

/// One run with its step log.
///
/// # Errors
/// `Error::NotFound`; `Error::Forbidden`.
pub async fn get(records: &Records<'_>, access: &Access, id: Uuid) -> Result<RunView> {
    may_manage(access)?;
    let run = find(records, access, id).await?;
    let steps = rows::steps(records.db.conn(), id).await?;
    let mut view = RunView::from(run);
    view.steps = Some(steps.into_iter().map(StepView::from).collect());
    Ok(view)
}

/// Retries a failed run from its failed step.
///
/// # Errors
/// `Error::NotFound`; `Error::Forbidden`; `Error::Conflict` when it is not failed.
pub async fn retry(records: &Records<'_>, access: &Access, id: Uuid) -> Result<RunView> {
    may_manage(access)?;
    let run = find(records, access, id).await?;
    runtime::retry(records.db, records.clock, &run).await?;
    get(records, access, id).await
}

/// Cancels a run that has not ended.
///
/// # Errors
/// `Error::NotFound`; `Error::Forbidden`; `Error::Conflict` when it has ended.
pub async fn cancel(records: &Records<'_>, access: &Access, id: Uuid) -> Result<RunView> {
    may_manage(access)?;
    let run = find(records, access, id).await?;
    runtime::cancel(records.db, records.clock, &run).await?;
    get(records, access, id).await
}

/// What a manual start did.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    /// The runs started, by record.
    pub runs: Vec<StartedRun>,
}

/// One run a manual start made (or why it did not).
#[derive(Debug, Clone, Serialize)]
pub struct StartedRun {
    /// The record (none for a workflow without entity).
    pub record: Option<Uuid>,
    /// The run, unless the condition said no.
    pub run: Option<Uuid>,
}

/// Starts a manual workflow on each of `record_ids` (or once, without a record, for a
/// workflow without entity), as the caller: every record must be readable by them, and their
/// role allowed by the trigger. All or nothing.
///
/// # Errors
/// `Error::NotFound` (workflow, record); `Error::Forbidden` (role); `Error::Invalid` (not a
/// manual workflow, disabled, too many or no records).
pub async fn start_manual(
    records: &Records<'_>,
    access: &Access,
    ctx: &Context,
    key: &str,
    record_ids: &[String],
) -> Result<Started> {
    let snapshot = records
        .registry
        .snapshot(records.db, ctx.scope.workspace_id, ctx.scope.generation)
        .await?;
    // Only manual workflows exist for people who do not manage workflows.
    let manager = access.policy.may(Right::Workflows);
    let workflow = snapshot
        .workflow(key)
        .filter(|w| manager || matches!(w.trigger, Trigger::Manual { .. }))
        .ok_or_else(|| Error::not_found(format!("workflow {key:?}")))?;
    let Trigger::Manual { roles, .. } = &workflow.trigger else {
        return Err(Error::invalid(
            "/workflow",
            "not_manual",
            format!(
                "workflow {key:?} starts on {}, not by hand",
                workflow.trigger.name()
            ),
        ));
    };
    if !workflow.enabled {
        return Err(Error::invalid(
            "/workflow",
            "disabled",
            format!("workflow {key:?} is disabled"),
        ));
    }
    if !roles.is_empty() && !access.is_admin() && !roles.contains(&access.role) {
        return Err(Error::forbidden(format!(
            "workflow {key:?} may be started by {}",
            roles.join(", ")
        )));
    }
    let model = match &workflow.entity {
        Some(entity) => Some(
            snapshot
                .entity(entity)
                .ok_or_else(|| Error::not_found(format!("entity {entity:?}")))?,
        ),
        None => None,
    };
    if model.is_some() && (record_ids.is_empty() || record_ids.len() > MAX_SELECTION) {
        return Err(Error::invalid(
            "/records",
            "range",
            format!("select 1–{MAX_SELECTION} records"),
        ));
    }
    // Readable by the caller: a record they cannot see is a 404, as everywhere.
    let mut targets: Vec<Uuid> = Vec::new();
    if let Some(model) = &model {
        for (i, raw) in record_ids.iter().enumerate() {
            let view = records
                .get(ctx, &model.key, raw, false)
                .await
                .map_err(|e| match e {
                    Error::Invalid { .. } => Error::invalid(
                        format!("/records/{i}"),
                        "id",
                        format!("{raw:?} is not a record id"),
                    ),
                    other => other,
                })?;
            // The same record twice starts one run.
            if !targets.contains(&view.id) {
                targets.push(view.id);
            }
        }
    }
    let tx = records.db.write(Sharing::Alone).await?;
    let mut started = Vec::new();
    let event = |record: Option<Uuid>| json!({"type": "manual", "by": ctx.actor.account_id(), "at": records.clock.now(), "records": record_ids.len(), "record": record});
    match &model {
        Some(model) => {
            for id in targets {
                let row = crate::store::records::find(&tx, &model.table(), id)
                    .await?
                    .filter(|r| r.deleted_at.is_none())
                    .ok_or_else(|| Error::not_found(format!("record {id}")))?;
                let run = triggers::start_run(
                    &tx,
                    records.clock,
                    ctx,
                    &workflow,
                    Some((model, id, &row.doc)),
                    event(Some(id)),
                )
                .await?;
                started.push(StartedRun {
                    record: Some(id),
                    run,
                });
            }
        }
        None => {
            let run =
                triggers::start_run(&tx, records.clock, ctx, &workflow, None, event(None)).await?;
            started.push(StartedRun { record: None, run });
        }
    }
    match tx.commit().await? {
        crate::store::write::Outcome::Committed => Ok(Started { runs: started }),
        crate::store::write::Outcome::RunAgain => Err(Error::Unavailable(
            "the start was rolled back with another change; send it again".to_owned(),
        )),
    }
}
