//! Coherent caches over Redis (issue 14): two app servers, each with its own memory tier over
//! one shared Redis, never serve a session the other changed or ended once Redis announced
//! it, and never serve a cached copy across an outage of the announcements.
//!
//! Each test starts its own redis-server (or cluster) on a free port; the latencies observed
//! are printed (run with `--nocapture`), the figures are measured in `bench/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "test code: a failed expectation fails the test; figures are printed to the test log"
)]

use std::future::Future;
use std::time::{Duration, Instant};

use sessionkit::store::{ChangeSet, InvalidationSource, MemoryStore, Record, Store, TieredStore};
use sessionkit::{SessionConfig, SessionKey, SessionManager};
use sessionkit_backends::{RedisConfig, RedisStore};
use sessionkit_tests::conformance::{enc, fresh_key, record};
use sessionkit_tests::redis_server::{RedisCluster, RedisServer};

type Coherent = TieredStore<MemoryStore, RedisStore>;

/// How long a change may take to reach the other store before the test fails: generous, the
/// bound itself is measured by the benchmark.
const LIMIT: Duration = Duration::from_secs(10);

fn config(redis: RedisConfig) -> RedisConfig {
    redis
        .with_connect_timeout(Duration::from_millis(300))
        .with_response_timeout(Duration::from_millis(500))
}

/// One app server's store: its own connection to Redis, its own memory tier.
async fn app_server(redis: RedisConfig) -> Coherent {
    let durable = RedisStore::connect(config(redis)).await.unwrap();
    let store = TieredStore::coherent(MemoryStore::bounded(1_000), durable).unwrap();
    poll("the invalidation channel to listen", || async {
        store.cache_trusted()
    })
    .await;
    store
}

/// Polls `check` until it holds; returns how long that took, and fails past [`LIMIT`].
async fn poll<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn set(name: &str, v: u32) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.set.insert(name.into(), enc(v));
    c
}

fn owned(owner: &str, v: u32) -> Record {
    let mut r = record(&[("v", enc(v))]);
    r.owner = Some(owner.into());
    r
}

/// The value of `v` that `store` serves for `key` (`None`: no session).
async fn served(store: &Coherent, key: &SessionKey) -> Option<bytes::Bytes> {
    let loaded = store.load(key).await.unwrap()?;
    Some(loaded.record.fields.get("v").cloned().unwrap_or_default())
}

/// `b` serves `key` from its memory tier. The announcement of the write that stored it may
/// reach `b` after `b`'s first fill (and drop it), so load until the copy stays.
async fn cache_it(b: &Coherent, key: &SessionKey) {
    poll("B caches the session", || async {
        b.load(key).await.unwrap();
        b.cache().load(key).await.unwrap().is_some()
    })
    .await;
}

