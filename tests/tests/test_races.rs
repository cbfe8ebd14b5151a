//! The races of issue 12, each played out in one exact order with the test store's pause
//! points (`sessionkit_tests::probe::Probe`): the racing requests run in spawned tasks on a four-worker
//! runtime, and the order between them is fixed by parking one at a named point of the store
//! until the other is done — never by sleeping.
//!
//! Each race runs on every store setup it concerns (a module per race, a test per setup):
//! the manager-level races on memory, bounded memory, file, Redis, a Redis Cluster, SQLite,
//! PostgreSQL and the tiered pairs; the cache races on the tiered pairs; the move-retry bound
//! on the two forms of `MemoryStore`. Redis and PostgreSQL tests start private servers (never
//! the shared 6379 or 5432).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "test code: a failed expectation fails the test; figures are printed to the test log"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use sessionkit::store::{ChangeSet, Grace, MAX_MOVE_ATTEMPTS, Record};
use sessionkit::web::SessionLayer;
use sessionkit::{
    Error, MemoryStore, Session, SessionConfig, SessionId, SessionKey, SessionManager, Store,
    TieredStore, manager::ManualClock,
};
use sessionkit_tests::lifecycle::Client;
use sessionkit_tests::probe::{Op, Point, Probe};
use sessionkit_tests::setups;
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

/// A guard against a hang, never an ordering device.
const GUARD: Duration = Duration::from_secs(60);

/// Past the default `rotate_after` (15 min): the next save rotates the id.
const DUE_FOR_ROTATION: Duration = Duration::from_secs(16 * 60);

// ---- store setups: `sessionkit_tests::setups`, shared with the conformance and lifecycle suites ----

/// One store.
macro_rules! single {
    ($race:ident, $name:ident, $make:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let (store, _guard) = $make.await;
            super::$race(store).await;
        }
    };
}

/// A `TieredStore` of two setups.
macro_rules! tiered {
    ($race:ident, $name:ident, $cache:expr, $durable:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let (cache, _cache_guard) = $cache.await;
            let (durable, _durable_guard) = $durable.await;
            super::$race(TieredStore::new(cache, durable)).await;
        }
    };
}

/// The two tiers handed over apart, for races that wrap one of them.
macro_rules! pair {
    ($race:ident, $name:ident, $cache:expr, $durable:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let (cache, _cache_guard) = $cache.await;
            let (durable, _durable_guard) = $durable.await;
            super::$race(cache, durable).await;
        }
    };
}

/// A module named after the race, with one test per store setup.
macro_rules! on_every_store {
    ($race:ident) => {
        mod $race {
            use super::*;
            single!($race, memory, setups::memory::make());
            single!($race, bounded_memory, setups::memory_bounded::make());
            single!($race, file, setups::file::make());
            single!($race, redis, setups::redis::make());
            single!($race, redis_cluster, setups::redis_cluster::make());
            single!($race, sqlite, setups::sqlite::make());
            single!($race, postgres, setups::postgres::make());
            tiered!(
                $race,
                tiered_memory_memory,
                setups::memory_bounded::make(),
                setups::memory::make()
            );
            tiered!(
                $race,
                tiered_memory_file,
                setups::memory_bounded::make(),
                setups::file::make()
            );
            tiered!(
                $race,
                tiered_memory_redis,
                setups::memory_bounded::make(),
                setups::redis::make()
            );
            tiered!(
                $race,
                tiered_redis_file,
                setups::redis::make(),
                setups::file::make()
            );
            tiered!(
                $race,
                tiered_memory_sqlite,
                setups::memory_bounded::make(),
                setups::sqlite::make()
            );
            tiered!(
                $race,
                tiered_memory_postgres,
                setups::memory_bounded::make(),
                setups::postgres::make()
            );
        }
    };
}

