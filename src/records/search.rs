//! Global search across the entities of a workspace: names, emails, phones, companies and any
//! field marked `x-search`, Chinese included, within what the caller may read.
//!
//! Each entity's searchable fields are cut into terms ([`super::terms`]) kept in a terms table
//! beside its record table, written in the record write's own transaction (create, change,
//! batch, import, merge, erasure), so a record is findable the moment its write commits. A
//! search looks up each entity the caller may read with the caller's read scope as a condition
//! (the same one lists use), over only the fields the caller sees unmasked: a hidden or masked
//! value never makes a record show up. A change of an entity's searchable fields (or of the
//! tokeniser) rebuilds its terms in a `search.reindex` job; meanwhile the entity answers from
//! the terms it has and says so.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::terms::{self, Flavour, Token};
use super::{Context, Records, guard::Operation, title_of, view};
use crate::access::{FieldRule, Reach};
use crate::clock::SharedClock;
use crate::definitions::entity::Field;
use crate::definitions::{EntityModel, FieldKind, Registry};
use crate::error::{Error, Result};
use crate::jobs::{self, Handler, JobContext, JobFailure, NewJob};
use crate::store::jobs::JobRow;
use crate::store::search::{self as store, Lookup, SearchState, TermRange, TermRow};
use crate::store::{self as db, Conn, Sharing};

/// The job kind that rebuilds an entity's terms.
pub const REINDEX_JOB: &str = "search.reindex";

/// Records whose terms are rebuilt per transaction.
const REINDEX_BATCH: u64 = 500;

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// Most records per entity in one answer.
pub const MAX_LIMIT: u64 = 50;

/// The fields global search reads in `model`, with how each is cut: those marked `x-search`,
/// else (unmarked) the title field, emails and phones; never computed ones.
pub fn searchable(model: &EntityModel) -> Vec<(&Field, Flavour)> {
    model
        .fields
        .iter()
        .filter(|f| f.computed.is_none())
        .filter_map(|field| {
            let flavour = match field.kind {
                FieldKind::Phone => Flavour::Phone,
                FieldKind::Text | FieldKind::LongText | FieldKind::Email | FieldKind::Url => {
                    Flavour::Text
                }
                _ => return None,
            };
            let by_default = model.title_field.as_deref() == Some(field.key.as_str())
                || matches!(field.kind, FieldKind::Email | FieldKind::Phone);
            field
                .search
                .unwrap_or(by_default)
                .then_some((field, flavour))
        })
        .collect()
}

/// What `model`'s terms are made from: the tokeniser's version and each searchable field.
pub fn signature(model: &EntityModel) -> String {
    let fields: Vec<String> = searchable(model)
        .iter()
        .map(|(field, flavour)| format!("{}:{flavour:?}", field.key))
        .collect();
    format!("{}:{}", terms::TOKENISER, fields.join(","))
}

fn terms_of(fields: &[(&Field, Flavour)], id: Uuid, doc: &Map<String, Value>) -> Vec<TermRow> {
    let mut out = Vec::new();
    for (field, flavour) in fields {
        let Some(text) = doc.get(&field.key).and_then(Value::as_str) else {
            continue;
        };
        for term in terms::terms(*flavour, text) {
            out.push(TermRow {
                record_id: id,
                field: field.key.clone(),
                term,
            });
        }
    }
    out
}

