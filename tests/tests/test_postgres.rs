//! PostgresStore beyond the conformance suite: coherent caches over one database (two app
//! servers, each with its own memory tier, see each other's writes, logouts and revocations
//! through LISTEN/NOTIFY, and never serve a cached copy across an outage), the table name
//! check, the idempotent migration, what the table holds (hashes, never ids), and errors
//! while the server is down.
//!
//! Each test starts its own PostgreSQL (`sessionkit_tests::postgres_server`), never 5432.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "test code: a failed expectation fails the test; figures are printed to the test log"
)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessionkit::store::{ChangeSet, MemoryStore, Record, Store, TieredStore};
use sessionkit::{Error, SessionConfig, SessionId, SessionKey, SessionManager};
use sessionkit_backends::postgres::{PostgresConfig, PostgresStore};
use sessionkit_tests::conformance::{enc, fresh_key, record};
use sessionkit_tests::postgres_server::PostgresServer;

type Coherent = TieredStore<MemoryStore, PostgresStore>;

/// How long a change may take to reach the other store before the test fails: generous.
const LIMIT: Duration = Duration::from_secs(20);

async fn connect(server: &PostgresServer) -> PostgresStore {
    let store = PostgresConfig::new(server.url())
        .with_connect_timeout(Duration::from_millis(300))
        .with_op_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

/// One app server's store: its own pool, its own memory tier, listening.
async fn app_server(server: &PostgresServer) -> Coherent {
    let store = TieredStore::coherent(MemoryStore::bounded(1_000), connect(server).await).unwrap();
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

async fn served(store: &Coherent, key: &SessionKey) -> Option<bytes::Bytes> {
    let loaded = store.load(key).await.unwrap()?;
    Some(loaded.record.fields.get("v").cloned().unwrap_or_default())
}

/// `b` serves `key` from its memory tier (the announcement of the write that stored it may
/// drop B's first fill, so load until the copy stays).
async fn cache_it(b: &Coherent, key: &SessionKey) {
    poll("B caches the session", || async {
        b.load(key).await.unwrap();
        b.cache().load(key).await.unwrap().is_some()
    })
    .await;
}

/// A write, a logout and a log-out-everywhere made on A are seen on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_one_server_reach_the_other() {
    let server = PostgresServer::start();
    let a = Arc::new(app_server(&server).await);
    let b = app_server(&server).await;
    let before = b.stats().invalidations;

    let key = fresh_key();
    a.create(&key, &owned("alice", 1)).await.unwrap();
    cache_it(&b, &key).await;
    a.apply(&key, &set("v", 2)).await.unwrap();
    let write = poll("B sees A's write", || async {
        served(&b, &key).await == Some(enc(2))
    })
    .await;

    cache_it(&b, &key).await;
    a.delete(&key).await.unwrap();
    let logout = poll("B sees A's logout", || async {
        served(&b, &key).await.is_none()
    })
    .await;

    let manager = SessionManager::new(Arc::clone(&a), SessionConfig::default()).unwrap();
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

    // A move on A: B's cached copy under the old key goes.
    let (old, new) = (fresh_key(), fresh_key());
    a.create(&old, &owned("carol", 3)).await.unwrap();
    cache_it(&b, &old).await;
    a.rename(&old, &new, None).await.unwrap();
    poll("B sees A's move", || async {
        served(&b, &old).await.is_none()
    })
    .await;
    assert_eq!(served(&b, &new).await, Some(enc(3)));

    let s = b.stats();
    assert!(s.invalidations > before, "{s:?}");
    assert_eq!(s.outages, 0, "{s:?}");
    eprintln!("postgres: seen on B after write {write:?}, logout {logout:?}, revoke {revoke:?}");
}

/// PostgreSQL is shut down after B cached a session and started again; A writes as soon as
/// it is back, before B's listener can have reconnected. B stops trusting its cache during the
/// outage and never serves the old copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_never_serves_the_old_copy() {
    let mut server = PostgresServer::start();
    let a = app_server(&server).await;
    let b = app_server(&server).await;
    let key = fresh_key();
    a.create(&key, &record(&[("v", enc(1))])).await.unwrap();
    cache_it(&b, &key).await;
    let outages = b.stats().outages;

    server.stop();
    poll("B stops trusting its cache", || async {
        !b.cache_trusted()
    })
    .await;
    assert!(
        b.cache().load(&key).await.unwrap().is_none(),
        "B's cache was flushed"
    );
    match b.load(&key).await {
        Err(Error::Unavailable { .. }) => {}
        other => panic!("while PostgreSQL is down B cannot answer: {other:?}"),
    }

    server.restart();
    poll("A's write after the restart", || async {
        a.apply(&key, &set("v", 2)).await.is_ok()
    })
    .await;
    poll("B reads again", || async {
        match b.load(&key).await {
            Ok(loaded) => {
                let v = loaded.map(|l| l.record.fields["v"].clone());
                assert_eq!(v, Some(enc(2)), "B never serves the old copy");
                true
            }
            Err(_) => false,
        }
    })
    .await;
    poll("B trusts its cache again", || async { b.cache_trusted() }).await;
    let hits = b.stats().hits;
    assert_eq!(served(&b, &key).await, Some(enc(2)));
    assert_eq!(served(&b, &key).await, Some(enc(2)));
    assert!(b.stats().hits > hits, "B caches again: {:?}", b.stats());
    assert_eq!(b.stats().outages, outages + 1, "{:?}", b.stats());
}

