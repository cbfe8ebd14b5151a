//! Cookie tossing (issue 16, item 1; SEC-18): a page on a sibling subdomain can set a cookie
//! with `Domain=example.com` that the browser then sends to this host beside the visitor's own.
//! sessionkit's defaults make that harmless: the default name on a secure configuration is
//! `__Host-id`, which browsers accept only host-only (so a sibling cannot set it), a tossed
//! cookie of another name is not ours, and a request carrying our name twice gets a fresh
//! session and no `Set-Cookie` at all (a removal cookie would delete the visitor's own copy
//! and leave the tossed one in place: a session swap).
//!
//! Run: `cargo nextest run -p sessionkit-tests --test test_cookie_tossing`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::sync::Arc;

use sessionkit::{MemoryStore, RequestInfo, SessionConfig, SessionManager};

type Manager = SessionManager<Arc<MemoryStore>>;

/// Logs `user` in and returns the `name=value` pair of the cookie set.
async fn login(manager: &Manager, user: &str) -> String {
    let active = manager.load(&RequestInfo::new()).await.expect("load");
    active.session().regenerate();
    active.session().insert("user", user).expect("insert");
    let outcome = manager.finish(active).await.expect("finish");
    let set_cookie = outcome.set_cookie.expect("a login sets a cookie");
    set_cookie.split(';').next().expect("pair").to_owned()
}

/// Who a request with these `Cookie` headers is logged in as, and what the response sets.
async fn visit(manager: &Manager, cookies: &[&str]) -> (Option<String>, Option<String>) {
    let mut request = RequestInfo::new();
    for c in cookies {
        request = request.with_cookie_header(c.to_string());
    }
    let active = manager.load(&request).await.expect("load");
    let user = active.session().get::<String>("user").expect("get");
    let outcome = manager.finish(active).await.expect("finish");
    (user, outcome.set_cookie)
}

#[tokio::test]
async fn the_secure_default_cookie_is_host_only_prefixed() {
    let manager = SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default())
        .expect("config");
    let victim = login(&manager, "victim").await;
    assert!(victim.starts_with("__Host-id="), "{victim}");
    let active = manager.load(&RequestInfo::new()).await.expect("load");
    active.session().insert("k", 1).expect("insert");
    let header = manager
        .finish(active)
        .await
        .expect("finish")
        .set_cookie
        .expect("cookie");
    // What browsers require of a __Host- cookie.
    assert!(header.contains("; Secure"), "{header}");
    assert!(header.contains("; Path=/"), "{header}");
    assert!(!header.to_ascii_lowercase().contains("domain="), "{header}");
    assert_eq!(
        visit(&manager, &[&victim]).await.0.as_deref(),
        Some("victim")
    );

    // Plain-http development keeps the plain name (browsers refuse prefixes without Secure).
    let plain = SessionManager::new(
        Arc::new(MemoryStore::new()),
        SessionConfig::default().with_secure(false),
    )
    .expect("config");
    assert!(login(&plain, "dev").await.starts_with("id="));
}

/// The attack of the issue, on the example site's explicit plain name `id`: the browser sends
/// the victim's cookie and the attacker's tossed one. Neither is used, nothing is cleared.
#[tokio::test]
async fn a_tossed_duplicate_is_refused_without_a_removal_cookie() {
    let manager = SessionManager::new(
        Arc::new(MemoryStore::new()),
        SessionConfig::default().with_cookie_name("id"),
    )
    .expect("config");
    let victim = login(&manager, "victim").await;
    let attacker = login(&manager, "attacker").await;
    for order in [[&victim, &attacker], [&attacker, &victim]] {
        // Both in one header, and in two headers.
        let joined = format!("{}; {}", order[0], order[1]);
        for cookies in [
            vec![joined.as_str()],
            vec![order[0].as_str(), order[1].as_str()],
        ] {
            let (user, set_cookie) = visit(&manager, &cookies).await;
            assert_eq!(
                user, None,
                "a duplicated cookie selected a session: {cookies:?}"
            );
            assert_eq!(
                set_cookie, None,
                "a duplicate was answered with a cookie: {cookies:?}"
            );
        }
    }
    // Both sessions are untouched: the victim still works inside their own.
    assert_eq!(
        visit(&manager, &[&victim]).await.0.as_deref(),
        Some("victim")
    );
    assert_eq!(
        visit(&manager, &[&attacker]).await.0.as_deref(),
        Some("attacker")
    );
}

/// Under the default `__Host-id` name a tossed plain `id` cookie (all a sibling subdomain can
/// set) is someone else's cookie: the victim's session is used and nothing is cleared. A
/// case-variant name is not ours either.
#[tokio::test]
async fn a_tossed_cookie_cannot_reach_a_host_prefixed_session() {
    let manager = SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default())
        .expect("config");
    let victim = login(&manager, "victim").await;
    let attacker = login(&manager, "attacker").await;
    let attacker_value = attacker.split_once('=').expect("pair").1;
    for tossed in [
        format!("id={attacker_value}"),
        format!("__host-id={attacker_value}"),
        format!("__Secure-id={attacker_value}"),
    ] {
        let (user, set_cookie) = visit(&manager, &[&format!("{tossed}; {victim}")]).await;
        assert_eq!(user.as_deref(), Some("victim"), "{tossed}");
        assert_eq!(set_cookie, None, "{tossed}");
        let (user, _) = visit(&manager, &[&tossed]).await;
        assert_eq!(user, None, "{tossed} selected the attacker's session");
    }
}
