//! SEC-29: the log capture of a full lifecycle.
//!
//! Alone in its test binary, so `cargo test` runs it alone in its process as `cargo nextest
//! run` does. `tracing` caches per call site, for the whole process, whether anyone listens;
//! while the only subscriber is this test's thread-local one, a call site first reached on
//! another thread (a concurrent test, which has no subscriber) is cached as "never", and this
//! test then misses its events. Sharing a binary with the lifecycle suite, it failed now and
//! then under `cargo test` (once in 14 runs here) and never under `cargo nextest run`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::sync::Arc;

use sessionkit::MemoryStore;
use sessionkit_tests::lifecycle::{EVERY_EVENT, every_event, harness};

/// A writer the test can read back: everything the `tracing` subscriber printed.
#[derive(Clone, Default)]
struct Captured(Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// SEC-29: over a full lifecycle the logs name every event, and no raw id appears in them.
#[tokio::test]
async fn logs_name_every_event_and_never_a_raw_id() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = harness(MemoryStore::new(), |c| {
        c.with_check_ip(true).with_check_user_agent(true)
    });
    let ids = every_event(&h).await;
    assert!(
        ids.len() >= 6,
        "the scenario saw too few ids: {}",
        ids.len()
    );

    let logs = String::from_utf8(captured.0.lock().clone()).unwrap();
    for event in EVERY_EVENT {
        assert!(
            logs.contains(&format!("event=\"{event}\""))
                || logs.contains(&format!("event={event}")),
            "{event} not logged:\n{logs}"
        );
    }
    for id in &ids {
        assert!(!logs.contains(id.as_str()), "a raw id was logged");
    }
}
