//! Acceptance tests: the example site, driven over real HTTP, on every store setup.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use sessionkit::proxy::TrustedProxies;
use sessionkit::{IpBinding, SessionId};
use sessionkit_examples::site::{SessionJson, StoreKind};
use sessionkit_tests::site::{Framework, Site, SiteKind};

fn json(visits: u64, user: Option<&str>, cart: &[&str]) -> SessionJson {
    SessionJson {
        visits,
        user: user.map(str::to_owned),
        cart: cart.iter().map(|s| (*s).to_owned()).collect(),
    }
}

async fn counting_visits(kind: SiteKind) {
    let site = Site::start(kind, |c| c).await;
    let mut c = site.client();
    let first = c.get("/").await;
    assert_eq!(first.status, 200);
    let cookie = first
        .set_cookies
        .first()
        .expect("a new session sets its cookie");
    assert!(cookie.starts_with("id="), "{cookie}");
    let lower = cookie.to_ascii_lowercase();
    assert!(lower.contains("httponly"), "{cookie}");
    assert!(lower.contains("samesite=lax"), "{cookie}");
    assert!(lower.contains("path=/"), "{cookie}");
    assert!(!lower.contains("domain="), "{cookie}");
    assert!(
        !lower.contains("max-age") && !lower.contains("expires"),
        "{cookie}"
    );
    assert_eq!(first.cache_control.as_deref(), Some("no-store"));
    assert!(
        !first.body.contains(c.cookie.as_deref().unwrap_or("?")),
        "id leaked into the body"
    );
    c.get("/").await;
    c.get("/").await;
    assert_eq!(c.state().await, json(3, None, &[]));
}

async fn read_only_requests_write_nothing(kind: SiteKind) {
    let site = Site::start(kind, |c| c).await;
    let mut anon = site.client();
    for _ in 0..20 {
        let r = anon.get("/api/session").await;
        assert!(r.set_cookies.is_empty());
    }
    assert_eq!(
        site.store.counts().request_calls(),
        0,
        "anonymous reads touched the store"
    );
    let mut c = site.client();
    c.get("/").await;
    let before = site.store.counts();
    for _ in 0..10 {
        let r = c.get("/api/session").await;
        assert!(r.set_cookies.is_empty(), "{r:?}");
    }
    let after = site.store.counts();
    assert_eq!(after.writes(), before.writes(), "{before:?} -> {after:?}");
}

async fn login_regenerates_the_id(kind: SiteKind) {
    let site = Site::start(kind, |c| c).await;
    let mut c = site.client();
    c.get("/").await;
    let before = c.cookie.clone().expect("cookie");
    let r = c.post("/login", &[("username", "alice")]).await;
    assert_eq!(r.status, 303, "{r:?}");
    let after = c.cookie.clone().expect("cookie");
    assert_ne!(before, after);
    assert_eq!(c.state().await.user.as_deref(), Some("alice"));
    let mut old = site.client();
    old.cookie = Some(before);
    assert_eq!(
        old.state().await,
        json(0, None, &[]),
        "the pre-login id must be dead"
    );
}

async fn logout_destroys(kind: SiteKind) {
    let site = Site::start(kind, |c| c).await;
    let mut c = site.client();
    c.post("/login", &[("username", "alice")]).await;
    let id = c.cookie.clone().expect("cookie");
    let r = c.post("/logout", &[]).await;
    let removal = r
        .set_cookies
        .first()
        .expect("a removal cookie")
        .to_ascii_lowercase();
    assert!(
        removal.starts_with("id=;") || removal.contains("max-age=0"),
        "{removal}"
    );
    assert_eq!(r.cache_control.as_deref(), Some("no-store"));
    let mut replay = site.client();
    replay.cookie = Some(id);
    assert_eq!(replay.state().await, json(0, None, &[]));
}

async fn logout_everywhere_ends_every_session_of_the_user(kind: SiteKind) {
    let site = Site::start(kind, |c| c).await;
    let (mut a1, mut a2, mut b) = (site.client(), site.client(), site.client());
    a1.post("/login", &[("username", "alice")]).await;
    a2.post("/login", &[("username", "alice")]).await;
    b.post("/login", &[("username", "bob")]).await;
    assert_eq!(a2.state().await.user.as_deref(), Some("alice"));
    a1.post("/logout-everywhere", &[]).await;
    assert_eq!(a1.state().await.user, None);
    assert_eq!(a2.state().await.user, None);
    assert_eq!(b.state().await.user.as_deref(), Some("bob"));
}

async fn flash_is_shown_once(kind: SiteKind) {
    let site = Site::start(kind, |c| c).await;
    let mut c = site.client();
    c.post("/flash", &[("message", "saved <b>ok</b>")]).await;
    let page = c.get("/").await.body;
    assert!(page.contains("saved &lt;b&gt;ok&lt;/b&gt;"), "{page}");
    let page = c.get("/").await.body;
    assert!(!page.contains("saved"), "{page}");
}

