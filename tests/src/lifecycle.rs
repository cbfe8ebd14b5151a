//! The session lifecycle suite: whole request sequences (load → mutate → finish → carry the
//! cookie to the next request) driven through the [`SessionManager`] with a [`ManualClock`],
//! over any [`Store`].
//!
//! Run it on a store with one line in a test file:
//!
//! ```text
//! sessionkit_tests::lifecycle_suite!(my_factory);
//! ```
//!
//! where `my_factory` is an `async fn() -> (S, G)`, such as the `make` of each setup in
//! [`crate::setups`] (the conformance suite runs on the same ones). Each behaviour becomes its own `#[tokio::test]`. The manager runs over a
//! [`Probe`] around the store, which counts calls and injects faults.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: failing loudly is the point"
)]

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cookie::Cookie;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sessionkit::{
    Error, IpBinding, Outcome, RequestInfo, Session, SessionConfig, SessionEvent, SessionId,
    SessionKey, SessionManager, Store, StoreExt, manager::ManualClock,
};

/// Expands to one `#[tokio::test]` per lifecycle behaviour, over the store `factory` makes.
#[macro_export]
macro_rules! lifecycle_suite {
    ($factory:path) => {
        $crate::lifecycle_suite!(@cases $factory;
            anonymous_requests_persist_nothing,
            new_session_with_data_sets_secure_cookie,
            read_only_requests_within_throttle_write_nothing,
            idle_timeout_ends_session,
            activity_keeps_session_alive,
            absolute_timeout_ends_busy_session,
            rotation_resends_new_id_and_old_id_resolves_within_grace,
            concurrent_requests_during_rotation_keep_the_session,
            rotation_disabled_keeps_the_id,
            regenerate_moves_data_and_kills_old_id_at_once,
            rotated_away_id_does_not_follow_a_login,
            failed_regeneration_fails_closed,
            destroy_deletes_and_clears_cookie,
            data_stored_after_logout_starts_a_new_session,
            unknown_id_is_never_adopted,
            corrupt_record_gives_fresh_session,
            ip_binding_mismatch_gives_fresh_session,
            ip_subnet_binding_tolerates_same_network,
            user_agent_binding_is_hashed_and_enforced,
            persistent_cookies_follow_the_session_expiry,
            flash_is_read_once_on_a_later_request,
            flash_can_be_switched_off,
            revoke_owner_ends_every_session_of_that_owner,
            owner_cap_ends_the_oldest_logins,
            save_racing_logout_does_not_resurrect,
            save_racing_revocation_does_not_resurrect,
            background_cleanup_runs_one_at_a_time,
            cleanup_now_runs_the_store_cleanup,
            bad_cookies_never_reach_the_store,
            create_collision_retries_with_new_id,
            events_never_carry_raw_ids,
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (store, _guard) = $factory().await;
                $crate::lifecycle::$case(store).await;
            }
        )*
    };
}

use crate::probe::Op;
pub use crate::probe::Probe;

// ---- the browser and the harness ----

/// A browser's cookie jar for the session cookie, plus the request's IP and User-Agent.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The session cookie's value, if the browser holds one.
    pub cookie: Option<String>,
    /// The client address the request comes from.
    pub ip: Option<IpAddr>,
    /// The request's User-Agent.
    pub user_agent: Option<String>,
}

impl Client {
    /// A browser with no cookie, no address and no User-Agent.
    pub fn new() -> Self {
        Self::default()
    }

    /// A browser holding the session cookie `value`.
    pub fn with_cookie(value: impl Into<String>) -> Self {
        Client {
            cookie: Some(value.into()),
            ..Self::default()
        }
    }

    /// The request this browser sends: its cookie (beside another one), address and
    /// User-Agent.
    pub fn request(&self) -> RequestInfo {
        let mut request = RequestInfo::new();
        if let Some(value) = &self.cookie {
            request = request.with_cookie_header(format!("theme=dark; id={value}"));
        }
        if let Some(ip) = self.ip {
            request = request.with_client_ip(ip);
        }
        if let Some(ua) = &self.user_agent {
            request = request.with_user_agent(ua.as_bytes());
        }
        request
    }

    /// Stores or removes the cookie as a browser would.
    pub fn absorb(&mut self, outcome: &Outcome) {
        if let Some(header) = &outcome.set_cookie {
            let cookie = Cookie::parse(header.clone()).expect("a valid Set-Cookie");
            assert_eq!(cookie.name(), "id");
            if cookie.value().is_empty() || cookie.max_age() == Some(cookie::time::Duration::ZERO) {
                self.cookie = None;
            } else {
                self.cookie = Some(cookie.value().to_owned());
            }
        }
    }

    /// The key the store files the client's current session under.
    pub fn key(&self) -> SessionKey {
        SessionId::parse(self.cookie.as_deref().expect("a cookie"))
            .expect("a well-formed id")
            .key()
    }
}

/// A manager over a [`Probe`], with a manual clock and an event recorder.
pub struct Harness<S> {
    /// The manager under test.
    pub manager: SessionManager<Probe<S>>,
    /// The manager's clock.
    pub clock: ManualClock,
    /// Every event the manager emitted, in order.
    pub events: Arc<Mutex<Vec<SessionEvent>>>,
}

/// The suite's base configuration: a manual clock, events recorded, no random cleanup.
pub fn harness<S: Store + 'static>(
    store: S,
    configure: impl FnOnce(SessionConfig) -> SessionConfig,
) -> Harness<S> {
    let clock = ManualClock::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    // The sequences spell cookies as `id=…`: an explicit name (the default is `__Host-id`).
    let config = SessionConfig::default()
        .with_cookie_name("id")
        .with_clock(clock.clone())
        .with_cleanup_probability(0.0)
        .with_listener(move |e: &SessionEvent| sink.lock().push(e.clone()));
    let manager = SessionManager::new(Probe::new(store), configure(config)).expect("valid config");
    Harness {
        manager,
        clock,
        events,
    }
}

