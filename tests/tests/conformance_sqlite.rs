//! The conformance suite on `SqliteStore`, alone and as the durable tier under `MemoryStore`
//! (the setups are `sessionkit_tests::setups`, shared with the lifecycle suite).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use sessionkit_tests::{conformance_suite, limits_suite, setups};

mod sqlite {
    use super::*;
    conformance_suite!(setups::sqlite::make, setups::sqlite::CAPS);
    limits_suite!(setups::sqlite::make);
}

/// The MemoryStore tier expires entries by itself, but cleanup reports the durable tier's
/// count, which is exact.
mod tiered_memory_sqlite {
    use super::*;
    conformance_suite!(
        setups::tiered_memory_sqlite::make,
        setups::tiered_memory_sqlite::CAPS
    );
    limits_suite!(setups::tiered_memory_sqlite::make);
}
