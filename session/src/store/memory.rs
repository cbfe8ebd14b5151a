//! The embedded store: sessions in this process's memory.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use moka::Expiry;
use moka::ops::compute::{CompResult, Op};
use parking_lot::Mutex;

use super::{ChangeSet, Entry, Error, Grace, Loaded, Moved, Record, Result, Store};
use crate::id::SessionKey;

/// Sessions in memory: the embedded default and the usual cache tier.
///
/// Built on [`moka`]: lookups and merges lock one shard of a concurrent map, never the whole
/// store; each entry expires at its record's own `expires_at`; and an optional capacity bounds
/// it, evicting the least useful entries (TinyLFU) so it can sit in front of a durable store.
/// Records are shared behind `Arc`s, so a load copies no value bytes.
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
    entries: moka::sync::Cache<SessionKey, Arc<Entry>>,
    owners: Arc<Mutex<HashMap<String, HashSet<SessionKey>>>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.entries.entry_count())
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

    /// A store holding at most `max_entries` sessions (and aliases), evicting beyond that.
    /// Use this for a cache tier; an evicted session is simply reloaded from the durable tier.
    pub fn with_capacity(max_entries: u64) -> Self {
        Self::build(Some(max_entries))
    }

    fn build(max_entries: Option<u64>) -> Self {
        let mut builder = moka::sync::Cache::builder().expire_after(EntryExpiry);
        if let Some(max) = max_entries {
            builder = builder.max_capacity(max);
        }
        MemoryStore {
            entries: builder.build(),
            owners: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// How many entries (sessions and aliases) the store holds, including expired ones not
    /// yet reclaimed. Approximate while other tasks write.
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Whether [`len`](Self::len) is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn live_record(&self, key: &SessionKey, now: SystemTime) -> Option<Arc<Entry>> {
        self.entries
            .get(key)
            .filter(|e| live(e, now) && matches!(**e, Entry::Record(_)))
    }

    fn index_owner(&self, key: &SessionKey, owner: Option<&str>) {
        if let Some(owner) = owner {
            self.owners
                .lock()
                .entry(owner.to_owned())
                .or_default()
                .insert(*key);
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        let now = SystemTime::now();
        let fresh = Arc::new(Entry::Record(record.clone()));
        let result = self
            .entries
            .entry(*key)
            .and_compute_with(|existing| match existing {
                Some(e) if live(e.value(), now) => Op::Nop,
                _ => Op::Put(fresh),
            });
        match result {
            CompResult::Inserted(_) | CompResult::ReplacedWith(_) => {
                self.index_owner(key, record.owner.as_deref());
                Ok(())
            }
            _ => Err(Error::AlreadyExists),
        }
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        let now = SystemTime::now();
        let Some(entry) = self.entries.get(key).filter(|e| live(e, now)) else {
            return Ok(None);
        };
        match &*entry {
            Entry::Record(r) => Ok(Some(Loaded::from(r.clone()))),
            Entry::Alias { to, token, .. } => {
                Ok(self.live_record(to, now).and_then(|target| match &*target {
                    Entry::Record(r) => Some(Loaded {
                        record: r.clone(),
                        moved: Some(Moved {
                            to: *to,
                            token: token.clone(),
                        }),
                    }),
                    Entry::Alias { .. } => None,
                }))
            }
        }
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        let now = SystemTime::now();
        let result = self
            .entries
            .entry(*key)
            .and_compute_with(|existing| match existing {
                Some(e) if live(e.value(), now) => match &**e.value() {
                    Entry::Record(r) => {
                        let mut next = r.clone();
                        next.apply(changes);
                        Op::Put(Arc::new(Entry::Record(next)))
                    }
                    Entry::Alias { .. } => Op::Nop,
                },
                _ => Op::Nop,
            });
        match result {
            CompResult::ReplacedWith(_) => {
                if let Some(Some(owner)) = &changes.owner {
                    self.index_owner(key, Some(owner));
                }
                Ok(())
            }
            _ => Err(Error::Gone),
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        self.entries.invalidate(key);
        Ok(())
    }

    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        // Optimistic move: copy the record to `to`, then swap `from` for its alias only if
        // `from` still holds the very record copied. A save that lands in between makes the
        // swap fail and the copy is redone, so no change is lost and no save goes to an
        // alias.
        let mut first = true;
        loop {
            let now = SystemTime::now();
            let Some(current) = self.live_record(from, now) else {
                if !first {
                    self.entries.invalidate(to);
                }
                return Err(Error::Gone);
            };
            let Entry::Record(record) = &*current else {
                // live_record only returns records.
                return Err(Error::Gone);
            };
            let copy = Arc::new(Entry::Record(record.clone()));
            if first {
                let placed = self
                    .entries
                    .entry(*to)
                    .and_compute_with(|existing| match existing {
                        Some(e) if live(e.value(), now) => Op::Nop,
                        _ => Op::Put(copy),
                    });
                if !matches!(
                    placed,
                    CompResult::Inserted(_) | CompResult::ReplacedWith(_)
                ) {
                    return Err(Error::AlreadyExists);
                }
                first = false;
            } else {
                self.entries.insert(*to, copy);
            }
            let replacement = grace.map(|g| {
                Arc::new(Entry::Alias {
                    to: *to,
                    until: g.until.min(record.expires_at),
                    token: g.token.clone(),
                })
            });
            let swapped = self
                .entries
                .entry(*from)
                .and_compute_with(|existing| match existing {
                    Some(e) if Arc::ptr_eq(e.value(), &current) => match replacement {
                        Some(alias) => Op::Put(alias),
                        None => Op::Remove,
                    },
                    _ => Op::Nop,
                });
            if matches!(
                swapped,
                CompResult::ReplacedWith(_) | CompResult::Removed(_)
            ) {
                self.index_owner(to, record.owner.as_deref());
                return Ok(());
            }
        }
    }

    async fn cleanup(&self) -> Result<u64> {
        let now = SystemTime::now();
        let mut removed = 0;
        let expired: Vec<SessionKey> = self
            .entries
            .iter()
            .filter(|(_, e)| !live(e, now))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            if self.entries.remove(&key).is_some() {
                removed += 1;
            }
        }
        self.entries.run_pending_tasks();
        let mut owners = self.owners.lock();
        owners.retain(|owner, keys| {
            keys.retain(|k| {
                self.live_record(k, now).is_some_and(
                    |e| matches!(&*e, Entry::Record(r) if r.owner.as_deref() == Some(owner)),
                )
            });
            !keys.is_empty()
        });
        Ok(removed)
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        let now = SystemTime::now();
        let mut owners = self.owners.lock();
        let Some(keys) = owners.get_mut(owner) else {
            return Ok(Vec::new());
        };
        keys.retain(|k| {
            self.live_record(k, now).is_some_and(
                |e| matches!(&*e, Entry::Record(r) if r.owner.as_deref() == Some(owner)),
            )
        });
        let mut out: Vec<SessionKey> = keys.iter().copied().collect();
        if keys.is_empty() {
            owners.remove(owner);
        }
        out.sort();
        Ok(out)
    }
}
