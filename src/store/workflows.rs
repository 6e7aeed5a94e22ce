//! Queries on `workflow_runs`, `workflow_steps`, `notifications` and `workflow_rotations`.
//!
//! A run advances only through [`advance`], fenced on its revision: the step's log row, the
//! run's new position and the step's own effects commit in one transaction or not at all, and a
//! second executor that read the same revision changes nothing.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use serde_json::Value;
use uuid::Uuid;

use super::Conn;
use super::entities::{notification, workflow_rotation, workflow_run, workflow_step};
use crate::error::Result;

pub use notification::Model as NotificationRow;
pub use workflow_run::Model as RunRow;
pub use workflow_step::Model as StepRow;

/// Run states as stored.
pub mod status {
    /// Runnable now.
    pub const RUNNING: &str = "running";
    /// Paused until `wake_at` (a wait step).
    pub const WAITING: &str = "waiting";
    /// Done.
    pub const COMPLETED: &str = "completed";
    /// Stopped at a failed step; retryable.
    pub const FAILED: &str = "failed";
    /// Stopped by a person, or because its record went away.
    pub const CANCELLED: &str = "cancelled";
}

/// Inserts a new run.
///
/// # Errors
/// `Error::Db`.
pub async fn insert_run(conn: &impl Conn, row: RunRow) -> Result<()> {
    workflow_run::ActiveModel::from(row).insert(conn).await?;
    Ok(())
}

/// One run.
///
/// # Errors
/// `Error::Db`.
pub async fn find_run(conn: &impl Conn, id: Uuid) -> Result<Option<RunRow>> {
    Ok(workflow_run::Entity::find_by_id(id).one(conn).await?)
}

/// Where a run goes after a step, applied only if it is still at `revision`.
#[derive(Debug, Clone)]
pub struct Advance {
    /// The run.
    pub run_id: Uuid,
    /// The revision it was read at.
    pub revision: i64,
    /// Its new status.
    pub status: &'static str,
    /// The step to run next (none: finished or failed).
    pub cursor: Option<String>,
    /// Its variables after the step.
    pub vars: Value,
    /// When a waiting run wakes.
    pub wake_at: Option<DateTime<Utc>>,
    /// The error of a failed run.
    pub error: Option<String>,
    /// The step that failed.
    pub failed_step: Option<String>,
    /// Steps run so far (including this one).
    pub steps_run: i32,
    /// When.
    pub now: DateTime<Utc>,
    /// The step's log row, if a step ran.
    pub log: Option<StepRow>,
}

impl Advance {
    /// A change of `run`'s status alone: same position, variables and step count, no log row,
    /// no wake time, no error.
    pub fn status_of(run: &RunRow, status: &'static str, now: DateTime<Utc>) -> Self {
        Self {
            run_id: run.id,
            revision: run.revision,
            status,
            cursor: run.cursor.clone(),
            vars: run.vars.clone(),
            wake_at: None,
            error: None,
            failed_step: None,
            steps_run: run.steps_run,
            now,
            log: None,
        }
    }
}

/// Applies `advance` if the run is still at its revision; true when it did.
///
/// # Errors
/// `Error::Db`.
pub async fn advance(conn: &impl Conn, advance: Advance) -> Result<bool> {
    let finished = matches!(
        advance.status,
        status::COMPLETED | status::FAILED | status::CANCELLED
    );
    let updated = workflow_run::Entity::update_many()
        .col_expr(workflow_run::Column::Status, Expr::value(advance.status))
        .col_expr(workflow_run::Column::Cursor, Expr::value(advance.cursor))
        .col_expr(workflow_run::Column::Vars, Expr::value(advance.vars))
        .col_expr(workflow_run::Column::WakeAt, Expr::value(advance.wake_at))
        .col_expr(workflow_run::Column::Error, Expr::value(advance.error))
        .col_expr(
            workflow_run::Column::FailedStep,
            Expr::value(advance.failed_step),
        )
        .col_expr(
            workflow_run::Column::StepsRun,
            Expr::value(advance.steps_run),
        )
        .col_expr(
            workflow_run::Column::Revision,
            Expr::col(workflow_run::Column::Revision).add(1),
        )
        .col_expr(workflow_run::Column::UpdatedAt, Expr::value(advance.now))
        .col_expr(
            workflow_run::Column::FinishedAt,
            Expr::value(finished.then_some(advance.now)),
        )
        .filter(workflow_run::Column::Id.eq(advance.run_id))
        .filter(workflow_run::Column::Revision.eq(advance.revision))
        .exec(conn)
        .await?;
    if updated.rows_affected != 1 {
        return Ok(false);
    }
    if let Some(log) = advance.log {
        workflow_step::ActiveModel::from(log).insert(conn).await?;
    }
    Ok(true)
}

