//! sessionkit's stores as subjects, all through the `Store` trait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use sessionkit::store::{ChangeSet, Grace, Loaded, Record, Store};
use sessionkit::{Session, SessionKey};

use crate::subject::{Kind, Medium, Op, Subject};
use crate::workload::{CHANGED_KEY, READ_KEY, Workload, key_bytes};

pub(crate) const TTL: Duration = Duration::from_secs(3600);

pub(crate) fn key(i: u64) -> SessionKey {
    SessionKey::from_bytes(key_bytes(i))
}

/// Any sessionkit store, driven as an application would through the `Store` trait.
pub(crate) struct Ours<S> {
    name: String,
    medium: Medium,
    store: S,
    work: Workload,
}

impl<S: Store + 'static> Ours<S> {
    pub(crate) fn new(name: impl Into<String>, medium: Medium, store: S) -> Self {
        Ours {
            name: name.into(),
            medium,
            store,
            work: Workload::sample(),
        }
    }

    pub(crate) fn store(&self) -> &S {
        &self.store
    }
}

impl<S: Store + 'static> Subject for Ours<S> {
    type Scratch = u32;

    fn name(&self) -> String {
        self.name.clone()
    }
    fn kind(&self) -> Kind {
        Kind::Ours
    }
    fn medium(&self) -> Medium {
        self.medium
    }
    fn scratch(&self) -> u32 {
        self.work.login_count
    }

    async fn run(&self, op: Op, i: u64, count: &mut u32) -> anyhow::Result<bool> {
        let key = key(i);
        match op {
            Op::LoadHit | Op::LoadMiss => Ok(self.store.load(&key).await?.is_some()),
            Op::ReadOnly => {
                let Some(loaded) = self.store.load(&key).await? else {
                    return Ok(false);
                };
                let session = Session::from_fields(loaded.record.fields);
                let name: Option<String> = session.get(READ_KEY)?;
                anyhow::ensure!(name.is_some(), "read key missing");
                // A request that only read has nothing to save.
                anyhow::ensure!(!session.is_modified(), "read-only request modified");
                Ok(true)
            }
            Op::SaveNew => {
                let record = Record {
                    fields: self.work.fields(),
                    expires_at: SystemTime::now() + TTL,
                    owner: None,
                };
                self.store.create(&key, &record).await?;
                Ok(true)
            }
            Op::SaveChanged => {
                *count = count.wrapping_add(1);
                let mut changes = ChangeSet::default();
                changes.set.insert(
                    CHANGED_KEY.to_owned(),
                    Bytes::from(rmp_serde::to_vec_named(count)?),
                );
                self.store.apply(&key, &changes).await?;
                Ok(true)
            }
            Op::Delete => {
                self.store.delete(&key).await?;
                Ok(true)
            }
        }
    }
}

/// Counts the writes that reach a store, to check that a read-only request makes none.
#[derive(Debug, Default)]
pub(crate) struct CountWrites<S> {
    pub(crate) inner: S,
    pub(crate) writes: AtomicU64,
}

impl<S> CountWrites<S> {
    pub(crate) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl<S: Store> Store for CountWrites<S> {
    async fn create(&self, key: &SessionKey, record: &Record) -> sessionkit::Result<()> {
        self.wrote();
        self.inner.create(key, record).await
    }
    async fn load(&self, key: &SessionKey) -> sessionkit::Result<Option<Loaded>> {
        self.inner.load(key).await
    }
    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> sessionkit::Result<()> {
        self.wrote();
        self.inner.apply(key, changes).await
    }
    async fn delete(&self, key: &SessionKey) -> sessionkit::Result<()> {
        self.wrote();
        self.inner.delete(key).await
    }
    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> sessionkit::Result<()> {
        self.wrote();
        self.inner.rename(from, to, grace).await
    }
    async fn cleanup(&self) -> sessionkit::Result<u64> {
        self.inner.cleanup().await
    }
    async fn owned_by(&self, owner: &str) -> sessionkit::Result<Vec<SessionKey>> {
        self.inner.owned_by(owner).await
    }
}