impl<S: Store + 'static> Harness<S> {
    /// The probe around the store, to count calls and inject faults.
    pub fn probe(&self) -> &Probe<S> {
        self.manager.store()
    }

    /// One request: load, let `handler` work on the session, finish, update the jar.
    pub async fn visit(&self, client: &mut Client, handler: impl FnOnce(&Session)) -> Outcome {
        let active = self.manager.load(&client.request()).await.expect("load");
        handler(active.session());
        let outcome = self.manager.finish(active).await.expect("finish");
        client.absorb(&outcome);
        outcome
    }

    /// A session with `n = 1` for a client with `like`'s IP and User-Agent.
    pub async fn signed_in_as(&self, like: &Client) -> Client {
        let mut client = Client {
            cookie: None,
            ..like.clone()
        };
        self.visit(&mut client, |s| s.insert("n", 1u32).unwrap())
            .await;
        assert!(client.cookie.is_some());
        client
    }

    /// A client holding a saved session with `n = 1`.
    pub async fn signed_in(&self) -> Client {
        let mut client = Client::new();
        self.visit(&mut client, |s| s.insert("n", 1u32).unwrap())
            .await;
        assert!(client.cookie.is_some());
        client
    }

    /// The session's `n`, as the next request with `client`'s cookie sees it.
    pub async fn n(&self, client: &mut Client) -> Option<u32> {
        let mut n = None;
        self.visit(client, |s| n = s.get::<u32>("n").unwrap()).await;
        n
    }

    /// How many events named `name` the manager emitted.
    pub fn count(&self, name: &str) -> usize {
        self.events
            .lock()
            .iter()
            .filter(|e| e.name() == name)
            .count()
    }

    /// Moves the manager's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

fn parse(outcome: &Outcome) -> Cookie<'static> {
    Cookie::parse(outcome.set_cookie.clone().expect("a Set-Cookie")).unwrap()
}

async fn is_live<S: Store>(store: &S, key: &SessionKey) -> bool {
    store.exists(key).await.unwrap()
}

// ---- the behaviours ----

/// SEC-26: requests that never store anything leave nothing in the store and set no cookie.
pub async fn anonymous_requests_persist_nothing<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    for _ in 0..1000 {
        let mut client = Client::new();
        let outcome = h
            .visit(&mut client, |s| {
                assert_eq!(s.get::<u32>("n").unwrap(), None);
                s.set_persistent(true);
            })
            .await;
        assert_eq!(outcome.set_cookie, None);
        assert!(!outcome.cache_control_no_store);
        assert!(client.cookie.is_none());
    }
    assert_eq!(h.probe().counts().total(), 0);
    assert_eq!(h.count("created"), 0);
}

/// A session that receives data is created once, with a cookie carrying the secure defaults.
pub async fn new_session_with_data_sets_secure_cookie<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    let mut client = Client::new();
    let outcome = h.visit(&mut client, |s| s.insert("n", 7u32).unwrap()).await;
    let cookie = parse(&outcome);
    assert_eq!(cookie.value().len(), 43);
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.domain(), None);
    assert_eq!(
        cookie.max_age(),
        None,
        "a browser-session cookie by default"
    );
    assert_eq!(cookie.expires(), None);
    assert!(outcome.cache_control_no_store && outcome.vary_cookie && !outcome.gone);
    assert_eq!(h.probe().counts().create, 1);
    assert_eq!(h.count("created"), 1);
    assert!(is_live(h.probe().inner(), &client.key()).await);
    assert_eq!(h.n(&mut client).await, Some(7));
}

/// A read-only request writes nothing until `refresh_fraction` of the idle timeout passed.
pub async fn read_only_requests_within_throttle_write_nothing<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    let mut client = h.signed_in().await;
    let writes = h.probe().counts().writes();
    for _ in 0..5 {
        h.advance(Duration::from_secs(30));
        let outcome = h.visit(&mut client, |s| drop(s.get::<u32>("n"))).await;
        assert_eq!(outcome.set_cookie, None);
        assert!(outcome.vary_cookie);
    }
    assert_eq!(
        h.probe().counts().writes(),
        writes,
        "2.5 min of reads: no write"
    );
    // 3 min (0.1 of 30 min) after the last refresh, one read refreshes the idle deadline.
    h.advance(Duration::from_secs(31));
    let outcome = h.visit(&mut client, |_| {}).await;
    assert_eq!(
        outcome.set_cookie, None,
        "a session cookie needs no re-send"
    );
    assert_eq!(h.probe().counts().writes(), writes + 1);
    h.advance(Duration::from_secs(60));
    h.visit(&mut client, |_| {}).await;
    assert_eq!(h.probe().counts().writes(), writes + 1);
    assert_eq!(h.n(&mut client).await, Some(1));
}

/// SEC-09: a session unused for the idle timeout is gone on the server, whatever the client
/// still sends, and its record is deleted.
pub async fn idle_timeout_ends_session<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c.with_rotate_after(None));
    let mut client = h.signed_in().await;
    h.advance(mins(30) - Duration::from_secs(1));
    assert_eq!(
        h.n(&mut client).await,
        Some(1),
        "alive just before the timeout"
    );
    let key = client.key();
    h.advance(mins(30));
    let active = h.manager.load(&client.request()).await.unwrap();
    assert!(active.is_new());
    assert!(active.session().is_empty());
    let outcome = h.manager.finish(active).await.unwrap();
    // No removal cookie for a well-formed id: a concurrent request may have just signed in
    // and set a fresh cookie, which a late removal would wipe. The dead id leads nowhere.
    assert_eq!(outcome.set_cookie, None);
    assert_eq!(h.count("expired_idle"), 1);
    assert!(
        !is_live(h.probe().inner(), &key).await,
        "the record is deleted"
    );
}

