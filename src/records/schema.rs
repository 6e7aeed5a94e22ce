//! Physical storage following the definitions: an entity's record table appears with its first
//! published version (indexes built at once, on an empty table); later versions add indexes
//! through background jobs (state `indexing` → `ready` or `failed`) and drop the ones no
//! longer needed.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::definitions::{EntityModel, IndexSpec};
use crate::error::{Error, Result};
use crate::jobs::{self, Handler, JobContext, JobFailure, NewJob};
use crate::store::jobs::JobRow;
use crate::store::records::{self as rows, IndexState};
use crate::store::{self, Conn};

/// The job kind that builds an index.
pub const INDEX_JOB: &str = "records.index";

fn state(model: &EntityModel, spec: &IndexSpec, status: &str) -> IndexState {
    IndexState {
        name: spec.name.clone(),
        entity_id: model.definition_id,
        field: spec.fields(),
        unique: spec.unique,
        status: status.to_owned(),
        error: None,
    }
}

/// Makes storage follow a newly published entity version, inside the publishing transaction:
/// creates the table (and, for a new table, its indexes), or schedules the indexes a change
/// adds and drops those it removes.
///
/// # Errors
/// `Error::Db`.
pub async fn prepare(
    conn: &impl Conn,
    clock: &SharedClock,
    workspace_id: Uuid,
    previous: Option<&EntityModel>,
    model: &EntityModel,
) -> Result<()> {
    let table = model.table();
    let wanted = model.indexes();
    let now = clock.now();
    let Some(previous) = previous else {
        rows::create_table(conn, &table).await?;
        for spec in &wanted {
            rows::create_index(conn, &table, spec).await?;
            rows::upsert_index_state(conn, workspace_id, &state(model, spec, "ready"), now).await?;
        }
        return super::search::prepare(conn, clock, workspace_id, model, true).await;
    };
    super::search::prepare(conn, clock, workspace_id, model, false).await?;
    let had: HashSet<String> = previous.indexes().into_iter().map(|s| s.name).collect();
    let keep: HashSet<&str> = wanted.iter().map(|s| s.name.as_str()).collect();
    for name in had.iter().filter(|n| !keep.contains(n.as_str())) {
        rows::drop_index(conn, name).await?;
        rows::delete_index_state(conn, name).await?;
    }
    for spec in wanted.iter().filter(|s| !had.contains(&s.name)) {
        rows::upsert_index_state(conn, workspace_id, &state(model, spec, "indexing"), now).await?;
        let mut job = NewJob::new(
            INDEX_JOB,
            json!(IndexJob {
                table: table.clone(),
                name: spec.name.clone(),
                field: spec.field().to_owned(),
                unique: spec.unique,
                value_type: spec
                    .columns
                    .first()
                    .map(|(_, t)| format!("{t:?}"))
                    .unwrap_or_default(),
                columns: spec
                    .columns
                    .iter()
                    .map(|(key, value_type)| (key.clone(), format!("{value_type:?}")))
                    .collect(),
            }),
        );
        job.workspace_id = Some(workspace_id);
        job.max_attempts = 3;
        jobs::enqueue(conn, clock, job).await?;
    }
    if super::recompute::computed_changed(previous, model) {
        super::recompute::schedule(conn, clock, workspace_id, model, "definition changed").await?;
    }
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexJob {
    table: String,
    name: String,
    field: String,
    unique: bool,
    /// The first column's value type (jobs queued before compound indexes have only this).
    value_type: String,
    /// Every column with its value type.
    #[serde(default)]
    columns: Vec<(String, String)>,
}

fn value_type(name: &str) -> Option<crate::definitions::ValueType> {
    use crate::definitions::ValueType;
    [
        ValueType::Text,
        ValueType::Integer,
        ValueType::Real,
        ValueType::Boolean,
    ]
    .into_iter()
    .find(|v| format!("{v:?}") == name)
}

/// `records.index`: builds one index online, then marks it ready (or failed, with the reason:
/// a unique index over duplicate values) and bumps the workspace generation so every process
/// reloads its definitions.
#[derive(Debug, Default)]
pub struct BuildIndex;

#[async_trait::async_trait]
impl Handler for BuildIndex {
    fn kind(&self) -> &'static str {
        INDEX_JOB
    }

    async fn run(&self, ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let payload: IndexJob = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(format!("malformed index job: {e}")))?;
        let workspace_id = job
            .workspace_id
            .ok_or_else(|| JobFailure::Fatal("index job without workspace".to_owned()))?;
        let named = if payload.columns.is_empty() {
            vec![(payload.field.clone(), payload.value_type.clone())]
        } else {
            payload.columns.clone()
        };
        let columns = named
            .into_iter()
            .map(|(key, name)| {
                value_type(&name)
                    .map(|t| (key, t))
                    .ok_or_else(|| JobFailure::Fatal(format!("unknown value type {name}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let spec = IndexSpec {
            name: payload.name.clone(),
            columns,
            unique: payload.unique,
        };
        let built = rows::build_index_online(ctx.db.conn(), &payload.table, &spec).await;
        let (status, error) = match &built {
            Ok(()) => ("ready", None),
            Err(Error::Db(e)) if store::is_unique_violation(e) => (
                "failed",
                Some(format!(
                    "field {:?} has duplicate values among live records; make them unique, then publish again",
                    payload.field
                )),
            ),
            Err(e) => return Err(JobFailure::Retry(e.to_string())),
        };
        let tx = ctx.db.begin().await?;
        store::workspaces::bump_generation(&tx, workspace_id).await?;
        let entity_id = rows::index_states(&tx, workspace_id)
            .await?
            .into_iter()
            .find(|s| s.name == payload.name)
            .map(|s| s.entity_id);
        // The index may have been dropped by a later publish meanwhile.
        if let Some(entity_id) = entity_id {
            rows::upsert_index_state(
                &tx,
                workspace_id,
                &IndexState {
                    name: payload.name,
                    entity_id,
                    field: spec.fields(),
                    unique: payload.unique,
                    status: status.to_owned(),
                    error,
                },
                ctx.clock.now(),
            )
            .await?;
        }
        ctx.complete_in(&tx).await?;
        tx.commit().await.map_err(Error::from)?;
        store::access_changed();
        Ok(())
    }
}
