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
    reason = "test code: a failed expectation fails the test"
)]

use std::time::Duration;

use sessionkit::store::Store;
use sessionkit::{Error, SessionId};
use sessionkit_backends::postgres::{PostgresConfig, PostgresStore};
use sessionkit_tests::coherence::{self, Coherent, poll, set};
use sessionkit_tests::conformance::{enc, fresh_key, record};
use sessionkit_tests::postgres_server::PostgresServer;

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
async fn app_server(server: &PostgresServer) -> Coherent<PostgresStore> {
    coherence::app_server(connect(server).await).await
}

/// A write, a logout, a log-out-everywhere and a move made on A are seen on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_one_server_reach_the_other() {
    let server = PostgresServer::start();
    let a = app_server(&server).await;
    let b = app_server(&server).await;
    coherence::changes_on_a_are_seen_on_b(a, b, "postgres").await;
}

/// PostgreSQL is shut down after B cached a session and started again; A writes as soon as
/// it is back, before B's listener can have reconnected. B stops trusting its cache during the
/// outage and never serves the old copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_never_serves_the_old_copy() {
    let mut server = PostgresServer::start();
    let a = app_server(&server).await;
    let b = app_server(&server).await;
    coherence::an_outage_never_serves_the_old_copy(&mut server, a, b, "postgres").await;
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
