//! A store wrapper that counts the calls reaching the store, to prove what did not happen.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use sessionkit::SessionKey;
use sessionkit::store::{ChangeSet, Grace, Loaded, Record, Removed, Result, Store};

/// Calls per operation, since the wrapper was built.
#[derive(Debug, Default)]
pub struct Calls {
    /// `create` calls.
    pub create: AtomicU64,
    /// `load` calls.
    pub load: AtomicU64,
    /// `apply` calls.
    pub apply: AtomicU64,
    /// `delete` calls.
    pub delete: AtomicU64,
    /// `rename` calls.
    pub rename: AtomicU64,
    /// `cleanup` calls.
    pub cleanup: AtomicU64,
    /// `owned_by` calls.
    pub owned_by: AtomicU64,
}

/// A snapshot of [`Calls`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// `create` calls.
    pub create: u64,
    /// `load` calls.
    pub load: u64,
    /// `apply` calls.
    pub apply: u64,
    /// `delete` calls.
    pub delete: u64,
    /// `rename` calls.
    pub rename: u64,
}

impl CallCounts {
    /// Calls that write: create, apply, delete, rename.
    pub fn writes(&self) -> u64 {
        self.create + self.apply + self.delete + self.rename
    }

    /// Every call counted here.
    pub fn total(&self) -> u64 {
        self.writes() + self.load
    }
}

/// Wraps a store and counts every call that reaches it.
#[derive(Debug, Default)]
pub struct CountingStore<S> {
    inner: S,
    /// The counters.
    pub calls: Calls,
}

impl<S: Store> CountingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        CountingStore {
            inner,
            calls: Calls::default(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The counts so far.
    pub fn counts(&self) -> CallCounts {
        let c = &self.calls;
        CallCounts {
            create: c.create.load(Ordering::SeqCst),
            load: c.load.load(Ordering::SeqCst),
            apply: c.apply.load(Ordering::SeqCst),
            delete: c.delete.load(Ordering::SeqCst),
            rename: c.rename.load(Ordering::SeqCst),
        }
    }
}

#[async_trait]
impl<S: Store> Store for CountingStore<S> {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        self.calls.create.fetch_add(1, Ordering::SeqCst);
        self.inner.create(key, record).await
    }
    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        self.calls.load.fetch_add(1, Ordering::SeqCst);
        self.inner.load(key).await
    }
    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        self.calls.apply.fetch_add(1, Ordering::SeqCst);
        self.inner.apply(key, changes).await
    }
    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        self.calls.delete.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(key).await
    }
    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        self.calls.rename.fetch_add(1, Ordering::SeqCst);
        self.inner.rename(from, to, grace).await
    }
    async fn cleanup(&self) -> Result<u64> {
        self.calls.cleanup.fetch_add(1, Ordering::SeqCst);
        self.inner.cleanup().await
    }
    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        self.calls.owned_by.fetch_add(1, Ordering::SeqCst);
        self.inner.owned_by(owner).await
    }
}
