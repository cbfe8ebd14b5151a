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

use std::sync::Arc;

use sessionkit::{MemoryStore, RequestInfo, SessionConfig, SessionManager, Store};

type Manager = SessionManager<Arc<MemoryStore>>;

/// Logs `user` in on a new device: regenerate, tag the owner, store a value. With
/// `newest_wins`, every other session of the user is revoked first (cap = 1).
async fn login(manager: &Manager, user: &str, newest_wins: bool) -> String {
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

async fn user_of(manager: &Manager, cookie: &str) -> Option<String> {
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
