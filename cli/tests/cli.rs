//! The `sessionkit` binary against a file store and a private redis-server (never the shared
//! one on 6379), SQLite and a private PostgreSQL: count, inspect --owner, purge --owner on files
//! and SQLite, migrate file→redis (rerun resumes), file→postgres, sqlite→redis,
//! and the usage exit code.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use sessionkit::SessionKey;
use sessionkit::store::{Record, Store};
use sessionkit_backends::postgres::PostgresStore;
use sessionkit_backends::{FileStore, RedisStore, SqliteStore};
use sessionkit_tests::conformance::{enc, fresh_key, record};
use sessionkit_tests::postgres_server::PostgresServer;
use sessionkit_tests::redis_server::RedisServer;

fn sessionkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sessionkit"))
        .args(args)
        .output()
        .expect("run sessionkit")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "sessionkit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Three live sessions (two of alice's, one with no owner) and one that expires at once.
async fn populate(store: &impl Store) -> (Vec<SessionKey>, SessionKey) {
    let mut alice = Vec::new();
    for i in 0..2u64 {
        let key = fresh_key();
        let mut r = record(&[("cart", enc(vec![i, i + 1]))]);
        r.owner = Some("alice".into());
        store.create(&key, &r).await.unwrap();
        alice.push(key);
    }
    let other = fresh_key();
    store
        .create(&other, &record(&[("theme", enc("dark"))]))
        .await
        .unwrap();
    let expiring = fresh_key();
    store
        .create(
            &expiring,
            &Record::new(SystemTime::now() + Duration::from_millis(50)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    (alice, other)
}

/// `populate`s `store` (at `url`), then: `count`, `inspect --owner alice --values`, `purge
/// --owner alice` (her sessions no longer load), `count` again.
async fn count_inspect_purge(store: &impl Store, url: &str) {
    let (alice, _other) = populate(store).await;
    assert_eq!(stdout(&sessionkit(&["--store", url, "count"])), "3\n");

    let listing = stdout(&sessionkit(&[
        "--store", url, "inspect", "--owner", "alice", "--values",
    ]));
    assert_eq!(listing.matches("session ").count(), 2, "{listing}");
    for key in &alice {
        assert!(listing.contains(&key.to_hex()), "{listing}");
    }
    assert!(listing.contains("keys: cart"), "{listing}");
    assert!(
        listing.contains("\"cart\":[0,1]") && listing.contains("\"cart\":[1,2]"),
        "{listing}"
    );

    assert_eq!(
        stdout(&sessionkit(&["--store", url, "purge", "--owner", "alice"])),
        "2\n"
    );
    for key in &alice {
        assert!(
            store.load(key).await.unwrap().is_none(),
            "alice is logged out"
        );
    }
    assert_eq!(stdout(&sessionkit(&["--store", url, "count"])), "1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_inspect_purge_on_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).await.unwrap();
    count_inspect_purge(&store, &format!("file:{}", dir.path().display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_inspect_purge_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.sqlite3");
    let store = SqliteStore::open(&path).await.unwrap();
    count_inspect_purge(&store, &format!("sqlite:{}", path.display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_files_to_redis_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).await.unwrap();
    let (alice, other) = populate(&store).await;
    let server = RedisServer::start();
    let from = format!("file:{}", dir.path().display());
    let to = server.url();

    let dry = stdout(&sessionkit(&[
        "--store",
        &from,
        "migrate",
        "--to",
        &to,
        "--dry-run",
    ]));
    assert!(dry.contains("would copy 3"), "{dry}");
    let redis = RedisStore::open(&to).await.unwrap();
    assert!(
        redis.load(&other).await.unwrap().is_none(),
        "a dry run writes nothing"
    );

    migrate_and_check(&from, &to, &redis, &alice, &other).await;

    let again = stdout(&sessionkit(&["--store", &from, "migrate", "--to", &to]));
    assert!(again.contains("copied 0, skipped 3"), "{again}");
    assert_eq!(stdout(&sessionkit(&["--store", &to, "count"])), "3\n");
}

/// Runs `migrate` from `from` to `to` (whose store is `target`) and checks that every session
/// of `populate` loads from `target` with its owner and data.
async fn migrate_and_check(
    from: &str,
    to: &str,
    target: &impl Store,
    alice: &[SessionKey],
    other: &SessionKey,
) {
    let out = stdout(&sessionkit(&["--store", from, "migrate", "--to", to]));
    assert!(out.contains("copied 3, skipped 0"), "{out}");
    for key in alice {
        let loaded = target.load(key).await.unwrap().expect("in the target");
        assert_eq!(loaded.record.owner.as_deref(), Some("alice"));
        assert!(loaded.record.fields.contains_key("cart"));
    }
    let theme = target
        .load(other)
        .await
        .unwrap()
        .expect("in the target")
        .record;
    assert_eq!(theme.fields["theme"], enc("dark"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_files_to_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).await.unwrap();
    let (alice, other) = populate(&store).await;
    let server = PostgresServer::start();
    let from = format!("file:{}", dir.path().display());
    let to = server.url();

    let postgres = PostgresStore::open(&to).await.unwrap();
    migrate_and_check(&from, &to, &postgres, &alice, &other).await;
    assert_eq!(stdout(&sessionkit(&["--store", &to, "count"])), "3\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_sqlite_to_redis() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.sqlite3");
    let store = SqliteStore::open(&path).await.unwrap();
    let (alice, other) = populate(&store).await;
    let server = RedisServer::start();
    let from = format!("sqlite:{}", path.display());
    let to = server.url();

    let redis = RedisStore::open(&to).await.unwrap();
    migrate_and_check(&from, &to, &redis, &alice, &other).await;
}

#[test]
fn unknown_store_scheme_is_exit_code_2() {
    let out = sessionkit(&["--store", "mongodb://x", "count"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown store URL"));
}
