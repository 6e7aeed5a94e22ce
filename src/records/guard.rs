//! The one door to records: what a caller may see and do with the records of one entity. Every
//! reader and writer in `records` asks its [`Lens`]: lists and aggregates get the scope as a
//! query condition (compiled into indexed SQL), single records are checked row by row, views
//! and history are stripped and masked, written fields are checked against the field rules.
//!
//! Statuses: a record out of the caller's read scope is 404 (its existence does not leak); a
//! visible record the caller may not change or delete is 403; a hidden field is treated as if
//! it did not exist (422 `unknown_field` when written or queried); writing a read-only field,
//! or filtering, sorting or grouping by a masked one, is 403 naming the field.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Context, Records, codec};
use crate::access::{self, FieldRule, Grant, Policy, Reach};
use crate::audit::{self, Event};
use crate::definitions::EntityModel;
use crate::domain::query::Condition;
use crate::error::{Error, FieldError, Result};
use crate::store::people;
use crate::store::records::RecordRow;

/// An operation on records, for checks and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Create.
    Create,
    /// Read.
    Read,
    /// Change.
    Update,
    /// Delete or restore.
    Delete,
}

impl Operation {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Read => "read",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// What one caller may do with one entity's records.
#[derive(Debug, Clone)]
pub struct Lens<'a> {
    policy: Option<&'a Policy>,
    grant: Option<Grant>,
    entity_id: Uuid,
    /// Whether the entity has a pool the caller may see.
    pool: bool,
    /// Whether records may be shared with the caller (false once a lookup found none).
    shares: bool,
    /// The fields that are not plainly visible and writable to the caller, with their rules
    /// (empty for most callers: then views and inputs pass untouched).
    restricted: Vec<(String, FieldRule)>,
    /// Whether the caller sees values of fields the definition hides.
    pub is_admin: bool,
}

impl<'a> Lens<'a> {
    /// The lens of `ctx` on `model` (the system, with no policy, may do everything).
    pub fn new(ctx: &'a Context, model: &EntityModel) -> Self {
        let policy = ctx.policy.as_deref();
        let grant = policy.map(|p| p.grant(&model.key));
        let mut lens = Self {
            policy,
            pool: model.pool.is_some() && grant.as_ref().is_none_or(|g| g.pool),
            grant,
            entity_id: model.definition_id,
            is_admin: policy.is_none_or(|p| p.is_admin),
            shares: true,
            restricted: Vec::new(),
        };
        if lens.grant.is_some() {
            lens.restricted = model
                .fields
                .iter()
                .map(|f| (f.key.clone(), lens.field(model, &f.key)))
                .filter(|(_, rule)| *rule != FieldRule::Visible)
                .collect();
        }
        lens
    }

    /// The reach of an operation.
    pub fn reach(&self, operation: Operation) -> Reach {
        match &self.grant {
            None => Reach::All,
            Some(grant) => match operation {
                Operation::Create => grant.create,
                Operation::Read => grant.read,
                Operation::Update => grant.update,
                Operation::Delete => grant.delete,
            },
        }
    }

    /// The rule for a field (the definition's own `x-hidden` hides it from non-admins too).
    pub fn field(&self, model: &EntityModel, key: &str) -> FieldRule {
        if model.field(key).is_some_and(|f| f.hidden) && !self.is_admin {
            return FieldRule::Hidden;
        }
        self.grant
            .as_ref()
            .map_or(FieldRule::Visible, |g| g.field(key))
    }

    /// The condition selecting the records `operation` reaches (`None`: all of them).
    pub fn condition(&self, operation: Operation) -> Option<Condition> {
        let policy = self.policy?;
        policy.condition(
            self.reach(operation),
            self.entity_id,
            operation == Operation::Update,
            operation == Operation::Read && self.pool,
            self.shares,
        )
    }

    /// Whether `operation`'s reach covers records owned by `owner` (sharing aside); the pool
    /// is readable by whoever is granted it.
    pub fn covers(&self, operation: Operation, owner: Option<Uuid>) -> bool {
        if owner.is_none() && operation == Operation::Read && self.pool {
            return self.reach(Operation::Read) != Reach::None;
        }
        self.policy
            .is_none_or(|p| p.covers(self.reach(operation), owner))
    }

