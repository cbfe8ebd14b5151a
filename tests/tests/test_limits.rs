//! Size limits and huge durations (issue 16, items 5 and 7): a session cannot grow past its
//! [`Limits`], a refused change writes nothing, and no configured duration panics.
//!
//! Run: `cargo nextest run -p sessionkit-tests --test test_limits`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use sessionkit::store::{MemoryStore, TieredStore};
use sessionkit::{
    Error, Limit, Limits, RequestInfo, Session, SessionConfig, SessionManager, Store,
    manager::ManualClock,
};
use sessionkit_backends::RedisStore;
use sessionkit_backends::file::{Durability, FileConfig};
use sessionkit_tests::probe::Probe;
use sessionkit_tests::redis_server::RedisServer;

type Manager = SessionManager<Arc<dyn Store>>;

/// What a store needs kept alive (its directory, its redis-server).
type Guard = Option<Box<dyn std::any::Any + Send>>;

/// Every store whose merge checks the limits (memory, file, a tier over a file), each with
/// what it needs kept alive.
async fn stores() -> Vec<(&'static str, Arc<dyn Store>, Guard)> {
    let mut out: Vec<(&'static str, Arc<dyn Store>, Guard)> =
        vec![("memory", Arc::new(MemoryStore::new()), None)];
    for tiered in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let file = FileConfig::new(dir.path().join("sessions"))
            .with_durability(Durability::NoSync)
            .open()
            .await
            .unwrap();
        if tiered {
            let store = TieredStore::new(MemoryStore::bounded(100), file);
            out.push(("memory+file", Arc::new(store), Some(Box::new(dir))));
        } else {
            out.push(("file", Arc::new(file), Some(Box::new(dir))));
        }
    }
    out
}

/// [`stores`] and a `RedisStore`, for the cases the manager's own check decides (Redis merges
/// in a script that does not re-check the limits).
async fn stores_and_redis() -> Vec<(&'static str, Arc<dyn Store>, Guard)> {
    let mut out = stores().await;
    let server = RedisServer::start();
    let redis = RedisStore::open(&server.url()).await.unwrap();
    out.push(("redis", Arc::new(redis), Some(Box::new(server))));
    out
}

fn manager(store: Arc<dyn Store>, limits: Limits) -> Manager {
    let config = SessionConfig::default()
        .with_secure(false)
        .with_rotate_after(None)
        .with_limits(limits);
    SessionManager::new(store, config).unwrap()
}

fn request(cookie: &str) -> RequestInfo {
    RequestInfo::new().with_cookie_header(cookie.to_owned())
}

/// A new session holding `key = value`; returns its cookie pair.
async fn start(manager: &Manager, key: &str, value: &str) -> String {
    let active = manager.load(&RequestInfo::new()).await.unwrap();
    active.session().insert(key, value).unwrap();
    let set_cookie = manager.finish(active).await.unwrap().set_cookie.unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

/// The session's user keys as stored now, read through a fresh request.
async fn stored(manager: &Manager, cookie: &str) -> Session {
    let active = manager.load(&request(cookie)).await.unwrap();
    assert!(!active.is_new(), "the session was lost");
    active.session().clone()
}

fn limit_of(err: &Error) -> Option<Limit> {
    match err {
        Error::LimitExceeded { limit, .. } => Some(*limit),
        _ => None,
    }
}

/// A value over `max_value_bytes` is refused where the handler sets it, with the key, size
/// and bound; the session and the store keep what they had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_over_the_limit_is_refused_where_it_is_set() {
    for (name, store, _guard) in stores_and_redis().await {
        let manager = manager(store, Limits::default().with_max_value_bytes(1024));
        let cookie = start(&manager, "user", "bob").await;
        let active = manager.load(&request(&cookie)).await.unwrap();
        let session = active.session();
        match session.insert("blob", "x".repeat(2000)) {
            Err(Error::LimitExceeded {
                limit: Limit::ValueBytes,
                key: Some(key),
                size,
                max: 1024,
            }) => {
                assert_eq!(key, "blob", "{name}");
                assert!(size > 2000, "{name}: size {size}");
            }
            other => panic!("{name}: expected the value limit, got {other:?}"),
        }
        assert!(!session.contains_key("blob"), "{name}");
        for _ in 0..3 {
            session.push("log", "y".repeat(300)).unwrap();
        }
        let err = session.push("log", "y".repeat(300)).unwrap_err();
        assert_eq!(limit_of(&err), Some(Limit::ValueBytes), "{name}: {err}");
        assert_eq!(session.get::<Vec<String>>("log").unwrap().unwrap().len(), 3);
        manager.finish(active).await.unwrap();
        let now = stored(&manager, &cookie).await;
        assert!(!now.contains_key("blob"), "{name}");
        assert_eq!(now.get::<Vec<String>>("log").unwrap().unwrap().len(), 3);
    }
}

