//! Ownership and sharing of records: bulk owner transfer, and collaborators (people a record is
//! shared with, to read or to edit). Both are checked by the guard and written to history.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Context, Lens, Operation, Records, parse_id, record_not_found};
use crate::error::{Error, FieldError, Result};
use crate::store::Sharing;
use crate::store::people::{self, CollaboratorRow};
use crate::store::records::{self as rows, Stamp};

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
        let row = rows::find(self.db.conn(), &model.table(), id)
            .await?
            .filter(|r| r.deleted_at.is_none())
            .ok_or_else(|| record_not_found(&id.to_string()))?;
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
        let row = rows::find(self.db.conn(), &model.table(), id)
            .await?
            .filter(|r| r.deleted_at.is_none())
            .ok_or_else(|| record_not_found(&id.to_string()))?;
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
        let (_, model) = self.model(ctx.scope, entity).await?;
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
            let row = rows::find(self.db.conn(), &model.table(), *id)
                .await?
                .filter(|r| r.deleted_at.is_none())
                .ok_or_else(|| record_not_found(&id.to_string()))?;
            self.check_record(ctx, &lens, &model, &row, Operation::Update)
                .await?;
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
        let count = history.len();
        tx.insert_history(history).await?;
        super::committed(tx.commit().await?)?;
        Ok(count)
    }
}
