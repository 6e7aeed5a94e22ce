//! Queries on `imports`, `import_chunks`, `import_problems` and `import_mappings`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Order, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::Conn;
use super::entities::import;
use crate::error::{Error, Result};

pub use import::Model as ImportRow;

/// Import states as stored.
pub mod status {
    /// The file is stored and described; nothing checked yet.
    pub const UPLOADED: &str = "uploaded";
    /// A dry run is under way.
    pub const CHECKING: &str = "checking";
    /// A dry run finished: its report stands.
    pub const CHECKED: &str = "checked";
    /// Writing batches.
    pub const RUNNING: &str = "running";
    /// Asked to stop: stops after the batch being written.
    pub const CANCELLING: &str = "cancelling";
    /// Stopped by a person; the batches written before stay.
    pub const CANCELLED: &str = "cancelled";
    /// Every row was read.
    pub const DONE: &str = "done";
    /// Stopped by an error (the report says which).
    pub const FAILED: &str = "failed";
}

/// One problem found on one line of an import's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemRow {
    /// The line (XLSX: row) of the file; 0 for the file as a whole.
    pub line: i64,
    /// Its order among the line's problems.
    pub seq: i32,
    /// The column's header, when one column is at fault.
    pub column: Option<String>,
    /// The field, when one field is at fault.
    pub field: Option<String>,
    /// Machine-readable code.
    pub code: String,
    /// What is wrong, for people.
    pub message: String,
}

/// Stores a new import.
///
/// # Errors
/// `Error::Db`.
pub async fn insert(conn: &impl Conn, row: ImportRow) -> Result<()> {
    import::ActiveModel::from(row).insert(conn).await?;
    Ok(())
}

/// One import of the workspace.
///
/// # Errors
/// `Error::Db`.
pub async fn find(conn: &impl Conn, workspace_id: Uuid, id: Uuid) -> Result<Option<ImportRow>> {
    Ok(import::Entity::find_by_id(id)
        .filter(import::Column::WorkspaceId.eq(workspace_id))
        .one(conn)
        .await?)
}

/// The workspace's latest imports (of one entity when given), newest first.
///
/// # Errors
/// `Error::Db`.
pub async fn latest(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity: Option<&str>,
    limit: u64,
) -> Result<Vec<ImportRow>> {
    let mut query = import::Entity::find().filter(import::Column::WorkspaceId.eq(workspace_id));
    if let Some(entity) = entity {
        query = query.filter(import::Column::Entity.eq(entity));
    }
    Ok(query
        .order_by_desc(import::Column::CreatedAt)
        .limit(limit)
        .all(conn)
        .await?)
}