/// A module named after the race, with one test per pair of tiers.
macro_rules! on_every_tier_pair {
    ($race:ident) => {
        mod $race {
            use super::*;
            pair!(
                $race,
                memory_over_memory,
                setups::memory_bounded::make(),
                setups::memory::make()
            );
            pair!(
                $race,
                memory_over_file,
                setups::memory_bounded::make(),
                setups::file::make()
            );
            pair!(
                $race,
                memory_over_redis,
                setups::memory_bounded::make(),
                setups::redis::make()
            );
            pair!(
                $race,
                memory_over_redis_cluster,
                setups::memory_bounded::make(),
                setups::redis_cluster::make()
            );
            pair!(
                $race,
                redis_over_file,
                setups::redis::make(),
                setups::file::make()
            );
            pair!(
                $race,
                memory_over_sqlite,
                setups::memory_bounded::make(),
                setups::sqlite::make()
            );
            pair!(
                $race,
                memory_over_postgres,
                setups::memory_bounded::make(),
                setups::postgres::make()
            );
        }
    };
}

// ---- helpers ----

/// Waits for a spawned task, failing the test (instead of hanging it) after [`GUARD`].
async fn join<T>(task: JoinHandle<T>) -> T {
    tokio::time::timeout(GUARD, task)
        .await
        .expect("a racing task hung")
        .expect("a racing task panicked")
}

fn manager<S: Store + 'static>(
    store: S,
    clock: &ManualClock,
    configure: impl FnOnce(SessionConfig) -> SessionConfig,
) -> SessionManager<S> {
    let config = SessionConfig::default()
        .with_cookie_name("id")
        .with_clock(clock.clone())
        .with_cleanup_probability(0.0);
    SessionManager::new(store, configure(config)).expect("a valid configuration")
}

/// A client holding a saved session with `n = 1` (and `owner`, if given).
async fn signed_in<S: Store + 'static>(m: &SessionManager<S>, owner: Option<&str>) -> Client {
    let mut client = Client::new();
    let active = m.load(&client.request()).await.unwrap();
    active.session().insert("n", 1u32).unwrap();
    if let Some(owner) = owner {
        active.session().set_owner(Some(owner.to_owned()));
    }
    client.absorb(&m.finish(active).await.unwrap());
    assert!(client.cookie.is_some());
    client
}

/// The session a request carrying `client`'s cookie gets, or `None` when it gets a fresh one.
/// (Loads only: nothing is saved.)
async fn session_of<S: Store + 'static>(m: &SessionManager<S>, client: &Client) -> Option<Session> {
    let active = m.load(&client.request()).await.unwrap();
    (!active.is_new()).then(|| active.session().clone())
}

/// One request in a spawned task: load with `client`'s cookie, run `handler`, finish.
fn request<S: Store + 'static>(
    m: &SessionManager<S>,
    client: &Client,
    handler: impl FnOnce(&Session) + Send + 'static,
) -> JoinHandle<sessionkit::Result<sessionkit::Outcome>> {
    let m = m.clone();
    let req = client.request();
    tokio::spawn(async move {
        let active = m.load(&req).await?;
        handler(active.session());
        m.finish(active).await
    })
}

fn is_removal(outcome: &sessionkit::Outcome) -> bool {
    outcome
        .set_cookie
        .as_deref()
        .is_some_and(|c| c.starts_with("id=;"))
}

fn fresh_key() -> SessionKey {
    SessionId::generate().unwrap().key()
}

fn value(n: u32) -> Bytes {
    Bytes::from(n.to_be_bytes().to_vec())
}

fn record(n: u32) -> Record {
    let mut record = Record::new(SystemTime::now() + Duration::from_secs(3600));
    record.fields.insert("n".into(), value(n));
    record
}

fn set(key: &str, n: u32) -> ChangeSet {
    let mut changes = ChangeSet::default();
    changes.set.insert(key.into(), value(n));
    changes
}

// ---- 1. stale cache fills (TieredStore) ----

