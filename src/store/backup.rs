//! Backups and restores. SQLite: an online copy (`VACUUM INTO`, a consistent snapshot taken
//! through an ordinary reader while the server keeps running), checked (`integrity_check`, the
//! migrations table) before and after; a restore refuses to run while a server holds the file,
//! checks the copy first, keeps the current file beside it and drops its write-ahead log.
//! PostgreSQL: its own tools, `pg_dump --format=custom` and `pg_restore --clean`, run by the
//! same commands (they must be on the `PATH`).

use std::path::{Path, PathBuf};
use std::process::Command;

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

use super::{lock_sqlite_file, sqlite_path};
use crate::error::{Error, Result};

/// What a backup or restore did.
#[derive(Debug)]
pub struct Report {
    /// The file written or read.
    pub file: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Where the database was before a restore (SQLite), kept beside it.
    pub previous: Option<PathBuf>,
}

fn unavailable(what: impl std::fmt::Display) -> Error {
    Error::Unavailable(what.to_string())
}

/// Checks that `path` is a sound SQLite file holding a Formwork database.
async fn check_sqlite(path: &Path) -> Result<()> {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let conn = Database::connect(url.as_str()).await.map_err(|e| {
        unavailable(format!(
            "{} cannot be opened as SQLite: {e}",
            path.display()
        ))
    })?;
    let integrity = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA integrity_check".to_owned(),
        ))
        .await
        .map_err(|e| {
            unavailable(format!(
                "{} is not a sound SQLite file: {e}",
                path.display()
            ))
        })?
        .and_then(|row| row.try_get_by_index::<String>(0).ok());
    if integrity.as_deref() != Some("ok") {
        return Err(unavailable(format!(
            "{} is damaged: integrity_check says {}",
            path.display(),
            integrity.unwrap_or_default()
        )));
    }
    let migrated = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT count(*) FROM seaql_migrations".to_owned(),
        ))
        .await
        .ok()
        .flatten()
        .and_then(|row| row.try_get_by_index::<i64>(0).ok())
        .unwrap_or(0);
    let _ = conn.close().await;
    if migrated == 0 {
        return Err(unavailable(format!(
            "{} is not a Formwork database (it has no migrations)",
            path.display()
        )));
    }
    Ok(())
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Writes a backup of the database at `database_url` to `target` (a new file).
///
/// # Errors
/// `Error::Unavailable` naming what went wrong: the target exists, the database cannot be read,
/// the copy is not sound, `pg_dump` failed.
pub async fn backup(database_url: &str, target: &Path) -> Result<Report> {
    if target.exists() {
        return Err(unavailable(format!(
            "{} exists already: back up to a new file",
            target.display()
        )));
    }
    if let Some(source) = sqlite_path(database_url) {
        if !source.exists() {
            return Err(unavailable(format!("no database at {}", source.display())));
        }
        // An ordinary reader (no process lock): the server may keep running.
        let url = format!("sqlite://{}?mode=rw", source.display());
        let conn = Database::connect(url.as_str())
            .await
            .map_err(|e| unavailable(format!("cannot open {}: {e}", source.display())))?;
        let into = target.to_string_lossy().into_owned();
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "VACUUM INTO ?",
            [into.into()],
        ))
        .await
        .map_err(|e| unavailable(format!("the backup failed: {e}")))?;
        let _ = conn.close().await;
        check_sqlite(target).await?;
        return Ok(Report {
            file: target.to_owned(),
            bytes: size_of(target),
            previous: None,
        });
    }
    run_tool(
        Command::new("pg_dump")
            .arg("--format=custom")
            .arg("--no-owner")
            .arg("--file")
            .arg(target)
            .arg(database_url),
        "pg_dump",
    )?;
    Ok(Report {
        file: target.to_owned(),
        bytes: size_of(target),
        previous: None,
    })
}

/// Replaces the database at `database_url` with the backup `source`. SQLite: refused while a
/// server holds the file; the current file is kept as `<file>.before-restore`.
///
/// # Errors
/// `Error::Unavailable` naming what went wrong; the database is unchanged then.
pub async fn restore(database_url: &str, source: &Path) -> Result<Report> {
    if !source.is_file() {
        return Err(unavailable(format!("no backup at {}", source.display())));
    }
    if let Some(target) = sqlite_path(database_url) {
        check_sqlite(source).await?;
        // The same lock a server takes: no restore under a running server.
        let _lock = lock_sqlite_file(&target)?;
        let staged = with_suffix(&target, ".restoring");
        std::fs::copy(source, &staged)
            .map_err(|e| unavailable(format!("cannot copy {}: {e}", source.display())))?;
        let previous = if target.exists() {
            let kept = with_suffix(&target, ".before-restore");
            std::fs::rename(&target, &kept)
                .map_err(|e| unavailable(format!("cannot move {} aside: {e}", target.display())))?;
            Some(kept)
        } else {
            None
        };
        // A write-ahead log of the old file must not be applied to the restored one.
        for suffix in ["-wal", "-shm"] {
            let stale = with_suffix(&target, suffix);
            if stale.exists() {
                if let Some(previous) = &previous {
                    let _ = std::fs::rename(&stale, with_suffix(previous, suffix));
                } else {
                    let _ = std::fs::remove_file(&stale);
                }
            }
        }
        std::fs::rename(&staged, &target)
            .map_err(|e| unavailable(format!("cannot put the backup in place: {e}")))?;
        return Ok(Report {
            file: target.clone(),
            bytes: size_of(&target),
            previous,
        });
    }
    run_tool(
        Command::new("pg_restore")
            .arg("--clean")
            .arg("--if-exists")
            .arg("--no-owner")
            .arg("--single-transaction")
            .arg("--dbname")
            .arg(database_url)
            .arg(source),
        "pg_restore",
    )?;
    Ok(Report {
        file: source.to_owned(),
        bytes: size_of(source),
        previous: None,
    })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn run_tool(command: &mut Command, name: &str) -> Result<()> {
    let output = command.output().map_err(|e| {
        unavailable(format!(
            "{name} could not be run ({e}): PostgreSQL is backed up with its own tools; install the PostgreSQL client"
        ))
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(unavailable(format!(
            "{name} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}
