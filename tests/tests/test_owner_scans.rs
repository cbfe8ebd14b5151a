//! Issue 16, item 4: listing or revoking an owner with a huge number of sessions (an attacker
//! who logged into their own account 10⁵ times) never stalls anyone else. Each store walks its
//! owner index in bounded steps: `MemoryStore` and `FileStore` yield between batches and hold
//! no lock across the walk; `RedisStore` runs one short script per `SSCAN` batch instead of one
//! script over the whole set; and every Redis owner set has a TTL, in a cluster too.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use sessionkit::MemoryStore;
use sessionkit::store::{ChangeSet, Error, OWNER_BATCH, Record, Store};
use sessionkit::{SessionKey, store::to_millis};
use sessionkit_backends::file::{Durability, FileConfig};
use sessionkit_backends::redis::test_support::{owner_key, redis_key};
use sessionkit_backends::{OWNER_SCAN_BATCH, RedisConfig, RedisStore};
use sessionkit_tests::conformance::{enc, fresh_key, in_ms, record};
use sessionkit_tests::redis_server::{RedisCluster, RedisServer, admin, command_calls};

fn owned(owner: &str) -> Record {
    let mut r = record(&[("x", enc(1))]);
    r.owner = Some(owner.into());
    r
}

/// While `MemoryStore` lists an owner with many sessions, the listing is suspended between
/// batches and holds no lock meanwhile: a load, a save of another owner and a save of the same
/// owner all complete between two polls of the listing (a lock held across the yield would
/// deadlock them on this single thread). Today's single-step listing is done in one poll.
async fn memory_listing_steps_aside(store: MemoryStore) {
    let members = 20 * OWNER_BATCH;
    let mut keys = Vec::new();
    for _ in 0..members {
        let key = fresh_key();
        store.create(&key, &owned("mallory")).await.unwrap();
        keys.push(key);
    }
    let other = fresh_key();
    store.create(&other, &owned("bob")).await.unwrap();

    let mut listing = pin!(store.owned_by("mallory"));
    let first = futures::poll!(listing.as_mut());
    assert!(
        first.is_pending(),
        "listing {members} sessions finished in one step, holding the runtime thread throughout"
    );
    // Between two steps of the listing: an unrelated load and saves, both owners.
    assert!(store.load(&other).await.unwrap().is_some());
    store.create(&fresh_key(), &owned("bob")).await.unwrap();
    let late = fresh_key();
    store.create(&late, &owned("mallory")).await.unwrap();
    let mut c = ChangeSet::default();
    c.set.insert("y".into(), enc(2));
    store.apply(&other, &c).await.unwrap();

    let listed = listing.await.unwrap();
    // Every session present for the whole listing is listed; the late one may or may not be.
    keys.sort();
    let without_late: Vec<SessionKey> = listed.iter().copied().filter(|k| *k != late).collect();
    assert_eq!(without_late, keys);
    assert_eq!(store.owned_by("bob").await.unwrap().len(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn memory_owner_listing_yields_between_batches_and_holds_no_lock() {
    memory_listing_steps_aside(MemoryStore::new()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn bounded_memory_owner_listing_yields_between_batches_and_holds_no_lock() {
    memory_listing_steps_aside(MemoryStore::bounded(100_000)).await;
}

/// Cleanup prunes the owner index one owner and one batch at a time as well: it is suspended
/// between batches, and a save of the owner it is pruning completes meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn memory_cleanup_prunes_the_owner_index_in_steps() {
    let store = MemoryStore::new();
    for _ in 0..(4 * OWNER_BATCH) {
        let mut r = owned("mallory");
        r.expires_at = in_ms(50);
        store.create(&fresh_key(), &r).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(80)).await;
    let mut cleanup = pin!(store.cleanup());
    assert!(futures::poll!(cleanup.as_mut()).is_pending());
    let live = fresh_key();
    store.create(&live, &owned("mallory")).await.unwrap();
    assert_eq!(cleanup.await.unwrap(), 4 * OWNER_BATCH as u64);
    assert_eq!(store.owned_by("mallory").await.unwrap(), vec![live]);
}

/// `FileStore` lists an owner's markers in one step of the blocking pool and checks them in
/// batches, each its own step: with a single blocking thread, a load issued while the
/// listing runs is served after one step of it, not after all of it. (Blocking steps run in
/// submission order on that one thread, so this is deterministic.)
#[test]
fn file_owner_listing_shares_the_blocking_pool() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = FileConfig::new(dir.path().join("s"))
            .with_durability(Durability::NoSync)
            .open()
            .await
            .unwrap();
        let members = 4 * OWNER_BATCH;
        for _ in 0..members {
            store.create(&fresh_key(), &owned("mallory")).await.unwrap();
        }
        let other = fresh_key();
        store
            .create(&other, &record(&[("a", enc(1))]))
            .await
            .unwrap();

        // Hold the one blocking thread, so both the listing and the load queue up behind it.
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let held = tokio::task::spawn_blocking(move || gate.recv());
        let mut listing = pin!(store.owned_by("mallory"));
        assert!(futures::poll!(listing.as_mut()).is_pending());
        let load = tokio::spawn({
            let store = store.clone();
            async move { store.load(&other).await }
        });
        tokio::task::yield_now().await;
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        assert!(load.await.unwrap().unwrap().is_some());
        // The load ran right after the listing's first step: the listing is far from done.
        assert!(
            matches!(futures::poll!(listing.as_mut()), Poll::Pending),
            "the whole listing ran in the one blocking step ahead of the load"
        );
        assert_eq!(listing.await.unwrap().len(), members);
    });
}

/// Plants `live` session hashes of `owner` (and `stale` members with no session behind them)
/// straight into Redis with pipelines: a store-level create per session would take minutes.
async fn plant(
    conn: &mut MultiplexedConnection,
    store: &RedisStore,
    owner: &str,
    live: usize,
    stale: usize,
) -> Vec<SessionKey> {
    let set = owner_key(store, owner);
    let exp = to_millis(in_ms(3_600_000)).to_string();
    let mut keys = Vec::with_capacity(live);
    let mut pipe = redis::pipe();
    for i in 0..(live + stale) {
        let key = fresh_key();
        if i < live {
            pipe.cmd("HSET")
                .arg(redis_key(store, &key))
                .arg("m:v")
                .arg("1")
                .arg("m:exp")
                .arg(&exp)
                .arg("m:rev")
                .arg("0")
                .arg("m:own")
                .arg(owner)
                .ignore();
            keys.push(key);
        }
        pipe.cmd("SADD").arg(&set).arg(key.to_hex()).ignore();
        if pipe.len() >= 2_000 {
            let _: () = pipe.query_async(conn).await.unwrap();
            pipe = redis::pipe();
        }
    }
    if !pipe.is_empty() {
        let _: () = pipe.query_async(conn).await.unwrap();
    }
    let _: () = redis::cmd("PEXPIREAT")
        .arg(&set)
        .arg(&exp)
        .query_async(conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// The longest command the server ran for a client other than the admin, in microseconds,
/// among those that took at least the slow log's threshold.
async fn longest_logged(conn: &mut MultiplexedConnection) -> u64 {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap();
    let mut longest = 0;
    for entry in entries {
        let redis::Value::Array(parts) = entry else {
            panic!("slowlog entry {entry:?}")
        };
        // [id, time, duration µs, [command, args…], client address, client name]
        let micros: u64 = redis::from_redis_value_ref(&parts[2]).unwrap();
        let name: String = redis::from_redis_value_ref(&parts[5]).unwrap();
        if name != "admin" {
            longest = longest.max(micros);
        }
    }
    longest
}

/// Listing (and then revoking) an owner with 10⁵ sessions on a single Redis server: it takes
/// one short script per `SSCAN` batch, never one script over the whole set; no command runs
/// for longer than ten times the 10 ms goal (the server's own slow log); the listing
/// is exact and prunes the stale members; and an unrelated load made meanwhile is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_owner_listing_runs_in_short_batches() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.unwrap();
    let mut admin = admin(&server).await;
    let live = 100_000;
    let stale = 2_000;
    let keys = plant(&mut admin, &store, "mallory", live, stale).await;
    let other = fresh_key();
    store
        .create(&other, &record(&[("a", enc(1))]))
        .await
        .unwrap();

    for (param, value) in [
        ("slowlog-log-slower-than", "100000"),
        ("slowlog-max-len", "1000"),
    ] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(param)
            .arg(value)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(&mut admin)
        .await
        .unwrap();
    let before = command_calls(&mut admin, "evalsha").await;

    let listing = tokio::spawn({
        let store = store.clone();
        async move { store.owned_by("mallory").await }
    });
    let mut loads = 0;
    while !listing.is_finished() {
        assert!(store.load(&other).await.unwrap().is_some());
        loads += 1;
    }
    let listed = listing.await.unwrap().unwrap();
    assert_eq!(listed.len(), keys.len());
    assert_eq!(listed, keys);
    assert!(loads > 0);

    // A load is one plain HGETALL (no script): every EVALSHA since `before` is the listing's.
    let scripts = command_calls(&mut admin, "evalsha").await - before;
    let batches = (live + stale) / OWNER_SCAN_BATCH;
    assert!(
        scripts >= (batches / 2) as u64,
        "{scripts} scripts listed {} members: not in batches of about {OWNER_SCAN_BATCH}",
        live + stale
    );
    let longest = longest_logged(&mut admin).await;
    assert_eq!(
        longest, 0,
        "a command ran for {longest} µs (the slow log holds those over 100 ms)"
    );
    let left: u64 = redis::cmd("SCARD")
        .arg(owner_key(&store, "mallory"))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, live as u64, "the stale members were pruned");
}

/// In a cluster every owner set gets a TTL: also when a save tags a session that turns out to
/// be gone (it used to add the member with no expiry first, leaving a set that never
/// expires), and when a save tags a session without moving its expiry. A listing larger than
/// one `SSCAN` batch is exact.
#[tokio::test]
async fn cluster_owner_sets_always_have_a_ttl() {
    let cluster = RedisCluster::start();
    let store = RedisStore::connect(RedisConfig::cluster(cluster.urls()))
        .await
        .unwrap();
    let client = redis::cluster::ClusterClient::new(vec![cluster.nodes()[0].url()]).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    let tag = |owner: &str| {
        let mut change_set = ChangeSet::default();
        change_set.owner = Some(Some(owner.into()));
        change_set
    };

    let gone = store.apply(&fresh_key(), &tag("ghost")).await.unwrap_err();
    assert!(matches!(gone, Error::Gone), "{gone:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(owner_key(&store, "ghost"))
        .query_async(&mut conn)
        .await
        .unwrap();
    // -2: no such key; -1 would be a set that never expires.
    assert_eq!(ttl, -2, "a save of a gone session left an owner set behind");

    let key = fresh_key();
    let r = record(&[("a", enc(1))]);
    store.create(&key, &r).await.unwrap();
    store.apply(&key, &tag("frank")).await.unwrap();
    let expire: i64 = redis::cmd("PEXPIRETIME")
        .arg(owner_key(&store, "frank"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(expire, i64::try_from(to_millis(r.expires_at)).unwrap());
    assert_eq!(store.owned_by("frank").await.unwrap(), vec![key]);

    let mut many: Vec<SessionKey> = Vec::new();
    for _ in 0..(OWNER_SCAN_BATCH * 2 + 10) {
        let key = fresh_key();
        store.create(&key, &owned("grace")).await.unwrap();
        many.push(key);
    }
    many.sort();
    assert_eq!(store.owned_by("grace").await.unwrap(), many);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(owner_key(&store, "grace"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0, "the owner set has no TTL ({ttl})");
}
