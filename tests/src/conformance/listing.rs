//! The [`Listing`] conformance cases, run on every store that lists through
//! [`listing_suite!`](crate::listing_suite).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sessionkit::SessionKey;
use sessionkit::store::{Cursor, Error, Grace, Listing, Record, Store};

use super::{enc, fresh_key, in_ms, record};

/// Scans the whole store with `batch`, returning every key in order of appearance.
pub async fn scan_all<S: Listing + ?Sized>(store: &S, batch: usize) -> Vec<SessionKey> {
    let mut keys = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = store.scan(cursor.as_ref(), batch).await.expect("scan");
        for (key, record) in &page.sessions {
            assert!(
                record.is_live_at(std::time::SystemTime::now()),
                "only live records"
            );
            keys.push(*key);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return keys,
        }
    }
}

fn assert_once(keys: &[SessionKey]) {
    let distinct: HashSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "a key was listed twice");
}

/// Live records are listed, with their data; expired ones, grace aliases and deleted ones are
/// not; `count` agrees; small pages cover the store.
pub async fn scan_lists_live_sessions_only<S: Listing>(store: &S, exactly_once: bool) {
    let mut live = HashSet::new();
    for i in 0..40u32 {
        let key = fresh_key();
        let mut r = record(&[("n", enc(i))]);
        if i % 3 == 0 {
            r.owner = Some(format!("user{}", i % 2));
        }
        store.create(&key, &r).await.expect("create");
        live.insert(key);
    }
    let expiring: Vec<SessionKey> = (0..5).map(|_| fresh_key()).collect();
    for key in &expiring {
        store
            .create(key, &Record::new(in_ms(150)))
            .await
            .expect("create");
    }
    let mut aliases = Vec::new();
    for _ in 0..5 {
        let (from, to) = (fresh_key(), fresh_key());
        store.create(&from, &record(&[])).await.expect("create");
        store
            .rename(&from, &to, Some(&Grace::new(in_ms(3_600_000), vec![7; 16])))
            .await
            .expect("rename");
        aliases.push(from);
        live.insert(to);
    }
    for _ in 0..3 {
        let key = fresh_key();
        store.create(&key, &record(&[])).await.expect("create");
        store.delete(&key).await.expect("delete");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;

    for batch in [1, 7, 1000] {
        let keys = scan_all(store, batch).await;
        if exactly_once {
            assert_once(&keys);
        }
        let listed: HashSet<SessionKey> = keys.into_iter().collect();
        assert_eq!(listed, live, "batch {batch}: exactly the live sessions");
        for key in expiring.iter().chain(&aliases) {
            assert!(!listed.contains(key));
        }
    }
    assert_eq!(store.count().await.expect("count"), live.len() as u64);

    // Pages carry the records themselves.
    let mut with_n = 0;
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = store.scan(cursor.as_ref(), 1000).await.expect("scan");
        with_n += page
            .sessions
            .iter()
            .filter(|(_, r)| r.fields.contains_key("n"))
            .count();
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(with_n, 40);
}

/// An empty store lists nothing and counts 0.
pub async fn empty_store_lists_nothing<S: Listing>(store: &S) {
    assert!(scan_all(store, 10).await.is_empty());
    assert_eq!(store.count().await.expect("count"), 0);
}

/// A cursor the store never produced is a typed error, not a panic.
pub async fn foreign_cursor_is_a_config_error<S: Listing>(store: &S) {
    for text in ["not a cursor", "zz", "99999999999999999999999999:x"] {
        match store.scan(Some(&Cursor::new(text)), 10).await {
            Err(Error::Config(_)) => {}
            other => panic!("cursor {text:?}: expected Error::Config, got {other:?}"),
        }
    }
}

/// A scan while other tasks create, save and delete sessions: between every two pages the
/// writer does at least one round (the scanner waits for it), on a multi-thread runtime where
/// the writer also runs freely during the pages. The scan never fails, lists every session
/// that stayed live throughout, and (for ordered stores) lists no key twice.
pub async fn scan_concurrent_with_writes<S: Listing + 'static>(store: Arc<S>, exactly_once: bool) {
    let stable: Vec<SessionKey> = (0..120).map(|_| fresh_key()).collect();
    for key in &stable {
        store
            .create(key, &record(&[("v", enc(0))]))
            .await
            .expect("create");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let (tx, mut rx) = tokio::sync::watch::channel(0u64);
    let writer = {
        let (store, stop, barrier, stable) = (
            Arc::clone(&store),
            Arc::clone(&stop),
            Arc::clone(&barrier),
            stable.clone(),
        );
        tokio::spawn(async move {
            barrier.wait().await;
            let mut round = 0u64;
            while !stop.load(Ordering::Acquire) {
                let churn = fresh_key();
                store.create(&churn, &record(&[])).await.expect("create");
                let mut changes = sessionkit::store::ChangeSet::default();
                changes.set.insert("v".into(), enc(round));
                let target = &stable[(round as usize) % stable.len()];
                store.apply(target, &changes).await.expect("apply");
                if round.is_multiple_of(2) {
                    store.delete(&churn).await.expect("delete");
                }
                round += 1;
                tx.send_replace(round);
                tokio::task::yield_now().await;
            }
            round
        })
    };
    barrier.wait().await;
    let mut keys = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = store
            .scan(cursor.as_ref(), 9)
            .await
            .expect("scan under writes");
        keys.extend(page.sessions.into_iter().map(|(k, _)| k));
        pages += 1;
        rx.changed().await.expect("writer alive");
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    stop.store(true, Ordering::Release);
    let rounds = writer.await.expect("writer");
    assert!(rounds >= pages, "the writer ran between the pages");
    if exactly_once {
        assert_once(&keys);
    }
    let listed: HashSet<SessionKey> = keys.into_iter().collect();
    for key in &stable {
        assert!(listed.contains(key), "a session live throughout was missed");
    }
}

/// Runs the [`Listing`] cases on the store `$factory` makes; `$once` says whether the store
/// promises each key at most once per scan.
#[macro_export]
macro_rules! listing_suite {
    ($factory:path, $once:expr) => {
        mod listing {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn scan_lists_live_sessions_only() {
                let (store, _guard) = $factory().await;
                $crate::conformance::listing::scan_lists_live_sessions_only(&store, $once).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn empty_store_lists_nothing() {
                let (store, _guard) = $factory().await;
                $crate::conformance::listing::empty_store_lists_nothing(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn foreign_cursor_is_a_config_error() {
                let (store, _guard) = $factory().await;
                $crate::conformance::listing::foreign_cursor_is_a_config_error(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn scan_concurrent_with_writes() {
                let (store, _guard) = $factory().await;
                $crate::conformance::listing::scan_concurrent_with_writes(
                    ::std::sync::Arc::new(store),
                    $once,
                )
                .await;
            }
        }
    };
}