    /// Whether the caller may see and claim the entity's pool.
    pub fn pool(&self) -> bool {
        self.pool
    }

    /// The caller's account, when a person acts.
    pub fn account(&self) -> Option<Uuid> {
        self.policy.map(|p| p.account_id)
    }

    /// A record as this caller sees it: hidden fields removed, masked ones masked.
    pub fn show(&self, model: &EntityModel, mut view: super::RecordView) -> super::RecordView {
        let rules: Vec<&(String, FieldRule)> = self
            .restricted
            .iter()
            .filter(|(_, rule)| *rule != FieldRule::ReadOnly)
            .collect();
        if rules.is_empty() {
            return view;
        }
        let strip = |map: &mut Map<String, Value>| {
            for (key, rule) in rules.iter().copied() {
                if *rule == FieldRule::Hidden {
                    map.remove(key);
                } else if rule.masks()
                    && let Some(value) = map.get_mut(key)
                {
                    *value = access::mask(value, text_like(model, key));
                }
            }
        };
        strip(&mut view.fields);
        if let Some(totals) = view.totals.as_mut() {
            for (key, rule) in rules.iter().copied() {
                if *rule == FieldRule::Hidden || rule.masks() {
                    totals.remove(key);
                }
            }
        }
        if let Some(unconverted) = view.unconverted.as_mut() {
            strip(unconverted);
        }
        view
    }

    /// A history entry's changes as this caller sees them: in every field-keyed part (the
    /// changed fields, the values that did not convert) hidden fields are removed and masked
    /// ones masked.
    pub fn show_changes(&self, model: &EntityModel, mut changes: Value) -> Value {
        if self.grant.is_none() {
            return changes;
        }
        for part in ["fields", "unconverted"] {
            let Some(fields) = changes.get_mut(part).and_then(Value::as_object_mut) else {
                continue;
            };
            fields.retain(|key, _| {
                // Fields no longer defined are shown to admins only, like their values.
                self.is_admin
                    || (model.field(key).is_some() && self.field(model, key) != FieldRule::Hidden)
            });
            for (key, change) in fields.iter_mut() {
                if !self.field(model, key).masks() {
                    continue;
                }
                let text_like = text_like(model, key);
                match change.as_object_mut() {
                    Some(sides) => {
                        for side in sides.values_mut() {
                            *side = access::mask(side, text_like);
                        }
                    }
                    None => *change = access::mask(change, text_like),
                }
            }
        }
        changes
    }

    /// Checks the fields a write sets: hidden ones are unknown (422), read-only ones refused
    /// (403) unless unchanged; a masked field sent back as shown is dropped (the form echoed
    /// it). Returns the input to apply.
    pub fn check_input<'i>(
        &self,
        model: &EntityModel,
        input: &'i Map<String, Value>,
        current: Option<&Map<String, Value>>,
        prefix: &str,
        problems: &mut Vec<FieldError>,
        refused: &mut Vec<FieldError>,
    ) -> std::borrow::Cow<'i, Map<String, Value>> {
        if self.restricted.is_empty()
            || !input
                .keys()
                .any(|key| self.restricted.iter().any(|(k, _)| k == key))
        {
            return std::borrow::Cow::Borrowed(input);
        }
        let mut out = Map::new();
        for (key, value) in input {
            let pointer = format!("{prefix}/fields/{}", codec::escape(key));
            let shown = || {
                current
                    .and_then(|doc| doc.get(key))
                    .zip(model.field(key))
                    .map_or(Value::Null, |(stored, field)| codec::decode(field, stored))
            };
            match self.field(model, key) {
                FieldRule::Hidden if model.field(key).is_some() => {
                    problems.push(FieldError::new(
                        pointer,
                        "unknown_field",
                        format!("{:?} has no field {key:?}", model.key),
                    ));
                    continue;
                }
                FieldRule::ReadOnly if current.is_some() && *value == shown() => continue,
                FieldRule::ReadOnly | FieldRule::MaskedReadOnly => {
                    refused.push(FieldError::new(
                        pointer,
                        "read_only_field",
                        format!("your role may not change the field {key:?}"),
                    ));
                    continue;
                }
                FieldRule::Masked
                    if current.is_some()
                        && *value == access::mask(&shown(), text_like(model, key)) =>
                {
                    continue;
                }
                _ => {}
            }
            out.insert(key.clone(), value.clone());
        }
        std::borrow::Cow::Owned(out)
    }
}

