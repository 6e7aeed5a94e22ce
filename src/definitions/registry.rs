//! The live per-workspace registry of published definitions.
//!
//! Each workspace's published set is an immutable snapshot behind an `Arc`, replaced whole when
//! its generation moves: a publish in this process swaps it at once, and every request checks the
//! workspace's generation (read with the workspace row anyway), so a publish by another process
//! is in force from the next request on.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;
use uuid::Uuid;

use super::Kind;
use super::entity::{EntityModel, FieldKind, OnDelete};
use crate::error::Result;
use crate::store::{self, Db};
use crate::workflows::Workflow;

/// One published definition.
#[derive(Debug, Clone)]
pub struct Published {
    /// The definition's id.
    pub definition_id: Uuid,
    /// Its version number.
    pub version: i32,
    /// Its document.
    pub document: Arc<Value>,
}

/// A workspace's published definitions at one generation.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The workspace generation this snapshot reflects.
    pub generation: i64,
    definitions: HashMap<(Kind, String), Published>,
    entities: HashMap<String, Arc<EntityModel>>,
    /// Indexes still being built (or failed): their constraints are not in force yet.
    pending_indexes: std::collections::HashSet<String>,
    /// Entities other entities roll up (so their writes update parents).
    rolled_up: std::collections::HashSet<String>,
    /// Entities formulas look up (so their changes schedule recomputes).
    looked_up: std::collections::HashSet<String>,
    /// Published workflows, compiled, by key.
    workflows: HashMap<String, Arc<Workflow>>,
    /// Enabled workflows that record writes start, by entity.
    watchers: HashMap<String, Vec<Arc<Workflow>>>,
    /// Enabled webhook subscriptions, by entity (`*`: every entity).
    webhooks: HashMap<String, Vec<Arc<store::webhooks::WebhookRow>>>,
}

/// A reference field of one entity pointing at another.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// The entity holding the field.
    pub entity: Arc<EntityModel>,
    /// The reference field.
    pub field: String,
    /// What a delete of the target does.
    pub on_delete: OnDelete,
}

impl Snapshot {
    /// The enabled webhook subscriptions a write of `entity` notifies.
    pub fn webhooks_on(&self, entity: &str) -> Vec<&Arc<store::webhooks::WebhookRow>> {
        let mut found: Vec<&Arc<store::webhooks::WebhookRow>> = Vec::new();
        for key in [entity, "*"] {
            if let Some(list) = self.webhooks.get(key) {
                found.extend(list);
            }
        }
        found
    }

    /// The published definition of `kind` and `key`.
    pub fn get(&self, kind: Kind, key: &str) -> Option<&Published> {
        self.definitions.get(&(kind, key.to_owned()))
    }

    /// Whether the database index `name` is built and in force.
    pub fn index_ready(&self, name: &str) -> bool {
        !self.pending_indexes.contains(name)
    }

    /// Whether some entity's rollup aggregates records of `entity` (answered without a scan:
    /// every record write asks).
    pub fn is_rolled_up(&self, entity: &str) -> bool {
        self.rolled_up.contains(entity)
    }

    /// Whether some entity's formula looks up records of `entity`.
    pub fn is_looked_up(&self, entity: &str) -> bool {
        self.looked_up.contains(entity)
    }

    /// The published, compiled workflow `key`.
    pub fn workflow(&self, key: &str) -> Option<Arc<Workflow>> {
        self.workflows.get(key).cloned()
    }

    /// Every published workflow, by key.
    pub fn workflows(&self) -> Vec<Arc<Workflow>> {
        let mut all: Vec<_> = self.workflows.values().cloned().collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// The enabled workflows that writes of `entity`'s records may start (answered without a
    /// scan: every record write asks).
    pub fn watchers(&self, entity: &str) -> &[Arc<Workflow>] {
        self.watchers.get(entity).map_or(&[], Vec::as_slice)
    }

    /// Whether any published workflow carries records of `entity` (a delete then cancels their
    /// waiting runs; writes look for a pending approval's lock).
    pub fn has_workflows_on(&self, entity: &str) -> bool {
        self.workflows
            .values()
            .any(|w| w.entity.as_deref() == Some(entity))
    }

    /// The compiled model of a published entity.
    pub fn entity(&self, key: &str) -> Option<Arc<EntityModel>> {
        self.entities.get(key).cloned()
    }

    /// Every published entity, by key.
    pub fn entities(&self) -> Vec<Arc<EntityModel>> {
        let mut all: Vec<_> = self.entities.values().cloned().collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// The reference fields (of any entity) that point at `entity`.
    pub fn referrers(&self, entity: &str) -> Vec<Referrer> {
        let mut found = Vec::new();
        for model in self.entities() {
            for field in &model.fields {
                if let FieldKind::Reference {
                    entity: target,
                    on_delete,
                } = &field.kind
                    && target == entity
                {
                    found.push(Referrer {
                        entity: model.clone(),
                        field: field.key.clone(),
                        on_delete: *on_delete,
                    });
                }
            }
        }
        found
    }

    /// Every published definition of a kind, by key.
    pub fn of_kind(&self, kind: Kind) -> Vec<(&str, &Published)> {
        let mut all: Vec<_> = self
            .definitions
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, key), published)| (key.as_str(), published))
            .collect();
        all.sort_by_key(|(key, _)| *key);
        all
    }
}

/// Snapshots of every workspace this process has served.
#[derive(Debug, Default)]
pub struct Registry {
    snapshots: RwLock<HashMap<Uuid, Arc<Snapshot>>>,
}

