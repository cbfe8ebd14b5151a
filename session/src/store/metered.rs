//! [`Metered`]: a store wrapper that counts and times every operation (feature `metrics`).

use std::time::Instant;

use async_trait::async_trait;
use metrics::{counter, histogram};

use super::coherence::{Flush, InvalidationFeed, InvalidationSource};
use super::{ChangeSet, Grace, Loaded, Record, Removed, Result, Store};
use crate::id::SessionKey;
use crate::metrics::{STORE_OPERATION_SECONDS, STORE_OPERATIONS};

/// A [`Store`] that records each operation of the store it wraps: the counter
/// `sessionkit_store_operations_total` and the histogram `sessionkit_store_operation_seconds`,
/// both labelled with
///
/// - `store`: the static name given to [`Metered::new`] (`memory`, `file`, `redis`, …);
/// - `operation`: `create`, `load`, `apply`, `delete`, `rename`, `cleanup` or `owned_by`;
/// - `outcome`: `ok`; `absent` for a [`load`](Store::load) that found nothing or a
///   [`delete`](Store::delete) that removed nothing; otherwise the error's
///   [`kind`](crate::Error::kind) (`gone`, `unavailable`, …).
///
/// No key, owner or record ever becomes a label. Tiers are metered each on its own, and the
/// combination too if wanted: `Metered::new("tiered", TieredStore::new(Metered::new("memory",
/// cache), Metered::new("redis", durable)))`. `Metered` forwards [`Flush`] and
/// [`InvalidationSource`], so it fits either place in a coherent [`TieredStore`](super::TieredStore).
///
/// ```
/// use sessionkit::store::{Metered, MemoryStore, Store, TieredStore};
/// use sessionkit::SessionId;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = Metered::new(
///     "tiered",
///     TieredStore::new(
///         Metered::new("memory", MemoryStore::bounded(10_000)),
///         Metered::new("memory", MemoryStore::new()),
///     ),
/// );
/// // Recorded as store="tiered", operation="load", outcome="absent" (when a recorder is set).
/// assert!(store.load(&SessionId::generate()?.key()).await?.is_none());
/// # Ok::<(), sessionkit::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Metered<S> {
    name: &'static str,
    inner: S,
}

impl<S> Metered<S> {
    /// Wraps `inner`, labelling its operations `store = name`. The name is static: a label's
    /// set of values must stay small and fixed.
    pub fn new(name: &'static str, inner: S) -> Self {
        Metered { name, inner }
    }

    /// The store's label.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn record(&self, operation: &'static str, outcome: &'static str, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        let labels = [
            ("store", self.name),
            ("operation", operation),
            ("outcome", outcome),
        ];
        counter!(STORE_OPERATIONS, &labels).increment(1);
        histogram!(STORE_OPERATION_SECONDS, &labels).record(seconds);
    }
}

/// The `outcome` label of a result: `ok`, `absent` when `absent` says so, or the error's kind.
fn outcome<T>(result: &Result<T>, absent: impl FnOnce(&T) -> bool) -> &'static str {
    match result {
        Ok(value) if absent(value) => "absent",
        Ok(_) => "ok",
        Err(err) => err.kind(),
    }
}

#[async_trait]
impl<S: Store> Store for Metered<S> {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        let started = Instant::now();
        let result = self.inner.create(key, record).await;
        self.record("create", outcome(&result, |_| false), started);
        result
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        let started = Instant::now();
        let result = self.inner.load(key).await;
        self.record("load", outcome(&result, Option::is_none), started);
        result
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        let started = Instant::now();
        let result = self.inner.apply(key, changes).await;
        self.record("apply", outcome(&result, |_| false), started);
        result
    }

    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        let started = Instant::now();
        let result = self.inner.delete(key).await;
        self.record(
            "delete",
            outcome(&result, |removed| matches!(removed, Removed::Nothing)),
            started,
        );
        result
    }

    async fn rename(&self, key: &SessionKey, to: &SessionKey, grace: Option<&Grace>) -> Result<()> {
        let started = Instant::now();
        let result = self.inner.rename(key, to, grace).await;
        self.record("rename", outcome(&result, |_| false), started);
        result
    }

    async fn cleanup(&self) -> Result<u64> {
        let started = Instant::now();
        let result = self.inner.cleanup().await;
        self.record("cleanup", outcome(&result, |_| false), started);
        result
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        let started = Instant::now();
        let result = self.inner.owned_by(owner).await;
        self.record("owned_by", outcome(&result, |_| false), started);
        result
    }
}

impl<S: Flush> Flush for Metered<S> {
    fn flush(&self) {
        self.inner.flush();
    }
}

impl<S: InvalidationSource> InvalidationSource for Metered<S> {
    fn invalidations(&self) -> InvalidationFeed {
        self.inner.invalidations()
    }
}