/// Activity keeps refreshing the idle deadline.
pub async fn activity_keeps_session_alive<S: Store + 'static>(store: S) {
    let h = harness(store, |c| {
        c.with_absolute_timeout(None).with_rotate_after(None)
    });
    let mut client = h.signed_in().await;
    for _ in 0..12 {
        h.advance(mins(20));
        assert_eq!(h.n(&mut client).await, Some(1));
    }
    assert_eq!(h.count("expired_idle"), 0);
}

/// SEC-10: a busy session still ends at created + absolute timeout; rotation does not reset
/// the creation time.
pub async fn absolute_timeout_ends_busy_session<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c.with_absolute_timeout(Some(mins(60))));
    let mut client = h.signed_in().await;
    let first = client.cookie.clone();
    for i in 0..5u32 {
        h.advance(mins(10));
        h.visit(&mut client, |s| s.insert("i", i).unwrap()).await;
        assert_eq!(
            h.n(&mut client).await,
            Some(1),
            "alive at {} min",
            10 * (i + 1)
        );
    }
    assert_ne!(client.cookie, first, "rotated on the way");
    assert!(h.count("rotated") >= 2);
    h.advance(mins(10));
    assert_eq!(h.n(&mut client).await, None, "ended at 60 min");
    assert_eq!(h.count("expired_absolute"), 1);
}

/// SEC-08: after `rotate_after` the id changes; the old id resolves to the same session within
/// the grace window (and its request gets the new cookie), and is dead after it.
pub async fn rotation_resends_new_id_and_old_id_resolves_within_grace<S: Store + 'static>(
    store: S,
) {
    let h = harness(store, |c| c);
    let mut client = h.signed_in().await;
    let old = client.clone();
    h.advance(mins(15));
    let outcome = h.visit(&mut client, |_| {}).await;
    assert!(outcome.cache_control_no_store);
    assert_ne!(client.cookie, old.cookie, "a new id");
    assert_eq!(h.count("rotated"), 1);

    // A request in flight with the old id, 5 s later: same session, new cookie, its write kept.
    h.advance(Duration::from_secs(5));
    let mut straggler = old.clone();
    let outcome = h
        .visit(&mut straggler, |s| {
            assert_eq!(s.get::<u32>("n").unwrap(), Some(1));
            s.insert("late", true).unwrap();
        })
        .await;
    assert_eq!(
        straggler.cookie, client.cookie,
        "the old id gets the new cookie"
    );
    assert!(outcome.cache_control_no_store);
    let mut late = None;
    h.visit(&mut client, |s| late = s.get::<bool>("late").unwrap())
        .await;
    assert_eq!(late, Some(true));

    // After the window the old id is dead, and using it is an event.
    h.advance(Duration::from_secs(6));
    let mut replay = old.clone();
    assert_eq!(h.n(&mut replay).await, None);
    assert_eq!(h.count("stale_id"), 1);
    assert_eq!(
        h.n(&mut client).await,
        Some(1),
        "the session itself lives on"
    );
}

/// The race the grace window exists for: requests that loaded the old id before the rotation
/// finish after it, and keep their writes and the session.
pub async fn concurrent_requests_during_rotation_keep_the_session<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    let client = h.signed_in().await;
    h.advance(mins(15));
    let a = h.manager.load(&client.request()).await.unwrap();
    let b = h.manager.load(&client.request()).await.unwrap();
    let c = h.manager.load(&client.request()).await.unwrap();
    let first = h.manager.finish(a).await.unwrap();
    let mut winner = client.clone();
    winner.absorb(&first);
    assert_ne!(winner.cookie, client.cookie);

    b.session().insert("b", 2u32).unwrap();
    let second = h.manager.finish(b).await.unwrap();
    let third = h.manager.finish(c).await.unwrap();
    for outcome in [&second, &third] {
        assert!(!outcome.gone);
        let mut jar = client.clone();
        jar.absorb(outcome);
        assert_eq!(
            jar.cookie, winner.cookie,
            "every racer ends on the winner's id"
        );
    }
    assert_eq!(h.count("rotated"), 1, "one rotation, not three");
    let mut b = None;
    h.visit(&mut winner, |s| b = s.get::<u32>("b").unwrap())
        .await;
    assert_eq!(b, Some(2));
}

/// With `rotate_after = None` the id never changes.
pub async fn rotation_disabled_keeps_the_id<S: Store + 'static>(store: S) {
    let h = harness(store, |c| {
        c.with_rotate_after(None).with_absolute_timeout(None)
    });
    let mut client = h.signed_in().await;
    let id = client.cookie.clone();
    for _ in 0..8 {
        h.advance(mins(20));
        h.visit(&mut client, |s| s.insert("x", 1).unwrap()).await;
    }
    assert_eq!(client.cookie, id);
    assert_eq!(h.count("rotated"), 0);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Notice {
    text: String,
    level: u8,
}

/// SEC-07: regeneration moves data (and flash) to a fresh id; the old id is dead at once.
pub async fn regenerate_moves_data_and_kills_old_id_at_once<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c.with_absolute_timeout(Some(mins(60))));
    let mut client = h.signed_in().await;
    let fixated = client.clone();
    h.advance(mins(5));
    let outcome = h
        .visit(&mut client, |s| {
            s.insert("user_id", 42u64).unwrap();
            s.flash("welcome", "Welcome back").unwrap();
            s.regenerate();
        })
        .await;
    assert!(outcome.cache_control_no_store);
    assert_ne!(client.cookie, fixated.cookie);
    assert_eq!(h.count("regenerated"), 1);
    // No grace: the old id is dead with no time passing.
    let mut attacker = fixated.clone();
    let mut seen = None;
    h.visit(&mut attacker, |s| seen = s.get::<u64>("user_id").unwrap())
        .await;
    assert_eq!(seen, None);
    assert!(!is_live(h.probe().inner(), &fixated.key()).await);
    let (mut user, mut n, mut flash) = (None, None, None);
    h.visit(&mut client, |s| {
        user = s.get::<u64>("user_id").unwrap();
        n = s.get::<u32>("n").unwrap();
        flash = s.take_flash::<String>("welcome").unwrap();
    })
    .await;
    assert_eq!((user, n), (Some(42), Some(1)));
    assert_eq!(flash.as_deref(), Some("Welcome back"));
    // The creation time moved with it: the absolute timeout still counts from the start.
    h.advance(mins(56));
    assert_eq!(h.n(&mut client).await, None);
    assert_eq!(h.count("expired_absolute"), 1);
}

