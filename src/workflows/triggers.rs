//! Triggers matched inside the write that fires them: a record write asks the snapshot for the
//! workflows watching its entity, checks each trigger and condition, and inserts the runs (and
//! the jobs that advance them) in the write's own transaction, so a committed change always has
//! its runs and a rolled-back one has none. Date triggers plan (or re-plan, or cancel) their
//! timer instead.

use std::rc::Rc;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::definition::Trigger;
use super::{ADVANCE_JOB, MAX_DEPTH, Workflow, timers};
use crate::clock::SharedClock;
use crate::definitions::{EntityModel, Snapshot};
use crate::domain::new_id;
use crate::error::{Error, Result};
use crate::jobs::{self, NewJob};
use crate::records::{Context, codec};
use crate::script::{Env, values};
use crate::store::Conn;
use crate::store::workflows::{self as rows, RunRow, status};

/// One record changed by a write.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The record.
    pub id: Uuid,
    /// Its owner after the write.
    pub owner: Option<Uuid>,
    /// Its stored document before (none: created).
    pub before: Option<&'a Map<String, Value>>,
    /// After (none: deleted).
    pub after: Option<&'a Map<String, Value>>,
}

/// What a write means for workflows, called in its transaction just before it commits: the
/// progress of the step that made it (if a workflow did), then the runs it starts and the date
/// timers it plans.
///
/// # Errors
/// `Error::Conflict` when the writing run moved on meanwhile; `Error::Invalid` (code
/// `workflow_depth`) when the write would start runs deeper than [`MAX_DEPTH`]; `Error::Db`.
pub async fn on_write(
    conn: &impl Conn,
    clock: &SharedClock,
    ctx: &Context,
    snapshot: &Snapshot,
    model: &EntityModel,
    changes: &[Change<'_>],
) -> Result<()> {
    if let Some(origin) = &ctx.origin {
        let advance = origin
            .advance
            .lock()
            .map_err(|_| Error::internal("step progress poisoned"))?
            .clone();
        if let Some(mut advance) = advance {
            // A create's output is the record it made: later steps and templates refer to it.
            if let (Some(change), Some(log)) = (changes.first(), advance.log.as_mut())
                && change.before.is_none()
            {
                let output = json!({"id": change.id, "entity": model.key});
                log.output = Some(output.clone());
                if let Some(vars) = advance.vars.as_object_mut() {
                    vars.insert(origin.step_id.clone(), output);
                }
            }
            if let Some((key, expected)) = &origin.rotation {
                rows::move_rotation(conn, ctx.scope.workspace_id, key, *expected, clock.now())
                    .await?;
            }
            if !rows::advance(conn, advance.clone()).await? {
                return Err(Error::conflict(
                    "/run",
                    "run_moved",
                    "the workflow run moved on meanwhile",
                ));
            }
        }
    }
    react(conn, clock, ctx, snapshot, model, changes).await
}

/// What a write means for workflows besides the progress of the step that made it: the runs it
/// starts, the date timers it plans, the waiting runs of deleted records it cancels. (A delete
/// that cascades reacts once per record it reached.)
///
/// # Errors
/// As [`on_write`].
pub async fn react(
    conn: &impl Conn,
    clock: &SharedClock,
    ctx: &Context,
    snapshot: &Snapshot,
    model: &EntityModel,
    changes: &[Change<'_>],
) -> Result<()> {
    let now = clock.now();
    for change in changes.iter().filter(|c| c.after.is_none()) {
        // A deleted record's waiting runs stop (a reminder about it would act on nothing), and
        // their pending approvals with them.
        for run in rows::open_runs_of(conn, ctx.scope.workspace_id, &model.key, change.id).await? {
            if run.status == rows::status::WAITING {
                super::approvals::cancel_for_run(conn, run.id, now).await?;
            }
        }
        rows::cancel_waiting(conn, ctx.scope.workspace_id, &model.key, change.id, now).await?;
    }
    let watchers = snapshot.watchers(&model.key);
    if watchers.is_empty() {
        return Ok(());
    }
    let depth = ctx.origin.as_ref().map_or(0, |o| o.depth + 1);
    for change in changes {
        for workflow in watchers {
            if let Trigger::Date { .. } = &workflow.trigger {
                timers::plan_date(
                    conn,
                    clock,
                    ctx.scope.workspace_id,
                    workflow,
                    model,
                    change,
                    ctx.time_zone,
                    &ctx.calendar,
                )
                .await?;
                continue;
            }
            let Some(changed) = matches(&workflow.trigger, model, change) else {
                continue;
            };
            let event = json!({
                "type": workflow.trigger.name(),
                "by": ctx.actor.account_id(),
                "channel": ctx.channel.as_str(),
                "at": now,
                "changed": changed,
                "old": change.before.map(|doc| Value::Object(codec::decode_doc(model, doc))),
            });
            let verdict = condition(workflow, || bound(model, change), &event, ctx, now);
            if verdict == Verdict::Skip {
                continue;
            }
            if depth > MAX_DEPTH {
                return Err(Error::invalid(
                    "/workflow",
                    "workflow_depth",
                    format!(
                        "workflow {:?} would start from a write made {depth} workflow levels deep; \
                         writes by workflows start others at most {MAX_DEPTH} levels deep",
                        workflow.key
                    ),
                ));
            }
            let run = new_run(
                ctx.scope.workspace_id,
                workflow,
                Some((&model.key, change.id)),
                event,
                depth,
                ctx.actor.account_id(),
                now,
            );
            insert(conn, clock, run, verdict).await?;
        }
    }
    Ok(())
}

/// Whether a condition let the run start.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// Start it.
    Start,
    /// Do not.
    Skip,
    /// The condition failed: the run is recorded as failed, with why, for the admin to see.
    Failed(String),
}

/// Evaluates a workflow's condition with `record` and `old` bound (no condition: start).
pub(crate) fn condition(
    workflow: &Workflow,
    bind: impl FnOnce() -> (rhai::Dynamic, rhai::Dynamic),
    event: &Value,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Verdict {
    let Some(script) = workflow.script("/condition") else {
        return Verdict::Start;
    };
    let (record, old) = bind();
    let trigger = rhai::serde::to_dynamic(event).unwrap_or(rhai::Dynamic::UNIT);
    let env = Rc::new(Env::new(now, ctx.time_zone, ctx.calendar.clone()));
    *env.allowed_lookups.borrow_mut() = Some(Vec::new());
    match crate::script::shared().eval_in(
        &env,
        script,
        vec![("record", record), ("old", old), ("trigger", trigger)],
        "/condition",
    ) {
        Ok(result) => match result.as_bool() {
            Ok(true) => Verdict::Start,
            Ok(false) => Verdict::Skip,
            Err(kind) => Verdict::Failed(format!("the condition gave {kind}, not true or false")),
        },
        Err(e) => Verdict::Failed(format!("the condition failed: {}", describe(&e))),
    }
}

/// `record` and `old` of a change, as scripts see them.
fn bound(model: &EntityModel, change: &Change<'_>) -> (rhai::Dynamic, rhai::Dynamic) {
    let empty = Map::new();
    let record = values::record(model, change.after.or(change.before).unwrap_or(&empty));
    let old = change
        .before
        .map_or(rhai::Dynamic::UNIT, |doc| values::record(model, doc));
    (record, old)
}

/// A one-line account of an error for run logs (with the line and column of a script error).
pub fn describe(error: &Error) -> String {
    match error {
        Error::Invalid { detail, errors } => {
            let parts: Vec<String> = errors
                .iter()
                .map(|e| {
                    let at = match (e.line, e.column) {
                        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
                        (Some(l), None) => format!(" (line {l})"),
                        _ => String::new(),
                    };
                    if e.pointer.is_empty() {
                        format!("{}{at}", e.message)
                    } else {
                        format!("{}: {}{at}", e.pointer, e.message)
                    }
                })
                .collect();
            if parts.is_empty() {
                detail.clone()
            } else {
                format!("{detail}: {}", parts.join("; "))
            }
        }
        other => other.to_string(),
    }
}

/// The fields a change touched, when the trigger matches it (`None`: it does not).
fn matches(trigger: &Trigger, model: &EntityModel, change: &Change<'_>) -> Option<Vec<String>> {
    let changed = || -> Vec<String> {
        let empty = Map::new();
        let before = change.before.unwrap_or(&empty);
        let after = change.after.unwrap_or(&empty);
        model
            .fields
            .iter()
            .filter(|f| before.get(&f.key) != after.get(&f.key))
            .map(|f| f.key.clone())
            .collect()
    };
    match (trigger, change.before, change.after) {
        (Trigger::RecordCreated, None, Some(_)) => Some(changed()),
        (Trigger::RecordDeleted, Some(_), None) => Some(Vec::new()),
        (Trigger::RecordUpdated { fields }, Some(_), Some(_)) => {
            let changed = changed();
            let hit = if fields.is_empty() {
                !changed.is_empty()
            } else {
                changed.iter().any(|c| fields.contains(c))
            };
            hit.then_some(changed)
        }
        (
            Trigger::FieldChanged {
                field,
                from,
                to,
                on_create,
            },
            before,
            Some(after),
        ) => {
            if before.is_none() && *on_create == Some(false) {
                return None;
            }
            let spec = model.field(field)?;
            let old = before
                .and_then(|doc| doc.get(field))
                .map_or(Value::Null, |v| codec::decode(spec, v));
            let new = after
                .get(field)
                .map_or(Value::Null, |v| codec::decode(spec, v));
            let one_of = |wanted: &Option<Vec<Value>>, value: &Value| {
                wanted.as_ref().is_none_or(|list| list.contains(value))
            };
            (old != new && one_of(from, &old) && one_of(to, &new)).then(|| vec![field.clone()])
        }
        _ => None,
    }
}

/// A new run of `workflow` at its first step.
pub(crate) fn new_run(
    workspace_id: Uuid,
    workflow: &Workflow,
    record: Option<(&str, Uuid)>,
    event: Value,
    depth: i32,
    started_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> RunRow {
    RunRow {
        id: new_id(),
        workspace_id,
        workflow_key: workflow.key.clone(),
        definition_id: workflow.definition_id,
        version: workflow.version,
        status: status::RUNNING.to_owned(),
        entity: record.map(|(entity, _)| entity.to_owned()),
        record_id: record.map(|(_, id)| id),
        event,
        cursor: workflow.first().map(str::to_owned),
        vars: json!({}),
        depth,
        steps_run: 0,
        error: None,
        failed_step: None,
        revision: 0,
        started_by,
        wake_at: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
    }
}

/// Inserts a run and the job that advances it (or, for a failed condition, the failed run).
pub(crate) async fn insert(
    conn: &impl Conn,
    clock: &SharedClock,
    mut run: RunRow,
    verdict: Verdict,
) -> Result<()> {
    if let Verdict::Failed(why) = verdict {
        run.status = status::FAILED.to_owned();
        run.error = Some(why);
        run.failed_step = Some(super::runtime::CONDITION.to_owned());
        run.finished_at = Some(run.created_at);
        return rows::insert_run(conn, run).await;
    }
    let job = advance_job(run.workspace_id, run.id, None, "start");
    rows::insert_run(conn, run).await?;
    jobs::enqueue(conn, clock, job).await?;
    Ok(())
}

/// The job that advances run `run_id`, due at `at` (now when `None`), once per `reason`.
pub fn advance_job(
    workspace_id: Uuid,
    run_id: Uuid,
    at: Option<DateTime<Utc>>,
    reason: &str,
) -> NewJob {
    let mut job = NewJob::new(ADVANCE_JOB, json!({"run": run_id}));
    job.workspace_id = Some(workspace_id);
    job.run_at = at;
    job.max_attempts = 10;
    job.dedupe_key = Some(format!("{ADVANCE_JOB}:{run_id}:{reason}"));
    job
}

/// Starts a run of `workflow` outside a record write (a button, an API call, a schedule, a
/// date), in the caller's transaction; the condition is checked first (a record's current
/// document stands for both old and new). Returns the run's id, or `None` when the condition
/// said no.
///
/// # Errors
/// `Error::Db`.
#[allow(clippy::too_many_arguments)]
pub async fn start_run(
    conn: &impl Conn,
    clock: &SharedClock,
    ctx: &Context,
    workflow: &Arc<Workflow>,
    record: Option<(&EntityModel, Uuid, &Map<String, Value>)>,
    event: Value,
) -> Result<Option<Uuid>> {
    let now = clock.now();
    let verdict = match record {
        Some((model, id, doc)) => condition(
            workflow,
            || {
                bound(
                    model,
                    &Change {
                        id,
                        owner: None,
                        before: None,
                        after: Some(doc),
                    },
                )
            },
            &event,
            ctx,
            now,
        ),
        None => condition(
            workflow,
            || (rhai::Dynamic::UNIT, rhai::Dynamic::UNIT),
            &event,
            ctx,
            now,
        ),
    };
    if verdict == Verdict::Skip {
        return Ok(None);
    }
    let run = new_run(
        ctx.scope.workspace_id,
        workflow,
        record.map(|(model, id, _)| (model.key.as_str(), id)),
        event,
        0,
        ctx.actor.account_id(),
        now,
    );
    let id = run.id;
    insert(conn, clock, run, verdict).await?;
    Ok(Some(id))
}