/// A write, a logout and a log-out-everywhere made on A are seen on B.
async fn changes_on_a_are_seen_on_b(a: Coherent, b: Coherent, setup: &str) {
    let a = std::sync::Arc::new(a);
    let before = b.stats().invalidations;

    // A write.
    let key = fresh_key();
    a.create(&key, &owned("alice", 1)).await.unwrap();
    cache_it(&b, &key).await;
    a.apply(&key, &set("v", 2)).await.unwrap();
    let write = poll("B sees A's write", || async {
        served(&b, &key).await == Some(enc(2))
    })
    .await;

    // A logout.
    cache_it(&b, &key).await;
    let manager = SessionManager::new(std::sync::Arc::clone(&a), SessionConfig::default()).unwrap();
    a.delete(&key).await.unwrap();
    let logout = poll("B sees A's logout", || async {
        served(&b, &key).await.is_none()
    })
    .await;

    // Log out everywhere: two sessions of one owner, both cached by B.
    let (k1, k2) = (fresh_key(), fresh_key());
    for k in [&k1, &k2] {
        a.create(k, &owned("bob", 7)).await.unwrap();
        cache_it(&b, k).await;
    }
    assert_eq!(manager.revoke_owner("bob").await.unwrap(), 2);
    let revoke = poll("B sees A's revocation", || async {
        served(&b, &k1).await.is_none() && served(&b, &k2).await.is_none()
    })
    .await;

    let s = b.stats();
    assert!(s.invalidations > before, "{s:?}");
    assert_eq!(s.outages, 0, "{s:?}");
    eprintln!(
        "{setup}: seen on B after write {write:?}, logout {logout:?}, revoke {revoke:?} \
         (polled; {} invalidations received)",
        s.invalidations - before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_changes_on_one_server_reach_the_other() {
    let server = RedisServer::start();
    let a = app_server(RedisConfig::new(server.url())).await;
    let b = app_server(RedisConfig::new(server.url())).await;
    changes_on_a_are_seen_on_b(a, b, "standalone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_changes_on_one_server_reach_the_other() {
    let cluster = RedisCluster::start();
    let a = app_server(RedisConfig::cluster(cluster.urls())).await;
    let b = app_server(RedisConfig::cluster(cluster.urls())).await;
    changes_on_a_are_seen_on_b(a, b, "cluster").await;
}

/// Redis is killed after B cached a session and restarted (with its data, from the
/// append-only file); A writes as soon as Redis is back, before B's channel can have
/// reconnected. B stops trusting its cache during the outage and never serves the old copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_never_serves_the_old_copy() {
    let mut server =
        RedisServer::start_with_args(&["--appendonly", "yes", "--appendfsync", "always"]);
    let a = app_server(RedisConfig::new(server.url())).await;
    let b = app_server(RedisConfig::new(server.url())).await;
    let key = fresh_key();
    a.create(&key, &record(&[("v", enc(1))])).await.unwrap();
    cache_it(&b, &key).await;
    let outages = b.stats().outages;

    server.stop();
    let noticed = poll("B stops trusting its cache", || async {
        !b.cache_trusted()
    })
    .await;
    assert!(
        b.cache().load(&key).await.unwrap().is_none(),
        "B's cache was flushed"
    );
    assert!(
        b.load(&key).await.is_err(),
        "while Redis is down B cannot answer from its cache"
    );

    server.restart();
    // A's first request may spend its retry on reconnecting.
    poll("A's write after the restart", || async {
        a.apply(&key, &set("v", 2)).await.is_ok()
    })
    .await;
    let failed = std::cell::Cell::new(0);
    poll("B reads again", || async {
        match b.load(&key).await {
            Ok(loaded) => {
                let v = loaded.map(|l| l.record.fields["v"].clone());
                assert_eq!(v, Some(enc(2)), "B never serves the old copy");
                true
            }
            Err(_) => {
                failed.set(failed.get() + 1);
                false
            }
        }
    })
    .await;
    let back = poll("B trusts its cache again", || async { b.cache_trusted() }).await;
    // Caching resumes, with the new value.
    let hits = b.stats().hits;
    assert_eq!(served(&b, &key).await, Some(enc(2)));
    assert_eq!(served(&b, &key).await, Some(enc(2)));
    assert!(b.stats().hits > hits, "B caches again: {:?}", b.stats());
    let s = b.stats();
    assert_eq!(s.outages, outages + 1, "{s:?}");
    eprintln!(
        "outage noticed after {noticed:?}; {} reads failed while B reconnected; \
         channel back {back:?} after B's first good read",
        failed.get()
    );
}

/// A `FLUSHALL` (a null invalidation) empties every process's cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_database_empties_the_caches() {
    let server = RedisServer::start();
    let a = app_server(RedisConfig::new(server.url())).await;
    let b = app_server(RedisConfig::new(server.url())).await;
    let key = fresh_key();
    a.create(&key, &record(&[("v", enc(1))])).await.unwrap();
    cache_it(&b, &key).await;
    let flushes = b.stats().flushes;
    assert_eq!(server.command(&["FLUSHALL"]), "+OK");
    poll("B flushes", || async { b.stats().flushes > flushes }).await;
    poll("B no longer serves the flushed session", || async {
        served(&b, &key).await.is_none()
    })
    .await;
    poll("B trusts its cache again", || async { b.cache_trusted() }).await;
}

/// The number of connections with tracking on (`t` in `CLIENT LIST`'s flags).
fn tracking_clients(server: &RedisServer) -> usize {
    server
        .command(&["CLIENT", "LIST"])
        .lines()
        .filter(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("flags="))
                .is_some_and(|flags| flags.contains('t'))
        })
        .count()
}