/// SEC-08: an old id still in its grace window does not reach the state a later login
/// (regeneration) produced.
pub async fn rotated_away_id_does_not_follow_a_login<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    let mut client = h.signed_in().await;
    let old = client.clone();
    h.advance(mins(15));
    h.visit(&mut client, |_| {}).await;
    assert_ne!(client.cookie, old.cookie, "rotated");
    h.advance(Duration::from_secs(1));
    h.visit(&mut client, |s| {
        s.insert("user_id", 7u64).unwrap();
        s.regenerate();
    })
    .await;
    let mut replay = old.clone();
    let mut user = Some(0);
    h.visit(&mut replay, |s| user = s.get::<u64>("user_id").unwrap())
        .await;
    assert_eq!(
        user, None,
        "the old id is dead although its grace window is open"
    );
    assert_ne!(replay.cookie, client.cookie);
}

/// SEC-07: a login whose regeneration fails fails closed. A failed move writes nothing: the
/// pre-login session stays as it was, without the login. A failure after the move — the login
/// changes not applied, or applied but the reply lost — ends the session: the pre-login id
/// (which an attacker may have planted) holds nothing, and the login is kept nowhere.
pub async fn failed_regeneration_fails_closed<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    let probe = h.probe();
    // (fails before the write, the operation, the move happened)
    for (before, op, moved) in [
        (true, Op::Rename, false),
        (true, Op::Apply, true),
        (false, Op::Apply, true),
    ] {
        let client = h.signed_in().await;
        if before {
            probe.fail_next.get(op).store(1, Ordering::Release);
        } else {
            probe.fail_after_write(op);
        }
        let active = h.manager.load(&client.request()).await.unwrap();
        active.session().insert("user_id", 42u64).unwrap();
        active.session().set_owner(Some("victim".into()));
        active.session().regenerate();
        let err = h.manager.finish(active).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert_eq!(
            (
                probe.fail_next.get(op).load(Ordering::Acquire),
                probe.lost_replies_pending()
            ),
            (0, 0),
            "the fault was hit"
        );
        let mut again = client.clone();
        let mut user = Some(0);
        let mut n = None;
        h.visit(&mut again, |s| {
            user = s.get::<u64>("user_id").unwrap();
            n = s.get::<u32>("n").unwrap();
        })
        .await;
        assert_eq!(user, None, "no login on the pre-login id");
        if moved {
            assert_eq!(n, None, "the pre-login id is dead: a fresh session");
        } else {
            assert_eq!(n, Some(1), "a move that failed left the session as it was");
            assert_eq!(again.cookie, client.cookie, "under the same id");
        }
        assert!(
            h.manager.sessions_of("victim").await.unwrap().is_empty(),
            "the login is kept nowhere"
        );
    }
    assert_eq!(h.count("regenerated"), 0);
}

/// SEC-12: logout deletes the session and clears the cookie with the configured attributes.
pub async fn destroy_deletes_and_clears_cookie<S: Store + 'static>(store: S) {
    let h = harness(store, |c| {
        c.with_path("/app")
            .with_domain(Some("example.com".into()))
            .with_same_site(sessionkit::SameSite::Strict)
    });
    let mut client = h.signed_in().await;
    let old = client.clone();
    let outcome = h.visit(&mut client, |s| s.destroy()).await;
    let removal = parse(&outcome);
    assert_eq!(removal.value(), "");
    assert_eq!(removal.max_age(), Some(cookie::time::Duration::ZERO));
    assert!(removal.expires_datetime().is_some_and(|t| t.year() == 1970));
    assert_eq!(removal.path(), Some("/app"));
    assert_eq!(removal.domain(), Some("example.com"));
    assert_eq!(removal.secure(), Some(true));
    assert_eq!(removal.same_site(), Some(cookie::SameSite::Strict));
    assert!(outcome.cache_control_no_store);
    assert!(client.cookie.is_none());
    assert_eq!(h.count("destroyed"), 1);
    assert!(!is_live(h.probe().inner(), &old.key()).await);
    let mut replay = old.clone();
    assert_eq!(
        h.n(&mut replay).await,
        None,
        "the old cookie replays to nothing"
    );
}

/// A logout followed by a flash ("You have been logged out"): the old session is gone, the
/// flash lives in a new session under a new id, without the old data or owner.
pub async fn data_stored_after_logout_starts_a_new_session<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    let mut client = h.signed_in().await;
    h.visit(&mut client, |s| s.set_owner(Some("dave".into())))
        .await;
    let old = client.clone();
    let outcome = h
        .visit(&mut client, |s| {
            s.destroy();
            assert_eq!(s.owner(), None);
            s.flash("notice", "Logged out").unwrap();
        })
        .await;
    assert!(outcome.cache_control_no_store);
    assert!(client.cookie.is_some() && client.cookie != old.cookie);
    assert!(!is_live(h.probe().inner(), &old.key()).await);
    assert!(h.manager.sessions_of("dave").await.unwrap().is_empty());
    let (mut n, mut notice) = (Some(0), None);
    h.visit(&mut client, |s| {
        n = s.get::<u32>("n").unwrap();
        notice = s.take_flash::<String>("notice").unwrap();
    })
    .await;
    assert_eq!(n, None);
    assert_eq!(notice.as_deref(), Some("Logged out"));
    assert_eq!((h.count("destroyed"), h.count("created")), (1, 2));
}

