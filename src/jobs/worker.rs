//! The worker: claims due jobs, runs their handlers with a renewed lease, and records outcomes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{NewJob, enqueue, retry_delay};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::store::Db;
use crate::store::jobs::{self as rows, JobRow, Lease};
use crate::store::write::{Outcome, Sharing};

/// Why a handler did not complete its job.
#[derive(Debug)]
pub enum JobFailure {
    /// Try again later (with backoff) while attempts remain.
    Retry(String),
    /// Do not try again: the job is dead at once (for example, a malformed payload).
    Fatal(String),
}

impl From<Error> for JobFailure {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid { .. } | Error::BadRequest { .. } | Error::NotFound(_) => {
                Self::Fatal(error.to_string())
            }
            other => Self::Retry(other.to_string()),
        }
    }
}

/// What a running job may do: report progress and fence its own database effects.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The database.
    pub db: Db,
    /// The clock.
    pub clock: SharedClock,
    /// The lease this attempt holds.
    pub lease: Lease,
    /// Set when the handler completed the job inside its own transaction.
    completed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Job kinds every worker schedules once an hour (deduplicated across processes).
const HOUSEKEEPING: &[&str] = &[
    "sessions.purge",
    "imports.purge",
    "records.pool_reclaim",
    "records.recompute_volatile",
    "notifications.digest",
];

impl JobContext {
    /// Records progress and an optional checkpoint to resume from after a restart.
    ///
    /// # Errors
    /// `JobFailure::Retry` when the lease was lost (another worker owns the job now).
    pub async fn progress(
        &self,
        done: i64,
        total: Option<i64>,
        checkpoint: Option<serde_json::Value>,
    ) -> Result<(), JobFailure> {
        let held = rows::set_progress(
            self.db.conn(),
            &self.lease,
            done,
            total,
            checkpoint,
            self.clock.now(),
        )
        .await?;
        if held {
            Ok(())
        } else {
            Err(JobFailure::Retry("lease lost".to_owned()))
        }
    }

    /// Marks the job succeeded inside the handler's own transaction `tx`, so that the handler's
    /// writes and the completion commit together: exactly once, even if the process dies right
    /// after the commit. Do not use the pool (e.g. `progress`) while `tx` is open.
    ///
    /// # Errors
    /// `JobFailure::Retry` when the lease was lost (the caller must then not commit `tx`).
    pub async fn complete_in(&self, tx: &impl crate::store::Conn) -> Result<(), JobFailure> {
        if rows::complete(tx, &self.lease, self.clock.now()).await? {
            self.completed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        } else {
            Err(JobFailure::Retry("lease lost".to_owned()))
        }
    }
}

impl JobContext {
    /// Ends this attempt by putting the job back in the queue, due at `run_at` with `payload`,
    /// inside the handler's transaction `tx` (a timer whose date moved while it fired).
    ///
    /// # Errors
    /// `JobFailure::Retry` when the lease was lost (the caller must then not commit `tx`).
    pub async fn reschedule_in(
        &self,
        tx: &impl crate::store::Conn,
        run_at: chrono::DateTime<chrono::Utc>,
        payload: serde_json::Value,
    ) -> Result<(), JobFailure> {
        if rows::reschedule(tx, &self.lease, run_at, payload, self.clock.now()).await? {
            self.completed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        } else {
            Err(JobFailure::Retry("lease lost".to_owned()))
        }
    }
}

/// Runs one kind of job.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + std::fmt::Debug {
    /// The kind it runs.
    fn kind(&self) -> &'static str;

    /// Does the work; `Ok` completes the job.
    async fn run(&self, ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure>;
}

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Unique name of this worker (host, process, random), written into leases and attempts.
    pub id: String,
    /// Jobs run at once.
    pub concurrency: u32,
    /// Lease length; renewed every third of it while a job runs.
    pub lease: Duration,
    /// Pause between looks for due jobs when idle.
    pub poll: StdDuration,
    /// On shutdown, how long jobs in hand may finish before they are released.
    pub shutdown_grace: StdDuration,
}

/// Claims and runs jobs with the registered handlers.
#[derive(Debug, Clone)]
pub struct Worker {
    db: Db,
    clock: SharedClock,
    settings: WorkerSettings,
    handlers: Arc<HashMap<&'static str, Arc<dyn Handler>>>,
}

