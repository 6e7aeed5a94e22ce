//! Storage: the connection pool, migrations, transactions and every SQL statement Formwork runs.
//!
//! Only this module (and `migrations/`) touches sea-orm; feature modules call its functions with a
//! [`Conn`] (the pool or a transaction).

pub mod accounts;
pub mod approvals;
pub mod apps;
pub mod backup;
pub mod comments;
pub mod definitions;
pub mod emails;
pub mod entities;
pub mod facts;
pub mod feeds;
pub mod form_links;
pub mod imports;
pub mod jobs;
pub mod notifications;
pub mod people;
pub mod records;
pub mod robots;
pub mod saved_views;
pub mod search;
pub mod sessions;
pub mod tokens;
pub mod webhooks;
pub mod workflows;
pub mod workspaces;
pub mod write;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, SqlErr,
};

use crate::config::{DatabaseConfig, SqliteSync};
use crate::error::{Error, Result};

pub use sea_orm::ConnectionTrait as Conn;
pub use sea_orm::DatabaseTransaction as Tx;
pub use sea_orm::TransactionTrait;
pub use write::{Outcome, Sharing, Write};

static ACCESS_EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The generation of the rows that authentication and workspace access read (accounts,
/// sessions, tokens, workspaces, memberships) as far as this process wrote them: caches of those
/// rows are valid only while it is unchanged.
pub fn access_epoch() -> u64 {
    ACCESS_EPOCH.load(std::sync::atomic::Ordering::Acquire)
}

/// Marks those rows changed. The store calls it after each such statement; a caller whose
/// statement ran in a transaction calls it again after the commit, since a read between the
/// statement and the commit still saw the old row.
pub fn access_changed() {
    ACCESS_EPOCH.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// Which database engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one file, one server process.
    Sqlite,
    /// Shared by any number of processes.
    Postgres,
}

/// The database: a pool plus, on SQLite, the lock that keeps a second server off the file.
#[derive(Debug, Clone)]
pub struct Db {
    conn: DatabaseConnection,
    /// SQLite only: the connections of write transactions.
    writer: Option<DatabaseConnection>,
    backend: Backend,
    _file_lock: Option<std::sync::Arc<File>>,
    group_commit: std::sync::Arc<write::GroupCommit>,
    analyzed: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Growth>>>,
}

/// Rows written to a table by this process, and the count at its last statistics refresh.
#[derive(Debug, Default, Clone, Copy)]
struct Growth {
    written: u64,
    at_last_refresh: u64,
}

/// Where a `sqlite://` URL points, or `None` for other schemes.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

fn lock_sqlite_file(path: &Path) -> Result<File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::Unavailable(format!("cannot open {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Unavailable(format!(
            "another formwork process is already using the SQLite database {} (lock file {}); \
             stop it, or use PostgreSQL to run several processes",
            path.display(),
            lock_path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Unavailable(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

impl Db {
    /// Connects; on SQLite creates the file (and its folder) and takes the single-process lock.
    ///
    /// # Errors
    /// `Error::Unavailable` when the URL is unsupported, the database is unreachable, or another
    /// process holds the SQLite file.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self> {
        let url = config.database_url.as_str();
        let (backend, file_lock) = if let Some(path) = sqlite_path(url) {
            if path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:") {
                return Err(Error::Unavailable(
                    "FORMWORK_DATABASE_URL: an in-memory SQLite database is not supported; name a file"
                        .to_owned(),
                ));
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Error::Unavailable(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            (
                Backend::Sqlite,
                Some(std::sync::Arc::new(lock_sqlite_file(&path)?)),
            )
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, None)
        } else {
            return Err(Error::Unavailable(format!(
                "FORMWORK_DATABASE_URL must start with sqlite:// or postgres://, got {:?}",
                url.split(':').next().unwrap_or_default()
            )));
        };
        let pool = |size: u32, mmap: bool| {
            let mut options = ConnectOptions::new(url.to_owned());
            options
                .max_connections(size)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .sqlx_logging(false);
            let synchronous = match config.sqlite_sync {
                SqliteSync::Normal => SqliteSynchronous::Normal,
                SqliteSync::Full => SqliteSynchronous::Full,
            };
            options.map_sqlx_sqlite_opts(move |o| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(synchronous)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    // Readers go through a memory map (up to SQLite's 2 GB limit: a 256 MB map
                    // left most of a 1M-record file to system calls) because on a table larger
                    // than the page cache a lookup otherwise costs a system call per page (P3
                    // 1,309 → 2,014/s, P5 3 → 16/s at 120k; at 1M, 2 GB against 256 MB: P4
                    // 16,451 → 20,189/s, P3 1,857 → 2,110/s). The writer does not: a growing
                    // file makes a mapped connection unmap and remap over and over (P1 7,036 →
                    // 8,546/s at 20k).
                    .pragma("mmap_size", if mmap { "2147418112" } else { "0" })
                    .pragma("cache_size", "-16000")
                    .pragma("temp_store", "memory")
                    // Checkpoints run in the background (see `checkpoint_in_background`);
                    // this is only the safety net should that task fall behind.
                    .pragma("wal_autocheckpoint", "20000")
            });
            options
        };
        let connect = |options| async {
            Database::connect(options).await.map_err(|e| {
                Error::Unavailable(format!("cannot connect to FORMWORK_DATABASE_URL: {e}"))
            })
        };
        let conn = connect(pool(config.pool_size, true)).await?;
        // SQLite has one writer at a time: the group transactions get a connection of their
        // own, whose page cache stays warm with the pages writes touch.
        let writer = match backend {
            Backend::Sqlite => Some(connect(pool(2, false)).await?),
            Backend::Postgres => None,
        };
        if let Some(lock) = &file_lock {
            checkpoint_in_background(conn.clone(), std::sync::Arc::downgrade(lock));
        }
        Ok(Self {
            conn,
            writer,
            backend,
            _file_lock: file_lock,
            group_commit: std::sync::Arc::default(),
            analyzed: std::sync::Arc::default(),
        })
    }

    /// Applies pending migrations.
    ///
    /// # Errors
    /// `Error::Db` when a migration fails.
    pub async fn migrate(&self) -> Result<()> {
        Migrator::up(&self.conn, None).await?;
        Ok(())
    }

    /// The pool, usable wherever a [`Conn`] is expected.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The engine behind the pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction.
    ///
    /// # Errors
    /// `Error::Db` when the database refuses.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.conn.begin().await?)
    }

    /// Starts a write: on SQLite a turn in the group transaction (see [`write`]), writers
    /// queuing in this process in order instead of sleeping in SQLite's busy handler; on
    /// PostgreSQL a transaction of its own. Commit it with [`Write::commit`] and run the work
    /// again, [`Sharing::Alone`], when told to.
    ///
    /// # Errors
    /// `Error::Db` when the database refuses.
    pub async fn write(&self, sharing: Sharing) -> Result<Write> {
        match self.backend {
            Backend::Sqlite => {
                let conn = self.writer.as_ref().unwrap_or(&self.conn);
                self.group_commit.join(conn, sharing).await
            }
            Backend::Postgres => Ok(Write::own(self.conn.begin().await?)),
        }
    }

    /// Refreshes the planner's statistics of a table in the background whenever this process
    /// has doubled the rows it wrote to it (from 500 on): without fresh statistics both engines
    /// pick the equality index and sort every match instead of walking the sort key's index
    /// (measured: 69 ms → 0.6 ms per P3 query on 120k SQLite rows). A fill from empty to a
    /// million rows refreshes about a dozen times. Best effort: a failure is logged.
    pub fn analyze_soon(&self, table: &str, rows_written: usize) {
        let due = match self.analyzed.lock() {
            Ok(mut tables) => {
                let growth = tables.entry(table.to_owned()).or_default();
                growth.written += rows_written as u64;
                let due = growth.written >= 500 && growth.written >= 2 * growth.at_last_refresh;
                if due {
                    growth.at_last_refresh = growth.written;
                }
                due
            }
            Err(_) => false,
        };
        if !due {
            return;
        }
        let db = self.clone();
        let table = table.to_owned();
        tokio::spawn(async move {
            if let Err(e) = db.analyze(&table).await {
                tracing::warn!(error = %e, table, "refreshing planner statistics failed");
            }
        });
    }

    /// Refreshes planner statistics of one table now; with an empty name, on SQLite, of every table that needs it (`PRAGMA optimize`).
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn analyze(&self, table: &str) -> Result<()> {
        match self.backend {
            Backend::Sqlite => {
                let tx = self.write(Sharing::Alone).await?;
                // A full analysis: sampled statistics (analysis_limit) misjudge an equality on
                // a low-cardinality field and bring back the sort-everything plan. It reads the
                // indexes only (no documents): about 130 ms for 500k rows.
                tx.execute_unprepared("PRAGMA analysis_limit=0").await?;
                if table.is_empty() {
                    tx.execute_unprepared("PRAGMA optimize=0x10002").await?;
                } else {
                    tx.execute_unprepared(&format!("ANALYZE \"{table}\""))
                        .await?;
                }
                // Other connections load statistics with the schema; a schema change makes
                // each of them reload it (and the new statistics) before its next statement.
                tx.execute_unprepared(
                    "CREATE TABLE IF NOT EXISTS formwork_statistics_epoch (n INTEGER)",
                )
                .await?;
                tx.execute_unprepared("DROP TABLE formwork_statistics_epoch")
                    .await?;
                if tx.commit().await? != Outcome::Committed {
                    tracing::warn!(
                        table,
                        "statistics refresh rolled back; the next one retries"
                    );
                }
            }
            Backend::Postgres => {
                self.conn
                    .execute_unprepared(&format!("ANALYZE \"{table}\""))
                    .await?;
            }
        }
        Ok(())
    }

    /// Checks that the database answers.
    ///
    /// # Errors
    /// `Error::Unavailable` when it does not.
    pub async fn ping(&self) -> Result<()> {
        self.conn
            .ping()
            .await
            .map_err(|e| Error::Unavailable(format!("database unreachable: {e}")))
    }

    /// Closes the pool (the SQLite lock goes with the last clone of `Db`).
    pub async fn close(self) {
        if let Some(writer) = &self.writer {
            let _ = writer.clone().close().await;
        }
        let _ = self.conn.close().await;
    }
}

/// How often the SQLite write-ahead log is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies the SQLite write-ahead log into the database file every [`CHECKPOINT_EVERY`], off
/// the write path: left to SQLite, the checkpoint (page copies and an fsync) runs inside the
/// `COMMIT` of whichever writer crosses the threshold, holding every other writer up (measured:
/// about 10% of the create path's time). A passive checkpoint never blocks readers or the
/// writer. Ends when the database is closed or dropped (`alive` is its file lock).
fn checkpoint_in_background(conn: DatabaseConnection, alive: std::sync::Weak<File>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            if alive.upgrade().is_none() {
                break;
            }
            // A failure (a pool busy past its timeout) skips one round; SQLite's own
            // checkpoint at 20,000 pages stays the safety net.
            if let Err(e) = conn
                .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                .await
            {
                tracing::debug!(error = %e, "background checkpoint skipped");
            }
        }
    });
}

/// Whether a database error is a unique-constraint violation.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// A database error with this message, for unit tests of error handling above the store.
#[cfg(test)]
pub(crate) fn error_for_test(message: &str) -> DbErr {
    DbErr::Custom(message.to_owned())
}

/// Whether a database error is the engine giving up on one of two concurrent transactions
/// (PostgreSQL deadlock or serialization failure, SQLite busy): nothing was written, and the
/// same request may succeed when sent again.
pub fn is_transient(err: &DbErr) -> bool {
    let text = err.to_string();
    [
        "deadlock detected",
        "40P01",
        "40001",
        "could not serialize",
        "database is locked",
    ]
    .iter()
    .any(|mark| text.contains(mark))
}

/// The backend of any connection.
pub fn backend_of(conn: &impl Conn) -> Backend {
    match conn.get_database_backend() {
        DbBackend::Postgres => Backend::Postgres,
        _ => Backend::Sqlite,
    }
}
