//! Recomputing the stored formula values of an entity's records after its formulas changed (or
//! daily, for formulas that read the clock): a background job that walks the table in id order,
//! a batch at a time, with its progress and a checkpoint, so a restart resumes where it stopped.
//! Values are stored without a new version or history row (a derived change: the job is its
//! entry), and only into records not changed meanwhile (their writer computed them already).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Records;
use super::scripting::ScriptWorld;
use crate::clock::SharedClock;
use crate::definitions::{EntityModel, Registry};
use crate::error::{Error, Result};
use crate::jobs::{self, Handler, JobContext, JobFailure, NewJob};
use crate::store::jobs::JobRow;
use crate::store::records as rows;
use crate::store::{self, Conn, Outcome, Sharing};

/// The job kind.
pub const RECOMPUTE_JOB: &str = "records.recompute";

/// Records recomputed per transaction.
const BATCH: u64 = 500;

/// Failures kept in the job's checkpoint (the count is always complete).
const KEPT_FAILURES: usize = 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    entity: String,
    definition_id: Uuid,
    reason: String,
    /// Only the records whose reference field points at a record (one that their formulas
    /// look up and that changed); all records when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    referring: Option<Referring>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Referring {
    field: String,
    target: Uuid,
}

/// Where a recompute stands (the job's checkpoint, kept with the job so a restart resumes).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    after: Option<Uuid>,
    /// Records processed (each once, whatever became of it).
    #[serde(default)]
    done: i64,
    changed: i64,
    unchanged: i64,
    failed: i64,
    failures: Vec<Value>,
}

/// Whether the computed fields of `model` differ from those of `previous` (a new, removed or
/// changed formula or rollup, or a changed result kind).
pub fn computed_changed(previous: &EntityModel, model: &EntityModel) -> bool {
    let computed = |m: &EntityModel| {
        m.fields
            .iter()
            .filter(|f| f.computed.is_some())
            .map(|f| (f.key.clone(), f.computed.clone(), f.kind.clone()))
            .collect::<Vec<_>>()
    };
    computed(previous) != computed(model)
}

/// A recompute job of entity `entity` (`definition_id`) in a workspace, for `reason`, of the
/// records referring to a changed one or of all.
fn recompute_job(
    workspace_id: Uuid,
    entity: &str,
    definition_id: Uuid,
    reason: String,
    referring: Option<Referring>,
) -> NewJob {
    let mut job = NewJob::new(
        RECOMPUTE_JOB,
        json!(Payload {
            entity: entity.to_owned(),
            definition_id,
            reason,
            referring,
        }),
    );
    job.workspace_id = Some(workspace_id);
    job
}

/// Enqueues a recompute of every record of `model` (in the caller's transaction).
///
/// # Errors
/// `Error::Db`.
pub async fn schedule(
    conn: &impl Conn,
    clock: &SharedClock,
    workspace_id: Uuid,
    model: &EntityModel,
    reason: &str,
) -> Result<Option<Uuid>> {
    let job = recompute_job(
        workspace_id,
        &model.key,
        model.definition_id,
        reason.to_owned(),
        None,
    );
    jobs::enqueue(conn, clock, job).await
}

/// Enqueues, in the caller's transaction, the recomputes a conversion of `model`'s stored values
/// calls for: its own formulas, and the rollups of every entity aggregating it.
///
/// # Errors
/// `Error::Db`.
pub async fn schedule_after_conversion(
    conn: &impl Conn,
    clock: &SharedClock,
    workspace_id: Uuid,
    model: &EntityModel,
) -> Result<()> {
    if !model.scripts.formulas.is_empty() {
        schedule(conn, clock, workspace_id, model, "values converted").await?;
    }
    for row in store::definitions::published(conn, workspace_id).await? {
        let rolls_up = row.kind == "entity"
            && row
                .document
                .get("properties")
                .and_then(Value::as_object)
                .is_some_and(|properties| {
                    properties.values().any(|field| {
                        field.pointer("/x-rollup/entity").and_then(Value::as_str)
                            == Some(model.key.as_str())
                    })
                });
        if rolls_up {
            let reason = format!("{} values converted", model.key);
            let job = recompute_job(workspace_id, &row.key, row.id, reason, None);
            jobs::enqueue(conn, clock, job).await?;
        }
    }
    Ok(())
}