/// Sets the output of a logged step (what an approval step asked, known once it started).
///
/// # Errors
/// `Error::Db`.
pub async fn set_step_output(
    conn: &impl Conn,
    run_id: Uuid,
    seq: i32,
    output: Value,
) -> Result<()> {
    workflow_step::Entity::update_many()
        .col_expr(workflow_step::Column::Output, Expr::value(Some(output)))
        .filter(workflow_step::Column::RunId.eq(run_id))
        .filter(workflow_step::Column::Seq.eq(seq))
        .exec(conn)
        .await?;
    Ok(())
}

/// Filters of a run list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Of this workflow.
    pub workflow: Option<String>,
    /// In this status.
    pub status: Option<String>,
    /// Of this entity's record.
    pub record: Option<(String, Uuid)>,
    /// Created before this run (for paging).
    pub before: Option<Uuid>,
}

/// Runs of a workspace, newest first.
///
/// # Errors
/// `Error::Db`.
pub async fn runs(
    conn: &impl Conn,
    workspace_id: Uuid,
    filter: RunFilter,
    limit: u64,
) -> Result<Vec<RunRow>> {
    let mut query = workflow_run::Entity::find()
        .filter(workflow_run::Column::WorkspaceId.eq(workspace_id))
        .order_by_desc(workflow_run::Column::Id)
        .limit(limit);
    if let Some(key) = filter.workflow {
        query = query.filter(workflow_run::Column::WorkflowKey.eq(key));
    }
    if let Some(status) = filter.status {
        query = query.filter(workflow_run::Column::Status.eq(status));
    }
    if let Some((entity, id)) = filter.record {
        query = query
            .filter(workflow_run::Column::Entity.eq(entity))
            .filter(workflow_run::Column::RecordId.eq(id));
    }
    if let Some(before) = filter.before {
        query = query.filter(workflow_run::Column::Id.lt(before));
    }
    Ok(query.all(conn).await?)
}

/// The open (running or waiting) runs of one record, to cancel when it is deleted.
///
/// # Errors
/// `Error::Db`.
pub async fn open_runs_of(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity: &str,
    record_id: Uuid,
) -> Result<Vec<RunRow>> {
    Ok(workflow_run::Entity::find()
        .filter(workflow_run::Column::WorkspaceId.eq(workspace_id))
        .filter(workflow_run::Column::Entity.eq(entity))
        .filter(workflow_run::Column::RecordId.eq(record_id))
        .filter(workflow_run::Column::Status.is_in([status::RUNNING, status::WAITING]))
        .all(conn)
        .await?)
}

