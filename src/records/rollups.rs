//! Rollup fields: a parent's count, sum, average, minimum or maximum over the live records of a
//! child entity that refer to it (customer.total_collected = sum of payment.amount). Kept exact
//! and current inside every child write's transaction: a change moves a child's contribution
//! from its old parent (and value) to its new one, incrementally (count and sum, and average
//! from its kept count and sum); a minimum or maximum whose extreme leaves is recomputed for
//! that one parent through the reference's index. The parent is locked while it changes, its
//! formulas follow, it gets a new version (no history row: a derived change), and a parent
//! that is itself rolled up passes the change on, up to [`MAX_DEPTH`] levels.

use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::Records;
use super::scripting::ScriptWorld;
use crate::definitions::entity::{Computed, RollupSpec};
use crate::definitions::{EntityModel, Field, FieldKind, Snapshot};
use crate::domain::query::MetricOp;
use crate::error::{Error, Result};
use crate::store::records as rows;
use crate::store::{self, Conn};

/// The key under which a parent keeps the count and sum behind each of its rollups.
pub const STATE: &str = "_rollup";

/// Levels a change travels up through parents that are themselves rolled up.
pub const MAX_DEPTH: usize = 5;

/// A rollup of `parent` over the entity a change happened in.
#[derive(Debug, Clone)]
pub struct Target {
    /// The entity holding the rollup field.
    pub parent: Arc<EntityModel>,
    /// The rollup field.
    pub field: String,
    /// What it aggregates.
    pub spec: RollupSpec,
}

/// A record's stored document before and after a change (`None`: not live).
pub type Change = (Option<Map<String, Value>>, Option<Map<String, Value>>);

/// Whether `model` has rollup fields.
pub fn has_rollups(model: &EntityModel) -> bool {
    model
        .fields
        .iter()
        .any(|f| matches!(f.computed, Some(Computed::Rollup(_))))
}

/// The rollups (of any entity) over records of `child`.
pub fn targets(snapshot: &Snapshot, child: &str) -> Vec<Target> {
    let mut found = Vec::new();
    if !snapshot.is_rolled_up(child) {
        return found;
    }
    for parent in snapshot.entities() {
        for field in &parent.fields {
            if let Some(Computed::Rollup(spec)) = &field.computed
                && spec.entity == child
            {
                found.push(Target {
                    parent: parent.clone(),
                    field: field.key.clone(),
                    spec: spec.clone(),
                });
            }
        }
    }
    found
}

/// A child's stored value as an exact number (money in minor units, floats through their
/// shortest decimal form), or `None` when empty or not a number.
fn number(value: Option<&Value>) -> Option<Decimal> {
    match value? {
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(Decimal::from(i)),
            None => n.as_f64().and_then(Decimal::from_f64),
        },
        _ => None,
    }
}

/// The order of two stored values of one field (numbers numerically, text by code point).
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (number(Some(a)), number(Some(b))) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a
            .as_str()
            .unwrap_or_default()
            .cmp(b.as_str().unwrap_or_default()),
    }
}

/// Whether `value` is a new extreme for a minimum or maximum holding `current`.
fn beats(op: MetricOp, value: &Value, current: Option<&Value>) -> bool {
    current.is_none_or(|current| {
        let order = compare(value, current);
        if op == MetricOp::Min {
            order.is_lt()
        } else {
            order.is_gt()
        }
    })
}

/// A child's contribution to one rollup: the parent it refers to and the value it adds.
#[derive(Debug, Clone, PartialEq)]
struct Share {
    parent: Uuid,
    value: Option<Value>,
}

fn share(spec: &RollupSpec, doc: Option<&Map<String, Value>>) -> Option<Share> {
    let doc = doc?;
    let parent = doc
        .get(&spec.via)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())?;
    let value = spec
        .field
        .as_ref()
        .and_then(|f| doc.get(f))
        .filter(|v| !v.is_null())
        .cloned();
    Some(Share { parent, value })
}

/// The kept state of one rollup: children counted, values counted, their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct State {
    children: i64,
    values: i64,
    sum: Decimal,
}