/// A table name that is not a plain identifier is a typed error before anything reaches
/// the database; a good custom name is used, and migrating twice is harmless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_names_are_checked_and_migration_is_idempotent() {
    for bad in [
        "",
        "1st",
        "a-b",
        "sessions; DROP TABLE x",
        "s\"q",
        "ключ",
        &"x".repeat(49),
    ] {
        assert!(
            matches!(PostgresStore::migration_sql(bad), Err(Error::Config(_))),
            "{bad:?}"
        );
        let connected = PostgresConfig::new("postgres://postgres@127.0.0.1:1/postgres")
            .with_table(bad)
            .connect()
            .await;
        assert!(matches!(connected, Err(Error::Config(_))), "{bad:?}");
    }
    let server = PostgresServer::start();
    let store = PostgresConfig::new(server.url())
        .with_table("Custom_Sessions_2")
        .connect()
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let key = fresh_key();
    store.create(&key, &record(&[("v", enc(1))])).await.unwrap();
    let count: i64 = sqlx::query_scalar(r#"SELECT count(*) FROM "Custom_Sessions_2""#)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(count, 1);
    // Two stores migrating at once take turns.
    let other = connect(&server).await;
    let (x, y) = tokio::join!(store.migrate(), other.migrate());
    x.unwrap();
    y.unwrap();
}

/// The table holds the key (the SHA-256 of the id), never the id itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_holds_hashes_not_ids() {
    let server = PostgresServer::start();
    let store = connect(&server).await;
    let id = SessionId::generate().unwrap();
    store
        .create(&id.key(), &record(&[("v", enc(1))]))
        .await
        .unwrap();
    let keys: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key FROM sessionkit_sessions")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(keys, vec![id.key().as_bytes().to_vec()]);
    let dump: String =
        sqlx::query_scalar("SELECT string_agg(t::text, '') FROM sessionkit_sessions t")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(!dump.contains(&id.expose()), "the id is in the table");
}

/// With the server gone every operation fails with `Unavailable` (not a panic, not a hang
/// past the timeout), and the same store works again once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_unavailable_then_recovers() {
    let mut server = PostgresServer::start();
    let store = connect(&server).await;
    let key = fresh_key();
    store.create(&key, &record(&[("v", enc(1))])).await.unwrap();
    server.stop();
    let other = fresh_key();
    let results = [
        store.load(&key).await.map(|_| ()),
        store.apply(&key, &set("v", 2)).await,
        store.create(&other, &record(&[])).await,
        store.delete(&key).await.map(|_| ()),
        store.rename(&key, &other, None).await,
        store.cleanup().await.map(|_| ()),
        store.owned_by("x").await.map(|_| ()),
    ];
    for r in results {
        assert!(matches!(r, Err(Error::Unavailable { .. })), "{r:?}");
    }
    let refused = PostgresStore::open(&server.url()).await;
    assert!(
        matches!(refused, Err(Error::Unavailable { .. })),
        "{refused:?}"
    );
    server.restart();
    poll("the store answers again", || async {
        store.load(&key).await.is_ok()
    })
    .await;
    store.apply(&key, &set("v", 3)).await.unwrap();
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.record.fields["v"], enc(3));
}
