//! Moving an app's records between workspaces and installations: every row (live and in the
//! trash) exactly as stored, with its whole history, the auto-number counters and the bytes of
//! its attachments. The apps module maps people and ids; this module reads and writes rows.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use uuid::Uuid;

use super::Records;
use crate::definitions::{EntityModel, FieldKind};
use crate::error::{Error, FieldError, Result};
use crate::store::records::{self as rows, AttachmentRow, HistoryRow, RecordRow};
use crate::store::{self, Conn};

/// Keys a stored document keeps beside its fields (totals, rollup state, conversion leftovers,
/// erasure marks): they travel as they are.
const BOOKKEEPING: [&str; 4] = [
    super::codec::TOTALS,
    super::rollups::STATE,
    super::evolve::UNCONVERTED,
    super::erasure::ERASED,
];

/// One record with its history.
#[derive(Debug, Clone)]
pub struct MovedRecord {
    /// Entity key.
    pub entity: String,
    /// The stored row.
    pub row: RecordRow,
    /// Its history, oldest first.
    pub history: Vec<HistoryRow>,
}

/// An auto-number counter.
#[derive(Debug, Clone)]
pub struct MovedCounter {
    /// Entity key.
    pub entity: String,
    /// Auto-number field.
    pub field: String,
    /// Its period (`2026`, or empty for a pattern without dates).
    pub period: String,
    /// The last number handed out.
    pub value: i64,
}

/// An attachment with its bytes.
#[derive(Debug, Clone)]
pub struct MovedAttachment {
    /// Entity key.
    pub entity: String,
    /// Its description (entity id and workspace are the destination's on restore).
    pub row: AttachmentRow,
    /// The bytes.
    pub data: Vec<u8>,
}

/// The records of some entities.
#[derive(Debug, Clone, Default)]
pub struct Moved {
    /// Records, by entity then id.
    pub records: Vec<MovedRecord>,
    /// Counters.
    pub counters: Vec<MovedCounter>,
    /// Attachments.
    pub attachments: Vec<MovedAttachment>,
}

impl Moved {
    /// Every person the rows name (owners, creators, changers, history actors).
    pub fn people(&self) -> BTreeSet<Uuid> {
        let mut people = BTreeSet::new();
        for record in &self.records {
            people.extend(record.row.owner);
            people.extend(record.row.created_by);
            people.extend(record.row.updated_by);
            people.extend(record.history.iter().filter_map(|h| h.actor_id));
        }
        people.extend(self.attachments.iter().filter_map(|a| a.row.created_by));
        people
    }
}

/// The published entity models of a workspace, read through `conn`.
///
/// # Errors
/// `Error::Invalid` when a published entity does not compile; `Error::Db`.
pub async fn published_models(
    conn: &impl Conn,
    workspace_id: Uuid,
) -> Result<HashMap<String, Arc<EntityModel>>> {
    let mut models = HashMap::new();
    for row in store::definitions::published(conn, workspace_id).await? {
        if row.kind == "entity" {
            let model = EntityModel::build(&row.key, row.id, row.version, Arc::new(row.document))
                .map_err(|e| {
                Error::invalid_all("a published entity does not compile", vec![e])
            })?;
            models.insert(row.key, Arc::new(model));
        }
    }
    Ok(models)
}

/// Every record of `entities` (live and deleted) with history, counters and attachments.
///
/// # Errors
/// `Error::Db`.
pub async fn dump(conn: &impl Conn, workspace_id: Uuid, entities: &[String]) -> Result<Moved> {
    let models = published_models(conn, workspace_id).await?;
    let mut moved = Moved::default();
    for key in entities {
        let Some(model) = models.get(key) else {
            continue;
        };
        let mut history: HashMap<Uuid, Vec<HistoryRow>> = HashMap::new();
        for row in rows::history_of_entity(conn, model.definition_id).await? {
            history.entry(row.record_id).or_default().push(row);
        }
        let mut after = None;
        loop {
            let batch = rows::scan(conn, &model.table(), after, 1000).await?;
            let Some(last) = batch.last() else {
                break;
            };
            after = Some(last.id);
            for row in batch {
                moved.records.push(MovedRecord {
                    entity: key.clone(),
                    history: history.remove(&row.id).unwrap_or_default(),
                    row,
                });
            }
        }
        for (field, period, value) in rows::counters_of(conn, model.definition_id).await? {
            moved.counters.push(MovedCounter {
                entity: key.clone(),
                field,
                period,
                value,
            });
        }
        for (row, data) in
            rows::attachments_with_data(conn, workspace_id, model.definition_id).await?
        {
            moved.attachments.push(MovedAttachment {
                entity: key.clone(),
                row,
                data,
            });
        }
    }
    Ok(moved)
}

/// What a restore wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Restored {
    /// Records per entity.
    pub records: std::collections::BTreeMap<String, usize>,
    /// History entries.
    pub history: usize,
    /// Attachments.
    pub attachments: usize,
}

