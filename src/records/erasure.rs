//! Personal data (PIPL): export everything stored about a person's record, and erase it for
//! real — values purged from the record, its history and its files, leaving a tombstone that
//! says what was erased, when and by whom. Owners and admins only; both are audited.

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Context, Records, parse_id, record_not_found, view};
use crate::audit::{self, Event};
use crate::domain::new_id;
use crate::error::{Error, Result};
use crate::store::records::{self as rows, AttachmentRow, Stamp};
use crate::store::{Sharing, people};

/// The key of the tombstone in an erased record's document.
pub const ERASED: &str = "_erased";

/// Everything stored about one record, for a data subject's request.
#[derive(Debug, Clone, Serialize)]
pub struct PersonalData {
    /// The entity.
    pub entity: String,
    /// The record as stored (every field, hidden ones included).
    pub record: super::RecordView,
    /// Its whole history.
    pub history: Vec<super::HistoryView>,
    /// Its files (descriptions; each downloadable by id).
    pub attachments: Vec<AttachmentSummary>,
    /// People it is shared with.
    pub collaborators: Vec<super::sharing::CollaboratorView>,
    /// Records of other entities that refer to it: entity, field, record ids.
    pub referred_by: Vec<Referrer>,
}

/// A file in an export.
#[derive(Debug, Clone, Serialize)]
pub struct AttachmentSummary {
    /// Id.
    pub id: Uuid,
    /// Field.
    pub field: String,
    /// Name.
    pub file_name: String,
    /// Media type.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// SHA-256.
    pub sha256: String,
}

impl From<AttachmentRow> for AttachmentSummary {
    fn from(row: AttachmentRow) -> Self {
        Self {
            id: row.id,
            field: row.field,
            file_name: row.file_name,
            content_type: row.content_type,
            size: row.size,
            sha256: row.sha256,
        }
    }
}

/// Records referring to the exported one through one field.
#[derive(Debug, Clone, Serialize)]
pub struct Referrer {
    /// Entity key.
    pub entity: String,
    /// Reference field.
    pub field: String,
    /// Ids of the referring records (live ones).
    pub records: Vec<Uuid>,
}

/// What an erasure removed.
#[derive(Debug, Clone, Serialize)]
pub struct Erasure {
    /// The record, now a tombstone.
    pub record: Uuid,
    /// The fields whose values were purged.
    pub fields: Vec<String>,
    /// History entries emptied.
    pub history_entries: u64,
    /// Files deleted.
    pub attachments: u64,
}

fn require_admin(ctx: &Context) -> Result<()> {
    if ctx.is_admin() {
        Ok(())
    } else {
        Err(Error::forbidden(
            "only a workspace owner or admin may export or erase personal data",
        ))
    }
}

