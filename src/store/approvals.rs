//! Queries on `approvals` and `approval_tasks`. An approval changes only through [`update`],
//! fenced on its revision, in the same transaction as its tasks, the record's history and the
//! run's progress.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::Conn;
use super::entities::{approval, approval_task};
use crate::error::Result;

pub use approval::Model as ApprovalRow;
pub use approval_task::Model as TaskRow;

/// Approval states as stored.
pub mod status {
    /// Waiting for approvers.
    pub const PENDING: &str = "pending";
    /// Sent back to the submitter, who may resubmit or withdraw.
    pub const RETURNED: &str = "returned";
    /// Approved at every level.
    pub const APPROVED: &str = "approved";
    /// Rejected.
    pub const REJECTED: &str = "rejected";
    /// Withdrawn by the submitter.
    pub const WITHDRAWN: &str = "withdrawn";
    /// Stopped with its run.
    pub const CANCELLED: &str = "cancelled";
}

/// Task states as stored.
pub mod task {
    /// The approver may act now.
    pub const PENDING: &str = "pending";
    /// Sequential: waits for the approvers before it.
    pub const QUEUED: &str = "queued";
    /// Waits for an approver added before it.
    pub const HELD: &str = "held";
    /// Approved.
    pub const APPROVED: &str = "approved";
    /// Rejected.
    pub const REJECTED: &str = "rejected";
    /// Sent back.
    pub const RETURNED: &str = "returned";
    /// Handed to someone else.
    pub const TRANSFERRED: &str = "transferred";
    /// No longer needed (another approver decided, the approval ended).
    pub const CANCELLED: &str = "cancelled";
}

/// Inserts an approval.
///
/// # Errors
/// `Error::Db`.
pub async fn insert(conn: &impl Conn, row: ApprovalRow) -> Result<()> {
    approval::ActiveModel::from(row).insert(conn).await?;
    Ok(())
}

