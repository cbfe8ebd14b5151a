//! The embedded store: sessions in this process's memory.

mod cache;
mod map;
mod owners;
mod scan;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use dashmap::DashMap;
use moka::ops::compute::{CompResult, Op};
use parking_lot::Mutex;

use super::{
    ChangeSet, Entry, Error, Flush, Grace, Loaded, MAX_ALIAS_HOPS, Moved, Record, Removed, Result,
    Store,
};
use crate::id::SessionKey;
use cache::Cell;

/// Sessions in memory: the embedded default and the usual cache tier.
///
/// Lookups and merges lock one shard of a concurrent map, never the whole store, and every
/// entry expires at its record's own `expires_at` (it reads as absent from then on).
///
/// - [`MemoryStore::new`] is unbounded and built on [`dashmap`]: a save merges its change set
///   into the stored record in place, so it costs what the change costs, not a copy of the
///   session. Expired entries are dropped when touched and by [`cleanup`](Store::cleanup),
///   which reports exactly how many it removed; run it now and then (the manager does).
///   [`MemoryStore::with_max_entries`] is the same store with a bound on its entries: at the
///   bound it refuses new sessions rather than evict any.
/// - [`MemoryStore::bounded`] is bounded and built on [`moka`]: beyond the capacity it
///   evicts the least useful entries (TinyLFU), so it can sit in front of a durable store as
///   the cache tier. A save merges into the stored record in place too, under that entry's
///   own lock. An expired entry reads as absent at once and holds its slot until it is
///   evicted or [`cleanup`](Store::cleanup) drops it (moka keeps no timer per entry: a save
///   that moves the expiry costs nothing more).
///
/// Value bytes are reference-counted ([`bytes::Bytes`]), so a load copies no value bytes.
///
/// The owner index behind [`owned_by`](Store::owned_by) is sharded too, with one lock per
/// owner: a listing copies that owner's keys out under its lock, checks them without it, and
/// prunes the stale ones [`OWNER_BATCH`] at a time, yielding to the runtime between batches.
/// So listing or revoking an owner with 10⁵ sessions never holds a lock that a load, or a save
/// of another owner, waits for.
///
/// Data lives as long as the process: use it alone for development and single-process apps
/// that can afford to lose sessions on restart, or as the cache of a [`TieredStore`].
///
/// ```
/// use sessionkit::store::{MemoryStore, Record, Store};
/// use sessionkit::SessionId;
/// use std::time::{Duration, SystemTime};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let key = SessionId::generate()?.key();
/// store.create(&key, &Record::new(SystemTime::now() + Duration::from_secs(60))).await?;
/// assert!(store.load(&key).await?.is_some());
/// # Ok::<(), sessionkit::Error>(())
/// # }).unwrap();
/// ```
///
/// [`TieredStore`]: super::TieredStore
#[derive(Clone)]
pub struct MemoryStore {
    backing: Backing,
    owners: Arc<DashMap<String, OwnerSet>>,
    move_retries: Arc<AtomicU64>,
    /// The entry bound of [`MemoryStore::with_max_entries`], and when a create at the bound
    /// last swept expired entries (ms since the epoch).
    max_entries: Option<u64>,
    last_sweep: Arc<AtomicU64>,
}

/// The keys tagged with one owner, behind a lock of their own.
type OwnerSet = Arc<Mutex<HashSet<SessionKey>>>;

/// How many owner-index members a listing checks (and prunes) per step: [`MemoryStore`]
/// yields to the runtime after each such batch (of a listing or a cleanup), and
/// `sessionkit_backends::FileStore` runs each batch as its own step on the blocking pool.
pub const OWNER_BATCH: usize = 256;

/// How many times a [`rename`](Store::rename) copies the record again because a save landed
/// on it meanwhile, before it gives up with [`Error::Unavailable`] (the session stays whole
/// under its old key; the manager keeps the id and rotates on a later request).
pub const MAX_MOVE_ATTEMPTS: usize = 32;

#[derive(Clone)]
enum Backing {
    Map(Arc<DashMap<SessionKey, Slot>>),
    Cache(moka::sync::Cache<SessionKey, Arc<Cell>>),
}

