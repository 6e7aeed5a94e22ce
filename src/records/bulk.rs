//! Spreadsheet-sized writes: a batch of rows, each a new record or a change to a stored one,
//! checked exactly as single writes are (field rules, formulas, rules, JSON Schema, owners,
//! references, unique values, approval locks) and written all-or-nothing in one transaction,
//! together with the caller's [`BatchMark`] (an import's progress), so a batch and the note that
//! it was written commit or vanish together. Problems name the row: `/rows/{i}/fields/{key}`.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Context, Lens, Operation, Records, codec, diff, evolve, scripting};
use crate::domain::new_id;
use crate::error::{Error, FieldError, Result};
use crate::store::records::{self as rows, HistoryRow, RecordRow, RecordUpdate};
use crate::store::{Outcome, Sharing};

/// One row of a batch.
#[derive(Debug, Clone, Default)]
pub struct BulkRow {
    /// Fields (API form): for a change, only those to set.
    pub fields: Map<String, Value>,
    /// The owner to give (a new record: the actor when absent; a change: kept when absent).
    pub owner: Option<Uuid>,
    /// The stored record this row changes; a new record when absent.
    pub target: Option<Uuid>,
    /// Added to the row's history entry (an import's id and line).
    pub note: Option<Value>,
}

/// How a batch is written.
#[derive(Debug, Clone, Copy)]
pub struct BulkOptions {
    /// Whether workflows watching the entity react to the batch (runs, date timers).
    pub workflows: bool,
    /// Check everything, write nothing.
    pub dry_run: bool,
}

/// What became of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOutcome {
    /// A new record.
    Created(Uuid),
    /// A stored record changed.
    Updated(Uuid),
    /// A stored record already held these values.
    Unchanged(Uuid),
}

/// Something the caller writes in the batch's transaction (its progress), after the rows.
#[async_trait::async_trait]
pub trait BatchMark: Send + Sync {
    /// Writes the mark; an error rolls the batch back.
    ///
    /// # Errors
    /// Whatever the mark's writer returns.
    async fn write(&self, tx: &crate::store::Write, outcomes: &[RowOutcome]) -> Result<()>;
}

/// A checked row ready to write.
enum Ready {
    Create(RecordRow),
    Update {
        before: RecordRow,
        doc: Map<String, Value>,
        owner: Option<Uuid>,
        changes: Map<String, Value>,
    },
    Unchanged(Uuid),
}

/// How many times a batch is prepared again when a record it changes moved meanwhile.
const ATTEMPTS: usize = 3;

