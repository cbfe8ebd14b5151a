//! `MigratingStore`: the conformance suite on memory→memory and file→Redis (its own
//! redis-server), and the migration itself: sessions found only in the old store are copied on
//! first read, saved, moved and ended correctly, and under concurrent traffic (multi-thread
//! runtime, barrier) while the old store drains no write is lost and no session duplicated.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::sync::Arc;

use sessionkit::store::{ChangeSet, Grace, MemoryStore, MigratingStore, Op, Removed, Store};
use sessionkit_tests::conformance::{enc, fresh_key, in_ms, record};
use sessionkit_tests::{conformance_suite, setups};

mod migrating_memory_memory {
    use super::*;
    conformance_suite!(
        setups::migrating_memory_memory::make,
        setups::migrating_memory_memory::CAPS
    );
}

mod migrating_redis_file {
    use super::*;
    conformance_suite!(
        setups::migrating_redis_file::make,
        setups::migrating_redis_file::CAPS
    );
}

fn stores() -> (
    MemoryStore,
    MemoryStore,
    MigratingStore<MemoryStore, MemoryStore>,
) {
    let (new, old) = (MemoryStore::new(), MemoryStore::new());
    (new.clone(), old.clone(), MigratingStore::new(new, old))
}

fn set(name: &str, value: u64) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.set.insert(name.into(), enc(value));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_only_in_old_is_copied_on_read() {
    let (new, old, store) = stores();
    let key = fresh_key();
    old.create(&key, &record(&[("a", enc(1u64))]))
        .await
        .unwrap();
    let loaded = store.load(&key).await.unwrap().expect("found in old");
    assert_eq!(loaded.record.fields["a"], enc(1u64));
    assert_eq!(
        new.load(&key).await.unwrap().unwrap().record.fields["a"],
        enc(1u64)
    );
    assert!(store.load(&fresh_key()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_to_a_session_only_in_old_copies_then_applies() {
    let (new, old, store) = stores();
    let key = fresh_key();
    old.create(&key, &record(&[("a", enc(1u64))]))
        .await
        .unwrap();
    store.apply(&key, &set("b", 2)).await.unwrap();
    let fields = new.load(&key).await.unwrap().unwrap().record.fields;
    assert_eq!(fields["a"], enc(1u64));
    assert_eq!(fields["b"], enc(2u64));
    assert!(matches!(
        store.apply(&fresh_key(), &set("b", 2)).await,
        Err(sessionkit::Error::Gone)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_is_refused_for_a_key_old_holds() {
    let (_new, old, store) = stores();
    let key = fresh_key();
    old.create(&key, &record(&[])).await.unwrap();
    assert!(matches!(
        store.create(&key, &record(&[])).await,
        Err(sessionkit::Error::AlreadyExists)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_and_moves_reach_both_stores() {
    let (new, old, store) = stores();
    let key = fresh_key();
    old.create(&key, &record(&[])).await.unwrap();
    store.load(&key).await.unwrap().expect("copied");
    assert_eq!(store.delete(&key).await.unwrap(), Removed::Record);
    assert!(old.load(&key).await.unwrap().is_none());
    assert!(new.load(&key).await.unwrap().is_none());
    assert!(store.load(&key).await.unwrap().is_none());

    let (from, to) = (fresh_key(), fresh_key());
    old.create(&from, &record(&[("a", enc(1u64))]))
        .await
        .unwrap();
    store.rename(&from, &to, None).await.unwrap();
    assert!(
        old.load(&from).await.unwrap().is_none(),
        "the old key is gone from Old"
    );
    assert!(store.load(&from).await.unwrap().is_none());
    assert_eq!(
        store.load(&to).await.unwrap().unwrap().record.fields["a"],
        enc(1u64)
    );

    let (from, to) = (fresh_key(), fresh_key());
    old.create(&from, &record(&[])).await.unwrap();
    let grace = Grace::new(in_ms(60_000), vec![1; 16]);
    store.rename(&from, &to, Some(&grace)).await.unwrap();
    let through_alias = store
        .load(&from)
        .await
        .unwrap()
        .expect("alias in its window");
    assert_eq!(through_alias.moved.expect("moved").to, to);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_are_the_union_of_both() {
    let (_new, old, store) = stores();
    let (a, b) = (fresh_key(), fresh_key());
    let mut r = record(&[]);
    r.owner = Some("ann".into());
    old.create(&a, &r).await.unwrap();
    store.create(&b, &r).await.unwrap();
    let mut owned = store.owned_by("ann").await.unwrap();
    owned.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(owned, want);
}

/// Sessions start in Old. Several tasks (released together by a barrier) increment a counter
/// in every session through the MigratingStore while a drainer copies each session from Old
/// into New directly, as `migrate` does. Afterwards every counter holds every increment (no
/// write landed in a copy that was then replaced), and each session exists once, in New.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_write_is_lost_while_old_is_copied_over() {
    const SESSIONS: usize = 40;
    const WRITERS: usize = 3;
    const ROUNDS: u64 = 20;
    let (new, old, store) = stores();
    let store = Arc::new(store);
    let keys: Vec<_> = (0..SESSIONS).map(|_| fresh_key()).collect();
    for key in &keys {
        old.create(key, &record(&[])).await.unwrap();
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS + 1));
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (store, barrier, keys) = (Arc::clone(&store), Arc::clone(&barrier), keys.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            for _ in 0..ROUNDS {
                for key in &keys {
                    let mut c = ChangeSet::default();
                    c.push_op("n", Op::Increment(1));
                    store.apply(key, &c).await.expect("apply");
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let drainer = {
        let (new_direct, old, barrier, keys) =
            (new.clone(), old.clone(), Arc::clone(&barrier), keys.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            for key in &keys {
                // What `migrate` does: copy Old's record into New, unless New has it.
                let found = old.load(key).await.expect("load").expect("present");
                match new_direct.create(key, &found.record).await {
                    Ok(()) | Err(sessionkit::Error::AlreadyExists) => {}
                    Err(e) => panic!("copy: {e}"),
                }
                tokio::task::yield_now().await;
            }
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    drainer.await.unwrap();
    assert_eq!(new.len(), SESSIONS as u64, "each session once, in New");
    let want = enc((WRITERS as u64 * ROUNDS) as i64);
    for key in &keys {
        let fields = store.load(key).await.unwrap().unwrap().record.fields;
        assert_eq!(fields["n"], want, "every increment counted");
    }
}
