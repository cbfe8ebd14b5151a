//! Support for sessionkit's cross-crate tests: the store conformance suite, test doubles, the
//! redis-server harness, and the example site's in-process harness.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failed expectation or a broken harness fails the test"
)]

pub mod coherence;
pub mod conformance;
pub mod crash;
pub mod lifecycle;
pub mod postgres_server;
pub mod probe;
pub mod redis_server;
pub mod restartable;
pub mod setups;
pub mod site;
pub mod soak;
pub mod webdriver;