impl Worker {
    /// A worker with these handlers.
    pub fn new(
        db: Db,
        clock: SharedClock,
        settings: WorkerSettings,
        handlers: Vec<Arc<dyn Handler>>,
    ) -> Self {
        let handlers = handlers.into_iter().map(|h| (h.kind(), h)).collect();
        Self {
            db,
            clock,
            settings,
            handlers: Arc::new(handlers),
        }
    }

    fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self.handlers.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }

    async fn claim(&self, limit: u64) -> Result<Vec<JobRow>> {
        let now = self.clock.now();
        // Through the write gate: on SQLite, queuing behind record writes in this process
        // instead of sleeping in SQLite's busy handler (measured: 4 ms per job).
        let tx = self.db.write(Sharing::Alone).await?;
        let claimed = rows::claim(
            &tx,
            &self.settings.id,
            &self.kinds(),
            limit,
            now,
            now + self.settings.lease,
        )
        .await?;
        match tx.commit().await? {
            Outcome::Committed => Ok(claimed),
            // Rolled back with a failed write of its group: nothing was claimed.
            Outcome::RunAgain => Ok(Vec::new()),
        }
    }

    /// Claims and runs due jobs until none is due; returns how many attempts ran. Tests use it
    /// to drive background work deterministically.
    ///
    /// # Errors
    /// `Error::Db` when claiming fails.
    pub async fn run_until_idle(&self) -> Result<usize> {
        let mut ran = 0;
        loop {
            let claimed = self
                .claim(u64::from(self.settings.concurrency.max(1)))
                .await?;
            if claimed.is_empty() {
                return Ok(ran);
            }
            ran += claimed.len();
            let mut set = JoinSet::new();
            for job in claimed {
                let worker = self.clone();
                set.spawn(async move { worker.execute(job).await });
            }
            while set.join_next().await.is_some() {}
        }
    }

    /// Runs until `shutdown` turns true, then finishes (or, after a grace period, releases) the
    /// jobs in hand.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut running: JoinSet<()> = JoinSet::new();
        let mut leases: HashMap<tokio::task::Id, Lease> = HashMap::new();
        let mut next_housekeeping = self.clock.now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            if self.clock.now() >= next_housekeeping {
                self.schedule_housekeeping().await;
                next_housekeeping = self.clock.now() + Duration::minutes(5);
            }
            let free = self.settings.concurrency as usize - running.len();
            let mut claimed_any = false;
            if free > 0 {
                match self.claim(free as u64).await {
                    Ok(jobs) => {
                        claimed_any = !jobs.is_empty();
                        for job in jobs {
                            let lease = lease_of(&job, &self.settings.id);
                            let worker = self.clone();
                            let handle = running.spawn(async move { worker.execute(job).await });
                            leases.insert(handle.id(), lease);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming jobs failed"),
                }
            }
            if claimed_any && running.len() < self.settings.concurrency as usize {
                continue;
            }
            let pause = if claimed_any {
                self.settings.poll
            } else {
                self.until_next_due().await
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    if let Ok((id, ())) = done { leases.remove(&id); }
                }
                _ = shutdown.changed() => {}
            }
        }
        // Graceful shutdown: let jobs in hand finish for a while, then give the rest back.
        let grace = tokio::time::sleep(self.settings.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = running.join_next_with_id() => match next {
                    Some(Ok((id, ()))) => { leases.remove(&id); }
                    Some(Err(e)) => { leases.remove(&e.id()); }
                    None => break,
                },
                () = &mut grace => {
                    running.abort_all();
                    for lease in leases.values() {
                        if let Err(e) = self.release(lease).await {
                            tracing::warn!(error = %e, job = %lease.job_id, "releasing a job failed");
                        }
                    }
                    break;
                }
            }
        }
    }

    /// How long an idle worker may sleep: until the next queued job of its kinds is due (a
    /// timer fires on time, not up to a poll later), at most the poll interval (jobs other
    /// processes enqueue are seen within it), at least 5 ms.
    async fn until_next_due(&self) -> StdDuration {
        let floor = StdDuration::from_millis(5);
        match rows::next_due(self.db.conn(), &self.kinds()).await {
            Ok(Some(at)) => (at - self.clock.now())
                .to_std()
                .unwrap_or(floor)
                .clamp(floor, self.settings.poll.max(floor)),
            Ok(None) => self.settings.poll,
            Err(e) => {
                tracing::warn!(error = %e, "looking for the next due job failed");
                self.settings.poll
            }
        }
    }

    /// Enqueues the periodic housekeeping jobs; the dedupe key makes each period's job unique
    /// across every process sharing the database.
    pub async fn schedule_housekeeping(&self) {
        let now = self.clock.now();
        for kind in HOUSEKEEPING {
            if !self.handlers.contains_key(*kind) {
                continue;
            }
            let mut job = NewJob::new(kind, serde_json::json!({}));
            job.dedupe_key = Some(format!("{kind}:{}", now.format("%Y-%m-%dT%H")));
            if let Err(e) = enqueue(self.db.conn(), &self.clock, job).await {
                tracing::warn!(error = %e, kind, "scheduling housekeeping failed");
            }
        }
    }

    async fn execute(&self, job: JobRow) {
        let lease = lease_of(&job, &self.settings.id);
        let ctx = JobContext {
            db: self.db.clone(),
            clock: self.clock.clone(),
            lease: lease.clone(),
            completed: std::sync::Arc::default(),
        };
        let outcome = if job.attempts > job.max_attempts {
            // Claimed after its lease expired with no attempts left: a worker kept dying on it.
            Err(JobFailure::Fatal(format!(
                "no attempts left after {} leases expired or failed",
                job.max_attempts
            )))
        } else if let Some(handler) = self.handlers.get(job.kind.as_str()) {
            // Dropped (and so stopped) however the handler ends, even by panicking.
            let _heartbeat = AbortOnDrop(self.spawn_heartbeat(lease.clone()));
            // A panicking handler fails its attempt instead of taking the worker down with it.
            std::panic::AssertUnwindSafe(handler.run(&ctx, &job))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(JobFailure::Retry("the job handler panicked".to_owned())))
        } else {
            Err(JobFailure::Fatal(format!(
                "no handler for job kind {:?}",
                job.kind
            )))
        };
        if outcome.is_ok() && ctx.completed.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let recorded = self.record(&job, &lease, &outcome).await;
        match recorded {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(job = %job.id, kind = %job.kind, "lease lost; outcome discarded")
            }
            Err(e) => tracing::error!(job = %job.id, error = %e, "recording job outcome failed"),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let tx = self.db.write(Sharing::Alone).await?;
        let released = rows::release(&tx, lease, self.clock.now()).await?;
        committed(tx.commit().await?)?;
        Ok(released)
    }

    /// Records an attempt's outcome and its attempt-log entry in one transaction.
    async fn record(
        &self,
        job: &JobRow,
        lease: &Lease,
        outcome: &Result<(), JobFailure>,
    ) -> Result<bool> {
        let now = self.clock.now();
        let tx = self.db.write(Sharing::Alone).await?;
        let recorded = match outcome {
            Ok(()) => rows::complete(&tx, lease, now).await?,
            Err(JobFailure::Retry(error)) => {
                let retry_at =
                    (job.attempts < job.max_attempts).then(|| now + retry_delay(job.attempts));
                rows::fail(&tx, lease, error, retry_at, now).await?
            }
            Err(JobFailure::Fatal(error)) => rows::fail(&tx, lease, error, None, now).await?,
        };
        committed(tx.commit().await?)?;
        Ok(recorded)
    }

    fn spawn_heartbeat(&self, lease: Lease) -> tokio::task::JoinHandle<()> {
        let db = self.db.clone();
        let clock = self.clock.clone();
        let length = self.settings.lease;
        let every = (length / 3).to_std().unwrap_or(StdDuration::from_secs(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match rows::renew(db.conn(), &lease, clock.now() + length).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(error = %e, "renewing a lease failed"),
                }
            }
        })
    }
}

/// A worker's own write held, or an error (its lease then expires and the job runs again).
fn committed(outcome: Outcome) -> Result<()> {
    match outcome {
        Outcome::Committed => Ok(()),
        Outcome::RunAgain => Err(Error::Unavailable(
            "the job's bookkeeping was rolled back with another write".to_owned(),
        )),
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lease_of(job: &JobRow, owner: &str) -> Lease {
    Lease {
        job_id: job.id,
        owner: owner.to_owned(),
        attempt: job.attempts,
    }
}