/// Keeps the terms of written records in step, in the write's transaction: new records get
/// theirs, changed ones whose searchable values moved get them replaced (deleted records keep
/// theirs, so a restore is found again; the search reads live records only).
///
/// # Errors
/// `Error::Db`.
pub async fn on_write(
    tx: &db::write::Write,
    model: &EntityModel,
    changes: &[crate::workflows::Change<'_>],
) -> Result<()> {
    let fields = searchable(model);
    if fields.is_empty() {
        return Ok(());
    }
    let mut replaced = Vec::new();
    let mut changed = Vec::new();
    let mut created = Vec::new();
    for change in changes {
        let Some(after) = change.after else {
            continue;
        };
        match change.before {
            None => created.extend(terms_of(&fields, change.id, after)),
            Some(before) => {
                if fields
                    .iter()
                    .all(|(f, _)| before.get(&f.key) == after.get(&f.key))
                {
                    continue;
                }
                replaced.push(change.id);
                changed.extend(terms_of(&fields, change.id, after));
            }
        }
    }
    let table = model.table();
    // A changed record's terms are replaced at once: another writer of the same group may
    // change it again after this one, and must find these terms to replace.
    if !replaced.is_empty() {
        store::replace_terms(tx, &table, &replaced, &changed).await?;
    }
    // A new record's terms join the group's others, written in one statement at its end.
    tx.insert_terms(&table, created).await
}

/// Refreshes the planner statistics of `model`'s terms as its records grow (PostgreSQL, whose
/// planner picks the rarest word of a query from them; SQLite's lookups choose their plan by
/// counting, and a full analysis of a large terms table would hold its writer).
pub fn analyze_soon(db: &db::Db, model: &EntityModel, records_written: usize) {
    if db.backend() == db::Backend::Postgres && !searchable(model).is_empty() {
        db.analyze_soon(&store::terms_table(&model.table()), records_written);
    }
}

/// Adds the terms of records inserted outside the usual write path (an app's demo records,
/// records moved in from another workspace).
///
/// # Errors
/// `Error::Db`.
pub async fn on_insert(
    conn: &impl Conn,
    model: &EntityModel,
    rows: &[crate::store::records::RecordRow],
) -> Result<()> {
    let fields = searchable(model);
    if fields.is_empty() {
        return Ok(());
    }
    let terms: Vec<TermRow> = rows
        .iter()
        .flat_map(|row| terms_of(&fields, row.id, &row.doc))
        .collect();
    store::insert_terms(conn, &model.table(), &terms).await
}

/// Makes an entity's terms follow its published version, in the publishing transaction (or at
/// start for entities published before search existed): a new record table gets its empty
/// terms table, ready; a changed signature queues a rebuild.
///
/// # Errors
/// `Error::Db`.
pub async fn prepare(
    conn: &impl Conn,
    clock: &SharedClock,
    workspace_id: Uuid,
    model: &EntityModel,
    new_table: bool,
) -> Result<()> {
    let table = model.table();
    store::create_terms_table(conn, &table).await?;
    let wanted = signature(model);
    let now = clock.now();
    if new_table {
        let state = SearchState {
            entity_id: model.definition_id,
            signature: wanted,
            status: "ready".to_owned(),
        };
        return store::set_state(conn, workspace_id, &state, now).await;
    }
    let current = store::state(conn, model.definition_id).await?;
    if current.as_ref().is_some_and(|s| s.signature == wanted) {
        return Ok(());
    }
    let state = SearchState {
        entity_id: model.definition_id,
        signature: wanted.clone(),
        status: "indexing".to_owned(),
    };
    store::set_state(conn, workspace_id, &state, now).await?;
    let mut job = NewJob::new(
        REINDEX_JOB,
        json!(ReindexJob {
            entity: model.key.clone(),
            definition_id: model.definition_id,
            signature: wanted,
        }),
    );
    job.workspace_id = Some(workspace_id);
    job.max_attempts = 5;
    jobs::enqueue(conn, clock, job).await?;
    Ok(())
}

/// At start: gives every published entity of every workspace the terms of its current
/// version (queues rebuilds for entities published before search, or before a new tokeniser).
///
/// # Errors
/// `Error::Db`.
pub async fn ensure_all(db: &db::Db, clock: &SharedClock, registry: &Registry) -> Result<()> {
    for workspace in db::workspaces::all(db.conn()).await? {
        let snapshot = registry
            .snapshot(db, workspace.id, workspace.definitions_generation)
            .await?;
        let states = store::states(db.conn(), workspace.id).await?;
        let stale: Vec<_> = snapshot
            .entities()
            .into_iter()
            .filter(|model| {
                let wanted = signature(model);
                !states
                    .iter()
                    .any(|s| s.entity_id == model.definition_id && s.signature == wanted)
            })
            .collect();
        if stale.is_empty() {
            continue;
        }
        let tx = db.write(Sharing::Alone).await?;
        for model in &stale {
            prepare(&tx, clock, workspace.id, model, false).await?;
        }
        db::write::committed(tx.commit().await?)?;
    }
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReindexJob {
    entity: String,
    definition_id: Uuid,
    /// The signature the rebuild was queued for; a later publish queues its own.
    signature: String,
}

/// Where a rebuild stands (the job's checkpoint).
#[derive(Debug, Default, Serialize, Deserialize)]
struct ReindexCheckpoint {
    after: Option<Uuid>,
    done: i64,
}

/// `search.reindex`: rebuilds one entity's terms a batch at a time (each batch read and
/// rewritten in one write transaction, so a concurrent edit is never overwritten with stale
/// terms), then marks the entity ready.
#[derive(Debug)]
pub struct Reindex {
    /// The live registry.
    pub registry: std::sync::Arc<Registry>,
}

#[async_trait::async_trait]
impl Handler for Reindex {
    fn kind(&self) -> &'static str {
        REINDEX_JOB
    }

    async fn run(&self, ctx: &JobContext, job: &JobRow) -> Result<(), JobFailure> {
        let payload: ReindexJob = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Fatal(format!("malformed reindex job: {e}")))?;
        let workspace_id = job
            .workspace_id
            .ok_or_else(|| JobFailure::Fatal("a reindex belongs to a workspace".to_owned()))?;
        let mut at: ReindexCheckpoint = job
            .checkpoint
            .clone()
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or_default();
        loop {
            let Some(workspace) = db::workspaces::find(ctx.db.conn(), workspace_id).await? else {
                return Ok(());
            };
            let snapshot = self
                .registry
                .snapshot(&ctx.db, workspace_id, workspace.definitions_generation)
                .await?;
            // Removed, replaced, or published again since: the newer job does the work.
            let Some(model) = snapshot
                .entity(&payload.entity)
                .filter(|m| m.definition_id == payload.definition_id)
                .filter(|m| signature(m) == payload.signature)
            else {
                return Ok(());
            };
            let fields = searchable(&model);
            let table = model.table();
            let tx = ctx.db.write(Sharing::Alone).await?;
            let page = store::docs_after(&tx, &table, at.after, REINDEX_BATCH).await?;
            let ids: Vec<Uuid> = page.iter().map(|(id, _)| *id).collect();
            let rows: Vec<TermRow> = page
                .iter()
                .flat_map(|(id, doc)| terms_of(&fields, *id, doc))
                .collect();
            store::replace_terms(&tx, &table, &ids, &rows).await?;
            let finished = (page.len() as u64) < REINDEX_BATCH;
            if finished {
                let state = SearchState {
                    entity_id: model.definition_id,
                    signature: payload.signature.clone(),
                    status: "ready".to_owned(),
                };
                store::set_state(&tx, workspace_id, &state, ctx.clock.now()).await?;
                ctx.complete_in(&tx).await?;
            }
            db::write::committed(tx.commit().await?)?;
            if finished {
                return Ok(());
            }
            at.after = ids.last().copied();
            at.done += ids.len() as i64;
            let checkpoint = serde_json::to_value(&at).map_err(Error::internal)?;
            ctx.progress(at.done, None, Some(checkpoint)).await?;
        }
    }
}

