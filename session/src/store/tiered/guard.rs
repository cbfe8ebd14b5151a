//! The fill guard shared by a [`TieredStore`] and its invalidation listener: per-stripe
//! generations and locks, the bypass set, the counters.

use super::*;

/// What the store and its invalidation listener share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) max_cache_ttl_ms: AtomicU64,
    pub(super) bypass: Mutex<HashMap<SessionKey, SystemTime>>,
    /// Whether `bypass` may hold anything: keeps its lock off the hot path while it is empty.
    pub(super) bypassing: AtomicBool,
    /// Invalidation generations and locks, one per stripe of keys. Two keys sharing a stripe
    /// only cost each other a dropped fill or a short wait, never a stale entry.
    pub(super) stripes: Box<[Stripe]>,
    /// Whether the cache may be read and filled: always for a plain tiered store; for a
    /// coherent one only while its invalidation channel listens.
    pub(super) trusted: AtomicBool,
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) cache_errors: AtomicU64,
    pub(super) fills_dropped: AtomicU64,
    pub(super) invalidations: AtomicU64,
    pub(super) flushes: AtomicU64,
    pub(super) outages: AtomicU64,
}

/// One stripe of the fill guard. An invalidation advances `generation` and drops the key from
/// the cache holding `lock`; a fill checks the generation and writes the cache holding it too,
/// so a fill that read the durable tier before an invalidation can never write after it — and
/// no reader ever sees such a write, even for an instant.
///
/// `pending` counts this process's writes of the stripe's keys from before their durable write
/// until their cache drop: while it is not zero the cache is neither read nor filled for those
/// keys, so nobody can be served a copy the durable tier no longer has in the moment between
/// the two tiers' updates (another request that saw the durable tier's answer — a second
/// logout, a revocation — may already have returned).
#[derive(Debug, Default)]
pub(super) struct Stripe {
    pub(super) generation: AtomicU64,
    pub(super) pending: AtomicU64,
    pub(super) lock: tokio::sync::Mutex<()>,
}

/// A write of `key` in flight (see [`Stripe`]). Dropped before [`InFlight::done`] — a request
/// cancelled between the durable write and the cache drop — it stops trusting the cache for
/// `key` in this process, as a failed invalidation does.
pub(super) struct InFlight<'a> {
    pub(super) shared: &'a Shared,
    pub(super) key: SessionKey,
    pub(super) done: bool,
}

impl InFlight<'_> {
    pub(super) fn done(mut self) {
        self.done = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.stop_trusting(&self.key);
        }
        self.shared
            .stripe(&self.key)
            .pending
            .fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
pub(super) struct Listener(pub(super) tokio::task::AbortHandle);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How many stripes the fill guard of a [`TieredStore`] has.
pub(super) const GUARD_STRIPES: usize = 1024;

impl Shared {
    pub(super) fn new(trusted: bool) -> Self {
        // A scrape lists the tier families from the start, not only after their first event.
        #[cfg(feature = "metrics")]
        crate::metrics::register_tier();
        Shared {
            max_cache_ttl_ms: AtomicU64::new(millis(DEFAULT_MAX_CACHE_TTL)),
            bypass: Mutex::new(HashMap::new()),
            bypassing: AtomicBool::new(false),
            stripes: (0..GUARD_STRIPES).map(|_| Stripe::default()).collect(),
            trusted: AtomicBool::new(trusted),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            cache_errors: AtomicU64::new(0),
            fills_dropped: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            outages: AtomicU64::new(0),
        }
    }

    pub(super) fn max_cache_ttl(&self) -> Duration {
        Duration::from_millis(self.max_cache_ttl_ms.load(Ordering::Relaxed))
    }

    pub(super) fn stripe(&self, key: &SessionKey) -> &Stripe {
        let b = key.as_bytes();
        let index = usize::from(u16::from_le_bytes([b[0], b[1]])) % self.stripes.len();
        &self.stripes[index]
    }

