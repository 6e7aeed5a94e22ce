//! Timers: date triggers ("P30D before contract_end", one job per workflow and record,
//! re-planned when the field changes, cancelled when the record goes) and schedules (a chain of
//! `workflow.cron` jobs, one occurrence at a time, in the workspace time zone). Each fires in a
//! transaction that starts the run and ends the timer together, so it fires once.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::definition::{Trigger, parse_cron};
use super::duration::Span;
use super::triggers::{Change, start_run};
use super::{Workflow, runtime};
use crate::calendar::BusinessCalendar;
use crate::clock::SharedClock;
use crate::definitions::{EntityModel, FieldKind, Registry};
use crate::error::{Error, Result};
use crate::jobs::{self, Handler, JobContext, JobFailure, NewJob};
use crate::store::jobs::JobRow;
use crate::store::write::Sharing;
use crate::store::{self, Conn};

/// The job kind of a date trigger's timer.
pub const DATE_JOB: &str = "workflow.date";
/// The job kind of a schedule's next occurrence.
pub const CRON_JOB: &str = "workflow.cron";
/// The job kind that plans the date timers of existing records after a publish.
pub const PLAN_JOB: &str = "workflow.plan_dates";

/// The instant a date trigger fires for a stored document (`None`: the field is empty or the
/// instant cannot be computed). A yearly trigger fires on the first anniversary whose instant is
/// after `not_before`.
pub fn due_of(
    workflow: &Workflow,
    model: &EntityModel,
    doc: &serde_json::Map<String, Value>,
    zone: chrono_tz::Tz,
    calendar: &BusinessCalendar,
    not_before: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let Trigger::Date {
        field,
        before,
        after,
        working_days,
        at,
        yearly,
    } = &workflow.trigger
    else {
        return None;
    };
    let spec = model.field(field)?;
    let text = doc.get(field)?.as_str()?;
    let instant = |base: DateTime<Utc>| -> Option<DateTime<Utc>> {
        let (span, is_before) = match (before, after) {
            (Some(b), _) => (Span::parse(b)?, true),
            (None, Some(a)) => (Span::parse(a)?, false),
            (None, None) => return Some(base),
        };
        span.apply(base, is_before, working_days.then_some((calendar, zone)))
    };
    let (date, time) = match spec.kind {
        FieldKind::Date => {
            let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
            let time = at
                .as_deref()
                .and_then(|t| NaiveTime::parse_from_str(t, "%H:%M").ok())
                .unwrap_or(NaiveTime::from_hms_opt(9, 0, 0)?);
            (date, time)
        }
        FieldKind::DateTime => {
            let local = DateTime::parse_from_rfc3339(text)
                .ok()?
                .with_timezone(&zone);
            if !yearly {
                return instant(local.with_timezone(&Utc));
            }
            (local.date_naive(), local.time())
        }
        _ => return None,
    };
    let at_local = |date: NaiveDate| {
        date.and_time(time)
            .and_local_timezone(zone)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    if !yearly {
        return instant(at_local(date)?);
    }
    let first = (not_before.with_timezone(&zone).year() - 1).max(date.year());
    (first..=first + 3)
        .filter_map(|year| anniversary(date, year))
        .filter_map(|day| instant(at_local(day)?))
        .find(|due| *due > not_before)
}

/// `date` in `year`; 29 February falls on the 28th in other years.
fn anniversary(date: NaiveDate, year: i32) -> Option<NaiveDate> {
    date.with_year(year)
        .or_else(|| NaiveDate::from_ymd_opt(year, date.month(), 28))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DatePayload {
    workflow: String,
    definition_id: Uuid,
    entity: String,
    record: Uuid,
    due: DateTime<Utc>,
}

fn date_key(workflow: &Workflow, record: Uuid) -> String {
    format!("{DATE_JOB}:{}:{record}", workflow.definition_id)
}

/// Plans, re-plans or cancels the date timer of `workflow` for one changed record, in the
/// write's transaction. Instants already past are not planned (a date set to yesterday
/// reminds nobody).
///
/// # Errors
/// `Error::Db`.
#[allow(clippy::too_many_arguments)]
pub async fn plan_date(
    conn: &impl Conn,
    clock: &SharedClock,
    workspace_id: Uuid,
    workflow: &Workflow,
    model: &EntityModel,
    change: &Change<'_>,
    zone: chrono_tz::Tz,
    calendar: &BusinessCalendar,
) -> Result<()> {
    let now = clock.now();
    let key = jobs::scoped_key(Some(workspace_id), &date_key(workflow, change.id));
    let due = change
        .after
        .and_then(|doc| due_of(workflow, model, doc, zone, calendar, now));
    let before = change
        .before
        .and_then(|doc| due_of(workflow, model, doc, zone, calendar, now));
    // Unchanged, or a new record without the date: nothing was planned, nothing to plan.
    if (change.before.is_some() && due == before) || (change.before.is_none() && due.is_none()) {
        return Ok(());
    }
    let Some(due) = due.filter(|d| *d > now) else {
        store::jobs::cancel_keyed(conn, &key, now).await?;
        return Ok(());
    };
    let payload = serde_json::to_value(DatePayload {
        workflow: workflow.key.clone(),
        definition_id: workflow.definition_id,
        entity: model.key.clone(),
        record: change.id,
        due,
    })
    .map_err(Error::internal)?;
    if store::jobs::replan_keyed(conn, &key, due, payload.clone(), now).await? {
        return Ok(());
    }
    store::jobs::forget_finished_keyed(conn, &key).await?;
    let mut job = NewJob::new(DATE_JOB, payload);
    job.workspace_id = Some(workspace_id);
    job.run_at = Some(due);
    job.dedupe_key = Some(date_key(workflow, change.id));
    // A running timer holds the key: it sees the moved date and re-plans itself.
    jobs::enqueue(conn, clock, job).await?;
    Ok(())
}

/// `workflow.date`: fires a date trigger. The record is read again: deleted, or its date moved
/// (the timer re-plans to the new instant), or the workflow changed its trigger — no run.
#[derive(Debug)]
pub struct DateTimer {
    /// The definitions.
    pub registry: Arc<Registry>,
}

#[async_trait::async_trait]
impl Handler for DateTimer {
    fn kind(&self) -> &'static str {
        DATE_JOB
    }

    async fn run(&self, ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let payload: DatePayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(format!("malformed timer: {e}")))?;
        let Some(workspace_id) = job.workspace_id else {
            return Err(JobFailure::Fatal("a timer without a workspace".to_owned()));
        };
        let Some((records_ctx, snapshot)) =
            runtime::system_context(&ctx.db, &self.registry, workspace_id, None).await?
        else {
            return Ok(());
        };
        let now = ctx.clock.now();
        let tx = ctx.db.write(Sharing::Alone).await?;
        let workflow = snapshot
            .workflow(&payload.workflow)
            .filter(|w| w.enabled && matches!(w.trigger, Trigger::Date { .. }));
        let model = snapshot.entity(&payload.entity);
        let (Some(workflow), Some(model)) = (workflow, model) else {
            ctx.complete_in(&tx).await?;
            return committed(tx).await;
        };
        // Locked: a write moving the date meanwhile lands before this reads it (and the timer
        // re-plans), or after this fires (and plans the next).
        let row = store::records::find_for_update(&tx, &model.table(), payload.record)
            .await?
            .filter(|row| row.deleted_at.is_none());
        let Some(row) = row else {
            ctx.complete_in(&tx).await?;
            return committed(tx).await;
        };
        // Just before the planned instant: a yearly timer firing now finds this year's date.
        let due = due_of(
            &workflow,
            &model,
            &row.doc,
            records_ctx.time_zone,
            &records_ctx.calendar,
            payload.due - chrono::TimeDelta::seconds(2),
        );
        match due {
            Some(due) if (due - payload.due).num_seconds().abs() <= 1 => {
                let event = json!({
                    "type": "date",
                    "at": now,
                    "due": due,
                    "field": match &workflow.trigger { Trigger::Date { field, .. } => field.clone(), _ => String::new() },
                });
                start_run(
                    &tx,
                    &ctx.clock,
                    &records_ctx,
                    &workflow,
                    Some((&model, row.id, &row.doc)),
                    event,
                )
                .await?;
                let next = matches!(workflow.trigger, Trigger::Date { yearly: true, .. })
                    .then(|| {
                        due_of(
                            &workflow,
                            &model,
                            &row.doc,
                            records_ctx.time_zone,
                            &records_ctx.calendar,
                            due.max(now),
                        )
                    })
                    .flatten();
                match next {
                    Some(next) => {
                        let payload = serde_json::to_value(DatePayload {
                            due: next,
                            ..payload
                        })
                        .map_err(Error::internal)?;
                        ctx.reschedule_in(&tx, next, payload).await?;
                    }
                    None => ctx.complete_in(&tx).await?,
                }
            }
            Some(due) if due > now => {
                let moved = DatePayload { due, ..payload };
                let payload = serde_json::to_value(moved).map_err(Error::internal)?;
                ctx.reschedule_in(&tx, due, payload).await?;
            }
            _ => ctx.complete_in(&tx).await?,
        }
        committed(tx).await
    }
}

