//! Ownership and sharing of records: bulk owner transfer, and collaborators (people a record is
//! shared with, to read or to edit). Both are checked by the guard and written to history.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Context, Lens, Operation, RecordView, Records, parse_id};
use crate::access::Reach;
use crate::error::{Error, FieldError, Result};
use crate::store::people::{self, CollaboratorRow};
use crate::store::records::{self as rows, Stamp};
use crate::store::{self, Sharing};

/// Most records one transfer moves.
pub const MAX_TRANSFER: usize = 1000;

/// A collaborator as listed.
#[derive(Debug, Clone, Serialize)]
pub struct CollaboratorView {
    /// The person.
    pub account_id: Uuid,
    /// `read` or `edit`.
    pub access: &'static str,
    /// When added.
    pub added_at: DateTime<Utc>,
    /// By whom.
    pub added_by: Option<Uuid>,
}

impl From<CollaboratorRow> for CollaboratorView {
    fn from(row: CollaboratorRow) -> Self {
        Self {
            account_id: row.account_id,
            access: if row.can_edit { "edit" } else { "read" },
            added_at: row.added_at,
            added_by: row.added_by,
        }
    }
}

impl Records<'_> {
    /// The collaborators of a record the caller can read.
    ///
    /// # Errors
    /// `Error::NotFound`.
    pub async fn collaborators(
        &self,
        ctx: &Context,
        entity: &str,
        id: &str,
    ) -> Result<Vec<CollaboratorView>> {
        let (_, model) = self.model(ctx.scope, entity).await?;
        let lens = Lens::new(ctx, &model);
        let id = parse_id(id)?;
        let row = self.live_row(&model, id).await?;
        self.check_record(ctx, &lens, &model, &row, Operation::Read)
            .await?;
        Ok(
            people::collaborators(self.db.conn(), model.definition_id, id)
                .await?
                .into_iter()
                .map(CollaboratorView::from)
                .collect(),
        )
    }

    /// Shares a record with a member (`can_edit`: to edit too), or changes their rights; or,
    /// with `can_edit` none, stops sharing it. Only someone whose own update reach covers the
    /// record may share it (a collaborator cannot pass it on).
    ///
    /// # Errors
    /// `Error::NotFound`, `Error::Forbidden`, `Error::Invalid` (not an active member).
    pub async fn share(
        &self,
        ctx: &Context,
        entity: &str,
        id: &str,
        account_id: Uuid,
        can_edit: Option<bool>,
    ) -> Result<Vec<CollaboratorView>> {
        let (_, model) = self.model(ctx.scope, entity).await?;
        let lens = Lens::new(ctx, &model);
        let id = parse_id(id)?;
        let row = self.live_row(&model, id).await?;
        self.check_record(ctx, &lens, &model, &row, Operation::Read)
            .await?;
        if !lens.covers(Operation::Update, row.owner) {
            self.audit_denial(ctx, &model, Some(id), Operation::Update, 403)
                .await;
            return Err(Error::forbidden(
                "only someone who may change the record through their role may share it",
            ));
        }
        if can_edit.is_some()
            && people::membership(self.db.conn(), ctx.scope.workspace_id, account_id)
                .await?
                .is_none_or(|m| m.deactivated_at.is_some())
        {
            return Err(Error::invalid(
                "/account_id",
                "unknown_user",
                "records are shared with active members of this workspace",
            ));
        }
        let now = self.clock.now();
        let tx = self.db.write(Sharing::Alone).await?;
        let note = match can_edit {
            Some(can_edit) => {
                people::upsert_collaborator(
                    &tx,
                    ctx.scope.workspace_id,
                    model.definition_id,
                    id,
                    &CollaboratorRow {
                        account_id,
                        can_edit,
                        added_at: now,
                        added_by: ctx.actor.account_id(),
                    },
                )
                .await?;
                serde_json::json!({"collaborator": {
                    "account_id": account_id,
                    "access": if can_edit { "edit" } else { "read" },
                }})
            }
            None => {
                if !people::delete_collaborator(&tx, model.definition_id, id, account_id).await? {
                    return Err(Error::not_found(format!("collaborator {account_id}")));
                }
                serde_json::json!({"collaborator": {"account_id": account_id, "access": "none"}})
            }
        };
        tx.insert_history(vec![self.history_row(ctx, &model, id, now, "share", note)])
            .await?;
        super::committed(tx.commit().await?)?;
        self.collaborators(ctx, entity, &id.to_string()).await
    }

    /// Gives records to a new owner in one transaction, each with a history entry: every one
    /// must be visible (else 404) and within the caller's update reach, and so must the new
    /// owner (else 403); nothing moves unless all can.
    ///
    /// # Errors
    /// `Error::NotFound`, `Error::Forbidden`, `Error::Invalid`.
    pub async fn transfer(
        &self,
        ctx: &Context,
        entity: &str,
        ids: &[String],
        owner: Uuid,
    ) -> Result<usize> {
        let (snapshot, model) = self.model(ctx.scope, entity).await?;
        let lens = Lens::new(ctx, &model);
        if ids.is_empty() || ids.len() > MAX_TRANSFER {
            return Err(Error::invalid(
                "/ids",
                "range",
                format!("a transfer moves 1–{MAX_TRANSFER} records"),
            ));
        }
        let mut problems = Vec::new();
        self.check_owner(ctx, Some(owner), "/owner", &mut problems)
            .await?;
        if !problems.is_empty() {
            return Err(Error::invalid_all("invalid transfer", problems));
        }
        self.check_new_owner(ctx, &lens, &model, Some(owner), Operation::Update, "/owner")
            .await?;
        let mut unique = Vec::new();
        let mut seen = HashSet::new();
        for text in ids {
            let id = parse_id(text)?;
            if seen.insert(id) {
                unique.push(id);
            }
        }
        let mut by_owner: Vec<(Option<Uuid>, Vec<Uuid>)> = Vec::new();
        for id in &unique {
            let row = self.live_row(&model, *id).await?;
            self.check_record(ctx, &lens, &model, &row, Operation::Update)
                .await?;
            self.check_owner_change(ctx, &lens, &model, &row).await?;
            if row.owner == Some(owner) {
                continue;
            }
            match by_owner.iter_mut().find(|(o, _)| *o == row.owner) {
                Some((_, list)) => list.push(row.id),
                None => by_owner.push((row.owner, vec![row.id])),
            }
        }
        let now = self.clock.now();
        let stamp = Stamp {
            at: now,
            by: ctx.actor.account_id(),
        };
        let tx = self.db.write(Sharing::Alone).await?;
        let mut history = Vec::new();
        for (previous, list) in &by_owner {
            // Moved only if still with the owner checked above (a concurrent transfer wins).
            let moved = rows::reassign_owner(
                &tx,
                &model.table(),
                *previous,
                Some(owner),
                Some(list),
                stamp,
            )
            .await?;
            if moved.len() != list.len() {
                return Err(Error::Conflict {
                    detail: "some records changed owner meanwhile; reload and try again".to_owned(),
                    errors: vec![FieldError::new("/ids", "busy", "owners changed meanwhile")],
                });
            }
            for id in moved {
                history.push(self.history_row(
                    ctx,
                    &model,
                    id,
                    now,
                    "update",
                    serde_json::json!({"fields": {}, "owner": {"old": previous, "new": owner}}),
                ));
            }
        }
        // After the rows are written (and so locked): an approval starting meanwhile is seen.
        let ids: Vec<Uuid> = by_owner
            .iter()
            .flat_map(|(_, list)| list.iter().copied())
            .collect();
        self.check_unlocked(&tx, ctx, &snapshot, &model, &ids)
            .await?;
        let count = history.len();
        tx.insert_history(history).await?;
        super::committed(tx.commit().await?)?;
        Ok(count)
    }

    /// Claims a record of the entity's pool for the caller, while they hold fewer records of the
    /// entity than the pool's claim limit (counted and claimed under the workspace lock, so two
    /// claims cannot both pass the limit).
    ///
    /// # Errors
    /// `Error::NotFound` (no such pool record visible), `Error::Forbidden` (no pool right, or
    /// the limit is reached), `Error::Conflict` (claimed by someone else meanwhile).
    pub async fn claim(&self, ctx: &Context, entity: &str, id: &str) -> Result<RecordView> {
        let (snapshot, model) = self.model(ctx.scope, entity).await?;
        let lens = Lens::new(ctx, &model);
        let id = parse_id(id)?;
        let Some(settings) = model.pool.clone() else {
            return Err(Error::not_found(format!("the pool of {entity}")));
        };
        let Some(me) = ctx.actor.account_id() else {
            return Err(Error::forbidden("only a person can claim records"));
        };
        let row = self.live_row(&model, id).await?;
        self.check_record(ctx, &lens, &model, &row, Operation::Read)
            .await?;
        if row.owner.is_some() {
            return Err(Error::conflict(
                "",
                "not_in_pool",
                "the record has an owner; only records in the pool can be claimed",
            ));
        }
        if !lens.pool() || lens.reach(Operation::Update) == Reach::None {
            self.audit_denial(ctx, &model, Some(id), Operation::Update, 403)
                .await;
            return Err(Error::forbidden(format!(
                "your role may not claim {entity} records"
            )));
        }
        let now = self.clock.now();
        let tx = self.db.begin().await?;
        store::workspaces::lock(&tx, ctx.scope.workspace_id, now).await?;
        let held = rows::count_owned(&tx, &model.table(), me).await?;
        if held >= i64::from(settings.claim_limit) {
            drop(tx);
            self.audit_denial(ctx, &model, Some(id), Operation::Update, 403)
                .await;
            return Err(Error::forbidden_at(
                "",
                "claim_limit",
                format!(
                    "you hold {held} {entity} records, the pool's limit is {}; release some first",
                    settings.claim_limit
                ),
            ));
        }
        let stamp = Stamp {
            at: now,
            by: Some(me),
        };
        let moved =
            rows::reassign_owner(&tx, &model.table(), None, Some(me), Some(&[id]), stamp).await?;
        if moved.is_empty() {
            return Err(Error::conflict(
                "",
                "not_in_pool",
                "someone claimed the record meanwhile",
            ));
        }
        self.check_unlocked(&tx, ctx, &snapshot, &model, &[id])
            .await?;
        let history = self.history_row(
            ctx,
            &model,
            id,
            now,
            "update",
            serde_json::json!({"fields": {}, "owner": {"old": null, "new": me}, "reason": "claim"}),
        );
        rows::insert_history(&tx, &[history]).await?;
        tx.commit().await?;
        self.get(ctx, entity, &id.to_string(), false).await
    }

    /// Puts a record the caller may change back into the entity's pool (no owner).
    ///
    /// # Errors
    /// `Error::NotFound`, `Error::Forbidden`.
    pub async fn release(&self, ctx: &Context, entity: &str, id: &str) -> Result<()> {
        let (snapshot, model) = self.model(ctx.scope, entity).await?;
        let lens = Lens::new(ctx, &model);
        let id = parse_id(id)?;
        if model.pool.is_none() {
            return Err(Error::not_found(format!("the pool of {entity}")));
        }
        let row = self.live_row(&model, id).await?;
        self.check_record(ctx, &lens, &model, &row, Operation::Read)
            .await?;
        if row.owner.is_none() {
            return Err(Error::conflict(
                "",
                "in_pool",
                "the record is in the pool already",
            ));
        }
        if !lens.covers(Operation::Update, row.owner) {
            self.audit_denial(ctx, &model, Some(id), Operation::Update, 403)
                .await;
            return Err(Error::forbidden(
                "only someone who may change the record through their role may release it",
            ));
        }
        let now = self.clock.now();
        let stamp = Stamp {
            at: now,
            by: ctx.actor.account_id(),
        };
        let tx = self.db.write(Sharing::Alone).await?;
        let moved =
            rows::reassign_owner(&tx, &model.table(), row.owner, None, Some(&[id]), stamp).await?;
        if moved.is_empty() {
            return Err(Error::conflict(
                "",
                "busy",
                "the record changed owner meanwhile",
            ));
        }
        self.check_unlocked(&tx, ctx, &snapshot, &model, &[id])
            .await?;
        tx.insert_history(vec![self.history_row(
            ctx,
            &model,
            id,
            now,
            "update",
            serde_json::json!({"fields": {}, "owner": {"old": row.owner, "new": null}, "reason": "release"}),
        )])
        .await?;
        super::committed(tx.commit().await?)?;
        Ok(())
    }
}