/// What a kept state was computed under: the rollup's definition and the kind (with currency)
/// of the values it adds up. A state kept under anything else is not trusted (it is recomputed
/// from scratch), so a changed rollup or a conversion of the children's values never mixes
/// units, while a publish that changes neither (a label) keeps every state.
pub fn fingerprint(spec: &RollupSpec, child: &EntityModel) -> String {
    let kind = spec
        .field
        .as_deref()
        .and_then(|key| child.field(key))
        .map(|field| match &field.kind {
            FieldKind::Money { currency, .. } => format!("money {currency}"),
            other => other.name().to_owned(),
        })
        .unwrap_or_default();
    format!(
        "{}:{}:{}:{}:{kind}",
        spec.entity,
        spec.via,
        spec.op.name(),
        spec.field.as_deref().unwrap_or_default()
    )
}

fn too_large() -> Error {
    Error::invalid(
        "",
        "range",
        "a rollup over these values would be too large to keep exactly",
    )
}

impl State {
    fn read(doc: &Map<String, Value>, field: &str, fingerprint: &str) -> Option<Self> {
        let state = doc.get(STATE)?.get(field)?;
        if state.get("d").and_then(Value::as_str) != Some(fingerprint) {
            return None;
        }
        Some(Self {
            children: state.get("c")?.as_i64()?,
            values: state.get("n")?.as_i64()?,
            sum: state.get("s")?.as_str()?.parse().ok()?,
        })
    }

    fn write(self, doc: &mut Map<String, Value>, field: &str, fingerprint: &str) {
        let entry = doc
            .entry(STATE.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(map) = entry.as_object_mut() {
            map.insert(
                field.to_owned(),
                json!({"c": self.children, "n": self.values,
                       "s": self.sum.normalize().to_string(), "d": fingerprint}),
            );
        }
    }

    fn add(&mut self, value: Option<&Value>, sign: i64) -> Result<()> {
        self.children += sign;
        if let Some(n) = number(value) {
            self.values += sign;
            self.sum = if sign >= 0 {
                self.sum.checked_add(n)
            } else {
                self.sum.checked_sub(n)
            }
            .ok_or_else(too_large)?;
        }
        Ok(())
    }
}

/// The state and extreme of a rollup computed from all its children.
fn from_scratch(
    spec: &RollupSpec,
    children: &[Map<String, Value>],
) -> Result<(State, Option<Value>)> {
    let mut state = State::default();
    let mut extreme: Option<Value> = None;
    for doc in children {
        let value = spec
            .field
            .as_ref()
            .and_then(|f| doc.get(f))
            .filter(|v| !v.is_null());
        state.add(value, 1)?;
        if let Some(value) = value
            && beats(spec.op, value, extreme.as_ref())
        {
            extreme = Some(value.clone());
        }
    }
    Ok((state, extreme))
}

/// The stored value of a rollup field from its state (or extreme, for min and max).
fn stored_value(
    field: &Field,
    op: MetricOp,
    state: State,
    extreme: Option<Value>,
) -> Result<Option<Value>> {
    let decimal = match op {
        MetricOp::Count => Decimal::from(state.children),
        MetricOp::Sum => state.sum,
        MetricOp::Avg if state.values == 0 => return Ok(None),
        MetricOp::Avg => state.sum / Decimal::from(state.values),
        MetricOp::Min | MetricOp::Max => return Ok(extreme),
    };
    Ok(Some(match &field.kind {
        FieldKind::Money { .. } | FieldKind::Integer => Value::from(
            decimal
                .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                .to_i64()
                .ok_or_else(|| Error::invalid("", "range", "a rollup is too large"))?,
        ),
        _ => decimal
            .to_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
    }))
}

/// What a rollup needs to know about one parent's change.
struct Move<'a> {
    target: &'a Target,
    removed: Option<Option<Value>>,
    added: Option<Option<Value>>,
}