impl Records<'_> {
    /// Writes a batch of rows all-or-nothing (see the module). A refused batch answers
    /// `Error::Invalid` (or `Forbidden`, `Conflict`) with a pointer per problem under
    /// `/rows/{i}`, and writes nothing: the caller may drop those rows and send the rest.
    ///
    /// # Errors
    /// As above; `Error::NotFound` for the entity; `Error::Db`.
    pub async fn write_rows(
        &self,
        ctx: &Context,
        entity: &str,
        batch: &[BulkRow],
        options: BulkOptions,
        mark: Option<&dyn BatchMark>,
    ) -> Result<Vec<RowOutcome>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .write_rows_once(ctx, entity, batch, options, mark)
                .await
            {
                Err(Error::Conflict { errors, .. })
                    if attempt < ATTEMPTS && errors.iter().any(|e| e.code == "moved") => {}
                other => return other,
            }
        }
    }

    async fn write_rows_once(
        &self,
        ctx: &Context,
        entity: &str,
        batch: &[BulkRow],
        options: BulkOptions,
        mark: Option<&dyn BatchMark>,
    ) -> Result<Vec<RowOutcome>> {
        let (snapshot, model) = self.model(ctx.scope, entity).await?;
        let lens = Lens::new(ctx, &model);
        if batch.iter().any(|r| r.target.is_none()) {
            self.check_entity(ctx, &lens, &model, Operation::Create)
                .await?;
        }
        let targets: Vec<Uuid> = batch.iter().filter_map(|r| r.target).collect();
        if !targets.is_empty() {
            self.check_entity(ctx, &lens, &model, Operation::Update)
                .await?;
        }
        let mut stored: HashMap<Uuid, RecordRow> =
            rows::find_many(self.db.conn(), &model.table(), &targets)
                .await?
                .into_iter()
                .filter(|row| row.deleted_at.is_none())
                .map(|row| (row.id, row))
                .collect();
        let now = self.clock.now();
        let world = scripting::ScriptWorld::of(ctx, now);
        let mut problems = Vec::new();
        let mut ready = Vec::with_capacity(batch.len());
        for (i, input) in batch.iter().enumerate() {
            let prefix = format!("/rows/{i}");
            let mut refused = Vec::new();
            let prepared = match input.target {
                None => {
                    self.prepare_create(
                        ctx,
                        &lens,
                        &snapshot,
                        &model,
                        &world,
                        input,
                        &prefix,
                        &mut problems,
                        &mut refused,
                    )
                    .await?
                }
                Some(id) => {
                    let Some(before) = stored.remove(&id) else {
                        problems.push(FieldError::new(
                            prefix,
                            "not_found",
                            format!("record {id} was not found (deleted meanwhile?)"),
                        ));
                        continue;
                    };
                    self.prepare_update(
                        ctx,
                        &lens,
                        &snapshot,
                        &model,
                        &world,
                        input,
                        before,
                        &prefix,
                        &mut problems,
                        &mut refused,
                    )
                    .await?
                }
            };
            // Fields the role may not write are this row's problem, not the batch's.
            problems.extend(refused);
            if let Some(prepared) = prepared {
                ready.push(prepared);
            }
        }
        if !problems.is_empty() {
            return Err(Error::invalid_all(
                format!("some {} rows are invalid", model.key),
                problems,
            ));
        }
        let docs: Vec<(String, &Map<String, Value>)> = ready
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Ready::Create(row) => Some((format!("/rows/{i}"), &row.doc)),
                Ready::Update { doc, .. } => Some((format!("/rows/{i}"), doc)),
                Ready::Unchanged(_) => None,
            })
            .collect();
        let clashes = Self::duplicates_in_request(&model, &docs);
        if !clashes.is_empty() {
            return Err(Error::Conflict {
                detail: "a unique value repeats within the batch".to_owned(),
                errors: clashes,
            });
        }
        let mut locked = Vec::new();
        for (i, r) in ready.iter().enumerate() {
            if let Ready::Update { before, .. } = r
                && let Err(Error::Conflict { detail, .. }) = self
                    .check_unlocked(self.db.conn(), ctx, &snapshot, &model, &[before.id])
                    .await
            {
                locked.push(FieldError::new(format!("/rows/{i}"), "locked", detail));
            }
        }
        if !locked.is_empty() {
            return Err(Error::Conflict {
                detail: "some records are locked by pending approvals".to_owned(),
                errors: locked,
            });
        }
        let outcomes: Vec<RowOutcome> = ready
            .iter()
            .map(|r| match r {
                Ready::Create(row) => RowOutcome::Created(row.id),
                Ready::Update { before, .. } => RowOutcome::Updated(before.id),
                Ready::Unchanged(id) => RowOutcome::Unchanged(*id),
            })
            .collect();
        if options.dry_run {
            self.check_taken(&model, &ready).await?;
            return Ok(outcomes);
        }
        let mut ready = ready;
        let tx = self.db.write(Sharing::Alone).await?;
        let mut history = Vec::new();
        let mut rolled = Vec::new();
        let rolled_up = snapshot.is_rolled_up(&model.key);
        for (i, r) in ready.iter_mut().enumerate() {
            let note = batch.get(i).and_then(|b| b.note.clone());
            match r {
                Ready::Create(row) => {
                    Self::assign_numbers(&tx, &model, &mut row.doc, now, ctx.time_zone).await?;
                    let fields = diff(&model, &Map::new(), &row.doc);
                    history.push(
                        self.bulk_history(ctx, &model, row.id, now, "create", fields, None, note),
                    );
                    if rolled_up {
                        rolled.push((None, Some(row.doc.clone())));
                    }
                }
                Ready::Update {
                    before,
                    doc,
                    owner,
                    changes,
                } => {
                    let updated = rows::update(
                        &tx,
                        &model.table(),
                        before.id,
                        before.version,
                        RecordUpdate {
                            doc: doc.clone(),
                            owner: *owner,
                            at: now,
                            by: ctx.actor.account_id(),
                        },
                    )
                    .await
                    .map_err(|e| Self::unique_violation(&model, e))?;
                    if !updated {
                        return Err(Error::conflict(
                            format!("/rows/{i}"),
                            "moved",
                            format!("record {} changed while the batch was written", before.id),
                        ));
                    }
                    let owner_change = (*owner != before.owner).then_some((before.owner, *owner));
                    history.push(self.bulk_history(
                        ctx,
                        &model,
                        before.id,
                        now,
                        "update",
                        changes.clone(),
                        owner_change,
                        note,
                    ));
                    if rolled_up {
                        rolled.push((Some(before.doc.clone()), Some(doc.clone())));
                    }
                }
                Ready::Unchanged(_) => {}
            }
        }
        let new_rows: Vec<&RecordRow> = ready
            .iter()
            .filter_map(|r| match r {
                Ready::Create(row) => Some(row),
                _ => None,
            })
            .collect();
        let created_count = new_rows.len();
        if let Err(error) = rows::insert(&tx, &model.table(), &new_rows).await {
            let error = Self::unique_violation(&model, error);
            if matches!(error, Error::Conflict { .. }) {
                drop(tx);
                self.check_taken(&model, &ready).await?;
            }
            return Err(error);
        }
        let update_ids: Vec<Uuid> = ready
            .iter()
            .filter_map(|r| match r {
                Ready::Update { before, .. } => Some(before.id),
                _ => None,
            })
            .collect();
        self.check_unlocked(&tx, ctx, &snapshot, &model, &update_ids)
            .await?;
        if rolled_up {
            self.roll_up(&tx, &snapshot, &world, &model, rolled).await?;
        }
        let created: Vec<(String, Uuid, &Map<String, Value>)> = ready
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Ready::Create(row) => Some((format!("/rows/{i}"), row.id, &row.doc)),
                _ => None,
            })
            .collect();
        if !created.is_empty() {
            self.check_in_tx(&tx, ctx, &snapshot, &model, &created, None)
                .await?;
        }
        for (i, r) in ready.iter().enumerate() {
            if let Ready::Update {
                before,
                doc,
                changes,
                ..
            } = r
            {
                let changed: HashSet<String> = changes.keys().cloned().collect();
                self.check_in_tx(
                    &tx,
                    ctx,
                    &snapshot,
                    &model,
                    &[(format!("/rows/{i}"), before.id, doc)],
                    Some(&changed),
                )
                .await?;
            }
        }
        let looked_up: Vec<_> = update_ids.iter().map(|id| (model.clone(), *id)).collect();
        self.recompute_lookups(&tx, ctx, &snapshot, &looked_up)
            .await?;
        {
            let changes: Vec<crate::workflows::Change<'_>> = ready
                .iter()
                .filter_map(|r| match r {
                    Ready::Create(row) => Some(crate::workflows::Change {
                        id: row.id,
                        owner: row.owner,
                        before: None,
                        after: Some(&row.doc),
                    }),
                    Ready::Update {
                        before, doc, owner, ..
                    } => Some(crate::workflows::Change {
                        id: before.id,
                        owner: *owner,
                        before: Some(&before.doc),
                        after: Some(doc),
                    }),
                    Ready::Unchanged(_) => None,
                })
                .collect();
            if options.workflows {
                crate::workflows::on_write(&tx, self.clock, ctx, &snapshot, &model, &changes)
                    .await?;
            }
            // Subscribers hear of imported records whatever the import says of workflows.
            crate::webhooks::on_write(&tx, self.clock, ctx, &snapshot, &model, &changes).await?;
            super::search::on_write(&tx, &model, &changes).await?;
        }
        tx.insert_history(history).await?;
        if let Some(mark) = mark {
            mark.write(&tx, &outcomes).await?;
        }
        match tx
            .commit()
            .await
            .map_err(|e| Self::unique_violation(&model, e))?
        {
            Outcome::Committed => {}
            Outcome::RunAgain => {
                return Err(Error::Unavailable(
                    "the batch was rolled back; send it again".to_owned(),
                ));
            }
        }
        self.db.analyze_soon(&model.table(), created_count);
        super::search::analyze_soon(self.db, &model, created_count);
        Ok(outcomes)
    }

    /// A new record from a row, checked (formulas, rules, schema); `None` when it has problems.
    #[allow(clippy::too_many_arguments)]
    async fn prepare_create(
        &self,
        ctx: &Context,
        lens: &Lens<'_>,
        snapshot: &crate::definitions::Snapshot,
        model: &crate::definitions::EntityModel,
        world: &scripting::ScriptWorld,
        input: &BulkRow,
        prefix: &str,
        problems: &mut Vec<FieldError>,
        refused: &mut Vec<FieldError>,
    ) -> Result<Option<Ready>> {
        let before = problems.len() + refused.len();
        let owner = input.owner.or(ctx.actor.account_id());
        let pointer = format!("{prefix}/owner");
        if let Err(Error::Forbidden { detail, .. }) = self
            .check_new_owner(ctx, lens, model, owner, Operation::Create, &pointer)
            .await
        {
            problems.push(FieldError::new(pointer.clone(), "forbidden", detail));
        }
        self.check_owner(ctx, owner, &pointer, problems).await?;
        let fields = lens.check_input(model, &input.fields, None, prefix, problems, refused);
        let mut doc = Self::new_doc(model, &fields, prefix, problems);
        self.derive(snapshot, model, &mut doc, None, world, prefix, problems)
            .await?;
        Self::validate(model, &doc, None, prefix, problems);
        if problems.len() + refused.len() > before {
            return Ok(None);
        }
        let now = world.now();
        Ok(Some(Ready::Create(RecordRow {
            id: new_id(),
            owner,
            created_at: now,
            created_by: ctx.actor.account_id(),
            updated_at: now,
            updated_by: ctx.actor.account_id(),
            version: 1,
            deleted_at: None,
            deletion_id: None,
            doc,
        })))
    }

    /// A change to a stored record from a row, checked like a PATCH; `None` when it has
    /// problems.
    #[allow(clippy::too_many_arguments)]
    async fn prepare_update(
        &self,
        ctx: &Context,
        lens: &Lens<'_>,
        snapshot: &crate::definitions::Snapshot,
        model: &crate::definitions::EntityModel,
        world: &scripting::ScriptWorld,
        input: &BulkRow,
        before: RecordRow,
        prefix: &str,
        problems: &mut Vec<FieldError>,
        refused: &mut Vec<FieldError>,
    ) -> Result<Option<Ready>> {
        let start = problems.len() + refused.len();
        if let Err(error) = self
            .check_record(ctx, lens, model, &before, Operation::Update)
            .await
        {
            problems.push(FieldError::new(
                prefix,
                "forbidden",
                format!("record {}: {error}", before.id),
            ));
            return Ok(None);
        }
        let owner = input.owner.or(before.owner);
        if owner != before.owner {
            let pointer = format!("{prefix}/owner");
            let allowed = self
                .check_owner_change(ctx, lens, model, &before)
                .await
                .and(
                    self.check_new_owner(ctx, lens, model, owner, Operation::Update, &pointer)
                        .await,
                );
            if let Err(error) = allowed {
                problems.push(FieldError::new(
                    pointer.clone(),
                    "forbidden",
                    error.to_string(),
                ));
            }
            self.check_owner(ctx, owner, &pointer, problems).await?;
        }
        let patch = lens.check_input(
            model,
            &input.fields,
            Some(&before.doc),
            prefix,
            problems,
            refused,
        );
        let mut doc = before.doc.clone();
        Self::encode_into(model, &patch, &mut doc, prefix, problems);
        if let Some(marker) = doc
            .get_mut(evolve::UNCONVERTED)
            .and_then(Value::as_object_mut)
        {
            marker.retain(|key, _| !patch.contains_key(key));
            if marker.is_empty() {
                doc.remove(evolve::UNCONVERTED);
            }
        }
        codec::apply_totals(model, &mut doc);
        self.derive(
            snapshot,
            model,
            &mut doc,
            Some(&before.doc),
            world,
            prefix,
            problems,
        )
        .await?;
        Self::validate(model, &doc, Some(&before.doc), prefix, problems);
        if problems.len() + refused.len() > start {
            return Ok(None);
        }
        let changes = diff(model, &before.doc, &doc);
        if changes.is_empty() && owner == before.owner {
            return Ok(Some(Ready::Unchanged(before.id)));
        }
        Ok(Some(Ready::Update {
            before,
            doc,
            owner,
            changes,
        }))
    }

    /// Unique values of the batch that stored records hold, as a 409 naming the rows.
    async fn check_taken(
        &self,
        model: &crate::definitions::EntityModel,
        ready: &[Ready],
    ) -> Result<()> {
        let mut clashes = Vec::new();
        for field in model.fields.iter().filter(|f| f.unique) {
            let mut values = Vec::new();
            for (i, r) in ready.iter().enumerate() {
                let (id, doc) = match r {
                    Ready::Create(row) => (row.id, &row.doc),
                    Ready::Update { before, doc, .. } => (before.id, doc),
                    Ready::Unchanged(_) => continue,
                };
                if let Some(value) = doc.get(&field.key).and_then(|v| codec::scalar_of(field, v)) {
                    values.push((i, id, value));
                }
            }
            if values.is_empty() {
                continue;
            }
            let taken = rows::find_values(
                self.db.conn(),
                &model.table(),
                &field.key,
                field.kind.value_type(),
                values.iter().map(|(_, _, v)| v.clone()).collect(),
                &[],
            )
            .await?;
            for (i, id, value) in &values {
                if taken.iter().any(|(holder, t)| t == value && holder != id) {
                    clashes.push(super::unique_clash(
                        model,
                        field,
                        format!("/rows/{i}/fields/{}", codec::escape(&field.key)),
                        value,
                    ));
                }
            }
        }
        if clashes.is_empty() {
            Ok(())
        } else {
            Err(Error::Conflict {
                detail: "a unique value is already taken".to_owned(),
                errors: clashes,
            })
        }
    }

    /// The ids of `entity`'s live records the caller can read whose title field holds one of
    /// `titles` (exactly, after trimming), by title.
    ///
    /// # Errors
    /// `Error::NotFound` (entity), `Error::Forbidden` (not readable), `Error::Db`.
    pub async fn ids_by_title(
        &self,
        ctx: &Context,
        entity: &str,
        titles: &[String],
    ) -> Result<HashMap<String, Vec<Uuid>>> {
        let (_, model) = self.model(ctx.scope, entity).await?;
        let lens = Lens::new(ctx, &model);
        self.check_entity(ctx, &lens, &model, Operation::Read)
            .await?;
        let mut found: HashMap<String, Vec<Uuid>> = HashMap::new();
        let Some(field) = model.title_field.as_deref().and_then(|k| model.field(k)) else {
            return Ok(found);
        };
        let wanted: Vec<crate::domain::query::Scalar> = titles
            .iter()
            .map(|t| crate::domain::query::Scalar::Text(t.trim().to_owned()))
            .collect();
        let matched = rows::find_values(
            self.db.conn(),
            &model.table(),
            &field.key,
            field.kind.value_type(),
            wanted,
            &[],
        )
        .await?;
        let ids: Vec<Uuid> = matched.iter().map(|(id, _)| *id).collect();
        let stored: HashMap<Uuid, RecordRow> =
            rows::find_many(self.db.conn(), &model.table(), &ids)
                .await?
                .into_iter()
                .map(|r| (r.id, r))
                .collect();
        for (id, value) in matched {
            let Some(row) = stored.get(&id) else {
                continue;
            };
            if self
                .check_record(ctx, &lens, &model, row, Operation::Read)
                .await
                .is_err()
            {
                continue;
            }
            if let crate::domain::query::Scalar::Text(title) = value {
                found.entry(title).or_default().push(id);
            }
        }
        Ok(found)
    }

    /// A history row of a bulk write, with the row's note (an import's id and line).
    #[allow(clippy::too_many_arguments)]
    fn bulk_history(
        &self,
        ctx: &Context,
        model: &crate::definitions::EntityModel,
        id: Uuid,
        at: chrono::DateTime<chrono::Utc>,
        operation: &str,
        fields: Map<String, Value>,
        owner_change: Option<(Option<Uuid>, Option<Uuid>)>,
        note: Option<Value>,
    ) -> HistoryRow {
        let mut changes = Value::Object(Map::from_iter([(
            "fields".to_owned(),
            Value::Object(fields),
        )]));
        if let Some((old, new)) = owner_change {
            changes["owner"] = serde_json::json!({"old": old, "new": new});
        }
        if let Some(note) = note {
            changes["import"] = note;
        }
        self.history_row(ctx, model, id, at, operation, changes)
    }
}

