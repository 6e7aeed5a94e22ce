//! Global search's storage: one terms table per record table (`<table>_terms`: term, field,
//! record id), ordered by term so a prefix is a range scan, with an index by record for the
//! other words of a query and for replacing a record's terms; and the `search_indexes` state of
//! each entity's terms. Terms compare byte-wise (SQLite's BINARY, PostgreSQL's "C" collation),
//! so a prefix range is exact and served by the index in any database locale.

use chrono::{DateTime, Utc};
use sea_orm::Statement;
use sea_orm::sea_query::{
    Alias, Asterisk, Expr, ExprTrait, Func, JoinType, Order, Query, SimpleExpr, UnionType,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::records::{
    RecordRow, compile_condition, compile_scope, decode_row, exec, placeholder, record_columns,
    select_columns, uuid_value,
};
use super::{Backend, Conn, backend_of};
use crate::domain::query::Condition;
use crate::error::Result;

/// The terms table of a record table.
pub fn terms_table(table: &str) -> String {
    format!("{table}_terms")
}

/// Creates a record table's terms table and its index, if they do not exist.
///
/// # Errors
/// `Error::Db`.
pub async fn create_terms_table(conn: &impl Conn, table: &str) -> Result<()> {
    let terms = terms_table(table);
    let sql = match backend_of(conn) {
        Backend::Sqlite => format!(
            "CREATE TABLE IF NOT EXISTS \"{terms}\" (\"term\" TEXT NOT NULL, \
             \"field\" TEXT NOT NULL, \"record_id\" TEXT NOT NULL, \
             PRIMARY KEY (\"term\", \"field\", \"record_id\")) WITHOUT ROWID"
        ),
        Backend::Postgres => format!(
            "CREATE TABLE IF NOT EXISTS \"{terms}\" (\"term\" text COLLATE \"C\" NOT NULL, \
             \"field\" text NOT NULL, \"record_id\" uuid NOT NULL, \
             PRIMARY KEY (\"term\", \"field\", \"record_id\"))"
        ),
    };
    exec(conn, sql).await?;
    exec(
        conn,
        format!(
            "CREATE INDEX IF NOT EXISTS \"{terms}_record\" ON \"{terms}\" (\"record_id\", \"term\")"
        ),
    )
    .await
}

/// One stored term of one field of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermRow {
    /// The record.
    pub record_id: Uuid,
    /// The field key.
    pub field: String,
    /// The term.
    pub term: String,
}

/// Rows per multi-row statement (3 parameters each, well under every backend's limit).
const CHUNK: usize = 300;

/// Removes the terms of `ids`.
///
/// # Errors
/// `Error::Db`.
pub async fn delete_terms(conn: &impl Conn, table: &str, ids: &[Uuid]) -> Result<()> {
    let backend = backend_of(conn);
    for chunk in ids.chunks(CHUNK) {
        let mut delete = Query::delete();
        delete.from_table(Alias::new(terms_table(table))).and_where(
            Expr::col(Alias::new("record_id"))
                .is_in(chunk.iter().map(|id| uuid_value(backend, *id))),
        );
        conn.execute(&delete).await?;
    }
    Ok(())
}

/// Adds terms (ones already stored are kept).
///
/// # Errors
/// `Error::Db`.
pub async fn insert_terms(conn: &impl Conn, table: &str, terms: &[TermRow]) -> Result<()> {
    let backend = backend_of(conn);
    let name = terms_table(table);
    for chunk in terms.chunks(CHUNK) {
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 3);
        let mut tuples = Vec::with_capacity(chunk.len());
        for (i, row) in chunk.iter().enumerate() {
            tuples.push(format!(
                "({}, {}, {})",
                placeholder(backend, i * 3 + 1),
                placeholder(backend, i * 3 + 2),
                placeholder(backend, i * 3 + 3)
            ));
            values.push(row.term.clone().into());
            values.push(row.field.clone().into());
            values.push(uuid_value(backend, row.record_id));
        }
        let sql = format!(
            "INSERT INTO \"{name}\" (\"term\", \"field\", \"record_id\") VALUES {} \
             ON CONFLICT DO NOTHING",
            tuples.join(", ")
        );
        conn.execute_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    }
    Ok(())
}

