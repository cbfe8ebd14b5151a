//! The conformance behaviours about concurrency. Each takes the store behind an `Arc`, spawns
//! its tasks with `tokio::spawn` and releases them together with a [`Barrier`], so on the
//! suite's multi-thread runtime they run in parallel on several workers (an in-memory store
//! never yields, so tasks joined inside one task would run one after another).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sessionkit::SessionKey;
use sessionkit::store::{Error, Grace, Store, StoreExt};
use tokio::sync::Barrier;

use super::{enc, fields, fresh_key, in_ms, record, set};

/// Spawns one task per element of `tasks`, holds them at a barrier until all have started,
/// and returns their results in order. A panic in a task is raised again here.
pub async fn together<T, F>(tasks: Vec<F>) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(tasks.len()));
    let handles: Vec<_> = tasks
        .into_iter()
        .map(|task| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                task.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(value) => out.push(value),
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        }
    }
    out
}

type Task<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// Of 16 concurrent `create`s of one key exactly one wins, and its record is the one stored.
pub async fn concurrent_create_one_wins<S: Store + ?Sized + 'static>(store: Arc<S>) {
    let key = fresh_key();
    let tasks: Vec<_> = (0..16u32)
        .map(|i| {
            let store = Arc::clone(&store);
            async move { store.create(&key, &record(&[("who", enc(i))])).await }
        })
        .collect();
    let results = together(tasks).await;
    let winners: Vec<usize> = (0..results.len()).filter(|i| results[*i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(Error::AlreadyExists))),
        "{results:?}"
    );
    let winner = u32::try_from(winners[0]).expect("small");
    assert_eq!(fields(&*store, &key).await.get("who"), Some(&enc(winner)));
}

/// Sixteen tasks saving different keys of one session in parallel, over many rounds, all keep
/// their last change.
pub async fn disjoint_concurrent_saves_all_kept<S: Store + ?Sized + 'static>(store: Arc<S>) {
    const TASKS: usize = 16;
    const ROUNDS: usize = 25;
    let key = fresh_key();
    store.create(&key, &record(&[])).await.unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = Arc::clone(&store);
            async move {
                for round in 0..ROUNDS {
                    let c = set(&[(&format!("task-{t}"), enc(round))]);
                    store.apply(&key, &c).await.unwrap();
                }
            }
        })
        .collect();
    together(tasks).await;
    let f = fields(&*store, &key).await;
    assert_eq!(f.len(), TASKS);
    for t in 0..TASKS {
        assert_eq!(
            f.get(&format!("task-{t}")),
            Some(&enc(ROUNDS - 1)),
            "task {t}"
        );
    }
}

/// Saves racing a delete never leave the session alive: the delete reports the record it
/// removed, no save that started after the delete returned is accepted, and the key loads as
/// absent afterwards. Four sessions in a row, each raced by eight writers.
pub async fn saves_racing_delete_never_resurrect<S: Store + ?Sized + 'static>(store: Arc<S>) {
    for _ in 0..4 {
        let key = fresh_key();
        store.create(&key, &record(&[])).await.unwrap();
        let deleted = Arc::new(AtomicBool::new(false));
        let mut tasks: Vec<Task<()>> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                let deleted = Arc::clone(&deleted);
                Box::pin(async move {
                    for round in 0..50 {
                        let after_delete = deleted.load(Ordering::SeqCst);
                        match store
                            .apply(&key, &set(&[(&format!("t{t}"), enc(round))]))
                            .await
                        {
                            Ok(()) => assert!(
                                !after_delete,
                                "a save that began after the delete returned was accepted"
                            ),
                            Err(Error::Gone) => return,
                            Err(e) => panic!("unexpected error {e:?}"),
                        }
                    }
                }) as Task<()>
            })
            .collect();
        let deleter = {
            let store = Arc::clone(&store);
            let deleted = Arc::clone(&deleted);
            Box::pin(async move {
                let removed = store.delete(&key).await.unwrap();
                deleted.store(true, Ordering::SeqCst);
                assert_eq!(removed, sessionkit::store::Removed::Record);
            }) as Task<()>
        };
        tasks.insert(4, deleter);
        together(tasks).await;
        assert!(store.load(&key).await.unwrap().is_none());
        let err = store.apply(&key, &set(&[("late", enc(1))])).await;
        assert!(matches!(err, Err(Error::Gone)), "got {err:?}");
    }
}