/// An entry of the unbounded map, with a counter of the saves merged into it so a move can
/// tell whether the record changed under it.
struct Slot {
    entry: Entry,
    version: u64,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, entries) = match &self.backing {
            Backing::Map(map) => ("unbounded", map.len() as u64),
            Backing::Cache(cache) => ("bounded", cache.entry_count()),
        };
        f.debug_struct("MemoryStore")
            .field("kind", &kind)
            .field("entries", &entries)
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An unbounded store.
    pub fn new() -> Self {
        Self::build(None)
    }

    /// An unbounded-kind store (exact retention, never evicts) that refuses to create a
    /// session once it holds `max_entries` entries: [`create`](Store::create) then fails
    /// with [`Error::LimitExceeded`] ([`Limit::Entries`](crate::Limit::Entries)), and the
    /// visitor gets no session until sessions expire or are deleted. Saves, loads and moves
    /// of existing sessions go on as usual.
    ///
    /// This store refuses rather than evicts because it is the only copy of its sessions:
    /// evicting would log a visitor out to make room for whoever comes next, so a flood of
    /// new visitors could push every real session out. Use
    /// [`bounded`](Self::bounded) for a cache tier, where evicting is harmless.
    ///
    /// Entries count as in [`len`](Self::len): sessions, the old ids of recent moves, and
    /// expired entries not yet reclaimed; a create at the bound reclaims expired entries
    /// first (at most once a second). Concurrent creates may overshoot the bound by their
    /// number.
    ///
    /// ```
    /// use sessionkit::store::{MemoryStore, Record, Store};
    /// use sessionkit::{Error, Limit, SessionId};
    /// use std::time::{Duration, SystemTime};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::with_max_entries(1);
    /// let record = Record::new(SystemTime::now() + Duration::from_secs(60));
    /// store.create(&SessionId::generate()?.key(), &record).await?;
    /// let full = store.create(&SessionId::generate()?.key(), &record).await;
    /// assert!(matches!(full, Err(Error::LimitExceeded { limit: Limit::Entries, .. })));
    /// # Ok::<(), sessionkit::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn with_max_entries(max_entries: u64) -> Self {
        MemoryStore {
            max_entries: Some(max_entries),
            ..Self::build(None)
        }
    }

    /// A store holding at most `max_entries` sessions (and aliases), evicting beyond that.
    /// Use this for a cache tier; an evicted session is simply reloaded from the durable tier.
    /// (Not a preallocation, as `HashMap::with_capacity` is: the bound is enforced.)
    ///
    /// ```
    /// use sessionkit::{MemoryStore, TieredStore};
    /// let store = TieredStore::new(MemoryStore::bounded(10_000), MemoryStore::new());
    /// assert!(store.cache().is_empty());
    /// ```
    pub fn bounded(max_entries: u64) -> Self {
        Self::build(Some(max_entries))
    }

    fn build(max_entries: Option<u64>) -> Self {
        let backing = match max_entries {
            Some(max) => Backing::Cache(moka::sync::Cache::builder().max_capacity(max).build()),
            None => Backing::Map(Arc::new(DashMap::new())),
        };
        MemoryStore {
            backing,
            owners: Arc::new(DashMap::new()),
            move_retries: Arc::new(AtomicU64::new(0)),
            max_entries: None,
            last_sweep: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Whether a create of `key` fits under [`with_max_entries`](Self::with_max_entries)'s
    /// bound; at the bound, reclaims expired entries first (at most once a second, so a
    /// flood of creates at the bound does not scan the map on each).
    fn make_room(
        &self,
        map: &DashMap<SessionKey, Slot>,
        key: &SessionKey,
        now: SystemTime,
    ) -> Result<()> {
        let Some(max) = self.max_entries else {
            return Ok(());
        };
        let full = || map.len() as u64 >= max && !map.contains_key(key);
        if !full() {
            return Ok(());
        }
        let now_ms = crate::record::to_millis(now);
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= 1000
            && self
                .last_sweep
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            map::cleanup(map, now);
        }
        if full() {
            return Err(Error::LimitExceeded {
                limit: crate::Limit::Entries,
                key: None,
                size: map.len().saturating_add(1),
                max: usize::try_from(max).unwrap_or(usize::MAX),
            });
        }
        Ok(())
    }

    /// How many times a move had to copy a record again because a concurrent save changed it
    /// (see [`MAX_MOVE_ATTEMPTS`]), since the store was built. For tests and metrics.
    pub fn move_retries(&self) -> u64 {
        self.move_retries.load(Ordering::Relaxed)
    }

    /// How many entries (sessions and aliases) the store holds, including expired ones not
    /// yet reclaimed. Approximate while other tasks write.
    pub fn len(&self) -> u64 {
        match &self.backing {
            Backing::Map(map) => map.len() as u64,
            Backing::Cache(cache) => {
                cache.run_pending_tasks();
                cache.entry_count()
            }
        }
    }

    /// Whether [`len`](Self::len) is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A move in progress ([`Store::rename`]), as both backings carry it out.
struct Move<'a> {
    from: &'a SessionKey,
    to: &'a SessionKey,
    grace: Option<&'a Grace>,
    now: SystemTime,
    /// The store's count of copies made again ([`MemoryStore::move_retries`]).
    retries: &'a AtomicU64,
    /// Indexes the copy under its owner before the old key stops being the session.
    index: &'a dyn Fn(&SessionKey, Option<&str>),
}

