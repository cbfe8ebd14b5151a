//! Faults under load: Redis killed and restarted while many tasks save sessions through a
//! TieredStore; PostgreSQL stopped and restarted the same way; a full disk under FileStore; unreadable session files; a failing tier in
//! every position of nested TieredStores.
//!
//! Run: `cargo nextest run -p sessionkit-tests --test test_faults`
//! (`SESSIONKIT_SOAK=full` for 20 restarts and a longer load instead of 5).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sessionkit::store::{ChangeSet, Record, Store};
use sessionkit::{Error, MemoryStore, SessionId, SessionKey, TieredStore};
use sessionkit_backends::postgres::PostgresConfig;
use sessionkit_backends::{FileStore, RedisConfig, RedisStore};
use sessionkit_tests::postgres_server::PostgresServer;
use sessionkit_tests::probe::Probe;
use sessionkit_tests::redis_server::RedisServer;
use sessionkit_tests::restartable::Restartable;

fn full() -> bool {
    std::env::var("SESSIONKIT_SOAK").as_deref() == Ok("full")
}

fn counter(fields: &BTreeMap<String, Bytes>) -> u64 {
    fields
        .get("n")
        .map(|b| String::from_utf8_lossy(b).parse().expect("counter"))
        .unwrap_or(0)
}

fn set_n(n: u64) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.set.insert("n".into(), Bytes::from(n.to_string()));
    c.set.insert(
        "pad".into(),
        Bytes::from(vec![b'x'; 200 + (n as usize % 300)]),
    );
    c
}

fn fresh_record() -> Record {
    let mut r = Record::new(SystemTime::now() + Duration::from_secs(3600));
    r.fields.insert("n".into(), Bytes::from_static(b"0"));
    r
}

/// Per session: the last value a save acknowledged, and the last one attempted.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    acked: u64,
    attempted: u64,
    created: bool,
}

#[derive(Debug, Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Failures that were not `Error::Unavailable`.
    not_unavailable: AtomicU64,
}

async fn redis_store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(
        RedisConfig::new(server.url())
            .with_connect_timeout(Duration::from_millis(200))
            .with_response_timeout(Duration::from_millis(500)),
    )
    .await
    .expect("redis connects")
}

