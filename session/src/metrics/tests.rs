#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::time::{Duration, SystemTime};

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use crate::SessionId;
use crate::id::Fingerprint;
use crate::manager::events::emit;
use crate::manager::{ExpiryReason, SessionEvent};
use crate::store::{ChangeSet, Grace, MemoryStore, Metered, Record, Store, TieredStore};

/// One recorded metric: kind, name, sorted labels, value.
type Seen = (MetricKind, String, Vec<(String, String)>, DebugValue);

/// Runs `body` on a current-thread runtime with a local debugging recorder and returns what
/// it recorded.
fn recorded<F: std::future::Future<Output = ()>>(body: impl FnOnce() -> F) -> Vec<Seen> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(body());
    });
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            (kind, key.name().to_owned(), labels, value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

fn counter(seen: &[Seen], name: &str, want: &[(&str, &str)]) -> Option<u64> {
    let want = labels(want);
    seen.iter().find_map(|(kind, n, l, v)| match v {
        DebugValue::Counter(c) if *kind == MetricKind::Counter && n == name && *l == want => {
            Some(*c)
        }
        _ => None,
    })
}

fn histogram_len(seen: &[Seen], name: &str, want: &[(&str, &str)]) -> usize {
    let want = labels(want);
    seen.iter()
        .find_map(|(_, n, l, v)| match v {
            DebugValue::Histogram(h) if n == name && *l == want => Some(h.len()),
            _ => None,
        })
        .unwrap_or(0)
}

fn soon() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

/// Every label value of every recorded metric, for the "no secret as a label" checks.
fn label_values(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .flat_map(|(_, _, l, _)| l.iter().map(|(_, v)| v.clone()))
        .collect()
}

#[test]
fn metered_counts_and_times_each_operation_by_outcome_and_never_labels_a_key_or_owner() {
    let id = SessionId::generate().unwrap();
    let (key, other) = (id.key(), SessionId::generate().unwrap().key());
    let owner = "alice@example.com";
    let seen = recorded(|| async move {
        let store = Metered::new("memory", MemoryStore::new());
        let record = Record::from_parts(Default::default(), soon(), Some(owner.to_owned()));
        store.create(&key, &record).await.unwrap();
        assert!(store.create(&key, &record).await.is_err());
        store.load(&key).await.unwrap().unwrap();
        assert!(store.load(&other).await.unwrap().is_none());
        store.apply(&key, &ChangeSet::default()).await.unwrap();
        assert!(store.apply(&other, &ChangeSet::default()).await.is_err());
        assert_eq!(store.owned_by(owner).await.unwrap(), vec![key]);
        store
            .rename(&key, &other, Some(&Grace::new(soon(), vec![])))
            .await
            .unwrap();
        store.cleanup().await.unwrap();
        store.delete(&other).await.unwrap();
        store.delete(&other).await.unwrap();
    });
    let ops = super::STORE_OPERATIONS;
    for (operation, outcome, count) in [
        ("create", "ok", 1),
        ("create", "already_exists", 1),
        ("load", "ok", 1),
        ("load", "absent", 1),
        ("apply", "ok", 1),
        ("apply", "gone", 1),
        ("owned_by", "ok", 1),
        ("rename", "ok", 1),
        ("cleanup", "ok", 1),
        ("delete", "ok", 1),
        ("delete", "absent", 1),
    ] {
        let l = [
            ("store", "memory"),
            ("operation", operation),
            ("outcome", outcome),
        ];
        assert_eq!(
            counter(&seen, ops, &l),
            Some(count),
            "{operation} {outcome}"
        );
        assert_eq!(
            histogram_len(&seen, super::STORE_OPERATION_SECONDS, &l),
            count as usize,
            "{operation} {outcome} timed"
        );
    }
    let secrets = [
        id.expose(),
        key.to_hex(),
        key.fingerprint().to_string(),
        other.to_hex(),
        other.fingerprint().to_string(),
        owner.to_owned(),
    ];
    for value in label_values(&seen) {
        for secret in &secrets {
            assert!(!value.contains(secret.as_str()), "{value:?} holds a secret");
        }
    }
}

#[test]
fn tiered_store_counts_hits_misses_and_lists_its_families_from_the_start() {
    let (key, other) = (
        SessionId::generate().unwrap().key(),
        SessionId::generate().unwrap().key(),
    );
    let seen = recorded(|| async move {
        let store = TieredStore::new(MemoryStore::bounded(100), MemoryStore::new());
        store.create(&key, &Record::new(soon())).await.unwrap();
        // A create fills the cache: both loads are hits; the unknown key is a miss.
        store.load(&key).await.unwrap().unwrap();
        store.load(&key).await.unwrap().unwrap();
        assert!(store.load(&other).await.unwrap().is_none());
        let stats = store.stats();
        assert_eq!((stats.hits, stats.misses), (2, 1));
    });
    assert_eq!(counter(&seen, super::TIER_HITS, &[]), Some(2));
    assert_eq!(counter(&seen, super::TIER_MISSES, &[]), Some(1));
    for (name, _) in super::TIER {
        assert!(counter(&seen, name, &[]).is_some(), "{name} not registered");
    }
    assert_eq!(counter(&seen, super::TIER_INVALIDATIONS, &[]), Some(0));
}

#[test]
fn every_event_is_counted_by_kind_and_reason_without_a_fingerprint() {
    let fp: Fingerprint = SessionId::generate().unwrap().key().fingerprint();
    let events = vec![
        SessionEvent::Created { session: fp },
        SessionEvent::Rotated { from: fp, to: fp },
        SessionEvent::Regenerated { from: fp, to: fp },
        SessionEvent::Expired {
            session: fp,
            reason: ExpiryReason::Idle,
        },
        SessionEvent::Expired {
            session: fp,
            reason: ExpiryReason::Absolute,
        },
        SessionEvent::Expired {
            session: fp,
            reason: ExpiryReason::Idle,
        },
        SessionEvent::Destroyed { session: fp },
        SessionEvent::Gone { session: fp },
        SessionEvent::Revoked { count: 3 },
        SessionEvent::Revoked { count: 2 },
        SessionEvent::BindingMismatch {
            session: fp,
            ip: true,
            user_agent: false,
        },
        SessionEvent::BindingMismatch {
            session: fp,
            ip: false,
            user_agent: true,
        },
        SessionEvent::UnknownId { session: fp },
        SessionEvent::StaleId { session: fp },
        SessionEvent::Corrupt { session: fp },
        SessionEvent::InvalidCookie { reason: "empty" },
    ];
    let seen = recorded(|| async move {
        for event in events {
            emit(None, event);
        }
    });
    let ev = super::SESSION_EVENTS;
    for (event, reason, count) in [
        ("created", "none", 1),
        ("rotated", "none", 1),
        ("regenerated", "none", 1),
        ("expired", "idle", 2),
        ("expired", "absolute", 1),
        ("destroyed", "none", 1),
        ("gone", "none", 1),
        ("revoked", "none", 2),
        ("binding_mismatch", "ip", 1),
        ("binding_mismatch", "user_agent", 1),
        ("unknown_id", "none", 1),
        ("stale_id", "none", 1),
        ("corrupt", "none", 1),
        ("invalid_cookie", "empty", 1),
    ] {
        assert_eq!(
            counter(&seen, ev, &[("event", event), ("reason", reason)]),
            Some(count),
            "{event} {reason}"
        );
    }
    assert_eq!(counter(&seen, super::SESSIONS_REVOKED, &[]), Some(5));
    for value in label_values(&seen) {
        assert!(
            !value.contains(&fp.to_string()),
            "{value:?} is a fingerprint"
        );
    }
}
