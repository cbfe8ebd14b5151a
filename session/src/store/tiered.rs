//! A cache tier in front of a durable tier.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{ChangeSet, Error, Grace, Loaded, Record, Result, Store};
use crate::id::SessionKey;

/// A fast cache `C` in front of a durable store `D`, itself a [`Store`], so tiers nest:
/// `TieredStore<MemoryStore, TieredStore<RedisStore, FileStore>>`.
///
/// # The rules
///
/// - **Writes go to the durable tier first**, then to the cache. When the durable write fails
///   the operation fails, and the cache entry is dropped rather than left ahead of or behind
///   the durable store.
/// - **Loads read the cache**; on a miss they read the durable tier and fill the cache with
///   an expiry no later than the record's own, nor than [`with_max_cache_ttl`] from now.
/// - **Deletes and moves reach both tiers.**
/// - **Operations** ([`ChangeSet::ops`]) run in the durable tier only; a save that carries
///   any drops the cache entry, so the cache never holds a value the durable tier does not.
/// - **A failing cache never fails a request.** Each cache error is logged with `tracing`,
///   counted in [`stats`](Self::stats), and the durable tier answers. When the cache could not
///   be told that a session was deleted, changed or moved, this process stops reading that
///   key from the cache until [`with_max_cache_ttl`] has passed (so a logged-out session
///   cannot come back from a stale cache entry here); with [`with_strict_invalidation`] such an
///   operation fails instead, which is what you want with a cache shared by several processes.
///
/// # Consistency
///
/// With a **per-process cache** (a `MemoryStore` in each app server) a write made by another
/// process is seen here once this process's cache entry expires: reads may be stale by up to
/// `max_cache_ttl`, writes never are, because change sets are merged in the durable tier, not
/// computed from the cached copy. Keep `max_cache_ttl` short, or route a visitor to one
/// process (sticky sessions), when that matters.
///
/// With a **shared cache** (Redis in front of files, say) every process sees every write. One
/// race remains, as in any read-through cache: a miss that reads the durable record just
/// before another request's write, and fills the cache just after that write invalidated it,
/// leaves the older copy in the cache until it expires. `max_cache_ttl` bounds it.
///
/// ```
/// use sessionkit::store::{MemoryStore, Record, Store, TieredStore};
/// use sessionkit::SessionId;
/// use std::time::{Duration, SystemTime};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = TieredStore::new(MemoryStore::with_capacity(10_000), MemoryStore::new());
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
    max_cache_ttl: Duration,
    strict_invalidation: bool,
    bypass: Mutex<HashMap<SessionKey, SystemTime>>,
    /// Whether `bypass` may hold anything: keeps its lock off the hot path while it is empty.
    bypassing: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
    cache_errors: AtomicU64,
}

/// Counters of a [`TieredStore`], since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Loads the cache answered.
    pub hits: u64,
    /// Loads the cache could not answer (absent, bypassed or failing), sent to the durable tier.
    pub misses: u64,
    /// Cache operations that failed and were worked around.
    pub cache_errors: u64,
}

/// The default bound on how long the cache may keep a record.
pub const DEFAULT_MAX_CACHE_TTL: Duration = Duration::from_secs(600);

impl<C: Store, D: Store> TieredStore<C, D> {
    /// `cache` in front of `durable`.
    pub fn new(cache: C, durable: D) -> Self {
        TieredStore {
            cache,
            durable,
            max_cache_ttl: DEFAULT_MAX_CACHE_TTL,
            strict_invalidation: false,
            bypass: Mutex::new(HashMap::new()),
            bypassing: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            cache_errors: AtomicU64::new(0),
        }
    }

    /// Bounds how long the cache keeps a record after filling or writing it (default
    /// [`DEFAULT_MAX_CACHE_TTL`]); a record's own expiry always bounds it too.
    #[must_use]
    pub fn with_max_cache_ttl(mut self, ttl: Duration) -> Self {
        self.max_cache_ttl = ttl;
        self
    }

    /// When `true`, a delete, save or move whose cache invalidation fails returns the cache's
    /// error (after the durable tier was updated) instead of succeeding. Default `false`.
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

