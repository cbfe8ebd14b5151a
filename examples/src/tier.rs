//! Which store tier answered a request's session load, for the example page: a cache tier is
//! wrapped in [`Witness`], which notes each hit in a task-local the page's handler scopes
//! with [`observe`]. Nothing here knows a session id; it only tells "the cache had it".

use std::cell::Cell;
use std::future::Future;

use async_trait::async_trait;
use sessionkit::SessionKey;
use sessionkit::store::{ChangeSet, Flush, Grace, Loaded, Record, Removed, Result, Store};

tokio::task_local! {
    static ANSWERED: Cell<bool>;
}

/// A cache tier that notes, for the request being observed, that it answered a load.
#[derive(Debug, Clone)]
pub struct Witness<S> {
    inner: S,
}

impl<S> Witness<S> {
    /// Wraps a cache tier.
    pub fn new(inner: S) -> Self {
        Witness { inner }
    }
}

/// Which tier answered the observed load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The cache tier had the session.
    Cache,
    /// The durable store answered (or the only store, when there are no tiers).
    Durable,
}

/// Runs `load` (a session load) and tells whether a [`Witness`] cache answered it.
pub async fn observe<F: Future>(load: F) -> (F::Output, Tier) {
    ANSWERED
        .scope(Cell::new(false), async move {
            let out = load.await;
            let hit = ANSWERED.try_with(Cell::get).unwrap_or(false);
            (out, if hit { Tier::Cache } else { Tier::Durable })
        })
        .await
}

#[async_trait]
impl<S: Store> Store for Witness<S> {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        self.inner.create(key, record).await
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        let loaded = self.inner.load(key).await;
        if matches!(loaded, Ok(Some(_))) {
            // Outside an observed request there is nothing to note.
            let _ = ANSWERED.try_with(|answered| answered.set(true));
        }
        loaded
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        self.inner.apply(key, changes).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        self.inner.delete(key).await
    }

    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        self.inner.rename(from, to, grace).await
    }

    async fn cleanup(&self) -> Result<u64> {
        self.inner.cleanup().await
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        self.inner.owned_by(owner).await
    }
}

/// A coherent tier flushes its cache when the invalidation channel is lost.
impl<S: Flush> Flush for Witness<S> {
    fn flush(&self) {
        self.inner.flush();
    }
}