/// One record found.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// Id.
    pub id: Uuid,
    /// Its title.
    pub title: String,
    /// The searchable fields the caller sees, as they see them.
    pub fields: Map<String, Value>,
    /// The fields the query matched.
    pub matched: Vec<String>,
}

/// The records found in one entity.
#[derive(Debug, Clone, Serialize)]
pub struct EntityHits {
    /// Entity key.
    pub entity: String,
    /// Its label by language.
    pub label: Value,
    /// The records, best first.
    pub records: Vec<Hit>,
    /// Whether more records match than were returned.
    pub more: bool,
}

/// A search's answer.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    /// The query as given.
    pub query: String,
    /// Entities with at least one record found, the best match first.
    pub results: Vec<EntityHits>,
    /// Entities the caller reads whose terms are being rebuilt: some of their records may be
    /// missing.
    pub indexing: Vec<String>,
}

/// What to search.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The text typed.
    #[serde(default)]
    pub q: String,
    /// Only this entity.
    pub entity: Option<String>,
    /// Most records per entity (default 5 across entities, 20 in one).
    pub limit: Option<u64>,
}

fn ranges(tokens: &[Token]) -> Vec<TermRange> {
    tokens
        .iter()
        .map(|token| match token {
            Token::Exact(text) => TermRange {
                from: text.clone(),
                before: None,
            },
            Token::Prefix(text) => TermRange {
                from: text.clone(),
                before: Some(terms::upper_bound(text)),
            },
        })
        .collect()
}

