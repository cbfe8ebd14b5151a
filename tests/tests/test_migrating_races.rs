//! The races of `MigratingStore`, each played out in one exact order with the test store's
//! pause points (`sessionkit_tests::probe::Probe` around both the new and the old store): the
//! racing calls run in spawned tasks on a four-worker runtime, and the order between them is
//! fixed by parking one at a named point of a store until the other is done — never by
//! sleeping.
//!
//! 1. A move (login) against a load that falls back to `Old`: the load arrives between the
//!    move's two steps (each step in turn, so either order of them is checked), or the load's
//!    copy is parked while the move runs. The old key never comes back.
//! 2. The copy on read against a logout or a move: the load found the session in `Old` and is
//!    parked before (or after) its create in `New` while the session ends. Nothing comes back.
//! 3. `migrate`'s copy (`store::copy_session`, which the CLI runs per session) against a
//!    logout or a login between the scan and the copy. Nothing comes back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::sync::Arc;
use std::time::Duration;

use sessionkit::SessionKey;
use sessionkit::store::{Copied, MemoryStore, MigratingStore, Removed, Store, copy_session};
use sessionkit_tests::conformance::{enc, fresh_key, record};
use sessionkit_tests::probe::{Point, Probe};
use tokio::task::JoinHandle;

/// A guard against a hang, never an ordering device.
const GUARD: Duration = Duration::from_secs(60);

type Migrating = MigratingStore<Probe<MemoryStore>, Probe<MemoryStore>>;

/// A `MigratingStore` over two probed memory stores (`New`, `Old`).
fn stores() -> Arc<Migrating> {
    Arc::new(MigratingStore::new(
        Probe::new(MemoryStore::new()),
        Probe::new(MemoryStore::new()),
    ))
}

/// Waits for a spawned task, failing the test (instead of hanging it) after [`GUARD`].
async fn join<T>(task: JoinHandle<T>) -> T {
    tokio::time::timeout(GUARD, task)
        .await
        .expect("a racing task hung")
        .expect("a racing task panicked")
}

/// A session with `a = 1`, only in `Old` (from before the migration).
async fn in_old(store: &Migrating) -> SessionKey {
    let key = fresh_key();
    store
        .old_store()
        .inner()
        .create(&key, &record(&[("a", enc(1u64))]))
        .await
        .unwrap();
    key
}

/// Neither store holds anything under `key` (read past the probes, so no pause fires), and
/// the `MigratingStore` loads nothing.
async fn assert_gone(store: &Migrating, key: &SessionKey, what: &str) {
    assert!(
        store.new_store().inner().load(key).await.unwrap().is_none(),
        "{what}: New holds nothing under the key"
    );
    assert!(
        store.old_store().inner().load(key).await.unwrap().is_none(),
        "{what}: Old holds nothing under the key"
    );
    assert!(
        store.load(key).await.unwrap().is_none(),
        "{what}: the key loads nothing"
    );
}

/// The session moved to `to` intact, in `New`.
async fn assert_moved_to(store: &Migrating, to: &SessionKey) {
    let loaded = store.load(to).await.unwrap().expect("the new key loads");
    assert!(loaded.moved.is_none());
    assert_eq!(loaded.record.fields["a"], enc(1u64));
    assert!(store.new_store().inner().load(to).await.unwrap().is_some());
}

fn spawn_rename(store: &Arc<Migrating>, from: SessionKey, to: SessionKey) -> JoinHandle<()> {
    let store = Arc::clone(store);
    tokio::spawn(async move { store.rename(&from, &to, None).await.unwrap() })
}

fn spawn_load(store: &Arc<Migrating>, key: SessionKey) -> JoinHandle<bool> {
    let store = Arc::clone(store);
    tokio::spawn(async move { store.load(&key).await.unwrap().is_some() })
}

fn spawn_delete(store: &Arc<Migrating>, key: SessionKey) -> JoinHandle<Removed> {
    let store = Arc::clone(store);
    tokio::spawn(async move { store.delete(&key).await.unwrap() })
}

// ---- 1. a move against a load through the fallback ----

/// Which step of the move the load arrives after.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// `Old`'s delete of the old key returned.
    OldDeleted,
    /// `New`'s move returned.
    NewMoved,
}

