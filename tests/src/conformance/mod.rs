//! The one store conformance suite. Every backend and combinator runs all of it through
//! [`conformance_suite!`](crate::conformance_suite), one named test per behaviour.
//!
//! Each behaviour starts from a fresh store made by the invocation's factory and names its
//! own keys, so cases never see each other's data. The concurrency behaviours (in
//! `concurrent.rs`) take the store behind an `Arc` and run their tasks in parallel.

mod concurrent;

pub use concurrent::*;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sessionkit::store::{ChangeSet, Error, Grace, Record, Removed, Store, StoreExt};
use sessionkit::{SessionId, SessionKey};

pub mod limits;
pub mod listing;
pub mod ops;

/// How a backend differs from the strictest reading of the contract. Each difference is a
/// parameter the invocation states, never a silent skip.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// `cleanup` reports exactly the expired entries it removed. Backends whose storage
    /// expires entries by itself (moka, Redis TTLs) report fewer, down to 0.
    pub exact_cleanup: bool,
    /// How many sessions the "many sessions" case writes and reads.
    pub many_sessions: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            exact_cleanup: true,
            many_sessions: 100_000,
        }
    }
}

/// A fresh, unique key.
pub fn fresh_key() -> SessionKey {
    SessionId::generate().expect("OS randomness").key()
}

/// `now + ms`.
pub fn in_ms(ms: u64) -> SystemTime {
    SystemTime::now() + Duration::from_millis(ms)
}

/// The MessagePack encoding of `v`, as a session would store it.
pub fn enc<T: serde::Serialize>(v: T) -> Bytes {
    Bytes::from(rmp_serde::to_vec_named(&v).expect("encodable"))
}

/// A record expiring in an hour with the given fields.
pub fn record(fields: &[(&str, Bytes)]) -> Record {
    let mut r = Record::new(in_ms(3_600_000));
    for (k, v) in fields {
        r.fields.insert((*k).to_owned(), v.clone());
    }
    r
}

fn set(pairs: &[(&str, Bytes)]) -> ChangeSet {
    let mut c = ChangeSet::default();
    for (k, v) in pairs {
        c.set.insert((*k).to_owned(), v.clone());
    }
    c
}

async fn fields<S: Store + ?Sized>(store: &S, key: &SessionKey) -> BTreeMap<String, Bytes> {
    store
        .load(key)
        .await
        .expect("load")
        .expect("session present")
        .record
        .fields
}

/// A record written by `create` loads back with the same fields and owner, and an unknown key
/// loads as absent.
pub async fn round_trip<S: Store + ?Sized>(store: &S) {
    let key = fresh_key();
    let mut r = record(&[("name", enc("bob")), ("n", enc(7u32))]);
    r.owner = Some("user-1".into());
    store.create(&key, &r).await.unwrap();
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.record.fields, r.fields);
    assert_eq!(loaded.record.owner.as_deref(), Some("user-1"));
    assert!(loaded.moved.is_none());
    assert!(store.load(&fresh_key()).await.unwrap().is_none());
}

/// `create` on a live key fails with `AlreadyExists` and leaves the record untouched.
pub async fn create_collision<S: Store + ?Sized>(store: &S) {
    let key = fresh_key();
    store.create(&key, &record(&[("a", enc(1))])).await.unwrap();
    let err = store
        .create(&key, &record(&[("b", enc(2))]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists), "got {err:?}");
    let f = fields(store, &key).await;
    assert_eq!(f.keys().collect::<Vec<_>>(), vec!["a"]);
}

/// `apply` merges: sets, removals and a clear land in that order; unnamed keys keep their value.
pub async fn apply_merges<S: Store + ?Sized>(store: &S) {
    let key = fresh_key();
    store
        .create(&key, &record(&[("keep", enc(1)), ("drop", enc(2))]))
        .await
        .unwrap();
    let mut c = set(&[("new", enc(3)), ("keep", enc(10))]);
    c.remove.insert("drop".into());
    store.apply(&key, &c).await.unwrap();
    let f = fields(store, &key).await;
    assert_eq!(f.get("keep"), Some(&enc(10)));
    assert_eq!(f.get("new"), Some(&enc(3)));
    assert!(!f.contains_key("drop"));

    let mut clear = set(&[("after", enc(4))]);
    clear.clear = true;
    store.apply(&key, &clear).await.unwrap();
    let f = fields(store, &key).await;
    assert_eq!(f.keys().collect::<Vec<_>>(), vec!["after"]);
}