/// Enqueues, in the caller's transaction, a recompute of the records whose formulas look up
/// `changed` (a record of `model` just changed, deleted or restored), for every entity of
/// `snapshot` with such formulas.
///
/// # Errors
/// `Error::Db`.
pub async fn schedule_lookups_of(
    conn: &impl Conn,
    clock: &SharedClock,
    workspace_id: Uuid,
    snapshot: &crate::definitions::Snapshot,
    model: &EntityModel,
    changed: Uuid,
) -> Result<()> {
    for dependent in snapshot.entities() {
        let mut vias: Vec<&str> = dependent
            .scripts
            .formulas
            .iter()
            .flat_map(|f| f.lookups.iter())
            .filter(|(entity, _)| *entity == model.key)
            .map(|(_, via)| via.as_str())
            .collect();
        vias.sort_unstable();
        vias.dedup();
        for via in vias {
            let job = recompute_job(
                workspace_id,
                &dependent.key,
                dependent.definition_id,
                format!("{} {changed} changed", model.key),
                Some(Referring {
                    field: via.to_owned(),
                    target: changed,
                }),
            );
            jobs::enqueue(conn, clock, job).await?;
        }
    }
    Ok(())
}

/// `records.recompute`: recomputes the formulas of every record of one entity.
#[derive(Debug)]
pub struct Recompute {
    /// The definitions.
    pub registry: Arc<Registry>,
}

#[async_trait::async_trait]
impl Handler for Recompute {
    fn kind(&self) -> &'static str {
        RECOMPUTE_JOB
    }

    async fn run(&self, ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let payload: Payload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(format!("malformed recompute payload: {e}")))?;
        let workspace_id = job
            .workspace_id
            .ok_or_else(|| JobFailure::Fatal("a recompute belongs to a workspace".to_owned()))?;
        let mut at: Checkpoint = job
            .checkpoint
            .clone()
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or_default();
        let records = Records {
            db: &ctx.db,
            clock: &ctx.clock,
            registry: &self.registry,
        };
        loop {
            let Some(workspace) = store::workspaces::find(ctx.db.conn(), workspace_id).await?
            else {
                return Ok(());
            };
            let snapshot = self
                .registry
                .snapshot(&ctx.db, workspace_id, workspace.definitions_generation)
                .await?;
            // The entity was removed (or replaced under its key): nothing left to compute.
            let Some(model) = snapshot
                .entity(&payload.entity)
                .filter(|m| m.definition_id == payload.definition_id)
            else {
                return Ok(());
            };
            let batch = match &payload.referring {
                None => rows::scan(ctx.db.conn(), &model.table(), at.after, BATCH).await?,
                Some(referring) => {
                    let mut ids = rows::referring_ids(
                        ctx.db.conn(),
                        &model.table(),
                        &referring.field,
                        referring.target,
                    )
                    .await?;
                    ids.sort_unstable();
                    let mut found = Vec::new();
                    for id in ids
                        .into_iter()
                        .filter(|id| at.after.is_none_or(|after| *id > after))
                        .take(BATCH as usize)
                    {
                        if let Some(row) = rows::find(ctx.db.conn(), &model.table(), id).await? {
                            found.push(row);
                        }
                    }
                    found
                }
            };
            let Some(last) = batch.last().map(|row| row.id) else {
                return Ok(());
            };
            let world = ScriptWorld::system(
                workspace_id,
                ctx.clock.now(),
                crate::workspaces::zone_of(&workspace),
                crate::workspaces::calendar_of(&workspace),
            )
            .without_rules();
            let mut updates = Vec::new();
            for row in &batch {
                let (doc, problems) =
                    recompute_one(&records, ctx.db.conn(), &snapshot, &model, &world, row).await?;
                if !problems.is_empty() {
                    at.failed += 1;
                    if at.failures.len() < KEPT_FAILURES {
                        at.failures
                            .push(json!({"record": row.id, "errors": problems}));
                    }
                }
                if doc == row.doc {
                    at.unchanged += i64::from(problems.is_empty());
                } else {
                    updates.push((row.clone(), doc));
                }
            }
            at.changed += write(&records, &snapshot, &model, &world, updates).await?;
            at.after = Some(last);
            at.done += batch.len() as i64;
            let done = at.done;
            let checkpoint = serde_json::to_value(&at).map_err(Error::internal)?;
            ctx.progress(done, None, Some(checkpoint)).await?;
            if (batch.len() as u64) < BATCH {
                return Ok(());
            }
        }
    }
}

