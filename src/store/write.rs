//! Write transactions, and group commit on SQLite.
//!
//! SQLite has one writer at a time, and each transaction pays a `BEGIN`, a `COMMIT` (WAL frames
//! for every page it dirtied) and the hand-over of the write lock. Concurrent writers in this
//! process therefore share one transaction: each in turn runs its statements on the open group
//! transaction and waits; the last one in line (nobody else waiting for the gate) or the
//! [`MAX_GROUP`]th commits for all and wakes the others. Every writer learns whether its work
//! was committed. If any writer of a group fails (an error, or its future is dropped midway) the
//! whole group is rolled back and the others are told to run again, alone, so a failure never
//! leaks a partial write and never costs another request its result.
//!
//! On PostgreSQL, which runs writers concurrently and groups commits itself, every [`Write`]
//! is a transaction of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use std::collections::HashMap;

use uuid::Uuid;

use super::Tx;
use super::records::{HistoryRow, RecordRow};
use super::search::TermRow;
use crate::error::{Error, Result};

/// Writers committed together at most; bounds the latency a writer adds to those before it.
pub const MAX_GROUP: usize = 32;

/// How often an open group checks that someone is still coming to commit it.
const COMMITTER_PATIENCE: Duration = Duration::from_millis(2);

/// Whether a writer may wait to share its commit, or must commit as soon as its work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Join the open group; commit when nobody else is waiting.
    Group,
    /// Commit at the end of this writer's work (a retry, or a write that must be durable now).
    Alone,
}

/// What became of a writer's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Committed.
    Committed,
    /// Rolled back because another writer of the group failed: run the work again with
    /// [`Sharing::Alone`].
    RunAgain,
}

/// A commit's outcome as a result: rolled back with a failing group is `Error::Unavailable`
/// (a write made [`Sharing::Alone`] is never rolled back for others).
///
/// # Errors
/// `Error::Unavailable` for [`Outcome::RunAgain`].
pub fn committed(outcome: Outcome) -> Result<()> {
    match outcome {
        Outcome::Committed => Ok(()),
        Outcome::RunAgain => Err(Error::Unavailable(
            "the write was rolled back with a concurrent failure; try again".to_owned(),
        )),
    }
}

/// The SQLite write gate: the open group transaction and who is queuing for it.
#[derive(Debug, Default, Clone)]
pub(super) struct GroupCommit {
    gate: Arc<Mutex<Gate>>,
    queued: Arc<AtomicUsize>,
}

#[derive(Debug, Default)]
struct Gate {
    open: Option<Group>,
    next_id: u64,
}

#[derive(Debug)]
struct Group {
    id: u64,
    tx: Tx,
    /// Writers whose work is in the transaction, waiting for its outcome.
    members: Vec<oneshot::Sender<Outcome>>,
    /// A writer failed midway: the transaction must be rolled back.
    poisoned: bool,
    /// New records of the members, by table, written in multi-row statements before the commit.
    records: std::sync::Mutex<Vec<(String, Vec<RecordRow>)>>,
    /// History rows of the members, written in one statement before the commit.
    history: std::sync::Mutex<Vec<HistoryRow>>,
    /// Search terms of the members' new records, by record table, written with them.
    terms: std::sync::Mutex<Vec<(String, Vec<TermRow>)>>,
    /// Published entity versions read in this transaction. The group holds SQLite's write
    /// lock from its `BEGIN IMMEDIATE`, so no definition can change before it ends.
    versions: std::sync::Mutex<HashMap<Uuid, Option<i32>>>,
}

/// Writes what the members buffered: their new records, their search terms, then their
/// history.
async fn flush(
    tx: &Tx,
    records: Vec<(String, Vec<RecordRow>)>,
    terms: Vec<(String, Vec<TermRow>)>,
    history: &[HistoryRow],
) -> Result<()> {
    for (table, rows) in records {
        super::records::insert(tx, &table, &rows).await?;
    }
    for (table, rows) in terms {
        super::search::insert_terms(tx, &table, &rows).await?;
    }
    super::records::insert_history(tx, history).await
}