impl Registry {
    /// An empty registry; snapshots load on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// The snapshot of a workspace at (at least) `generation`, loading it if needed.
    ///
    /// # Errors
    /// `Error::Db` when loading fails.
    pub async fn snapshot(
        &self,
        db: &Db,
        workspace_id: Uuid,
        generation: i64,
    ) -> Result<Arc<Snapshot>> {
        if let Some(current) = self.cached(workspace_id)
            && current.generation >= generation
        {
            return Ok(current);
        }
        self.reload(db, workspace_id, generation).await
    }

    fn cached(&self, workspace_id: Uuid) -> Option<Arc<Snapshot>> {
        self.snapshots
            .read()
            .ok()
            .and_then(|map| map.get(&workspace_id).cloned())
    }

    /// Loads a workspace's published definitions and installs them as its snapshot, unless a
    /// newer one was installed meanwhile.
    ///
    /// # Errors
    /// `Error::Db` when loading fails.
    pub async fn reload(
        &self,
        db: &Db,
        workspace_id: Uuid,
        generation: i64,
    ) -> Result<Arc<Snapshot>> {
        let rows = store::definitions::published(db.conn(), workspace_id).await?;
        let mut definitions = HashMap::new();
        let mut entities = HashMap::new();
        let mut workflows: HashMap<String, Arc<Workflow>> = HashMap::new();
        // Compiling an entity costs (large enums, many fields); unchanged versions are reused.
        let current = self.cached(workspace_id);
        for row in rows {
            let Ok(kind) = Kind::parse(&row.kind) else {
                continue;
            };
            let document = Arc::new(row.document);
            let unchanged = current
                .as_ref()
                .and_then(|c| c.entities.get(&row.key))
                .filter(|m| {
                    kind == Kind::Entity && m.definition_id == row.id && m.version == row.version
                })
                .cloned();
            if let Some(model) = unchanged {
                entities.insert(row.key.clone(), model);
            } else if kind == Kind::Entity {
                match EntityModel::build(&row.key, row.id, row.version, document.clone()) {
                    Ok(model) => {
                        entities.insert(row.key.clone(), Arc::new(model));
                    }
                    // Validated at publish; a failure here is a defect, logged, not fatal.
                    Err(e) => {
                        tracing::error!(entity = %row.key, error = ?e, "published entity does not compile")
                    }
                }
            }
            if kind == Kind::Workflow {
                let reused = current
                    .as_ref()
                    .and_then(|c| c.workflows.get(&row.key))
                    .filter(|w| w.definition_id == row.id && w.version == row.version)
                    .cloned();
                match reused.map(Ok).unwrap_or_else(|| {
                    Workflow::compile(
                        &crate::script::shared(),
                        &row.key,
                        row.id,
                        row.version,
                        document.clone(),
                        "",
                    )
                    .map(Arc::new)
                }) {
                    Ok(workflow) => {
                        workflows.insert(row.key.clone(), workflow);
                    }
                    // Validated at publish; a failure here is a defect, logged, not fatal.
                    Err(e) => {
                        tracing::error!(workflow = %row.key, error = ?e, "published workflow does not compile")
                    }
                }
            }
            definitions.insert(
                (kind, row.key),
                Published {
                    definition_id: row.id,
                    version: row.version,
                    document,
                },
            );
        }
        let pending_indexes = store::records::index_states(db.conn(), workspace_id)
            .await?
            .into_iter()
            .filter(|state| state.status != "ready")
            .map(|state| state.name)
            .collect();
        let rolled_up = entities
            .values()
            .flat_map(|m| m.fields.iter())
            .filter_map(|f| match &f.computed {
                Some(super::entity::Computed::Rollup(spec)) => Some(spec.entity.clone()),
                _ => None,
            })
            .collect();
        let looked_up = entities
            .values()
            .flat_map(|m| m.scripts.formulas.iter())
            .flat_map(|f| f.lookups.iter().map(|(entity, _)| entity.clone()))
            .collect();
        let mut watchers: HashMap<String, Vec<Arc<Workflow>>> = HashMap::new();
        for workflow in workflows.values() {
            if workflow.enabled
                && workflow.trigger.watches_writes()
                && let Some(entity) = &workflow.entity
            {
                watchers
                    .entry(entity.clone())
                    .or_default()
                    .push(workflow.clone());
            }
        }
        for list in watchers.values_mut() {
            list.sort_by(|a, b| a.key.cmp(&b.key));
        }
        let mut webhooks: HashMap<String, Vec<Arc<store::webhooks::WebhookRow>>> = HashMap::new();
        for row in store::webhooks::of_workspace(db.conn(), workspace_id).await? {
            if row.enabled {
                webhooks
                    .entry(row.entity.clone())
                    .or_default()
                    .push(Arc::new(row));
            }
        }
        let fresh = Arc::new(Snapshot {
            generation,
            webhooks,
            definitions,
            entities,
            pending_indexes,
            rolled_up,
            looked_up,
            workflows,
            watchers,
        });
        let Ok(mut map) = self.snapshots.write() else {
            return Ok(fresh);
        };
        let installed = map.entry(workspace_id).or_insert_with(|| fresh.clone());
        if installed.generation < fresh.generation || Arc::ptr_eq(installed, &fresh) {
            *installed = fresh.clone();
            Ok(fresh)
        } else {
            Ok(installed.clone())
        }
    }
}
