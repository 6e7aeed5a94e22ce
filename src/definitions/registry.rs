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
use crate::error::Result;
use crate::store::{self, Db};

/// One published definition.
#[derive(Debug, Clone)]
pub struct Published {
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
}

impl Snapshot {
    /// The published definition of `kind` and `key`.
    pub fn get(&self, kind: Kind, key: &str) -> Option<&Published> {
        self.definitions.get(&(kind, key.to_owned()))
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
        let definitions = rows
            .into_iter()
            .filter_map(|row| {
                let kind = Kind::parse(&row.kind).ok()?;
                Some((
                    (kind, row.key),
                    Published {
                        version: row.version,
                        document: Arc::new(row.document),
                    },
                ))
            })
            .collect();
        let fresh = Arc::new(Snapshot {
            generation,
            definitions,
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