/// On one key, the last writer wins.
pub async fn same_key_last_writer_wins<S: Store + ?Sized>(store: &S) {
    let key = fresh_key();
    store.create(&key, &record(&[])).await.unwrap();
    store
        .apply(&key, &set(&[("k", enc("first"))]))
        .await
        .unwrap();
    store
        .apply(&key, &set(&[("k", enc("second"))]))
        .await
        .unwrap();
    assert_eq!(fields(store, &key).await.get("k"), Some(&enc("second")));
}

/// A save to a deleted session fails with `Gone` and does not bring it back.
pub async fn save_after_delete_does_not_resurrect<S: Store + ?Sized>(store: &S) {
    let key = fresh_key();
    store.create(&key, &record(&[("a", enc(1))])).await.unwrap();
    assert_eq!(store.delete(&key).await.unwrap(), Removed::Record);
    let err = store.apply(&key, &set(&[("b", enc(2))])).await.unwrap_err();
    assert!(matches!(err, Error::Gone), "got {err:?}");
    assert!(store.load(&key).await.unwrap().is_none());
    // Deleting again is fine, and removes nothing.
    assert_eq!(store.delete(&key).await.unwrap(), Removed::Nothing);
    // And a key that never existed is gone too.
    let err = store
        .apply(&fresh_key(), &set(&[("x", enc(1))]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Gone), "got {err:?}");
}