/// A value that reached the session through a setter that cannot fail is caught when the
/// session is saved: the save fails with the value limit and nothing is written, for a new
/// session (the store stays empty) and for an existing one (it keeps its data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_value_is_refused_at_save_and_nothing_is_written() {
    for (name, store, _guard) in stores_and_redis().await {
        let counting = Arc::new(Probe::new(store));
        let manager = manager(
            counting.clone(),
            Limits::default().with_max_value_bytes(1024),
        );
        let big = Session::new();
        big.insert("blob", "x".repeat(2000)).unwrap();

        let active = manager.load(&RequestInfo::new()).await.unwrap();
        active.session().update(&big);
        let err = manager.finish(active).await.unwrap_err();
        assert_eq!(limit_of(&err), Some(Limit::ValueBytes), "{name}: {err}");
        assert_eq!(
            counting.counts().writes(),
            0,
            "{name}: something was written"
        );

        let cookie = start(&manager, "user", "bob").await;
        let active = manager.load(&request(&cookie)).await.unwrap();
        active.session().insert("user", "alice").unwrap();
        active.session().update(&big);
        let writes = counting.counts().writes();
        let err = manager.finish(active).await.unwrap_err();
        assert_eq!(limit_of(&err), Some(Limit::ValueBytes), "{name}: {err}");
        assert_eq!(
            counting.counts().writes(),
            writes,
            "{name}: the store was written"
        );
        let now = stored(&manager, &cookie).await;
        assert!(!now.contains_key("blob"), "{name}");
        assert_eq!(
            now.get::<String>("user").unwrap().as_deref(),
            Some("bob"),
            "{name}: part of a refused save was written"
        );
    }
}

/// A new key beyond `max_fields` is refused where it is set; two requests that each stay
/// within the bound but together exceed it: the second save is refused by the store's merge
/// and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_fields_are_refused() {
    for (name, store, _guard) in stores().await {
        // One user key plus sessionkit's three (created, seen, rotated): 4 fields.
        let manager = manager(store, Limits::default().with_max_fields(6));
        let cookie = start(&manager, "user", "bob").await;

        let first = manager.load(&request(&cookie)).await.unwrap();
        let second = manager.load(&request(&cookie)).await.unwrap();
        first.session().insert("a1", 1).unwrap();
        first.session().insert("a2", 2).unwrap();
        match first.session().insert("a3", 3) {
            Err(Error::LimitExceeded {
                limit: Limit::Fields,
                size: 7,
                max: 6,
                ..
            }) => {}
            other => panic!("{name}: expected the field limit, got {other:?}"),
        }
        first.session().insert("a2", 22).unwrap(); // replacing a key adds no field
        second.session().insert("b1", 1).unwrap();
        second.session().insert("b2", 2).unwrap();
        manager.finish(first).await.unwrap();
        let err = manager.finish(second).await.unwrap_err();
        assert_eq!(limit_of(&err), Some(Limit::Fields), "{name}: {err}");
        let now = stored(&manager, &cookie).await;
        assert_eq!(now.keys(), ["a1", "a2", "user"], "{name}");
    }
}

