//! Spreadsheet imports (CSV, XLSX) into an entity. A file is uploaded and stored in the database
//! in pieces (any process can read it; a restart loses nothing), read through once for its
//! [`source::Layout`], and a column mapping is suggested ([`mapping`]). A person then checks
//! (a dry run: every row converted and validated, nothing written) or runs the import: a
//! `records.import` job reads the file a row at a time on a blocking thread, converts cells by
//! field kind ([`convert`]), finds the records an upsert changes, and writes batches through
//! [`Records::write_rows`] all-or-nothing, each with the import's counters, its problems and the
//! job's progress in the same transaction — so a resumed import starts exactly after the last
//! batch written. Rows with problems are reported by line and, unless the import is strict,
//! left out of their batch. A person can cancel between batches.

pub mod convert;
pub mod mapping;
pub mod source;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::access::FieldRule;
use crate::clock::SharedClock;
use crate::definitions::{EntityModel, Registry};
use crate::domain::new_id;
use crate::error::{Error, FieldError, Result};
use crate::jobs::{Handler, JobContext, JobFailure, NewJob};
use crate::records::bulk::{BatchMark, BulkOptions, BulkRow, RowOutcome, problems_by_row};
use crate::records::{Channel, Context, Records, codec};
use crate::store::imports::{self as rows, ImportRow, ProblemRow, status};
use crate::store::jobs::{JobRow, Lease};
use crate::store::{Db, Sharing};
use convert::{Lookup, Refusal, fold};
use source::{Cell, Layout, SourceRow};

/// The job kind that runs imports and dry runs.
pub const IMPORT_JOB: &str = "records.import";

/// Largest file accepted.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Bytes per stored piece of a file.
const CHUNK_BYTES: usize = 1024 * 1024;

/// Problems kept per import (more are counted, not stored).
pub const KEPT_PROBLEMS: u64 = 10_000;

/// Rows per batch unless the import says otherwise.
pub const DEFAULT_BATCH: usize = 500;

/// How rows meet stored records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every row is a new record.
    #[default]
    Insert,
    /// A row whose key matches a record changes it; others are new records.
    Upsert,
    /// A row changes the record its key matches; a row matching none is a problem.
    Update,
}

/// What a person chose for a run: the mapping and how rows are written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Per column, in file order: a field key, `owner`, `id`, or null (left out).
    pub mapping: Vec<Option<String>>,
    /// Insert, upsert or update.
    #[serde(default)]
    pub mode: Mode,
    /// The field matching rows to records (upsert, update): a mapped field or `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Whether `03/04/2026` is the 3rd of April.
    #[serde(default)]
    pub day_first: bool,
    /// Leave rows with problems out and write the rest of their batch (else the first batch
    /// with a problem stops the import, unwritten).
    #[serde(default = "yes")]
    pub skip_invalid: bool,
    /// Whether workflows react to the imported records.
    #[serde(default)]
    pub workflows: bool,
    /// Rows per batch (1–5000).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
}

fn yes() -> bool {
    true
}

fn default_batch() -> usize {
    DEFAULT_BATCH
}

/// How far an import got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Data rows read (written, unchanged or failed).
    pub read: u64,
    /// New records (a dry run: that would be created).
    pub created: u64,
    /// Records changed.
    pub updated: u64,
    /// Rows matching a record that already held their values.
    pub unchanged: u64,
    /// Rows left out for their problems.
    pub failed: u64,
    /// Batches written.
    pub batches: u64,
    /// Problems found (at most [`KEPT_PROBLEMS`] are kept).
    pub problems: u64,
}

/// An import as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ImportView {
    /// Id.
    pub id: Uuid,
    /// The entity imported into.
    pub entity: String,
    /// The file's name.
    pub file_name: String,
    /// `csv` or `xlsx`.
    pub format: String,
    /// Bytes.
    pub size: i64,
    /// SHA-256 of the file.
    pub sha256: String,
    /// `uploaded`, `checking`, `checked`, `running`, `cancelling`, `cancelled`, `done`, `failed`.
    pub status: String,
    /// Whether the last run was a dry run.
    pub dry_run: bool,
    /// The file as read.
    pub layout: Layout,
    /// The suggested target per column (see [`Settings::mapping`]).
    pub suggested_mapping: Vec<Option<String>>,
    /// What the last run was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<Value>,
    /// Progress and results.
    pub counters: Counters,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The job running it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    /// Uploaded by.
    pub created_by: Uuid,
    /// Uploaded.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When the last run ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// One problem as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemView {
    /// The file's line (XLSX: row number); 0 for the file as a whole.
    pub line: i64,
    /// The column's header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Machine-readable code.
    pub code: String,
    /// What is wrong.
    pub message: String,
}

/// Imports of one workspace, for one caller.
pub struct Imports<'a> {
    /// The database.
    pub db: &'a Db,
    /// The clock.
    pub clock: &'a SharedClock,
    /// The live registry.
    pub registry: &'a Registry,
}

fn not_found(id: Uuid) -> Error {
    Error::not_found(format!("import {id}"))
}

fn counters_of(row: &ImportRow) -> Counters {
    serde_json::from_value(row.counters.clone()).unwrap_or_default()
}

fn layout_of(row: &ImportRow) -> Result<Layout> {
    serde_json::from_value(row.layout.clone()).map_err(Error::internal)
}

