//! Background work kept in the database: jobs enqueued in the caller's transaction, claimed with
//! a lease, retried with backoff, dead-lettered when out of attempts, resumable after a restart.
//!
//! The same queue is the outbox for external effects: a job with a dedupe key is enqueued once
//! however often the write that causes it is retried, and its handler passes the key on as an
//! idempotency key (delivery is at least once).

mod handlers;
mod worker;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::domain::new_id;
use crate::error::{Error, Result};
use crate::store::jobs::{self as rows, JobRow, status};
use crate::store::{Conn, Db};

pub use handlers::{SessionsPurge, TestFail, TestSleep, WebhookDelivery};
pub use worker::{Handler, JobContext, JobFailure, Worker, WorkerSettings};

/// Attempts a job gets unless its kind says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its kind; a handler for it must be registered for it to run.
    pub kind: String,
    /// Input for the handler.
    pub payload: Value,
    /// The workspace it belongs to (none for installation-wide housekeeping).
    pub workspace_id: Option<Uuid>,
    /// Not before this instant (now when `None`).
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts before it is dead.
    pub max_attempts: i32,
    /// Enqueue at most once per key (the outbox's idempotency key).
    pub dedupe_key: Option<String>,
}

impl NewJob {
    /// A job of `kind` with `payload`, due now, with default attempts.
    pub fn new(kind: &str, payload: Value) -> Self {
        Self {
            kind: kind.to_owned(),
            payload,
            workspace_id: None,
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            dedupe_key: None,
        }
    }
}

/// Enqueues a job in the caller's transaction (or on the pool); returns its id, or `None` when
/// a job with the same dedupe key already exists.
///
/// # Errors
/// `Error::Db`.
pub async fn enqueue(conn: &impl Conn, clock: &SharedClock, job: NewJob) -> Result<Option<Uuid>> {
    let now = clock.now();
    let id = new_id();
    let inserted = rows::insert(
        conn,
        JobRow {
            id,
            workspace_id: job.workspace_id,
            kind: job.kind,
            payload: job.payload,
            status: status::QUEUED.to_owned(),
            attempts: 0,
            max_attempts: job.max_attempts.max(1),
            run_at: job.run_at.unwrap_or(now),
            lease_owner: None,
            lease_until: None,
            last_error: None,
            progress_done: 0,
            progress_total: None,
            checkpoint: None,
            dedupe_key: job.dedupe_key.map(|key| scoped_key(job.workspace_id, &key)),
            created_at: now,
            updated_at: now,
            finished_at: None,
        },
    )
    .await?;
    Ok(inserted.then_some(id))
}

/// A dedupe key as stored: keys are unique installation-wide, and scoping them keeps one
/// workspace from suppressing another's job.
pub fn scoped_key(workspace_id: Option<Uuid>, key: &str) -> String {
    match workspace_id {
        Some(workspace) => format!("{workspace}:{key}"),
        None => format!("-:{key}"),
    }
}

/// The delay before retry number `attempt` (1-based): 10 s doubling to at most an hour.
pub fn retry_delay(attempt: i32) -> Duration {
    let exponent = attempt.saturating_sub(1).clamp(0, 16) as u32;
    let secs = 10_i64.saturating_mul(1_i64 << exponent);
    Duration::seconds(secs.min(3_600))
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// Id.
    pub id: Uuid,
    /// Kind.
    pub kind: String,
    /// queued, running, succeeded, dead or cancelled.
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When it is (or was) due.
    pub run_at: DateTime<Utc>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Work done so far.
    pub progress_done: i64,
    /// Total work, when known.
    pub progress_total: Option<i64>,
    /// Input.
    pub payload: Value,
    /// Where the job stands: what a restart resumes from (a recompute's counts and failures).
    pub checkpoint: Option<Value>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Finished (succeeded or dead).
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<JobRow> for JobView {
    fn from(row: JobRow) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            status: row.status,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            last_error: row.last_error,
            progress_done: row.progress_done,
            progress_total: row.progress_total,
            payload: row.payload,
            checkpoint: row.checkpoint,
            created_at: row.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
        }
    }
}

/// One attempt as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    /// Number, from 1.
    pub attempt: i32,
    /// The worker that made it.
    pub worker: String,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished, unless the worker died.
    pub finished_at: Option<DateTime<Utc>>,
    /// succeeded, failed, dead, released; absent when the worker died mid-attempt.
    pub outcome: Option<String>,
    /// The error of a failed attempt.
    pub error: Option<String>,
}

/// Statuses a job list may be filtered by.
const STATUSES: [&str; 5] = [
    status::QUEUED,
    status::RUNNING,
    status::SUCCEEDED,
    status::DEAD,
    status::CANCELLED,
];

/// The jobs of a workspace, newest first.
///
/// # Errors
/// `Error::Invalid` for an unknown status or limit.
pub async fn list(
    db: &Db,
    workspace_id: Uuid,
    status: Option<&str>,
    limit: Option<u64>,
) -> Result<Vec<JobView>> {
    if let Some(status) = status
        && !STATUSES.contains(&status)
    {
        return Err(Error::invalid(
            "/status",
            "enum",
            format!("status must be one of {}", STATUSES.join(", ")),
        ));
    }
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Error::invalid("/limit", "range", "limit is 1–500"));
    }
    Ok(rows::list(db.conn(), workspace_id, status, limit)
        .await?
        .into_iter()
        .map(JobView::from)
        .collect())
}

/// One job of a workspace with its attempts.
///
/// # Errors
/// `Error::NotFound` when it is not the workspace's.
pub async fn get(db: &Db, workspace_id: Uuid, id: Uuid) -> Result<(JobView, Vec<AttemptView>)> {
    let job = rows::find(db.conn(), id)
        .await?
        .filter(|j| j.workspace_id == Some(workspace_id))
        .ok_or_else(|| Error::not_found("job"))?;
    let attempts = rows::attempts(db.conn(), id)
        .await?
        .into_iter()
        .map(|a| AttemptView {
            attempt: a.attempt,
            worker: a.worker,
            started_at: a.started_at,
            finished_at: a.finished_at,
            outcome: a.outcome,
            error: a.error,
        })
        .collect();
    Ok((JobView::from(job), attempts))
}

/// Sends a dead job of a workspace back to the queue with fresh attempts.
///
/// # Errors
/// `Error::NotFound`; `Error::Conflict` when the job is not dead.
pub async fn retry_dead(
    db: &Db,
    clock: &SharedClock,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<JobView> {
    let (job, _) = get(db, workspace_id, id).await?;
    if !rows::requeue_dead(db.conn(), id, DEFAULT_MAX_ATTEMPTS, clock.now()).await? {
        return Err(Error::conflict(
            "/status",
            "not_dead",
            format!("only a dead job can be retried; this one is {}", job.status),
        ));
    }
    Ok(get(db, workspace_id, id).await?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(retry_delay(1), Duration::seconds(10));
        assert_eq!(retry_delay(2), Duration::seconds(20));
        assert_eq!(retry_delay(4), Duration::seconds(80));
        assert_eq!(retry_delay(30), Duration::seconds(3_600));
        assert_eq!(retry_delay(0), Duration::seconds(10));
    }
}
