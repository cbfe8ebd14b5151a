//! TieredStore's failure rules, with a tier that fails on command.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use sessionkit::SessionKey;
use sessionkit::store::{
    ChangeSet, Error, Grace, Invalidation, InvalidationFeed, InvalidationHub, InvalidationSource,
    Loaded, MemoryStore, Record, Removed, Store, TieredStore,
};
use sessionkit_tests::conformance::{enc, fresh_key, in_ms, record};
use sessionkit_tests::probe::Probe;

type Tiered = TieredStore<Probe<MemoryStore>, Probe<MemoryStore>>;

fn tiered() -> Tiered {
    TieredStore::new(
        Probe::new(MemoryStore::new()),
        Probe::new(MemoryStore::new()),
    )
}

fn set(k: &str, v: u32) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.set.insert(k.into(), enc(v));
    c
}

#[tokio::test]
async fn a_failing_cache_never_fails_a_request() {
    let store = tiered();
    let key = fresh_key();
    store.create(&key, &record(&[("a", enc(1))])).await.unwrap();
    store.cache().set_all(true);
    assert!(store.load(&key).await.unwrap().is_some());
    store.apply(&key, &set("b", 2)).await.unwrap();
    let other = fresh_key();
    store.create(&other, &record(&[])).await.unwrap();
    store.delete(&other).await.unwrap();
    let moved = fresh_key();
    store.rename(&key, &moved, None).await.unwrap();
    assert!(store.load(&moved).await.unwrap().is_some());
    store.cleanup().await.unwrap();
    assert!(store.stats().cache_errors >= 6, "{:?}", store.stats());
}