/// Whether a field holds free text, which masking shortens rather than blanks.
fn text_like(model: &EntityModel, key: &str) -> bool {
    use crate::definitions::FieldKind;
    model.field(key).is_some_and(|f| {
        matches!(
            f.kind,
            FieldKind::Text
                | FieldKind::LongText
                | FieldKind::Email
                | FieldKind::Phone
                | FieldKind::Url
        )
    })
}

/// The refusal of a write that sets fields the caller's role may not change.
pub fn refused(model: &EntityModel, errors: Vec<FieldError>) -> Error {
    Error::Forbidden {
        detail: format!("your role may not change some fields of {}", model.key),
        errors,
    }
}

impl Records<'_> {
    /// The lens of `ctx` on `model` for a list or aggregate: when the caller's read is scoped,
    /// one indexed lookup tells whether anything of the entity is shared with them, so the
    /// scope can be a plain owner test (which indexes serve best) when nothing is.
    pub(super) async fn list_lens<'c>(
        &self,
        ctx: &'c Context,
        model: &EntityModel,
    ) -> Result<Lens<'c>> {
        let mut lens = Lens::new(ctx, model);
        if let Some(account) = lens.account()
            && lens.reach(Operation::Read) != Reach::All
        {
            lens.shares = people::has_shares(self.db.conn(), model.definition_id, account).await?;
        }
        Ok(lens)
    }

    /// Records a refusal in the audit log.
    pub(super) async fn audit_denial(
        &self,
        ctx: &Context,
        model: &EntityModel,
        record: Option<Uuid>,
        operation: Operation,
        status: u16,
    ) {
        audit::record(
            self.db,
            self.clock.now(),
            Event {
                workspace_id: Some(ctx.scope.workspace_id),
                account_id: ctx.actor.account_id(),
                kind: "access.denied",
                detail: serde_json::json!({
                    "entity": model.key,
                    "record": record,
                    "operation": operation.name(),
                    "status": status,
                }),
            },
        )
        .await;
    }

    /// Whether `ctx` may read the live record `id` of `entity` (asked on someone else's behalf,
    /// e.g. before they are mentioned on it: not audited as a denial).
    ///
    /// # Errors
    /// `Error::NotFound` (entity), `Error::Db`.
    pub async fn can_read(&self, ctx: &Context, entity: &str, id: Uuid) -> Result<bool> {
        self.can(ctx, entity, id, Operation::Read).await
    }

    /// Whether `ctx` may change the live record `id` of `entity` (asked to draw a page's
    /// actions: not audited as a denial).
    ///
    /// # Errors
    /// `Error::NotFound` (entity), `Error::Db`.
    pub async fn can_update(&self, ctx: &Context, entity: &str, id: Uuid) -> Result<bool> {
        self.can(ctx, entity, id, Operation::Update).await
    }

    /// Whether `ctx` may read, or change, the live record `id` (unaudited).
    async fn can(
        &self,
        ctx: &Context,
        entity: &str,
        id: Uuid,
        operation: Operation,
    ) -> Result<bool> {
        let (_, model) = self.model(ctx.scope, entity).await?;
        let lens = Lens::new(ctx, &model);
        let Some(row) = crate::store::records::find(self.db.conn(), &model.table(), id).await?
        else {
            return Ok(false);
        };
        if row.deleted_at.is_some() || lens.reach(Operation::Read) == Reach::None {
            return Ok(false);
        }
        let Some(account) = lens.account() else {
            return Ok(true);
        };
        if lens.covers(Operation::Read, row.owner) && lens.covers(operation, row.owner) {
            return Ok(true);
        }
        let shared =
            people::shared_with(self.db.conn(), model.definition_id, row.id, account).await?;
        Ok(match operation {
            Operation::Read => shared.is_some(),
            Operation::Update => shared == Some(true),
            Operation::Create | Operation::Delete => false,
        })
    }

    /// Checks that the caller may change the live record `id` of `entity` (acting on it without
    /// writing it, such as emailing from it): out of read scope 404, read-only 403.
    ///
    /// # Errors
    /// `Error::NotFound`, `Error::Forbidden`, `Error::Db`.
    pub async fn check_may_update(&self, ctx: &Context, entity: &str, id: Uuid) -> Result<()> {
        let (_, model) = self.model(ctx.scope, entity).await?;
        let lens = Lens::new(ctx, &model);
        let row = crate::store::records::find(self.db.conn(), &model.table(), id)
            .await?
            .filter(|row| row.deleted_at.is_none())
            .ok_or_else(|| super::record_not_found(&id.to_string()))?;
        self.check_record(ctx, &lens, &model, &row, Operation::Update)
            .await
    }

    /// Checks that the caller may do `operation` on `row`: out of read scope is 404, readable
    /// but not allowed is 403; both are audited.
    ///
    /// # Errors
    /// `Error::NotFound`, `Error::Forbidden`.
    pub(super) async fn check_record(
        &self,
        ctx: &Context,
        lens: &Lens<'_>,
        model: &EntityModel,
        row: &RecordRow,
        operation: Operation,
    ) -> Result<()> {
        let Some(account) = lens.account() else {
            return Ok(());
        };
        let readable_by_owner = lens.covers(Operation::Read, row.owner);
        let allowed_by_owner = lens.covers(operation, row.owner);
        if readable_by_owner && allowed_by_owner {
            return Ok(());
        }
        let shared = if lens.reach(Operation::Read) == Reach::None {
            None
        } else {
            people::shared_with(self.db.conn(), model.definition_id, row.id, account).await?
        };
        let readable =
            lens.reach(Operation::Read) != Reach::None && (readable_by_owner || shared.is_some());
        if !readable {
            self.audit_denial(ctx, model, Some(row.id), operation, 404)
                .await;
            return Err(super::record_not_found(&row.id.to_string()));
        }
        let allowed = match operation {
            Operation::Read => true,
            Operation::Update => allowed_by_owner || shared == Some(true),
            Operation::Create | Operation::Delete => allowed_by_owner,
        };
        if allowed {
            return Ok(());
        }
        self.audit_denial(ctx, model, Some(row.id), operation, 403)
            .await;
        Err(Error::forbidden(format!(
            "your role may not {} this {} record",
            operation.name(),
            model.key
        )))
    }

    /// Checks that the caller's own update reach covers the record's current owner: changing
    /// the owner is theirs to do, not a collaborator's (who could otherwise take it over).
    ///
    /// # Errors
    /// `Error::Forbidden` at `/owner`.
    pub(super) async fn check_owner_change(
        &self,
        ctx: &Context,
        lens: &Lens<'_>,
        model: &EntityModel,
        row: &RecordRow,
    ) -> Result<()> {
        if lens.covers(Operation::Update, row.owner) {
            return Ok(());
        }
        self.audit_denial(ctx, model, Some(row.id), Operation::Update, 403)
            .await;
        Err(Error::forbidden_at(
            "/owner",
            "owner_out_of_scope",
            "only someone whose role reaches the record's owner may hand the record over",
        ))
    }

    /// Checks that the caller may give a record to `owner` by `operation` (create: the create
    /// reach; a change of owner: the update reach).
    ///
    /// # Errors
    /// `Error::Forbidden` at `pointer`.
    pub(super) async fn check_new_owner(
        &self,
        ctx: &Context,
        lens: &Lens<'_>,
        model: &EntityModel,
        owner: Option<Uuid>,
        operation: Operation,
        pointer: &str,
    ) -> Result<()> {
        if lens.account().is_none() || lens.covers(operation, owner) {
            return Ok(());
        }
        self.audit_denial(ctx, model, None, operation, 403).await;
        Err(Error::forbidden_at(
            pointer,
            "owner_out_of_scope",
            match owner {
                Some(_) => "your role may not give records to this person".to_owned(),
                None => "your role may not leave records without an owner".to_owned(),
            },
        ))
    }

    /// Refuses an operation the caller's role does not grant on the entity at all (403).
    ///
    /// # Errors
    /// `Error::Forbidden`.
    pub(super) async fn check_entity(
        &self,
        ctx: &Context,
        lens: &Lens<'_>,
        model: &EntityModel,
        operation: Operation,
    ) -> Result<()> {
        if lens.reach(operation) != Reach::None {
            return Ok(());
        }
        self.audit_denial(ctx, model, None, operation, 403).await;
        Err(Error::forbidden(format!(
            "your role may not {} {} records",
            operation.name(),
            model.key
        )))
    }
}