/// SEC-04: an id the store does not know is never adopted.
pub async fn unknown_id_is_never_adopted<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    let planted = SessionId::generate().unwrap();
    let mut victim = Client::with_cookie(planted.expose());
    // Without data: nothing stored and no cookie sent (not even a removal: a concurrent
    // login of this visitor may have just replaced it).
    let outcome = h.visit(&mut victim, |_| {}).await;
    assert_eq!(outcome.set_cookie, None);
    assert_eq!(h.probe().counts().writes(), 0);
    // With data: a new id, never the planted one.
    let mut victim = Client::with_cookie(planted.expose());
    h.visit(&mut victim, |s| s.insert("n", 1u32).unwrap()).await;
    let issued = victim.cookie.clone().unwrap();
    assert_ne!(issued, planted.expose());
    assert!(!is_live(h.probe().inner(), &planted.key()).await);
    assert!(is_live(h.probe().inner(), &victim.key()).await);
    assert_eq!(h.count("unknown_id"), 2);
}

/// SEC-23: a record that fails to decode is treated as no session, and reported.
pub async fn corrupt_record_gives_fresh_session<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    let mut client = h.signed_in().await;
    let key = client.key();
    h.probe().corrupt_load.store(true, Ordering::Release);
    let active = h.manager.load(&client.request()).await.unwrap();
    assert!(active.is_new());
    let outcome = h.manager.finish(active).await.unwrap();
    client.absorb(&outcome);
    assert_eq!(h.count("corrupt"), 1);
    h.probe().corrupt_load.store(false, Ordering::Release);
    assert!(
        is_live(h.probe().inner(), &key).await,
        "not silently rewritten"
    );
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

/// `check_ip`: a request from another IP gets a fresh session; the owner keeps theirs.
/// Off by default.
pub async fn ip_binding_mismatch_gives_fresh_session<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c.with_check_ip(true));
    let mut owner = Client {
        ip: ip("192.0.2.1"),
        ..Client::new()
    };
    h.visit(&mut owner, |s| s.insert("n", 1u32).unwrap()).await;
    let mut thief = Client {
        ip: ip("198.51.100.9"),
        ..owner.clone()
    };
    assert_eq!(h.n(&mut thief).await, None);
    assert_eq!(h.count("binding_mismatch"), 1);
    assert_eq!(
        h.n(&mut owner).await,
        Some(1),
        "the owner's session is untouched"
    );
    // A request without an address is refused outright (a misconfigured server), not
    // given a session every address-less request would share.
    let no_ip = Client {
        ip: None,
        ..owner.clone()
    };
    let err = h.manager.load(&no_ip.request()).await.unwrap_err();
    assert!(matches!(err, Error::NoClientIp), "{err}");
    let fresh = Client {
        ip: None,
        ..Client::new()
    };
    let err = h.manager.load(&fresh.request()).await.unwrap_err();
    assert!(matches!(err, Error::NoClientIp), "{err}");
    assert_eq!(
        h.n(&mut owner).await,
        Some(1),
        "the owner's session is untouched"
    );
}

/// `IpBinding::Subnet`: the same /24 passes, another network does not.
pub async fn ip_subnet_binding_tolerates_same_network<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c.with_ip_binding(IpBinding::Subnet));
    let mut owner = Client {
        ip: ip("203.0.113.10"),
        ..Client::new()
    };
    h.visit(&mut owner, |s| s.insert("n", 1u32).unwrap()).await;
    let mut roaming = Client {
        ip: ip("203.0.113.200"),
        ..owner.clone()
    };
    assert_eq!(h.n(&mut roaming).await, Some(1));
    let mut elsewhere = Client {
        ip: ip("203.0.114.10"),
        ..owner.clone()
    };
    assert_eq!(h.n(&mut elsewhere).await, None);
    assert_eq!(h.count("binding_mismatch"), 1);
}

/// `check_user_agent`: enforced, and only a hash of the header is stored. Off by default.
pub async fn user_agent_binding_is_hashed_and_enforced<S: Store + 'static>(store: S) {
    const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) SessionkitTestBrowser/1.0";
    let h = harness(store, |c| c.with_check_user_agent(true));
    let mut owner = Client {
        user_agent: Some(UA.into()),
        ..Client::new()
    };
    h.visit(&mut owner, |s| s.insert("n", 1u32).unwrap()).await;
    let record = h.probe().inner().load(&owner.key()).await.unwrap().unwrap();
    for value in record.record.fields.values() {
        let text = String::from_utf8_lossy(value);
        assert!(
            !text.contains("SessionkitTestBrowser"),
            "UA stored in clear"
        );
    }
    let mut other = Client {
        user_agent: Some("curl/8.0".into()),
        ..owner.clone()
    };
    assert_eq!(h.n(&mut other).await, None);
    assert_eq!(h.count("binding_mismatch"), 1);
    assert_eq!(h.n(&mut owner).await, Some(1));

    // Off (the default): the same request keeps the session.
    let h2 = harness(sessionkit::MemoryStore::new(), |c| c);
    let mut a = Client {
        user_agent: Some(UA.into()),
        ip: ip("192.0.2.1"),
        ..Client::new()
    };
    h2.visit(&mut a, |s| s.insert("n", 1u32).unwrap()).await;
    let mut b = Client {
        user_agent: Some("curl/8.0".into()),
        ip: ip("198.51.100.1"),
        ..a.clone()
    };
    assert_eq!(h2.n(&mut b).await, Some(1));
    assert_eq!(h2.count("binding_mismatch"), 0);
}

