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

/// The manager counts every lifecycle event of a full lifecycle (`lifecycle::every_event`) by
/// kind and reason, and every store operation under it; no label holds an id, key,
/// fingerprint or owner. A local debugging recorder, on this thread's current-thread runtime.
#[test]
fn the_manager_counts_every_lifecycle_event_and_labels_no_secret() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use sessionkit::MemoryStore;
    use sessionkit::store::Metered;
    use sessionkit_tests::lifecycle::{EVERY_EVENT, every_event, harness};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let ids = metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let h = harness(Metered::new("memory", MemoryStore::new()), |c| {
                    c.with_check_ip(true).with_check_user_agent(true)
                });
                every_event(&h).await
            })
    });
    /// A counter: name, labels, value.
    type Counted = (String, Vec<(String, String)>, u64);
    let seen: Vec<Counted> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let (_, key) = key.into_parts();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            match value {
                DebugValue::Counter(n) => Some((key.name().to_owned(), labels, n)),
                _ => None,
            }
        })
        .collect();
    let label = |labels: &[(String, String)], k: &str| {
        labels
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    for expected in EVERY_EVENT {
        assert!(
            seen.iter().any(|(name, labels, n)| {
                let (event, reason) = (label(labels, "event"), label(labels, "reason"));
                name == sessionkit::metrics::SESSION_EVENTS
                    && *n > 0
                    && (event == *expected || format!("{event}_{reason}") == *expected)
            }),
            "{expected} not counted: {seen:?}"
        );
    }
    for operation in ["create", "load", "apply", "delete", "rename", "owned_by"] {
        assert!(
            seen.iter().any(|(name, labels, n)| {
                name == sessionkit::metrics::STORE_OPERATIONS
                    && label(labels, "store") == "memory"
                    && label(labels, "operation") == operation
                    && *n > 0
            }),
            "{operation} not counted: {seen:?}"
        );
    }
    assert!(
        ids.len() >= 6,
        "the scenario saw too few ids: {}",
        ids.len()
    );
    let mut secrets = vec!["alice".to_owned()];
    for id in &ids {
        secrets.push(id.clone());
        if let Some(parsed) = SessionId::parse(id) {
            secrets.push(parsed.key().to_hex());
            secrets.push(parsed.key().fingerprint().to_string());
        }
    }
    for (_, labels, _) in &seen {
        for (_, value) in labels {
            for secret in &secrets {
                assert!(!value.contains(secret.as_str()), "{value:?} holds a secret");
            }
        }
    }
}