/// Race 1, on a `TieredStore` only (the fill is its own): a load misses the cache and reads
/// the durable record; a logout runs from start to finish; then the load fills the cache.
/// Proves the logged-out session is not served again from the cache: the id gives a fresh
/// session, the store has nothing under the key. (On the pre-fix code the fill put the
/// logged-out record back into the cache.)
async fn stale_fill_after_logout<C: Store + 'static, D: Store + 'static>(cache: C, durable: D) {
    let clock = ManualClock::new();
    let m = manager(TieredStore::new(cache, Probe::new(durable)), &clock, |c| c);
    let client = signed_in(&m, None).await;
    let key = client.key();
    // The cache lost its copy (evicted), so the next load reads the durable tier.
    m.store().cache().delete(&key).await.unwrap();

    let mut pause = m.store().durable().arm_for(Point::AfterLoad, key);
    let reader = {
        let m = m.clone();
        let req = client.request();
        tokio::spawn(async move { m.load(&req).await.map(|a| a.is_new()) })
    };
    pause.reached().await;
    let logout = join(request(&m, &client, |s| s.destroy())).await.unwrap();
    assert!(is_removal(&logout), "the logout clears the cookie");
    pause.release();
    let reader_was_new = join(reader).await.unwrap();
    assert!(
        !reader_was_new,
        "the reader read the session before the logout"
    );

    assert!(
        m.store().load(&key).await.unwrap().is_none(),
        "the logged-out key loads nothing"
    );
    assert!(
        session_of(&m, &client).await.is_none(),
        "the logged-out id gives a fresh session"
    );
}
on_every_tier_pair!(stale_fill_after_logout);

/// Race 1, rename variant, on a `TieredStore` only: a load of `old` misses the cache and
/// reads the durable record; the session moves to `new`; then the load fills the cache.
/// Proves `old` then behaves as the move left it: dead at once without a grace window, and
/// only an alias (`moved` pointing at `new`, so it expires with its grace) with one — never
/// the plain record, which would make the rotated-away id work until the cache copy expires.
async fn stale_fill_after_rename<C: Store + 'static, D: Store + 'static>(cache: C, durable: D) {
    let store = Arc::new(TieredStore::new(cache, Probe::new(durable)));
    for with_grace in [false, true] {
        let (old, new) = (fresh_key(), fresh_key());
        store.create(&old, &record(1)).await.unwrap();
        store.cache().delete(&old).await.unwrap();

        let mut pause = store.durable().arm_for(Point::AfterLoad, old);
        let reader = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.load(&old).await })
        };
        pause.reached().await;
        let grace = with_grace.then(|| {
            Grace::new(
                SystemTime::now() + Duration::from_secs(600),
                b"sealed elsewhere".to_vec(),
            )
        });
        let mover = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.rename(&old, &new, grace.as_ref()).await })
        };
        join(mover).await.unwrap();
        pause.release();
        let read = join(reader).await.unwrap();
        assert!(read.is_some(), "the reader read the record before the move");

        let after = store.load(&old).await.unwrap();
        if with_grace {
            let moved = after.expect("within its grace the old key resolves").moved;
            assert_eq!(
                moved.map(|m| m.to),
                Some(new),
                "the old key is an alias of the new one, not a copy of the record"
            );
        } else {
            assert!(after.is_none(), "without grace the old key is dead at once");
        }
        assert!(store.load(&new).await.unwrap().is_some());
    }
}
on_every_tier_pair!(stale_fill_after_rename);

/// Race 1, write variant, on a `TieredStore` only: a load misses the cache and reads `n = 1`;
/// a save of `n = 2` completes; then the load fills the cache. Proves the next read sees the
/// save (`n = 2`), not the older copy the fill carried.
async fn stale_fill_after_write<C: Store + 'static, D: Store + 'static>(cache: C, durable: D) {
    let store = Arc::new(TieredStore::new(cache, Probe::new(durable)));
    let key = fresh_key();
    store.create(&key, &record(1)).await.unwrap();
    store.cache().delete(&key).await.unwrap();

    let mut pause = store.durable().arm_for(Point::AfterLoad, key);
    let reader = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.load(&key).await })
    };
    pause.reached().await;
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.apply(&key, &set("n", 2)).await })
    };
    join(writer).await.unwrap();
    pause.release();
    let read = join(reader)
        .await
        .unwrap()
        .expect("the reader found the record");
    assert_eq!(read.record.fields["n"], value(1), "read before the save");

    for _ in 0..2 {
        let now = store.load(&key).await.unwrap().expect("the session lives");
        assert_eq!(now.record.fields["n"], value(2), "the save is not hidden");
    }
}
on_every_tier_pair!(stale_fill_after_write);

