//! The conformance behaviours of operations ([`Op`]): counters, appends and set operations on
//! one key, carried out by the store against the value it holds. Run on every store setup by
//! [`ops_suite!`](crate::ops_suite), which [`conformance_suite!`](crate::conformance_suite)
//! invokes.
//!
//! The concurrent cases spawn their tasks on a multi-thread runtime and release them together
//! with a [`Barrier`], so saves on one key really overlap.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use sessionkit::SessionKey;
use sessionkit::store::{ChangeSet, Error, Op, Store};
use tokio::sync::Barrier;

use super::{enc, fresh_key, record};

/// Tasks per concurrent case.
pub(super) const TASKS: usize = 8;
/// Saves per task in a concurrent case.
pub(super) const ROUNDS: usize = 25;

fn one_op(key: &str, op: Op) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.push_op(key, op);
    c
}

fn push(value: Bytes) -> Op {
    Op::Push {
        value,
        max_len: None,
    }
}

fn dec<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> T {
    rmp_serde::from_slice(bytes).expect("decodable")
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

/// Runs `task(store, t)` for `TASKS` spawned tasks released together, and waits for all.
pub(super) async fn race<S, F, Fut>(store: &Arc<S>, task: F)
where
    S: Store + 'static,
    F: Fn(Arc<S>, usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(TASKS));
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let barrier = barrier.clone();
            let work = task(store.clone(), t);
            tokio::spawn(async move {
                barrier.wait().await;
                work.await;
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("task");
    }
}

/// N tasks × M increments of one counter, racing, add up to exactly N × M.
pub async fn concurrent_increments_all_count<S: Store + 'static>(store: Arc<S>) {
    let key = fresh_key();
    store
        .create(&key, &record(&[("visits", enc(1000))]))
        .await
        .unwrap();
    race(&store, |store, _| async move {
        for _ in 0..ROUNDS {
            let c = one_op("visits", Op::Increment(1));
            store.apply(&key, &c).await.unwrap();
        }
    })
    .await;
    let got: i64 = dec(&fields(&*store, &key).await["visits"]);
    assert_eq!(got, 1000 + (TASKS * ROUNDS) as i64);
}

/// N tasks × M pushes onto one array, racing: every element lands once, and each task's
/// elements keep their order.
pub async fn concurrent_pushes_all_land_in_order<S: Store + 'static>(store: Arc<S>) {
    let key = fresh_key();
    store.create(&key, &record(&[])).await.unwrap();
    race(&store, |store, t| async move {
        for i in 0..ROUNDS {
            let c = one_op("log", push(enc((t, i))));
            store.apply(&key, &c).await.unwrap();
        }
    })
    .await;
    let log: Vec<(usize, usize)> = dec(&fields(&*store, &key).await["log"]);
    assert_eq!(log.len(), TASKS * ROUNDS);
    for t in 0..TASKS {
        let mine: Vec<usize> = log
            .iter()
            .filter(|(o, _)| *o == t)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(mine, (0..ROUNDS).collect::<Vec<_>>(), "task {t}");
    }
}

