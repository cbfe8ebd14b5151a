//! The conformance suite on `FileStore`, alone and as the durable tier under `MemoryStore`
//! (the setups are `sessionkit_tests::setups`, shared with the lifecycle suite).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use sessionkit_tests::{conformance_suite, limits_suite, setups};

mod file {
    use super::*;
    conformance_suite!(setups::file::make, setups::file::CAPS);
    limits_suite!(setups::file::make);
}

mod file_nosync {
    use super::*;
    conformance_suite!(setups::file_nosync::make, setups::file_nosync::CAPS);
    limits_suite!(setups::file_nosync::make);
}

/// The MemoryStore tier expires entries by itself, but cleanup reports the durable tier's
/// count, which is exact.
mod tiered_memory_file {
    use super::*;
    conformance_suite!(
        setups::tiered_memory_file::make,
        setups::tiered_memory_file::CAPS
    );
    limits_suite!(setups::tiered_memory_file::make);
}
