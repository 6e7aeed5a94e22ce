//! Durable workflows: definitions compiled per published version (`definition`), triggers
//! matched inside the write that fires them (`triggers`), runs advanced step by step by the
//! `workflow.advance` job with each step's effects and the run's new position committed together
//! (`runtime`), timers for dates and schedules (`timers`), and notifications (`notify`).
//!
//! A run keeps the workflow version it started with. Writes made by a run carry its
//! [`StepOrigin`], so the write path commits the step with them and runs they trigger know their
//! depth (at most [`MAX_DEPTH`]).

pub mod approvals;
pub mod definition;
pub mod designer;
pub mod duration;
pub mod notify;
pub mod runtime;
pub mod service;
pub mod timers;
pub mod triggers;

use std::sync::Mutex;

use serde::Serialize;
use uuid::Uuid;

pub use definition::{Action, Step, Trigger, Workflow};
pub use triggers::{Change, on_write, react, start_run};

use crate::store::workflows::Advance;

/// Writes made by workflows fire triggers up to this depth; deeper, the step fails.
pub const MAX_DEPTH: i32 = 5;

/// The job kind that advances a run.
pub const ADVANCE_JOB: &str = "workflow.advance";

/// A write made by a workflow step: the run, its depth, and the step's progress, committed in
/// the write's own transaction (so the step's effect and the run's new position hold together).
#[derive(Debug)]
pub struct StepOrigin {
    /// The run.
    pub run_id: Uuid,
    /// Its workflow.
    pub workflow_key: String,
    /// The step writing.
    pub step_id: String,
    /// The run's depth (0 for a run started by a person or a schedule).
    pub depth: i32,
    /// The run's progress to commit with the write.
    pub advance: Mutex<Option<Advance>>,
    /// A round-robin turn to take with the write: the rotation's key and where it stood.
    pub rotation: Option<(String, i64)>,
}

impl StepOrigin {
    /// How history names it.
    pub fn note(&self) -> serde_json::Value {
        serde_json::json!({"key": self.workflow_key, "run": self.run_id, "step": self.step_id})
    }
}

/// What publishing a workflow version checks and sets going, in the publishing transaction:
/// the roles it names must exist in the workspace; a schedule plans its first occurrence and a
/// date trigger the timers of existing records.
///
/// # Errors
/// `Error::Invalid` naming each unknown role by pointer; `Error::Db`.
pub async fn published(
    conn: &impl crate::store::Conn,
    clock: &crate::clock::SharedClock,
    workspace_id: Uuid,
    (key, definition_id, version): (&str, Uuid, i32),
    document: &serde_json::Value,
) -> crate::error::Result<()> {
    let roles = crate::workspaces::load_directory(conn, workspace_id)
        .await?
        .roles;
    let problems: Vec<crate::error::FieldError> = definition::roles_named(document)
        .into_iter()
        .filter(|(_, role)| !roles.contains_key(role))
        .map(|(pointer, role)| {
            crate::error::FieldError::new(
                format!("/document{pointer}"),
                "unknown_role",
                format!("the workspace has no role {role:?}"),
            )
        })
        .collect();
    if !problems.is_empty() {
        return Err(crate::error::Error::invalid_all(
            "the workflow names roles that do not exist",
            problems,
        ));
    }
    let workflow = Workflow::compile(
        &crate::script::shared(),
        key,
        definition_id,
        version,
        std::sync::Arc::new(document.clone()),
        "/document",
    )
    .map_err(|problems| crate::error::Error::invalid_all("the workflow is invalid", problems))?;
    let workspace = crate::store::workspaces::find(conn, workspace_id)
        .await?
        .ok_or_else(|| crate::error::Error::not_found("workspace"))?;
    timers::on_publish(
        conn,
        clock,
        workspace_id,
        &workflow,
        crate::workspaces::zone_of(&workspace),
    )
    .await
}

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// Id.
    pub id: Uuid,
    /// The workflow.
    pub workflow: String,
    /// The version it runs.
    pub version: i32,
    /// running, waiting, completed, failed or cancelled.
    pub status: String,
    /// The entity of its record.
    pub entity: Option<String>,
    /// Its record.
    pub record_id: Option<Uuid>,
    /// What started it.
    pub event: serde_json::Value,
    /// The step it runs next (or failed at).
    pub cursor: Option<String>,
    /// Outputs of its steps, by step id.
    pub vars: serde_json::Value,
    /// Its depth.
    pub depth: i32,
    /// Steps run.
    pub steps_run: i32,
    /// Why it failed.
    pub error: Option<String>,
    /// The step that failed.
    pub failed_step: Option<String>,
    /// When a waiting run wakes.
    pub wake_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Who started it (a person's change or button).
    pub started_by: Option<Uuid>,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Finished.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Its log, when one run is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepView>>,
}

/// One step of a run's log.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    /// Order in the log, from 1.
    pub seq: i32,
    /// The step id.
    pub step: String,
    /// Its type.
    pub r#type: String,
    /// succeeded, failed or waiting.
    pub status: String,
    /// What it was given.
    pub input: Option<serde_json::Value>,
    /// What it produced.
    pub output: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Finished.
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// How long it took, in microseconds.
    pub duration_us: i64,
}

impl From<crate::store::workflows::RunRow> for RunView {
    fn from(row: crate::store::workflows::RunRow) -> Self {
        Self {
            id: row.id,
            workflow: row.workflow_key,
            version: row.version,
            status: row.status,
            entity: row.entity,
            record_id: row.record_id,
            event: row.event,
            cursor: row.cursor,
            vars: row.vars,
            depth: row.depth,
            steps_run: row.steps_run,
            error: row.error,
            failed_step: row.failed_step,
            wake_at: row.wake_at,
            started_by: row.started_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
            steps: None,
        }
    }
}

impl From<crate::store::workflows::StepRow> for StepView {
    fn from(row: crate::store::workflows::StepRow) -> Self {
        Self {
            seq: row.seq,
            step: row.step_id,
            r#type: row.step_type,
            status: row.status,
            input: row.input,
            output: row.output,
            error: row.error,
            started_at: row.started_at,
            finished_at: row.finished_at,
            duration_us: row.duration_us,
        }
    }
}