/// Replaces every term of `ids` with `terms`.
///
/// # Errors
/// `Error::Db`.
pub async fn replace_terms(
    conn: &impl Conn,
    table: &str,
    ids: &[Uuid],
    terms: &[TermRow],
) -> Result<()> {
    delete_terms(conn, table, ids).await?;
    insert_terms(conn, table, terms).await
}

/// A term range to look up: `[from, before)`, or exactly `from` when `before` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermRange {
    /// First term.
    pub from: String,
    /// The first term after the range (none: exactly `from`).
    pub before: Option<String>,
}

/// One lookup in one entity's terms.
#[derive(Debug, Clone)]
pub struct Lookup<'a> {
    /// Every range must match a term of a record.
    pub ranges: &'a [TermRange],
    /// The fields whose terms count.
    pub fields: &'a [String],
    /// The caller's read scope (`None`: every record).
    pub scope: Option<&'a Condition>,
    /// Most records to return.
    pub limit: u64,
}

/// Terms of a range counted before choosing how to look up: fewer than this, and reading them
/// all is cheap.
const TERM_PROBE: u64 = 2_000;
/// Records of a scope counted: fewer than this, and checking each of them is cheap.
const SCOPE_PROBE: u64 = 10_000;

fn range_of(alias: &str, range: &TermRange) -> SimpleExpr {
    let column = || Expr::col((Alias::new(alias), Alias::new("term")));
    match &range.before {
        None => column().eq(range.from.clone()),
        Some(before) => column()
            .gte(range.from.clone())
            .and(column().lt(before.clone())),
    }
}

fn fields_of(alias: &str, fields: &[String]) -> SimpleExpr {
    Expr::col((Alias::new(alias), Alias::new("field"))).is_in(fields.iter().cloned())
}

/// How many terms fall in `range` (counted up to `cap`).
async fn count_terms(
    conn: &impl Conn,
    terms: &str,
    range: &TermRange,
    fields: &[String],
    cap: u64,
) -> Result<u64> {
    let mut inner = Query::select();
    inner
        .expr(Expr::cust("1"))
        .from_as(Alias::new(terms), Alias::new("d"))
        .and_where(range_of("d", range))
        .and_where(fields_of("d", fields))
        .limit(cap);
    count_of(conn, inner).await
}

/// How many live records `scope` reaches (counted up to `cap`).
async fn count_scope(conn: &impl Conn, table: &str, scope: &Condition, cap: u64) -> Result<u64> {
    let mut inner = Query::select();
    inner
        .expr(Expr::cust("1"))
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new("deleted_at")).is_null())
        .and_where(selective(backend_of(conn), scope))
        .limit(cap);
    count_of(conn, inner).await
}