/// Ends the group: writes the buffered rows and commits (or rolls back if poisoned), and tells
/// every member. A buffered row that cannot be written (a unique value two members both
/// claimed) rolls the group back: every member runs again alone and the one at fault gets its
/// own error. Only a failed commit or rollback is an error of the caller's.
async fn finish(group: Group) -> Result<()> {
    let Group {
        tx,
        members,
        mut poisoned,
        records,
        history,
        terms,
        ..
    } = group;
    let records = records.into_inner().unwrap_or_default();
    let history = history.into_inner().unwrap_or_default();
    let terms = terms.into_inner().unwrap_or_default();
    if !poisoned && let Err(e) = flush(&tx, records, terms, &history).await {
        tracing::debug!(error = %e, "a group's buffered rows failed; its members run again alone");
        poisoned = true;
    }
    let result = if poisoned {
        tx.rollback().await.map_err(Error::from)
    } else {
        tx.commit().await.map_err(Error::from)
    };
    let outcome = if !poisoned && result.is_ok() {
        Outcome::Committed
    } else {
        Outcome::RunAgain
    };
    for member in members {
        let _ = member.send(outcome);
    }
    result
}

/// Ends the group in a task of its own: the writer that happens to end it may be a request
/// cancelled meanwhile (a client gone), and every member's outcome depends on the end running
/// through.
async fn finish_detached(group: Group) -> Result<()> {
    tokio::spawn(finish(group))
        .await
        .map_err(|e| Error::internal(format!("ending a write group failed: {e}")))?
}

/// Ends group `id` should it stay open with nobody queuing for the gate: its last writer left
/// the commit to one queued behind it, whose request was then cancelled, or a writer released
/// its turn. Checks every [`COMMITTER_PATIENCE`] while the group lives.
fn watch(gate: Arc<Mutex<Gate>>, queued: Arc<AtomicUsize>, id: u64) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(COMMITTER_PATIENCE).await;
            let mut gate = gate.clone().lock_owned().await;
            if gate.open.as_ref().is_none_or(|group| group.id != id) {
                return;
            }
            if queued.load(Ordering::Acquire) == 0
                && let Some(group) = gate.open.take()
            {
                if let Err(e) = finish(group).await {
                    tracing::warn!(error = %e, "committing an abandoned write group failed");
                }
                return;
            }
        }
    });
}

/// Decrements the queue count when a writer stops queuing (got the gate, or was cancelled).
struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl GroupCommit {
    /// Takes the gate and joins the open group, opening one (after ending a poisoned one) if
    /// needed.
    pub(super) async fn join(&self, conn: &DatabaseConnection, sharing: Sharing) -> Result<Write> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        let queued = Queued(self.queued.clone());
        let mut gate = self.gate.clone().lock_owned().await;
        drop(queued);
        // A writer alone starts a group of its own, so that no other writer's buffered rows
        // can fail its commit.
        if gate
            .open
            .as_ref()
            .is_some_and(|group| group.poisoned || sharing == Sharing::Alone)
            && let Some(group) = gate.open.take()
        {
            finish_detached(group).await?;
        }
        if gate.open.is_none() {
            // Immediate: the write lock is taken now, so a writer outside the gate (a job, a
            // publish) that committed meanwhile cannot invalidate the group's read snapshot.
            let tx = conn
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..Default::default()
                })
                .await?;
            gate.next_id += 1;
            watch(self.gate.clone(), self.queued.clone(), gate.next_id);
            gate.open = Some(Group {
                id: gate.next_id,
                tx,
                members: Vec::new(),
                poisoned: false,
                records: std::sync::Mutex::default(),
                terms: std::sync::Mutex::default(),
                history: std::sync::Mutex::default(),
                versions: std::sync::Mutex::default(),
            });
        }
        Ok(Write {
            ran: std::sync::atomic::AtomicBool::new(false),
            inner: Inner::Shared {
                gate: Some(gate),
                commit: self.clone(),
                sharing,
            },
        })
    }
}