/// SEC-20: browser-session cookies by default; a persistent cookie (configured or per session)
/// carries Max-Age no longer than the server-side expiry, re-sent when it slides.
pub async fn persistent_cookies_follow_the_session_expiry<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c.with_rotate_after(None));
    let mut client = h.signed_in().await;
    // Remember me, per session.
    let outcome = h.visit(&mut client, |s| s.set_persistent(true)).await;
    let cookie = parse(&outcome);
    let max_age = cookie.max_age().unwrap().whole_seconds();
    assert!(max_age > 0 && max_age <= 30 * 60, "{max_age}");
    assert!(cookie.expires_datetime().is_some());
    // A refresh slides the expiry and re-sends the cookie; a throttled read does not.
    h.advance(mins(1));
    assert_eq!(h.visit(&mut client, |_| {}).await.set_cookie, None);
    h.advance(mins(5));
    let outcome = h.visit(&mut client, |_| {}).await;
    assert!(parse(&outcome).max_age().unwrap().whole_seconds() <= 30 * 60);
    // Back to a browser-session cookie.
    let outcome = h.visit(&mut client, |s| s.set_persistent(false)).await;
    assert_eq!(parse(&outcome).max_age(), None);

    // Persistent by configuration, capped by the absolute timeout.
    let h = harness(sessionkit::MemoryStore::new(), |c| {
        c.with_persistent(true)
            .with_absolute_timeout(Some(mins(20)))
    });
    let mut client = Client::new();
    let outcome = h.visit(&mut client, |s| s.insert("n", 1u32).unwrap()).await;
    assert_eq!(parse(&outcome).max_age().unwrap().whole_seconds(), 20 * 60);
}

/// Flash messages: typed, set now, readable once on a later request, then gone.
pub async fn flash_is_read_once_on_a_later_request<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    let mut client = Client::new();
    let notice = Notice {
        text: "Saved.".into(),
        level: 2,
    };
    let sent = notice.clone();
    let outcome = h
        .visit(&mut client, move |s| {
            s.flash("notice", sent).unwrap();
            assert_eq!(s.take_flash::<Notice>("notice").unwrap(), None);
        })
        .await;
    assert!(
        outcome.set_cookie.is_some(),
        "a flash alone is worth a session"
    );
    let mut got = None;
    h.visit(&mut client, |s| {
        got = s.take_flash::<Notice>("notice").unwrap()
    })
    .await;
    assert_eq!(got, Some(notice));
    h.visit(&mut client, |s| {
        assert_eq!(s.take_flash::<Notice>("notice").unwrap(), None, "gone");
        assert!(s.is_empty(), "flash entries are not user keys");
    })
    .await;
}

/// `integrate_flash = false` refuses flash calls with `Error::FlashDisabled`.
pub async fn flash_can_be_switched_off<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c.with_integrate_flash(false));
    let mut client = Client::new();
    h.visit(&mut client, |s| {
        assert!(matches!(s.flash("x", 1), Err(Error::FlashDisabled)));
        assert!(matches!(s.take_flash::<u8>("x"), Err(Error::FlashDisabled)));
    })
    .await;
    assert!(client.cookie.is_none());
}

/// SEC-13: every session of an owner can be listed and ended; others are untouched.
pub async fn revoke_owner_ends_every_session_of_that_owner<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    let mut alice = Vec::new();
    for _ in 0..3 {
        let mut c = h.signed_in().await;
        h.visit(&mut c, |s| s.set_owner(Some("alice".into()))).await;
        alice.push(c);
    }
    let mut bob = h.signed_in().await;
    h.visit(&mut bob, |s| s.set_owner(Some("bob".into()))).await;
    let mut listed = h.manager.sessions_of("alice").await.unwrap();
    listed.sort();
    let mut expected: Vec<SessionKey> = alice.iter().map(Client::key).collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(h.manager.revoke_owner("alice").await.unwrap(), 3);
    assert_eq!(h.count("revoked"), 1);
    for c in &mut alice {
        assert_eq!(h.n(c).await, None);
    }
    assert!(h.manager.sessions_of("alice").await.unwrap().is_empty());
    assert_eq!(h.n(&mut bob).await, Some(1));
    let mut owner = None;
    h.visit(&mut bob, |s| owner = s.owner()).await;
    assert_eq!(owner.as_deref(), Some("bob"));
}

/// SEC-14: with `max_sessions_per_owner = 2`, every login of an owner (a regeneration, a save
/// that sets the owner, or a new session created with one) ends that owner's oldest sessions
/// beyond the cap: after N + 1 logins only the newest N are live, the one logging in always
/// works, and other owners are untouched.
pub async fn owner_cap_ends_the_oldest_logins<S: Store + 'static>(store: S) {
    let h = harness(store, |c| {
        c.with_max_sessions_per_owner(std::num::NonZeroUsize::new(2))
    });
    let mut bob = h.signed_in().await;
    h.visit(&mut bob, |s| {
        s.regenerate();
        s.set_owner(Some("bob".into()));
    })
    .await;
    let mut alice = Vec::new();
    for login in 0..3 {
        h.advance(Duration::from_secs(1));
        let mut c = h.signed_in().await;
        h.visit(&mut c, |s| {
            if login != 1 {
                s.regenerate();
            }
            s.set_owner(Some("alice".into()));
        })
        .await;
        alice.push(c);
    }
    assert_eq!(
        h.n(&mut alice[0]).await,
        None,
        "the oldest login outlived the cap"
    );
    assert_eq!(h.n(&mut alice[1]).await, Some(1));
    assert_eq!(h.n(&mut alice[2]).await, Some(1));
    assert_eq!(h.manager.sessions_of("alice").await.unwrap().len(), 2);
    assert_eq!(h.count("revoked"), 1);

    // A login straight into a new session ends the older of the two left.
    h.advance(Duration::from_secs(1));
    let mut fresh = Client::new();
    h.visit(&mut fresh, |s| {
        s.set_owner(Some("alice".into()));
        s.insert("n", 1u32).unwrap();
    })
    .await;
    assert_eq!(h.n(&mut alice[1]).await, None);
    assert_eq!(h.n(&mut alice[2]).await, Some(1));
    assert_eq!(h.n(&mut fresh).await, Some(1));
    assert_eq!(h.manager.sessions_of("alice").await.unwrap().len(), 2);
    assert_eq!(h.count("revoked"), 2);
    // Ordinary requests of a session that already has its owner end nothing.
    h.advance(Duration::from_secs(1));
    h.visit(&mut alice[2], |s| s.insert("n", 2u32).unwrap())
        .await;
    assert_eq!(h.n(&mut fresh).await, Some(1));
    assert_eq!(h.n(&mut bob).await, Some(1));
    assert_eq!(h.count("revoked"), 2);
}