async fn cart_accumulates(kind: SiteKind) {
    let site = Site::start(kind, |c| c).await;
    let mut c = site.client();
    c.post("/cart", &[("item", "tea")]).await;
    c.post("/cart", &[("item", "cake")]).await;
    assert_eq!(c.state().await.cart, vec!["tea", "cake"]);
}

async fn idle_expiry(kind: SiteKind) {
    let site = Site::start(kind, |c| c.with_idle_timeout(Duration::from_secs(60))).await;
    let mut c = site.client();
    c.post("/login", &[("username", "alice")]).await;
    site.clock.advance(Duration::from_secs(50));
    assert_eq!(c.state().await.user.as_deref(), Some("alice"));
    site.clock.advance(Duration::from_secs(61));
    assert_eq!(c.state().await, json(0, None, &[]));
}

async fn absolute_expiry(kind: SiteKind) {
    let site = Site::start(kind, |c| {
        c.with_idle_timeout(Duration::from_secs(60))
            .with_absolute_timeout(Some(Duration::from_secs(300)))
            .with_rotate_after(None)
    })
    .await;
    let mut c = site.client();
    c.post("/login", &[("username", "alice")]).await;
    for _ in 0..5 {
        site.clock.advance(Duration::from_secs(50));
        assert_eq!(c.get("/").await.status, 200);
        assert_eq!(c.state().await.user.as_deref(), Some("alice"));
    }
    site.clock.advance(Duration::from_secs(51));
    assert_eq!(
        c.state().await.user,
        None,
        "busy sessions still end at the absolute timeout"
    );
}

async fn rotation_with_grace(kind: SiteKind) {
    let site = Site::start(kind, |c| {
        c.with_idle_timeout(Duration::from_secs(3600))
            .with_rotate_after(Some(Duration::from_secs(60)))
            .with_rotation_grace(Duration::from_secs(5))
    })
    .await;
    let mut c = site.client();
    c.get("/").await;
    let old = c.cookie.clone().expect("cookie");
    site.clock.advance(Duration::from_secs(61));
    c.get("/").await;
    let new = c.cookie.clone().expect("cookie");
    assert_ne!(old, new, "the id rotates after rotate_after");
    // A request in flight with the old id still reaches the session and learns the new id.
    let mut laggard = site.client();
    laggard.cookie = Some(old.clone());
    let r = laggard.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(laggard.cookie.as_deref(), Some(new.as_str()), "{r:?}");
    assert_eq!(c.state().await.visits, 3);
    site.clock.advance(Duration::from_secs(6));
    let mut late = site.client();
    late.cookie = Some(old);
    assert_eq!(
        late.state().await,
        json(0, None, &[]),
        "after the grace window the old id is dead"
    );
    assert_eq!(c.state().await.visits, 3);
}

async fn ip_binding(kind: SiteKind) {
    // The test client connects from 127.0.0.1: trusting it makes it the reverse proxy.
    let proxies = TrustedProxies::parse("127.0.0.1").expect("proxy list");
    let site =
        Site::start_behind_proxies(kind, proxies, |c| c.with_ip_binding(IpBinding::Exact)).await;
    let mut owner = site.client();
    owner
        .headers
        .push(("x-forwarded-for".into(), "203.0.113.7".into()));
    owner.post("/login", &[("username", "alice")]).await;
    let mut thief = site.client();
    thief.cookie = owner.cookie.clone();
    thief
        .headers
        .push(("x-forwarded-for".into(), "198.51.100.9".into()));
    assert_eq!(thief.state().await.user, None);
    assert_eq!(owner.state().await.user.as_deref(), Some("alice"));
}

async fn user_agent_binding(kind: SiteKind) {
    let site = Site::start(kind, |c| c.with_check_user_agent(true)).await;
    let mut owner = site.client();
    owner
        .headers
        .push(("user-agent".into(), "Firefox/1".into()));
    owner.post("/login", &[("username", "alice")]).await;
    let mut thief = site.client();
    thief.cookie = owner.cookie.clone();
    thief.headers.push(("user-agent".into(), "curl/8".into()));
    assert_eq!(thief.state().await.user, None);
    assert_eq!(owner.state().await.user.as_deref(), Some("alice"));
}

async fn fixation_attempt_gets_a_new_id(kind: SiteKind) {
    let site = Site::start(kind, |c| c).await;
    let forged = SessionId::generate().expect("rng");
    let mut victim = site.client();
    victim.cookie = Some(forged.expose());
    let r = victim.get("/").await;
    assert_eq!(r.status, 200);
    let issued = victim.cookie.clone().expect("a session was started");
    assert_ne!(issued, forged.expose());
    assert!(
        site.store
            .inner()
            .load(&forged.key())
            .await
            .expect("load")
            .is_none()
    );
    victim.post("/login", &[("username", "alice")]).await;
    let mut attacker = site.client();
    attacker.cookie = Some(forged.expose());
    assert_eq!(attacker.state().await.user, None);
}

