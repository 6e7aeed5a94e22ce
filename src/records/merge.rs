//! Merging duplicate records (撞单): one record survives, the duplicate's values fill its gaps
//! (or replace the values the caller picks), every record that referred to the duplicate refers
//! to the survivor, and the duplicate goes to the recycle bin, all in one transaction.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    Context, Lens, Operation, RecordView, Records, codec, diff, parse_id, record_not_found,
    rollups, scripting, view,
};
use crate::access::FieldRule;
use crate::definitions::{EntityModel, FieldKind};
use crate::domain::new_id;
use crate::error::{Error, FieldError, Result};
use crate::store::Sharing;
use crate::store::records::{self as rows, RecordUpdate, Stamp};

/// Most referring records one merge moves to the survivor.
pub const MAX_MOVED: usize = 10_000;

/// What a merge asks for.
#[derive(Debug, Clone, Default)]
pub struct MergeRequest {
    /// The duplicate merged into the survivor (and then deleted).
    pub duplicate: String,
    /// Fields that take the duplicate's value even where the survivor has one.
    pub take: Vec<String>,
    /// Only report what the merge would do.
    pub dry_run: bool,
}

/// Records of one reference field moved from the duplicate to the survivor.
#[derive(Debug, Clone, Serialize)]
pub struct Moved {
    /// The referring entity.
    pub entity: String,
    /// Its reference field.
    pub field: String,
    /// How many records.
    pub count: usize,
}

/// What a merge did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct MergeOutcome {
    /// The survivor after the merge (dry: before its rollups follow the moved records).
    pub record: RecordView,
    /// The duplicate's id (now in the recycle bin).
    pub merged: Uuid,
    /// Fields the survivor took from the duplicate, by key.
    pub filled: Vec<String>,
    /// Referring records moved to the survivor.
    pub moved: Vec<Moved>,
    /// Whether nothing was written.
    pub dry_run: bool,
}

/// Whether a stored value counts as empty (nothing to keep).
fn is_empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    }
}

