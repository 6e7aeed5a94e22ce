//! Queries on `jobs` and `job_attempts`: enqueue, claim with a lease, fenced completion.
//!
//! Every state change after a claim is "fenced": it applies only while the row still carries this
//! worker's lease and attempt number, so a worker that lost its lease can never complete a job
//! that another worker has taken over.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, Statement, UpdateMany, Value,
};
use uuid::Uuid;

use super::entities::{job, job_attempt};
use super::{Backend, Conn, backend_of};
use crate::error::Result;

pub use job::Model as JobRow;
pub use job_attempt::Model as AttemptRow;

/// Job states as stored.
pub mod status {
    /// Waiting for its `run_at`.
    pub const QUEUED: &str = "queued";
    /// Leased by a worker.
    pub const RUNNING: &str = "running";
    /// Done.
    pub const SUCCEEDED: &str = "succeeded";
    /// Out of attempts; kept for inspection and manual retry.
    pub const DEAD: &str = "dead";
    /// Cancelled before it completed.
    pub const CANCELLED: &str = "cancelled";
}

/// Inserts a job unless one with the same dedupe key exists; returns whether it was inserted.
///
/// # Errors
/// `Error::Db`.
pub async fn insert(conn: &impl Conn, row: JobRow) -> Result<bool> {
    let model = job::ActiveModel {
        id: Set(row.id),
        workspace_id: Set(row.workspace_id),
        kind: Set(row.kind),
        payload: Set(row.payload),
        status: Set(row.status),
        attempts: Set(row.attempts),
        max_attempts: Set(row.max_attempts),
        run_at: Set(row.run_at),
        lease_owner: Set(row.lease_owner),
        lease_until: Set(row.lease_until),
        last_error: Set(row.last_error),
        progress_done: Set(row.progress_done),
        progress_total: Set(row.progress_total),
        checkpoint: Set(row.checkpoint),
        dedupe_key: Set(row.dedupe_key),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
        finished_at: Set(row.finished_at),
    };
    let inserted = job::Entity::insert(model)
        .on_conflict(
            OnConflict::column(job::Column::DedupeKey)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

fn placeholder(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Postgres => format!("${n}"),
        Backend::Sqlite => "?".to_owned(),
    }
}

/// Leases up to `limit` due jobs of the given kinds to `owner` until `lease_until`, and logs an
/// attempt for each. Due means queued with `run_at <= now`, or running with an expired lease.
/// On PostgreSQL concurrent claimers skip each other's rows (`FOR UPDATE SKIP LOCKED`).
///
/// # Errors
/// `Error::Db`.
pub async fn claim(
    conn: &impl Conn,
    owner: &str,
    kinds: &[&str],
    limit: u64,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<JobRow>> {
    if kinds.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let backend = backend_of(conn);
    let mut values: Vec<Value> = vec![
        owner.into(),
        lease_until.into(),
        now.into(),
        (limit as i64).into(),
    ];
    let kind_params: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            values.push((*kind).into());
            placeholder(backend, 5 + i)
        })
        .collect();
    let (p1, p2, p3, p4) = (
        placeholder(backend, 1),
        placeholder(backend, 2),
        placeholder(backend, 3),
        placeholder(backend, 4),
    );
    // The SQL is fixed text; every value travels as a bound parameter.
    let due = format!(
        "SELECT id FROM jobs WHERE ((status = 'queued' AND run_at <= {p3}) \
         OR (status = 'running' AND lease_until < {p3})) AND kind IN ({kinds}) \
         ORDER BY run_at, id LIMIT {p4}",
        kinds = kind_params.join(", ")
    );
    let set = format!(
        "status = 'running', lease_owner = {p1}, lease_until = {p2}, \
         attempts = attempts + 1, updated_at = {p3}"
    );
    let sql = match backend {
        Backend::Postgres => format!(
            "WITH due AS ({due} FOR UPDATE SKIP LOCKED) \
             UPDATE jobs SET {set} FROM due WHERE jobs.id = due.id RETURNING jobs.*"
        ),
        // SQLite has one writer at a time, so the sub-select and update are already atomic.
        Backend::Sqlite => {
            // SQLite numbers `?` by position, so the values are bound in order of appearance.
            let mut ordered: Vec<Value> = vec![
                owner.into(),
                lease_until.into(),
                now.into(),
                now.into(),
                now.into(),
            ];
            ordered.extend(kinds.iter().map(|k| Value::from(*k)));
            ordered.push((limit as i64).into());
            values = ordered;
            format!("UPDATE jobs SET {set} WHERE id IN ({due}) RETURNING *")
        }
    };
    let stmt = Statement::from_sql_and_values(conn.get_database_backend(), sql, values);
    let claimed = job::Entity::find().from_raw_sql(stmt).all(conn).await?;
    for row in &claimed {
        job_attempt::ActiveModel {
            job_id: Set(row.id),
            attempt: Set(row.attempts),
            worker: Set(owner.to_owned()),
            started_at: Set(now),
            finished_at: Set(None),
            outcome: Set(None),
            error: Set(None),
        }
        .insert(conn)
        .await?;
    }
    Ok(claimed)
}