/// Inserts tasks.
///
/// # Errors
/// `Error::Db`.
pub async fn insert_tasks(conn: &impl Conn, rows: Vec<TaskRow>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    approval_task::Entity::insert_many(rows.into_iter().map(approval_task::ActiveModel::from))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// One approval.
///
/// # Errors
/// `Error::Db`.
pub async fn find(conn: &impl Conn, id: Uuid) -> Result<Option<ApprovalRow>> {
    Ok(approval::Entity::find_by_id(id).one(conn).await?)
}

/// The tasks of an approval, in level, round and position order.
///
/// # Errors
/// `Error::Db`.
pub async fn tasks(conn: &impl Conn, approval_id: Uuid) -> Result<Vec<TaskRow>> {
    Ok(approval_task::Entity::find()
        .filter(approval_task::Column::ApprovalId.eq(approval_id))
        .order_by_asc(approval_task::Column::Level)
        .order_by_asc(approval_task::Column::Round)
        .order_by_asc(approval_task::Column::Position)
        .order_by_asc(approval_task::Column::CreatedAt)
        .all(conn)
        .await?)
}

/// Saves an approval's new state if it is still at `revision`; true when it was.
///
/// # Errors
/// `Error::Db`.
pub async fn update(conn: &impl Conn, row: &ApprovalRow, revision: i64) -> Result<bool> {
    let updated = approval::Entity::update_many()
        .col_expr(approval::Column::Status, Expr::value(row.status.clone()))
        .col_expr(approval::Column::Level, Expr::value(row.level))
        .col_expr(approval::Column::Round, Expr::value(row.round))
        .col_expr(approval::Column::Trail, Expr::value(row.trail.clone()))
        .col_expr(approval::Column::DueAt, Expr::value(row.due_at))
        .col_expr(approval::Column::UpdatedAt, Expr::value(row.updated_at))
        .col_expr(approval::Column::FinishedAt, Expr::value(row.finished_at))
        .col_expr(approval::Column::Revision, Expr::value(revision + 1))
        .filter(approval::Column::Id.eq(row.id))
        .filter(approval::Column::Revision.eq(revision))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Sets a task's state.
///
/// # Errors
/// `Error::Db`.
pub async fn set_task(
    conn: &impl Conn,
    id: Uuid,
    status: &str,
    comment: Option<String>,
    acted_at: Option<DateTime<Utc>>,
) -> Result<()> {
    let mut update = approval_task::Entity::update_many()
        .col_expr(approval_task::Column::Status, Expr::value(status))
        .filter(approval_task::Column::Id.eq(id));
    if acted_at.is_some() {
        update = update
            .col_expr(approval_task::Column::Comment, Expr::value(comment))
            .col_expr(approval_task::Column::ActedAt, Expr::value(acted_at));
    }
    update.exec(conn).await?;
    Ok(())
}

/// The pending approval locking a record, if any.
///
/// # Errors
/// `Error::Db`.
pub async fn lock_on(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity: &str,
    record_id: Uuid,
) -> Result<Option<ApprovalRow>> {
    Ok(approval::Entity::find()
        .filter(approval::Column::WorkspaceId.eq(workspace_id))
        .filter(approval::Column::Entity.eq(entity))
        .filter(approval::Column::RecordId.eq(record_id))
        .filter(approval::Column::Status.eq(status::PENDING))
        .filter(approval::Column::LockRecord.eq(true))
        .one(conn)
        .await?)
}

/// How many tasks wait on `approver` (one per pending approval).
///
/// # Errors
/// `Error::Db`.
pub async fn pending_count(conn: &impl Conn, workspace_id: Uuid, approver: Uuid) -> Result<u64> {
    Ok(approval_task::Entity::find()
        .filter(approval_task::Column::WorkspaceId.eq(workspace_id))
        .filter(approval_task::Column::Approver.eq(approver))
        .filter(approval_task::Column::Status.eq(task::PENDING))
        .count(conn)
        .await?)
}

/// Approvals of a workspace where `approver` has a task in one of `task_statuses`, newest
/// first.
///
/// # Errors
/// `Error::Db`.
pub async fn assigned_to(
    conn: &impl Conn,
    workspace_id: Uuid,
    approver: Uuid,
    task_statuses: &[&str],
    limit: u64,
) -> Result<Vec<ApprovalRow>> {
    let ids: Vec<Uuid> = approval_task::Entity::find()
        .select_only()
        .column(approval_task::Column::ApprovalId)
        .filter(approval_task::Column::WorkspaceId.eq(workspace_id))
        .filter(approval_task::Column::Approver.eq(approver))
        .filter(approval_task::Column::Status.is_in(task_statuses.iter().copied()))
        .distinct()
        .into_tuple()
        .all(conn)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(approval::Entity::find()
        .filter(approval::Column::Id.is_in(ids))
        .order_by_desc(approval::Column::CreatedAt)
        .limit(limit)
        .all(conn)
        .await?)
}

/// Approvals of a workspace submitted by `submitter` (or, with `None`, all), newest first.
///
/// # Errors
/// `Error::Db`.
pub async fn listed(
    conn: &impl Conn,
    workspace_id: Uuid,
    submitter: Option<Uuid>,
    status: Option<&str>,
    limit: u64,
) -> Result<Vec<ApprovalRow>> {
    let mut query = approval::Entity::find()
        .filter(approval::Column::WorkspaceId.eq(workspace_id))
        .order_by_desc(approval::Column::CreatedAt)
        .limit(limit);
    if let Some(submitter) = submitter {
        query = query.filter(approval::Column::Submitter.eq(submitter));
    }
    if let Some(status) = status {
        query = query.filter(approval::Column::Status.eq(status));
    }
    Ok(query.all(conn).await?)
}

/// The approvals of one record, newest first.
///
/// # Errors
/// `Error::Db`.
pub async fn of_record(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity: &str,
    record_id: Uuid,
    limit: u64,
) -> Result<Vec<ApprovalRow>> {
    Ok(approval::Entity::find()
        .filter(approval::Column::WorkspaceId.eq(workspace_id))
        .filter(approval::Column::Entity.eq(entity))
        .filter(approval::Column::RecordId.eq(record_id))
        .order_by_desc(approval::Column::CreatedAt)
        .limit(limit)
        .all(conn)
        .await?)
}

/// The approval a run is waiting on at `step_id`, if any.
///
/// # Errors
/// `Error::Db`.
pub async fn of_run(conn: &impl Conn, run_id: Uuid) -> Result<Vec<ApprovalRow>> {
    Ok(approval::Entity::find()
        .filter(approval::Column::RunId.eq(run_id))
        .order_by_desc(approval::Column::CreatedAt)
        .all(conn)
        .await?)
}