// ---- 2. a failed login ----

/// Race 2, on every store: a login (regenerate) whose apply writes and then reports an error
/// (a reply lost after the write). Proves it fails closed: the request fails, the pre-login
/// id — which an attacker may have planted — loads nothing, and the login's data is nowhere
/// (its owner has no session). (The pre-fix code renamed the logged-in record back onto the
/// pre-login id.)
async fn failed_login_lands_nowhere<S: Store + 'static>(store: S) {
    let clock = ManualClock::new();
    let m = manager(Probe::new(store), &clock, |c| c);
    let planted = signed_in(&m, None).await;

    m.store().fail_after_write(Op::Apply);
    let login = request(&m, &planted, |s| {
        s.insert("user_id", 42u64).unwrap();
        s.set_owner(Some("victim".into()));
        s.regenerate();
    });
    let result = join(login).await;
    assert!(result.is_err(), "the login reports its failure: {result:?}");
    assert_eq!(
        m.store().replies_lost.load(Ordering::SeqCst),
        1,
        "the apply wrote, then lost its reply"
    );

    assert!(
        m.store().load(&planted.key()).await.unwrap().is_none(),
        "the pre-login id holds nothing"
    );
    assert!(session_of(&m, &planted).await.is_none());
    assert!(
        m.store().owned_by("victim").await.unwrap().is_empty(),
        "the login is kept nowhere"
    );
}
on_every_store!(failed_login_lands_nowhere);

// ---- 3. logout racing a rotation ----

/// Race 3, on every store: requests A and L load id X; A's save rotates X → Y and is parked
/// right after the move (X is now a grace alias); L logs out with X. Proves the logout ends
/// the session under Y too: neither X nor Y loads anything afterwards. (The pre-fix code
/// deleted the alias X only.)
async fn logout_racing_a_rotation<S: Store + 'static>(store: S) {
    let clock = ManualClock::new();
    let m = manager(Probe::new(store), &clock, |c| c);
    let client = signed_in(&m, None).await;
    clock.advance(DUE_FOR_ROTATION);

    let a = m.load(&client.request()).await.unwrap();
    let l = m.load(&client.request()).await.unwrap();
    assert!(!a.is_new() && !l.is_new());

    let mut pause = m.store().arm_for(Point::AfterRename, client.key());
    let rotating = {
        let m = m.clone();
        tokio::spawn(async move { m.finish(a).await })
    };
    pause.reached().await;
    l.session().destroy();
    let logout = {
        let m = m.clone();
        tokio::spawn(async move { m.finish(l).await })
    };
    let logout = join(logout).await.unwrap();
    assert!(is_removal(&logout));
    pause.release();
    let rotated = join(rotating).await.unwrap();
    let mut moved = client.clone();
    moved.absorb(&rotated);
    assert_ne!(moved.cookie, client.cookie, "A rotated the id");

    assert!(
        m.store().load(&moved.key()).await.unwrap().is_none(),
        "the logout ended the session under the id it moved to"
    );
    assert!(m.store().load(&client.key()).await.unwrap().is_none());
    assert!(session_of(&m, &moved).await.is_none());
    assert!(session_of(&m, &client).await.is_none());
}
on_every_store!(logout_racing_a_rotation);

/// Race 3 without a grace window (`rotation_grace = 0`), on every store: as above, but the
/// rotation leaves no alias behind X. Proves the logout still ends the session under Y —
/// otherwise A's response hands the browser Y, a session the user logged out of.
async fn logout_racing_a_graceless_rotation<S: Store + 'static>(store: S) {
    let clock = ManualClock::new();
    let m = manager(Probe::new(store), &clock, |c| {
        c.with_rotation_grace(Duration::ZERO)
    });
    let client = signed_in(&m, None).await;
    clock.advance(DUE_FOR_ROTATION);

    let a = m.load(&client.request()).await.unwrap();
    let l = m.load(&client.request()).await.unwrap();
    let mut pause = m.store().arm_for(Point::AfterRename, client.key());
    let rotating = {
        let m = m.clone();
        tokio::spawn(async move { m.finish(a).await })
    };
    pause.reached().await;
    l.session().destroy();
    let logout = {
        let m = m.clone();
        tokio::spawn(async move { m.finish(l).await })
    };
    let logout = join(logout).await.unwrap();
    pause.release();
    let rotated = join(rotating).await.unwrap();
    let mut moved = client.clone();
    moved.absorb(&rotated);
    assert_ne!(moved.cookie, client.cookie, "A rotated the id");
    // The browser may receive the two responses in either order; the worse one is A's last.
    let mut browser = client.clone();
    browser.absorb(&logout);
    browser.absorb(&rotated);
    assert!(
        session_of(&m, &browser).await.is_none(),
        "the logged-out session is not reachable with the cookie the browser ends up with"
    );
}
on_every_store!(logout_racing_a_graceless_rotation);