/// Returns to the pools the records whose owners let them rest too long, in one workspace;
/// returns how many moved. Runs as the system, each move in history.
///
/// # Errors
/// `Error::Db`.
pub async fn reclaim(
    conn: &impl store::Conn,
    snapshot: &crate::definitions::Snapshot,
    workspace_id: Uuid,
    now: DateTime<Utc>,
) -> Result<usize> {
    use crate::domain::query::{Condition, Operand, Predicate, Scalar, SystemField};
    let mut moved_total = 0;
    for model in snapshot.entities() {
        let Some(days) = model.pool.as_ref().and_then(|p| p.reclaim_after_days) else {
            continue;
        };
        let cutoff = now - chrono::Duration::days(i64::from(days));
        let resting_since = Condition::Test {
            operand: Operand::System(SystemField::UpdatedAt),
            predicate: Predicate::Lt(Scalar::Time(cutoff)),
        };
        let condition = match model.pool.as_ref().and_then(|p| p.activity_field.clone()) {
            Some(field) => {
                let operand = Operand::Field {
                    key: field,
                    value_type: crate::domain::query::ValueType::Text,
                };
                let is_datetime = model
                    .pool
                    .as_ref()
                    .and_then(|p| p.activity_field.as_deref())
                    .and_then(|k| model.field(k))
                    .is_some_and(|f| matches!(f.kind, crate::definitions::FieldKind::DateTime));
                let bound = if is_datetime {
                    super::codec::canonical_datetime(cutoff)
                } else {
                    cutoff.date_naive().format("%Y-%m-%d").to_string()
                };
                Condition::Any(vec![
                    Condition::Test {
                        operand: operand.clone(),
                        predicate: Predicate::Lt(Scalar::Text(bound)),
                    },
                    Condition::All(vec![
                        Condition::Test {
                            operand,
                            predicate: Predicate::IsEmpty(true),
                        },
                        resting_since,
                    ]),
                ])
            }
            None => resting_since,
        };
        let found = rows::owned_matching(conn, &model.table(), &condition, 5000).await?;
        let stamp = Stamp { at: now, by: None };
        let mut history = Vec::new();
        let mut owners: Vec<Uuid> = found.iter().map(|(_, owner)| *owner).collect();
        owners.sort_unstable();
        owners.dedup();
        for owner in owners {
            let ids: Vec<Uuid> = found
                .iter()
                .filter(|(_, o)| *o == owner)
                .map(|(id, _)| *id)
                .collect();
            for id in
                rows::reassign_owner(conn, &model.table(), Some(owner), None, Some(&ids), stamp)
                    .await?
            {
                history.push(rows::HistoryRow {
                    id: crate::domain::new_id(),
                    workspace_id,
                    entity_id: model.definition_id,
                    record_id: id,
                    at: now,
                    actor_id: None,
                    actor_kind: "system".to_owned(),
                    channel: "system".to_owned(),
                    operation: "update".to_owned(),
                    changes: serde_json::json!({"fields": {}, "owner": {"old": owner, "new": null},
                                                "reason": "reclaim", "after_days": days}),
                });
            }
        }
        moved_total += history.len();
        rows::insert_history(conn, &history).await?;
    }
    Ok(moved_total)
}