async fn count_of(conn: &impl Conn, inner: sea_orm::sea_query::SelectStatement) -> Result<u64> {
    let mut outer = Query::select();
    outer
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from_subquery(inner, Alias::new("probe"));
    let n: i64 = match conn.query_one(&outer).await? {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A part of a scope, compiled to select records through its index. On SQLite the owner
/// index's statistics are an average over every owner (one who owns most records makes the
/// others look the same, and the unowned pool too), which would have the planner read the
/// whole table; parts are only used this way when counted small, so the planner is told so.
fn selective(backend: Backend, part: &Condition) -> SimpleExpr {
    let compiled = compile_scope(backend, part);
    match backend {
        Backend::Sqlite => Func::cust(Alias::new("likelihood"))
            .arg(compiled)
            .arg(Expr::cust("0.001"))
            .into(),
        Backend::Postgres => compiled,
    }
}

/// The parts of a scope that select records on their own (its alternatives).
fn scope_parts(scope: &Condition) -> Vec<&Condition> {
    match scope {
        Condition::Any(parts) if !parts.is_empty() => parts.iter().collect(),
        other => vec![other],
    }
}

/// Adds to `select` (over the record table): live, with a term in each of `ranges`.
fn with_words<'r>(
    select: &mut sea_orm::sea_query::SelectStatement,
    table: &str,
    terms: &str,
    lookup: &Lookup<'_>,
    ranges: impl Iterator<Item = &'r TermRange>,
) {
    select.and_where(Expr::col((Alias::new(table), Alias::new("deleted_at"))).is_null());
    for (i, range) in ranges.enumerate() {
        let alias = format!("u{i}");
        let mut other = Query::select();
        other
            .expr(Expr::cust("1"))
            .from_as(Alias::new(terms), Alias::new(&alias))
            .and_where(
                Expr::col((Alias::new(&alias), Alias::new("record_id")))
                    .equals((Alias::new(table), Alias::new("id"))),
            )
            .and_where(range_of(&alias, range))
            .and_where(fields_of(&alias, lookup.fields));
        select.and_where(Expr::exists(other));
    }
}

/// The live records in scope with a term in every range, each once.
///
/// The plan is chosen per lookup, since one plan cannot serve both a rare word and a common
/// one, nor both an admin and someone who reads only their own records: the rarest range
/// (counted up to a bound) drives when it is rare; else, when the caller's scope is small,
/// their records are read and each is checked for the words; else (a common word and a wide
/// scope, so matches are dense) the terms are read in order until enough records are found.
/// A driving range's records come in term order, so exact words come before longer ones.
///
/// # Errors
/// `Error::Db`.
pub async fn lookup(conn: &impl Conn, table: &str, lookup: &Lookup<'_>) -> Result<Vec<RecordRow>> {
    let backend = backend_of(conn);
    if lookup.ranges.is_empty() || lookup.fields.is_empty() {
        return Ok(Vec::new());
    }
    let terms = terms_table(table);
    let mut driver = 0;
    let mut rare = false;
    if lookup.ranges.len() > 1 || lookup.scope.is_some() {
        let mut fewest = u64::MAX;
        for (i, range) in lookup.ranges.iter().enumerate() {
            let n = count_terms(conn, &terms, range, lookup.fields, TERM_PROBE).await?;
            if n < fewest {
                fewest = n;
                driver = i;
            }
        }
        rare = fewest < TERM_PROBE;
    }
    let parts = lookup.scope.map(scope_parts);
    let by_scope = match &parts {
        Some(parts) if !rare => {
            let mut reached = 0;
            for part in parts {
                reached += count_scope(conn, table, part, SCOPE_PROBE).await?;
            }
            reached < SCOPE_PROBE
        }
        _ => false,
    };
    let mut select = match (&parts, by_scope) {
        (Some(parts), true) => {
            // One branch per part of the scope, each served by its own index (SQLite does not
            // combine a partial index across an OR).
            let mut branches = parts.iter().map(|part| {
                let mut branch = Query::select();
                select_columns(&mut branch, table);
                branch.and_where(selective(backend, part));
                with_words(&mut branch, table, &terms, lookup, lookup.ranges.iter());
                branch
            });
            let mut union = branches
                .next()
                .ok_or_else(|| crate::error::Error::internal("a scope without parts"))?;
            for branch in branches {
                union.union(UnionType::All, branch);
            }
            let mut outer = Query::select();
            outer
                .column(Asterisk)
                .from_subquery(union, Alias::new("reached"));
            outer
        }
        _ => {
            let record = || Alias::new(table);
            let mut select = Query::select();
            // The terms are the outer loop, read in their index's order (SQLite keeps the left
            // table of a CROSS JOIN outside; PostgreSQL chooses it for a small LIMIT).
            let join = match backend {
                Backend::Sqlite => JoinType::CrossJoin,
                Backend::Postgres => JoinType::InnerJoin,
            };
            let same_record = || {
                Expr::col((Alias::new("d"), Alias::new("record_id")))
                    .equals((record(), Alias::new("id")))
            };
            record_columns(&mut select, table);
            select
                .from_as(Alias::new(&terms), Alias::new("d"))
                .join(join, record(), same_record())
                // sea-query writes a CROSS JOIN without its ON clause.
                .and_where(same_record())
                .and_where(range_of("d", &lookup.ranges[driver]))
                .and_where(fields_of("d", lookup.fields));
            if let Some(scope) = lookup.scope {
                select.and_where(compile_condition(backend, scope));
            }
            let others = lookup
                .ranges
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != driver)
                .map(|(_, r)| r);
            with_words(&mut select, table, &terms, lookup, others);
            // SQLite reads the driving terms in their index's order and stops at the limit;
            // PostgreSQL cannot keep that order through `field = ANY(…)` and would sort every
            // match first, so it is left to find them its own way (from its statistics).
            if backend == Backend::Sqlite {
                for column in ["term", "field", "record_id"] {
                    select.order_by((Alias::new("d"), Alias::new(column)), Order::Asc);
                }
            }
            select
        }
    };
    // A record matching the driving range through several of its terms comes once per term.
    select.limit(lookup.limit.saturating_mul(4).saturating_add(4));
    let rows = conn.query_all(&select).await?;
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    for row in &rows {
        let row = decode_row(row, backend)?;
        if seen.insert(row.id) && (found.len() as u64) < lookup.limit {
            found.push(row);
        }
    }
    Ok(found)
}

