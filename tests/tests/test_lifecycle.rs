//! The lifecycle suite (`sessionkit_tests::lifecycle`) on every store and combinator of the
//! conformance set, plus behaviours only a tiered store has, and the log capture of SEC-29.

use std::sync::Arc;
use std::time::Duration;

use sessionkit::{MemoryStore, SessionId, Store, TieredStore};
use sessionkit_backends::file::{Durability, FileConfig};
use sessionkit_backends::{FileStore, RedisStore};
use sessionkit_tests::lifecycle::{Client, EVERY_EVENT, every_event, harness};
use sessionkit_tests::redis_server::RedisServer;
use tempfile::TempDir;

async fn memory() -> (MemoryStore, ()) {
    (MemoryStore::new(), ())
}

async fn tiered() -> (TieredStore<MemoryStore, MemoryStore>, ()) {
    (
        TieredStore::new(MemoryStore::with_capacity(1_000), MemoryStore::new()),
        (),
    )
}

async fn arc_dyn() -> (Arc<dyn Store>, ()) {
    (Arc::new(MemoryStore::new()), ())
}

async fn file() -> (FileStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileConfig::new(dir.path().join("sessions"))
        .with_durability(Durability::NoSync)
        .open()
        .await
        .unwrap();
    (store, dir)
}

async fn tiered_file() -> (TieredStore<MemoryStore, FileStore>, TempDir) {
    let (store, dir) = file().await;
    (
        TieredStore::new(MemoryStore::with_capacity(1_000), store),
        dir,
    )
}

async fn redis() -> (RedisStore, RedisServer) {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.unwrap();
    (store, server)
}

async fn tiered_redis() -> (TieredStore<MemoryStore, RedisStore>, RedisServer) {
    let (store, server) = redis().await;
    (
        TieredStore::new(MemoryStore::with_capacity(1_000), store),
        server,
    )
}

mod memory {
    sessionkit_tests::lifecycle_suite!(super::memory);
}

mod tiered_memory_memory {
    sessionkit_tests::lifecycle_suite!(super::tiered);
}

mod arc_dyn_store {
    sessionkit_tests::lifecycle_suite!(super::arc_dyn);
}

// Timing is the manager's clock, so the same suite runs on stores on disk and on a server.
// The file store skips fsync here: durability is the file conformance suite's subject.
mod file {
    sessionkit_tests::lifecycle_suite!(super::file);
}

mod tiered_memory_file {
    sessionkit_tests::lifecycle_suite!(super::tiered_file);
}

mod redis {
    sessionkit_tests::lifecycle_suite!(super::redis);
}

mod tiered_memory_redis {
    sessionkit_tests::lifecycle_suite!(super::tiered_redis);
}

/// SEC-12 on a warm cache: logout removes the session from both tiers.
#[tokio::test]
async fn tiered_destroy_clears_both_tiers_with_a_warm_cache() {
    let (store, ()) = tiered().await;
    let h = harness(store, |c| c);
    let mut client = h.signed_in().await;
    let key = client.key();
    assert_eq!(h.n(&mut client).await, Some(1));
    let tiers = h.probe().inner();
    assert!(
        tiers.cache().load(&key).await.unwrap().is_some(),
        "warm cache"
    );
    assert!(tiers.durable().load(&key).await.unwrap().is_some());
    h.visit(&mut client, |s| s.destroy()).await;
    assert!(tiers.cache().load(&key).await.unwrap().is_none());
    assert!(tiers.durable().load(&key).await.unwrap().is_none());
}

/// SEC-04 with both tiers empty: the planted id is in neither afterwards.
#[tokio::test]
async fn tiered_unknown_id_reaches_neither_tier() {
    let (store, ()) = tiered().await;
    let h = harness(store, |c| c);
    let planted = SessionId::generate().unwrap();
    let mut victim = Client::with_cookie(planted.expose());
    h.visit(&mut victim, |s| s.insert("n", 1u32).unwrap()).await;
    let tiers = h.probe().inner();
    assert!(tiers.cache().load(&planted.key()).await.unwrap().is_none());
    assert!(
        tiers
            .durable()
            .load(&planted.key())
            .await
            .unwrap()
            .is_none()
    );
    assert_ne!(victim.cookie.as_deref(), Some(planted.expose().as_str()));
}