/// Cancels the waiting runs of a record (it was deleted).
///
/// # Errors
/// `Error::Db`.
pub async fn cancel_waiting(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity: &str,
    record_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64> {
    Ok(workflow_run::Entity::update_many()
        .col_expr(workflow_run::Column::Status, Expr::value(status::CANCELLED))
        .col_expr(
            workflow_run::Column::Error,
            Expr::value(Some("its record was deleted".to_owned())),
        )
        .col_expr(
            workflow_run::Column::Revision,
            Expr::col(workflow_run::Column::Revision).add(1),
        )
        .col_expr(workflow_run::Column::UpdatedAt, Expr::value(now))
        .col_expr(workflow_run::Column::FinishedAt, Expr::value(Some(now)))
        .filter(workflow_run::Column::WorkspaceId.eq(workspace_id))
        .filter(workflow_run::Column::Entity.eq(entity))
        .filter(workflow_run::Column::RecordId.eq(record_id))
        .filter(workflow_run::Column::Status.eq(status::WAITING))
        .exec(conn)
        .await?
        .rows_affected)
}

/// The log of a run, in order.
///
/// # Errors
/// `Error::Db`.
pub async fn steps(conn: &impl Conn, run_id: Uuid) -> Result<Vec<StepRow>> {
    Ok(workflow_step::Entity::find()
        .filter(workflow_step::Column::RunId.eq(run_id))
        .order_by_asc(workflow_step::Column::Seq)
        .all(conn)
        .await?)
}

/// Counts of a workspace's runs by status (the runs page header).
///
/// # Errors
/// `Error::Db`.
pub async fn count_by_status(conn: &impl Conn, workspace_id: Uuid) -> Result<Vec<(String, i64)>> {
    Ok(workflow_run::Entity::find()
        .select_only()
        .column(workflow_run::Column::Status)
        .column_as(workflow_run::Column::Id.count(), "n")
        .filter(workflow_run::Column::WorkspaceId.eq(workspace_id))
        .group_by(workflow_run::Column::Status)
        .into_tuple::<(String, i64)>()
        .all(conn)
        .await?)
}

/// Inserts notifications; those whose dedupe key exists are skipped (a step run again).
///
/// # Errors
/// `Error::Db`.
pub async fn insert_notifications(conn: &impl Conn, rows: Vec<NotificationRow>) -> Result<()> {
    for row in rows {
        notification::Entity::insert(notification::ActiveModel::from(row))
            .on_conflict(
                OnConflict::column(notification::Column::DedupeKey)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// A member's notifications, newest first.
///
/// # Errors
/// `Error::Db`.
pub async fn notifications(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
    unread_only: bool,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<NotificationRow>> {
    let mut query = notification::Entity::find()
        .filter(notification::Column::WorkspaceId.eq(workspace_id))
        .filter(notification::Column::AccountId.eq(account_id))
        .order_by_desc(notification::Column::CreatedAt)
        .order_by_desc(notification::Column::Id)
        .limit(limit);
    if unread_only {
        query = query.filter(notification::Column::ReadAt.is_null());
    }
    if let Some(before) = before {
        query = query.filter(notification::Column::Id.lt(before));
    }
    Ok(query.all(conn).await?)
}

/// How many unread notifications a member has.
///
/// # Errors
/// `Error::Db`.
pub async fn unread_count(conn: &impl Conn, workspace_id: Uuid, account_id: Uuid) -> Result<i64> {
    let count: Option<i64> = notification::Entity::find()
        .select_only()
        .column_as(notification::Column::Id.count(), "n")
        .filter(notification::Column::WorkspaceId.eq(workspace_id))
        .filter(notification::Column::AccountId.eq(account_id))
        .filter(notification::Column::ReadAt.is_null())
        .into_tuple()
        .one(conn)
        .await?;
    Ok(count.unwrap_or(0))
}

/// Marks a member's notification (or, with `None`, all of them) read; returns how many changed.
///
/// # Errors
/// `Error::Db`.
pub async fn mark_read(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
    id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut update = notification::Entity::update_many()
        .col_expr(notification::Column::ReadAt, Expr::value(Some(now)))
        .filter(notification::Column::WorkspaceId.eq(workspace_id))
        .filter(notification::Column::AccountId.eq(account_id))
        .filter(notification::Column::ReadAt.is_null());
    if let Some(id) = id {
        update = update.filter(notification::Column::Id.eq(id));
    }
    Ok(update.exec(conn).await?.rows_affected)
}

/// One of a member's notifications.
///
/// # Errors
/// `Error::Db`.
pub async fn notification(
    conn: &impl Conn,
    workspace_id: Uuid,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<NotificationRow>> {
    Ok(notification::Entity::find_by_id(id)
        .filter(notification::Column::WorkspaceId.eq(workspace_id))
        .filter(notification::Column::AccountId.eq(account_id))
        .one(conn)
        .await?)
}

/// Where a rotation stands (0 before its first turn).
///
/// # Errors
/// `Error::Db`.
pub async fn rotation(conn: &impl Conn, workspace_id: Uuid, key: &str) -> Result<i64> {
    Ok(
        workflow_rotation::Entity::find_by_id((workspace_id, key.to_owned()))
            .one(conn)
            .await?
            .map_or(0, |row| row.position),
    )
}

/// Moves a rotation on from `expected`, in the caller's transaction (the turn is taken with the
/// step's write, or not at all).
///
/// # Errors
/// `Error::Conflict` (code `run_moved`) when another step took the turn meanwhile; `Error::Db`.
pub async fn move_rotation(
    conn: &impl Conn,
    workspace_id: Uuid,
    key: &str,
    expected: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    let moved = if expected == 0 {
        workflow_rotation::Entity::insert(workflow_rotation::ActiveModel {
            workspace_id: Set(workspace_id),
            key: Set(key.to_owned()),
            position: Set(1),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([
                workflow_rotation::Column::WorkspaceId,
                workflow_rotation::Column::Key,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?
            == 1
    } else {
        workflow_rotation::Entity::update_many()
            .col_expr(
                workflow_rotation::Column::Position,
                Expr::value(expected + 1),
            )
            .col_expr(workflow_rotation::Column::UpdatedAt, Expr::value(now))
            .filter(workflow_rotation::Column::WorkspaceId.eq(workspace_id))
            .filter(workflow_rotation::Column::Key.eq(key))
            .filter(workflow_rotation::Column::Position.eq(expected))
            .exec(conn)
            .await?
            .rows_affected
            == 1
    };
    if moved {
        Ok(())
    } else {
        Err(crate::error::Error::conflict(
            "/rotation",
            "run_moved",
            "another assignment took this turn meanwhile",
        ))
    }
}