impl Records<'_> {
    /// Everything stored about one record (also a deleted one).
    ///
    /// # Errors
    /// `Error::Forbidden` (not an admin), `Error::NotFound`.
    pub async fn personal_data(
        &self,
        ctx: &Context,
        entity: &str,
        id: &str,
    ) -> Result<PersonalData> {
        require_admin(ctx)?;
        let (snapshot, model) = self.model(ctx.scope, entity).await?;
        let id = parse_id(id)?;
        let row = rows::find(self.db.conn(), &model.table(), id)
            .await?
            .ok_or_else(|| record_not_found(&id.to_string()))?;
        let history = self.history(ctx, entity, &id.to_string()).await?;
        let attachments = rows::attachments_of(
            self.db.conn(),
            ctx.scope.workspace_id,
            model.definition_id,
            id,
        )
        .await?
        .into_iter()
        .map(AttachmentSummary::from)
        .collect();
        let collaborators = people::collaborators(self.db.conn(), model.definition_id, id)
            .await?
            .into_iter()
            .map(super::sharing::CollaboratorView::from)
            .collect();
        let mut referred_by = Vec::new();
        for referrer in snapshot.referrers(&model.key) {
            let ids = rows::referring_ids(
                self.db.conn(),
                &referrer.entity.table(),
                &referrer.field,
                id,
            )
            .await?;
            if !ids.is_empty() {
                referred_by.push(Referrer {
                    entity: referrer.entity.key.clone(),
                    field: referrer.field.clone(),
                    records: ids,
                });
            }
        }
        let export = PersonalData {
            entity: model.key.clone(),
            record: view(&model, &row, true),
            history,
            attachments,
            collaborators,
            referred_by,
        };
        audit::record(
            self.db,
            self.clock.now(),
            Event {
                workspace_id: Some(ctx.scope.workspace_id),
                account_id: ctx.actor.account_id(),
                kind: "personal_data.exported",
                detail: serde_json::json!({"entity": model.key, "record": id}),
            },
        )
        .await;
        Ok(export)
    }

    /// Erases a record for real, in one transaction: every field value purged from the record
    /// (which stays as a deleted tombstone naming what was erased, when and by whom), from every
    /// entry of its history, and its files deleted. References to it keep its id. Restoring an
    /// erased record is refused; purging it removes the tombstone.
    ///
    /// # Errors
    /// `Error::Forbidden` (not an admin), `Error::NotFound`, `Error::Conflict` (erased already).
    pub async fn erase(&self, ctx: &Context, entity: &str, id: &str) -> Result<Erasure> {
        super::retry_transient(|| self.erase_once(ctx, entity, id)).await
    }

    /// One attempt of [`Records::erase`].
    async fn erase_once(&self, ctx: &Context, entity: &str, id: &str) -> Result<Erasure> {
        require_admin(ctx)?;
        let (_, model) = self.model(ctx.scope, entity).await?;
        let id = parse_id(id)?;
        let row = rows::find(self.db.conn(), &model.table(), id)
            .await?
            .ok_or_else(|| record_not_found(&id.to_string()))?;
        if row.doc.contains_key(ERASED) {
            return Err(Error::conflict(
                "",
                "erased",
                "the record was erased already",
            ));
        }
        let now = self.clock.now();
        let fields: Vec<String> = row
            .doc
            .keys()
            .filter(|k| !k.starts_with('_'))
            .cloned()
            .collect();
        let mut tomb = Map::new();
        tomb.insert(
            ERASED.to_owned(),
            serde_json::json!({"at": now, "by": ctx.actor.account_id(), "fields": fields}),
        );
        let marker = serde_json::json!({"erased": true, "at": now});
        let stamp = Stamp {
            at: now,
            by: ctx.actor.account_id(),
        };
        let tx = self.db.write(Sharing::Alone).await?;
        // The record as this transaction holds it: a change committed since the read above
        // (a re-parent) must leave the parent it is in now.
        let current = rows::find_for_update(&tx, &model.table(), id).await?;
        if !rows::tombstone(&tx, &model.table(), id, tomb, new_id(), stamp).await? {
            return Err(record_not_found(&id.to_string()));
        }
        // What identified the person is no longer searchable.
        crate::store::search::delete_terms(&tx, &model.table(), &[id]).await?;
        // What was said about the person goes too.
        crate::store::comments::delete_of_records(&tx, ctx.scope.workspace_id, &model.key, &[id])
            .await?;
        let emails = crate::store::emails::delete_of_records(
            &tx,
            ctx.scope.workspace_id,
            &model.key,
            &[id],
            true,
        )
        .await?;
        // Their delivery jobs hold the addresses and text too.
        crate::store::jobs::delete_unclaimed_keyed(
            &tx,
            emails
                .iter()
                .map(|email| {
                    crate::jobs::scoped_key(
                        Some(ctx.scope.workspace_id),
                        &crate::store::emails::job_key(*email),
                    )
                })
                .collect(),
        )
        .await?;
        crate::store::notifications::delete_of_records(
            &tx,
            ctx.scope.workspace_id,
            &model.key,
            &[id],
        )
        .await?;
        // An erased record no longer counts in its parents' rollups.
        if let Some(current) = current.filter(|r| r.deleted_at.is_none()) {
            let snapshot = self.snapshot(ctx.scope).await?;
            let world = super::scripting::ScriptWorld::of(ctx, now);
            self.roll_up(
                &tx,
                &snapshot,
                &world,
                &model,
                vec![(Some(current.doc), None)],
            )
            .await?;
        }
        let history_entries = rows::erase_history(&tx, model.definition_id, id, marker).await?;
        let attachments =
            rows::delete_attachments_of(&tx, ctx.scope.workspace_id, model.definition_id, id)
                .await?;
        tx.insert_history(vec![self.history_row(
            ctx,
            &model,
            id,
            now,
            "erase",
            serde_json::json!({"erased": {"fields": fields}}),
        )])
        .await?;
        audit::record_in(
            &tx,
            now,
            Event {
                workspace_id: Some(ctx.scope.workspace_id),
                account_id: ctx.actor.account_id(),
                kind: "record.erased",
                detail: serde_json::json!({"entity": model.key, "record": id, "fields": fields,
                                           "history_entries": history_entries,
                                           "attachments": attachments}),
            },
        )
        .await?;
        super::committed(tx.commit().await?)?;
        Ok(Erasure {
            record: id,
            fields,
            history_entries,
            attachments,
        })
    }
}

/// Whether a stored document is an erasure tombstone.
pub fn is_erased(doc: &Map<String, Value>) -> bool {
    doc.contains_key(ERASED)
}