impl Records<'_> {
    /// Brings the rollups over `child` up to date after its records changed (`changes`: each
    /// record's stored document before and after, `None` when it was not live), inside the
    /// write's transaction; parents that change pass it on, and formulas looking them up are
    /// scheduled for a recompute. A parent formula that fails is left empty (and logged): a
    /// child's write is never refused for its parent's formulas.
    ///
    /// # Errors
    /// `Error::Db`; `Error::Invalid` when a sum would leave the exact range.
    pub(crate) async fn roll_up(
        &self,
        tx: &store::Write,
        snapshot: &Snapshot,
        world: &ScriptWorld,
        child: &EntityModel,
        changes: Vec<Change>,
    ) -> Result<()> {
        if !snapshot.is_rolled_up(&child.key) {
            return Ok(());
        }
        // A parent's rules bind its own writers, not the writers of its children.
        let world = world.clone().without_rules();
        let world = &world;
        let mut level = vec![(child.key.clone(), changes)];
        for _ in 0..MAX_DEPTH {
            let mut next: BTreeMap<String, Vec<Change>> = BTreeMap::new();
            for (entity, changes) in level {
                let targets = targets(snapshot, &entity);
                let Some(child_model) = snapshot.entity(&entity) else {
                    continue;
                };
                if targets.is_empty() {
                    continue;
                }
                // Per parent (in id order, so concurrent writers lock alike), its moves.
                let mut per_parent: BTreeMap<(String, Uuid), Vec<Move<'_>>> = BTreeMap::new();
                for (old, new) in &changes {
                    for target in &targets {
                        let before = share(&target.spec, old.as_ref());
                        let after = share(&target.spec, new.as_ref());
                        if before == after {
                            continue;
                        }
                        if let Some(before) = before {
                            per_parent
                                .entry((target.parent.key.clone(), before.parent))
                                .or_default()
                                .push(Move {
                                    target,
                                    removed: Some(before.value),
                                    added: None,
                                });
                        }
                        if let Some(after) = after {
                            per_parent
                                .entry((target.parent.key.clone(), after.parent))
                                .or_default()
                                .push(Move {
                                    target,
                                    removed: None,
                                    added: Some(after.value),
                                });
                        }
                    }
                }
                for ((parent_key, parent_id), moves) in per_parent {
                    let Some(parent) = snapshot.entity(&parent_key) else {
                        continue;
                    };
                    let Some(row) = rows::find_for_update(tx, &parent.table(), parent_id).await?
                    else {
                        continue;
                    };
                    // An erased record keeps nothing but its tombstone.
                    if super::erasure::is_erased(&row.doc) {
                        continue;
                    }
                    let mut doc = row.doc.clone();
                    for (field, field_moves) in group_by_field(&moves) {
                        self.apply(
                            tx,
                            &parent,
                            &child_model,
                            &mut doc,
                            field,
                            &field_moves,
                            parent_id,
                        )
                        .await?;
                    }
                    let mut problems = Vec::new();
                    self.derive_in(
                        tx,
                        snapshot,
                        &parent,
                        &mut doc,
                        None,
                        world,
                        "",
                        &mut problems,
                    )
                    .await?;
                    if !problems.is_empty() {
                        tracing::warn!(entity = %parent.key, record = %parent_id, ?problems,
                            "a formula of a rolled-up record failed; its field is left empty");
                    }
                    if doc == row.doc {
                        continue;
                    }
                    rows::set_derived_version(tx, &parent.table(), parent_id, doc.clone()).await?;
                    if snapshot.is_looked_up(&parent.key) {
                        super::recompute::schedule_lookups_of(
                            tx,
                            self.clock,
                            world.workspace_id,
                            snapshot,
                            &parent,
                            parent_id,
                        )
                        .await?;
                    }
                    let live = row.deleted_at.is_none();
                    next.entry(parent_key)
                        .or_default()
                        .push((live.then_some(row.doc), live.then_some(doc)));
                }
            }
            if next.is_empty() {
                return Ok(());
            }
            level = next.into_iter().collect();
        }
        // Chains deeper than this are refused at publish; should one remain, the entities
        // still to update are recomputed from scratch in the background.
        for (entity, _) in level {
            if let Some(model) = snapshot.entity(&entity) {
                for target in targets(snapshot, &model.key) {
                    super::recompute::schedule(
                        tx,
                        self.clock,
                        world.workspace_id,
                        &target.parent,
                        "rollup chain deeper than 5 levels",
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Applies one rollup field's moves to a parent's document.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        tx: &store::Write,
        parent: &EntityModel,
        child: &EntityModel,
        doc: &mut Map<String, Value>,
        field_key: &str,
        moves: &[&Move<'_>],
        parent_id: Uuid,
    ) -> Result<()> {
        let Some(field) = parent.field(field_key) else {
            return Ok(());
        };
        let Some(target) = moves.first().map(|m| m.target) else {
            return Ok(());
        };
        let spec = &target.spec;
        let mark = fingerprint(spec, child);
        let state = State::read(doc, field_key, &mark);
        let mut extreme = doc.get(field_key).filter(|v| !v.is_null()).cloned();
        let extreme_left = moves.iter().any(|m| {
            matches!(&m.removed, Some(Some(v)) if extreme.as_ref().is_some_and(|e| compare(v, e).is_eq()))
        });
        let needs_scan =
            state.is_none() || (matches!(spec.op, MetricOp::Min | MetricOp::Max) && extreme_left);
        let state = if needs_scan {
            // The parent's children as this transaction sees them (the change included).
            let children = rows::referring_docs(tx, &child.table(), &spec.via, parent_id).await?;
            let (state, found) = from_scratch(spec, &children)?;
            extreme = found;
            state
        } else {
            let mut state = state.unwrap_or_default();
            for m in moves {
                if let Some(removed) = &m.removed {
                    state.add(removed.as_ref(), -1)?;
                }
                if let Some(added) = &m.added {
                    state.add(added.as_ref(), 1)?;
                    if let Some(value) = added
                        && beats(spec.op, value, extreme.as_ref())
                    {
                        extreme = Some(value.clone());
                    }
                }
            }
            state
        };
        state.write(doc, field_key, &mark);
        match stored_value(field, spec.op, state, extreme)? {
            Some(value) => doc.insert(field_key.to_owned(), value),
            None => doc.remove(field_key),
        };
        Ok(())
    }
}

/// The rollups of a new record, which no record refers to yet: counts and sums are zero (the
/// first child's write computes the kept state).
pub fn initial(model: &EntityModel, doc: &mut Map<String, Value>) {
    for field in &model.fields {
        let Some(Computed::Rollup(spec)) = &field.computed else {
            continue;
        };
        if let Ok(Some(value)) = stored_value(field, spec.op, State::default(), None) {
            doc.insert(field.key.clone(), value);
        }
    }
}

/// Computes every rollup field of one parent record from its children (recomputes, restores,
/// imports); `entity_of` gives a child entity's model.
///
/// # Errors
/// `Error::Db`; `Error::Invalid` when a sum leaves the exact range.
pub(crate) async fn fill(
    conn: &impl Conn,
    entity_of: &(dyn Fn(&str) -> Option<Arc<EntityModel>> + Sync),
    parent: &EntityModel,
    parent_id: Uuid,
    doc: &mut Map<String, Value>,
) -> Result<()> {
    for field in &parent.fields {
        let Some(Computed::Rollup(spec)) = &field.computed else {
            continue;
        };
        let Some(child) = entity_of(&spec.entity) else {
            continue;
        };
        let children = rows::referring_docs(conn, &child.table(), &spec.via, parent_id).await?;
        let (state, extreme) = from_scratch(spec, &children)?;
        state.write(doc, &field.key, &fingerprint(spec, &child));
        match stored_value(field, spec.op, state, extreme)? {
            Some(value) => doc.insert(field.key.clone(), value),
            None => doc.remove(&field.key),
        };
    }
    Ok(())
}

fn group_by_field<'m>(moves: &'m [Move<'m>]) -> BTreeMap<&'m str, Vec<&'m Move<'m>>> {
    let mut grouped: BTreeMap<&str, Vec<&Move<'_>>> = BTreeMap::new();
    for m in moves {
        grouped.entry(m.target.field.as_str()).or_default().push(m);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_scratch_counts_sums_and_finds_extremes() {
        let spec = RollupSpec {
            entity: "payment".to_owned(),
            via: "customer".to_owned(),
            op: MetricOp::Max,
            field: Some("amount".to_owned()),
        };
        let docs: Vec<Map<String, Value>> =
            [json!({"amount": 150}), json!({}), json!({"amount": 99})]
                .into_iter()
                .filter_map(|v| v.as_object().cloned())
                .collect();
        let (state, extreme) = from_scratch(&spec, &docs).expect("in range");
        assert_eq!((state.children, state.values), (3, 2));
        assert_eq!(state.sum, Decimal::from(249));
        assert_eq!(extreme, Some(json!(150)));
        let mut incremental = State::default();
        for (value, sign) in [
            (Some(json!(150)), 1),
            (None, 1),
            (Some(json!(99)), 1),
            (Some(json!(0.1)), 1),
            (Some(json!(0.1)), -1),
        ] {
            incremental.add(value.as_ref(), sign).expect("in range");
        }
        let mut huge = State::default();
        huge.add(Some(&json!(6e28)), 1).expect("in range");
        assert!(
            huge.add(Some(&json!(6e28)), 1).is_err(),
            "overflow is an error"
        );
        assert_eq!(incremental, state);
    }
}