/// A save racing a logout never brings the session back.
pub async fn save_racing_logout_does_not_resurrect<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    let client = h.signed_in().await;
    let slow = h.manager.load(&client.request()).await.unwrap();
    let logout = h.manager.load(&client.request()).await.unwrap();
    logout.session().destroy();
    h.manager.finish(logout).await.unwrap();
    slow.session().insert("n", 99u32).unwrap();
    let outcome = h.manager.finish(slow).await.unwrap();
    assert!(outcome.gone);
    // The request that lost the race sends no cookie at all: a removal cookie could reach the
    // browser after, and wipe, the cookie of a request that won (a fresh login, say).
    assert_eq!(outcome.set_cookie, None);
    assert!(!is_live(h.probe().inner(), &client.key()).await);
    assert_eq!(h.count("gone"), 1);
}

/// The same race against "log out everywhere", also when the save would rotate the id.
pub async fn save_racing_revocation_does_not_resurrect<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    let mut client = h.signed_in().await;
    h.visit(&mut client, |s| s.set_owner(Some("carol".into())))
        .await;
    h.advance(mins(15));
    let slow = h.manager.load(&client.request()).await.unwrap();
    assert_eq!(h.manager.revoke_owner("carol").await.unwrap(), 1);
    let outcome = h.manager.finish(slow).await.unwrap();
    assert!(outcome.gone);
    assert!(h.manager.sessions_of("carol").await.unwrap().is_empty());
    assert!(!is_live(h.probe().inner(), &client.key()).await);
    assert_eq!(h.count("rotated"), 0);
}

async fn settle(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("background work did not settle");
}

/// `cleanup_probability`: cleanup runs in the background, off the request's path, never two
/// at once.
pub async fn background_cleanup_runs_one_at_a_time<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c.with_cleanup_probability(1.0));
    h.probe().hold_cleanup.store(true, Ordering::Release);
    for _ in 0..5 {
        // Each load returns while the first cleanup is still held: it is off the path.
        h.manager.load(&RequestInfo::new()).await.unwrap();
        tokio::task::yield_now().await;
    }
    settle(|| h.probe().cleanups_started() == 1).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(h.probe().cleanups_started(), 1, "never two at once");
    h.probe().release_cleanup();
    settle(|| h.probe().cleanups_finished() == 1).await;
    h.probe().hold_cleanup.store(false, Ordering::Release);
    // The guard is released with the task; the next request may start another.
    settle(|| {
        if h.probe().cleanups_started() < 2 {
            let m = h.manager.clone();
            tokio::spawn(async move { m.load(&RequestInfo::new()).await });
        }
        h.probe().cleanups_started() >= 2
    })
    .await;
}

/// `cleanup_now` runs the store's cleanup on demand (for a cron job).
pub async fn cleanup_now_runs_the_store_cleanup<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    h.manager.cleanup_now().await.unwrap();
    assert_eq!(h.probe().cleanups_started(), 1);
}

/// Bad cookies: never a panic, never a store access, a fresh session; a malformed cookie is
/// cleared, a duplicated one is not (one copy may be the visitor's real session).
pub async fn bad_cookies_never_reach_the_store<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    let v = SessionId::generate().unwrap().expose();
    let mut cases: Vec<Vec<Vec<u8>>> = vec![
        vec![b"id=".to_vec()],
        vec![b"id".to_vec()],
        vec![format!("id={}", "A".repeat(5000)).into_bytes()],
        vec![b"id=abc".to_vec()],
        vec![format!("id={v}A").into_bytes()],
        vec![format!("id={}", &v[..42]).into_bytes()],
        vec![format!("id=../{}", &v[..40]).into_bytes()],
        vec![format!("id={}\0", &v[..42]).into_bytes()],
        vec![format!("id={}+", &v[..42]).into_bytes()],
        vec![format!("id=\"{v}\"").into_bytes()],
        vec![format!("id={v}; id={v}").into_bytes()],
        vec![
            format!("id={v}").into_bytes(),
            format!("id={}", SessionId::generate().unwrap().expose()).into_bytes(),
        ],
    ];
    let mut non_utf8 = b"id=".to_vec();
    non_utf8.extend_from_slice(&v.as_bytes()[..41]);
    non_utf8.extend_from_slice(&[0xc3, 0x28]);
    cases.push(vec![non_utf8]);
    let total = cases.len();
    for headers in cases {
        let duplicated =
            headers.len() > 1 || headers[0].windows(3).filter(|w| w == b"id=").count() > 1;
        let mut request = RequestInfo::new();
        for header in &headers {
            request = request.with_cookie_header(header.clone());
        }
        let active = h.manager.load(&request).await.unwrap();
        assert!(active.is_new());
        let outcome = h.manager.finish(active).await.unwrap();
        if duplicated {
            assert_eq!(
                outcome.set_cookie, None,
                "a duplicate is refused, not cleared"
            );
        } else {
            let mut jar = Client::with_cookie("x");
            jar.absorb(&outcome);
            assert!(jar.cookie.is_none(), "the bad cookie is cleared");
        }
    }
    // Missing: nothing sent, nothing cleared.
    let outcome = h.visit(&mut Client::new(), |_| {}).await;
    assert_eq!(outcome.set_cookie, None);
    assert_eq!(h.probe().counts().total(), 0, "the store was never asked");
    assert_eq!(h.count("invalid_cookie"), total);
}

