//! Issue 19, metrics: the example sites' `GET /metrics` (`SESSIONKIT_METRICS=1`) lists every
//! sessionkit family after a short browse, on both frameworks, and never a session id, key,
//! fingerprint or owner. In its own binary: the Prometheus recorder is global to the process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use sessionkit::SessionId;
use sessionkit_examples::site::StoreKind;
use sessionkit_tests::site::{Framework, Site, SiteKind};

/// Every family a short browse on a tiered setup must show.
const FAMILIES: &[&str] = &[
    "sessionkit_store_operations_total",
    "sessionkit_store_operation_seconds_bucket",
    "sessionkit_store_operation_seconds_count",
    "sessionkit_tier_hits_total",
    "sessionkit_tier_misses_total",
    "sessionkit_tier_cache_errors_total",
    "sessionkit_tier_fills_dropped_total",
    "sessionkit_tier_invalidations_total",
    "sessionkit_tier_flushes_total",
    "sessionkit_tier_outages_total",
    "sessionkit_session_events_total",
    "sessionkit_sessions_revoked_total",
];

/// Secrets of a session: its id as the cookie holds it, its store key, its fingerprint.
fn secrets(cookie: &str) -> Vec<String> {
    let id = SessionId::parse(cookie).expect("a well-formed id");
    vec![
        cookie.to_owned(),
        id.key().to_hex(),
        id.key().fingerprint().to_string(),
    ]
}

async fn metrics_after_a_short_browse(kind: SiteKind) {
    let site = Site::start_with_metrics(kind, |c| c).await;
    let mut seen = Vec::new();
    let mut visitor = site.client();
    assert_eq!(visitor.get("/").await.status, 200);
    seen.extend(visitor.cookie.clone());
    assert_eq!(visitor.get("/").await.status, 200);
    assert_eq!(
        visitor
            .post("/login", &[("username", "zoe-owner")])
            .await
            .status,
        303
    );
    seen.extend(visitor.cookie.clone());
    assert_eq!(
        visitor.post("/cart", &[("item", "teapot")]).await.status,
        303
    );
    assert_eq!(visitor.get("/").await.status, 200);
    // A second device of the same user, ended by "log out everywhere".
    let mut other = site.client();
    other.post("/login", &[("username", "zoe-owner")]).await;
    seen.extend(other.cookie.clone());
    assert_eq!(other.post("/logout-everywhere", &[]).await.status, 303);
    let mut third = site.client();
    third.post("/login", &[("username", "yves-owner")]).await;
    seen.extend(third.cookie.clone());
    assert_eq!(third.post("/logout", &[]).await.status, 303);
    // A well-formed id the store never issued.
    let mut guesser = site.client();
    let unknown = SessionId::generate().unwrap().expose();
    guesser.cookie = Some(unknown.clone());
    guesser.get("/").await;
    seen.push(unknown);

    let reply = site.client().get("/metrics").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let text = reply.body;
    for family in FAMILIES {
        assert!(
            text.lines().any(|l| l.starts_with(family)),
            "{family} missing from /metrics:\n{text}"
        );
    }
    for labels in [
        r#"store="memory",operation="load",outcome="ok""#,
        r#"store="file",operation="create",outcome="ok""#,
        r#"store="tiered",operation="apply",outcome="ok""#,
        r#"store="tiered",operation="delete",outcome="ok""#,
        r#"store="file",operation="rename",outcome="ok""#,
        r#"store="file",operation="owned_by",outcome="ok""#,
        r#"store="tiered",operation="load",outcome="absent""#,
    ] {
        assert!(
            text.contains(&format!("sessionkit_store_operations_total{{{labels}}}")),
            "no {labels} in /metrics:\n{text}"
        );
    }
    for (event, reason) in [
        ("created", "none"),
        ("regenerated", "none"),
        ("destroyed", "none"),
        ("revoked", "none"),
        ("unknown_id", "none"),
    ] {
        let labels = format!(r#"event="{event}",reason="{reason}""#);
        assert!(
            text.contains(&format!("sessionkit_session_events_total{{{labels}}}")),
            "no {labels} in /metrics:\n{text}"
        );
    }
    assert!(
        seen.len() >= 4,
        "the browse saw too few ids: {}",
        seen.len()
    );
    for cookie in &seen {
        for secret in secrets(cookie) {
            assert!(!text.contains(&secret), "a session secret in /metrics");
        }
    }
    for owner in ["zoe-owner", "yves-owner"] {
        assert!(!text.contains(owner), "an owner in /metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_site_serves_every_family() {
    metrics_after_a_short_browse(Framework::Axum.on(StoreKind::MemoryFile)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_site_serves_every_family() {
    metrics_after_a_short_browse(Framework::Actix.on(StoreKind::MemoryFile)).await;
}