/// How a racing move ended in [`saves_racing_move_are_kept`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveRace {
    /// Moves that completed.
    pub moved: usize,
    /// Moves that gave up because saves kept changing the record (bounded retries).
    pub contended: usize,
    /// Saves the store accepted during the races.
    pub saves: usize,
}

/// Saves racing a move are never lost: each save the store accepted is in the moved record
/// (or, when the move gave up after its bounded retries, in the record left whole under the
/// old key, with nothing under the new one). Runs the race without and with a grace alias.
///
/// Six writers hammer a 64-field session while the move copies it, so a store that copies and
/// then swaps (MemoryStore, the Redis Cluster move) finds the record changed under it and
/// copies again: these races reach the stores' retry branches. In the first race (no grace)
/// each writer saves 40 times; in the second (with grace) the writers go on saving until the
/// move returned (at most 400 saves each), which drives a copy-and-swap move to its bound.
pub async fn saves_racing_move_are_kept<S: Store + ?Sized + 'static>(store: Arc<S>) {
    race_saves_against_move(store).await;
}

/// [`saves_racing_move_are_kept`], returning what happened, for tests that count retries.
pub async fn race_saves_against_move<S: Store + ?Sized + 'static>(store: Arc<S>) -> MoveRace {
    const WRITERS: usize = 6;
    const ROUNDS: usize = 40;
    const MAX_ROUNDS: usize = 400;
    let mut race = MoveRace::default();
    for with_grace in [false, true] {
        let (from, to) = (fresh_key(), fresh_key());
        let filler: Vec<(String, bytes::Bytes)> = (0..64)
            .map(|i| (format!("filler-{i:02}"), enc(vec![i; 32])))
            .collect();
        let filler: Vec<(&str, bytes::Bytes)> = filler
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        store.create(&from, &record(&filler)).await.unwrap();
        let accepted = Arc::new(parking_lot::Mutex::new(Vec::new()));
        // With grace, the writers keep saving until the move returned.
        let move_done = Arc::new(AtomicBool::new(!with_grace));
        let mut tasks: Vec<Task<Option<sessionkit::Result<()>>>> = (0..WRITERS)
            .map(|t| {
                let store = Arc::clone(&store);
                let accepted = Arc::clone(&accepted);
                let move_done = Arc::clone(&move_done);
                Box::pin(async move {
                    let mut target = from;
                    for round in 0..MAX_ROUNDS {
                        if round >= ROUNDS && move_done.load(Ordering::SeqCst) {
                            break;
                        }
                        let name = format!("t{t}-r{round}");
                        let c = set(&[(&name, enc(round))]);
                        let mut result = store.apply(&target, &c).await;
                        if matches!(result, Err(Error::Gone)) && target == from {
                            // The session moved: saves go to the new key from now on.
                            target = to;
                            result = store.apply(&target, &c).await;
                        }
                        match result {
                            Ok(()) => accepted.lock().push(name),
                            Err(e) => panic!("unexpected error {e:?} saving to a live session"),
                        }
                    }
                    None
                }) as Task<_>
            })
            .collect();
        let mover = {
            let store = Arc::clone(&store);
            let move_done = Arc::clone(&move_done);
            Box::pin(async move {
                let grace = Grace::new(in_ms(60_000), vec![4, 2]);
                let moved = store.rename(&from, &to, with_grace.then_some(&grace)).await;
                move_done.store(true, Ordering::SeqCst);
                Some(moved)
            }) as Task<_>
        };
        tasks.insert(WRITERS / 2, mover);
        let moved = together(tasks).await.into_iter().flatten().next();
        let accepted = accepted.lock().clone();
        race.saves += accepted.len();
        let holder = match moved {
            Some(Ok(())) => {
                race.moved += 1;
                let via_old = store.load(&from).await.unwrap();
                if with_grace {
                    let via_old = via_old.expect("the grace alias resolves");
                    assert_eq!(via_old.moved.map(|m| m.to), Some(to));
                } else {
                    assert!(via_old.is_none(), "a move without grace left the old key");
                }
                to
            }
            Some(Err(Error::Unavailable { .. })) => {
                race.contended += 1;
                assert!(
                    store.load(&to).await.unwrap().is_none(),
                    "a move that gave up left a copy under the new key"
                );
                from
            }
            other => panic!("unexpected move result {other:?}"),
        };
        let f = fields(&*store, &holder).await;
        for name in &accepted {
            assert!(f.contains_key(name), "accepted save {name} was lost");
        }
        assert_eq!(f.len(), 64 + accepted.len());
    }
    race
}

