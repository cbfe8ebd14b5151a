//! The `Listing` conformance cases (`sessionkit_tests::conformance::listing`) on every store
//! that lists: memory (both engines), tiered (lists its durable tier), files, Redis alone and
//! as a three-master cluster (each on its own redis-server(s), never the shared one), SQLite
//! and PostgreSQL (alone and under a memory tier; PostgreSQL on its own test server).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use sessionkit_tests::{listing_suite, setups};

mod memory {
    use super::*;
    listing_suite!(setups::memory::make, true);
}

mod memory_bounded {
    use super::*;
    listing_suite!(setups::memory_bounded::make, true);
}

mod tiered_memory_memory {
    use super::*;
    listing_suite!(setups::tiered_memory_memory::make, true);
}

mod file {
    use super::*;
    listing_suite!(setups::file::make, true);
}

mod tiered_memory_file {
    use super::*;
    listing_suite!(setups::tiered_memory_file::make, true);
}

/// `SCAN` may repeat a key when Redis resizes its keyspace: at-least-once only.
mod redis {
    use super::*;
    listing_suite!(setups::redis::make, false);
}

mod redis_cluster {
    use super::*;
    listing_suite!(setups::redis_cluster::make, false);
}

mod tiered_memory_redis {
    use super::*;
    listing_suite!(setups::tiered_memory_redis::make, false);
}

mod sqlite {
    use super::*;
    listing_suite!(setups::sqlite::make, true);
}

mod tiered_memory_sqlite {
    use super::*;
    listing_suite!(setups::tiered_memory_sqlite::make, true);
}

mod postgres {
    use super::*;
    listing_suite!(setups::postgres::make, true);
}

mod tiered_memory_postgres {
    use super::*;
    listing_suite!(setups::tiered_memory_postgres::make, true);
}
