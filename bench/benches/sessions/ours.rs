//! sessionkit's stores as subjects, all through the `Store` trait.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use sessionkit::store::{ChangeSet, Grace, Loaded, Record, Removed, Store};
use sessionkit::{RequestInfo, SessionConfig, SessionKey, SessionManager};

use crate::subject::{Kind, Medium, Op, Subject};
use crate::workload::{CHANGED_KEY, READ_KEY, Workload, key_bytes};

pub(crate) const TTL: Duration = Duration::from_secs(3600);

pub(crate) fn key(i: u64) -> SessionKey {
    SessionKey::from_bytes(key_bytes(i))
}

/// Any sessionkit store, driven through the `Store` trait for store operations, and through
/// a `SessionManager` (load + finish) for the read-only request.
pub(crate) struct Ours<S> {
    name: String,
    medium: Medium,
    store: Arc<CountWrites<S>>,
    manager: SessionManager<Arc<CountWrites<S>>>,
    /// Cookies of sessions made through the manager, for read-only requests.
    cookies: OnceLock<Vec<String>>,
    work: Workload,
}

/// How many sessions the manager makes for read-only requests.
const MANAGED: usize = 10_000;

impl<S: Store + 'static> Ours<S> {
    pub(crate) fn new(name: impl Into<String>, medium: Medium, store: S) -> Self {
        let store = Arc::new(CountWrites {
            inner: store,
            counting: AtomicBool::new(false),
            writes: AtomicU64::new(0),
        });
        let manager = SessionManager::new(Arc::clone(&store), SessionConfig::default())
            .expect("the default config is valid");
        Ours {
            name: name.into(),
            medium,
            store,
            manager,
            cookies: OnceLock::new(),
            work: Workload::sample(),
        }
    }

    /// Makes one session the way an application does: a request without a cookie that
    /// stores the 10 fields. Returns its cookie.
    async fn managed_session(&self) -> anyhow::Result<String> {
        let active = self.manager.load(&RequestInfo::new()).await?;
        let s = active.session();
        let w = &self.work;
        s.insert("user_id", w.user_id)?;
        s.insert("username", &w.username)?;
        s.insert("email", &w.email)?;
        s.insert("display_name", &w.display_name)?;
        s.insert("locale", &w.locale)?;
        s.insert("csrf_token", &w.csrf_token)?;
        s.insert("login_count", w.login_count)?;
        s.insert("created_at", w.created_at)?;
        s.insert("theme", &w.theme)?;
        s.insert("cart", &w.cart)?;
        let outcome = self.manager.finish(active).await?;
        let set_cookie = outcome
            .set_cookie
            .ok_or_else(|| anyhow::anyhow!("a new session with data sets a cookie"))?;
        let pair = set_cookie.split(';').next().unwrap_or_default().to_owned();
        Ok(pair)
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

    async fn prepare(&self) -> anyhow::Result<()> {
        if self.cookies.get().is_none() {
            let mut cookies = Vec::with_capacity(MANAGED);
            for _ in 0..MANAGED {
                cookies.push(self.managed_session().await?);
            }
            let _ = self.cookies.set(cookies);
        }
        Ok(())
    }

    fn count_writes(&self, on: bool) -> Option<u64> {
        self.store.counting.store(on, Ordering::Relaxed);
        Some(self.store.writes())
    }

    async fn run(&self, op: Op, i: u64, count: &mut u32) -> anyhow::Result<bool> {
        let key = key(i);
        match op {
            Op::LoadHit | Op::LoadMiss => Ok(self.store.load(&key).await?.is_some()),
            Op::ReadOnly => {
                // A request that presents its cookie, reads one key and finishes: the
                // manager decides there is nothing to write.
                let cookies = self
                    .cookies
                    .get()
                    .ok_or_else(|| anyhow::anyhow!("prepare() did not run"))?;
                let cookie = &cookies[usize::try_from(i)? % cookies.len()];
                let request = RequestInfo::new().with_cookie_header(cookie.as_bytes());
                let active = self.manager.load(&request).await?;
                if active.is_new() {
                    return Ok(false);
                }
                let name: Option<String> = active.session().get(READ_KEY)?;
                anyhow::ensure!(name.is_some(), "read key missing");
                let outcome = self.manager.finish(active).await?;
                anyhow::ensure!(
                    outcome.set_cookie.is_none(),
                    "read-only request set a cookie"
                );
                Ok(true)
            }
            Op::SaveNew => {
                let record = Record::from_parts(self.work.fields(), SystemTime::now() + TTL, None);
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

/// Counts the writes that reach a store while counting is on (only then, so the shared
/// counter costs nothing in the other measurements).
#[derive(Debug, Default)]
pub(crate) struct CountWrites<S> {
    pub(crate) inner: S,
    pub(crate) counting: AtomicBool,
    pub(crate) writes: AtomicU64,
}

impl<S> CountWrites<S> {
    pub(crate) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
    fn wrote(&self) {
        if self.counting.load(Ordering::Relaxed) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
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
    async fn delete(&self, key: &SessionKey) -> sessionkit::Result<Removed> {
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