/// A writer the test can read back: everything the `tracing` subscriber printed.
#[derive(Clone, Default)]
struct Captured(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// SEC-29: over a full lifecycle the logs name every event, and no raw id appears in them.
#[tokio::test]
async fn logs_name_every_event_and_never_a_raw_id() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = harness(MemoryStore::new(), |c| {
        c.with_check_ip(true).with_check_user_agent(true)
    });
    let ids = every_event(&h).await;
    assert!(
        ids.len() >= 6,
        "the scenario saw too few ids: {}",
        ids.len()
    );

    let logs = String::from_utf8(captured.0.lock().clone()).unwrap();
    for event in EVERY_EVENT {
        assert!(
            logs.contains(&format!("event=\"{event}\""))
                || logs.contains(&format!("event={event}")),
            "{event} not logged:\n{logs}"
        );
    }
    for id in &ids {
        assert!(!logs.contains(id.as_str()), "a raw id was logged");
    }
}

/// SEC-15..19: the manager refuses configurations that would weaken the cookie.
#[test]
fn manager_refuses_weak_cookie_configurations() {
    use sessionkit::{Error, SameSite, SessionConfig, SessionManager};
    let refused = [
        SessionConfig::default()
            .with_cookie_name("__Host-id")
            .with_domain(Some("example.com".into())),
        SessionConfig::default()
            .with_cookie_name("__Host-id")
            .with_path("/app"),
        SessionConfig::default()
            .with_cookie_name("__Host-id")
            .with_secure(false),
        SessionConfig::default()
            .with_same_site(SameSite::None)
            .with_secure(false),
        SessionConfig::default().with_rotation_grace(Duration::from_secs(61)),
    ];
    for config in refused {
        assert!(matches!(
            SessionManager::new(MemoryStore::new(), config),
            Err(Error::Config(_))
        ));
    }
    let dev = SessionConfig::default().with_secure(false);
    assert!(SessionManager::new(MemoryStore::new(), dev).is_ok());
}

/// Web frameworks run handlers on multi-threaded runtimes: the manager's futures and the
/// loaded session must be `Send`.
#[test]
fn manager_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_sync<T: Send + Sync>() {}
    let manager = sessionkit::SessionManager::new(
        Arc::new(MemoryStore::new()) as Arc<dyn Store>,
        sessionkit::SessionConfig::default(),
    )
    .unwrap();
    let request = sessionkit::RequestInfo::new();
    let load = manager.load(&request);
    assert_send(&load);
    drop(load);
    assert_sync::<sessionkit::ActiveSession>();
    assert_sync::<sessionkit::SessionManager<MemoryStore>>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let active = runtime.block_on(manager.load(&request)).unwrap();
    let finish = manager.finish(active);
    assert_send(&finish);
}

/// SEC-12 with the cache's delete failing: the logout still succeeds (the durable tier is
/// the truth), and replaying the old cookie in this process finds no session, because the
/// tier stops trusting its cache for that key.
#[tokio::test]
async fn tiered_logout_with_failing_cache_delete_fails_closed() {
    use sessionkit_tests::failing::FailingStore;
    use std::sync::atomic::Ordering;
    let store = TieredStore::new(
        FailingStore::new(MemoryStore::with_capacity(1_000)),
        MemoryStore::new(),
    );
    let h = harness(store, |c| c);
    let mut client = h.signed_in().await;
    let old = client.clone();
    assert_eq!(h.n(&mut client).await, Some(1), "warm cache");
    let tiers = h.probe().inner();
    tiers.cache().fail.delete.store(true, Ordering::Release);
    h.visit(&mut client, |s| s.destroy()).await;
    assert!(client.cookie.is_none());
    assert!(
        tiers
            .cache()
            .inner()
            .load(&old.key())
            .await
            .unwrap()
            .is_some(),
        "the stale copy is still in the cache"
    );
    let mut replay = old.clone();
    assert_eq!(h.n(&mut replay).await, None, "but it is never served");
    assert_eq!(h.count("unknown_id"), 1);
}