impl Imports<'_> {
    fn records(&self) -> Records<'_> {
        Records {
            db: self.db,
            clock: self.clock,
            registry: self.registry,
        }
    }

    /// Stores an uploaded file (at `path`) as a new import into `entity`, read through once for
    /// its layout, with a suggested mapping.
    ///
    /// # Errors
    /// `Error::NotFound` (entity), `Error::Forbidden` (the caller may not create its records),
    /// `Error::Invalid` at `/file`, `/encoding` or `/sheet` for a file that cannot be read.
    pub async fn upload(
        &self,
        ctx: &Context,
        entity: &str,
        file_name: &str,
        path: &Path,
        encoding: Option<&str>,
        sheet: Option<&str>,
    ) -> Result<ImportView> {
        let account = ctx
            .actor
            .account_id()
            .ok_or_else(|| Error::forbidden("imports are made by members"))?;
        let shape = self.records().shape(ctx, entity).await?;
        if !shape.can_create && !shape.can_update {
            return Err(Error::forbidden(format!(
                "your role may not create or change {entity} records"
            )));
        }
        let name = file_name
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(file_name)
            .chars()
            .filter(|c| !c.is_control())
            .take(255)
            .collect::<String>();
        let name = if name.trim().is_empty() {
            "import.csv".to_owned()
        } else {
            name.trim().to_owned()
        };
        let (layout, size, sha256) = {
            let path = path.to_owned();
            let name = name.clone();
            let encoding = encoding.map(str::to_owned);
            let sheet = sheet.map(str::to_owned);
            tokio::task::spawn_blocking(move || -> Result<(Layout, u64, String)> {
                let (size, sha256, head) = digest(&path)?;
                if size == 0 {
                    return Err(Error::invalid("/file", "empty", "the file is empty"));
                }
                if size > MAX_FILE_BYTES {
                    return Err(Error::PayloadTooLarge {
                        limit: MAX_FILE_BYTES as usize,
                    });
                }
                let format = source::format_of(&name, &head)?;
                let layout =
                    source::describe(&path, format, encoding.as_deref(), sheet.as_deref())?;
                Ok((layout, size, sha256))
            })
            .await
            .map_err(Error::internal)??
        };
        let now = self.clock.now();
        let id = new_id();
        let row = ImportRow {
            id,
            workspace_id: ctx.scope.workspace_id,
            entity: entity.to_owned(),
            created_by: account,
            file_name: name,
            format: layout.format.clone(),
            layout: serde_json::to_value(&layout).map_err(Error::internal)?,
            size: size as i64,
            sha256,
            status: status::UPLOADED.to_owned(),
            settings: None,
            job_id: None,
            counters: serde_json::to_value(Counters::default()).map_err(Error::internal)?,
            error: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        let tx = self.db.write(Sharing::Alone).await?;
        rows::insert(&tx, row.clone()).await?;
        let mut file = std::fs::File::open(path).map_err(Error::internal)?;
        let mut seq = 0;
        loop {
            let mut piece = Vec::with_capacity(CHUNK_BYTES);
            (&mut file)
                .take(CHUNK_BYTES as u64)
                .read_to_end(&mut piece)
                .map_err(Error::internal)?;
            if piece.is_empty() {
                break;
            }
            rows::insert_chunk(&tx, id, seq, piece).await?;
            seq += 1;
        }
        crate::store::write::committed(tx.commit().await?)?;
        self.view(ctx, &shape, row, true).await
    }

    async fn view(
        &self,
        ctx: &Context,
        shape: &crate::records::Shape,
        row: ImportRow,
        suggest: bool,
    ) -> Result<ImportView> {
        let layout = layout_of(&row)?;
        let suggested_mapping = if suggest {
            let saved: HashMap<String, String> =
                rows::mappings(self.db.conn(), ctx.scope.workspace_id, &row.entity)
                    .await?
                    .into_iter()
                    .collect();
            mapping::suggest(
                &layout.headers,
                &shape.model,
                &|key| writable(shape, key),
                &saved,
            )
        } else {
            Vec::new()
        };
        let dry_run = row
            .settings
            .as_ref()
            .and_then(|s| s.get("dry_run"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(ImportView {
            id: row.id,
            entity: row.entity.clone(),
            file_name: row.file_name.clone(),
            format: row.format.clone(),
            size: row.size,
            sha256: row.sha256.clone(),
            status: row.status.clone(),
            dry_run,
            layout,
            suggested_mapping,
            counters: counters_of(&row),
            settings: row.settings.clone().map(|mut s| {
                if let Some(o) = s.as_object_mut() {
                    o.shift_remove("dry_run");
                    o.shift_remove("token_role");
                }
                s
            }),
            error: row.error.clone(),
            job_id: row.job_id,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
        })
    }

    /// An import the caller made (admins: any of the workspace's).
    async fn own(&self, ctx: &Context, id: Uuid) -> Result<ImportRow> {
        let row = rows::find(self.db.conn(), ctx.scope.workspace_id, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if !ctx.is_admin() && ctx.actor.account_id() != Some(row.created_by) {
            return Err(not_found(id));
        }
        Ok(row)
    }

    /// One import, with its suggested mapping.
    ///
    /// # Errors
    /// `Error::NotFound` (also for another member's import).
    pub async fn get(&self, ctx: &Context, id: Uuid) -> Result<ImportView> {
        let row = self.own(ctx, id).await?;
        let shape = self.records().shape(ctx, &row.entity).await?;
        self.view(ctx, &shape, row, true).await
    }

    /// The caller's latest imports (admins: everyone's), of one entity when given.
    ///
    /// # Errors
    /// `Error::Db`.
    pub async fn list(&self, ctx: &Context, entity: Option<&str>) -> Result<Vec<ImportView>> {
        let mut out = Vec::new();
        for row in rows::latest(self.db.conn(), ctx.scope.workspace_id, entity, 50).await? {
            if !ctx.is_admin() && ctx.actor.account_id() != Some(row.created_by) {
                continue;
            }
            let Ok(shape) = self.records().shape(ctx, &row.entity).await else {
                continue;
            };
            out.push(self.view(ctx, &shape, row, false).await?);
        }
        Ok(out)
    }

    /// Starts a dry run or the import itself with `settings`; the mapping is remembered for
    /// the entity's next files.
    ///
    /// # Errors
    /// `Error::Invalid` naming each bad setting (`/mapping/{column}`, `/key`, `/batch_size`);
    /// `Error::Conflict` while a run is under way or after the import finished.
    pub async fn start(
        &self,
        ctx: &Context,
        id: Uuid,
        settings: Settings,
        dry_run: bool,
    ) -> Result<ImportView> {
        let row = self.own(ctx, id).await?;
        let written = counters_of(&row);
        if row.status == status::FAILED && written.batches > 0 {
            // Running it again from the top would write those rows twice.
            return Err(Error::conflict(
                "/status",
                "partly_imported",
                format!(
                    "{} rows of this file were imported before it stopped; import the rest as a new file",
                    written.created + written.updated
                ),
            ));
        }
        let shape = self.records().shape(ctx, &row.entity).await?;
        let layout = layout_of(&row)?;
        check_settings(&settings, &layout, &shape)?;
        let now = self.clock.now();
        let mut stored = serde_json::to_value(&settings).map_err(Error::internal)?;
        stored["dry_run"] = json!(dry_run);
        if let Some(role) = ctx.policy.as_ref().and_then(|p| p.narrowed_to.clone()) {
            stored["token_role"] = json!(role);
        }
        let to = if dry_run {
            status::CHECKING
        } else {
            status::RUNNING
        };
        let tx = self.db.write(Sharing::Alone).await?;
        let mut job = NewJob::new(IMPORT_JOB, json!({ "import_id": id }));
        job.workspace_id = Some(ctx.scope.workspace_id);
        let job_id = crate::jobs::enqueue(&tx, self.clock, job)
            .await?
            .ok_or_else(|| Error::internal("import job not enqueued"))?;
        let started = rows::start(
            &tx,
            id,
            &[status::UPLOADED, status::CHECKED, status::FAILED],
            to,
            stored,
            job_id,
            serde_json::to_value(Counters::default()).map_err(Error::internal)?,
            now,
        )
        .await?;
        if !started {
            return Err(Error::conflict(
                "/status",
                "import_state",
                format!(
                    "the import is {}: it can be checked or run only before it ran",
                    row.status
                ),
            ));
        }
        rows::delete_problems(&tx, id).await?;
        let pairs: Vec<(String, String)> = {
            let mut by_header = std::collections::BTreeMap::new();
            for (header, target) in layout.headers.iter().zip(&settings.mapping) {
                if let Some(target) = target.as_deref().filter(|t| !t.is_empty()) {
                    let key = mapping::header_key(header);
                    if !key.is_empty() {
                        by_header.insert(key, target.to_owned());
                    }
                }
            }
            by_header.into_iter().collect()
        };
        rows::save_mappings(&tx, ctx.scope.workspace_id, &row.entity, &pairs, now).await?;
        crate::store::write::committed(tx.commit().await?)?;
        self.get(ctx, id).await
    }

    /// Asks a running import (or dry run) to stop after the batch it is writing.
    ///
    /// # Errors
    /// `Error::Conflict` when it is not running.
    pub async fn cancel(&self, ctx: &Context, id: Uuid) -> Result<ImportView> {
        self.own(ctx, id).await?;
        let now = self.clock.now();
        let stopped = rows::set_status(
            self.db.conn(),
            id,
            &[status::RUNNING, status::CHECKING],
            status::CANCELLING,
            None,
            false,
            now,
        )
        .await?;
        if !stopped {
            // Never started: nothing to wait for.
            let dropped = rows::set_status(
                self.db.conn(),
                id,
                &[status::UPLOADED, status::CHECKED, status::FAILED],
                status::CANCELLED,
                None,
                true,
                now,
            )
            .await?;
            if dropped {
                rows::delete_chunks(self.db.conn(), id).await?;
            } else {
                return Err(Error::conflict(
                    "/status",
                    "import_state",
                    "the import is not running",
                ));
            }
        }
        self.get(ctx, id).await
    }

    /// The problems of an import's last run in file order, after line `after`.
    ///
    /// # Errors
    /// `Error::NotFound`.
    pub async fn problems(
        &self,
        ctx: &Context,
        id: Uuid,
        after: i64,
        limit: u64,
    ) -> Result<Vec<ProblemView>> {
        self.own(ctx, id).await?;
        Ok(
            rows::problems(self.db.conn(), id, after, limit.clamp(1, 1000))
                .await?
                .into_iter()
                .map(|p| ProblemView {
                    line: p.line,
                    column: p.column,
                    field: p.field,
                    code: p.code,
                    message: p.message,
                })
                .collect(),
        )
    }
}

/// Whether the caller may set `key` (the shape's field rules).
fn writable(shape: &crate::records::Shape, key: &str) -> bool {
    matches!(shape.rule(key), FieldRule::Visible | FieldRule::Masked)
}

fn check_settings(
    settings: &Settings,
    layout: &Layout,
    shape: &crate::records::Shape,
) -> Result<()> {
    let model = &shape.model;
    mapping::check(&settings.mapping, &layout.headers, model, &|key| {
        writable(shape, key)
    })?;
    let mut problems = Vec::new();
    if !(1..=crate::records::MAX_BATCH).contains(&settings.batch_size) {
        problems.push(FieldError::new(
            "/batch_size",
            "range",
            format!("a batch holds 1–{} rows", crate::records::MAX_BATCH),
        ));
    }
    let mapped = |target: &str| settings.mapping.iter().flatten().any(|t| t == target);
    if settings.mapping.iter().flatten().all(String::is_empty) {
        problems.push(FieldError::new(
            "/mapping",
            "empty",
            "map at least one column to a field",
        ));
    }
    match settings.mode {
        Mode::Insert => {
            if mapped(mapping::ID) {
                problems.push(FieldError::new(
                    "/mode",
                    "id_column",
                    "a column of record ids changes those records: choose update or upsert on id",
                ));
            }
            if !shape.can_create {
                problems.push(FieldError::new(
                    "/mode",
                    "forbidden",
                    "your role may not create these records",
                ));
            }
        }
        Mode::Upsert | Mode::Update => {
            let key = settings.key.as_deref().unwrap_or(mapping::ID);
            if !mapped(key) {
                problems.push(FieldError::new(
                    "/key",
                    "unmapped",
                    format!("the key {key:?} must be one of the mapped columns"),
                ));
            } else if key != mapping::ID {
                match model.field(key) {
                    Some(field) if field.kind.is_indexable() && !matches!(field.kind, crate::definitions::FieldKind::MultiSelect { .. }) => {}
                    _ => problems.push(FieldError::new(
                        "/key",
                        "key",
                        format!("{key:?} cannot identify records: choose a text, number, email, phone or id column"),
                    )),
                }
            }
            if !shape.can_update {
                problems.push(FieldError::new(
                    "/mode",
                    "forbidden",
                    "your role may not change these records",
                ));
            }
            if settings.mode == Mode::Upsert && !shape.can_create {
                problems.push(FieldError::new(
                    "/mode",
                    "forbidden",
                    "your role may not create these records",
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_all(
            "the import settings are invalid",
            problems,
        ))
    }
}

/// Size, SHA-256 and first bytes of a file.
fn digest(path: &Path) -> Result<(u64, String, Vec<u8>)> {
    let mut file = std::fs::File::open(path).map_err(Error::internal)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    let mut head = Vec::new();
    loop {
        let n = file.read(&mut buf).map_err(Error::internal)?;
        if n == 0 {
            break;
        }
        if head.len() < 8 {
            head.extend_from_slice(&buf[..n.min(8 - head.len())]);
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize()), head))
}

/// A file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A row read, converted, waiting for its batch.
#[derive(Debug)]
struct Prepared {
    line: u64,
    fields: Map<String, Value>,
    owner: Option<Uuid>,
    id: Option<Uuid>,
    /// Reference fields given by title (resolved per batch).
    titles: Vec<(String, String)>,
    problems: Vec<ProblemRow>,
}

fn problem(
    line: u64,
    column: Option<&str>,
    field: Option<&str>,
    code: &str,
    message: impl Into<String>,
) -> ProblemRow {
    ProblemRow {
        line: line as i64,
        seq: 0,
        column: column.map(str::to_owned),
        field: field.map(str::to_owned),
        code: code.to_owned(),
        message: message.into(),
    }
}

/// What converting a row needs, shared with the reading thread.
struct Converter {
    model: Arc<EntityModel>,
    headers: Vec<String>,
    mapping: Vec<Option<String>>,
    lookup: Lookup,
}

impl Converter {
    fn prepare(&self, row: &SourceRow) -> Prepared {
        let mut prepared = Prepared {
            line: row.line,
            fields: Map::new(),
            owner: None,
            id: None,
            titles: Vec::new(),
            problems: Vec::new(),
        };
        for (i, target) in self.mapping.iter().enumerate() {
            let Some(target) = target.as_deref().filter(|t| !t.is_empty()) else {
                continue;
            };
            let cell = row.cells.get(i).unwrap_or(&Cell::Empty);
            let header = self.headers.get(i).map(String::as_str);
            let mut refused = |r: Refusal, field: Option<&str>| {
                prepared
                    .problems
                    .push(problem(row.line, header, field, r.code, r.message));
            };
            match target {
                mapping::ID => {
                    if cell.is_blank() {
                        continue;
                    }
                    match Uuid::parse_str(cell.text().trim()) {
                        Ok(id) => prepared.id = Some(id),
                        Err(_) => refused(
                            Refusal {
                                code: "format",
                                message: format!("{:?} is not a record id", cell.text()),
                            },
                            None,
                        ),
                    }
                }
                mapping::OWNER => {
                    if cell.is_blank() {
                        continue;
                    }
                    let user = crate::definitions::Field::plain(
                        mapping::OWNER,
                        crate::definitions::FieldKind::User,
                    );
                    match convert::convert(&user, cell, &self.lookup) {
                        Ok(Some(Value::String(id))) => prepared.owner = Uuid::parse_str(&id).ok(),
                        Ok(_) => {}
                        Err(r) => refused(r, None),
                    }
                }
                key => {
                    let Some(field) = self.model.field(key) else {
                        continue;
                    };
                    match convert::convert(field, cell, &self.lookup) {
                        Ok(None) => {}
                        Ok(Some(Value::String(text)))
                            if matches!(
                                field.kind,
                                crate::definitions::FieldKind::Reference { .. }
                            ) && Uuid::parse_str(&text).is_err() =>
                        {
                            prepared.titles.push((key.to_owned(), text));
                        }
                        Ok(Some(value)) => {
                            prepared.fields.insert(key.to_owned(), value);
                        }
                        Err(r) => refused(r, Some(key)),
                    }
                }
            }
        }
        prepared
    }
}

/// How long an uploaded file waits for its import before it is dropped.
pub const FILE_KEPT_DAYS: i64 = 7;

/// `imports.purge` (hourly housekeeping): drops the files of imports unused for
/// [`FILE_KEPT_DAYS`] — uploaded files hold personal data and should not linger.
#[derive(Debug)]
pub struct PurgeFiles;

#[async_trait::async_trait]
impl Handler for PurgeFiles {
    fn kind(&self) -> &'static str {
        "imports.purge"
    }

    async fn run(&self, ctx: &JobContext, _job: &JobRow) -> Result<(), JobFailure> {
        let before = ctx.clock.now() - chrono::Duration::days(FILE_KEPT_DAYS);
        // Through the write gate: on SQLite every write takes its turn there.
        let tx = ctx.db.write(Sharing::Alone).await?;
        let dropped = rows::purge_files(&tx, before).await?;
        ctx.complete_in(&tx).await?;
        crate::store::write::committed(tx.commit().await?)?;
        if dropped > 0 {
            tracing::info!(dropped, "unused import files dropped");
        }
        Ok(())
    }
}

/// The `records.import` job: runs an import or a dry run to its end (see the module).
#[derive(Debug)]
pub struct ImportJob {
    /// The definitions.
    pub registry: Arc<Registry>,
    /// Members' access, to act with the importer's rights.
    pub access: Arc<crate::workspaces::AccessCache>,
}

#[derive(Deserialize)]
struct Payload {
    import_id: Uuid,
}

#[async_trait::async_trait]
impl Handler for ImportJob {
    fn kind(&self) -> &'static str {
        IMPORT_JOB
    }

    async fn run(&self, ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let payload: Payload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(format!("malformed import payload: {e}")))?;
        let workspace_id = job
            .workspace_id
            .ok_or_else(|| JobFailure::Fatal("an import belongs to a workspace".to_owned()))?;
        let Some(row) = rows::find(ctx.db.conn(), workspace_id, payload.import_id).await? else {
            return Ok(());
        };
        // A later run of the same import took over (or it ended): this job has nothing to do.
        if row.job_id != Some(job.id) {
            return Ok(());
        }
        let mut run = Run {
            columns: HashMap::new(),
            db: &ctx.db,
            clock: &ctx.clock,
            registry: &self.registry,
            lease: &ctx.lease,
            import: row,
        };
        match run.go(&self.access).await {
            Ok(()) => Ok(()),
            Err(RunError::Retry(error)) => Err(JobFailure::Retry(error.to_string())),
            Err(RunError::Fatal(message)) => {
                let now = ctx.clock.now();
                rows::set_status(
                    ctx.db.conn(),
                    run.import.id,
                    &[status::RUNNING, status::CHECKING, status::CANCELLING],
                    status::FAILED,
                    Some(message.clone()),
                    true,
                    now,
                )
                .await?;
                Ok(())
            }
        }
    }
}

enum RunError {
    /// Try again later (the database, a lost lease): the import resumes after its last batch.
    Retry(Error),
    /// The import cannot go on; the message says why.
    Fatal(String),
}

impl From<Error> for RunError {
    fn from(error: Error) -> Self {
        match error {
            Error::Db(_) | Error::Unavailable(_) | Error::Internal(_) => Self::Retry(error),
            other => Self::Fatal(other.to_string()),
        }
    }
}

struct Run<'a> {
    /// The column header each mapped target came from (for problems raised by field).
    columns: HashMap<String, String>,
    db: &'a Db,
    clock: &'a SharedClock,
    registry: &'a Registry,
    lease: &'a Lease,
    import: ImportRow,
}

/// The progress a batch writes with its rows.
struct Mark<'a> {
    import_id: Uuid,
    lease: &'a Lease,
    clock: &'a SharedClock,
    before: Counters,
    read: u64,
    failed: u64,
    problems: Vec<ProblemRow>,
    total: u64,
    write_batch: bool,
}

