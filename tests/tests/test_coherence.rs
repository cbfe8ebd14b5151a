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

use std::time::{Duration, Instant};

use sessionkit::store::{InvalidationSource, Store};
use sessionkit_backends::{RedisConfig, RedisStore};
use sessionkit_tests::coherence::{
    self, Coherent, cache_it, changes_on_a_are_seen_on_b, poll, served,
};
use sessionkit_tests::conformance::{enc, fresh_key, record};
use sessionkit_tests::redis_server::{RedisCluster, RedisServer};

fn config(redis: RedisConfig) -> RedisConfig {
    redis
        .with_connect_timeout(Duration::from_millis(300))
        .with_response_timeout(Duration::from_millis(500))
}

/// One app server's store: its own connection to Redis, its own memory tier.
async fn app_server(redis: RedisConfig) -> Coherent<RedisStore> {
    coherence::app_server(RedisStore::connect(config(redis)).await.unwrap()).await
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
    coherence::an_outage_never_serves_the_old_copy(&mut server, a, b, "redis").await;
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
