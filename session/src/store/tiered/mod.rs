//! A cache tier in front of a durable tier.

mod guard;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::coherence::{Flush, Invalidation, InvalidationFeed, InvalidationSource};
use super::{ChangeSet, Error, Grace, Loaded, Record, Removed, Result, Store};
use crate::id::SessionKey;
use crate::limits::later;
use guard::{Listener, Shared, listen, millis};

/// A fast cache `C` in front of a durable store `D`, itself a [`Store`], so tiers nest:
/// `TieredStore<MemoryStore, TieredStore<RedisStore, FileStore>>`.
///
/// # The rules
///
/// - **Writes go to the durable tier first**, then drop the key from the cache: a save, a
///   delete or a move never leaves the cache ahead of or behind the durable store, whatever
///   order concurrent writes reach the two tiers in. (The next load refills the cache.)
/// - **Loads read the cache**; on a miss they read the durable tier and fill the cache with
///   an expiry no later than the record's own, nor than [`with_max_cache_ttl`] from now.
/// - **A fill never lands over an invalidation.** Every invalidation of a key (this
///   process's writes, or another process's fed in through [`invalidate`](Self::invalidate))
///   advances a generation counter; a miss reads the counter before its durable read, and
///   fills the cache only if the counter has not moved, checking and writing under a lock the
///   invalidation takes too. So a load that read the durable record just before a logout or a
///   save can never put the older copy into the cache, not even for an instant.
/// - **A failing cache never fails a request.** Each cache error is logged with `tracing`,
///   counted in [`stats`](Self::stats), and the durable tier answers. When the cache could not
///   be told that a session was deleted, changed or moved, this process stops reading that
///   key from the cache until [`with_max_cache_ttl`] has passed (so a logged-out session
///   cannot come back from a stale cache entry here); with [`with_strict_invalidation`] such an
///   operation fails instead with [`Error::CacheNotInvalidated`] — the durable write *did*
///   happen — which is what you want with a cache shared by several processes.
///
/// # Consistency
///
/// With a **per-process cache** (a `MemoryStore` in each app server) a write made by another
/// process is seen here once this process's cache entry expires, unless that process's
/// invalidations are delivered to [`invalidate`](Self::invalidate): reads may be stale by up
/// to `max_cache_ttl`, writes never are, because change sets are merged in the durable tier,
/// not computed from the cached copy. Keep `max_cache_ttl` short, or route a visitor to one
/// process (sticky sessions), when that matters.
///
/// With a **shared cache** (Redis in front of files, say) every process sees every write; the
/// fill guard above covers the fills of this process only, so a fill by another process that
/// read the durable record just before this process's write can leave an older copy in the
/// shared cache until `max_cache_ttl`.
///
/// ```
/// use sessionkit::store::{MemoryStore, Record, Store, TieredStore};
/// use sessionkit::SessionId;
/// use std::time::{Duration, SystemTime};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = TieredStore::new(MemoryStore::bounded(10_000), MemoryStore::new());
/// let key = SessionId::generate()?.key();
/// store.create(&key, &Record::new(SystemTime::now() + Duration::from_secs(60))).await?;
/// store.load(&key).await?;
/// assert_eq!(store.stats().hits, 1);
/// # Ok::<(), sessionkit::Error>(())
/// # }).unwrap();
/// ```
///
/// [`with_max_cache_ttl`]: Self::with_max_cache_ttl
/// [`with_strict_invalidation`]: Self::with_strict_invalidation
#[derive(Debug)]
pub struct TieredStore<C, D> {
    cache: C,
    durable: D,
    strict_invalidation: bool,
    shared: Arc<Shared>,
    /// The task following the durable tier's invalidation channel ([`TieredStore::coherent`]);
    /// aborted when the store is dropped.
    listener: Option<Listener>,
}