/// A logout (`end_session` of the id the request loaded) racing rotations of that id never
/// leaves the session alive: whichever runs first, the old id, the id it moved to and the id
/// after that are all dead once both are done. Eight sessions in a row.
pub async fn logout_racing_rotation_ends_session<S: Store + ?Sized + 'static>(store: Arc<S>) {
    for _ in 0..8 {
        let keys = [fresh_key(), fresh_key(), fresh_key()];
        store
            .create(&keys[0], &record(&[("user", enc("alice"))]))
            .await
            .unwrap();
        let rotator = {
            let store = Arc::clone(&store);
            Box::pin(async move {
                for hop in 0..2 {
                    let grace = Grace::new(in_ms(60_000), vec![hop]);
                    match store
                        .rename(&keys[hop as usize], &keys[hop as usize + 1], Some(&grace))
                        .await
                    {
                        Ok(()) => {}
                        Err(Error::Gone) => break,
                        Err(e) => panic!("unexpected rotation error {e:?}"),
                    }
                }
            }) as Task<()>
        };
        let logout = {
            let store = Arc::clone(&store);
            Box::pin(async move {
                store.end_session(&keys[0]).await.expect("logout");
            }) as Task<()>
        };
        together(vec![rotator, logout]).await;
        for (i, key) in keys.iter().enumerate() {
            assert!(
                store.load(key).await.unwrap().is_none(),
                "the session is alive under id #{i} after the logout"
            );
        }
        let err = store.apply(&keys[2], &set(&[("late", enc(1))])).await;
        assert!(matches!(err, Err(Error::Gone)), "got {err:?}");
    }
}

/// "Log out everywhere" racing rotations of the owner's sessions, with grace aliases, leaves
/// no live session of the owner.
pub async fn revoke_racing_rotations_leaves_none<S: Store + ?Sized + 'static>(store: Arc<S>) {
    revoke_racing_rotations(store, true).await;
}

/// "Log out everywhere" racing rotations without grace (each old key dies at once, so a
/// listing taken before a move names a key that no longer leads anywhere) leaves no live
/// session of the owner.
pub async fn revoke_racing_graceless_rotations_leaves_none<S: Store + ?Sized + 'static>(
    store: Arc<S>,
) {
    revoke_racing_rotations(store, false).await;
}

async fn revoke_racing_rotations<S: Store + ?Sized + 'static>(store: Arc<S>, with_grace: bool) {
    const SESSIONS: usize = 6;
    const ROTATIONS: usize = 4;
    for round in 0..4 {
        let owner = format!("revoked-{round}-{}", fresh_key().fingerprint());
        let bystander = fresh_key();
        let mut r = record(&[("x", enc(0))]);
        r.owner = Some(format!("{owner}-other"));
        store.create(&bystander, &r).await.unwrap();
        let mut starts = Vec::new();
        for s in 0..SESSIONS {
            let key = fresh_key();
            let mut r = record(&[("s", enc(s))]);
            r.owner = Some(owner.clone());
            store.create(&key, &r).await.unwrap();
            starts.push(key);
        }
        let mut tasks: Vec<Task<Vec<SessionKey>>> = starts
            .iter()
            .map(|start| {
                let store = Arc::clone(&store);
                let start = *start;
                Box::pin(async move {
                    let mut used = vec![start];
                    let mut current = start;
                    for hop in 0..ROTATIONS {
                        let next = fresh_key();
                        used.push(next);
                        let grace =
                            Grace::new(in_ms(60_000), vec![u8::try_from(hop).expect("small")]);
                        match store
                            .rename(&current, &next, with_grace.then_some(&grace))
                            .await
                        {
                            Ok(()) => current = next,
                            Err(Error::Gone) => break,
                            Err(e) => panic!("unexpected rotation error {e:?}"),
                        }
                    }
                    used
                }) as Task<_>
            })
            .collect();
        let revoker = {
            let store = Arc::clone(&store);
            let owner = owner.clone();
            Box::pin(async move {
                store.delete_owned_by(&owner).await.expect("revocation");
                Vec::new()
            }) as Task<_>
        };
        tasks.insert(SESSIONS / 2, revoker);
        let used: Vec<SessionKey> = together(tasks).await.into_iter().flatten().collect();
        for key in &used {
            assert!(
                store.load(key).await.unwrap().is_none(),
                "a session of the revoked owner is alive (grace: {with_grace})"
            );
        }
        assert_eq!(
            store.owned_by(&owner).await.unwrap(),
            Vec::<SessionKey>::new()
        );
        assert!(
            store.load(&bystander).await.unwrap().is_some(),
            "another owner's session was revoked"
        );
    }
}
