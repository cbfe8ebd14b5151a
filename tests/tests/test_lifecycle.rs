//! The lifecycle suite (`sessionkit_tests::lifecycle`) on every store setup the conformance
//! suite runs on (`sessionkit_tests::setups`), plus behaviours only a tiered store has. The log
//! capture of SEC-29 is in `test_log_capture.rs`, alone in its process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::sync::Arc;
use std::time::Duration;

use sessionkit::{MemoryStore, SessionId, Store, TieredStore};
use sessionkit_tests::lifecycle::{Client, harness};

// Every setup of `sessionkit_tests::setups`, as the conformance suite. Timing is the manager's
// clock, so the same suite runs on stores on disk and on servers.
mod memory {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::memory::make);
}

mod memory_bounded {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::memory_bounded::make);
}

mod tiered_memory_memory {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::tiered_memory_memory::make);
}

mod boxed_dyn {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::boxed_dyn::make);
}

mod arc_dyn_tiered {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::arc_dyn_tiered::make);
}

mod tiered_dead_cache {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::tiered_dead_cache::make);
}

mod tiered_nested {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::tiered_nested::make);
}

mod file {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::file::make);
}

mod file_nosync {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::file_nosync::make);
}

mod tiered_memory_file {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::tiered_memory_file::make);
}

mod sqlite {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::sqlite::make);
}

mod tiered_memory_sqlite {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::tiered_memory_sqlite::make);
}

mod redis {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::redis::make);
}

mod redis_cluster {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::redis_cluster::make);
}

mod tiered_memory_redis {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::tiered_memory_redis::make);
}

mod tiered_redis_memory {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::tiered_redis_memory::make);
}

mod tiered_redis_file {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::tiered_redis_file::make);
}

mod tiered_dead_redis_file {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::tiered_dead_redis_file::make);
}

mod postgres {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::postgres::make);
}

mod tiered_memory_postgres {
    sessionkit_tests::lifecycle_suite!(sessionkit_tests::setups::tiered_memory_postgres::make);
}

/// SEC-12 on a warm cache: logout removes the session from both tiers.
#[tokio::test]
async fn tiered_destroy_clears_both_tiers_with_a_warm_cache() {
    let (store, ()) = sessionkit_tests::setups::tiered_memory_memory::make().await;
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
    let (store, ()) = sessionkit_tests::setups::tiered_memory_memory::make().await;
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
    use sessionkit_tests::probe::Probe;
    use std::sync::atomic::Ordering;
    let store = TieredStore::new(Probe::new(MemoryStore::bounded(1_000)), MemoryStore::new());
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
