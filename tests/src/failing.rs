//! A store that fails on command, to test what callers do when a tier breaks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use sessionkit::SessionKey;
use sessionkit::store::{ChangeSet, Error, Grace, Loaded, Record, Removed, Result, Store};

/// Which operations fail.
#[derive(Debug, Default)]
pub struct Switches {
    /// `create` fails.
    pub create: AtomicBool,
    /// `load` fails.
    pub load: AtomicBool,
    /// `apply` fails.
    pub apply: AtomicBool,
    /// `delete` fails.
    pub delete: AtomicBool,
    /// `rename` fails.
    pub rename: AtomicBool,
    /// `cleanup` fails.
    pub cleanup: AtomicBool,
    /// `owned_by` fails.
    pub owned_by: AtomicBool,
}

/// Wraps a store; each operation fails with [`Error::Unavailable`] while its switch is on,
/// without reaching the inner store.
#[derive(Debug, Default)]
pub struct FailingStore<S> {
    inner: S,
    /// The switches, one per operation.
    pub fail: Switches,
    /// How many operations failed on command.
    pub failures: AtomicU64,
}

impl<S: Store> FailingStore<S> {
    /// Wraps `inner` with every switch off.
    pub fn new(inner: S) -> Self {
        FailingStore {
            inner,
            fail: Switches::default(),
            failures: AtomicU64::new(0),
        }
    }

    /// Wraps `inner` with every switch on: a dead tier.
    pub fn dead(inner: S) -> Self {
        let s = Self::new(inner);
        s.set_all(true);
        s
    }

    /// Turns every switch on or off.
    pub fn set_all(&self, on: bool) {
        for flag in [
            &self.fail.create,
            &self.fail.load,
            &self.fail.apply,
            &self.fail.delete,
            &self.fail.rename,
            &self.fail.cleanup,
            &self.fail.owned_by,
        ] {
            flag.store(on, Ordering::SeqCst);
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self, flag: &AtomicBool, op: &str) -> Result<()> {
        if flag.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            Err(Error::unavailable(format!("{op} failed on command")))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl<S: Store> Store for FailingStore<S> {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        self.check(&self.fail.create, "create")?;
        self.inner.create(key, record).await
    }
    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        self.check(&self.fail.load, "load")?;
        self.inner.load(key).await
    }
    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        self.check(&self.fail.apply, "apply")?;
        self.inner.apply(key, changes).await
    }
    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        self.check(&self.fail.delete, "delete")?;
        self.inner.delete(key).await
    }
    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        self.check(&self.fail.rename, "rename")?;
        self.inner.rename(from, to, grace).await
    }
    async fn cleanup(&self) -> Result<u64> {
        self.check(&self.fail.cleanup, "cleanup")?;
        self.inner.cleanup().await
    }
    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        self.check(&self.fail.owned_by, "owned_by")?;
        self.inner.owned_by(owner).await
    }
}