// ---- 4. log out everywhere racing a rotation ----

/// Race 4, on every store: "log out everywhere" lists the owner's sessions and is parked
/// right after the listing; one of them then moves — by a rotation (grace alias) and, in a
/// second round, by a login (regenerate, no alias). Proves the revocation is complete: the
/// owner has no live session left, and neither the moved id nor the old one loads.
/// (The pre-fix code deleted the listed keys only.)
async fn revocation_racing_a_rotation<S: Store + 'static>(store: S) {
    let clock = ManualClock::new();
    let m = manager(Probe::new(store), &clock, |c| c);
    for login in [true, false] {
        let owner = if login {
            "alice-login"
        } else {
            "alice-rotation"
        };
        let client = signed_in(&m, Some(owner)).await;
        let laptop = signed_in(&m, Some(owner)).await;
        if !login {
            clock.advance(DUE_FOR_ROTATION);
        }
        let mut pause = m.store().arm(Point::AfterOwnedBy);
        let revoke = {
            let m = m.clone();
            let owner = owner.to_owned();
            tokio::spawn(async move { m.revoke_owner(&owner).await })
        };
        pause.reached().await;
        let outcome = join(request(&m, &client, move |s| {
            if login {
                s.regenerate();
            }
        }))
        .await
        .unwrap();
        let mut moved = client.clone();
        moved.absorb(&outcome);
        assert_ne!(
            moved.cookie, client.cookie,
            "the session moved (login {login})"
        );
        pause.release();
        join(revoke).await.unwrap();

        assert!(
            m.store().owned_by(owner).await.unwrap().is_empty(),
            "no session of the owner survives (login {login})"
        );
        for c in [&moved, &client, &laptop] {
            assert!(session_of(&m, c).await.is_none(), "login {login}");
        }
    }
}
on_every_store!(revocation_racing_a_rotation);

// ---- 5. a login losing to a rotation ----

/// Race 5, on every store: a plain request and a login load id X; the plain request rotates
/// X → Y (grace alias) first; then the login finishes. Proves the login follows the alias
/// and succeeds: it answers with a fresh id Z holding the login and the session's data, and
/// both X and Y are dead. (The pre-fix code answered "gone" with a removal cookie.)
async fn login_losing_to_a_rotation<S: Store + 'static>(store: S) {
    let clock = ManualClock::new();
    let m = manager(Probe::new(store), &clock, |c| c);
    let client = signed_in(&m, None).await;
    clock.advance(DUE_FOR_ROTATION);

    let plain = m.load(&client.request()).await.unwrap();
    let login = m.load(&client.request()).await.unwrap();
    let rotated = {
        let m = m.clone();
        tokio::spawn(async move { m.finish(plain).await })
    };
    let rotated = join(rotated).await.unwrap();
    let mut y = client.clone();
    y.absorb(&rotated);
    assert_ne!(y.cookie, client.cookie, "the plain request rotated the id");

    login.session().insert("user_id", 42u64).unwrap();
    login.session().regenerate();
    let logged_in = {
        let m = m.clone();
        tokio::spawn(async move { m.finish(login).await })
    };
    let logged_in = join(logged_in).await.unwrap();
    assert!(!logged_in.gone, "the login did not lose");
    assert!(!is_removal(&logged_in));
    let mut z = client.clone();
    z.absorb(&logged_in);
    assert!(z.cookie.is_some() && z.cookie != y.cookie && z.cookie != client.cookie);

    let session = session_of(&m, &z).await.expect("the login's id is live");
    assert_eq!(session.get::<u64>("user_id").unwrap(), Some(42));
    assert_eq!(session.get::<u32>("n").unwrap(), Some(1));
    assert!(session_of(&m, &y).await.is_none(), "the rotated id is dead");
    assert!(
        session_of(&m, &client).await.is_none(),
        "the pre-login id is dead"
    );
}
on_every_store!(login_losing_to_a_rotation);