/// `tasks` tasks, each with `per_task` sessions, save counters in a loop through `store`
/// while `server` is killed and restarted `restarts` times. Returns each session's progress
/// and the request tally.
async fn load_with_restarts(
    store: Arc<dyn Store>,
    server: &mut dyn Restartable,
    tasks: usize,
    per_task: usize,
    restarts: usize,
) -> (Vec<(SessionKey, Progress)>, Tally) {
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = Arc::clone(&store);
        let stop = Arc::clone(&stop);
        let tally = Arc::clone(&tally);
        handles.push(tokio::spawn(async move {
            let mut sessions: Vec<(SessionKey, Progress)> = (0..per_task)
                .map(|_| {
                    (
                        SessionId::generate().expect("rng").key(),
                        Progress::default(),
                    )
                })
                .collect();
            let mut round = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let (key, p) = &mut sessions[round % per_task];
                round += 1;
                let result = if p.created {
                    p.attempted += 1;
                    let r = store.apply(key, &set_n(p.attempted)).await;
                    if r.is_ok() {
                        p.acked = p.attempted;
                    }
                    // Read back now and then: a load must not fail either.
                    if r.is_ok() && round.is_multiple_of(5) {
                        store.load(key).await.map(|loaded| {
                            let n = counter(&loaded.expect("present").record.fields);
                            assert!(n >= p.acked, "read {n} after acknowledged {}", p.acked);
                        })
                    } else {
                        r
                    }
                } else {
                    match store.create(key, &fresh_record()).await {
                        // An earlier create whose reply was lost did write.
                        Ok(()) | Err(Error::AlreadyExists) => {
                            p.created = true;
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                };
                match result {
                    Ok(()) => tally.ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        if !matches!(e, Error::Unavailable { .. }) {
                            tally.not_unavailable.fetch_add(1, Ordering::Relaxed);
                        }
                        tally.failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                tokio::task::yield_now().await;
            }
            sessions
        }));
    }
    for _ in 0..restarts {
        tokio::time::sleep(Duration::from_millis(400)).await;
        server.stop();
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.restart();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    let tally = Arc::try_unwrap(tally).expect("tasks done");
    (all, tally)
}

/// After restarts of the durable tier's server: every session whose create was acknowledged
/// (at least one) is in the durable tier, at a value between its last acknowledged and its last
/// attempted save, and `tiered` serves none older than the acknowledged one.
async fn no_acknowledged_save_lost<C: Store, D: Store>(
    tiered: &TieredStore<C, D>,
    sessions: &[(SessionKey, Progress)],
) {
    let mut created = 0;
    for (key, p) in sessions {
        if !p.created {
            continue;
        }
        created += 1;
        let durable = tiered.durable().load(key).await.expect("durable load");
        let n = counter(
            &durable
                .expect("an acknowledged create was lost")
                .record
                .fields,
        );
        assert!(
            n >= p.acked && n <= p.attempted,
            "durable {n}, acked {}, attempted {}",
            p.acked,
            p.attempted
        );
        let through = tiered.load(key).await.expect("load").expect("present");
        let m = counter(&through.record.fields);
        assert!(
            m >= p.acked,
            "the cache serves {m} after acknowledged {}",
            p.acked
        );
    }
    assert!(created > 0);
}

/// Redis (the cache tier) dies and comes back five times under load: no request fails and
/// every acknowledged save is in the file tier and read back through the tiered store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_restarts_fail_nothing_and_lose_nothing() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let file = FileStore::open(dir.path()).await.expect("file store");
    let redis = redis_store(&server).await;
    let tiered = Arc::new(TieredStore::new(redis, file));
    let restarts = if full() { 20 } else { 5 };
    let (sessions, tally) = load_with_restarts(tiered.clone(), &mut server, 16, 8, restarts).await;
    let ok = tally.ok.load(Ordering::SeqCst);
    let failed = tally.failed.load(Ordering::SeqCst);
    eprintln!(
        "redis+file: {ok} requests ok, {failed} failed over {restarts} Redis restarts; cache errors {}",
        tiered.stats().cache_errors
    );
    assert_eq!(failed, 0, "a request failed while only the cache was down");
    assert!(ok > 500, "too little load: {ok}");
    assert!(tiered.stats().cache_errors > 0, "Redis never looked down");
    for (key, p) in &sessions {
        assert!(p.created);
        let durable = tiered
            .durable()
            .load(key)
            .await
            .expect("file load")
            .expect("present");
        assert_eq!(
            counter(&durable.record.fields),
            p.acked,
            "file tier lost a save"
        );
        let through = tiered.load(key).await.expect("load").expect("present");
        assert_eq!(
            counter(&through.record.fields),
            p.acked,
            "stale cache after recovery"
        );
    }
}

/// Redis (the durable tier, with an fsync'd append-only file) dies and comes back five times
/// under load: requests fail while it is down (counted), but no acknowledged save is lost once
/// it is back, and the memory cache never serves a value older than an acknowledged one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_durable_restarts_lose_no_acknowledged_save() {
    let mut server =
        RedisServer::start_with_args(&["--appendonly", "yes", "--appendfsync", "always"]);
    let redis = redis_store(&server).await;
    let tiered = Arc::new(TieredStore::new(MemoryStore::new(), redis));
    let restarts = if full() { 20 } else { 5 };
    let (sessions, tally) = load_with_restarts(tiered.clone(), &mut server, 16, 8, restarts).await;
    let ok = tally.ok.load(Ordering::SeqCst);
    let failed = tally.failed.load(Ordering::SeqCst);
    eprintln!("memory+redis: {ok} requests ok, {failed} failed over {restarts} Redis restarts");
    assert!(failed > 0, "Redis never looked down");
    assert!(ok > 500, "too little load: {ok}");
    no_acknowledged_save_lost(&tiered, &sessions).await;
}