/// A session only in `Old` moves (`rename`, no grace: a login); a load of the old key runs
/// from start to finish while the move is parked right after one of its two steps, `Old`'s
/// delete or `New`'s move. Each step is tried, so the test does not depend on which comes
/// first: after the first one, the load sees a half-done move. Proves the old key does not
/// come back: afterwards neither store holds it, and the session is under the new key.
///
/// (With the steps in the pre-fix order — `New` first — a load while the move is parked
/// after `New`'s move misses `New`, finds the old key still in `Old` and copies it back into
/// `New`.)
async fn load_between_the_steps_of_a_move(step: Step) {
    let store = stores();
    let (from, to) = (in_old(&store).await, fresh_key());
    let mut pause = match step {
        Step::OldDeleted => store.old_store().arm_for(Point::AfterDelete, from),
        Step::NewMoved => store.new_store().arm_for(Point::AfterRename, from),
    };
    let mover = spawn_rename(&store, from, to);
    pause.reached().await;
    // The move is half done: the load may find the session (through `New`, where the move
    // copied it first) or not, but it must not put the old key back anywhere.
    join(spawn_load(&store, from)).await;
    pause.release();
    join(mover).await;

    assert_gone(&store, &from, &format!("a load after {step:?}")).await;
    assert_moved_to(&store, &to).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_load_after_olds_delete_in_a_move_does_not_revive_the_old_key() {
    load_between_the_steps_of_a_move(Step::OldDeleted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_load_after_news_move_in_a_move_does_not_revive_the_old_key() {
    load_between_the_steps_of_a_move(Step::NewMoved).await;
}

/// A load of a session only in `Old` reads it there and is parked before its copy; a move
/// of the session runs and is parked after `New`'s move (with the steps in the fixed order
/// the move is then done; in the pre-fix order `Old` still holds the old key); the load goes
/// on and copies into `New`; then the move finishes. Proves the copy does not survive: the
/// copier's check of `Old` finds the old key gone (or, in the pre-fix order, still there: the
/// copy stays and the old id works again).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_racing_a_half_done_move_does_not_revive_the_old_key() {
    let store = stores();
    let (from, to) = (in_old(&store).await, fresh_key());
    let mut read = store.old_store().arm_for(Point::AfterLoad, from);
    let loader = spawn_load(&store, from);
    read.reached().await;

    let mut moved = store.new_store().arm_for(Point::AfterRename, from);
    let mover = spawn_rename(&store, from, to);
    moved.reached().await;
    read.release();
    let found = join(loader).await;
    assert!(!found, "the copy is dropped: the session moved meanwhile");
    moved.release();
    join(mover).await;

    assert_gone(&store, &from, "a copy racing a move").await;
    assert_moved_to(&store, &to).await;
}

// ---- 2. the copy on read against a logout or a move ----

/// Where the load's copy is parked while the session ends.
#[derive(Debug, Clone, Copy)]
enum Parked {
    /// After reading `Old`, before creating in `New`.
    BeforeCreate,
    /// After creating in `New`, before checking `Old` again.
    AfterCreate,
}

fn park(store: &Migrating, key: SessionKey, at: Parked) -> sessionkit_tests::probe::Pause {
    match at {
        Parked::BeforeCreate => store.old_store().arm_for(Point::AfterLoad, key),
        Parked::AfterCreate => store.new_store().arm_for(Point::AfterCreate, key),
    }
}

/// A load of a session only in `Old` finds it there and is parked before (or after) its
/// create in `New`; a logout runs from start to finish; the load goes on. Proves nothing comes
/// back: the load reports no session, and neither store holds the key.
///
/// (Without the copier's check of `Old` after its create, the load parked before the create
/// copies the logged-out session into `New` and serves it.)
async fn a_copy_racing_a_logout(at: Parked) {
    let store = stores();
    let key = in_old(&store).await;
    let mut pause = park(&store, key, at);
    let loader = spawn_load(&store, key);
    pause.reached().await;
    let removed = join(spawn_delete(&store, key)).await;
    assert_eq!(removed, Removed::Record, "the logout ended the session");
    pause.release();
    let found = join(loader).await;
    assert!(!found, "the load does not serve a session ended meanwhile");
    assert_gone(
        &store,
        &key,
        &format!("a copy parked {at:?} racing a logout"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_before_the_copys_create_is_not_undone() {
    a_copy_racing_a_logout(Parked::BeforeCreate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_after_the_copys_create_is_not_undone() {
    a_copy_racing_a_logout(Parked::AfterCreate).await;
}

/// As [`a_copy_racing_a_logout`], but the logout is itself parked between its two steps
/// (after `New`'s delete, which comes second) while the load finishes its copy. Proves the
/// order of the logout's steps: with `Old` deleted first, the copier's check finds the session
/// gone and drops its copy; were `New` deleted first, `Old` would still hold the session at
/// the check, the copy would stay, and the logged-out id would work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_racing_a_half_done_logout_does_not_revive_the_session() {
    let store = stores();
    let key = in_old(&store).await;
    let mut read = store.old_store().arm_for(Point::AfterLoad, key);
    let loader = spawn_load(&store, key);
    read.reached().await;
    let mut logout_step = store.new_store().arm_for(Point::AfterDelete, key);
    let logout = spawn_delete(&store, key);
    logout_step.reached().await;
    read.release();
    let found = join(loader).await;
    assert!(!found, "the load does not serve a session being ended");
    logout_step.release();
    assert_eq!(join(logout).await, Removed::Record);
    assert_gone(&store, &key, "a copy racing a half-done logout").await;
}

/// A load of a session only in `Old` finds it and is parked before (or after) its create in
/// `New`; the session moves (a login, no grace) from start to finish; the load goes on.
/// Proves the pre-login id does not come back and the session lives on under the new id.
async fn a_copy_racing_a_move(at: Parked) {
    let store = stores();
    let (from, to) = (in_old(&store).await, fresh_key());
    let mut pause = park(&store, from, at);
    let loader = spawn_load(&store, from);
    pause.reached().await;
    join(spawn_rename(&store, from, to)).await;
    pause.release();
    join(loader).await;
    assert_gone(
        &store,
        &from,
        &format!("a copy parked {at:?} racing a move"),
    )
    .await;
    assert_moved_to(&store, &to).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_move_before_the_copys_create_is_not_undone() {
    a_copy_racing_a_move(Parked::BeforeCreate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_move_after_the_copys_create_is_not_undone() {
    a_copy_racing_a_move(Parked::AfterCreate).await;
}

// ---- 3. migrate's copy against a logout or a login ----

/// How the site ends the session between `migrate`'s scan and its copy.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// A logout: `delete`.
    Logout,
    /// A login: `rename` to a new id, without grace.
    Login,
}

/// `migrate`, as `sessionkit migrate` runs it: the session is scanned in `Old` (its record
/// read), `New` is checked for it, and it is copied with [`copy_session`]. The migration is
/// parked at its check of `New` (after the scan) while the site, running on a
/// `MigratingStore` over the same two stores, ends the session; then the copy runs. Proves
/// the copy reports [`Copied::Ended`] and leaves nothing under the scanned key: the logout (or
/// login) is not undone.
///
/// (Without `copy_session`'s check of the source after its create, the copy lands in `New`
/// and the logged-out or pre-login id works again.)
async fn migrate_copy_racing(ending: Ending) {
    let store = stores();
    let (key, to) = (in_old(&store).await, fresh_key());
    let scanned = store
        .old_store()
        .inner()
        .load(&key)
        .await
        .unwrap()
        .expect("the scan finds the session")
        .record;

    let mut checked = store.new_store().arm_for(Point::AfterLoad, key);
    let migrate = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let (new, old) = (store.new_store(), store.old_store());
            if new.load(&key).await.unwrap().is_some() {
                return Copied::AlreadyThere;
            }
            copy_session(old, new, &key, &scanned).await.unwrap()
        })
    };
    checked.reached().await;
    match ending {
        Ending::Logout => assert_eq!(store.delete(&key).await.unwrap(), Removed::Record),
        Ending::Login => store.rename(&key, &to, None).await.unwrap(),
    }
    checked.release();
    assert_eq!(join(migrate).await, Copied::Ended, "{ending:?}");

    assert_gone(&store, &key, &format!("migrate racing a {ending:?}")).await;
    if let Ending::Login = ending {
        assert_moved_to(&store, &to).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_racing_a_logout_does_not_undo_it() {
    migrate_copy_racing(Ending::Logout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_racing_a_login_does_not_revive_the_old_id() {
    migrate_copy_racing(Ending::Login).await;
}