// ---- 6. a losing request does not log the winner out ----

/// Race 6, on every store: a login moves X → Z and is parked between its move and its apply;
/// meanwhile a save and a second login, both loaded from X, finish and lose (X is gone).
/// Proves the losers' responses carry no `Set-Cookie` at all: a browser receiving them after
/// the winner's keeps the fresh login cookie. A later request still carrying X (a well-formed
/// id that leads nowhere now) gets no removal cookie either. (The pre-fix code sent removal
/// cookies that wiped the login.)
async fn losing_requests_do_not_log_the_winner_out<S: Store + 'static>(store: S) {
    let clock = ManualClock::new();
    let m = manager(Probe::new(store), &clock, |c| c.with_rotate_after(None));
    let client = signed_in(&m, None).await;
    let winner = m.load(&client.request()).await.unwrap();
    let saver = m.load(&client.request()).await.unwrap();
    let second_login = m.load(&client.request()).await.unwrap();

    let mut pause = m.store().arm_for(Point::AfterRename, client.key());
    winner.session().insert("user_id", 42u64).unwrap();
    winner.session().regenerate();
    let login = {
        let m = m.clone();
        tokio::spawn(async move { m.finish(winner).await })
    };
    pause.reached().await;

    saver.session().insert("cart", 3u32).unwrap();
    second_login.session().insert("user_id", 7u64).unwrap();
    second_login.session().regenerate();
    let losers = [saver, second_login].map(|active| {
        let m = m.clone();
        tokio::spawn(async move { m.finish(active).await })
    });
    let mut lost = Vec::new();
    for loser in losers {
        let outcome = join(loser).await.unwrap();
        assert!(outcome.gone, "the request lost the race");
        assert_eq!(outcome.set_cookie, None, "a loser sends no cookie");
        lost.push(outcome);
    }
    pause.release();
    let won = join(login).await.unwrap();

    // The worst order for the browser: the winner's response first, the losers' after.
    let mut browser = client.clone();
    browser.absorb(&won);
    assert_ne!(browser.cookie, client.cookie);
    for outcome in &lost {
        browser.absorb(outcome);
    }
    let late = join(request(&m, &client, |_| {})).await.unwrap();
    assert_eq!(
        late.set_cookie, None,
        "a stale well-formed id is not cleared"
    );
    browser.absorb(&late);

    let session = session_of(&m, &browser)
        .await
        .expect("the browser is still logged in");
    assert_eq!(session.get::<u64>("user_id").unwrap(), Some(42));
}
on_every_store!(losing_requests_do_not_log_the_winner_out);

// ---- 7. errors after a committed write ----