/// Operations racing plain sets and removals of other keys (and carried in the same saves):
/// the counter and the array lose nothing, and every other key ends as its last save left it.
pub async fn operations_mixed_with_sets_and_removals<S: Store + 'static>(store: Arc<S>) {
    let key = fresh_key();
    store
        .create(&key, &record(&[("shared", enc("untouched"))]))
        .await
        .unwrap();
    race(&store, |store, t| async move {
        let own = format!("own{t}");
        for i in 0..ROUNDS {
            let mut c = ChangeSet::default();
            if i % 3 == 2 {
                c.remove.insert(own.clone());
            } else {
                c.set.insert(own.clone(), enc(i));
            }
            c.push_op("n", Op::Increment(2));
            if t % 2 == 0 {
                c.push_op("seen", Op::Add(enc(i % 5)));
            } else {
                c.push_op("log", push(enc(t)));
            }
            store.apply(&key, &c).await.unwrap();
        }
    })
    .await;
    let f = fields(&*store, &key).await;
    assert_eq!(dec::<i64>(&f["n"]), 2 * (TASKS * ROUNDS) as i64);
    assert_eq!(dec::<Vec<usize>>(&f["log"]).len(), (TASKS / 2) * ROUNDS);
    let seen: Vec<usize> = dec(&f["seen"]);
    assert_eq!(
        seen.iter().copied().collect::<BTreeSet<_>>(),
        (0..5).collect::<BTreeSet<_>>()
    );
    assert_eq!(seen.len(), 5, "no duplicates in a set-like array");
    assert_eq!(dec::<String>(&f["shared"]), "untouched");
    let last = ROUNDS - 1;
    for t in 0..TASKS {
        // The last round of each task decides its own key.
        match f.get(&format!("own{t}")) {
            Some(v) if last % 3 != 2 => assert_eq!(dec::<usize>(v), last),
            None if last % 3 == 2 => {}
            other => panic!("own{t}: {other:?}"),
        }
    }
}

/// Operations racing a delete never bring the session back: each save either lands before
/// the delete or fails with `Gone`.
pub async fn operations_racing_delete_never_resurrect<S: Store + 'static>(store: Arc<S>) {
    let key = fresh_key();
    store.create(&key, &record(&[])).await.unwrap();
    let barrier = Arc::new(Barrier::new(TASKS + 1));
    let writers: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                for _ in 0..ROUNDS {
                    let mut c = one_op("n", Op::Increment(1));
                    c.push_op(format!("log{t}"), push(enc(t)));
                    match store.apply(&key, &c).await {
                        Ok(()) => tokio::task::yield_now().await,
                        Err(Error::Gone) => return,
                        Err(e) => panic!("unexpected error {e:?}"),
                    }
                }
            })
        })
        .collect();
    let deleter = {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            tokio::task::yield_now().await;
            store.delete(&key).await.unwrap();
        })
    };
    for handle in writers {
        handle.await.unwrap();
    }
    deleter.await.unwrap();
    assert!(store.load(&key).await.unwrap().is_none());
    let err = store
        .apply(&key, &one_op("n", Op::Increment(1)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Gone), "got {err:?}");
    assert!(store.load(&key).await.unwrap().is_none());
}

/// An operation on a value of the wrong type, or one that overflows, fails naming the key,
/// and nothing of that save is written: not its sets, removals, other operations or expiry.
pub async fn failing_operation_writes_nothing<S: Store + 'static>(store: Arc<S>) {
    let key = fresh_key();
    let original = record(&[
        ("name", enc("bob")),
        ("n", enc(1)),
        ("xs", enc(vec![1])),
        ("max", enc(i64::MAX)),
        ("extra", enc(0)),
    ]);
    store.create(&key, &original).await.unwrap();
    let before = store.load(&key).await.unwrap().unwrap().record;
    let cases: [(&str, Op, &str); 4] = [
        ("name", Op::Increment(1), "integer"),
        ("n", push(enc(2)), "array"),
        ("xs", Op::Increment(1), "integer"),
        ("max", Op::Increment(1), "overflow"),
    ];
    for (target, op, kind) in cases {
        let mut c = ChangeSet::default();
        c.set.insert("other".into(), enc(1));
        c.remove.insert("extra".into());
        c.push_op("a-counter", Op::Increment(5));
        c.push_op("xs", push(enc(9)));
        c.push_op(target, op);
        c.expires_at = Some(original.expires_at + std::time::Duration::from_secs(60));
        let err = store.apply(&key, &c).await.unwrap_err();
        match (&err, kind) {
            (Error::WrongType { key, expected }, "integer") => {
                assert_eq!((key.as_str(), *expected), (target, "an integer"));
            }
            (Error::WrongType { key, expected }, "array") => {
                assert_eq!((key.as_str(), *expected), (target, "an array"));
            }
            (Error::Overflow { key }, "overflow") => assert_eq!(key, target),
            _ => panic!("{target}: unexpected {err:?}"),
        }
        let after = store.load(&key).await.unwrap().unwrap().record;
        assert_eq!(after.fields, before.fields, "{target}: nothing written");
        // A cache tier may report an earlier expiry than the record's, never a later one.
        assert!(
            after.expires_at <= original.expires_at,
            "{target}: expiry not extended"
        );
    }
}

