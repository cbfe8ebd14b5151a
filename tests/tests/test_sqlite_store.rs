//! SqliteStore beyond the conformance suite: a writer killed mid-write, damaged rows, a lock
//! held past the busy timeout, the table name, migrations, batched cleanup, and what reaches
//! the database file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sessionkit::SessionId;
use sessionkit::store::{ChangeSet, Error, Record, Removed, Store};
use sessionkit_backends::sqlite::DEFAULT_TABLE;
use sessionkit_backends::{Durability, SqliteConfig, SqliteStore};
use sessionkit_tests::crash::check_after_kill;
use sqlx::Connection as _;
use sqlx::sqlite::SqliteConnection;

const WRITER: &str = env!("CARGO_BIN_EXE_sqlite_writer");

fn record(fields: &[(&str, &[u8])]) -> Record {
    let mut r = Record::new(SystemTime::now() + Duration::from_secs(3600));
    for (k, v) in fields {
        r.fields.insert((*k).into(), Bytes::copy_from_slice(v));
    }
    r
}

fn set(k: &str, v: &[u8]) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.set.insert(k.into(), Bytes::copy_from_slice(v));
    c
}

async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

/// A writer process killed with SIGKILL at arbitrary instants, many times, under both
/// durabilities, loses no acknowledged save and tears no session: after each kill every
/// session reads back whole, at a version no older than the last round the writer
/// acknowledged (SIGKILL stops the process, not the machine, so this holds for `NoSync` too:
/// its unsynced WAL frames are in the OS's page cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_keeps_every_acknowledged_save_and_tears_none() {
    const SESSIONS: usize = 4;
    const KILLS: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.sqlite3");
    let path_s = path.to_str().unwrap().to_owned();
    let mut last = [0u64; SESSIONS];
    let mut acked_rounds = 0;
    for round in 0..KILLS {
        let mode = if round % 2 == 0 { "sync" } else { "nosync" };
        let mut child = Command::new(WRITER)
            .args(["crash", &path_s, mode, &SESSIONS.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert_eq!(first.trim_end(), "ready");
        // Drain the acknowledgements while the writer runs, so it never blocks on the pipe.
        let reader = std::thread::spawn(move || {
            let mut acked = None;
            for line in out.lines() {
                let Ok(line) = line else { break };
                if let Some(v) = line
                    .strip_prefix("ack ")
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    acked = Some(v);
                }
            }
            acked
        });
        // Spread the kills over the write loop: 5 to 65 ms after the writer got going.
        tokio::time::sleep(Duration::from_millis(5 + (round as u64 * 7919) % 61)).await;
        child.kill().unwrap();
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        acked_rounds += usize::from(acked.is_some());

        let store = SqliteStore::open(&path).await.unwrap();
        check_after_kill(&store, round, mode, &mut last, acked).await;
        store.close().await;
    }
    assert!(
        last.iter().all(|v| *v > 0),
        "the writer made progress: {last:?}"
    );
    assert!(
        acked_rounds > KILLS / 2,
        "only {acked_rounds} of {KILLS} runs acknowledged a save before the kill"
    );
}

/// The database holds the hashed key, never the id: neither the id's text nor its bytes
/// appear in the database or its WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_holds_hashed_keys_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.sqlite3");
    let store = SqliteStore::open(&path).await.unwrap();
    let id = SessionId::generate().unwrap();
    store
        .create(&id.key(), &record(&[("user", b"alice")]))
        .await
        .unwrap();
    let mut conn = raw(&path).await;
    let keys: Vec<Vec<u8>> = sqlx::query_scalar(&format!("SELECT key FROM {DEFAULT_TABLE}"))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, vec![id.key().as_bytes().to_vec()]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(std::fs::read(dir.path().join("sessions.sqlite3-wal")).unwrap_or_default());
    let text = id.expose();
    let text = text.as_bytes();
    assert!(!bytes.windows(text.len()).any(|w| w == text));
    assert!(!bytes.windows(32).any(|w| w == id.as_bytes()));
    assert!(bytes.windows(32).any(|w| w == id.key().as_bytes()));
}

