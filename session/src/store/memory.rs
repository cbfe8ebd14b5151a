//! The embedded store: sessions in this process's memory.

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
                _ if !e.is_live_at(now) => None,
                Entry::Record(r) if r.owner.as_deref() == Some(owner) => Some(None),
                Entry::Alias { to, .. } | Entry::Tombstone { to, .. } => Some(Some(*to)),
                Entry::Record(_) => None,
            };
            let step = match &self.backing {
                Backing::Map(map) => map.get(&key).and_then(|slot| next(&slot.entry)),
                Backing::Cache(cache) => cache.get(&key).and_then(|c| next(&c.state.lock().entry)),
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
            if !slot.entry.is_live_at(now) {
                drop(slot);
                map.remove_if(key, |_, s| !s.entry.is_live_at(now));
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
            Entry::Record(r) if r.is_live_at(now) => Some(Loaded {
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
                Entry::Record(r) if r.is_live_at(now) => {
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
                Entry::Record(r) if r.is_live_at(now) => Some((r.clone(), slot.version)),
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
            let keep = slot.entry.is_live_at(now);
            if !keep {
                removed += 1;
            }
            keep
        });
        removed
    }
}

/// One entry of the bounded cache: moka holds an `Arc` of it, and a save merges into the
/// entry in place under its lock (no copy of the record). Whatever replaces or removes a
/// cell (through moka's compute on its key, which runs one at a time per key) first marks it
/// detached under the same lock, so a save that fetched the cell just before can tell it no
/// longer stands for the key and answers `Gone` instead of writing into nothing.
struct Cell {
    state: Mutex<CellState>,
}

struct CellState {
    entry: Entry,
    /// Bumped by every save merged in, so a move can tell whether the record changed.
    version: u64,
    /// Replaced or removed from the cache: saves must not land here.
    detached: bool,
}

impl Cell {
    fn new(entry: Entry) -> Arc<Cell> {
        Arc::new(Cell {
            state: Mutex::new(CellState {
                entry,
                version: 0,
                detached: false,
            }),
        })
    }

    /// When the entry stops resolving.
    fn expires_at(&self) -> SystemTime {
        self.state.lock().entry.expires_at()
    }
}

/// The bounded cache: moka finds the cell and evicts; the cell's own lock orders a save
/// against everything else done to that entry.
mod cache {
    use super::*;

    type Cache = moka::sync::Cache<SessionKey, Arc<Cell>>;

    /// Marks the cell that moka is about to replace or remove.
    fn detach(cell: &Cell) {
        cell.state.lock().detached = true;
    }

    pub(super) fn create(cache: &Cache, key: &SessionKey, entry: Entry, now: SystemTime) -> bool {
        let fresh = Cell::new(entry);
        let result = cache
            .entry(*key)
            .and_compute_with(|existing| match existing {
                Some(e) if e.value().state.lock().entry.resolves_at(now) => Op::Nop,
                Some(e) => {
                    detach(e.value());
                    Op::Put(fresh)
                }
                None => Op::Put(fresh),
            });
        matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        )
    }

    /// The live record under `key`, cloned.
    fn record(cache: &Cache, key: &SessionKey, now: SystemTime) -> Option<Record> {
        let cell = cache.get(key)?;
        let state = cell.state.lock();
        match &state.entry {
            Entry::Record(r) if r.is_live_at(now) && !state.detached => Some(r.clone()),
            _ => None,
        }
    }

    pub(super) fn load(cache: &Cache, key: &SessionKey, now: SystemTime) -> Option<Loaded> {
        let cell = cache.get(key)?;
        let (to, token) = {
            let state = cell.state.lock();
            if !state.entry.is_live_at(now) {
                return None;
            }
            match &state.entry {
                Entry::Record(r) => return Some(Loaded::from(r.clone())),
                Entry::Tombstone { .. } => return None,
                Entry::Alias { to, token, .. } => (*to, token.clone()),
            }
        };
        record(cache, &to, now).map(|record| Loaded {
            record,
            moved: Some(Moved { to, token }),
        })
    }

    /// Merges `changes` into the live record in place. `Ok(false)`: nothing live (or an
    /// alias) is there.
    pub(super) fn apply(
        cache: &Cache,
        key: &SessionKey,
        changes: &ChangeSet,
        now: SystemTime,
    ) -> Result<bool> {
        let Some(cell) = cache.get(key) else {
            return Ok(false);
        };
        {
            let mut state = cell.state.lock();
            if state.detached {
                return Ok(false);
            }
            match &mut state.entry {
                Entry::Record(r) if r.is_live_at(now) => r.apply(changes)?,
                _ => return Ok(false),
            }
            state.version += 1;
        }
        Ok(true)
    }

    /// As the map's `rename`, with the cell's version counter.
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
            let snapshot = cache.get(from).and_then(|cell| {
                let state = cell.state.lock();
                match &state.entry {
                    Entry::Record(r) if r.is_live_at(now) && !state.detached => {
                        Some((r.clone(), state.version, Arc::clone(&cell)))
                    }
                    _ => None,
                }
            });
            let Some((record, version, current)) = snapshot else {
                if !first {
                    remove(cache, to);
                }
                return Err(Error::Gone);
            };
            let expires_at = record.expires_at;
            let owner = record.owner.clone();
            let copy = Entry::Record(record);
            if first {
                if !create(cache, to, copy, now) {
                    return Err(Error::AlreadyExists);
                }
                first = false;
            } else {
                let copy = Cell::new(copy);
                cache.entry(*to).and_compute_with(|existing| {
                    if let Some(e) = existing {
                        detach(e.value());
                    }
                    Op::Put(copy)
                });
            }
            index(to, owner.as_deref());
            let replacement = Cell::new(Entry::left_by_move(*to, grace, expires_at, now));
            let swapped = cache
                .entry(*from)
                .and_compute_with(|existing| match existing {
                    Some(e) if Arc::ptr_eq(e.value(), &current) => {
                        let mut state = current.state.lock();
                        if state.version == version && !state.detached {
                            state.detached = true;
                            Op::Put(replacement)
                        } else {
                            Op::Nop
                        }
                    }
                    _ => Op::Nop,
                });
            if matches!(swapped, CompResult::ReplacedWith(_)) {
                return Ok(());
            }
        }
        remove(cache, to);
        Err(contended())
    }

    /// Removes `key`. Through the entry API, like every replacement
    /// here: moka runs compute operations on one key one at a time, and the removed cell is
    /// detached, so a save that fetched it just before cannot land.
    pub(super) fn remove(cache: &Cache, key: &SessionKey) {
        cache
            .entry(*key)
            .and_compute_with(|existing| match existing {
                Some(e) => {
                    detach(e.value());
                    Op::Remove
                }
                None => Op::Nop,
            });
    }

    /// As the map's `delete`, through the entry API (see [`remove`]).
    pub(super) fn delete(cache: &Cache, key: &SessionKey, now: SystemTime) -> Removed {
        let mut removed = Removed::Nothing;
        cache
            .entry(*key)
            .and_compute_with(|existing| match existing {
                Some(e) => {
                    let left = {
                        let mut state = e.value().state.lock();
                        state.detached = true;
                        removed = Removed::of(Some(&state.entry), now);
                        state.entry.left_by_delete(now)
                    };
                    match left {
                        Some(left) => Op::Put(Cell::new(left)),
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
            .filter(|(_, c)| c.expires_at() <= now)
            .map(|(k, _)| *k)
            .collect();
        let mut removed = 0;
        for key in expired {
            let gone = cache
                .entry(key)
                .and_compute_with(|existing| match existing {
                    Some(e) => {
                        let mut state = e.value().state.lock();
                        if state.entry.is_live_at(now) {
                            Op::Nop
                        } else {
                            state.detached = true;
                            Op::Remove
                        }
                    }
                    None => Op::Nop,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::SessionId;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    /// The bounded form merges a save in place, where moka does not see it: nothing in moka
    /// may drop the session at the expiry it had before the save.
    #[test]
    fn bounded_save_extending_the_expiry_keeps_the_session_past_the_old_one() {
        run(async {
            let store = MemoryStore::with_capacity(100);
            let key = SessionId::generate().expect("randomness").key();
            let soon = SystemTime::now() + Duration::from_millis(300);
            store
                .create(&key, &Record::new(soon))
                .await
                .expect("created");
            let mut changes = ChangeSet {
                expires_at: Some(SystemTime::now() + Duration::from_secs(60)),
                ..ChangeSet::default()
            };
            changes
                .set
                .insert("a".into(), bytes::Bytes::from_static(b"\x01"));
            store.apply(&key, &changes).await.expect("saved");
            std::thread::sleep(Duration::from_millis(600));
            let loaded = store.load(&key).await.expect("loads");
            let record = loaded.expect("still there after its first expiry").record;
            assert_eq!(record.fields["a"].as_ref(), b"\x01");
        });
    }

    /// A save that finds its entry replaced (a delete, a move) never lands: it reports the
    /// session gone and nothing comes back.
    #[test]
    fn bounded_save_after_a_delete_is_gone_and_resurrects_nothing() {
        run(async {
            let store = MemoryStore::with_capacity(100);
            let key = SessionId::generate().expect("randomness").key();
            let later = SystemTime::now() + Duration::from_secs(60);
            store
                .create(&key, &Record::new(later))
                .await
                .expect("created");
            let Backing::Cache(cache) = &store.backing else {
                panic!("with_capacity is the bounded form")
            };
            // A save that fetched the entry just before the delete.
            let cell = cache.get(&key).expect("cached");
            store.delete(&key).await.expect("deleted");
            assert!(cell.state.lock().detached, "the delete detaches the entry");
            let mut changes = ChangeSet::default();
            changes
                .set
                .insert("a".into(), bytes::Bytes::from_static(b"\x01"));
            assert!(matches!(
                store.apply(&key, &changes).await,
                Err(Error::Gone)
            ));
            assert!(store.load(&key).await.expect("loads").is_none());
        });
    }
}