/// The rows of a refused batch and their problems: pointers `/rows/{i}…` grouped by `i`
/// (problems without a row index, such as a changed definition, are `None`).
pub fn problems_by_row(error: &Error) -> Option<Vec<(Option<usize>, FieldError)>> {
    let (Error::Invalid { errors, .. }
    | Error::Conflict { errors, .. }
    | Error::Forbidden { errors, .. }) = error
    else {
        return None;
    };
    if errors.is_empty() {
        return None;
    }
    Some(
        errors
            .iter()
            .map(|e| {
                let row = e
                    .pointer
                    .strip_prefix("/rows/")
                    .and_then(|rest| rest.split('/').next())
                    .and_then(|n| n.parse().ok());
                (row, e.clone())
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_grouped_by_row() {
        let error = Error::invalid_all(
            "bad",
            vec![
                FieldError::new("/rows/3/fields/name", "required", "x"),
                FieldError::new("/rows/12", "not_found", "y"),
                FieldError::new("", "definition_changed", "z"),
            ],
        );
        let rows: Vec<Option<usize>> = problems_by_row(&error)
            .unwrap_or_default()
            .into_iter()
            .map(|(row, _)| row)
            .collect();
        assert_eq!(rows, vec![Some(3), Some(12), None]);
        assert!(problems_by_row(&Error::Unauthenticated).is_none());
    }
}
