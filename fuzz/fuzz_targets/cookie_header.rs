//! The Cookie header and id parsing: arbitrary bytes, split into up to four `Cookie` header
//! values on `\n`, go through `SessionManager::load`. It must not panic, and no store call
//! may happen unless some 43-byte window of the input is an id `SessionId::parse` accepts.
//! An input starting with `!` runs on the default configuration (cookie name `__Host-id`, so
//! prefixed and case-variant names are exercised); any other on an explicit plain `id`.
#![no_main]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use libfuzzer_sys::fuzz_target;
use sessionkit::store::{ChangeSet, Grace, Loaded, Record, Removed, Result, Store};
use sessionkit::{MemoryStore, RequestInfo, SessionConfig, SessionId, SessionKey, SessionManager};

#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    calls: AtomicU64,
}

#[async_trait]
impl Store for Counting {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.create(key, record).await
    }
    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.load(key).await
    }
    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.apply(key, changes).await
    }
    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(key).await
    }
    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.rename(from, to, grace).await
    }
    async fn cleanup(&self) -> Result<u64> {
        self.inner.cleanup().await
    }
    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        self.inner.owned_by(owner).await
    }
}

fn holds_id(bytes: &[u8]) -> bool {
    bytes
        .windows(43)
        .any(|w| std::str::from_utf8(w).is_ok_and(|s| SessionId::parse(s).is_some()))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(id) = SessionId::parse(text)
    {
        assert_eq!(id.expose(), text, "a non-canonical spelling was accepted");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = Arc::new(Counting::default());
    let config = match data.first() {
        Some(b'!') => SessionConfig::default(),
        _ => SessionConfig::default().with_cookie_name("id"),
    };
    let manager = SessionManager::new(Arc::clone(&store), config).expect("config");
    let mut request = RequestInfo::new();
    for header in data.split(|&b| b == b'\n').take(4) {
        request = request.with_cookie_header(header.to_vec());
    }
    let active = rt
        .block_on(manager.load(&request))
        .expect("load never fails on input");
    assert!(active.is_new());
    if !holds_id(data) {
        assert_eq!(
            store.calls.load(Ordering::SeqCst),
            0,
            "a malformed cookie reached the store"
        );
    }
});