/// Counters of a [`TieredStore`], since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// Loads the cache answered.
    pub hits: u64,
    /// Loads the cache could not answer (absent, bypassed or failing), sent to the durable tier.
    pub misses: u64,
    /// Cache operations that failed and were worked around.
    pub cache_errors: u64,
    /// Cache fills skipped because the key was invalidated while they read the durable tier.
    pub fills_dropped: u64,
    /// Invalidations from the durable tier's channel acted on (the cached copy dropped), coherent
    /// stores only.
    pub invalidations: u64,
    /// Times the whole cache was dropped because the channel was lost or came back.
    pub flushes: u64,
    /// Times the invalidation channel was lost.
    pub outages: u64,
}

/// The default bound on how long the cache may keep a record.
pub const DEFAULT_MAX_CACHE_TTL: Duration = Duration::from_secs(600);

impl<C, D> TieredStore<C, D>
where
    C: Store + Flush + Clone + 'static,
    D: Store + InvalidationSource,
{
    /// `cache` in front of `durable`, **coherent across processes**: a task follows the durable
    /// store's invalidation channel and drops a cached session as soon as any process writes,
    /// moves or deletes it. While the channel is down the cache is flushed and bypassed (every
    /// load reads the durable tier), and it is flushed again when the channel comes back, so a
    /// session another process changed or ended is never served from here after the change
    /// was announced, nor after an outage.
    ///
    /// This is the form to use with a per-process cache (a `MemoryStore` in each app server)
    /// over a shared durable store that offers a channel (`RedisStore`).
    ///
    /// # Errors
    /// [`Error::Config`] when called outside a Tokio runtime (the listener is a task).
    pub fn coherent(cache: C, durable: D) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Config("TieredStore::coherent needs a Tokio runtime for its listener".into())
        })?;
        let feed = durable.invalidations();
        let shared = Arc::new(Shared::new(false));
        // Nothing fills this store yet: emptying the cache is enough.
        cache.flush();
        if feed.listening() {
            shared.trusted.store(true, Ordering::SeqCst);
        }
        let task = runtime.spawn(listen(cache.clone(), Arc::downgrade(&shared), feed));
        Ok(TieredStore {
            cache,
            durable,
            strict_invalidation: false,
            shared,
            listener: Some(Listener(task.abort_handle())),
        })
    }
}

impl<C: Store, D: Store> TieredStore<C, D> {
    /// `cache` in front of `durable`, with **bounded staleness across processes**: this
    /// process's own writes are never stale here, but a write made by another process is seen
    /// only once this cache's copy expires (at most [`with_max_cache_ttl`](Self::with_max_cache_ttl),
    /// 10 minutes by default), unless it is fed to [`invalidate`](Self::invalidate).
    ///
    /// Right for a cache shared by every process (Redis in front of files), for a single
    /// process, or over a durable store with no invalidation channel (a `FileStore` shared by
    /// several processes: then keep `max_cache_ttl` short). For a per-process cache over
    /// Redis use [`coherent`](Self::coherent).
    pub fn new(cache: C, durable: D) -> Self {
        TieredStore {
            cache,
            durable,
            strict_invalidation: false,
            shared: Arc::new(Shared::new(true)),
            listener: None,
        }
    }

    /// Whether a task follows the durable tier's invalidation channel
    /// ([`coherent`](Self::coherent)).
    pub fn is_coherent(&self) -> bool {
        self.listener.is_some()
    }

    /// Whether the cache is read now: always for a store made with [`new`](Self::new); for a
    /// coherent one, only while its invalidation channel listens.
    pub fn cache_trusted(&self) -> bool {
        self.shared.trusted.load(Ordering::SeqCst)
    }

    /// Bounds how long the cache keeps a record after filling or writing it (default
    /// [`DEFAULT_MAX_CACHE_TTL`]); a record's own expiry always bounds it too.
    #[must_use]
    pub fn with_max_cache_ttl(self, ttl: Duration) -> Self {
        self.shared
            .max_cache_ttl_ms
            .store(millis(ttl), Ordering::Relaxed);
        self
    }