impl Records<'_> {
    /// Merges record `request.duplicate` into record `id` of `entity`: the survivor keeps its
    /// values, takes the duplicate's where it has none (and for the fields in `take`), and every
    /// live record referring to the duplicate is moved to it; the duplicate is soft-deleted.
    /// Each record touched gets a history entry naming the merge. The caller must be able to
    /// change the survivor, delete the duplicate and change the records moved.
    ///
    /// Attachments stay with the duplicate (restorable from the recycle bin); moved records
    /// start no workflows (as references cleared by a delete do not).
    ///
    /// # Errors
    /// `Error::NotFound`, `Error::Forbidden`, `Error::Invalid` (same record, unknown or
    /// unwritable field in `take`, a merged record that breaks a rule), `Error::Conflict` (a
    /// pending approval locks either record, a unique value clash, a concurrent change).
    pub async fn merge(
        &self,
        ctx: &Context,
        entity: &str,
        id: &str,
        request: &MergeRequest,
    ) -> Result<MergeOutcome> {
        // A record changing meanwhile (a rollup from a new child, an edit) runs it again.
        let mut tries = 0;
        loop {
            match super::retry_transient(|| self.merge_once(ctx, entity, id, request)).await {
                Err(error) if tries < 3 && is_busy(&error) => tries += 1,
                other => return other,
            }
        }
    }

    /// One attempt of [`Records::merge`].
    async fn merge_once(
        &self,
        ctx: &Context,
        entity: &str,
        id: &str,
        request: &MergeRequest,
    ) -> Result<MergeOutcome> {
        let (snapshot, model) = self.model(ctx.scope, entity).await?;
        let lens = Lens::new(ctx, &model);
        let survivor_id = parse_id(id)?;
        let duplicate_id = Uuid::parse_str(request.duplicate.trim()).map_err(|_| {
            Error::invalid(
                "/duplicate",
                "invalid_id",
                "the duplicate must be a record id",
            )
        })?;
        if duplicate_id == survivor_id {
            return Err(Error::invalid(
                "/duplicate",
                "same_record",
                "a record cannot be merged into itself",
            ));
        }
        let survivor = self.live_row(&model, survivor_id).await?;
        let duplicate = rows::find(self.db.conn(), &model.table(), duplicate_id)
            .await?
            .filter(|row| row.deleted_at.is_none())
            .ok_or_else(|| record_not_found(&duplicate_id.to_string()))?;
        self.check_record(ctx, &lens, &model, &survivor, Operation::Update)
            .await?;
        self.check_record(ctx, &lens, &model, &duplicate, Operation::Delete)
            .await?;

        let taken = Self::fields_taken(&lens, &model, &request.take)?;
        let mut doc = survivor.doc.clone();
        let mut filled = Vec::new();
        for field in &model.fields {
            let writable = field.is_writable()
                && !field.hidden
                && !matches!(field.kind, FieldKind::Attachment { .. })
                && matches!(
                    lens.field(&model, &field.key),
                    FieldRule::Visible | FieldRule::Masked
                );
            if !writable {
                continue;
            }
            let theirs = duplicate.doc.get(&field.key);
            // Taking an empty value would only erase the survivor's.
            let wanted = !is_empty(theirs)
                && (taken.contains(field.key.as_str()) || is_empty(doc.get(&field.key)));
            if wanted && doc.get(&field.key) != theirs {
                match theirs {
                    Some(value) => doc.insert(field.key.clone(), value.clone()),
                    None => doc.remove(&field.key),
                };
                filled.push(field.key.clone());
            }
        }
        filled.sort();
        // The survivor referring to its duplicate would refer to itself once moved: cleared.
        let self_references: Vec<String> = snapshot
            .referrers(&model.key)
            .iter()
            .filter(|r| r.entity.key == model.key)
            .map(|r| r.field.clone())
            .filter(|field| {
                let value = doc.get(field).and_then(Value::as_str);
                value == Some(&duplicate_id.to_string()) || value == Some(&survivor_id.to_string())
            })
            .collect();
        for field in &self_references {
            doc.remove(field);
        }
        codec::apply_totals(&model, &mut doc);
        let world = scripting::ScriptWorld::of(ctx, self.clock.now());
        let mut problems = Vec::new();
        self.derive(
            &snapshot,
            &model,
            &mut doc,
            Some(&survivor.doc),
            &world,
            "",
            &mut problems,
        )
        .await?;
        Self::validate(&model, &doc, Some(&survivor.doc), "", &mut problems);
        if !problems.is_empty() {
            return Err(Error::invalid_all(
                format!("the merged {} record is invalid", model.key),
                problems,
            ));
        }

        let moving = self
            .referring(
                self.db.conn(),
                ctx,
                &snapshot,
                &model,
                survivor_id,
                duplicate_id,
            )
            .await?;
        let moved: Vec<Moved> = moved_of(&moving);
        let changes = diff(&model, &survivor.doc, &doc);
        if request.dry_run {
            let row = rows::RecordRow { doc, ..survivor };
            return Ok(MergeOutcome {
                record: lens.show(&model, view(&model, &row, lens.is_admin)),
                merged: duplicate_id,
                filled,
                moved,
                dry_run: true,
            });
        }

        self.check_unlocked(
            self.db.conn(),
            ctx,
            &snapshot,
            &model,
            &[survivor_id, duplicate_id],
        )
        .await?;
        let now = self.clock.now();
        let stamp = Stamp {
            at: now,
            by: ctx.actor.account_id(),
        };
        let cause =
            json!({"merged": {"entity": model.key, "from": duplicate_id, "into": survivor_id}});
        let tx = self.db.write(Sharing::Alone).await?;
        // Both records as they are now, locked: a change since they were read runs it again.
        for (id, seen) in [
            (duplicate_id, duplicate.version),
            (survivor_id, survivor.version),
        ] {
            let now_row = rows::find_for_update(&tx, &model.table(), id)
                .await?
                .filter(|row| row.deleted_at.is_none())
                .ok_or_else(|| record_not_found(&id.to_string()))?;
            if now_row.version != seen {
                return Err(busy());
            }
        }
        // Read again inside the write: a record made meanwhile that refers to the duplicate
        // moves too.
        let moving = self
            .referring(&tx, ctx, &snapshot, &model, survivor_id, duplicate_id)
            .await?;
        let moved: Vec<Moved> = moved_of(&moving);
        // The duplicate goes first, so unique values it held are free for the survivor.
        if !rows::soft_delete(&tx, &model.table(), duplicate_id, new_id(), stamp).await? {
            return Err(record_not_found(&duplicate_id.to_string()));
        }
        let mut history = vec![self.history_row(
            ctx,
            &model,
            duplicate_id,
            now,
            "delete",
            json!({"merged_into": survivor_id}),
        )];
        let quiet = world.clone().without_rules();
        let mut touched: Vec<(Arc<EntityModel>, Uuid)> = Vec::new();
        let mut rolled: BTreeMap<String, (Arc<EntityModel>, Vec<rollups::Change>)> =
            BTreeMap::new();
        for (referrer, ids) in &moving {
            let child_model = &referrer.entity;
            for child in ids {
                let Some(row) = rows::find(&tx, &child_model.table(), *child).await? else {
                    continue;
                };
                if row.deleted_at.is_some() {
                    continue;
                }
                let mut after = row.doc.clone();
                after.insert(
                    referrer.field.clone(),
                    Value::String(survivor_id.to_string()),
                );
                let mut ignored = Vec::new();
                self.derive_in(
                    &tx,
                    &snapshot,
                    child_model,
                    &mut after,
                    Some(&row.doc),
                    &quiet,
                    "",
                    &mut ignored,
                )
                .await?;
                self.check_unlocked(&tx, ctx, &snapshot, child_model, &[*child])
                    .await?;
                let updated = rows::update(
                    &tx,
                    &child_model.table(),
                    *child,
                    row.version,
                    RecordUpdate {
                        doc: after.clone(),
                        owner: row.owner,
                        at: now,
                        by: ctx.actor.account_id(),
                    },
                )
                .await
                .map_err(|e| Self::unique_violation(child_model, e))?;
                if !updated {
                    return Err(busy());
                }
                history.push(self.history_row(
                    ctx,
                    child_model,
                    *child,
                    now,
                    "update",
                    json!({"fields": diff(child_model, &row.doc, &after), "cause": cause}),
                ));
                touched.push((child_model.clone(), *child));
                if snapshot.is_rolled_up(&child_model.key) {
                    rolled
                        .entry(child_model.key.clone())
                        .or_insert_with(|| (child_model.clone(), Vec::new()))
                        .1
                        .push((Some(row.doc), Some(after)));
                }
            }
        }
        // The survivor is read again inside the write: its rollups changed with the moves.
        let fresh = rows::find(&tx, &model.table(), survivor_id)
            .await?
            .filter(|row| row.deleted_at.is_none())
            .ok_or_else(|| record_not_found(&survivor_id.to_string()))?;
        if fresh.version != survivor.version {
            return Err(busy());
        }
        for (child_model, changes) in rolled.into_values() {
            self.roll_up(&tx, &snapshot, &world, &child_model, changes)
                .await?;
        }
        let current = rows::find(&tx, &model.table(), survivor_id)
            .await?
            .ok_or_else(|| record_not_found(&survivor_id.to_string()))?;
        // Built again over the row as the moves left it: its rollups (and the formulas over
        // them) changed.
        let mut doc = current.doc.clone();
        for key in &filled {
            match duplicate.doc.get(key) {
                Some(value) => doc.insert(key.clone(), value.clone()),
                None => doc.remove(key),
            };
        }
        for field in &self_references {
            doc.remove(field);
        }
        codec::apply_totals(&model, &mut doc);
        let mut problems = Vec::new();
        self.derive_in(
            &tx,
            &snapshot,
            &model,
            &mut doc,
            Some(&current.doc),
            &world,
            "",
            &mut problems,
        )
        .await?;
        if !problems.is_empty() {
            return Err(Error::invalid_all(
                format!("the merged {} record is invalid", model.key),
                problems,
            ));
        }
        let updated = rows::update(
            &tx,
            &model.table(),
            survivor_id,
            current.version,
            RecordUpdate {
                doc: doc.clone(),
                owner: survivor.owner,
                at: now,
                by: ctx.actor.account_id(),
            },
        )
        .await
        .map_err(|e| Self::unique_violation(&model, e))?;
        if !updated {
            return Err(busy());
        }
        self.check_unlocked(&tx, ctx, &snapshot, &model, &[survivor_id, duplicate_id])
            .await?;
        let changed: HashSet<String> = changes.keys().cloned().collect();
        if snapshot.is_rolled_up(&model.key) {
            self.roll_up(
                &tx,
                &snapshot,
                &world,
                &model,
                vec![
                    (Some(current.doc.clone()), Some(doc.clone())),
                    (Some(duplicate.doc.clone()), None),
                ],
            )
            .await?;
        }
        self.check_in_tx(
            &tx,
            ctx,
            &snapshot,
            &model,
            &[(String::new(), survivor_id, &doc)],
            Some(&changed),
        )
        .await?;
        touched.push((model.clone(), survivor_id));
        touched.push((model.clone(), duplicate_id));
        self.recompute_lookups(&tx, ctx, &snapshot, &touched)
            .await?;
        let kept = [crate::workflows::Change {
            id: survivor_id,
            owner: survivor.owner,
            before: Some(&current.doc),
            after: Some(&doc),
        }];
        let gone = [crate::workflows::Change {
            id: duplicate_id,
            owner: duplicate.owner,
            before: Some(&duplicate.doc),
            after: None,
        }];
        crate::workflows::on_write(&tx, self.clock, ctx, &snapshot, &model, &kept).await?;
        crate::workflows::react(&tx, self.clock, ctx, &snapshot, &model, &gone).await?;
        crate::webhooks::on_write(&tx, self.clock, ctx, &snapshot, &model, &kept).await?;
        super::search::on_write(&tx, &model, &kept).await?;
        crate::webhooks::on_write(&tx, self.clock, ctx, &snapshot, &model, &gone).await?;
        history.push(self.history_row(
            ctx,
            &model,
            survivor_id,
            now,
            "update",
            json!({
                "fields": diff(&model, &current.doc, &doc),
                "merged_from": {"id": duplicate_id, "moved": moved},
            }),
        ));
        rows::insert_history(&tx, &history).await?;
        super::committed(
            tx.commit()
                .await
                .map_err(|e| Self::unique_violation(&model, e))?,
        )?;
        let row = rows::RecordRow {
            doc,
            updated_at: now,
            updated_by: ctx.actor.account_id(),
            version: current.version + 1,
            ..current
        };
        Ok(MergeOutcome {
            record: lens.show(&model, view(&model, &row, lens.is_admin)),
            merged: duplicate_id,
            filled,
            moved,
            dry_run: false,
        })
    }

    /// The fields of `take`, each one the caller may write and a merge may copy.
    fn fields_taken<'t>(
        lens: &Lens<'_>,
        model: &EntityModel,
        take: &'t [String],
    ) -> Result<HashSet<&'t str>> {
        let mut problems = Vec::new();
        for (i, key) in take.iter().enumerate() {
            let pointer = format!("/take/{i}");
            let rule = lens.field(model, key);
            match model.field(key) {
                Some(_) if rule == FieldRule::Hidden => problems.push(FieldError::new(
                    pointer,
                    "unknown_field",
                    format!("{:?} has no field {key:?}", model.key),
                )),
                None => problems.push(FieldError::new(
                    pointer,
                    "unknown_field",
                    format!("{:?} has no field {key:?}", model.key),
                )),
                Some(field)
                    if !field.is_writable()
                        || matches!(field.kind, FieldKind::Attachment { .. }) =>
                {
                    problems.push(FieldError::new(
                        pointer,
                        "not_mergeable",
                        format!("the field {key:?} is computed or holds files; it is not merged"),
                    ));
                }
                Some(_) if matches!(rule, FieldRule::ReadOnly | FieldRule::MaskedReadOnly) => {
                    problems.push(FieldError::new(
                        pointer,
                        "read_only_field",
                        format!("your role may not change the field {key:?}"),
                    ));
                }
                Some(_) => {}
            }
        }
        if !problems.is_empty() {
            return Err(Error::invalid_all(
                "the merge names fields it cannot take",
                problems,
            ));
        }
        Ok(take.iter().map(String::as_str).collect())
    }

    /// The live records referring to the duplicate, per reference field (the survivor and the
    /// duplicate left out), after checking the caller may change them all.
    async fn referring(
        &self,
        conn: &impl crate::store::Conn,
        ctx: &Context,
        snapshot: &crate::definitions::Snapshot,
        model: &EntityModel,
        survivor_id: Uuid,
        duplicate_id: Uuid,
    ) -> Result<Vec<(crate::definitions::Referrer, Vec<Uuid>)>> {
        let mut moving = Vec::new();
        let mut total = 0;
        for referrer in snapshot.referrers(&model.key) {
            self.check_reach_of_moved(conn, ctx, &referrer, duplicate_id)
                .await?;
            let found = rows::referring_ids(
                conn,
                &referrer.entity.table(),
                &referrer.field,
                duplicate_id,
            )
            .await?;
            let complete = found.len() < rows::REFERRING_LIMIT;
            let ids: Vec<Uuid> = found
                .into_iter()
                .filter(|child| *child != survivor_id && *child != duplicate_id)
                .collect();
            total += ids.len();
            if total > MAX_MOVED || !complete {
                return Err(Error::conflict(
                    "/duplicate",
                    "too_many_references",
                    format!("more than {MAX_MOVED} records refer to the duplicate; merge refused"),
                ));
            }
            if !ids.is_empty() {
                moving.push((referrer, ids));
            }
        }
        Ok(moving)
    }

    /// Refuses a merge that would move records the caller may not change: beyond their update
    /// reach, or through a reference field they may not write.
    async fn check_reach_of_moved(
        &self,
        conn: &impl crate::store::Conn,
        ctx: &Context,
        referrer: &crate::definitions::Referrer,
        duplicate: Uuid,
    ) -> Result<()> {
        let Some(policy) = ctx.policy.as_deref() else {
            return Ok(());
        };
        let child_lens = Lens::new(ctx, &referrer.entity);
        if !matches!(
            child_lens.field(&referrer.entity, &referrer.field),
            FieldRule::Visible | FieldRule::Masked
        ) && rows::count_referring(conn, &referrer.entity.table(), &referrer.field, duplicate)
            .await?
            > 0
        {
            return Err(Error::forbidden(format!(
                "merging would change {}.{} of records, which your role may not change",
                referrer.entity.key, referrer.field
            )));
        }
        let grant = policy.grant(&referrer.entity.key);
        let Some(scope) = policy.condition(
            grant.update,
            referrer.entity.definition_id,
            true,
            false,
            true,
        ) else {
            return Ok(());
        };
        let n = super::refers_beyond(conn, referrer, duplicate, scope).await?;
        if n {
            return Err(Error::forbidden(format!(
                "merging would move {} records your role may not change",
                referrer.entity.key
            )));
        }
        Ok(())
    }
}

/// What moves, per reference field.
fn moved_of(moving: &[(crate::definitions::Referrer, Vec<Uuid>)]) -> Vec<Moved> {
    moving
        .iter()
        .map(|(referrer, ids)| Moved {
            entity: referrer.entity.key.clone(),
            field: referrer.field.clone(),
            count: ids.len(),
        })
        .collect()
}

/// Whether `error` is [`busy`].
fn is_busy(error: &Error) -> bool {
    matches!(error, Error::Conflict { errors, .. } if errors.iter().any(|e| e.code == "busy"))
}

/// A record changed while the merge ran.
fn busy() -> Error {
    Error::conflict(
        "/version",
        "busy",
        "a merged record changed meanwhile; reload and try again",
    )
}

#[cfg(test)]
mod tests {
    use super::is_empty;
    use serde_json::json;

    #[test]
    fn empty_values_are_the_ones_a_merge_fills() {
        assert!(is_empty(None));
        assert!(is_empty(Some(&json!(null))));
        assert!(is_empty(Some(&json!("  "))));
        assert!(is_empty(Some(&json!([]))));
        assert!(!is_empty(Some(&json!(0))));
        assert!(!is_empty(Some(&json!(false))));
        assert!(!is_empty(Some(&json!("x"))));
    }
}