/// Race 7, on a strict-invalidation `TieredStore` only (the one store that reports "written,
/// cache not told"): the cache refuses every delete while a save rotates the id, and while a
/// login regenerates it. Proves both moves are treated as done: the client is given the id
/// the session moved to, that id loads the session (with the login's data), and the old ids
/// are dead. (The pre-fix code recorded the rotation as deferred and failed the login,
/// although the durable tier had moved the session.)
async fn committed_moves_are_treated_as_done<C: Store + 'static, D: Store + 'static>(
    cache: C,
    durable: D,
) {
    let clock = ManualClock::new();
    let store = TieredStore::new(Probe::new(cache), durable).with_strict_invalidation(true);
    let m = manager(store, &clock, |c| c);
    let client = signed_in(&m, None).await;
    let cache_fails = |on: bool| m.store().cache().fail.delete.store(on, Ordering::SeqCst);

    clock.advance(DUE_FOR_ROTATION);
    cache_fails(true);
    let rotated = join(request(&m, &client, |_| {})).await.unwrap();
    cache_fails(false);
    let mut moved = client.clone();
    moved.absorb(&rotated);
    assert_ne!(moved.cookie, client.cookie, "the client gets the new id");
    let session = session_of(&m, &moved).await.expect("the new id is live");
    assert_eq!(session.get::<u32>("n").unwrap(), Some(1));

    cache_fails(true);
    let logged_in = join(request(&m, &moved, |s| {
        s.insert("user_id", 42u64).unwrap();
        s.regenerate();
    }))
    .await
    .expect("a committed regeneration is a successful one");
    cache_fails(false);
    let mut login = moved.clone();
    login.absorb(&logged_in);
    assert_ne!(login.cookie, moved.cookie, "the client gets the login's id");
    let session = session_of(&m, &login)
        .await
        .expect("the login's id is live");
    assert_eq!(session.get::<u64>("user_id").unwrap(), Some(42));
    assert!(
        session_of(&m, &moved).await.is_none(),
        "the pre-login id is dead"
    );
    assert!(
        m.store().cache().failures.load(Ordering::SeqCst) > 0,
        "the cache did refuse"
    );
}
on_every_tier_pair!(committed_moves_are_treated_as_done);

// ---- 8. a 5xx after a logout or a login ----

async fn count(session: Session) -> String {
    let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
    session.insert("n", n).unwrap();
    let user: Option<u64> = session.get("user_id").ok().flatten();
    format!("{n} {user:?}")
}