/// PostgreSQL (the durable tier under a coherent memory cache) is shut down and started again
/// five times under load: requests fail with `Unavailable` while it is down (counted), no
/// acknowledged save is lost, the cache never serves a value older than an acknowledged one,
/// and the same store works again afterwards (the pool reconnects by itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarts_lose_no_acknowledged_save() {
    let mut server = PostgresServer::start();
    let postgres = PostgresConfig::new(server.url())
        .with_connect_timeout(Duration::from_millis(300))
        .with_op_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("postgres connects");
    postgres.migrate().await.expect("migrate");
    let tiered =
        Arc::new(TieredStore::coherent(MemoryStore::new(), postgres).expect("a coherent tier"));
    let restarts = if full() { 20 } else { 5 };
    let (sessions, tally) = load_with_restarts(tiered.clone(), &mut server, 16, 8, restarts).await;
    let ok = tally.ok.load(Ordering::SeqCst);
    let failed = tally.failed.load(Ordering::SeqCst);
    let other = tally.not_unavailable.load(Ordering::SeqCst);
    eprintln!(
        "memory+postgres: {ok} requests ok, {failed} failed ({other} not Unavailable) over \
         {restarts} PostgreSQL restarts"
    );
    assert!(failed > 0, "PostgreSQL never looked down");
    assert_eq!(
        other, 0,
        "a failure while PostgreSQL was down was not Unavailable"
    );
    assert!(ok > 500, "too little load: {ok}");
    no_acknowledged_save_lost(&tiered, &sessions).await;
    // Recovered without a restart of the store: saves go through again.
    for (key, p) in sessions.iter().filter(|(_, p)| p.created) {
        tiered
            .apply(key, &set_n(p.attempted + 1))
            .await
            .expect("a save after recovery");
    }
}

// ---------------------------------------------------------------------------------------
// Disk full and unreadable files

/// A tmpfs of `size` mounted on a temp dir, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when not running as root (mount needs it); the caller says so and uses the
    /// EFBIG test in test_file_store instead.
    fn mount(size: &str) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().expect("id");
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return None;
        }
        let dir = tempfile::tempdir().expect("dir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs failed although we are root"
        );
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn payload(tag: usize, len: usize) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.set.insert("tag".into(), Bytes::from(tag.to_string()));
    c.set.insert(
        "blob".into(),
        Bytes::from(vec![b'a' + (tag % 26) as u8; len]),
    );
    c
}

/// A full disk is `Error::Storage` saying so, and every session stored before is intact;
/// freeing space lets writes succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_is_a_typed_error_and_loses_nothing() {
    let Some(fs) = Tmpfs::mount("256k") else {
        eprintln!(
            "not root: cannot mount a tmpfs; the EFBIG test in test_file_store covers short writes"
        );
        return;
    };
    let store = FileStore::open(fs.path().join("store"))
        .await
        .expect("open");
    let mut stored: Vec<(SessionKey, usize)> = Vec::new();
    let mut full_error = None;
    for i in 0..10_000 {
        let key = SessionId::generate().expect("rng").key();
        let created = store
            .create(
                &key,
                &Record::new(SystemTime::now() + Duration::from_secs(3600)),
            )
            .await;
        let result = match created {
            Ok(()) => store.apply(&key, &payload(i, 3000)).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => stored.push((key, i)),
            Err(e) => {
                full_error = Some(e);
                break;
            }
        }
    }
    let err = full_error.expect("a 256 KiB tmpfs fills up");
    assert!(matches!(err, Error::Storage { .. }), "{err:?}");
    assert!(err.to_string().contains("disk full"), "{err}");
    assert!(stored.len() > 5, "only {} sessions fit", stored.len());

    // Growing an existing session fails the same way and leaves it as it was.
    let (first, tag) = stored[0];
    let grow = store.apply(&first, &payload(tag, 200_000)).await;
    assert!(matches!(grow, Err(Error::Storage { .. })), "{grow:?}");

    for (key, tag) in &stored {
        let loaded = store
            .load(key)
            .await
            .expect("load")
            .expect("a stored session was lost");
        assert_eq!(loaded.record.fields["tag"], Bytes::from(tag.to_string()));
        assert_eq!(
            loaded.record.fields["blob"].len(),
            3000,
            "session {tag} torn"
        );
    }
    let leftovers = walk(fs.path())
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
        })
        .count();
    assert_eq!(leftovers, 0, "temporary files left on a full disk");

    // Space freed: saves work again.
    for (key, _) in stored.iter().take(stored.len() / 2) {
        store.delete(key).await.expect("delete on a full disk");
    }
    let (last, tag) = stored[stored.len() - 1];
    store
        .apply(&last, &payload(tag, 3000))
        .await
        .expect("a save after space was freed");
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// A session file the process may not read is a typed error for that session (not a
/// panic, not "absent", so a save cannot overwrite it), and the other sessions still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_session_file_is_a_typed_error() {
    use std::os::unix::fs::PermissionsExt as _;
    let uid = Command::new("id").arg("-u").output().expect("id");
    let root_user = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    let dir = tempfile::tempdir().expect("dir");
    let store = FileStore::open(dir.path()).await.expect("open");
    let a = SessionId::generate().expect("rng").key();
    let b = SessionId::generate().expect("rng").key();
    for k in [&a, &b] {
        store.create(k, &fresh_record()).await.expect("create");
    }
    let hex = a.to_hex();
    let path = walk(dir.path())
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == hex))
        .expect("session file");
    if root_user {
        // Root reads through mode bits; make the file unreadable by turning it into a
        // directory of the same name instead (EISDIR on read).
        std::fs::remove_file(&path).expect("rm");
        std::fs::create_dir(&path).expect("mkdir");
    } else {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    }
    let loaded = store.load(&a).await;
    assert!(
        matches!(loaded, Err(Error::Storage { .. } | Error::Corrupt { .. })),
        "{loaded:?}"
    );
    let saved = store.apply(&a, &set_n(1)).await;
    assert!(saved.is_err(), "a save over an unreadable file: {saved:?}");
    store.apply(&b, &set_n(1)).await.expect("the other session");
    assert_eq!(
        counter(
            &store
                .load(&b)
                .await
                .expect("load")
                .expect("b")
                .record
                .fields
        ),
        1
    );
}