impl Mark<'_> {
    fn counters(&self, outcomes: &[RowOutcome]) -> Counters {
        let mut c = self.before;
        c.read += self.read;
        c.failed += self.failed;
        c.problems += self.problems.len() as u64;
        for outcome in outcomes {
            match outcome {
                RowOutcome::Created(_) => c.created += 1,
                RowOutcome::Updated(_) => c.updated += 1,
                RowOutcome::Unchanged(_) => c.unchanged += 1,
            }
        }
        if self.write_batch && !outcomes.is_empty() {
            c.batches += 1;
        }
        c
    }
}

#[async_trait::async_trait]
impl BatchMark for Mark<'_> {
    async fn write(&self, tx: &crate::store::Write, outcomes: &[RowOutcome]) -> Result<()> {
        let counters = self.counters(outcomes);
        let now = self.clock.now();
        let room = KEPT_PROBLEMS.saturating_sub(self.before.problems) as usize;
        let mut seqs: HashMap<i64, i32> = HashMap::new();
        let kept: Vec<ProblemRow> = self
            .problems
            .iter()
            .take(room)
            .map(|p| {
                let seq = seqs.entry(p.line).or_insert(0);
                *seq += 1;
                ProblemRow {
                    seq: *seq,
                    ..p.clone()
                }
            })
            .collect();
        rows::insert_problems(tx, self.import_id, &kept).await?;
        rows::set_counters(
            tx,
            self.import_id,
            serde_json::to_value(counters).map_err(Error::internal)?,
            now,
        )
        .await?;
        let held = crate::store::jobs::set_progress(
            tx,
            self.lease,
            counters.read as i64,
            Some(self.total as i64),
            None,
            now,
        )
        .await?;
        if held {
            Ok(())
        } else {
            Err(Error::Unavailable(
                "the import's job lease was lost".to_owned(),
            ))
        }
    }
}