async fn logout_then_fail(session: Session) -> StatusCode {
    session.destroy();
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn login_then_fail(session: Session) -> StatusCode {
    session.insert("user_id", 42u64).unwrap();
    session.regenerate();
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn serve(layer: SessionLayer) -> String {
    let app = Router::new()
        .route("/count", get(count))
        .route("/logout-fails", get(logout_then_fail))
        .route("/login-fails", get(login_then_fail))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    format!("http://{addr}")
}

async fn fetch(base: &str, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    tokio::time::timeout(GUARD, req.send())
        .await
        .expect("the server answers")
        .unwrap()
}

fn set_cookie(res: &reqwest::Response) -> Option<String> {
    let sc = res.headers().get("set-cookie")?.to_str().unwrap();
    Some(sc.split(';').next().unwrap().to_owned())
}

async fn text(res: reqwest::Response) -> String {
    res.text().await.unwrap()
}

/// Race 8, on every store, through the axum layer: a handler logs out and then answers 500;
/// another logs in (regenerate) and then answers 500. Proves the logout still ends the
/// session (its id starts afresh, the response clears the cookie) and the login's id change
/// still happens (the pre-login id is dead, the response carries the new id, which holds the
/// session without the failed request's changes). (The pre-fix layer skipped `finish` on a
/// 5xx, leaving both sessions as they were.)
async fn server_errors_still_end_and_regenerate<S: Store + 'static>(store: S) {
    let m = SessionManager::new(
        store,
        SessionConfig::default()
            .with_secure(false)
            .with_cleanup_probability(0.0),
    )
    .unwrap();
    let base = serve(SessionLayer::new(m)).await;

    let first = fetch(&base, "/count", None).await;
    let cookie = set_cookie(&first).expect("a session cookie");
    assert_eq!(
        text(fetch(&base, "/count", Some(&cookie)).await).await,
        "2 None"
    );
    let failed = fetch(&base, "/logout-fails", Some(&cookie)).await;
    assert_eq!(failed.status(), 500);
    assert_eq!(
        set_cookie(&failed).as_deref(),
        Some("id="),
        "the failed logout still clears the cookie"
    );
    assert_eq!(
        text(fetch(&base, "/count", Some(&cookie)).await).await,
        "1 None",
        "the logged-out id starts afresh"
    );

    let first = fetch(&base, "/count", None).await;
    let pre_login = set_cookie(&first).expect("a session cookie");
    let failed = fetch(&base, "/login-fails", Some(&pre_login)).await;
    assert_eq!(failed.status(), 500);
    let moved = set_cookie(&failed).expect("the failed login still sends the new id");
    assert_ne!(moved, pre_login);
    assert_eq!(
        text(fetch(&base, "/count", Some(&pre_login)).await).await,
        "1 None",
        "the pre-login id is dead"
    );
    assert_eq!(
        text(fetch(&base, "/count", Some(&moved)).await).await,
        "2 None",
        "the session moved, without the failed request's changes"
    );
}
on_every_store!(server_errors_still_end_and_regenerate);

// ---- 9. bounded move retries (MemoryStore) ----

/// Race 9, on `MemoryStore` only (its two forms; the other stores move atomically or cap
/// their own retries): three tasks flood one large session with saves while it is renamed,
/// six times (with and without grace). Proves each rename returns after at most
/// `MAX_MOVE_ATTEMPTS` copies (the retry counter says so), and whichever way it ends the
/// session is whole: moved with every acknowledged save, or — when the bound was hit —
/// untouched under its old key with nothing under the new one.
async fn move_retries_are_bounded(store: MemoryStore) {
    const FLOODERS: u32 = 3;
    let (mut moved, mut gave_up) = (0, 0);
    for round in 0..6 {
        let (from, to) = (fresh_key(), fresh_key());
        let mut big = record(0);
        for i in 0..4000 {
            big.fields.insert(format!("pad{i}"), value(i));
        }
        store.create(&from, &big).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let start = Arc::new(Barrier::new(FLOODERS as usize + 1));
        let flooders: Vec<_> = (0..FLOODERS)
            .map(|t| {
                let (store, stop, start) = (store.clone(), Arc::clone(&stop), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    let (mut i, mut acknowledged) = (0, 0);
                    while !stop.load(Ordering::SeqCst) {
                        i += 1;
                        match store.apply(&from, &set(&format!("f{t}"), i)).await {
                            Ok(()) => acknowledged = i,
                            Err(Error::Gone) => {}
                            Err(err) => panic!("a save failed: {err}"),
                        }
                        if i % 32 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    acknowledged
                })
            })
            .collect();
        start.wait().await;
        let before = store.move_retries();
        let grace = (round % 2 == 1)
            .then(|| Grace::new(SystemTime::now() + Duration::from_secs(600), vec![1, 2, 3]));
        let mover = {
            let store = store.clone();
            tokio::spawn(async move { store.rename(&from, &to, grace.as_ref()).await })
        };
        let result = tokio::time::timeout(GUARD, mover).await;
        stop.store(true, Ordering::SeqCst);
        let result = result
            .expect("the rename returned while the saves kept coming")
            .unwrap();
        let mut acknowledged = Vec::new();
        for flooder in flooders {
            acknowledged.push(join(flooder).await);
        }
        let retries = store.move_retries() - before;
        assert!(
            retries < MAX_MOVE_ATTEMPTS as u64,
            "{retries} retries for one rename"
        );
        let (holder, empty) = match result {
            Ok(()) => {
                moved += 1;
                (to, None)
            }
            Err(Error::Unavailable { .. }) => {
                gave_up += 1;
                assert_eq!(retries, MAX_MOVE_ATTEMPTS as u64 - 1);
                (from, Some(to))
            }
            Err(err) => panic!("unexpected rename error: {err}"),
        };
        let loaded = store
            .load(&holder)
            .await
            .unwrap()
            .expect("the session lives");
        assert!(loaded.moved.is_none());
        let acked = acknowledged.iter().filter(|&&n| n > 0).count();
        assert_eq!(loaded.record.fields.len(), big.fields.len() + acked);
        for (t, &n) in acknowledged.iter().enumerate() {
            let got = loaded.record.fields.get(&format!("f{t}"));
            assert_eq!(
                got,
                (n > 0).then(|| value(n)).as_ref(),
                "flooder {t}'s last save"
            );
        }
        if let Some(empty) = empty {
            assert!(store.load(&empty).await.unwrap().is_none());
        }
    }
    println!(
        "{store:?}: {moved} renames done, {gave_up} gave up at the bound, {} retries in all",
        store.move_retries()
    );
}

mod move_retries_are_bounded {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn unbounded_memory() {
        super::move_retries_are_bounded(MemoryStore::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn bounded_memory() {
        super::move_retries_are_bounded(MemoryStore::bounded(10_000)).await;
    }
}