/// One record's rollups and formulas computed again (as Formwork, no rules; a failing formula
/// leaves its field empty and is reported).
async fn recompute_one(
    records: &Records<'_>,
    conn: &impl Conn,
    snapshot: &crate::definitions::Snapshot,
    model: &EntityModel,
    world: &ScriptWorld,
    row: &rows::RecordRow,
) -> Result<(
    serde_json::Map<String, Value>,
    Vec<crate::error::FieldError>,
)> {
    let mut doc = row.doc.clone();
    if super::erasure::is_erased(&doc) {
        return Ok((doc, Vec::new()));
    }
    super::rollups::fill(
        conn,
        &|key: &str| snapshot.entity(key),
        model,
        row.id,
        &mut doc,
    )
    .await?;
    let mut problems = Vec::new();
    records
        .derive_in(
            conn,
            snapshot,
            model,
            &mut doc,
            None,
            world,
            "",
            &mut problems,
        )
        .await?;
    Ok((doc, problems))
}

/// Stores recomputed documents in one transaction; a record changed since it was read is read
/// again (locked) and computed again. What changed rolls up to parents and reschedules the
/// formulas looking it up, as any change does. Returns the records changed.
async fn write(
    records: &Records<'_>,
    snapshot: &crate::definitions::Snapshot,
    model: &EntityModel,
    world: &ScriptWorld,
    updates: Vec<(rows::RecordRow, serde_json::Map<String, Value>)>,
) -> Result<i64> {
    if updates.is_empty() {
        return Ok(0);
    }
    let tx = records.db.write(Sharing::Alone).await?;
    let mut written = 0;
    let mut changes = Vec::new();
    for (row, doc) in updates {
        let rolled = |doc: &serde_json::Map<String, Value>, before: &rows::RecordRow| {
            model.fields.iter().any(|f| {
                matches!(
                    f.computed,
                    Some(crate::definitions::entity::Computed::Rollup(_))
                ) && doc.get(&f.key) != before.doc.get(&f.key)
            })
        };
        let bump = rolled(&doc, &row);
        let (row, doc) =
            if rows::set_derived(&tx, &model.table(), row.id, row.version, doc.clone(), bump)
                .await?
            {
                (row, doc)
            } else {
                let Some(fresh) = rows::find_for_update(&tx, &model.table(), row.id).await? else {
                    continue;
                };
                let (doc, _) = recompute_one(records, &tx, snapshot, model, world, &fresh).await?;
                if doc == fresh.doc {
                    continue;
                }
                let bump = rolled(&doc, &fresh);
                rows::set_derived(
                    &tx,
                    &model.table(),
                    fresh.id,
                    fresh.version,
                    doc.clone(),
                    bump,
                )
                .await?;
                (fresh, doc)
            };
        written += 1;
        if snapshot.is_looked_up(&model.key) {
            schedule_lookups_of(
                &tx,
                records.clock,
                world.workspace_id,
                snapshot,
                model,
                row.id,
            )
            .await?;
        }
        if row.deleted_at.is_none() {
            changes.push((Some(row.doc), Some(doc)));
        }
    }
    records
        .roll_up(&tx, snapshot, world, model, changes)
        .await?;
    match tx.commit().await? {
        Outcome::Committed => Ok(written),
        Outcome::RunAgain => Err(Error::Unavailable(
            "the recompute batch was rolled back; it runs again".to_owned(),
        )),
    }
}

/// The kind of the hourly job that starts each day's recompute of formulas reading the clock.
pub const VOLATILE_JOB: &str = "records.recompute_volatile";

/// `records.recompute_volatile` (hourly): for every entity with formulas that read the clock,
/// enqueues one recompute per day in its workspace's time zone, the first hour after midnight
/// there (deduplicated by entity and local date, across processes).
#[derive(Debug)]
pub struct VolatileSweep {
    /// The definitions.
    pub registry: Arc<Registry>,
}

#[async_trait::async_trait]
impl Handler for VolatileSweep {
    fn kind(&self) -> &'static str {
        VOLATILE_JOB
    }

    async fn run(&self, ctx: &JobContext, _job: &JobRow) -> Result<(), JobFailure> {
        let now = ctx.clock.now();
        for workspace in store::workspaces::all(ctx.db.conn()).await? {
            let snapshot = self
                .registry
                .snapshot(&ctx.db, workspace.id, workspace.definitions_generation)
                .await?;
            let today = now
                .with_timezone(&crate::workspaces::zone_of(&workspace))
                .date_naive();
            for model in snapshot
                .entities()
                .into_iter()
                .filter(|m| m.scripts.is_volatile())
            {
                let mut job = recompute_job(
                    workspace.id,
                    &model.key,
                    model.definition_id,
                    format!("daily recompute for {today}"),
                    None,
                );
                job.dedupe_key = Some(format!(
                    "{RECOMPUTE_JOB}:volatile:{}:{today}",
                    model.definition_id
                ));
                jobs::enqueue(ctx.db.conn(), &ctx.clock, job).await?;
            }
        }
        Ok(())
    }
}