/// `delete` says what it removed: a live record, a live alias (with the key it points to,
/// whose record it leaves alone), or nothing for an absent key, an expired record and an alias
/// past its grace window.
pub async fn delete_reports_what_it_removed<S: Store + ?Sized>(store: &S) {
    let key = fresh_key();
    store.create(&key, &record(&[("a", enc(1))])).await.unwrap();
    assert_eq!(store.delete(&key).await.unwrap(), Removed::Record);
    assert_eq!(store.delete(&key).await.unwrap(), Removed::Nothing);
    assert_eq!(store.delete(&fresh_key()).await.unwrap(), Removed::Nothing);

    let (from, to) = (fresh_key(), fresh_key());
    store
        .create(&from, &record(&[("a", enc(1))]))
        .await
        .unwrap();
    let grace = Grace::new(in_ms(60_000), vec![1]);
    store.rename(&from, &to, Some(&grace)).await.unwrap();
    assert_eq!(store.delete(&from).await.unwrap(), Removed::Alias { to });
    assert!(store.load(&from).await.unwrap().is_none());
    // A second delete through the old key still names the move (a second logout that loaded
    // the session through it must be able to follow too).
    assert_eq!(store.delete(&from).await.unwrap(), Removed::Alias { to });
    assert!(store.load(&from).await.unwrap().is_none());
    assert_eq!(fields(store, &to).await.get("a"), Some(&enc(1)));
    assert_eq!(store.delete(&to).await.unwrap(), Removed::Record);

    // An expired record and an alias whose window ended remove nothing.
    let expired = fresh_key();
    let mut r = record(&[("a", enc(1))]);
    r.expires_at = in_ms(300);
    store.create(&expired, &r).await.unwrap();
    let (old, new) = (fresh_key(), fresh_key());
    store.create(&old, &record(&[("b", enc(2))])).await.unwrap();
    let short = Grace::new(in_ms(300), vec![2]);
    store.rename(&old, &new, Some(&short)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(store.delete(&expired).await.unwrap(), Removed::Nothing);
    assert_eq!(store.delete(&old).await.unwrap(), Removed::Nothing);
    assert_eq!(fields(store, &new).await.get("b"), Some(&enc(2)));
}

/// An expired record reads as absent before any cleanup, refuses saves, and its key can be
/// created again.
pub async fn expiry_without_cleanup<S: Store + ?Sized>(store: &S) {
    let key = fresh_key();
    let mut r = record(&[("a", enc(1))]);
    r.expires_at = in_ms(400);
    store.create(&key, &r).await.unwrap();
    assert!(store.load(&key).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(store.load(&key).await.unwrap().is_none());
    let err = store.apply(&key, &set(&[("b", enc(2))])).await.unwrap_err();
    assert!(matches!(err, Error::Gone), "got {err:?}");
    store.create(&key, &record(&[("c", enc(3))])).await.unwrap();
    assert_eq!(
        fields(store, &key).await.keys().collect::<Vec<_>>(),
        vec!["c"]
    );
}

/// A save that sets a later expiry keeps the record alive past its first expiry.
pub async fn apply_extends_expiry<S: Store + ?Sized>(store: &S) {
    let key = fresh_key();
    let mut r = record(&[("a", enc(1))]);
    r.expires_at = in_ms(400);
    store.create(&key, &r).await.unwrap();
    let c = {
        let mut change_set = ChangeSet::default();
        change_set.expires_at = Some(in_ms(60_000));
        change_set
    };
    store.apply(&key, &c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(store.load(&key).await.unwrap().is_some());
}

/// `cleanup` removes expired records (reporting how many, where the backend counts) and keeps
/// live ones.
pub async fn cleanup_removes_expired<S: Store + ?Sized>(store: &S, caps: &Caps) {
    let live: Vec<SessionKey> = (0..2).map(|_| fresh_key()).collect();
    let dead: Vec<SessionKey> = (0..3).map(|_| fresh_key()).collect();
    for k in &live {
        store.create(k, &record(&[("x", enc(1))])).await.unwrap();
    }
    for k in &dead {
        let mut r = record(&[("x", enc(1))]);
        r.expires_at = in_ms(300);
        store.create(k, &r).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let removed = store.cleanup().await.unwrap();
    if caps.exact_cleanup {
        assert_eq!(removed, 3);
    } else {
        assert!(removed <= 3, "removed {removed}");
    }
    for k in &live {
        assert!(store.load(k).await.unwrap().is_some());
    }
    for k in &dead {
        assert!(store.load(k).await.unwrap().is_none());
    }
    assert_eq!(store.cleanup().await.unwrap(), 0);
}

/// A move without grace: the new key holds the record, the old key is dead at once.
pub async fn move_without_grace<S: Store + ?Sized>(store: &S) {
    let (from, to) = (fresh_key(), fresh_key());
    store
        .create(&from, &record(&[("a", enc(1))]))
        .await
        .unwrap();
    store.rename(&from, &to, None).await.unwrap();
    assert!(store.load(&from).await.unwrap().is_none());
    let loaded = store.load(&to).await.unwrap().unwrap();
    assert_eq!(loaded.record.fields.get("a"), Some(&enc(1)));
    assert!(loaded.moved.is_none());
    let err = store
        .apply(&from, &set(&[("b", enc(2))]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Gone), "got {err:?}");
    // The old key can't be created over while... it is free again: it is.
    assert!(store.load(&from).await.unwrap().is_none());
}

/// A move with grace: the old key resolves to the moved session (with where it moved and the
/// token) until the window ends, never accepts saves, and is dead afterwards.
pub async fn move_with_grace<S: Store + ?Sized>(store: &S) {
    let (from, to) = (fresh_key(), fresh_key());
    store
        .create(&from, &record(&[("a", enc(1))]))
        .await
        .unwrap();
    let grace = Grace::new(in_ms(600), vec![9, 8, 7]);
    store.rename(&from, &to, Some(&grace)).await.unwrap();
    let via_old = store.load(&from).await.unwrap().unwrap();
    let moved = via_old.moved.expect("loaded through an alias");
    assert_eq!(moved.to, to);
    assert_eq!(moved.token, vec![9, 8, 7]);
    // Saves go to the new key and are seen through the old one.
    store.apply(&to, &set(&[("b", enc(2))])).await.unwrap();
    let via_old = store.load(&from).await.unwrap().unwrap();
    assert_eq!(via_old.record.fields.get("b"), Some(&enc(2)));
    let err = store
        .apply(&from, &set(&[("c", enc(3))]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Gone), "got {err:?}");
    // The alias is taken for create.
    let err = store.create(&from, &record(&[])).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists), "got {err:?}");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(store.load(&from).await.unwrap().is_none());
    assert!(store.load(&to).await.unwrap().is_some());
}

/// An alias never outlives its record, and deleting the record kills the alias.
pub async fn grace_never_outlives_record<S: Store + ?Sized>(store: &S) {
    let (from, to) = (fresh_key(), fresh_key());
    let mut r = record(&[("a", enc(1))]);
    r.expires_at = in_ms(400);
    store.create(&from, &r).await.unwrap();
    let grace = Grace::new(in_ms(60_000), vec![1]);
    store.rename(&from, &to, Some(&grace)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(store.load(&from).await.unwrap().is_none());
    assert!(store.load(&to).await.unwrap().is_none());

    let (from, to) = (fresh_key(), fresh_key());
    store
        .create(&from, &record(&[("a", enc(1))]))
        .await
        .unwrap();
    store.rename(&from, &to, Some(&grace)).await.unwrap();
    store.delete(&to).await.unwrap();
    assert!(store.load(&from).await.unwrap().is_none());
}

/// A move onto a taken key fails with `AlreadyExists` and leaves both intact; a move of an
/// absent key fails with `Gone`.
pub async fn move_conflicts<S: Store + ?Sized>(store: &S) {
    let (from, to) = (fresh_key(), fresh_key());
    store
        .create(&from, &record(&[("who", enc("from"))]))
        .await
        .unwrap();
    store
        .create(&to, &record(&[("who", enc("to"))]))
        .await
        .unwrap();
    let err = store.rename(&from, &to, None).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists), "got {err:?}");
    assert_eq!(fields(store, &from).await.get("who"), Some(&enc("from")));
    assert_eq!(fields(store, &to).await.get("who"), Some(&enc("to")));
    let err = store
        .rename(&fresh_key(), &fresh_key(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Gone), "got {err:?}");
}

/// Values of 1 MiB round-trip intact, through create and apply.
pub async fn large_values<S: Store + ?Sized>(store: &S) {
    let key = fresh_key();
    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    let big = Bytes::from(big);
    store
        .create(&key, &record(&[("big", big.clone())]))
        .await
        .unwrap();
    assert_eq!(fields(store, &key).await.get("big"), Some(&big));
    let big2 = Bytes::from(vec![7u8; 1_048_576]);
    store
        .apply(&key, &set(&[("big2", big2.clone())]))
        .await
        .unwrap();
    let f = fields(store, &key).await;
    assert_eq!(f.get("big"), Some(&big));
    assert_eq!(f.get("big2"), Some(&big2));
}

/// Many sessions (10⁵ unless the invocation says otherwise) are each stored and found.
pub async fn many_sessions<S: Store + ?Sized>(store: &S, caps: &Caps) {
    use futures::StreamExt as _;
    let keys: Vec<SessionKey> = (0..caps.many_sessions).map(|_| fresh_key()).collect();
    futures::stream::iter(keys.iter().enumerate())
        .for_each_concurrent(32, |(i, k)| async move {
            store
                .create(k, &record(&[("i", enc(i as u64))]))
                .await
                .unwrap();
        })
        .await;
    futures::stream::iter(keys.iter().enumerate())
        .for_each_concurrent(32, |(i, k)| async move {
            assert_eq!(fields(store, k).await.get("i"), Some(&enc(i as u64)));
        })
        .await;
}

/// Unicode and empty field names are ordinary keys.
pub async fn unicode_and_empty_keys<S: Store + ?Sized>(store: &S) {
    let key = fresh_key();
    let names = ["", "ключ", "🔑", "a b\tc", "\u{0}nul", "f:colon", "{brace}"];
    let pairs: Vec<(&str, Bytes)> = names.iter().map(|n| (*n, enc(*n))).collect();
    store.create(&key, &record(&pairs)).await.unwrap();
    let mut c = ChangeSet::default();
    c.remove.insert("🔑".into());
    c.set.insert("新".into(), enc(1));
    store.apply(&key, &c).await.unwrap();
    let f = fields(store, &key).await;
    for n in names.iter().filter(|n| **n != "🔑") {
        assert_eq!(f.get(*n), Some(&enc(*n)), "{n:?}");
    }
    assert!(!f.contains_key("🔑"));
    assert_eq!(f.get("新"), Some(&enc(1)));
}

/// A session with an empty field map is stored and loads as empty.
pub async fn empty_map<S: Store + ?Sized>(store: &S) {
    let key = fresh_key();
    store.create(&key, &record(&[])).await.unwrap();
    assert!(fields(store, &key).await.is_empty());
    let mut c = set(&[("a", enc(1))]);
    c.remove.insert("a".into());
    c.set.clear();
    c.remove.insert("a".into());
    store.apply(&key, &c).await.unwrap();
    assert!(fields(store, &key).await.is_empty());
    store
        .apply(&key, &{
            let mut change_set = ChangeSet::default();
            change_set.clear = true;
            change_set
        })
        .await
        .unwrap();
    assert!(store.load(&key).await.unwrap().is_some());
}

/// The owner index lists exactly an owner's live sessions, follows owner changes and moves, and
/// `delete_owned_by` ends them all without touching anyone else's.
pub async fn owner_index<S: Store + ?Sized>(store: &S) {
    let alice: Vec<SessionKey> = (0..3).map(|_| fresh_key()).collect();
    for k in &alice {
        let mut r = record(&[("x", enc(1))]);
        r.owner = Some("alice".into());
        store.create(k, &r).await.unwrap();
    }
    let bob = fresh_key();
    store.create(&bob, &record(&[])).await.unwrap();
    store
        .apply(&bob, &{
            let mut change_set = ChangeSet::default();
            change_set.owner = Some(Some("bob".into()));
            change_set
        })
        .await
        .unwrap();
    let mut listed = store.owned_by("alice").await.unwrap();
    listed.sort();
    let mut expected = alice.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(store.owned_by("bob").await.unwrap(), vec![bob]);
    assert!(store.owned_by("nobody").await.unwrap().is_empty());

    // A moved session is listed under its new key only.
    let moved_to = fresh_key();
    store.rename(&alice[0], &moved_to, None).await.unwrap();
    let listed = store.owned_by("alice").await.unwrap();
    assert!(listed.contains(&moved_to) && !listed.contains(&alice[0]));

    // Untagging removes it from the list.
    store
        .apply(&alice[1], &{
            let mut change_set = ChangeSet::default();
            change_set.owner = Some(None);
            change_set
        })
        .await
        .unwrap();
    assert_eq!(store.owned_by("alice").await.unwrap().len(), 2);

    assert_eq!(store.delete_owned_by("alice").await.unwrap(), 2);
    assert!(store.load(&moved_to).await.unwrap().is_none());
    assert!(store.load(&alice[2]).await.unwrap().is_none());
    assert!(store.load(&alice[1]).await.unwrap().is_some());
    assert!(store.load(&bob).await.unwrap().is_some());
    assert!(store.owned_by("alice").await.unwrap().is_empty());
}

/// Owner names are data, not syntax: names with separators, wildcards and protocol text are
/// indexed like any other and never match each other.
pub async fn hostile_owner_names<S: Store + ?Sized>(store: &S) {
    let names = ["../etc", "*", "a\r\nSET x y", "{slot}", "", "ünï"];
    let mut keys = Vec::new();
    for n in names {
        let k = fresh_key();
        let mut r = record(&[]);
        r.owner = Some(n.to_owned());
        store.create(&k, &r).await.unwrap();
        keys.push(k);
    }
    for (n, k) in names.iter().zip(&keys) {
        assert_eq!(store.owned_by(n).await.unwrap(), vec![*k], "{n:?}");
    }
}

/// Declares one test per conformance behaviour for the store made by `$factory`, an
/// `async fn() -> (S, G)` whose guard `G` lives as long as the test. Every test runs on a
/// multi-thread runtime with four workers; the concurrency behaviours (the third list) get
/// the store as `Arc::new(store)` and run their tasks in parallel on it.
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::conformance_suite!($factory, $crate::conformance::Caps::default());
    };
    ($factory:path, $caps:expr) => {
        $crate::conformance_suite!(@cases $factory, $caps;
            round_trip, create_collision, apply_merges, same_key_last_writer_wins,
            save_after_delete_does_not_resurrect, delete_reports_what_it_removed,
            expiry_without_cleanup, apply_extends_expiry, move_without_grace, move_with_grace,
            grace_never_outlives_record, move_conflicts, large_values, unicode_and_empty_keys,
            empty_map, owner_index, hostile_owner_names;
            cleanup_removes_expired, many_sessions;
            concurrent_create_one_wins, disjoint_concurrent_saves_all_kept,
            saves_racing_delete_never_resurrect, saves_racing_move_are_kept,
            logout_racing_rotation_ends_session, revoke_racing_rotations_leaves_none,
            revoke_racing_graceless_rotations_leaves_none);
        $crate::ops_suite!($factory);
    };
    (@cases $factory:path, $caps:expr; $($case:ident),*; $($capcase:ident),*;
        $($arccase:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let (store, _guard) = $factory().await;
                $crate::conformance::$case(&store).await;
            }
        )*
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $capcase() {
                let (store, _guard) = $factory().await;
                let caps: $crate::conformance::Caps = $caps;
                $crate::conformance::$capcase(&store, &caps).await;
            }
        )*
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $arccase() {
                let (store, _guard) = $factory().await;
                $crate::conformance::$arccase(::std::sync::Arc::new(store)).await;
            }
        )*
    };
}