/// The kind of the job returning resting records to their pools.
pub const RECLAIM_JOB: &str = "records.pool_reclaim";

/// `records.pool_reclaim`: returns to the pools, in every workspace, the records resting longer
/// than their entity's `reclaim_after_days` (scheduled hourly by every worker).
#[derive(Debug)]
pub struct PoolReclaim {
    /// The definitions, to know which entities have pools.
    pub registry: std::sync::Arc<crate::definitions::Registry>,
}

#[async_trait::async_trait]
impl crate::jobs::Handler for PoolReclaim {
    fn kind(&self) -> &'static str {
        RECLAIM_JOB
    }

    async fn run(
        &self,
        ctx: &crate::jobs::JobContext,
        _job: &crate::store::jobs::JobRow,
    ) -> Result<(), crate::jobs::JobFailure> {
        let now = ctx.clock.now();
        let mut snapshots = Vec::new();
        for workspace in store::workspaces::all(ctx.db.conn()).await? {
            let snapshot = self
                .registry
                .snapshot(&ctx.db, workspace.id, workspace.definitions_generation)
                .await?;
            if snapshot.entities().iter().any(|m| m.pool.is_some()) {
                snapshots.push((workspace.id, snapshot));
            }
        }
        let tx = ctx.db.begin().await?;
        // The moves, their history and the job's completion commit together; completing first
        // makes the transaction's first statement a write, so on SQLite it waits for the write
        // lock instead of failing to upgrade a read snapshot later.
        ctx.complete_in(&tx).await?;
        let mut moved = 0;
        for (workspace_id, snapshot) in snapshots {
            moved += reclaim(&tx, &snapshot, workspace_id, now).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        if moved > 0 {
            tracing::info!(moved, "resting records returned to their pools");
        }
        Ok(())
    }
}