/// Writes moved records into a workspace inside the caller's transaction, after checking them
/// all: the entity exists, ids are unique, live records satisfy their entity, unique fields
/// stay unique, every reference names a record of the restore, attachments pass the checks of an
/// upload. Only `entities` (the app's) take records. `pointer_of(i)` locates record `i` in the
/// caller's document for messages. Nothing is written when anything is wrong.
///
/// # Errors
/// `Error::Invalid` listing every problem; `Error::Db`.
pub async fn restore_in(
    conn: &impl Conn,
    workspace_id: Uuid,
    moved: Moved,
    entities: &HashSet<String>,
    pointer_of: &(dyn Fn(usize) -> String + Sync),
) -> Result<Restored> {
    let mut models = published_models(conn, workspace_id).await?;
    // Only the app's own entities: records never land in another app's tables.
    models.retain(|key, _| entities.contains(key));
    let mut problems = Vec::new();
    let mut ids: HashMap<&str, HashSet<Uuid>> = HashMap::new();
    for (i, record) in moved.records.iter().enumerate() {
        if !models.contains_key(&record.entity) {
            problems.push(FieldError::new(
                format!("{}/entity", pointer_of(i)),
                "unknown_entity",
                format!("entity {:?} is not in the app", record.entity),
            ));
        } else if !ids
            .entry(record.entity.as_str())
            .or_default()
            .insert(record.row.id)
        {
            problems.push(FieldError::new(
                format!("{}/id", pointer_of(i)),
                "duplicate",
                format!("{} {} appears twice", record.entity, record.row.id),
            ));
        }
    }
    let mut unique_seen: HashSet<(String, String, String)> = HashSet::new();
    for (i, record) in moved.records.iter().enumerate() {
        let Some(model) = models.get(&record.entity) else {
            continue;
        };
        let pointer = pointer_of(i);
        let live = record.row.deleted_at.is_none();
        if live {
            Records::validate(model, &record.row.doc, None, &pointer, &mut problems);
        }
        for (key, value) in &record.row.doc {
            if BOOKKEEPING.contains(&key.as_str()) {
                continue;
            }
            let Some(field) = model.field(key) else {
                problems.push(FieldError::new(
                    format!("{pointer}/fields/{key}"),
                    "unknown_field",
                    format!("entity {:?} has no field {key:?}", record.entity),
                ));
                continue;
            };
            if let FieldKind::Reference { entity, .. } = &field.kind
                && let Some(target) = value.as_str()
            {
                let known = Uuid::parse_str(target)
                    .is_ok_and(|id| ids.get(entity.as_str()).is_some_and(|s| s.contains(&id)));
                if !known {
                    problems.push(FieldError::new(
                        format!("{pointer}/fields/{key}"),
                        "unknown_record",
                        format!("{target} is not a {entity} of this import"),
                    ));
                }
            }
            if live && field.unique && !value.is_null() {
                let seen = (record.entity.clone(), key.clone(), value.to_string());
                if !unique_seen.insert(seen) {
                    problems.push(FieldError::new(
                        format!("{pointer}/fields/{key}"),
                        "unique",
                        format!("another {} has {key} = {value}", record.entity),
                    ));
                }
            }
        }
    }
    for (i, counter) in moved.counters.iter().enumerate() {
        if !models.contains_key(&counter.entity) {
            problems.push(FieldError::new(
                format!("/data/counters/{i}/entity"),
                "unknown_entity",
                format!("entity {:?} is not in the app", counter.entity),
            ));
        }
    }
    for (i, attachment) in moved.attachments.iter().enumerate() {
        let pointer = format!("/data/attachments/{i}");
        if let Some(field) = models
            .get(&attachment.entity)
            .and_then(|m| m.field(&attachment.row.field))
        {
            if let Err(Error::Invalid { errors, .. }) = super::attachments::vet(
                field,
                &attachment.row.file_name,
                &attachment.row.content_type,
                &attachment.data,
                &pointer,
            ) {
                problems.extend(errors);
            }
        } else {
            problems.push(FieldError::new(
                format!("{pointer}/field"),
                "unknown_field",
                format!(
                    "{:?} has no attachment field {:?}",
                    attachment.entity, attachment.row.field
                ),
            ));
        }
        let known = models.contains_key(&attachment.entity)
            && attachment.row.record_id.is_some_and(|r| {
                ids.get(attachment.entity.as_str())
                    .is_some_and(|s| s.contains(&r))
            });
        if !known {
            problems.push(FieldError::new(
                format!("/data/attachments/{i}/record"),
                "unknown_record",
                "the attachment's record is not in this import",
            ));
        }
    }
    if !problems.is_empty() {
        problems.truncate(200);
        return Err(Error::invalid_all(
            "the app's records cannot be imported",
            problems,
        ));
    }
    let mut restored = Restored::default();
    let mut by_entity: HashMap<String, (Vec<RecordRow>, Vec<HistoryRow>)> = HashMap::new();
    for record in moved.records {
        let Some(model) = models.get(&record.entity) else {
            continue;
        };
        let slot = by_entity.entry(record.entity.clone()).or_default();
        for mut entry in record.history {
            entry.id = crate::domain::new_id();
            entry.workspace_id = workspace_id;
            entry.entity_id = model.definition_id;
            entry.record_id = record.row.id;
            slot.1.push(entry);
        }
        slot.0.push(record.row);
    }
    for (entity, (records, history)) in &by_entity {
        let Some(model) = models.get(entity) else {
            continue;
        };
        rows::insert(conn, &model.table(), records).await?;
        super::search::on_insert(conn, model, records).await?;
        rows::insert_history(conn, history).await?;
        restored.records.insert(entity.clone(), records.len());
        restored.history += history.len();
    }
    for counter in moved.counters {
        if let Some(model) = models.get(&counter.entity) {
            rows::raise_counter(
                conn,
                model.definition_id,
                &counter.field,
                &counter.period,
                counter.value,
            )
            .await?;
        }
    }
    for attachment in moved.attachments {
        if let Some(model) = models.get(&attachment.entity) {
            let row = AttachmentRow {
                workspace_id,
                entity_id: model.definition_id,
                ..attachment.row
            };
            rows::insert_attachment(conn, &row, attachment.data).await?;
            restored.attachments += 1;
        }
    }
    Ok(restored)
}