/// Two requests each add a value that fits, but the merged record would pass
/// `max_record_bytes`: the second save is refused by the store and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_the_limit_after_the_merge_is_refused() {
    for (name, store, _guard) in stores().await {
        let manager = manager(
            store,
            Limits::default()
                .with_max_value_bytes(2000)
                .with_max_record_bytes(3000),
        );
        let cookie = start(&manager, "user", "bob").await;
        let first = manager.load(&request(&cookie)).await.unwrap();
        let second = manager.load(&request(&cookie)).await.unwrap();
        first.session().insert("a", "x".repeat(1500)).unwrap();
        second.session().insert("b", "y".repeat(1500)).unwrap();
        manager.finish(first).await.unwrap();
        let err = manager.finish(second).await.unwrap_err();
        match err {
            Error::LimitExceeded {
                limit: Limit::RecordBytes,
                size,
                max: 3000,
                ..
            } => assert!(size > 3000, "{name}: {size}"),
            other => panic!("{name}: expected the record limit, got {other:?}"),
        }
        let now = stored(&manager, &cookie).await;
        assert!(now.contains_key("a") && !now.contains_key("b"), "{name}");

        // Within one request the bound is met where the value is set.
        let third = manager.load(&request(&cookie)).await.unwrap();
        let err = third.session().insert("c", "z".repeat(1500)).unwrap_err();
        assert_eq!(limit_of(&err), Some(Limit::RecordBytes), "{name}: {err}");
    }
}

/// Pushes from two requests that each fit, but would together grow the stored array past
/// `max_value_bytes`: the store refuses the second push atomically, and the array keeps the
/// first one's element only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_growing_a_value_past_the_limit_is_refused_by_the_store() {
    for (name, store, _guard) in stores().await {
        let manager = manager(store, Limits::default().with_max_value_bytes(1000));
        let cookie = start(&manager, "user", "bob").await;
        let active = manager.load(&request(&cookie)).await.unwrap();
        active.session().push("log", "x".repeat(300)).unwrap();
        manager.finish(active).await.unwrap();

        let first = manager.load(&request(&cookie)).await.unwrap();
        let second = manager.load(&request(&cookie)).await.unwrap();
        first.session().push("log", "y".repeat(400)).unwrap();
        second.session().push("log", "z".repeat(400)).unwrap();
        manager.finish(first).await.unwrap();
        let err = manager.finish(second).await.unwrap_err();
        match &err {
            Error::LimitExceeded {
                limit: Limit::ValueBytes,
                key: Some(key),
                max: 1000,
                ..
            } => assert_eq!(key, "log", "{name}"),
            other => panic!("{name}: expected the value limit, got {other:?}"),
        }
        let log: Vec<String> = stored(&manager, &cookie).await.get("log").unwrap().unwrap();
        assert_eq!(log.len(), 2, "{name}");
        assert!(log[1].starts_with('y'), "{name}");
    }
}

/// `MemoryStore::with_max_entries`: at the bound a new session is refused with a typed error
/// (no eviction: the sessions it holds stay), and once one ends there is room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_memory_store_refuses_new_sessions_at_its_bound() {
    let store = Arc::new(MemoryStore::with_max_entries(2));
    let manager = manager(store.clone(), Limits::default());
    let alice = start(&manager, "user", "alice").await;
    let bob = start(&manager, "user", "bob").await;
    let active = manager.load(&RequestInfo::new()).await.unwrap();
    active.session().insert("user", "carol").unwrap();
    match manager.finish(active).await {
        Err(Error::LimitExceeded {
            limit: Limit::Entries,
            size: 3,
            max: 2,
            ..
        }) => {}
        other => panic!("expected the entry bound, got {other:?}"),
    }
    assert_eq!(store.len(), 2);
    for (cookie, user) in [(&alice, "alice"), (&bob, "bob")] {
        let session = stored(&manager, cookie).await;
        assert_eq!(
            session.get::<String>("user").unwrap().as_deref(),
            Some(user)
        );
    }
    // Existing sessions still save at the bound.
    let active = manager.load(&request(&alice)).await.unwrap();
    active.session().insert("more", 1).unwrap();
    manager.finish(active).await.unwrap();
    // A logout makes room.
    let active = manager.load(&request(&bob)).await.unwrap();
    active.session().destroy();
    manager.finish(active).await.unwrap();
    start(&manager, "user", "carol").await;
}