    /// Marks a write of `key` as in flight until the returned guard is done and dropped.
    pub(super) fn begin(&self, key: &SessionKey) -> InFlight<'_> {
        self.stripe(key).pending.fetch_add(1, Ordering::SeqCst);
        InFlight {
            shared: self,
            key: *key,
            done: false,
        }
    }

    /// Advances `key`'s generation and drops it from the cache, under the stripe's lock. When
    /// the cache fails, stops trusting it for `key` here and returns its error.
    pub(super) async fn invalidate_key<C: Store>(
        &self,
        cache: &C,
        op: &'static str,
        key: &SessionKey,
    ) -> Result<()> {
        let stripe = self.stripe(key);
        let _guard = stripe.lock.lock().await;
        stripe.generation.fetch_add(1, Ordering::SeqCst);
        match cache.delete(key).await {
            Ok(_) => Ok(()),
            Err(err) => {
                self.cache_failed(op, key, &err);
                self.stop_trusting(key);
                Err(err)
            }
        }
    }

    pub(super) fn cache_failed(&self, op: &'static str, key: &SessionKey, err: &Error) {
        self.cache_errors.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        crate::metrics::tier(crate::metrics::TIER_CACHE_ERRORS);
        tracing::warn!(op, session = %key.fingerprint(), error = %err, "session cache tier failed");
    }

    pub(super) fn stop_trusting(&self, key: &SessionKey) {
        self.bypass
            .lock()
            .insert(*key, later(SystemTime::now(), self.max_cache_ttl()));
        self.bypassing.store(true, Ordering::Release);
    }

    /// Acts on one message of the invalidation channel.
    pub(super) async fn follow<C: Store + Flush>(&self, cache: &C, message: Invalidation) {
        match message {
            Invalidation::Key(key) => {
                // A failure is counted, logged and bypassed inside.
                let _ = self.invalidate_key(cache, "invalidate", &key).await;
                // Counted once acted on, so that a reader who sees the count also sees the
                // cached copy gone (a test that waited for the count could read the stale copy
                // when the count came first).
                self.invalidations.fetch_add(1, Ordering::Release);
                #[cfg(feature = "metrics")]
                crate::metrics::tier(crate::metrics::TIER_INVALIDATIONS);
            }
            Invalidation::Lost => {
                // Stop reading and filling first, then drop what is cached. (A fill that
                // checked before may still land; nothing is read until the recovery's flush.)
                if self.trusted.swap(false, Ordering::SeqCst) {
                    self.outages.fetch_add(1, Ordering::Relaxed);
                    #[cfg(feature = "metrics")]
                    crate::metrics::tier(crate::metrics::TIER_OUTAGES);
                    tracing::warn!(target: "sessionkit", "session invalidation channel lost; bypassing the cache");
                }
                cache.flush();
                self.flushes.fetch_add(1, Ordering::Relaxed);
                #[cfg(feature = "metrics")]
                crate::metrics::tier(crate::metrics::TIER_FLUSHES);
            }
            Invalidation::Restored => {
                // What changed while the channel was down was not announced: start empty.
                self.flush(cache).await;
                if !self.trusted.swap(true, Ordering::SeqCst) {
                    tracing::info!(target: "sessionkit", "session invalidation channel back; caching again");
                }
            }
        }
    }

    /// Advances every generation (each under its stripe's lock, so a fill that checked before
    /// has written by then), then empties the cache: nothing cached before survives, and no
    /// fill under way lands afterwards.
    pub(super) async fn flush<C: Flush>(&self, cache: &C) {
        for stripe in &*self.stripes {
            let _guard = stripe.lock.lock().await;
            stripe.generation.fetch_add(1, Ordering::SeqCst);
        }
        cache.flush();
        self.flushes.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        crate::metrics::tier(crate::metrics::TIER_FLUSHES);
    }
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Follows `feed` until the store is dropped (the task is aborted then) or the durable store
/// closes the channel (the cache then stays bypassed).
pub(super) async fn listen<C: Store + Flush>(
    cache: C,
    shared: Weak<Shared>,
    mut feed: InvalidationFeed,
) {
    while let Some(message) = feed.next().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.follow(&cache, message).await;
    }
    if let Some(shared) = shared.upgrade() {
        shared.follow(&cache, Invalidation::Lost).await;
    }
}