    /// When `true`, a delete, save or move whose cache invalidation fails returns
    /// [`Error::CacheNotInvalidated`] (after the durable tier was updated) instead of
    /// succeeding. Default `false`.
    #[must_use]
    pub fn with_strict_invalidation(mut self, strict: bool) -> Self {
        self.strict_invalidation = strict;
        self
    }

    /// The cache tier.
    pub fn cache(&self) -> &C {
        &self.cache
    }

    /// The durable tier.
    pub fn durable(&self) -> &D {
        &self.durable
    }

    /// Hits, misses, cache errors and dropped fills so far.
    pub fn stats(&self) -> TierStats {
        let s = &self.shared;
        TierStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            cache_errors: s.cache_errors.load(Ordering::Relaxed),
            fills_dropped: s.fills_dropped.load(Ordering::Relaxed),
            invalidations: s.invalidations.load(Ordering::Acquire),
            flushes: s.flushes.load(Ordering::Relaxed),
            outages: s.outages.load(Ordering::Relaxed),
        }
    }

    /// Drops `key` from the cache because the session changed elsewhere — the entry point for
    /// invalidations another process sends (a write it made to the shared durable tier).
    /// A fill racing it cannot put the old copy back. When the cache fails, this process
    /// stops reading `key` from it until `max_cache_ttl` has passed, and the error is
    /// returned.
    ///
    /// # Errors
    /// The cache tier's error.
    pub async fn invalidate(&self, key: &SessionKey) -> Result<()> {
        self.drop_cached("invalidate", key).await
    }

    fn generation(&self, key: &SessionKey) -> u64 {
        self.shared.stripe(key).generation.load(Ordering::SeqCst)
    }

    fn cache_cap(&self, expires_at: SystemTime) -> SystemTime {
        expires_at.min(later(SystemTime::now(), self.shared.max_cache_ttl()))
    }

    /// Advances `key`'s generation and drops it from the cache (see [`Stripe`]). When that
    /// fails, stop trusting the cache for `key` here, and return its error.
    async fn drop_cached(&self, op: &'static str, key: &SessionKey) -> Result<()> {
        self.shared.invalidate_key(&self.cache, op, key).await
    }

    /// What a write whose durable part succeeded returns, given how its invalidation went.
    /// `removed` is what a delete removed, carried in the error so a caller can follow it.
    fn committed<T>(
        &self,
        value: T,
        invalidated: Result<()>,
        removed: Option<Removed>,
    ) -> Result<T> {
        match invalidated {
            Err(err) if self.strict_invalidation => Err(Error::CacheNotInvalidated {
                source: Box::new(err),
                removed,
            }),
            _ => Ok(value),
        }
    }

    fn prune_bypass(&self) {
        let now = SystemTime::now();
        let mut bypass = self.shared.bypass.lock();
        bypass.retain(|_, until| *until > now);
        if bypass.is_empty() {
            self.shared.bypassing.store(false, Ordering::Release);
        }
    }

    /// Whether the cache must not be read or filled for `key`.
    fn bypassed(&self, key: &SessionKey) -> bool {
        let shared = &self.shared;
        if !shared.trusted.load(Ordering::SeqCst) {
            return true;
        }
        if !shared.bypassing.load(Ordering::Acquire) {
            return false;
        }
        let mut bypass = shared.bypass.lock();
        match bypass.get(key) {
            Some(until) if *until > SystemTime::now() => true,
            Some(_) => {
                bypass.remove(key);
                false
            }
            None => false,
        }
    }

    /// Puts `record` into the cache, unless `key` was invalidated since `generation` was read
    /// (before the durable read that produced `record`). The check and the write happen under
    /// the stripe's lock, which every invalidation takes too.
    async fn fill(&self, key: &SessionKey, record: &Record, generation: u64) {
        let stripe = self.shared.stripe(key);
        let _guard = stripe.lock.lock().await;
        if stripe.generation.load(Ordering::SeqCst) != generation
            || stripe.pending.load(Ordering::SeqCst) != 0
            || self.bypassed(key)
        {
            self.shared.fills_dropped.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            crate::metrics::tier(crate::metrics::TIER_FILLS_DROPPED);
            return;
        }
        let mut cached = record.clone();
        cached.expires_at = self.cache_cap(record.expires_at);
        match self.cache.create(key, &cached).await {
            Ok(()) => {}
            // Something is there already: a stale copy (a record that expired in the durable
            // tier before its cache copy, say). Drop it rather than guess.
            Err(Error::AlreadyExists) => {
                if let Err(err) = self.cache.delete(key).await {
                    self.shared.cache_failed("fill", key, &err);
                    self.shared.stop_trusting(key);
                }
            }
            Err(err) => self.shared.cache_failed("fill", key, &err),
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<C: Store, D: Store> Store for TieredStore<C, D> {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        let generation = self.generation(key);
        self.durable.create(key, record).await?;
        self.fill(key, record, generation).await;
        Ok(())
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        if !self.bypassed(key) {
            let stripe = self.shared.stripe(key);
            let before = stripe.generation.load(Ordering::SeqCst);
            let quiet = stripe.pending.load(Ordering::SeqCst) == 0;
            match self.cache.load(key).await {
                // Served only if no write of the key was under way when the read began and
                // none finished its invalidation during it.
                Ok(Some(loaded))
                    if quiet
                        && stripe.pending.load(Ordering::SeqCst) == 0
                        && stripe.generation.load(Ordering::SeqCst) == before =>
                {
                    self.shared.hits.fetch_add(1, Ordering::Relaxed);
                    #[cfg(feature = "metrics")]
                    crate::metrics::tier(crate::metrics::TIER_HITS);
                    return Ok(Some(loaded));
                }
                Ok(_) => {}
                Err(err) => self.shared.cache_failed("load", key, &err),
            }
        }
        self.shared.misses.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        crate::metrics::tier(crate::metrics::TIER_MISSES);
        let generation = self.generation(key);
        let loaded = self.durable.load(key).await?;
        if let Some(Loaded {
            record,
            moved: None,
        }) = &loaded
        {
            self.fill(key, record, generation).await;
        }
        Ok(loaded)
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        let flight = self.shared.begin(key);
        let applied = self.durable.apply(key, changes).await;
        // Whatever the durable tier did or did not do, the cache must not disagree: drop the
        // key (applying the change set to the cached copy could reorder two saves of one
        // key, leaving the older value in the cache).
        let invalidated = self.drop_cached("apply", key).await;
        flight.done();
        applied?;
        self.committed((), invalidated, None)
    }

    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        let flight = self.shared.begin(key);
        let removed = self.durable.delete(key).await;
        let invalidated = self.drop_cached("delete", key).await;
        flight.done();
        let removed = removed?;
        self.committed(removed, invalidated, Some(removed))
    }

    async fn rename(&self, key: &SessionKey, to: &SessionKey, grace: Option<&Grace>) -> Result<()> {
        let (old_flight, new_flight) = (self.shared.begin(key), self.shared.begin(to));
        let moved = self.durable.rename(key, to, grace).await;
        let old = self.drop_cached("rename", key).await;
        let new = self.drop_cached("rename", to).await;
        old_flight.done();
        new_flight.done();
        moved?;
        self.committed((), old.and(new), None)
    }

    async fn cleanup(&self) -> Result<u64> {
        if let Err(err) = self.cache.cleanup().await {
            self.shared.cache_errors.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            crate::metrics::tier(crate::metrics::TIER_CACHE_ERRORS);
            tracing::warn!(error = %err, "session cache cleanup failed");
        }
        self.prune_bypass();
        self.durable.cleanup().await
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        self.durable.owned_by(owner).await
    }
}

/// Lists the durable tier, which holds every session (the cache holds copies of some).
#[async_trait]
impl<C: Store, D: super::Listing> super::Listing for TieredStore<C, D> {
    async fn scan(&self, cursor: Option<&super::Cursor>, batch: usize) -> Result<super::Page> {
        self.durable.scan(cursor, batch).await
    }

    async fn count(&self) -> Result<u64> {
        self.durable.count().await
    }
}