/// The listener is one task per store (shared by its clones) and stops with the last clone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_stops_with_the_last_clone() {
    let server = RedisServer::start();
    let store = RedisStore::connect(config(RedisConfig::new(server.url())))
        .await
        .unwrap();
    assert_eq!(
        tracking_clients(&server),
        0,
        "nothing listens before it is asked"
    );
    let clone = store.clone();
    let mut feed = clone.invalidations();
    let _second = store.invalidations();
    assert_eq!(
        feed.next().await,
        Some(sessionkit::store::Invalidation::Restored)
    );
    assert_eq!(tracking_clients(&server), 1);
    drop(store);
    assert_eq!(tracking_clients(&server), 1, "a clone still uses it");
    drop(clone);
    poll("the listener's connection closes", || async {
        tracking_clients(&server) == 0
    })
    .await;
    assert_eq!(feed.next().await, None, "the channel is closed");
}

/// Asked for outside a Tokio runtime, the channel is a feed that does not listen (no panic);
/// the coherent tier then bypasses its cache.
#[test]
fn outside_a_runtime_the_feed_never_listens() {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime
        .block_on(RedisStore::connect(config(RedisConfig::new(server.url()))))
        .unwrap();
    let feed = store.invalidations();
    assert!(!feed.listening());
    drop(feed);
    drop(store);
    drop(runtime);
}

/// Polls the session `client` sees on a site until `done` holds (10 s at most, generous for a
/// shared machine), returning how long it took.
async fn until_seen(
    what: &str,
    client: &mut sessionkit_tests::site::Client,
    done: impl Fn(&sessionkit_examples::site::SessionJson) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let state = client.state().await;
        if done(&state) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: still {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Two processes of the example site (`SESSIONKIT_STORE=memory+redis`: a coherent memory tier
/// each) over one Redis: a cart write, a logout and a log-out-everywhere made through A are
/// seen through B, which had the session in its cache. A is the `web` site (axum), B the
/// `web-actix` site: the two binaries share sessions as two processes of one would.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_site_processes_over_one_redis_agree() {
    use sessionkit_examples::site::StoreKind;
    use sessionkit_tests::site::{Framework, Site};
    let redis = RedisServer::start();
    let a = Site::start_on_redis(StoreKind::MemoryRedis, &redis.url(), |c| c).await;
    let b = Site::start_on_redis(
        Framework::Actix.on(StoreKind::MemoryRedis),
        &redis.url(),
        |c| c,
    )
    .await;

    // Alice signs in through A; B reads her session (and caches it).
    let mut on_a = a.client();
    on_a.post("/login", &[("username", "alice")]).await;
    let mut on_b = b.client();
    on_b.cookie = on_a.cookie.clone();
    assert_eq!(on_b.state().await.user.as_deref(), Some("alice"));
    assert_eq!(on_b.state().await.user.as_deref(), Some("alice"));

    // A cart write through A is seen through B.
    on_a.post("/cart", &[("item", "apple")]).await;
    let took = until_seen("the cart write", &mut on_b, |s| s.cart == ["apple"]).await;
    eprintln!("cart write seen on B after {took:?}");

    // A logout through A ends the session on B too.
    let mut replay = b.client();
    replay.cookie = on_a.cookie.clone();
    on_a.post("/logout", &[]).await;
    let took = until_seen("the logout", &mut replay, |s| s.user.is_none()).await;
    eprintln!("logout seen on B after {took:?}");

    // "Log out everywhere" through A ends Bob's session that B has cached.
    let mut bob_a = a.client();
    bob_a.post("/login", &[("username", "bob")]).await;
    let mut bob_b = b.client();
    bob_b.cookie = bob_a.cookie.clone();
    assert_eq!(bob_b.state().await.user.as_deref(), Some("bob"));
    let mut other_device = a.client();
    other_device.post("/login", &[("username", "bob")]).await;
    other_device.post("/logout-everywhere", &[]).await;
    let took = until_seen("log out everywhere", &mut bob_b, |s| s.user.is_none()).await;
    eprintln!("log-out-everywhere seen on B after {took:?}");
}
