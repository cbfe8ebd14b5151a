//! The embedded store: sessions in this process's memory.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use dashmap::DashMap;
use moka::Expiry;
use moka::ops::compute::{CompResult, Op};
use parking_lot::Mutex;

use super::{
    ChangeSet, Entry, Error, Flush, Grace, Loaded, MAX_ALIAS_HOPS, Moved, Record, Removed, Result,
    Store,
};
use crate::id::SessionKey;

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
/// - [`MemoryStore::with_capacity`] is bounded and built on [`moka`]: beyond the capacity it
///   evicts the least useful entries (TinyLFU) and it drops expired entries by itself, so it
///   can sit in front of a durable store as the cache tier. Records are shared behind `Arc`s
///   and a save copies the record it changes.
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
    Cache(moka::sync::Cache<SessionKey, Arc<Entry>>),
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

struct EntryExpiry;

fn remaining(entry: &Entry) -> Duration {
    entry
        .expires_at()
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

impl Expiry<SessionKey, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &SessionKey,
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(remaining(value))
    }

    fn expire_after_update(
        &self,
        _key: &SessionKey,
        value: &Arc<Entry>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(remaining(value))
    }
}

fn live(entry: &Entry, now: SystemTime) -> bool {
    entry.expires_at() > now
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
    /// [`with_capacity`](Self::with_capacity) for a cache tier, where evicting is harmless.
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
    pub fn with_capacity(max_entries: u64) -> Self {
        Self::build(Some(max_entries))
    }

    fn build(max_entries: Option<u64>) -> Self {
        let backing = match max_entries {
            Some(max) => Backing::Cache(
                moka::sync::Cache::builder()
                    .expire_after(EntryExpiry)
                    .max_capacity(max)
                    .build(),
            ),
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
        let now_ms = crate::to_millis(now);
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

    /// The key of the live session of `owner` that the index member `key` leads to: `key`
    /// itself, or, when the session moved since it was indexed (an alias or a tombstone is
    /// left under `key`), the key it moved to, following at most [`MAX_ALIAS_HOPS`] moves.
    /// A listing copies the members before it checks them, so a session that moves (and is
    /// indexed under its new key) after the copy is still found.
    fn owner_lead(&self, key: &SessionKey, owner: &str, now: SystemTime) -> Option<SessionKey> {
        let mut key = *key;
        for _ in 0..MAX_ALIAS_HOPS {
            let next = |e: &Entry| match e {
                Entry::Record(r) if r.expires_at > now && r.owner.as_deref() == Some(owner) => {
                    Some(None)
                }
                Entry::Alias { to, until, .. } | Entry::Tombstone { to, until } if *until > now => {
                    Some(Some(*to))
                }
                _ => None,
            };
            let step = match &self.backing {
                Backing::Map(map) => map.get(&key).and_then(|slot| next(&slot.entry)),
                Backing::Cache(cache) => cache.get(&key).and_then(|e| next(&e)),
            }?;
            match step {
                None => return Some(key),
                Some(to) => key = to,
            }
        }
        None
    }

    fn index_owner(&self, key: &SessionKey, owner: Option<&str>) {
        if let Some(owner) = owner {
            // Inserted while the shard guard is held, so `prune` cannot drop the owner's set
            // (when it looked empty) between this lookup and the insert.
            let set = self.owners.entry(owner.to_owned()).or_default();
            set.lock().insert(*key);
        }
    }

    /// The live keys of `owner`, pruning the stale ones. The member keys are copied out under
    /// the owner's lock, then checked without it, a batch at a time with a yield in between;
    /// a stale key is removed under the lock only after a second check there (a create or
    /// save tagging it indexes it after taking the same lock, so it is never lost).
    async fn prune(&self, owner: &str) -> Vec<SessionKey> {
        let Some(set) = self.owners.get(owner).map(|s| Arc::clone(s.value())) else {
            return Vec::new();
        };
        let members: Vec<SessionKey> = set.lock().iter().copied().collect();
        let mut live = Vec::new();
        for batch in members.chunks(OWNER_BATCH) {
            let now = SystemTime::now();
            let mut stale = Vec::new();
            for key in batch {
                let lead = self.owner_lead(key, owner, now);
                if let Some(live_key) = lead {
                    live.push(live_key);
                }
                if lead != Some(*key) {
                    stale.push(*key);
                }
            }
            if !stale.is_empty() {
                let mut keys = set.lock();
                for key in stale {
                    if self.owner_lead(&key, owner, now) != Some(key) {
                        keys.remove(&key);
                    }
                }
            }
            tokio::task::yield_now().await;
        }
        self.owners.remove_if(owner, |_, s| s.lock().is_empty());
        live
    }
}

/// A move that lost [`MAX_MOVE_ATTEMPTS`] races in a row to saves of the same session.
fn contended() -> Error {
    Error::unavailable("memory store: the session kept changing while it was being moved")
}

/// The unbounded map: merges in place under the shard's write lock.
mod map {
    use super::*;
    use dashmap::mapref::entry::Entry as MapEntry;

    pub(super) fn create(
        map: &DashMap<SessionKey, Slot>,
        key: &SessionKey,
        entry: Entry,
        now: SystemTime,
    ) -> bool {
        match map.entry(*key) {
            MapEntry::Occupied(mut o) => {
                if o.get().entry.resolves_at(now) {
                    return false;
                }
                o.insert(Slot { entry, version: 0 });
                true
            }
            MapEntry::Vacant(v) => {
                v.insert(Slot { entry, version: 0 });
                true
            }
        }
    }

    pub(super) fn load(
        map: &DashMap<SessionKey, Slot>,
        key: &SessionKey,
        now: SystemTime,
    ) -> Option<Loaded> {
        let alias = {
            let slot = map.get(key)?;
            if !live(&slot.entry, now) {
                drop(slot);
                map.remove_if(key, |_, s| !live(&s.entry, now));
                return None;
            }
            match &slot.entry {
                Entry::Record(r) => return Some(Loaded::from(r.clone())),
                Entry::Alias { to, token, .. } => (*to, token.clone()),
                Entry::Tombstone { .. } => return None,
            }
        };
        // The alias's guard is dropped first: its target may live in the same shard.
        let (to, token) = alias;
        let target = map.get(&to)?;
        match &target.entry {
            Entry::Record(r) if r.expires_at > now => Some(Loaded {
                record: r.clone(),
                moved: Some(Moved { to, token }),
            }),
            _ => None,
        }
    }

    pub(super) fn apply(
        map: &DashMap<SessionKey, Slot>,
        key: &SessionKey,
        changes: &ChangeSet,
        now: SystemTime,
    ) -> Result<bool> {
        match map.get_mut(key) {
            Some(mut slot) => match &mut slot.entry {
                Entry::Record(r) if r.expires_at > now => {
                    r.apply(changes)?;
                    slot.version += 1;
                    Ok(true)
                }
                _ => Ok(false),
            },
            None => Ok(false),
        }
    }

    /// Copies the record to `to`, then swaps `from` for its alias only if no save landed on
    /// `from` since the copy (its version is unchanged); otherwise copies again, at most
    /// [`MAX_MOVE_ATTEMPTS`] times. Each save the store accepted is therefore in the moved
    /// record, and no save lands on an alias.
    pub(super) fn rename(
        map: &DashMap<SessionKey, Slot>,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
        now: SystemTime,
        retries: &AtomicU64,
        index: &dyn Fn(&SessionKey, Option<&str>),
    ) -> Result<()> {
        let mut first = true;
        for attempt in 0..MAX_MOVE_ATTEMPTS {
            if attempt > 0 {
                retries.fetch_add(1, Ordering::Relaxed);
            }
            let snapshot = map.get(from).and_then(|slot| match &slot.entry {
                Entry::Record(r) if r.expires_at > now => Some((r.clone(), slot.version)),
                _ => None,
            });
            let Some((record, version)) = snapshot else {
                if !first {
                    map.remove(to);
                }
                return Err(Error::Gone);
            };
            let copy = Entry::Record(record.clone());
            if first {
                if !create(map, to, copy, now) {
                    return Err(Error::AlreadyExists);
                }
                first = false;
            } else {
                map.insert(
                    *to,
                    Slot {
                        entry: copy,
                        version: 0,
                    },
                );
            }
            // Indexed before the old key stops being the session: an owner listing made at any
            // moment finds the session under one key or the other.
            index(to, record.owner.as_deref());
            if let Some(mut slot) = map.get_mut(from)
                && slot.version == version
                && matches!(slot.entry, Entry::Record(_))
            {
                slot.entry = Entry::left_by_move(*to, grace, record.expires_at, now);
                slot.version += 1;
                return Ok(());
            }
        }
        // The copy under `to` is nobody's: the session stays whole under `from`.
        map.remove(to);
        Err(contended())
    }

    /// Removes a record; turns an alias into a tombstone (see [`Entry::left_by_delete`]).
    pub(super) fn delete(
        map: &DashMap<SessionKey, Slot>,
        key: &SessionKey,
        now: SystemTime,
    ) -> Removed {
        match map.entry(*key) {
            MapEntry::Occupied(mut o) => {
                let removed = Removed::of(Some(&o.get().entry), now);
                match o.get().entry.left_by_delete(now) {
                    Some(left) => {
                        let slot = o.get_mut();
                        slot.entry = left;
                        slot.version += 1;
                    }
                    None => {
                        o.remove();
                    }
                }
                removed
            }
            MapEntry::Vacant(_) => Removed::Nothing,
        }
    }

    pub(super) fn cleanup(map: &DashMap<SessionKey, Slot>, now: SystemTime) -> u64 {
        let mut removed = 0;
        map.retain(|_, slot| {
            let keep = live(&slot.entry, now);
            if !keep {
                removed += 1;
            }
            keep
        });
        removed
    }
}

/// The bounded cache: moka's atomic compute on one key at a time.
mod cache {
    use super::*;

    type Cache = moka::sync::Cache<SessionKey, Arc<Entry>>;

    pub(super) fn create(cache: &Cache, key: &SessionKey, entry: Entry, now: SystemTime) -> bool {
        let fresh = Arc::new(entry);
        let result = cache
            .entry(*key)
            .and_compute_with(|existing| match existing {
                Some(e) if e.value().resolves_at(now) => Op::Nop,
                _ => Op::Put(fresh),
            });
        matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        )
    }

    pub(super) fn load(cache: &Cache, key: &SessionKey, now: SystemTime) -> Option<Loaded> {
        let entry = cache.get(key).filter(|e| live(e, now))?;
        match &*entry {
            Entry::Record(r) => Some(Loaded::from(r.clone())),
            Entry::Tombstone { .. } => None,
            Entry::Alias { to, token, .. } => {
                let target = cache.get(to)?;
                match &*target {
                    Entry::Record(r) if r.expires_at > now => Some(Loaded {
                        record: r.clone(),
                        moved: Some(Moved {
                            to: *to,
                            token: token.clone(),
                        }),
                    }),
                    _ => None,
                }
            }
        }
    }

    pub(super) fn apply(
        cache: &Cache,
        key: &SessionKey,
        changes: &ChangeSet,
        now: SystemTime,
    ) -> Result<bool> {
        let mut failed = None;
        let result = cache
            .entry(*key)
            .and_compute_with(|existing| match existing {
                Some(e) if live(e.value(), now) => match &**e.value() {
                    Entry::Record(r) => {
                        let mut next = r.clone();
                        match next.apply(changes) {
                            Ok(()) => Op::Put(Arc::new(Entry::Record(next))),
                            Err(err) => {
                                failed = Some(err);
                                Op::Nop
                            }
                        }
                    }
                    Entry::Alias { .. } | Entry::Tombstone { .. } => Op::Nop,
                },
                _ => Op::Nop,
            });
        match failed {
            Some(err) => Err(err),
            None => Ok(matches!(result, CompResult::ReplacedWith(_))),
        }
    }

    /// As the map's `rename`, with `Arc` identity standing in for the version counter.
    pub(super) fn rename(
        cache: &Cache,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
        now: SystemTime,
        retries: &AtomicU64,
        index: &dyn Fn(&SessionKey, Option<&str>),
    ) -> Result<()> {
        let mut first = true;
        for attempt in 0..MAX_MOVE_ATTEMPTS {
            if attempt > 0 {
                retries.fetch_add(1, Ordering::Relaxed);
            }
            let current = cache
                .get(from)
                .filter(|e| live(e, now) && matches!(**e, Entry::Record(_)));
            let Some(current) = current else {
                if !first {
                    remove(cache, to);
                }
                return Err(Error::Gone);
            };
            let Entry::Record(record) = &*current else {
                // Filtered to records just above.
                return Err(Error::Gone);
            };
            let copy = Entry::Record(record.clone());
            if first {
                if !create(cache, to, copy, now) {
                    return Err(Error::AlreadyExists);
                }
                first = false;
            } else {
                let copy = Arc::new(copy);
                cache.entry(*to).and_compute_with(|_| Op::Put(copy));
            }
            index(to, record.owner.as_deref());
            let replacement = Arc::new(Entry::left_by_move(*to, grace, record.expires_at, now));
            let swapped = cache
                .entry(*from)
                .and_compute_with(|existing| match existing {
                    Some(e) if Arc::ptr_eq(e.value(), &current) => Op::Put(replacement),
                    _ => Op::Nop,
                });
            if matches!(swapped, CompResult::ReplacedWith(_)) {
                return Ok(());
            }
        }
        remove(cache, to);
        Err(contended())
    }

    /// Removes `key` and returns what it held. Through the entry API, like every write here:
    /// moka serializes compute operations on one key, so a save merging into the entry (its
    /// own compute) can never put back what this removed; a plain `remove` gives no such
    /// order.
    pub(super) fn remove(cache: &Cache, key: &SessionKey) -> Option<Arc<Entry>> {
        match cache
            .entry(*key)
            .and_compute_with(|existing| match existing {
                Some(_) => Op::Remove,
                None => Op::Nop,
            }) {
            CompResult::Removed(entry) => Some(entry.into_value()),
            _ => None,
        }
    }

    /// As the map's `delete`, through the entry API (see [`remove`]).
    pub(super) fn delete(cache: &Cache, key: &SessionKey, now: SystemTime) -> Removed {
        let mut removed = Removed::Nothing;
        cache
            .entry(*key)
            .and_compute_with(|existing| match existing {
                Some(e) => {
                    removed = Removed::of(Some(e.value()), now);
                    match e.value().left_by_delete(now) {
                        Some(left) => Op::Put(Arc::new(left)),
                        None => Op::Remove,
                    }
                }
                None => Op::Nop,
            });
        removed
    }

    pub(super) fn cleanup(cache: &Cache, now: SystemTime) -> u64 {
        let expired: Vec<SessionKey> = cache
            .iter()
            .filter(|(_, e)| !live(e, now))
            .map(|(k, _)| *k)
            .collect();
        let mut removed = 0;
        for key in expired {
            let gone = cache
                .entry(key)
                .and_compute_with(|existing| match existing {
                    Some(e) if !live(e.value(), now) => Op::Remove,
                    _ => Op::Nop,
                });
            if matches!(gone, CompResult::Removed(_)) {
                removed += 1;
            }
        }
        cache.run_pending_tasks();
        removed
    }
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

    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        let now = SystemTime::now();
        let index = |key: &SessionKey, owner: Option<&str>| self.index_owner(key, owner);
        match &self.backing {
            Backing::Map(map) => map::rename(map, from, to, grace, now, &self.move_retries, &index),
            Backing::Cache(cache) => {
                cache::rename(cache, from, to, grace, now, &self.move_retries, &index)
            }
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