impl Move<'_> {
    /// The attempts a move may make, [`MAX_MOVE_ATTEMPTS`] at most; each one after the first
    /// counts as a retry.
    fn attempts(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_MOVE_ATTEMPTS).inspect(|&attempt| {
            if attempt > 0 {
                self.retries.fetch_add(1, Ordering::Relaxed);
            }
        })
    }
}

/// A move that lost [`MAX_MOVE_ATTEMPTS`] races in a row to saves of the same session.
fn contended() -> Error {
    Error::unavailable("memory store: the session kept changing while it was being moved")
}

/// Drops every session and alias (what a coherent [`TieredStore`](super::TieredStore) does
/// when its invalidation channel is lost or comes back).
impl Flush for MemoryStore {
    fn flush(&self) {
        match &self.backing {
            Backing::Map(map) => map.clear(),
            Backing::Cache(cache) => cache.invalidate_all(),
        }
        self.owners.clear();
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        let now = SystemTime::now();
        let entry = Entry::Record(record.clone());
        let created = match &self.backing {
            Backing::Map(map) => {
                self.make_room(map, key, now)?;
                map::create(map, key, entry, now)
            }
            Backing::Cache(cache) => cache::create(cache, key, entry, now),
        };
        if !created {
            return Err(Error::AlreadyExists);
        }
        self.index_owner(key, record.owner.as_deref());
        Ok(())
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        let now = SystemTime::now();
        Ok(match &self.backing {
            Backing::Map(map) => map::load(map, key, now),
            Backing::Cache(cache) => cache::load(cache, key, now),
        })
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        let now = SystemTime::now();
        let applied = match &self.backing {
            Backing::Map(map) => map::apply(map, key, changes, now)?,
            Backing::Cache(cache) => cache::apply(cache, key, changes, now)?,
        };
        if !applied {
            return Err(Error::Gone);
        }
        if let Some(Some(owner)) = &changes.owner {
            self.index_owner(key, Some(owner));
        }
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        let now = SystemTime::now();
        Ok(match &self.backing {
            Backing::Map(map) => map::delete(map, key, now),
            Backing::Cache(cache) => cache::delete(cache, key, now),
        })
    }

    async fn rename(&self, key: &SessionKey, to: &SessionKey, grace: Option<&Grace>) -> Result<()> {
        let index = |key: &SessionKey, owner: Option<&str>| self.index_owner(key, owner);
        let mv = Move {
            from: key,
            to,
            grace,
            now: SystemTime::now(),
            retries: &self.move_retries,
            index: &index,
        };
        match &self.backing {
            Backing::Map(map) => map::rename(map, &mv),
            Backing::Cache(cache) => cache::rename(cache, &mv),
        }
    }

    async fn cleanup(&self) -> Result<u64> {
        let now = SystemTime::now();
        let removed = match &self.backing {
            Backing::Map(map) => map::cleanup(map, now),
            Backing::Cache(cache) => cache::cleanup(cache, now),
        };
        // One owner at a time, each in batches: no lock is held across the whole index.
        let owners: Vec<String> = self.owners.iter().map(|e| e.key().clone()).collect();
        for owner in owners {
            self.prune(&owner).await;
        }
        Ok(removed)
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        let mut out = self.prune(owner).await;
        // A moved session may be reached from its old key and its new one.
        out.sort();
        out.dedup();
        Ok(out)
    }
}