    /// Hits, misses and cache errors so far.
    pub fn stats(&self) -> TierStats {
        TierStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            cache_errors: self.cache_errors.load(Ordering::Relaxed),
        }
    }

    fn cache_cap(&self, expires_at: SystemTime) -> SystemTime {
        expires_at.min(SystemTime::now() + self.max_cache_ttl)
    }

    fn cache_failed(&self, op: &'static str, key: &SessionKey, err: &Error) {
        self.cache_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(op, session = %key.fingerprint(), error = %err, "session cache tier failed");
    }

    /// Drops `key` from the cache. When that fails, stop trusting the cache for it here.
    async fn invalidate(&self, op: &'static str, key: &SessionKey) -> Result<()> {
        match self.cache.delete(key).await {
            Ok(()) => Ok(()),
            Err(err) => {
                self.cache_failed(op, key, &err);
                self.bypass
                    .lock()
                    .insert(*key, SystemTime::now() + self.max_cache_ttl);
                self.bypassing.store(true, Ordering::Release);
                if self.strict_invalidation {
                    Err(err)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn prune_bypass(&self) {
        let now = SystemTime::now();
        let mut bypass = self.bypass.lock();
        bypass.retain(|_, until| *until > now);
        if bypass.is_empty() {
            self.bypassing.store(false, Ordering::Release);
        }
    }

    fn bypassed(&self, key: &SessionKey) -> bool {
        if !self.bypassing.load(Ordering::Acquire) {
            return false;
        }
        let mut bypass = self.bypass.lock();
        match bypass.get(key) {
            Some(until) if *until > SystemTime::now() => true,
            Some(_) => {
                bypass.remove(key);
                false
            }
            None => false,
        }
    }

    async fn fill(&self, key: &SessionKey, record: &Record) {
        let mut cached = record.clone();
        cached.expires_at = self.cache_cap(record.expires_at);
        match self.cache.create(key, &cached).await {
            Ok(()) | Err(Error::AlreadyExists) => {}
            Err(err) => self.cache_failed("fill", key, &err),
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<C: Store, D: Store> Store for TieredStore<C, D> {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        self.durable.create(key, record).await?;
        let mut cached = record.clone();
        cached.expires_at = self.cache_cap(record.expires_at);
        match self.cache.create(key, &cached).await {
            Ok(()) => Ok(()),
            Err(err) => {
                // A stale entry (or a failing cache) must not shadow the new record.
                if !matches!(err, Error::AlreadyExists) {
                    self.cache_failed("create", key, &err);
                }
                self.invalidate("create", key).await
            }
        }
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        if !self.bypassed(key) {
            match self.cache.load(key).await {
                Ok(Some(loaded)) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(loaded));
                }
                Ok(None) => {}
                Err(err) => self.cache_failed("load", key, &err),
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let loaded = self.durable.load(key).await?;
        if let Some(Loaded {
            record,
            moved: None,
        }) = &loaded
            && !self.bypassed(key)
        {
            self.fill(key, record).await;
        }
        Ok(loaded)
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        if let Err(err) = self.durable.apply(key, changes).await {
            // Whatever the durable tier did or did not do, the cache must not disagree.
            self.invalidate("apply", key).await?;
            return Err(err);
        }
        if !changes.ops.is_empty() {
            // Operations ran against the durable tier's value, which the cache may not hold:
            // applying them to the cached copy could leave it ahead or behind. Drop it instead.
            return self.invalidate("apply", key).await;
        }
        let mut cached = changes.clone();
        if let Some(expires_at) = cached.expires_at {
            cached.expires_at = Some(self.cache_cap(expires_at));
        }
        match self.cache.apply(key, &cached).await {
            Ok(()) | Err(Error::Gone) => Ok(()),
            Err(err) => {
                self.cache_failed("apply", key, &err);
                self.invalidate("apply", key).await
            }
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        self.durable.delete(key).await?;
        self.invalidate("delete", key).await
    }

    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        let moved = self.durable.rename(from, to, grace).await;
        let old = self.invalidate("rename", from).await;
        let new = self.invalidate("rename", to).await;
        moved?;
        old?;
        new
    }

    async fn cleanup(&self) -> Result<u64> {
        if let Err(err) = self.cache.cleanup().await {
            self.cache_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %err, "session cache cleanup failed");
        }
        self.prune_bypass();
        self.durable.cleanup().await
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        self.durable.owned_by(owner).await
    }
}