/// A write transaction (a share of the group transaction on SQLite). Run statements on it as on
/// any connection, then [`Write::commit`]; dropping it uncommitted rolls its work back.
#[derive(Debug)]
pub struct Write {
    inner: Inner,
    /// Whether a statement ran: a writer dropped before any did leaves its group intact.
    ran: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
enum Inner {
    Own(Tx),
    Shared {
        gate: Option<OwnedMutexGuard<Gate>>,
        commit: GroupCommit,
        sharing: Sharing,
    },
}

impl Write {
    /// A write transaction of its own (PostgreSQL).
    pub(super) fn own(tx: Tx) -> Self {
        Self {
            inner: Inner::Own(tx),
            ran: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn group(&self) -> Option<&Group> {
        match &self.inner {
            Inner::Own(_) => None,
            Inner::Shared { gate, .. } => gate.as_ref().and_then(|gate| gate.open.as_ref()),
        }
    }

    /// The group to buffer rows in: a shared write that may wait for its commit (an `Alone`
    /// write, a retry, writes its rows at once so that their errors are its own).
    fn buffer(&self) -> Option<&Group> {
        match &self.inner {
            Inner::Shared {
                sharing: Sharing::Group,
                ..
            } => {
                // Buffered work is work: dropping this writer now must roll its group back.
                self.ran.store(true, Ordering::Release);
                self.group()
            }
            _ => None,
        }
    }

    /// Appends history rows: in a group, with the others', in one statement before its commit.
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn insert_history(&self, rows: Vec<HistoryRow>) -> Result<()> {
        match self.buffer() {
            Some(group) => {
                group
                    .history
                    .lock()
                    .map_err(|_| Error::internal("history buffer poisoned"))?
                    .extend(rows);
                Ok(())
            }
            None => super::records::insert_history(self, &rows).await,
        }
    }

    /// Inserts new records: in a group, with the others' of the same table, in multi-row
    /// statements before its commit. A unique value taken meanwhile then fails the group, whose
    /// members run again alone (see [`Outcome::RunAgain`]).
    ///
    /// # Errors
    /// `Error::Db` (an immediate insert: unique violations among them).
    pub async fn insert_records(&self, table: &str, rows: Vec<RecordRow>) -> Result<()> {
        match self.buffer() {
            Some(group) => {
                let mut buffered = group
                    .records
                    .lock()
                    .map_err(|_| Error::internal("record buffer poisoned"))?;
                match buffered.iter_mut().find(|(t, _)| t == table) {
                    Some((_, pending)) => pending.extend(rows),
                    None => buffered.push((table.to_owned(), rows)),
                }
                Ok(())
            }
            None => super::records::insert(self, table, &rows).await,
        }
    }

    /// Inserts search terms: in a group, with the others' of the same table, in multi-row
    /// statements before its commit.
    ///
    /// # Errors
    /// `Error::Db` (an immediate insert).
    pub async fn insert_terms(&self, table: &str, rows: Vec<TermRow>) -> Result<()> {
        match self.buffer() {
            Some(group) => {
                let mut buffered = group
                    .terms
                    .lock()
                    .map_err(|_| Error::internal("terms buffer poisoned"))?;
                match buffered.iter_mut().find(|(t, _)| t == table) {
                    Some((_, pending)) => pending.extend(rows),
                    None => buffered.push((table.to_owned(), rows)),
                }
                Ok(())
            }
            None => super::search::insert_terms(self, table, &rows).await,
        }
    }

    /// The published version of an entity definition, stable until this write ends.
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn published_version(&self, definition_id: Uuid) -> Result<Option<i32>> {
        let Some(group) = self.group() else {
            return super::records::published_version(self, definition_id).await;
        };
        if let Some(known) = group
            .versions
            .lock()
            .ok()
            .and_then(|v| v.get(&definition_id).copied())
        {
            return Ok(known);
        }
        let version = super::records::published_version(self, definition_id).await?;
        if let Ok(mut versions) = group.versions.lock() {
            versions.insert(definition_id, version);
        }
        Ok(version)
    }

    fn tx(&self) -> std::result::Result<&Tx, DbErr> {
        self.ran.store(true, Ordering::Release);
        match &self.inner {
            Inner::Own(tx) => Ok(tx),
            Inner::Shared { gate, .. } => gate
                .as_ref()
                .and_then(|gate| gate.open.as_ref())
                .map(|group| &group.tx)
                .ok_or_else(|| DbErr::Custom("the write transaction has ended".to_owned())),
        }
    }

    /// Commits this writer's work (with its group's, on SQLite) and says whether it holds.
    ///
    /// # Errors
    /// `Error::Db` when the commit fails.
    pub async fn commit(mut self) -> Result<Outcome> {
        let (gate, commit, sharing) = match &mut self.inner {
            Inner::Own(_) => {
                let Inner::Own(tx) = std::mem::replace(
                    &mut self.inner,
                    Inner::Shared {
                        gate: None,
                        commit: GroupCommit::default(),
                        sharing: Sharing::Alone,
                    },
                ) else {
                    return Err(Error::internal("write transaction in an impossible state"));
                };
                tx.commit().await?;
                return Ok(Outcome::Committed);
            }
            Inner::Shared {
                gate,
                commit,
                sharing,
            } => (gate.take(), commit.clone(), *sharing),
        };
        let Some(mut gate) = gate else {
            return Err(Error::internal("write transaction committed twice"));
        };
        let (sender, outcome) = oneshot::channel();
        let Some(group) = gate.open.as_mut() else {
            return Err(Error::internal("write group vanished"));
        };
        group.members.push(sender);
        let full = group.members.len() >= MAX_GROUP;
        // Otherwise the commit is left to the writer queued behind (or to the group's watch).
        if (sharing == Sharing::Alone || full || commit.queued.load(Ordering::Acquire) == 0)
            && let Some(group) = gate.open.take()
        {
            finish_detached(group).await?;
        }
        drop(gate);
        outcome
            .await
            .map_err(|_| Error::internal("write group ended without an outcome"))
    }
}

impl Write {
    /// Ends this writer's turn when it wrote nothing (a lost optimistic race): the group's
    /// other work stays, and is committed now if nobody else is queuing.
    ///
    /// # Errors
    /// `Error::Db` when that commit fails.
    pub async fn release(mut self) -> Result<()> {
        match std::mem::replace(
            &mut self.inner,
            Inner::Shared {
                gate: None,
                commit: GroupCommit::default(),
                sharing: Sharing::Alone,
            },
        ) {
            Inner::Own(tx) => Ok(tx.rollback().await?),
            Inner::Shared {
                gate: Some(mut gate),
                commit,
                ..
            } => {
                if commit.queued.load(Ordering::Acquire) == 0
                    && let Some(group) = gate.open.take()
                {
                    finish_detached(group).await?;
                }
                Ok(())
            }
            Inner::Shared { gate: None, .. } => Ok(()),
        }
    }
}

impl Drop for Write {
    fn drop(&mut self) {
        // Dropped before `commit`: an error or a cancelled request. The group must not commit
        // half of this writer's work; mark it and make sure someone ends it.
        if !self.ran.load(Ordering::Acquire) {
            return;
        }
        if let Inner::Shared {
            gate: gate @ Some(_),
            commit,
            ..
        } = &mut self.inner
            && let Some(mut gate) = gate.take()
        {
            let Some(group) = gate.open.as_mut() else {
                return;
            };
            group.poisoned = true;
            let group_id = group.id;
            drop(gate);
            let gate = commit.gate.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let mut gate = gate.lock_owned().await;
                    if gate.open.as_ref().is_some_and(|group| group.id == group_id)
                        && let Some(group) = gate.open.take()
                        && let Err(e) = finish(group).await
                    {
                        tracing::warn!(error = %e, "rolling back a failed write group");
                    }
                });
            }
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Write {
    fn get_database_backend(&self) -> DbBackend {
        match self.tx() {
            Ok(tx) => tx.get_database_backend(),
            Err(_) => DbBackend::Sqlite,
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> std::result::Result<ExecResult, DbErr> {
        self.tx()?.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> std::result::Result<ExecResult, DbErr> {
        self.tx()?.execute_unprepared(sql).await
    }

    async fn query_one_raw(
        &self,
        stmt: Statement,
    ) -> std::result::Result<Option<QueryResult>, DbErr> {
        self.tx()?.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> std::result::Result<Vec<QueryResult>, DbErr> {
        self.tx()?.query_all_raw(stmt).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DatabaseConfig, SqliteSync};
    use crate::store::Db;

    async fn sqlite() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::connect(&DatabaseConfig {
            database_url: format!("sqlite://{}/w.db", dir.path().display()),
            sqlite_sync: SqliteSync::Normal,
            pool_size: 4,
        })
        .await
        .expect("connect");
        db.conn()
            .execute_unprepared("CREATE TABLE t (x INTEGER NOT NULL)")
            .await
            .expect("table");
        (dir, db)
    }

    async fn rows(db: &Db) -> Vec<i64> {
        db.conn()
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT x FROM t ORDER BY x",
            ))
            .await
            .expect("select")
            .iter()
            .map(|row| row.try_get::<i64>("", "x").expect("x"))
            .collect()
    }

    async fn insert(write: &Write, x: i64) {
        write
            .execute_unprepared(&format!("INSERT INTO t (x) VALUES ({x})"))
            .await
            .expect("insert");
    }

    /// Lets a spawned writer reach the gate and queue behind the current one.
    async fn until_queued(db: &Db, n: usize) {
        for _ in 0..500 {
            if db.group_commit.queued.load(Ordering::Acquire) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("no writer queued");
    }

    #[tokio::test]
    async fn writers_queued_together_share_one_commit() {
        let (_dir, db) = sqlite().await;
        let first = db.write(Sharing::Group).await.expect("write");
        let second = tokio::spawn({
            let db = db.clone();
            async move {
                let write = db.write(Sharing::Group).await.expect("write");
                insert(&write, 2).await;
                write.commit().await.expect("commit")
            }
        });
        until_queued(&db, 1).await;
        insert(&first, 1).await;
        // Someone is queued, so the first writer leaves the commit to the last one.
        let first = tokio::spawn(async move { first.commit().await.expect("commit") });
        assert_eq!(second.await.expect("join"), Outcome::Committed);
        assert_eq!(first.await.expect("join"), Outcome::Committed);
        assert_eq!(rows(&db).await, [1, 2]);
    }

    #[tokio::test]
    async fn a_writer_dropped_midway_rolls_its_group_back_and_the_others_run_again() {
        let (_dir, db) = sqlite().await;
        let first = db.write(Sharing::Group).await.expect("write");
        let failing = tokio::spawn({
            let db = db.clone();
            async move {
                let write = db.write(Sharing::Group).await.expect("write");
                insert(&write, 99).await;
                drop(write); // an error or a cancelled request, halfway through its work
            }
        });
        until_queued(&db, 1).await;
        insert(&first, 1).await;
        let outcome = first.commit().await.expect("commit");
        failing.await.expect("join");
        assert_eq!(outcome, Outcome::RunAgain);
        assert_eq!(
            rows(&db).await,
            Vec::<i64>::new(),
            "nothing of the group holds"
        );
        let again = db.write(Sharing::Alone).await.expect("write");
        insert(&again, 1).await;
        assert_eq!(again.commit().await.expect("commit"), Outcome::Committed);
        assert_eq!(rows(&db).await, [1]);
    }

    #[tokio::test]
    async fn a_committer_that_vanished_is_replaced() {
        let (_dir, db) = sqlite().await;
        let first = db.write(Sharing::Group).await.expect("write");
        // A writer queues, then gives up before its turn (its request was cancelled).
        let quitter = tokio::spawn({
            let db = db.clone();
            async move { db.write(Sharing::Group).await.map(drop) }
        });
        until_queued(&db, 1).await;
        insert(&first, 7).await;
        let commit = tokio::spawn(async move { first.commit().await.expect("commit") });
        tokio::time::sleep(Duration::from_millis(1)).await;
        quitter.abort();
        assert_eq!(commit.await.expect("join"), Outcome::Committed);
        assert_eq!(rows(&db).await, [7]);
    }
}