/// A page of an entity's records (deleted ones too: a restored record is found again), in id
/// order after `after`, locked until the transaction ends (PostgreSQL), for rebuilding terms.
///
/// # Errors
/// `Error::Db`.
pub async fn docs_after(
    conn: &impl Conn,
    table: &str,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<(Uuid, Map<String, Value>)>> {
    let backend = backend_of(conn);
    let mut query = Query::select();
    select_columns(&mut query, table);
    if let Some(after) = after {
        query.and_where(
            Expr::col((Alias::new(table), Alias::new("id"))).gt(uuid_value(backend, after)),
        );
    }
    query
        .order_by((Alias::new(table), Alias::new("id")), Order::Asc)
        .limit(limit);
    if backend == Backend::Postgres {
        query.lock(sea_orm::sea_query::LockType::Update);
    }
    let rows = conn.query_all(&query).await?;
    rows.iter()
        .map(|row| decode_row(row, backend).map(|r| (r.id, r.doc)))
        .collect()
}

/// What an entity's stored terms were made from, and whether a rebuild is under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchState {
    /// The entity definition.
    pub entity_id: Uuid,
    /// The searchable fields and tokeniser the terms follow (or are being rebuilt to follow).
    pub signature: String,
    /// `indexing` or `ready`.
    pub status: String,
}

/// Records an entity's search state.
///
/// # Errors
/// `Error::Db`.
pub async fn set_state(
    conn: &impl Conn,
    workspace_id: Uuid,
    state: &SearchState,
    now: DateTime<Utc>,
) -> Result<()> {
    let backend = backend_of(conn);
    let p: Vec<String> = (1..=5).map(|i| placeholder(backend, i)).collect();
    conn.execute_raw(Statement::from_sql_and_values(
        conn.get_database_backend(),
        format!(
            "INSERT INTO search_indexes (entity_id, workspace_id, signature, status, updated_at) \
             VALUES ({}, {}, {}, {}, {}) ON CONFLICT (entity_id) DO UPDATE SET \
             signature = excluded.signature, status = excluded.status, \
             updated_at = excluded.updated_at",
            p[0], p[1], p[2], p[3], p[4]
        ),
        [
            state.entity_id.into(),
            workspace_id.into(),
            state.signature.clone().into(),
            state.status.clone().into(),
            now.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// An entity's search state, if it has one.
///
/// # Errors
/// `Error::Db`.
pub async fn state(conn: &impl Conn, entity_id: Uuid) -> Result<Option<SearchState>> {
    let backend = backend_of(conn);
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            format!(
                "SELECT entity_id, signature, status FROM search_indexes WHERE entity_id = {}",
                placeholder(backend, 1)
            ),
            [entity_id.into()],
        ))
        .await?;
    row.as_ref().map(decode_state).transpose()
}

/// The search states of a workspace's entities.
///
/// # Errors
/// `Error::Db`.
pub async fn states(conn: &impl Conn, workspace_id: Uuid) -> Result<Vec<SearchState>> {
    let backend = backend_of(conn);
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            format!(
                "SELECT entity_id, signature, status FROM search_indexes WHERE workspace_id = {}",
                placeholder(backend, 1)
            ),
            [workspace_id.into()],
        ))
        .await?;
    rows.iter().map(decode_state).collect()
}

fn decode_state(row: &sea_orm::QueryResult) -> Result<SearchState> {
    Ok(SearchState {
        entity_id: row.try_get("", "entity_id")?,
        signature: row.try_get("", "signature")?,
        status: row.try_get("", "status")?,
    })
}