/// A claimed job's lease identity: the fence every later change must match.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The job.
    pub job_id: Uuid,
    /// The worker holding it.
    pub owner: String,
    /// The attempt number of this claim.
    pub attempt: i32,
}

fn fenced(lease: &Lease) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(job::Column::Id.eq(lease.job_id))
        .add(job::Column::LeaseOwner.eq(lease.owner.clone()))
        .add(job::Column::Attempts.eq(lease.attempt))
        .add(job::Column::Status.eq(status::RUNNING))
}

/// Extends a lease; false when it was lost.
///
/// # Errors
/// `Error::Db`.
pub async fn renew(conn: &impl Conn, lease: &Lease, until: DateTime<Utc>) -> Result<bool> {
    let result = job::Entity::update_many()
        .col_expr(job::Column::LeaseUntil, Expr::value(Some(until)))
        .filter(fenced(lease))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

async fn finish_attempt(
    conn: &impl Conn,
    lease: &Lease,
    outcome: &str,
    error: Option<String>,
    now: DateTime<Utc>,
) -> Result<()> {
    job_attempt::Entity::update_many()
        .col_expr(job_attempt::Column::FinishedAt, Expr::value(Some(now)))
        .col_expr(
            job_attempt::Column::Outcome,
            Expr::value(Some(outcome.to_owned())),
        )
        .col_expr(job_attempt::Column::Error, Expr::value(error))
        .filter(job_attempt::Column::JobId.eq(lease.job_id))
        .filter(job_attempt::Column::Attempt.eq(lease.attempt))
        .exec(conn)
        .await?;
    Ok(())
}

/// An update that ends the lease of a job (the caller adds the new status).
fn end_lease(now: DateTime<Utc>) -> UpdateMany<job::Entity> {
    job::Entity::update_many()
        .col_expr(job::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(
            job::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
}

/// Applies `update` only while `lease` holds, then records the attempt's outcome; false (and
/// nothing written) when the lease was lost. Callers pass a transaction so both writes commit
/// together.
async fn finish_fenced(
    conn: &impl Conn,
    update: UpdateMany<job::Entity>,
    lease: &Lease,
    outcome: &str,
    error: Option<String>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let result = update.filter(fenced(lease)).exec(conn).await?;
    if result.rows_affected != 1 {
        return Ok(false);
    }
    finish_attempt(conn, lease, outcome, error, now).await?;
    Ok(true)
}

/// Marks a job succeeded; false (and nothing written) when the lease was lost.
///
/// # Errors
/// `Error::Db`.
pub async fn complete(conn: &impl Conn, lease: &Lease, now: DateTime<Utc>) -> Result<bool> {
    let update = end_lease(now)
        .col_expr(job::Column::Status, Expr::value(status::SUCCEEDED))
        .col_expr(job::Column::FinishedAt, Expr::value(Some(now)));
    finish_fenced(conn, update, lease, "succeeded", None, now).await
}

/// When the next queued job of these kinds is due (none queued: `None`).
///
/// # Errors
/// `Error::Db`.
pub async fn next_due(conn: &impl Conn, kinds: &[&str]) -> Result<Option<DateTime<Utc>>> {
    let next = job::Entity::find()
        .select_only()
        .column(job::Column::RunAt)
        .filter(job::Column::Status.eq(status::QUEUED))
        .filter(job::Column::Kind.is_in(kinds.iter().copied()))
        .order_by_asc(job::Column::RunAt)
        .limit(1)
        .into_tuple::<DateTime<Utc>>()
        .one(conn)
        .await?;
    Ok(next)
}

/// Puts a leased job back in the queue, due at `run_at` with a new payload, as its successful
/// end (a timer whose date moved while it fired, or a yearly timer's next year); the attempt
/// count starts again with a fresh attempt log. False when the lease was lost.
///
/// # Errors
/// `Error::Db`.
pub async fn reschedule(
    conn: &impl Conn,
    lease: &Lease,
    run_at: DateTime<Utc>,
    payload: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<bool> {
    let update = end_lease(now)
        .col_expr(job::Column::Status, Expr::value(status::QUEUED))
        .col_expr(job::Column::RunAt, Expr::value(run_at))
        .col_expr(job::Column::Payload, Expr::value(payload))
        .col_expr(job::Column::Attempts, Expr::value(0));
    let moved = finish_fenced(conn, update, lease, "succeeded", None, now).await?;
    if moved {
        // The next occurrence starts counting attempts again from 1; the finished cycle's
        // attempt rows would collide with its numbers (a yearly timer reschedules every year).
        job_attempt::Entity::delete_many()
            .filter(job_attempt::Column::JobId.eq(lease.job_id))
            .exec(conn)
            .await?;
    }
    Ok(moved)
}

/// Moves the queued job with this (scoped) dedupe key to `run_at` with a new payload; false
/// when there is no queued one (none, finished, or running now).
///
/// # Errors
/// `Error::Db`.
pub async fn replan_keyed(
    conn: &impl Conn,
    key: &str,
    run_at: DateTime<Utc>,
    payload: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<bool> {
    let updated = job::Entity::update_many()
        .col_expr(job::Column::RunAt, Expr::value(run_at))
        .col_expr(job::Column::Payload, Expr::value(payload))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::DedupeKey.eq(key))
        .filter(job::Column::Status.eq(status::QUEUED))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected > 0)
}

/// Deletes the finished (succeeded, dead or cancelled) job with this (scoped) dedupe key, so
/// the key can plan a new one.
///
/// # Errors
/// `Error::Db`.
pub async fn forget_finished_keyed(conn: &impl Conn, key: &str) -> Result<()> {
    job::Entity::delete_many()
        .filter(job::Column::DedupeKey.eq(key))
        .filter(job::Column::Status.is_in([status::SUCCEEDED, status::DEAD, status::CANCELLED]))
        .exec(conn)
        .await?;
    Ok(())
}

/// Deletes the jobs with these (scoped) dedupe keys that no worker holds (queued or finished),
/// payload and all: what they carried must not remain.
///
/// # Errors
/// `Error::Db`.
pub async fn delete_unclaimed_keyed(conn: &impl Conn, keys: Vec<String>) -> Result<()> {
    for chunk in keys.chunks(500) {
        job::Entity::delete_many()
            .filter(job::Column::DedupeKey.is_in(chunk.iter().cloned()))
            .filter(job::Column::Status.ne(status::RUNNING))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// The jobs with these (scoped) dedupe keys.
///
/// # Errors
/// `Error::Db`.
pub async fn by_keys(conn: &impl Conn, keys: Vec<String>) -> Result<Vec<JobRow>> {
    let mut found = Vec::new();
    for chunk in keys.chunks(500) {
        found.extend(
            job::Entity::find()
                .filter(job::Column::DedupeKey.is_in(chunk.iter().cloned()))
                .all(conn)
                .await?,
        );
    }
    Ok(found)
}

/// Cancels the queued job with this (scoped) dedupe key; true when there was one.
///
/// # Errors
/// `Error::Db`.
pub async fn cancel_keyed(conn: &impl Conn, key: &str, now: DateTime<Utc>) -> Result<bool> {
    let updated = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(status::CANCELLED))
        .col_expr(job::Column::FinishedAt, Expr::value(Some(now)))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::DedupeKey.eq(key))
        .filter(job::Column::Status.eq(status::QUEUED))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected > 0)
}

/// Records a failed attempt: back to the queue at `retry_at`, or dead when `retry_at` is `None`.
/// False when the lease was lost.
///
/// # Errors
/// `Error::Db`.
pub async fn fail(
    conn: &impl Conn,
    lease: &Lease,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let update =
        end_lease(now).col_expr(job::Column::LastError, Expr::value(Some(error.to_owned())));
    let (update, outcome) = match retry_at {
        Some(at) => (
            update
                .col_expr(job::Column::Status, Expr::value(status::QUEUED))
                .col_expr(job::Column::RunAt, Expr::value(at)),
            "failed",
        ),
        None => (
            update
                .col_expr(job::Column::Status, Expr::value(status::DEAD))
                .col_expr(job::Column::FinishedAt, Expr::value(Some(now))),
            "dead",
        ),
    };
    finish_fenced(conn, update, lease, outcome, Some(error.to_owned()), now).await
}

/// Gives a leased job back to the queue unfinished (graceful shutdown). The attempt does not
/// count against the job's retries.
///
/// # Errors
/// `Error::Db`.
pub async fn release(conn: &impl Conn, lease: &Lease, now: DateTime<Utc>) -> Result<bool> {
    let update = end_lease(now)
        .col_expr(job::Column::Status, Expr::value(status::QUEUED))
        .col_expr(
            job::Column::MaxAttempts,
            Expr::col(job::Column::MaxAttempts).add(1),
        );
    finish_fenced(conn, update, lease, "released", None, now).await
}

/// Records progress (and an optional checkpoint to resume from); false when the lease was lost.
///
/// # Errors
/// `Error::Db`.
pub async fn set_progress(
    conn: &impl Conn,
    lease: &Lease,
    done: i64,
    total: Option<i64>,
    checkpoint: Option<serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let mut update = job::Entity::update_many()
        .col_expr(job::Column::ProgressDone, Expr::value(done))
        .col_expr(job::Column::ProgressTotal, Expr::value(total))
        .col_expr(job::Column::UpdatedAt, Expr::value(now));
    if let Some(checkpoint) = checkpoint {
        update = update.col_expr(job::Column::Checkpoint, Expr::value(Some(checkpoint)));
    }
    let result = update.filter(fenced(lease)).exec(conn).await?;
    Ok(result.rows_affected == 1)
}

/// One job.
///
/// # Errors
/// `Error::Db`.
pub async fn find(conn: &impl Conn, id: Uuid) -> Result<Option<JobRow>> {
    Ok(job::Entity::find_by_id(id).one(conn).await?)
}

/// The attempts at a job, in order.
///
/// # Errors
/// `Error::Db`.
pub async fn attempts(conn: &impl Conn, job_id: Uuid) -> Result<Vec<AttemptRow>> {
    Ok(job_attempt::Entity::find()
        .filter(job_attempt::Column::JobId.eq(job_id))
        .order_by_asc(job_attempt::Column::Attempt)
        .all(conn)
        .await?)
}

/// Jobs of a workspace, newest first, optionally in one status.
///
/// # Errors
/// `Error::Db`.
pub async fn list(
    conn: &impl Conn,
    workspace_id: Uuid,
    status: Option<&str>,
    limit: u64,
) -> Result<Vec<JobRow>> {
    let mut query = job::Entity::find().filter(job::Column::WorkspaceId.eq(workspace_id));
    if let Some(status) = status {
        query = query.filter(job::Column::Status.eq(status));
    }
    Ok(query
        .order_by_desc(job::Column::CreatedAt)
        .order_by_desc(job::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}

/// Puts a dead job back in the queue with `extra_attempts` more tries; false if it is not dead.
///
/// # Errors
/// `Error::Db`.
pub async fn requeue_dead(
    conn: &impl Conn,
    id: Uuid,
    extra_attempts: i32,
    now: DateTime<Utc>,
) -> Result<bool> {
    let result = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(status::QUEUED))
        .col_expr(job::Column::RunAt, Expr::value(now))
        .col_expr(
            job::Column::MaxAttempts,
            Expr::col(job::Column::Attempts).add(extra_attempts),
        )
        .col_expr(
            job::Column::FinishedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::Status.eq(status::DEAD))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The queue as monitoring sees it: jobs per kind and state (queued, running, dead), and how
/// long the oldest due job has waited.
#[derive(Debug, Default)]
pub struct QueueGauges {
    /// (kind, status, count) for queued, running and dead jobs.
    pub counts: Vec<(String, String, i64)>,
    /// When the oldest queued job became due (none: nothing is waiting).
    pub oldest_due: Option<DateTime<Utc>>,
}

/// The queue's gauges at `now`.
///
/// # Errors
/// `Error::Db`.
pub async fn gauges(conn: &impl Conn, now: DateTime<Utc>) -> Result<QueueGauges> {
    let counts = job::Entity::find()
        .select_only()
        .column(job::Column::Kind)
        .column(job::Column::Status)
        .column_as(Expr::col(job::Column::Id).count(), "count")
        .filter(job::Column::Status.is_in([status::QUEUED, status::RUNNING, status::DEAD]))
        .group_by(job::Column::Kind)
        .group_by(job::Column::Status)
        .into_tuple::<(String, String, i64)>()
        .all(conn)
        .await?;
    let oldest_due = job::Entity::find()
        .select_only()
        .column(job::Column::RunAt)
        .filter(job::Column::Status.eq(status::QUEUED))
        .filter(job::Column::RunAt.lte(now))
        .order_by_asc(job::Column::RunAt)
        .limit(1)
        .into_tuple::<DateTime<Utc>>()
        .one(conn)
        .await?;
    Ok(QueueGauges { counts, oldest_due })
}
