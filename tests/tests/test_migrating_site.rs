//! `MigratingStore` under live HTTP traffic: the example site moves from files to Redis (its
//! own redis-server) while many visitors keep writing, logging in and out, and a drainer copies
//! the old store into the new one as `sessionkit migrate` does. Nothing is lost, no session is
//! duplicated or revived, and the old store ends up drained.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sessionkit::SessionId;
use sessionkit::store::{Listing, MigratingStore, Store};
use sessionkit_backends::{FileStore, RedisStore};
use sessionkit_examples::site::{SessionJson, StoreKind};
use sessionkit_tests::redis_server::RedisServer;
use sessionkit_tests::site::Site;

const VISITORS: usize = 32;
const ITEMS: usize = 8;

/// Every live session `store` lists, by key hex.
async fn keys(store: &impl Listing) -> HashSet<String> {
    let mut keys = HashSet::new();
    let mut cursor = None;
    loop {
        let page = store.scan(cursor.as_ref(), 64).await.unwrap();
        keys.extend(page.sessions.iter().map(|(k, _)| k.to_hex()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return keys,
        }
    }
}

/// One pass of what `sessionkit migrate` does: every live session of `old` is created in `new`
/// unless `new` holds its key; a copy whose session `old` no longer holds afterwards (ended
/// meanwhile through the `MigratingStore`) is deleted again. Returns how many were copied.
async fn drain(old: &FileStore, new: &RedisStore) -> u64 {
    let mut copied = 0;
    let mut cursor = None;
    loop {
        let page = old.scan(cursor.as_ref(), 8).await.unwrap();
        for (key, record) in &page.sessions {
            if new.load(key).await.unwrap().is_some() {
                continue;
            }
            match new.create(key, record).await {
                Ok(()) if old.load(key).await.unwrap().is_some() => copied += 1,
                Ok(()) => {
                    new.delete(key).await.unwrap();
                }
                Err(sessionkit::Error::AlreadyExists) => {}
                Err(e) => panic!("copy: {e}"),
            }
            tokio::task::yield_now().await;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return copied,
        }
    }
}

fn hex(cookie: Option<&str>) -> String {
    SessionId::parse(cookie.expect("a cookie"))
        .expect("a well-formed id")
        .key()
        .to_hex()
}

/// What each visitor does: visitor `i` adds `ITEMS` items `v{i}-{j}`; every fourth logs in
/// halfway through (the id moves while the session may still be only in the old store), and
/// another fourth logs out at the end.
fn logs_in(i: usize) -> bool {
    i % 4 == 1
}

fn logs_out(i: usize) -> bool {
    i % 4 == 3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_site_moves_from_files_to_redis_without_losing_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let old = FileStore::open(dir.path()).await.unwrap();
    let server = RedisServer::start();
    let new = RedisStore::open(&server.url()).await.unwrap();

    // Before: the site on files alone; every visitor has a session there.
    let before = Site::start_on_store(Arc::new(old.clone()), |c| c).await;
    let mut cookies = Vec::new();
    for _ in 0..VISITORS {
        let mut c = before.client();
        assert_eq!(c.get("/").await.status, 200);
        cookies.push(c.cookie.clone());
    }
    drop(before);
    assert_eq!(old.count().await.unwrap(), VISITORS as u64);

    // During: the site on MigratingStore<Redis, files>, visitors and the drainer released
    // together.
    let site = Site::start_on_store(
        Arc::new(MigratingStore::new(new.clone(), old.clone())),
        |c| c,
    )
    .await;
    let barrier = Arc::new(tokio::sync::Barrier::new(VISITORS + 1));
    let mut visitors = Vec::new();
    for (i, cookie) in cookies.into_iter().enumerate() {
        let mut c = site.client();
        c.cookie = cookie;
        let barrier = Arc::clone(&barrier);
        visitors.push(tokio::spawn(async move {
            barrier.wait().await;
            let first = c.cookie.clone();
            for j in 0..ITEMS {
                if logs_in(i) && j == ITEMS / 2 {
                    let r = c.post("/login", &[("username", &format!("user{i}"))]).await;
                    assert_eq!(r.status, 303, "{r:?}");
                }
                let r = c.post("/cart", &[("item", &format!("v{i}-{j}"))]).await;
                assert_eq!(r.status, 303, "{r:?}");
            }
            let last = c.cookie.clone();
            if logs_out(i) {
                assert_eq!(c.post("/logout", &[]).await.status, 303);
            }
            (first, last)
        }));
    }
    let traffic_done = Arc::new(AtomicBool::new(false));
    let drainer = {
        let (old, new) = (old.clone(), new.clone());
        let (barrier, traffic_done) = (Arc::clone(&barrier), Arc::clone(&traffic_done));
        tokio::spawn(async move {
            barrier.wait().await;
            let mut passes = 0u32;
            while !traffic_done.load(Ordering::Acquire) || passes == 0 {
                drain(&old, &new).await;
                passes += 1;
            }
            passes
        })
    };
    let mut done = Vec::new();
    for v in visitors {
        done.push(v.await.unwrap());
    }
    traffic_done.store(true, Ordering::Release);
    drainer.await.unwrap();
    // Old is drained: a last pass finds nothing left to copy, every session Old still lists
    // is in New (an unchanged older copy, which New's answers hide), and New holds each live
    // visitor's session exactly once (every other key in it is ended or moved away).
    assert_eq!(drain(&old, &new).await, 0, "nothing left to copy");
    let (in_old, in_new) = (keys(&old).await, keys(&new).await);
    assert!(
        in_old.is_subset(&in_new),
        "{:?}",
        in_old.difference(&in_new)
    );
    drop(site);

    // After: the site on Redis alone.
    let site = Site::start_on_redis(StoreKind::Redis, &server.url(), |c| c).await;
    let mut live = HashSet::new();
    for (i, (first, last)) in done.into_iter().enumerate() {
        let mut c = site.client();
        c.cookie.clone_from(&last);
        let seen = c.state().await;
        let fresh = SessionJson {
            visits: 0,
            user: None,
            cart: Vec::new(),
        };
        if logs_out(i) {
            assert_eq!(seen, fresh, "visitor {i} logged out, and stays so");
            continue;
        }
        assert_eq!(
            seen,
            SessionJson {
                visits: 1,
                user: logs_in(i).then(|| format!("user{i}")),
                cart: (0..ITEMS).map(|j| format!("v{i}-{j}")).collect(),
            },
            "visitor {i}: every write kept"
        );
        if logs_in(i) {
            let mut pre_login = site.client();
            pre_login.cookie = first;
            assert_eq!(pre_login.state().await, fresh, "visitor {i}'s pre-login id");
        }
        live.insert(hex(last.as_deref()));
    }
    assert_eq!(
        in_new, live,
        "New holds each live visitor once, nothing else"
    );
    assert_eq!(new.count().await.unwrap(), live.len() as u64);
}
