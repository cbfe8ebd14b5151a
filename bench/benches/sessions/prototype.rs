//! Prototype stores, measured only on request (`cargo bench -p sessionkit-bench --
//! prototype`), to size changes proposed in notes/bench.md. They implement only what the
//! benchmark calls.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use sessionkit::SessionKey;
use sessionkit::store::{ChangeSet, Error, Grace, Loaded, Record, Removed, Result, Store};

fn unsupported() -> Error {
    Error::unavailable("not implemented by the prototype")
}

/// `MemoryStore`'s own design (moka, copy-on-write saves through `and_compute_with`) minus
/// the per-entry expiry policy: expiry is only checked on read. Separates what moka's timer
/// wheel costs from what copying the record costs.
pub(crate) struct MokaLazyExpiry {
    entries: moka::sync::Cache<SessionKey, Arc<Record>>,
}

impl MokaLazyExpiry {
    pub(crate) fn new() -> Self {
        MokaLazyExpiry {
            entries: moka::sync::Cache::builder().build(),
        }
    }
}

#[async_trait]
impl Store for MokaLazyExpiry {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        use moka::ops::compute::{CompResult, Op};
        let now = SystemTime::now();
        let fresh = Arc::new(record.clone());
        match self
            .entries
            .entry(*key)
            .and_compute_with(|existing| match existing {
                Some(e) if !e.value().is_expired_at(now) => Op::Nop,
                _ => Op::Put(fresh),
            }) {
            CompResult::Inserted(_) | CompResult::ReplacedWith(_) => Ok(()),
            _ => Err(Error::AlreadyExists),
        }
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        let now = SystemTime::now();
        Ok(self
            .entries
            .get(key)
            .filter(|r| !r.is_expired_at(now))
            .map(|r| Loaded::from((*r).clone())))
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        use moka::ops::compute::{CompResult, Op};
        let now = SystemTime::now();
        match self
            .entries
            .entry(*key)
            .and_compute_with(|existing| match existing {
                Some(e) if !e.value().is_expired_at(now) => {
                    let mut next = (**e.value()).clone();
                    match next.apply(changes) {
                        Ok(()) => Op::Put(Arc::new(next)),
                        Err(_) => Op::Nop,
                    }
                }
                _ => Op::Nop,
            }) {
            CompResult::ReplacedWith(_) => Ok(()),
            _ => Err(Error::Gone),
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        let removed = self.entries.remove(key);
        Ok(if removed.is_some() {
            Removed::Record
        } else {
            Removed::Nothing
        })
    }

    async fn rename(&self, _: &SessionKey, _: &SessionKey, _: Option<&Grace>) -> Result<()> {
        Err(unsupported())
    }

    async fn cleanup(&self) -> Result<u64> {
        Err(unsupported())
    }

    async fn owned_by(&self, _: &str) -> Result<Vec<SessionKey>> {
        Err(unsupported())
    }
}

/// sessionkit's `RedisStore` with its load replaced by one plain `HGETALL` (no script), the
/// record parsed client-side; everything else is the real store. Sizes the proposal in
/// notes/bench.md. Aliases are not followed (the benchmark makes none).
pub(crate) struct RedisPlainLoad {
    store: sessionkit_backends::RedisStore,
    conn: redis::aio::MultiplexedConnection,
}

impl RedisPlainLoad {
    pub(crate) async fn open(url: &str) -> anyhow::Result<Self> {
        Ok(RedisPlainLoad {
            store: sessionkit_backends::RedisStore::open(url).await?,
            conn: redis::Client::open(url)?
                .get_multiplexed_async_connection()
                .await?,
        })
    }
}

#[async_trait]
impl Store for RedisPlainLoad {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        self.store.create(key, record).await
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        let mut conn = self.conn.clone();
        let flat: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(self.store.redis_key(key))
            .query_async(&mut conn)
            .await
            .map_err(|e| Error::unavailable(e.to_string()))?;
        if flat.is_empty() {
            return Ok(None);
        }
        let mut record = Record::new(SystemTime::UNIX_EPOCH);
        for (name, value) in flat {
            if let Some(field) = name.strip_prefix(b"f:") {
                let field = String::from_utf8(field.to_vec())
                    .map_err(|e| Error::corrupt("field name", e))?;
                record.fields.insert(field, value.into());
            } else if name == b"m:exp" {
                let ms = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| Error::unavailable("bad expiry"))?;
                record.expires_at = sessionkit::from_millis(ms);
            }
        }
        Ok((!record.is_expired_at(SystemTime::now())).then(|| Loaded::from(record)))
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        self.store.apply(key, changes).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        self.store.delete(key).await
    }

    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        self.store.rename(from, to, grace).await
    }

    async fn cleanup(&self) -> Result<u64> {
        self.store.cleanup().await
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        self.store.owned_by(owner).await
    }
}