/// Commits a timer's write transaction; a group rolled back by another writer runs again.
async fn committed(tx: store::write::Write) -> Result<(), JobFailure> {
    match tx.commit().await? {
        store::write::Outcome::Committed => Ok(()),
        store::write::Outcome::RunAgain => Err(JobFailure::Retry(
            "the timer's transaction was rolled back; it runs again".to_owned(),
        )),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CronPayload {
    workflow: String,
    definition_id: Uuid,
    version: i32,
    at: DateTime<Utc>,
}

/// The next occurrence of a schedule strictly after `after`, in `zone`.
pub fn next_occurrence(
    cron: &str,
    after: DateTime<Utc>,
    zone: chrono_tz::Tz,
) -> Option<DateTime<Utc>> {
    let cron = parse_cron(cron).ok()?;
    cron.find_next_occurrence(&after.with_timezone(&zone), false)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// Enqueues the next occurrence of a schedule workflow after `after` (once per occurrence).
///
/// # Errors
/// `Error::Db`.
pub async fn plan_cron(
    conn: &impl Conn,
    clock: &SharedClock,
    workspace_id: Uuid,
    workflow: &Workflow,
    after: DateTime<Utc>,
    zone: chrono_tz::Tz,
) -> Result<()> {
    let Trigger::Schedule { cron } = &workflow.trigger else {
        return Ok(());
    };
    if !workflow.enabled {
        return Ok(());
    }
    let Some(at) = next_occurrence(cron, after, zone) else {
        return Ok(());
    };
    let payload = serde_json::to_value(CronPayload {
        workflow: workflow.key.clone(),
        definition_id: workflow.definition_id,
        version: workflow.version,
        at,
    })
    .map_err(Error::internal)?;
    let mut job = NewJob::new(CRON_JOB, payload);
    job.workspace_id = Some(workspace_id);
    job.run_at = Some(at);
    job.dedupe_key = Some(format!(
        "{CRON_JOB}:{}:{}:{}",
        workflow.definition_id,
        workflow.version,
        at.timestamp()
    ));
    jobs::enqueue(conn, clock, job).await?;
    Ok(())
}

/// `workflow.cron`: starts one run of a schedule workflow and plans the next occurrence, in
/// one transaction. A schedule whose workflow was published again since stops (the new version
/// planned its own).
#[derive(Debug)]
pub struct CronTimer {
    /// The definitions.
    pub registry: Arc<Registry>,
}

#[async_trait::async_trait]
impl Handler for CronTimer {
    fn kind(&self) -> &'static str {
        CRON_JOB
    }

    async fn run(&self, ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let payload: CronPayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(format!("malformed schedule: {e}")))?;
        let Some(workspace_id) = job.workspace_id else {
            return Err(JobFailure::Fatal(
                "a schedule without a workspace".to_owned(),
            ));
        };
        let Some((records_ctx, snapshot)) =
            runtime::system_context(&ctx.db, &self.registry, workspace_id, None).await?
        else {
            return Ok(());
        };
        let tx = ctx.db.write(Sharing::Alone).await?;
        let current = snapshot.workflow(&payload.workflow).filter(|w| {
            w.enabled && w.definition_id == payload.definition_id && w.version == payload.version
        });
        if let Some(workflow) = current {
            let event = json!({"type": "schedule", "at": payload.at});
            start_run(&tx, &ctx.clock, &records_ctx, &workflow, None, event).await?;
            // From the occurrence, not from now: a late firing does not skip the next one.
            plan_cron(
                &tx,
                &ctx.clock,
                workspace_id,
                &workflow,
                payload
                    .at
                    .max(ctx.clock.now() - chrono::Duration::seconds(1)),
                records_ctx.time_zone,
            )
            .await?;
        }
        ctx.complete_in(&tx).await?;
        committed(tx).await
    }
}

/// What publishing a workflow version sets going, in the publishing transaction: the first
/// occurrence of a schedule, or the job that plans date timers for the existing records.
///
/// # Errors
/// `Error::Db`.
pub async fn on_publish(
    conn: &impl Conn,
    clock: &SharedClock,
    workspace_id: Uuid,
    workflow: &Workflow,
    zone: chrono_tz::Tz,
) -> Result<()> {
    match &workflow.trigger {
        Trigger::Schedule { .. } => {
            plan_cron(conn, clock, workspace_id, workflow, clock.now(), zone).await
        }
        Trigger::Date { .. } if workflow.enabled => {
            let mut job = NewJob::new(
                PLAN_JOB,
                json!({"workflow": workflow.key, "definition_id": workflow.definition_id, "version": workflow.version}),
            );
            job.workspace_id = Some(workspace_id);
            job.dedupe_key = Some(format!(
                "{PLAN_JOB}:{}:{}",
                workflow.definition_id, workflow.version
            ));
            jobs::enqueue(conn, clock, job).await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize)]
struct PlanPayload {
    workflow: String,
    definition_id: Uuid,
    version: i32,
}

/// Records planned per transaction by [`PlanDates`].
const PLAN_BATCH: u64 = 500;

/// `workflow.plan_dates`: plans the date timers of every live record of a date workflow's
/// entity after it is published, a batch per transaction, resuming from its checkpoint.
#[derive(Debug)]
pub struct PlanDates {
    /// The definitions.
    pub registry: Arc<Registry>,
}

#[async_trait::async_trait]
impl Handler for PlanDates {
    fn kind(&self) -> &'static str {
        PLAN_JOB
    }

    async fn run(&self, ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let payload: PlanPayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(format!("malformed plan: {e}")))?;
        let Some(workspace_id) = job.workspace_id else {
            return Err(JobFailure::Fatal("a plan without a workspace".to_owned()));
        };
        let Some((records_ctx, snapshot)) =
            runtime::system_context(&ctx.db, &self.registry, workspace_id, None).await?
        else {
            return Ok(());
        };
        let current = snapshot.workflow(&payload.workflow).filter(|w| {
            w.definition_id == payload.definition_id && w.version == payload.version && w.enabled
        });
        let model = current
            .as_ref()
            .and_then(|w| w.entity.as_deref())
            .and_then(|e| snapshot.entity(e));
        let (Some(workflow), Some(model)) = (current, model) else {
            let tx = ctx.db.begin().await?;
            ctx.complete_in(&tx).await?;
            tx.commit().await.map_err(Error::from)?;
            return Ok(());
        };
        let mut after: Option<Uuid> = job
            .checkpoint
            .as_ref()
            .and_then(|c| c.get("after"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        let mut done = job.progress_done;
        loop {
            let page =
                store::records::scan(ctx.db.conn(), &model.table(), after, PLAN_BATCH).await?;
            let Some(last) = page.last().map(|r| r.id) else {
                break;
            };
            let tx = ctx.db.write(Sharing::Alone).await?;
            for row in page.iter().filter(|r| r.deleted_at.is_none()) {
                let change = Change {
                    id: row.id,
                    owner: row.owner,
                    before: None,
                    after: Some(&row.doc),
                };
                plan_date(
                    &tx,
                    &ctx.clock,
                    workspace_id,
                    &workflow,
                    &model,
                    &change,
                    records_ctx.time_zone,
                    &records_ctx.calendar,
                )
                .await?;
            }
            committed(tx).await?;
            done += page.len() as i64;
            after = Some(last);
            ctx.progress(done, None, Some(json!({"after": last})))
                .await?;
        }
        let tx = ctx.db.begin().await?;
        ctx.complete_in(&tx).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(())
    }
}
