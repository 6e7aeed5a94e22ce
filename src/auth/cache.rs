//! A short-lived in-process cache of what every request resolves first: credential → principal
//! and (account, workspace) → access. Without it each API call paid two indexed queries before
//! its own work (measured: a two-query GET tops out at about 11,000/s on this machine).
//!
//! An entry is used only while both hold:
//! - it is younger than [`ACCESS_CACHE_TTL`], which bounds how late another process's change
//!   (PostgreSQL deployments run several) is seen;
//! - this process has not written any row it was read from since: [`crate::store::access_epoch`]
//!   is bumped by every such write, so in one process a revoke, logout, role change or publish
//!   takes effect on the very next request.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::store;

/// Longest an entry is trusted without asking the database again.
pub const ACCESS_CACHE_TTL: Duration = Duration::from_secs(2);

/// Entries kept at most; past it the cache starts over (a burst of distinct credentials must
/// not grow memory without bound).
const MAX_ENTRIES: usize = 20_000;

/// A map whose entries expire after [`ACCESS_CACHE_TTL`] or at the next access-relevant write.
#[derive(Debug)]
pub struct EpochCache<K, V> {
    entries: RwLock<HashMap<K, Entry<V>>>,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    epoch: u64,
    fetched: Instant,
}

impl<K, V> Default for EpochCache<K, V> {
    fn default() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> EpochCache<K, V> {
    /// The value of `key` if it is still trustworthy.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(key)?;
        (entry.epoch == store::access_epoch() && entry.fetched.elapsed() < ACCESS_CACHE_TTL)
            .then(|| entry.value.clone())
    }

    /// Stores `value`, read from the database when the access epoch was `epoch` (taken
    /// *before* the read, so a write racing the read leaves the entry already stale).
    pub fn insert(&self, key: K, value: V, epoch: u64) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(
                key,
                Entry {
                    value,
                    epoch,
                    fetched: Instant::now(),
                },
            );
        }
    }

    /// Changes a cached value in place (keeping its age), if present.
    pub fn update<Q>(&self, key: &Q, change: impl FnOnce(&mut V))
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if let Ok(mut entries) = self.entries.write()
            && let Some(entry) = entries.get_mut(key)
        {
            change(&mut entry.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_write_after_the_read_makes_the_entry_stale() {
        let cache: EpochCache<String, u32> = EpochCache::default();
        let epoch = store::access_epoch();
        cache.insert("a".to_owned(), 1, epoch);
        // Other tests in this process may bump the epoch concurrently; only assert the
        // direction that cannot be disturbed by them.
        store::access_changed();
        assert_eq!(cache.get("a"), None);
        let epoch = store::access_epoch();
        cache.insert("b".to_owned(), 2, epoch);
        if store::access_epoch() == epoch {
            assert_eq!(cache.get("b"), Some(2));
        }
    }

    #[test]
    fn an_entry_read_before_a_racing_write_is_never_served() {
        let cache: EpochCache<&str, u32> = EpochCache::default();
        let before_read = store::access_epoch();
        store::access_changed(); // the write lands while the read is in flight
        cache.insert("k", 7, before_read);
        assert_eq!(cache.get("k"), None);
    }
}