async fn malformed_cookies_get_a_fresh_session(kind: SiteKind) {
    let site = Site::start(kind, |c| c).await;
    let valid = SessionId::generate().expect("rng").expose();
    let long = "a".repeat(5000);
    let cases: Vec<String> = vec![
        String::new(),
        "id=".into(),
        "id".into(),
        "=;=;".into(),
        format!("id={}", &valid[..42]),
        format!("id={valid}A"),
        format!("id=../../{}", &valid[..37]),
        format!("id={}%00", &valid[..40]),
        format!("id={valid}; id={valid}"),
        format!("id={long}"),
        format!("id=\"{valid}\""),
        "id=*".into(),
        "id={}".into(),
    ];
    for raw in cases {
        let mut c = site.client();
        c.headers.push(("cookie".into(), raw.clone()));
        let before = site.store.counts();
        let r = c.get("/api/session").await;
        assert_eq!(r.status, 200, "{raw:?}: {r:?}");
        assert_eq!(
            serde_json::from_str::<SessionJson>(&r.body).expect("json"),
            json(0, None, &[]),
            "{raw:?}"
        );
        assert_eq!(
            site.store.counts().load,
            before.load,
            "{raw:?} reached the store"
        );
    }
}

async fn store_failure_mid_run(kind: SiteKind) {
    let site = Site::start(kind, |c| c).await;
    let mut c = site.client();
    c.post("/login", &[("username", "alice")]).await;
    site.store.set_all(true);
    assert_eq!(c.get("/api/session").await.status, 503);
    let r = c.post("/cart", &[("item", "tea")]).await;
    assert_eq!(r.status, 503, "{r:?}");
    site.store.set_all(false);
    let state = c.state().await;
    assert_eq!(
        state.user.as_deref(),
        Some("alice"),
        "the session survives the outage"
    );
    // A save that fails after a successful load is a 503, and the session is not lost.
    c.get("/").await;
    site.store.fail.apply.store(true, Ordering::SeqCst);
    site.store.fail.create.store(true, Ordering::SeqCst);
    assert_eq!(c.post("/cart", &[("item", "cake")]).await.status, 503);
    site.store.set_all(false);
    assert_eq!(c.state().await.user.as_deref(), Some("alice"));
}

/// The page shows where the session stands (created, deadlines, which tier answered its
/// load), never the id, on both sites.
async fn the_page_shows_the_sessions_life(kind: SiteKind) {
    let site = Site::start(kind, |c| {
        c.with_absolute_timeout(Some(Duration::from_secs(3600)))
    })
    .await;
    let mut c = site.client();
    let first = c.get("/").await;
    assert!(
        first.body.contains("<dd id=\"created\">just now"),
        "a new session is not saved yet: {}",
        first.body
    );
    assert!(
        first.body.contains("<label for=\"username\">"),
        "{}",
        first.body
    );
    site.clock.advance(Duration::from_secs(30));
    let second = c.get("/").await;
    let id = c.cookie.clone().expect("a session");
    for page in [&first.body, &second.body] {
        assert!(!page.contains(&id), "the id never reaches the page");
    }
    let has = |page: &str, needle: &str| assert!(page.contains(needle), "{needle} in {page}");
    has(&second.body, "<dd id=\"created\">30 s ago</dd>");
    has(
        &second.body,
        "<dd id=\"absolute-deadline\">in 59 min 30 s</dd>",
    );
    has(&second.body, "<dd id=\"idle-deadline\">in ");
    has(&second.body, "<dd id=\"next-rotation\">");
    has(&second.body, "<dd id=\"tier\">");
    // A read-only request leaves the cache tier filled; the next page is served from it
    // (a single store has no tiers: it always answers itself).
    c.state().await;
    let third = c.get("/").await;
    let tiered = matches!(
        kind.store,
        StoreKind::MemoryFile | StoreKind::MemoryRedis | StoreKind::RedisFile
    );
    has(
        &third.body,
        if tiered {
            "<dd id=\"tier\">the cache tier</dd>"
        } else {
            "<dd id=\"tier\">the durable store</dd>"
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_page_shows_the_sessions_life() {
    the_page_shows_the_sessions_life(Framework::Axum.on(StoreKind::MemoryFile)).await;
    the_page_shows_the_sessions_life(Framework::Axum.on(StoreKind::Memory)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actix_page_shows_the_sessions_life() {
    the_page_shows_the_sessions_life(Framework::Actix.on(StoreKind::MemoryFile)).await;
    the_page_shows_the_sessions_life(Framework::Actix.on(StoreKind::Memory)).await;
}

macro_rules! web_tests {
    ($($module:ident => $kind:expr),* $(,)?) => {$(
        mod $module {
            web_tests!(@cases $kind; counting_visits, read_only_requests_write_nothing,
                login_regenerates_the_id, logout_destroys,
                logout_everywhere_ends_every_session_of_the_user, flash_is_shown_once,
                cart_accumulates, idle_expiry, absolute_expiry, rotation_with_grace, ip_binding,
                user_agent_binding, fixation_attempt_gets_a_new_id,
                malformed_cookies_get_a_fresh_session, store_failure_mid_run);
        }
    )*};
    (@cases $kind:expr; $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            super::$case($kind).await;
        }
    )*};
}

sessionkit_tests::for_each_site!(web_tests; except redis_postgres);