/// Operations on absent keys start from the empty value: 0 for a counter, [] for an array.
pub async fn operations_on_absent_keys_start_empty<S: Store + 'static>(store: Arc<S>) {
    let key = fresh_key();
    store.create(&key, &record(&[])).await.unwrap();
    let mut c = ChangeSet::default();
    c.push_op("count", Op::Increment(-7));
    c.push_op("list", push(enc("x")));
    c.push_op("set", Op::Add(enc("x")));
    c.push_op("gone", Op::Remove(enc("x")));
    c.push_op(
        "capped",
        Op::Push {
            value: enc("x"),
            max_len: Some(0),
        },
    );
    store.apply(&key, &c).await.unwrap();
    let f = fields(&*store, &key).await;
    assert_eq!(f["count"], enc(-7));
    assert_eq!(f["list"], enc(vec!["x"]));
    assert_eq!(f["set"], enc(vec!["x"]));
    assert_eq!(f["gone"], enc(Vec::<String>::new()));
    assert_eq!(f["capped"], enc(Vec::<String>::new()));
}

/// A bounded push keeps the first `max_len` elements and drops later ones, even when tasks
/// race to fill it; set operations racing on one array keep each element once.
pub async fn bounded_pushes_and_set_operations_race_safely<S: Store + 'static>(store: Arc<S>) {
    let key = fresh_key();
    store.create(&key, &record(&[])).await.unwrap();
    const BOUND: usize = 30;
    race(&store, |store, t| async move {
        for i in 0..ROUNDS {
            let mut c = one_op(
                "cart",
                Op::Push {
                    value: enc((t, i)),
                    max_len: Some(BOUND),
                },
            );
            // Every task adds the same elements, and removes the odd ones once added.
            c.push_op("tags", Op::Add(enc(i)));
            if i % 2 == 1 {
                c.push_op("tags", Op::Remove(enc(i)));
            }
            store.apply(&key, &c).await.unwrap();
        }
    })
    .await;
    let f = fields(&*store, &key).await;
    let cart: Vec<(usize, usize)> = dec(&f["cart"]);
    assert_eq!(cart.len(), BOUND);
    assert_eq!(
        cart.iter().collect::<BTreeSet<_>>().len(),
        BOUND,
        "no element twice"
    );
    for t in 0..TASKS {
        let mine: Vec<usize> = cart
            .iter()
            .filter(|(o, _)| *o == t)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(
            mine,
            (0..mine.len()).collect::<Vec<_>>(),
            "task {t} keeps its first ones"
        );
    }
    let tags: Vec<usize> = dec(&f["tags"]);
    assert_eq!(tags.iter().collect::<BTreeSet<_>>().len(), tags.len());
    assert_eq!(
        tags.into_iter().collect::<BTreeSet<_>>(),
        (0..ROUNDS).filter(|i| i % 2 == 0).collect::<BTreeSet<_>>()
    );
}

/// Declares one multi-thread `#[tokio::test]` per operation behaviour for the store made by
/// `$factory` (as for [`conformance_suite!`](crate::conformance_suite)), shared by its tasks
/// through an `Arc`.
#[macro_export]
macro_rules! ops_suite {
    ($factory:path) => {
        $crate::ops_suite!(@cases $factory;
            concurrent_increments_all_count, concurrent_pushes_all_land_in_order,
            operations_mixed_with_sets_and_removals, operations_racing_delete_never_resurrect,
            failing_operation_writes_nothing, operations_on_absent_keys_start_empty,
            bounded_pushes_and_set_operations_race_safely);
    };
    (@cases $factory:path; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let (store, _guard) = $factory().await;
                $crate::conformance::ops::$case(::std::sync::Arc::new(store)).await;
            }
        )*
    };
}