/// A row whose entry does not decode is reported by `load` as corrupt, refuses saves and
/// moves, is not overwritten by `create` while live, and is removed by `delete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_row_is_corrupt_never_rewritten_and_deletable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.sqlite3");
    let store = SqliteStore::open(&path).await.unwrap();
    let key = SessionId::generate().unwrap().key();
    store.create(&key, &record(&[("a", b"1")])).await.unwrap();
    let mut conn = raw(&path).await;
    sqlx::query(&format!(
        "UPDATE {DEFAULT_TABLE} SET entry = x'c1ffee' WHERE key = ?1"
    ))
    .bind(key.as_bytes().as_slice())
    .execute(&mut conn)
    .await
    .unwrap();
    assert!(matches!(store.load(&key).await, Err(Error::Corrupt { .. })));
    assert!(matches!(
        store.apply(&key, &set("b", b"2")).await,
        Err(Error::Gone)
    ));
    let fresh = SessionId::generate().unwrap().key();
    assert!(matches!(
        store.rename(&key, &fresh, None).await,
        Err(Error::Gone)
    ));
    assert!(matches!(
        store.create(&key, &record(&[])).await,
        Err(Error::AlreadyExists)
    ));
    let other = SessionId::generate().unwrap().key();
    store.create(&other, &record(&[])).await.unwrap();
    assert!(matches!(
        store.rename(&other, &key, None).await,
        Err(Error::AlreadyExists)
    ));
    let entry: Vec<u8> =
        sqlx::query_scalar(&format!("SELECT entry FROM {DEFAULT_TABLE} WHERE key = ?1"))
            .bind(key.as_bytes().as_slice())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(entry, vec![0xc1, 0xff, 0xee], "never rewritten");
    assert_eq!(store.delete(&key).await.unwrap(), Removed::Nothing);
    assert!(store.load(&key).await.unwrap().is_none());
    store.create(&key, &record(&[])).await.unwrap();
}

/// A write that waits for a lock another connection holds past the busy timeout fails with
/// `Unavailable` (nothing written), and the store works again once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_past_the_busy_timeout_is_unavailable_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.sqlite3");
    let store = SqliteConfig::new(&path)
        .with_busy_timeout(Duration::from_millis(200))
        .open()
        .await
        .unwrap();
    let key = SessionId::generate().unwrap().key();
    store.create(&key, &record(&[("a", b"1")])).await.unwrap();
    let mut other = raw(&path).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let err = store.apply(&key, &set("a", b"2")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
    // Readers are not blocked by a writer (WAL).
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.record.fields["a"], Bytes::from_static(b"1"));
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    store.apply(&key, &set("a", b"3")).await.unwrap();
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.record.fields["a"], Bytes::from_static(b"3"));
}

/// Table names are checked (a typed error, nothing reaches SQL); a custom table works beside
/// the default one in the same file; opening again and migrating again keep the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_names_are_checked_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.sqlite3");
    for bad in [
        "",
        "x\"; DROP TABLE t; --",
        "a b",
        "9lives",
        "sqlite_master",
    ] {
        let err = SqliteConfig::new(&path).with_table(bad).open().await;
        assert!(matches!(err, Err(Error::Config(_))), "{bad:?}");
        assert!(matches!(
            SqliteStore::migration_sql(bad),
            Err(Error::Config(_))
        ));
    }
    let key = SessionId::generate().unwrap().key();
    let custom = SqliteConfig::new(&path)
        .with_table("other_sessions")
        .open()
        .await
        .unwrap();
    custom.create(&key, &record(&[("a", b"1")])).await.unwrap();
    let default = SqliteStore::open(&path).await.unwrap();
    assert!(
        default.load(&key).await.unwrap().is_none(),
        "tables are apart"
    );
    custom.migrate().await.unwrap();
    custom.migrate().await.unwrap();
    let again = SqliteConfig::new(&path)
        .with_table("other_sessions")
        .with_durability(Durability::NoSync)
        .open()
        .await
        .unwrap();
    assert_eq!(again.durability(), Durability::NoSync);
    assert!(again.load(&key).await.unwrap().is_some());
    assert!(
        SqliteStore::migration_sql("other_sessions")
            .unwrap()
            .contains("CREATE TABLE IF NOT EXISTS \"other_sessions\"")
    );
}

/// Cleanup deletes through the expiry index in batches and counts every expired row (records,
/// grace aliases and tombstones), leaving live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_works_in_batches_and_counts_every_expired_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteConfig::new(dir.path().join("sessions.sqlite3"))
        .with_cleanup_batch(2)
        .open()
        .await
        .unwrap();
    let soon = SystemTime::now() + Duration::from_millis(300);
    for _ in 0..5 {
        let mut r = record(&[]);
        r.expires_at = soon;
        store
            .create(&SessionId::generate().unwrap().key(), &r)
            .await
            .unwrap();
    }
    // A move without grace leaves a tombstone that expires with the moved record.
    let (from, to) = (
        SessionId::generate().unwrap().key(),
        SessionId::generate().unwrap().key(),
    );
    let mut r = record(&[]);
    r.expires_at = soon;
    store.create(&from, &r).await.unwrap();
    store.rename(&from, &to, None).await.unwrap();
    let live = SessionId::generate().unwrap().key();
    store.create(&live, &record(&[])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.cleanup().await.unwrap(), 7);
    assert_eq!(store.cleanup().await.unwrap(), 0);
    assert!(store.load(&live).await.unwrap().is_some());
    assert!(store.load(&to).await.unwrap().is_none());
}