// ---------------------------------------------------------------------------------------
// A failing store in every tier position of TieredStore<A, TieredStore<B, C>>.

type Inner = TieredStore<Arc<Probe<MemoryStore>>, Arc<Probe<MemoryStore>>>;

struct Nest {
    a: Arc<Probe<MemoryStore>>,
    b: Arc<Probe<MemoryStore>>,
    c: Arc<Probe<MemoryStore>>,
    store: TieredStore<Arc<Probe<MemoryStore>>, Inner>,
}

fn nest() -> Nest {
    let a = Arc::new(Probe::new(MemoryStore::new()));
    let b = Arc::new(Probe::new(MemoryStore::new()));
    let c = Arc::new(Probe::new(MemoryStore::new()));
    let store = TieredStore::new(
        Arc::clone(&a),
        TieredStore::new(Arc::clone(&b), Arc::clone(&c)),
    );
    Nest { a, b, c, store }
}

/// With any cache tier (outer A or inner B) dead, every operation still succeeds and reads
/// what was written; with the durable tier C dead, every write fails and nothing it does not
/// hold is served afterwards.
#[tokio::test]
async fn a_dead_tier_in_every_position() {
    for dead in ["a", "b"] {
        let n = nest();
        let key = SessionId::generate().expect("rng").key();
        let other = SessionId::generate().expect("rng").key();
        n.store.create(&key, &fresh_record()).await.expect("create");
        n.store.load(&key).await.expect("warm the caches");
        match dead {
            "a" => n.a.set_all(true),
            _ => n.b.set_all(true),
        }
        n.store
            .apply(&key, &set_n(7))
            .await
            .unwrap_or_else(|e| panic!("{dead} dead: apply {e}"));
        let got = n.store.load(&key).await.expect("load").expect("present");
        assert_eq!(counter(&got.record.fields), 7, "{dead} dead");
        n.store.rename(&key, &other, None).await.expect("rename");
        assert!(
            n.store.load(&key).await.expect("load").is_none(),
            "{dead} dead: old key lives"
        );
        n.store.delete(&other).await.expect("delete");
        // Revived caches must not bring the deleted session back.
        n.a.set_all(false);
        n.b.set_all(false);
        assert!(
            n.store.load(&other).await.expect("load").is_none(),
            "{dead} dead: deleted session came back"
        );
        assert!(
            n.store.load(&key).await.expect("load").is_none(),
            "{dead} dead: moved session came back"
        );
    }

    let n = nest();
    let key = SessionId::generate().expect("rng").key();
    n.store.create(&key, &fresh_record()).await.expect("create");
    n.store.apply(&key, &set_n(1)).await.expect("apply");
    n.store.load(&key).await.expect("warm");
    n.c.set_all(true);
    assert!(
        n.store.apply(&key, &set_n(2)).await.is_err(),
        "a write with the durable tier dead"
    );
    assert!(
        n.store
            .create(&SessionId::generate().expect("rng").key(), &fresh_record())
            .await
            .is_err()
    );
    assert!(n.store.delete(&key).await.is_err());
    n.c.set_all(false);
    // The failed write to 2 is in no tier.
    let got = n.store.load(&key).await.expect("load").expect("present");
    assert_eq!(counter(&got.record.fields), 1);
    assert_eq!(
        counter(
            &n.c.inner()
                .load(&key)
                .await
                .expect("c")
                .expect("c holds it")
                .record
                .fields
        ),
        1
    );
}