#[tokio::test]
async fn a_failing_durable_tier_fails_and_the_cache_holds_nothing_it_lacks() {
    let store = tiered();
    let key = fresh_key();
    store.durable().fail.create.store(true, Ordering::SeqCst);
    let err = store
        .create(&key, &record(&[("a", enc(1))]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(store.cache().inner().load(&key).await.unwrap().is_none());
    store.durable().set_all(false);

    store.create(&key, &record(&[("a", enc(1))])).await.unwrap();
    store.load(&key).await.unwrap();
    store.durable().fail.apply.store(true, Ordering::SeqCst);
    assert!(store.apply(&key, &set("a", 2)).await.is_err());
    // The cache dropped its copy rather than keep a change the durable tier may lack.
    assert!(store.cache().inner().load(&key).await.unwrap().is_none());
    store.durable().set_all(false);
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.record.fields.get("a"), Some(&enc(1)));

    store.durable().fail.load.store(true, Ordering::SeqCst);
    let miss = fresh_key();
    assert!(store.load(&miss).await.is_err());
}

#[tokio::test]
async fn logout_with_a_failing_cache_delete_does_not_revive_the_session() {
    let store = tiered();
    let key = fresh_key();
    store
        .create(&key, &record(&[("user", enc(1))]))
        .await
        .unwrap();
    assert!(store.load(&key).await.unwrap().is_some());
    store.cache().fail.delete.store(true, Ordering::SeqCst);
    store.delete(&key).await.unwrap();
    // The stale cache copy is still there, but this process no longer trusts it.
    assert!(store.cache().inner().load(&key).await.unwrap().is_some());
    assert!(store.load(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn strict_invalidation_reports_a_failed_cache_delete() {
    let store = tiered().with_strict_invalidation(true);
    let key = fresh_key();
    store
        .create(&key, &record(&[("user", enc(1))]))
        .await
        .unwrap();
    store.cache().fail.delete.store(true, Ordering::SeqCst);
    let err = store.delete(&key).await.unwrap_err();
    // The error says the delete happened (so a logout is not retried as if it had not), what
    // it removed, and why the cache is stale.
    assert!(err.committed(), "{err:?}");
    let Error::CacheNotInvalidated { source, removed } = &err else {
        panic!("{err:?}")
    };
    assert!(matches!(**source, Error::Unavailable { .. }), "{err:?}");
    assert_eq!(*removed, Some(Removed::Record));
    assert!(store.durable().inner().load(&key).await.unwrap().is_none());
    assert!(store.load(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn cache_entries_never_outlive_the_record_or_the_cap() {
    let store = tiered().with_max_cache_ttl(Duration::from_millis(300));
    let key = fresh_key();
    store.create(&key, &record(&[("a", enc(1))])).await.unwrap();
    let cached = store.cache().inner().load(&key).await.unwrap().unwrap();
    assert!(cached.record.expires_at <= in_ms(300));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The cache forgot it; the durable tier still has it and refills the cache.
    assert!(store.cache().inner().load(&key).await.unwrap().is_none());
    assert!(store.load(&key).await.unwrap().is_some());
    assert!(store.cache().inner().load(&key).await.unwrap().is_some());

    // A short-lived record is cached no longer than it lives (SEC-11).
    let short = fresh_key();
    let mut r = record(&[("a", enc(1))]);
    r.expires_at = in_ms(200);
    let store = tiered();
    store.create(&short, &r).await.unwrap();
    let cached = store.cache().inner().load(&short).await.unwrap().unwrap();
    assert!(cached.record.expires_at <= r.expires_at);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store.load(&short).await.unwrap().is_none());
}

#[tokio::test]
async fn stats_count_hits_misses_and_errors() {
    let store = tiered();
    let key = fresh_key();
    store.durable().create(&key, &record(&[])).await.unwrap();
    store.load(&key).await.unwrap(); // miss, fills
    store.load(&key).await.unwrap(); // hit
    store.load(&fresh_key()).await.unwrap(); // miss
    store.cache().fail.load.store(true, Ordering::SeqCst);
    store.load(&key).await.unwrap(); // cache error, durable answers
    let s = store.stats();
    assert_eq!((s.hits, s.misses, s.cache_errors), (1, 3, 1), "{s:?}");
}

#[tokio::test]
async fn a_cache_fill_never_shadows_a_newer_write() {
    let store = tiered();
    let key = fresh_key();
    store.create(&key, &record(&[("v", enc(1))])).await.unwrap();
    store.apply(&key, &set("v", 2)).await.unwrap();
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.record.fields.get("v"), Some(&enc(2)));
    // Written straight to the durable tier behind the cache's back (another process):
    // the cache serves its copy until it expires — the documented per-process staleness.
    store.durable().apply(&key, &set("v", 3)).await.unwrap();
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.record.fields.get("v"), Some(&enc(2)));
    // Told of that write (what a cross-process invalidation does), the cache drops its copy.
    store.invalidate(&key).await.unwrap();
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.record.fields.get("v"), Some(&enc(3)));
    // A save through the tiered store merges in the durable tier: nothing is lost.
    store.apply(&key, &set("w", 4)).await.unwrap();
    let durable = store.durable().load(&key).await.unwrap().unwrap();
    assert_eq!(durable.record.fields.get("v"), Some(&enc(3)));
    assert_eq!(durable.record.fields.get("w"), Some(&enc(4)));
}

/// A durable store with an invalidation channel driven by the test, standing in for a store
/// shared with other processes.
#[derive(Debug, Clone)]
struct Announcing {
    inner: MemoryStore,
    hub: InvalidationHub,
}

#[async_trait::async_trait]
impl Store for Announcing {
    async fn create(&self, key: &SessionKey, record: &Record) -> sessionkit::Result<()> {
        self.inner.create(key, record).await
    }
    async fn load(&self, key: &SessionKey) -> sessionkit::Result<Option<Loaded>> {
        self.inner.load(key).await
    }
    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> sessionkit::Result<()> {
        self.inner.apply(key, changes).await
    }
    async fn delete(&self, key: &SessionKey) -> sessionkit::Result<Removed> {
        self.inner.delete(key).await
    }
    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> sessionkit::Result<()> {
        self.inner.rename(from, to, grace).await
    }
    async fn cleanup(&self) -> sessionkit::Result<u64> {
        self.inner.cleanup().await
    }
    async fn owned_by(&self, owner: &str) -> sessionkit::Result<Vec<SessionKey>> {
        self.inner.owned_by(owner).await
    }
}

impl InvalidationSource for Announcing {
    fn invalidations(&self) -> InvalidationFeed {
        self.hub.subscribe()
    }
}

/// Waits (up to 10 s, generous for a shared machine) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A coherent tiered store drops a cached session when the channel announces another
/// process's write, bypasses and flushes its cache while the channel is lost, and caches
/// again once it is restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coherent_cache_follows_the_channel_and_fails_safe() {
    let durable = Announcing {
        inner: MemoryStore::new(),
        hub: InvalidationHub::new(64),
    };
    durable.hub.restored();
    let store = TieredStore::coherent(MemoryStore::bounded(1_000), durable.clone()).unwrap();
    assert!(store.is_coherent() && store.cache_trusted());
    let key = fresh_key();
    store.create(&key, &record(&[("v", enc(1))])).await.unwrap();
    store.load(&key).await.unwrap();
    assert!(store.cache().load(&key).await.unwrap().is_some(), "cached");

    // Another process writes (straight to the shared durable store) and announces it.
    durable.inner.apply(&key, &set("v", 2)).await.unwrap();
    durable.hub.key(key);
    eventually("the invalidation", || store.stats().invalidations == 1).await;
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.record.fields.get("v"), Some(&enc(2)));

    // The channel is lost: nothing cached is served, nothing is filled.
    store.load(&key).await.unwrap();
    durable.hub.lost();
    eventually("the outage", || !store.cache_trusted()).await;
    assert!(store.cache().load(&key).await.unwrap().is_none(), "flushed");
    // A write the channel could not announce.
    durable.inner.apply(&key, &set("v", 3)).await.unwrap();
    let hits = store.stats().hits;
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.record.fields.get("v"), Some(&enc(3)));
    assert_eq!(store.stats().hits, hits, "no cache read during the outage");
    assert!(store.cache().load(&key).await.unwrap().is_none(), "no fill");

    // Back: caching resumes, from an empty cache.
    durable.hub.restored();
    eventually("the recovery", || store.cache_trusted()).await;
    store.load(&key).await.unwrap();
    store.load(&key).await.unwrap();
    assert_eq!(store.stats().hits, hits + 1);
    let s = store.stats();
    assert_eq!(s.outages, 1, "{s:?}");
    assert_eq!(
        s.flushes, 2,
        "one at the outage, one at the recovery: {s:?}"
    );
}

/// A subscriber that falls behind the channel flushes (it missed keys) and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_that_falls_behind_reports_a_loss_then_recovers() {
    let hub = InvalidationHub::new(2);
    hub.restored();
    let mut feed = hub.subscribe();
    assert!(feed.listening());
    for _ in 0..5 {
        hub.key(fresh_key());
    }
    assert_eq!(feed.next().await, Some(Invalidation::Lost));
    assert_eq!(feed.next().await, Some(Invalidation::Restored));
}

/// Outside a runtime the coherent form is a configuration error, not a panic.
#[test]
fn coherent_needs_a_runtime() {
    let durable = Announcing {
        inner: MemoryStore::new(),
        hub: InvalidationHub::new(4),
    };
    let err = TieredStore::coherent(MemoryStore::new(), durable).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}
