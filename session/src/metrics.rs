//! Metrics through the [`metrics`] facade (feature `metrics`).
//!
//! sessionkit records through the facade only: nothing is recorded, and next to nothing is
//! spent, until the application installs a recorder (`metrics-exporter-prometheus`, a StatsD
//! or OpenTelemetry bridge…). Call [`describe`] once after installing it to give every family
//! its help text and unit.
//!
//! | family | kind | labels | what |
//! |---|---|---|---|
//! | [`STORE_OPERATIONS`] | counter | `store`, `operation`, `outcome` | store calls through a [`Metered`](crate::store::Metered) store |
//! | [`STORE_OPERATION_SECONDS`] | histogram | `store`, `operation`, `outcome` | their latency, in seconds |
//! | `sessionkit_tier_hits_total`, `…_misses_total`, `…_cache_errors_total`, `…_fills_dropped_total`, `…_invalidations_total`, `…_flushes_total`, `…_outages_total` | counters | none | what every [`TieredStore`](crate::TieredStore) counts in its [`TierStats`](crate::store::TierStats) |
//! | [`SESSION_EVENTS`] | counter | `event`, `reason` | lifecycle events ([`SessionEvent`]) |
//! | [`SESSIONS_REVOKED`] | counter | none | sessions ended by revocations (one [`Revoked`](SessionEvent::Revoked) event ends many) |
//!
//! Every label value is one of a fixed set of static names: a store's name given in code, an
//! operation, an outcome (`ok`, `absent`, or an [`Error::kind`](crate::Error::kind)), an event
//! kind and reason. A session id, key, fingerprint or owner is never a label or a value.
//!
//! Lifecycle events are counted by the manager itself, with or without an
//! [`EventListener`](crate::manager::EventListener): a manager holds one listener, and an
//! application's own listener (alerts, audit) should not have to chain a metrics one.
//!
//! ```
//! use sessionkit::store::{Metered, MemoryStore, Record, Store};
//! use sessionkit::SessionId;
//! use std::time::{Duration, SystemTime};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // Install a recorder first (here none: the calls are no-ops), then describe the families.
//! sessionkit::metrics::describe();
//! let store = Metered::new("memory", MemoryStore::new());
//! let key = SessionId::generate()?.key();
//! store.create(&key, &Record::new(SystemTime::now() + Duration::from_secs(60))).await?;
//! # Ok::<(), sessionkit::Error>(())
//! # }).unwrap();
//! ```

use metrics::{Unit, counter, describe_counter, describe_histogram};

use crate::manager::{ExpiryReason, SessionEvent};

/// Counter of store operations, labelled `store`, `operation`, `outcome`.
pub const STORE_OPERATIONS: &str = "sessionkit_store_operations_total";
/// Histogram of store operation latency in seconds, labelled `store`, `operation`, `outcome`.
pub const STORE_OPERATION_SECONDS: &str = "sessionkit_store_operation_seconds";
/// Counter of lifecycle events, labelled `event` ([`SessionEvent::name`] without the expiry
/// reason: `expired` for both timeouts) and `reason`.
pub const SESSION_EVENTS: &str = "sessionkit_session_events_total";
/// Counter of the sessions revocations ended.
pub const SESSIONS_REVOKED: &str = "sessionkit_sessions_revoked_total";

/// The tier counters: family name and help text, in [`TierStats`](crate::store::TierStats)
/// order.
pub(crate) const TIER: [(&str, &str); 7] = [
    (TIER_HITS, "Loads a TieredStore's cache tier answered."),
    (
        TIER_MISSES,
        "Loads a TieredStore's cache tier could not answer (sent to the durable tier).",
    ),
    (
        TIER_CACHE_ERRORS,
        "Cache tier operations that failed and were worked around.",
    ),
    (
        TIER_FILLS_DROPPED,
        "Cache fills skipped because the key was invalidated during the durable read.",
    ),
    (
        TIER_INVALIDATIONS,
        "Invalidations received from the durable tier's channel.",
    ),
    (
        TIER_FLUSHES,
        "Times a whole cache tier was dropped (invalidation channel lost or back).",
    ),
    (TIER_OUTAGES, "Times the invalidation channel was lost."),
];

/// `TierStats::hits`.
pub const TIER_HITS: &str = "sessionkit_tier_hits_total";
/// `TierStats::misses`.
pub const TIER_MISSES: &str = "sessionkit_tier_misses_total";
/// `TierStats::cache_errors`.
pub const TIER_CACHE_ERRORS: &str = "sessionkit_tier_cache_errors_total";
/// `TierStats::fills_dropped`.
pub const TIER_FILLS_DROPPED: &str = "sessionkit_tier_fills_dropped_total";
/// `TierStats::invalidations`.
pub const TIER_INVALIDATIONS: &str = "sessionkit_tier_invalidations_total";
/// `TierStats::flushes`.
pub const TIER_FLUSHES: &str = "sessionkit_tier_flushes_total";
/// `TierStats::outages`.
pub const TIER_OUTAGES: &str = "sessionkit_tier_outages_total";

/// Gives every family its help text and unit in the installed recorder. Call it once, after
/// installing the recorder; without one it does nothing.
pub fn describe() {
    describe_counter!(
        STORE_OPERATIONS,
        "Session store operations by store, operation and outcome."
    );
    describe_histogram!(
        STORE_OPERATION_SECONDS,
        Unit::Seconds,
        "Session store operation latency by store, operation and outcome."
    );
    for (name, help) in TIER {
        describe_counter!(name, help);
    }
    describe_counter!(
        SESSION_EVENTS,
        "Session lifecycle events by kind and reason."
    );
    describe_counter!(SESSIONS_REVOKED, "Sessions ended by revocations.");
}

/// Registers the tier counters at zero, so a scrape lists them before the first hit.
pub(crate) fn register_tier() {
    for (name, _) in TIER {
        counter!(name).increment(0);
    }
}

/// Counts one tier event.
pub(crate) fn tier(name: &'static str) {
    counter!(name).increment(1);
}

/// The `event` and `reason` labels of an event: static names only.
pub(crate) fn event_labels(event: &SessionEvent) -> (&'static str, &'static str) {
    match event {
        SessionEvent::Expired { reason, .. } => (
            "expired",
            match reason {
                ExpiryReason::Idle => "idle",
                ExpiryReason::Absolute => "absolute",
            },
        ),
        SessionEvent::BindingMismatch { ip, user_agent, .. } => (
            "binding_mismatch",
            match (ip, user_agent) {
                (true, true) => "ip_and_user_agent",
                (true, false) => "ip",
                (false, true) => "user_agent",
                (false, false) => "none",
            },
        ),
        // The cookie parser's reasons are static descriptions, never the cookie's content.
        SessionEvent::InvalidCookie { reason } => ("invalid_cookie", reason),
        other => (other.name(), "none"),
    }
}

/// Counts a lifecycle event.
pub(crate) fn event(event: &SessionEvent) {
    let (kind, reason) = event_labels(event);
    counter!(SESSION_EVENTS, "event" => kind, "reason" => reason).increment(1);
    if let SessionEvent::Revoked { count } = event {
        counter!(SESSIONS_REVOKED).increment(u64::try_from(*count).unwrap_or(u64::MAX));
    }
}

#[cfg(test)]
mod tests;