/// A create that finds its id taken retries with a new one.
pub async fn create_collision_retries_with_new_id<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c);
    h.probe().exists_on_create.store(1, Ordering::Release);
    let mut client = h.signed_in().await;
    assert_eq!(h.probe().counts().create, 2);
    assert_eq!(h.n(&mut client).await, Some(1));
}

/// SEC-28/29: a full lifecycle emits its events, none of which carries a raw id.
pub async fn events_never_carry_raw_ids<S: Store + 'static>(store: S) {
    let h = harness(store, |c| c.with_check_ip(true).with_check_user_agent(true));
    let ids = every_event(&h).await;
    let names: Vec<&str> = h.events.lock().iter().map(SessionEvent::name).collect();
    for expected in EVERY_EVENT {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    let events = h.events.lock().clone();
    let rendered = format!("{events:?} {events:#?}");
    assert!(
        ids.len() >= 6,
        "the scenario saw too few ids: {}",
        ids.len()
    );
    for id in &ids {
        assert!(!rendered.contains(id.as_str()), "a raw id in the events");
    }
}

/// The name of every [`SessionEvent`] variant (and both expiry reasons), as
/// [`SessionEvent::name`] spells them. Tests that must see each event check against this list.
pub const EVERY_EVENT: &[&str] = &[
    "created",
    "regenerated",
    "rotated",
    "expired_idle",
    "expired_absolute",
    "destroyed",
    "gone",
    "revoked",
    "binding_mismatch",
    "unknown_id",
    "stale_id",
    "corrupt",
    "invalid_cookie",
];

/// One request sequence that makes the manager emit every event of [`EVERY_EVENT`], on a
/// harness with IP and User-Agent binding on. Returns every raw id the sequence saw (the
/// cookies it was given and the unknown one it sent), for tests that check none leaks.
pub async fn every_event<S: Store + 'static>(h: &Harness<S>) -> Vec<String> {
    let mut ids = Vec::new();
    let mut client = Client {
        ip: ip("192.0.2.1"),
        user_agent: Some("ua-1".into()),
        ..Client::new()
    };
    // created
    h.visit(&mut client, |s| s.insert("n", 1u32).unwrap()).await;
    ids.extend(client.cookie.clone());
    let before_rotation = client.clone();
    // rotated
    h.advance(mins(15));
    h.visit(&mut client, |_| {}).await;
    ids.extend(client.cookie.clone());
    // stale_id: the pre-rotation id after its grace window
    h.advance(mins(1));
    h.visit(&mut before_rotation.clone(), |_| {}).await;
    // binding_mismatch, by IP and by User-Agent
    let mut thief = Client {
        ip: ip("198.51.100.1"),
        ..client.clone()
    };
    h.visit(&mut thief, |_| {}).await;
    let mut other_ua = Client {
        user_agent: Some("ua-2".into()),
        ..client.clone()
    };
    h.visit(&mut other_ua, |_| {}).await;
    // regenerated
    h.visit(&mut client, |s| s.regenerate()).await;
    ids.extend(client.cookie.clone());
    // unknown_id and invalid_cookie
    let unknown = SessionId::generate().unwrap().expose();
    ids.push(unknown.clone());
    h.visit(
        &mut Client {
            cookie: Some(unknown),
            ..client.clone()
        },
        |_| {},
    )
    .await;
    h.visit(
        &mut Client {
            cookie: Some("not-an-id".into()),
            ..client.clone()
        },
        |_| {},
    )
    .await;
    // expired_idle
    let mut idle = h.signed_in_as(&client).await;
    ids.extend(idle.cookie.clone());
    h.advance(mins(31));
    h.visit(&mut idle, |_| {}).await;
    // expired_absolute: kept alive past the idle timeout until the absolute one
    let mut busy = h.signed_in_as(&client).await;
    ids.extend(busy.cookie.clone());
    for _ in 0..(13 * 60 / 20) {
        h.advance(mins(20));
        h.visit(&mut busy, |s| s.insert("n", 2u32).unwrap()).await;
        ids.extend(busy.cookie.clone());
    }
    // corrupt
    let broken = h.signed_in_as(&client).await;
    ids.extend(broken.cookie.clone());
    h.probe().corrupt_load.store(true, Ordering::Release);
    h.visit(&mut broken.clone(), |_| {}).await;
    h.probe().corrupt_load.store(false, Ordering::Release);
    // gone: a save racing a logout
    let racer = h.signed_in_as(&client).await;
    ids.extend(racer.cookie.clone());
    let slow = h.manager.load(&racer.request()).await.unwrap();
    let logout = h.manager.load(&racer.request()).await.unwrap();
    logout.session().destroy();
    h.manager.finish(logout).await.unwrap();
    slow.session().insert("n", 9u32).unwrap();
    h.manager.finish(slow).await.unwrap();
    // revoked
    let mut owned = h.signed_in_as(&client).await;
    ids.extend(owned.cookie.clone());
    h.visit(&mut owned, |s| s.set_owner(Some("alice".into())))
        .await;
    ids.extend(owned.cookie.clone());
    h.manager.revoke_owner("alice").await.unwrap();
    // destroyed
    let mut last = h.signed_in_as(&client).await;
    ids.extend(last.cookie.clone());
    h.visit(&mut last, |s| s.destroy()).await;
    ids
}