/// Moves an import from one of `from` to `to` with its settings and job; whether it was in
/// one of `from`.
///
/// # Errors
/// `Error::Db`.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    conn: &impl Conn,
    id: Uuid,
    from: &[&str],
    to: &str,
    settings: serde_json::Value,
    job_id: Uuid,
    counters: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<bool> {
    let result = import::Entity::update_many()
        .col_expr(import::Column::Status, Expr::value(to))
        .col_expr(import::Column::Settings, Expr::value(Some(settings)))
        .col_expr(import::Column::JobId, Expr::value(Some(job_id)))
        .col_expr(import::Column::Counters, Expr::value(counters))
        .col_expr(import::Column::Error, Expr::value(Option::<String>::None))
        .col_expr(import::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            import::Column::FinishedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(import::Column::Id.eq(id))
        .filter(import::Column::Status.is_in(from.iter().copied()))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Moves an import from one of `from` to `to`; `finished` stamps its end, `error` says why it
/// failed. Whether it was in one of `from`.
///
/// # Errors
/// `Error::Db`.
pub async fn set_status(
    conn: &impl Conn,
    id: Uuid,
    from: &[&str],
    to: &str,
    error: Option<String>,
    finished: bool,
    now: DateTime<Utc>,
) -> Result<bool> {
    let mut update = import::Entity::update_many()
        .col_expr(import::Column::Status, Expr::value(to))
        .col_expr(import::Column::UpdatedAt, Expr::value(now));
    if error.is_some() {
        update = update.col_expr(import::Column::Error, Expr::value(error));
    }
    if finished {
        update = update.col_expr(import::Column::FinishedAt, Expr::value(Some(now)));
    }
    let result = update
        .filter(import::Column::Id.eq(id))
        .filter(import::Column::Status.is_in(from.iter().copied()))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Stores an import's counters.
///
/// # Errors
/// `Error::Db`.
pub async fn set_counters(
    conn: &impl Conn,
    id: Uuid,
    counters: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<()> {
    import::Entity::update_many()
        .col_expr(import::Column::Counters, Expr::value(counters))
        .col_expr(import::Column::UpdatedAt, Expr::value(now))
        .filter(import::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Stores the file's layout (encoding, headers, rows) once it was read through.
///
/// # Errors
/// `Error::Db`.
pub async fn set_layout(conn: &impl Conn, id: Uuid, layout: serde_json::Value) -> Result<()> {
    import::Entity::update_many()
        .col_expr(import::Column::Layout, Expr::value(layout))
        .filter(import::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Appends a piece of an import's file.
///
/// # Errors
/// `Error::Db`.
pub async fn insert_chunk(
    conn: &impl Conn,
    import_id: Uuid,
    seq: i32,
    data: Vec<u8>,
) -> Result<()> {
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new("import_chunks"))
        .columns([
            Alias::new("import_id"),
            Alias::new("seq"),
            Alias::new("data"),
        ])
        .values([Expr::val(import_id), Expr::val(seq), Expr::val(data)])
        .map_err(Error::internal)?;
    conn.execute(&insert).await?;
    Ok(())
}

/// One piece of an import's file (`None` past the end).
///
/// # Errors
/// `Error::Db`.
pub async fn chunk(conn: &impl Conn, import_id: Uuid, seq: i32) -> Result<Option<Vec<u8>>> {
    let mut query = Query::select();
    query
        .column(Alias::new("data"))
        .from(Alias::new("import_chunks"))
        .and_where(Expr::col(Alias::new("import_id")).eq(import_id))
        .and_where(Expr::col(Alias::new("seq")).eq(seq));
    match conn.query_one(&query).await? {
        Some(row) => Ok(Some(row.try_get::<Vec<u8>>("", "data")?)),
        None => Ok(None),
    }
}

/// Drops an import's file (once it is no longer needed: the import finished).
///
/// # Errors
/// `Error::Db`.
pub async fn delete_chunks(conn: &impl Conn, import_id: Uuid) -> Result<()> {
    let mut delete = Query::delete();
    delete
        .from_table(Alias::new("import_chunks"))
        .and_where(Expr::col(Alias::new("import_id")).eq(import_id));
    conn.execute(&delete).await?;
    Ok(())
}

/// Drops the problems of an import's earlier run (a dry run before the import).
///
/// # Errors
/// `Error::Db`.
pub async fn delete_problems(conn: &impl Conn, import_id: Uuid) -> Result<()> {
    let mut delete = Query::delete();
    delete
        .from_table(Alias::new("import_problems"))
        .and_where(Expr::col(Alias::new("import_id")).eq(import_id));
    conn.execute(&delete).await?;
    Ok(())
}

/// Stores problems of an import.
///
/// # Errors
/// `Error::Db`.
pub async fn insert_problems(
    conn: &impl Conn,
    import_id: Uuid,
    problems: &[ProblemRow],
) -> Result<()> {
    for chunk in problems.chunks(200) {
        let mut insert = Query::insert();
        insert.into_table(Alias::new("import_problems")).columns([
            Alias::new("import_id"),
            Alias::new("line"),
            Alias::new("seq"),
            Alias::new("column_name"),
            Alias::new("field"),
            Alias::new("code"),
            Alias::new("message"),
        ]);
        for p in chunk {
            insert
                .values([
                    Expr::val(import_id),
                    Expr::val(p.line),
                    Expr::val(p.seq),
                    Expr::val(p.column.clone()),
                    Expr::val(p.field.clone()),
                    Expr::val(p.code.clone()),
                    Expr::val(p.message.clone()),
                ])
                .map_err(Error::internal)?;
        }
        conn.execute(&insert).await?;
    }
    Ok(())
}

/// An import's problems in file order, after `after_line`, at most `limit`.
///
/// # Errors
/// `Error::Db`.
pub async fn problems(
    conn: &impl Conn,
    import_id: Uuid,
    after_line: i64,
    limit: u64,
) -> Result<Vec<ProblemRow>> {
    let mut query = Query::select();
    query
        .columns(["line", "seq", "column_name", "field", "code", "message"].map(Alias::new))
        .from(Alias::new("import_problems"))
        .and_where(Expr::col(Alias::new("import_id")).eq(import_id))
        .and_where(Expr::col(Alias::new("line")).gt(after_line))
        .order_by(Alias::new("line"), Order::Asc)
        .order_by(Alias::new("seq"), Order::Asc)
        .limit(limit);
    conn.query_all(&query)
        .await?
        .into_iter()
        .map(|row| {
            Ok(ProblemRow {
                line: row.try_get("", "line")?,
                seq: row.try_get("", "seq")?,
                column: row.try_get("", "column_name")?,
                field: row.try_get("", "field")?,
                code: row.try_get("", "code")?,
                message: row.try_get("", "message")?,
            })
        })
        .collect()
}

/// The headers people mapped before for an entity, each with its field.
///
/// # Errors
/// `Error::Db`.
pub async fn mappings(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity: &str,
) -> Result<Vec<(String, String)>> {
    let mut query = Query::select();
    query
        .columns([Alias::new("header"), Alias::new("field")])
        .from(Alias::new("import_mappings"))
        .and_where(Expr::col(Alias::new("workspace_id")).eq(workspace_id))
        .and_where(Expr::col(Alias::new("entity")).eq(entity));
    conn.query_all(&query)
        .await?
        .into_iter()
        .map(|row| Ok((row.try_get("", "header")?, row.try_get("", "field")?)))
        .collect()
}

/// Remembers which field each header went to (a later one replaces an earlier one).
///
/// # Errors
/// `Error::Db`.
pub async fn save_mappings(
    conn: &impl Conn,
    workspace_id: Uuid,
    entity: &str,
    pairs: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let mut delete = Query::delete();
    delete
        .from_table(Alias::new("import_mappings"))
        .and_where(Expr::col(Alias::new("workspace_id")).eq(workspace_id))
        .and_where(Expr::col(Alias::new("entity")).eq(entity))
        .and_where(Expr::col(Alias::new("header")).is_in(pairs.iter().map(|(h, _)| h.clone())));
    conn.execute(&delete).await?;
    let mut insert = Query::insert();
    insert.into_table(Alias::new("import_mappings")).columns([
        Alias::new("workspace_id"),
        Alias::new("entity"),
        Alias::new("header"),
        Alias::new("field"),
        Alias::new("updated_at"),
    ]);
    for (header, field) in pairs {
        insert
            .values([
                Expr::val(workspace_id),
                Expr::val(entity.to_owned()),
                Expr::val(header.clone()),
                Expr::val(field.clone()),
                Expr::val(now),
            ])
            .map_err(Error::internal)?;
    }
    conn.execute(&insert).await?;
    Ok(())
}

/// Drops the files of imports last changed before `before` that will not run any more or were
/// left waiting (uploaded, checked, failed, cancelled, done): their rows and reports stay.
/// Returns how many imports lost their file.
///
/// # Errors
/// `Error::Db`.
pub async fn purge_files(conn: &impl Conn, before: DateTime<Utc>) -> Result<u64> {
    let idle = import::Entity::find()
        .filter(import::Column::UpdatedAt.lt(before))
        .filter(import::Column::Status.is_in([
            status::UPLOADED,
            status::CHECKED,
            status::FAILED,
            status::CANCELLED,
            status::DONE,
        ]))
        .all(conn)
        .await?;
    let mut dropped = 0;
    for row in idle {
        let mut delete = Query::delete();
        delete
            .from_table(Alias::new("import_chunks"))
            .and_where(Expr::col(Alias::new("import_id")).eq(row.id));
        if conn.execute(&delete).await?.rows_affected() > 0 {
            dropped += 1;
        }
        if row.status == status::UPLOADED || row.status == status::CHECKED {
            // Nothing can run without the file any more.
            import::Entity::update_many()
                .col_expr(import::Column::Status, Expr::value(status::CANCELLED))
                .col_expr(
                    import::Column::Error,
                    Expr::value(Some("the file was removed after 7 days unused".to_owned())),
                )
                .filter(import::Column::Id.eq(row.id))
                .exec(conn)
                .await?;
        }
    }
    Ok(dropped)
}
