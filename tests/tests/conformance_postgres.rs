//! The conformance suite on `PostgresStore`: alone and as the durable tier of a coherent
//! memory cache (`TieredStore::coherent`, fed by LISTEN/NOTIFY). Every test starts its own
//! PostgreSQL (see `sessionkit_tests::postgres_server`); none touches the shared one on 5432.
//! `PostgresStore` checks `ChangeSet::limits` as `Record::apply` does, so the limits suite
//! runs on both.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use sessionkit_tests::{conformance_suite, limits_suite, setups};

mod postgres {
    use super::*;
    conformance_suite!(setups::postgres::make, setups::postgres::CAPS);
    limits_suite!(setups::postgres::make);
}

/// The production shape for teams without Redis: a per-process cache in front of PostgreSQL.
mod tiered_memory_postgres {
    use super::*;
    conformance_suite!(
        setups::tiered_memory_postgres::make,
        setups::tiered_memory_postgres::CAPS
    );
    limits_suite!(setups::tiered_memory_postgres::make);
}