/// Item 7: a `Duration::MAX` (or any over 100 years) timeout is refused when the manager is
/// built, with an error naming the option, instead of panicking on every request later.
#[tokio::test]
async fn huge_timeouts_are_refused_at_configuration() {
    let configs = [
        (
            "idle_timeout",
            SessionConfig::default().with_idle_timeout(Duration::MAX),
        ),
        (
            "absolute_timeout",
            SessionConfig::default().with_absolute_timeout(Some(Duration::MAX)),
        ),
        (
            "rotate_after",
            SessionConfig::default().with_rotate_after(Some(Duration::MAX)),
        ),
    ];
    for (option, config) in configs {
        match SessionManager::new(MemoryStore::new(), config) {
            Err(Error::Config(message)) => assert!(message.contains(option), "{message}"),
            Ok(manager) => {
                // Before the fix this got here and the first request with a cookie panicked.
                let cookie = {
                    let active = manager.load(&RequestInfo::new()).await.unwrap();
                    active.session().insert("k", 1).unwrap();
                    manager.finish(active).await.unwrap().set_cookie
                };
                panic!("{option} = Duration::MAX was accepted (cookie {cookie:?})");
            }
            Err(other) => panic!("{option}: expected a config error, got {other:?}"),
        }
    }
}

/// Item 7: the cache bound of a tier can be any duration; caching still works (the cap is
/// computed saturating, never `now + ttl` overflowing).
#[tokio::test]
async fn a_huge_cache_ttl_does_not_panic() {
    let store: Arc<dyn Store> = Arc::new(
        TieredStore::new(MemoryStore::bounded(10), MemoryStore::new())
            .with_max_cache_ttl(Duration::MAX),
    );
    let manager = manager(store, Limits::default());
    let cookie = start(&manager, "user", "bob").await;
    for _ in 0..2 {
        let session = stored(&manager, &cookie).await;
        assert_eq!(
            session.get::<String>("user").unwrap().as_deref(),
            Some("bob")
        );
    }
}

/// Item 7: a clock at the end of what `SystemTime` holds (a broken or hostile time source)
/// makes every deadline saturate instead of panicking in `now + timeout`: requests are
/// answered, and a session whose deadline cannot be represented simply does not last.
#[tokio::test]
async fn a_clock_at_the_end_of_time_does_not_panic() {
    // Unix's SystemTime holds i64 seconds: a minute before its end.
    let end = UNIX_EPOCH
        .checked_add(Duration::from_secs(i64::MAX as u64 - 60))
        .expect("a Unix SystemTime");
    let clock = ManualClock::at(end);
    let config = SessionConfig::default()
        .with_secure(false)
        .with_persistent(true)
        .with_clock(clock.clone());
    let manager = SessionManager::new(MemoryStore::new(), config).unwrap();
    let active = manager.load(&RequestInfo::new()).await.unwrap();
    active.session().insert("k", 1).unwrap();
    let outcome = manager.finish(active).await.unwrap();
    let cookie = outcome.set_cookie.expect("a new session sets its cookie");
    let pair = cookie.split(';').next().unwrap().to_owned();
    clock.advance(Duration::MAX);
    let active = manager.load(&request(&pair)).await.unwrap();
    manager.finish(active).await.unwrap();
}
