//! Checklist items the library leaves to the application, shown to be buildable from its
//! primitives (see SECURITY.md).
//!
//! Run: `cargo nextest run -p sessionkit-tests --test test_security`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::num::NonZeroUsize;
use std::sync::Arc;

use sessionkit::{MemoryStore, RequestInfo, SessionConfig, SessionManager, Store};
use sessionkit_backends::RedisStore;
use sessionkit_tests::redis_server::RedisServer;

/// Logs `user` in on a new device: regenerate, tag the owner, store a value. With
/// `newest_wins`, every other session of the user is revoked first (cap = 1).
async fn login<S: Store + 'static>(
    manager: &SessionManager<S>,
    user: &str,
    newest_wins: bool,
) -> String {
    if newest_wins {
        manager.revoke_owner(user).await.expect("revoke");
    }
    let active = manager.load(&RequestInfo::new()).await.expect("load");
    let session = active.session().clone();
    session.regenerate();
    session.set_owner(Some(user.to_owned()));
    session.insert("user", user).expect("insert");
    let outcome = manager.finish(active).await.expect("finish");
    let set_cookie = outcome.set_cookie.expect("a cookie");
    set_cookie.split(';').next().expect("pair").to_owned()
}

async fn user_of<S: Store + 'static>(manager: &SessionManager<S>, cookie: &str) -> Option<String> {
    let active = manager
        .load(&RequestInfo::new().with_cookie_header(cookie.to_owned()))
        .await
        .expect("load");
    let user = active.session().get::<String>("user").expect("get");
    manager.finish(active).await.expect("finish");
    user
}

/// SEC-14: with "cap = 1, newest wins" built from `revoke_owner`, a second login ends the
/// first session of that user and no other user's; without the policy both stay.
#[tokio::test]
async fn newest_wins_cap_from_owner_primitives() {
    let store = Arc::new(MemoryStore::new());
    let manager =
        SessionManager::new(Arc::clone(&store), SessionConfig::default()).expect("config");

    let bob = login(&manager, "bob", true).await;
    let first = login(&manager, "alice", true).await;
    let second = login(&manager, "alice", true).await;
    assert_eq!(
        user_of(&manager, &first).await,
        None,
        "the older session survived the cap"
    );
    assert_eq!(user_of(&manager, &second).await.as_deref(), Some("alice"));
    assert_eq!(user_of(&manager, &bob).await.as_deref(), Some("bob"));
    assert_eq!(store.owned_by("alice").await.expect("owned_by").len(), 1);

    // The default (no policy): concurrent sessions are allowed and counted.
    let third = login(&manager, "alice", false).await;
    assert_eq!(user_of(&manager, &second).await.as_deref(), Some("alice"));
    assert_eq!(user_of(&manager, &third).await.as_deref(), Some("alice"));
    assert_eq!(store.owned_by("alice").await.expect("owned_by").len(), 2);
}

/// Logs a fresh visitor in as `user`, all `LOGINS` at once (behind a barrier, on a
/// multi-thread runtime), and returns each login's cookie.
async fn concurrent_logins<S: Store + 'static>(
    manager: &SessionManager<S>,
    user: &str,
    logins: usize,
) -> Vec<String> {
    let barrier = Arc::new(tokio::sync::Barrier::new(logins));
    let mut tasks = Vec::new();
    for _ in 0..logins {
        let (manager, barrier, user) = (manager.clone(), Arc::clone(&barrier), user.to_owned());
        tasks.push(tokio::spawn(async move {
            let active = manager.load(&RequestInfo::new()).await.expect("load");
            active.session().insert("user", &user).expect("insert");
            active.session().set_owner(Some(user));
            barrier.wait().await;
            let outcome = manager.finish(active).await.expect("finish");
            let set_cookie = outcome.set_cookie.expect("a cookie");
            set_cookie.split(';').next().expect("pair").to_owned()
        }));
    }
    let mut cookies = Vec::new();
    for task in tasks {
        cookies.push(task.await.expect("login task"));
    }
    cookies
}

/// SEC-14 under concurrency: 12 logins of one owner at once with `max_sessions_per_owner = 3`.
/// Each login enforces the cap after its own save, so while they run the owner may briefly
/// hold more, and concurrent logins may end each other; what holds once the last of them has
/// finished is that at most the cap is live (each login's listing sees every login saved
/// before it, and the last one to list ends all but the cap). A later, lone login then works
/// and the cap still holds.
async fn cap_holds_after_concurrent_logins<S: Store + 'static>(store: S) {
    const CAP: usize = 3;
    let config = SessionConfig::default()
        .with_cleanup_probability(0.0)
        .with_max_sessions_per_owner(NonZeroUsize::new(CAP));
    let manager = SessionManager::new(store, config).expect("config");
    let bob = login(&manager, "bob", false).await;
    let cookies = concurrent_logins(&manager, "alice", 12).await;
    let mut live = 0;
    for cookie in &cookies {
        if user_of(&manager, cookie).await.is_some() {
            live += 1;
        }
    }
    assert!(
        live <= CAP,
        "{live} sessions live after the logins settled, cap {CAP}"
    );
    assert!(manager.sessions_of("alice").await.expect("list").len() <= CAP);

    let last = login(&manager, "alice", false).await;
    assert_eq!(user_of(&manager, &last).await.as_deref(), Some("alice"));
    assert!(manager.sessions_of("alice").await.expect("list").len() <= CAP);
    assert_eq!(user_of(&manager, &bob).await.as_deref(), Some("bob"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_owner_cap_holds_after_concurrent_logins_memory() {
    cap_holds_after_concurrent_logins(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_owner_cap_holds_after_concurrent_logins_redis() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.expect("redis");
    cap_holds_after_concurrent_logins(store).await;
}