impl Run<'_> {
    async fn go(&mut self, access_cache: &crate::workspaces::AccessCache) -> Result<(), RunError> {
        let import = self.import.clone();
        let settings_value = import.settings.clone().unwrap_or(Value::Null);
        let dry_run = settings_value
            .get("dry_run")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let token_role = settings_value
            .get("token_role")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut settings_value = settings_value;
        if let Some(o) = settings_value.as_object_mut() {
            o.shift_remove("dry_run");
            o.shift_remove("token_role");
        }
        let settings: Settings = serde_json::from_value(settings_value)
            .map_err(|e| RunError::Fatal(format!("the import's settings are unreadable: {e}")))?;
        if import.status == status::CANCELLING {
            return self.finish(status::CANCELLED).await;
        }
        if import.status != status::RUNNING && import.status != status::CHECKING {
            return Ok(());
        }
        let Some(access) = crate::workspaces::access_narrowed(
            self.db,
            access_cache,
            import.workspace_id,
            import.created_by,
            token_role.as_deref(),
        )
        .await?
        else {
            return Err(RunError::Fatal(
                "the person who started the import is no longer a member".to_owned(),
            ));
        };
        let ctx = Context::for_member(&access, Channel::Import);
        let records = Records {
            db: self.db,
            clock: self.clock,
            registry: self.registry,
        };
        let shape = records.shape(&ctx, &import.entity).await?;
        let layout = layout_of(&import)?;
        // Checked again: the definition or the person's rights may have changed since.
        check_settings(&settings, &layout, &shape)?;
        let model = shape.model.clone();
        self.columns = settings
            .mapping
            .iter()
            .zip(&layout.headers)
            .filter_map(|(target, header)| Some((target.clone()?, header.clone())))
            .collect();
        let members = crate::workspaces::members(self.db, &access).await?;
        let mut people: HashMap<String, Vec<String>> = HashMap::new();
        for member in members.iter().filter(|m| m.active) {
            let id = member.account_id.to_string();
            people
                .entry(fold(&member.email))
                .or_default()
                .push(id.clone());
            let name = people.entry(fold(&member.name)).or_default();
            if !name.contains(&id) {
                name.push(id);
            }
        }
        let converter = Arc::new(Converter {
            model: model.clone(),
            headers: layout.headers.clone(),
            mapping: settings.mapping.clone(),
            lookup: Lookup {
                options: Lookup::options_of(&model),
                people,
                day_first: settings.day_first,
                zone: ctx.time_zone,
            },
        });
        let file = self.materialize(&layout).await?;
        let counters = counters_of(&import);
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Vec<Prepared>>>(2);
        let reader = {
            let path = file.0.clone();
            let layout = layout.clone();
            let batch_size = settings.batch_size;
            let converter = converter.clone();
            let skip = counters.read;
            tokio::task::spawn_blocking(move || {
                let mut batch = Vec::with_capacity(batch_size);
                let mut header = true;
                let result = source::each_row(&path, &layout, skip, &mut |row| {
                    if header {
                        header = false;
                        return Ok(true);
                    }
                    batch.push(converter.prepare(&row));
                    if batch.len() >= batch_size {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                        return Ok(sender.blocking_send(Ok(full)).is_ok());
                    }
                    Ok(true)
                });
                let last = match result {
                    Ok(()) if batch.is_empty() => return,
                    Ok(()) => Ok(batch),
                    Err(e) => Err(e),
                };
                let _ = sender.blocking_send(last);
            })
        };
        let mut counters = counters;
        let mut outcome = Ok(());
        while let Some(batch) = receiver.recv().await {
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    outcome = Err(RunError::Fatal(error.to_string()));
                    break;
                }
            };
            // Between batches: a person may have asked to stop.
            let current = rows::find(self.db.conn(), import.workspace_id, import.id).await?;
            if current
                .as_ref()
                .is_none_or(|r| r.status == status::CANCELLING)
            {
                drop(receiver);
                let _ = reader.await;
                return self.finish(status::CANCELLED).await;
            }
            match self
                .write_batch(
                    &records,
                    &ctx,
                    &model,
                    &settings,
                    dry_run,
                    batch,
                    counters,
                    layout.rows,
                )
                .await
            {
                Ok(next) => counters = next,
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            }
        }
        drop(receiver);
        let _ = reader.await;
        outcome?;
        self.finish(if dry_run {
            status::CHECKED
        } else {
            status::DONE
        })
        .await
    }

    /// Ends the run in `to` (the file is dropped unless a dry run leaves it for the import).
    async fn finish(&self, to: &str) -> Result<(), RunError> {
        let now = self.clock.now();
        rows::set_status(
            self.db.conn(),
            self.import.id,
            &[status::RUNNING, status::CHECKING, status::CANCELLING],
            to,
            None,
            true,
            now,
        )
        .await?;
        if to != status::CHECKED {
            rows::delete_chunks(self.db.conn(), self.import.id).await?;
        }
        Ok(())
    }

    /// The stored file as a temporary file, for the reader.
    async fn materialize(&self, layout: &Layout) -> Result<TempFile> {
        let path = std::env::temp_dir().join(format!(
            "formwork-import-{}-{}.{}",
            self.import.id,
            new_id(),
            layout.format
        ));
        let file = TempFile(path.clone());
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(Error::internal)?;
        let mut seq = 0;
        while let Some(piece) = rows::chunk(self.db.conn(), self.import.id, seq).await? {
            tokio::io::AsyncWriteExt::write_all(&mut out, &piece)
                .await
                .map_err(Error::internal)?;
            seq += 1;
        }
        if seq == 0 {
            return Err(Error::invalid(
                "/file",
                "gone",
                "the import's file is no longer stored",
            ));
        }
        tokio::io::AsyncWriteExt::flush(&mut out)
            .await
            .map_err(Error::internal)?;
        Ok(file)
    }

    /// Resolves, matches and writes one batch; the counters after it.
    #[allow(clippy::too_many_arguments)]
    async fn write_batch(
        &self,
        records: &Records<'_>,
        ctx: &Context,
        model: &Arc<EntityModel>,
        settings: &Settings,
        dry_run: bool,
        mut batch: Vec<Prepared>,
        counters: Counters,
        total: u64,
    ) -> Result<Counters, RunError> {
        self.resolve_titles(records, ctx, model, &mut batch).await?;
        let targets = self.match_keys(model, settings, &mut batch).await?;
        let read = batch.len() as u64;
        let headers = &self.columns;
        let mut problems: Vec<ProblemRow> = Vec::new();
        // The rows to write and the file's line of each.
        let mut lines: Vec<u64> = Vec::new();
        let mut bulk: Vec<BulkRow> = Vec::new();
        for (prepared, target) in batch.into_iter().zip(targets) {
            if !prepared.problems.is_empty() {
                problems.extend(prepared.problems.into_iter().map(|mut p| {
                    if p.column.is_none() {
                        p.column = p.field.as_ref().and_then(|f| headers.get(f)).cloned();
                    }
                    p
                }));
                continue;
            }
            lines.push(prepared.line);
            bulk.push(BulkRow {
                fields: prepared.fields,
                owner: prepared.owner,
                target,
                note: Some(json!({"id": self.import.id, "line": prepared.line})),
            });
        }
        let mut failed_lines: std::collections::HashSet<u64> =
            problems.iter().map(|p| p.line as u64).collect();
        if !settings.skip_invalid && !problems.is_empty() {
            return self.stop_strict(counters, problems).await;
        }
        let options = BulkOptions {
            workflows: settings.workflows,
            dry_run,
        };
        for _ in 0..4 {
            let mark = Mark {
                import_id: self.import.id,
                lease: self.lease,
                clock: self.clock,
                before: counters,
                read,
                failed: failed_lines.len() as u64,
                problems: problems.clone(),
                total,
                write_batch: !dry_run,
            };
            if bulk.is_empty() {
                return self.write_mark(&mark).await;
            }
            let written = records
                .write_rows(
                    ctx,
                    &self.import.entity,
                    &bulk,
                    options,
                    (!dry_run).then_some(&mark as &dyn BatchMark),
                )
                .await;
            match written {
                Ok(outcomes) => {
                    if dry_run {
                        // Nothing was written: the counters and problems go on their own.
                        self.write_mark_with(&mark, &outcomes).await?;
                    }
                    return Ok(mark.counters(&outcomes));
                }
                Err(error) => {
                    let Some(by_row) = problems_by_row(&error)
                        .filter(|found| found.iter().all(|(row, _)| row.is_some()))
                    else {
                        return Err(error.into());
                    };
                    let mut refused = std::collections::BTreeSet::new();
                    for (row, e) in by_row {
                        let Some((i, line)) = row.and_then(|i| Some((i, *lines.get(i)?))) else {
                            continue;
                        };
                        refused.insert(i);
                        problems.push(row_problem(line, &e, model, headers));
                    }
                    if !settings.skip_invalid {
                        return self.stop_strict(counters, problems).await;
                    }
                    for i in refused.iter().rev() {
                        failed_lines.insert(lines.remove(*i));
                        bulk.remove(*i);
                    }
                }
            }
        }
        Err(RunError::Fatal(
            "a batch kept failing after its invalid rows were left out".to_owned(),
        ))
    }

    async fn write_mark(&self, mark: &Mark<'_>) -> Result<Counters, RunError> {
        self.write_mark_with(mark, &[]).await?;
        Ok(mark.counters(&[]))
    }

    async fn write_mark_with(
        &self,
        mark: &Mark<'_>,
        outcomes: &[RowOutcome],
    ) -> Result<(), RunError> {
        let tx = self.db.write(Sharing::Alone).await?;
        mark.write(&tx, outcomes).await?;
        crate::store::write::committed(tx.commit().await?)?;
        Ok(())
    }

    /// A strict import stops at its first batch with a problem, unwritten.
    async fn stop_strict(
        &self,
        counters: Counters,
        problems: Vec<ProblemRow>,
    ) -> Result<Counters, RunError> {
        let first = problems
            .first()
            .map(|p| format!("line {}: {}", p.line, p.message))
            .unwrap_or_default();
        let mark = Mark {
            import_id: self.import.id,
            lease: self.lease,
            clock: self.clock,
            before: counters,
            read: 0,
            failed: 0,
            problems,
            total: 0,
            write_batch: false,
        };
        let tx = self.db.write(Sharing::Alone).await?;
        mark.write(&tx, &[]).await?;
        crate::store::write::committed(tx.commit().await?)?;
        Err(RunError::Fatal(format!(
            "stopped at the first batch with problems, which was not written ({first})"
        )))
    }

    /// Reference cells naming a record by its title become its id.
    async fn resolve_titles(
        &self,
        records: &Records<'_>,
        ctx: &Context,
        model: &EntityModel,
        batch: &mut [Prepared],
    ) -> Result<(), RunError> {
        let mut wanted: HashMap<String, Vec<String>> = HashMap::new();
        for prepared in batch.iter() {
            for (field, title) in &prepared.titles {
                wanted.entry(field.clone()).or_default().push(title.clone());
            }
        }
        for (field_key, titles) in wanted {
            let Some(field) = model.field(&field_key) else {
                continue;
            };
            let crate::definitions::FieldKind::Reference { entity, .. } = &field.kind else {
                continue;
            };
            let found = records.ids_by_title(ctx, entity, &titles).await?;
            for prepared in batch.iter_mut() {
                let line = prepared.line;
                let mine: Vec<String> = prepared
                    .titles
                    .iter()
                    .filter(|(f, _)| *f == field_key)
                    .map(|(_, t)| t.clone())
                    .collect();
                for title in mine {
                    match found.get(&title).map(Vec::as_slice) {
                        Some([one]) => {
                            prepared
                                .fields
                                .insert(field_key.clone(), Value::String(one.to_string()));
                        }
                        Some([_, _, ..]) => prepared.problems.push(problem(
                            line,
                            None,
                            Some(&field_key),
                            "ambiguous_reference",
                            format!(
                                "several {entity} records are called {title:?}: use the record's id"
                            ),
                        )),
                        _ => prepared.problems.push(problem(
                            line,
                            None,
                            Some(&field_key),
                            "unknown_reference",
                            format!("no {entity} record you can see is called {title:?}"),
                        )),
                    }
                }
            }
        }
        Ok(())
    }

    /// The record each row changes (upsert, update), by its key; problems for rows matching
    /// several records, none (update), or the same record as an earlier row of the batch.
    async fn match_keys(
        &self,
        model: &EntityModel,
        settings: &Settings,
        batch: &mut [Prepared],
    ) -> Result<Vec<Option<Uuid>>, RunError> {
        let mut targets = vec![None; batch.len()];
        if settings.mode == Mode::Insert {
            return Ok(targets);
        }
        let key = settings.key.as_deref().unwrap_or(mapping::ID);
        let mut matches: HashMap<usize, Vec<Uuid>> = HashMap::new();
        if key == mapping::ID {
            let ids: Vec<Uuid> = batch.iter().filter_map(|p| p.id).collect();
            let live: std::collections::HashSet<Uuid> =
                crate::store::records::find_many(self.db.conn(), &model.table(), &ids)
                    .await?
                    .into_iter()
                    .filter(|r| r.deleted_at.is_none())
                    .map(|r| r.id)
                    .collect();
            for (i, prepared) in batch.iter().enumerate() {
                if let Some(id) = prepared.id.filter(|id| live.contains(id)) {
                    matches.insert(i, vec![id]);
                }
            }
        } else if let Some(field) = model.field(key) {
            let mut values = Vec::new();
            let mut scalars: Vec<Option<crate::domain::query::Scalar>> = Vec::new();
            for prepared in batch.iter() {
                let scalar = prepared
                    .fields
                    .get(key)
                    .and_then(|v| codec::encode(field, v, "").ok().flatten())
                    .and_then(|stored| codec::scalar_of(field, &stored));
                if let Some(s) = &scalar {
                    values.push(s.clone());
                }
                scalars.push(scalar);
            }
            let found = crate::store::records::find_values(
                self.db.conn(),
                &model.table(),
                &field.key,
                field.kind.value_type(),
                values,
                &[],
            )
            .await?;
            for (i, scalar) in scalars.iter().enumerate() {
                if let Some(s) = scalar {
                    let ids: Vec<Uuid> = found
                        .iter()
                        .filter(|(_, v)| v == s)
                        .map(|(id, _)| *id)
                        .collect();
                    if !ids.is_empty() {
                        matches.insert(i, ids);
                    }
                }
            }
        }
        let mut first_line: HashMap<String, u64> = HashMap::new();
        for (i, prepared) in batch.iter_mut().enumerate() {
            let line = prepared.line;
            // Rows of one batch meeting the same record (or the same new key) would race.
            let identity = match matches.get(&i).map(Vec::as_slice) {
                Some([one]) => Some(one.to_string()),
                _ => prepared
                    .fields
                    .get(key)
                    .map(|v| format!("new:{}", fold(&v.to_string()))),
            };
            if let Some(identity) = identity {
                if let Some(first) = first_line.get(&identity) {
                    prepared.problems.push(problem(
                        line,
                        None,
                        Some(key),
                        "repeated_key",
                        format!("line {first} has the same {key}; only the first is imported"),
                    ));
                    continue;
                }
                first_line.insert(identity, line);
            }
            match matches.get(&i).map(Vec::as_slice) {
                Some([one]) => targets[i] = Some(*one),
                Some(many) => prepared.problems.push(problem(
                    line,
                    None,
                    Some(key),
                    "ambiguous_key",
                    format!(
                        "{} records have this {key}: the row cannot say which to change",
                        many.len()
                    ),
                )),
                None if settings.mode == Mode::Update => prepared.problems.push(problem(
                    line,
                    None,
                    Some(key),
                    "no_match",
                    format!("no record has this {key}"),
                )),
                None => {
                    if key == mapping::ID && prepared.id.is_some() {
                        prepared.problems.push(problem(
                            line,
                            None,
                            None,
                            "no_match",
                            "no record has this id (deleted?)",
                        ));
                    }
                }
            }
        }
        Ok(targets)
    }
}

/// A refusal of the batch writer as a problem of the file's line.
fn row_problem(
    line: u64,
    error: &FieldError,
    model: &EntityModel,
    headers: &HashMap<String, String>,
) -> ProblemRow {
    // `/rows/{i}/fields/{key}/…` → the field, and the column it came from.
    let field = error
        .pointer
        .split('/')
        .skip_while(|part| *part != "fields")
        .nth(1)
        .map(|k| k.replace("~1", "/").replace("~0", "~"))
        .filter(|k| model.field(k).is_some())
        .or_else(|| {
            error
                .pointer
                .ends_with("/owner")
                .then(|| mapping::OWNER.to_owned())
        });
    let column = field.as_ref().and_then(|f| headers.get(f)).cloned();
    ProblemRow {
        line: line as i64,
        seq: 0,
        column,
        field,
        code: error.code.clone(),
        message: error.message.clone(),
    }
}