/// How well a title matches the query: 0 the same, 1 starting with it, 2 holding it, 3 not
/// holding it (found through another field, or the query's words apart).
fn title_rank(query: &str, title: &str) -> u8 {
    let (query, title) = (terms::normalise(query.trim()), terms::normalise(title));
    if title == query {
        0
    } else if title.starts_with(&query) {
        1
    } else if title.contains(&query) {
        2
    } else {
        3
    }
}

fn label_of(model: &EntityModel) -> Value {
    model
        .document
        .get("x-label")
        .cloned()
        .unwrap_or_else(|| json!({"en": model.key}))
}

impl Records<'_> {
    /// Searches the entities the caller may read (or one of them) for `request.q`.
    ///
    /// # Errors
    /// `Error::Invalid` (`/q` empty or too long, `/limit`), `Error::NotFound` (an unknown
    /// entity), `Error::Forbidden` (an entity the caller may not read, when named).
    pub async fn search(&self, ctx: &Context, request: &SearchRequest) -> Result<SearchResults> {
        let q = request.q.trim();
        if q.is_empty() {
            return Err(Error::invalid("/q", "required", "type something to search"));
        }
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::invalid(
                "/q",
                "too_long",
                format!("a search is at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        let limit = request
            .limit
            .unwrap_or(if request.entity.is_some() { 20 } else { 5 });
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::invalid(
                "/limit",
                "out_of_range",
                format!("the limit is 1 to {MAX_LIMIT}"),
            ));
        }
        let snapshot = self.snapshot(ctx.scope).await?;
        let models = match &request.entity {
            Some(key) => {
                let model = snapshot
                    .entity(key)
                    .ok_or_else(|| super::entity_not_found(key))?;
                let lens = self.list_lens(ctx, &model).await?;
                self.check_entity(ctx, &lens, &model, Operation::Read)
                    .await?;
                vec![model]
            }
            None => snapshot.entities(),
        };
        let parsed = terms::parse(q);
        let mut answer = SearchResults {
            query: request.q.clone(),
            results: Vec::new(),
            indexing: Vec::new(),
        };
        if parsed.tokens.is_empty() {
            return Ok(answer);
        }
        let wanted = ranges(&parsed.tokens);
        let indexing = store::states(self.db.conn(), ctx.scope.workspace_id).await?;
        let searches = models.iter().map(|model| {
            let wanted = &wanted;
            let parsed = &parsed;
            async move { self.search_entity(ctx, model, wanted, parsed, limit).await }
        });
        for (model, found) in models
            .iter()
            .zip(futures::future::try_join_all(searches).await?)
        {
            let readable = ctx
                .policy
                .as_ref()
                .is_none_or(|p| p.grant(&model.key).read != Reach::None);
            if readable
                && indexing
                    .iter()
                    .any(|s| s.entity_id == model.definition_id && s.status != "ready")
            {
                answer.indexing.push(model.key.clone());
            }
            if let Some(mut found) = found {
                found.records.sort_by_key(|hit| title_rank(q, &hit.title));
                answer.results.push(found);
            }
        }
        // The entity with the best title match first; then the one where the query is most
        // common; then the entities' own order.
        answer.results.sort_by_key(|group| {
            let best = group
                .records
                .iter()
                .map(|hit| title_rank(q, &hit.title))
                .min()
                .unwrap_or(u8::MAX);
            (best, !group.more, usize::MAX - group.records.len())
        });
        Ok(answer)
    }

    async fn search_entity(
        &self,
        ctx: &Context,
        model: &EntityModel,
        ranges: &[TermRange],
        parsed: &terms::Parsed,
        limit: u64,
    ) -> Result<Option<EntityHits>> {
        let lens = self.list_lens(ctx, model).await?;
        if lens.reach(Operation::Read) == Reach::None {
            return Ok(None);
        }
        // Masked and hidden values must not make a record show up.
        let fields: Vec<(&Field, Flavour)> = searchable(model)
            .into_iter()
            .filter(|(f, _)| {
                !f.hidden
                    && matches!(
                        lens.field(model, &f.key),
                        FieldRule::Visible | FieldRule::ReadOnly
                    )
            })
            .collect();
        if fields.is_empty() {
            return Ok(None);
        }
        let keys: Vec<String> = fields.iter().map(|(f, _)| f.key.clone()).collect();
        let scope = lens.condition(Operation::Read);
        let rows = store::lookup(
            self.db.conn(),
            &model.table(),
            &Lookup {
                ranges,
                fields: &keys,
                scope: scope.as_ref(),
                // Some records with all the pairs of a phrase lack the phrase itself: read
                // more of them, so that enough are left after the check below.
                limit: if parsed.phrases.is_empty() {
                    limit + 1
                } else {
                    (limit + 1) * 8
                },
            },
        )
        .await?;
        let mut records = Vec::new();
        let mut more = false;
        for row in &rows {
            let values: Vec<(&str, String)> = fields
                .iter()
                .filter_map(|(f, _)| {
                    row.doc
                        .get(&f.key)
                        .and_then(Value::as_str)
                        .map(|v| (f.key.as_str(), terms::normalise(v)))
                })
                .collect();
            // Pairs of characters may come from different places: the run itself must be there.
            if !parsed
                .phrases
                .iter()
                .all(|phrase| values.iter().any(|(_, v)| v.contains(phrase.as_str())))
            {
                continue;
            }
            if records.len() as u64 == limit {
                more = true;
                break;
            }
            let matched = fields
                .iter()
                .filter(|(f, flavour)| {
                    row.doc
                        .get(&f.key)
                        .and_then(Value::as_str)
                        .is_some_and(|v| {
                            let stored = terms::terms(*flavour, v);
                            parsed.tokens.iter().any(|token| {
                                stored.iter().any(|t| match token {
                                    Token::Exact(x) => t == x,
                                    Token::Prefix(x) => t.starts_with(x.as_str()),
                                })
                            })
                        })
                })
                .map(|(f, _)| f.key.clone())
                .collect();
            let shown = lens.show(model, view(model, row, lens.is_admin));
            let mut shown_fields = Map::new();
            for key in &keys {
                if let Some(value) = shown.fields.get(key) {
                    shown_fields.insert(key.clone(), value.clone());
                }
            }
            records.push(Hit {
                id: row.id,
                title: title_of(model, &shown.fields, row.id),
                fields: shown_fields,
                matched,
            });
        }
        if records.is_empty() {
            return Ok(None);
        }
        Ok(Some(EntityHits {
            entity: model.key.clone(),
            label: label_of(model),
            records,
            more,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::title_rank;

    #[test]
    fn titles_that_are_the_query_come_first() {
        assert_eq!(title_rank("王芳", "王芳"), 0);
        assert_eq!(title_rank("acme", "ACME Ltd"), 1);
        assert_eq!(title_rank("星辰", "北京星辰科技"), 2);
        assert_eq!(title_rank("wang", "Alice"), 3);
    }
}
