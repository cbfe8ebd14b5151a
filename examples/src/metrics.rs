//! `GET /metrics` of both example sites (`SESSIONKIT_METRICS=1`): sessionkit's metrics in the
//! Prometheus text format.
//!
//! [`install`] sets `metrics-exporter-prometheus`'s recorder as the process's `metrics`
//! recorder (once: a process has one), without an HTTP listener of its own; the sites'
//! `/metrics` route answers with [`render`]. Until it is installed the route answers `404`,
//! and sessionkit's metrics calls record nothing.

use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The `Content-Type` of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Store latency buckets, in seconds: from a memory store's microseconds to a slow network
/// round trip.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static INSTALLING: Mutex<()> = Mutex::new(());

/// Installs the Prometheus recorder for this process, if it is not installed yet, and
/// describes sessionkit's families. Calling it again does nothing.
///
/// # Errors
/// When another `metrics` recorder was installed in this process first.
pub fn install() -> Result<(), String> {
    let _installing = INSTALLING
        .lock()
        .map_err(|_| "a metrics install panicked".to_owned())?;
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new()
        // Real histograms (buckets), not summaries, for the store latency.
        .set_buckets_for_metric(
            Matcher::Full(sessionkit::metrics::STORE_OPERATION_SECONDS.to_owned()),
            LATENCY_BUCKETS,
        )
        .map_err(|e| format!("metrics buckets: {e}"))?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    sessionkit::metrics::describe();
    // Under the lock and checked above: the cell is empty, so this cannot fail.
    let _ = HANDLE.set(handle);
    Ok(())
}

/// Whether [`install`] ran in this process.
pub fn installed() -> bool {
    HANDLE.get().is_some()
}

/// The metrics in the Prometheus text format, or `None` before [`install`].
pub fn render() -> Option<String> {
    HANDLE.get().map(|handle| {
        // No upkeep task of the exporter's own: drain the histograms here, at each scrape.
        handle.run_upkeep();
        handle.render()
    })
}
