//! The conformance suite on `RedisStore`: alone, against a three-master Redis Cluster, as
//! either tier of a `TieredStore`, and as a dead cache tier over `FileStore` (the setups are
//! `sessionkit_tests::setups`, shared with the lifecycle suite). Every test starts its own
//! redis-server(s) on free loopback ports (see `sessionkit_tests::redis_server`); none touches
//! the shared Redis on 6379.
//!
//! `limits_suite!` runs where the durable tier is not Redis, and is left out for the three
//! setups whose durable tier is Redis: `RedisStore` merges a save in a Lua script that does not
//! check `ChangeSet::limits` (the manager's own check on the session bounds what a request
//! sends; see `sessionkit::Limits`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use sessionkit_tests::{conformance_suite, limits_suite, setups};

mod redis {
    use super::*;
    conformance_suite!(setups::redis::make, setups::redis::CAPS);
}

mod redis_cluster {
    use super::*;
    conformance_suite!(setups::redis_cluster::make, setups::redis_cluster::CAPS);
}

/// The usual production shape: a per-process cache in front of Redis.
mod tiered_memory_redis {
    use super::*;
    conformance_suite!(
        setups::tiered_memory_redis::make,
        setups::tiered_memory_redis::CAPS
    );
}

/// Redis as the shared cache tier over another store.
mod tiered_redis_memory {
    use super::*;
    conformance_suite!(
        setups::tiered_redis_memory::make,
        setups::tiered_redis_memory::CAPS
    );
    limits_suite!(setups::tiered_redis_memory::make);
}

/// Redis as the shared cache in front of files.
mod tiered_redis_file {
    use super::*;
    conformance_suite!(
        setups::tiered_redis_file::make,
        setups::tiered_redis_file::CAPS
    );
    limits_suite!(setups::tiered_redis_file::make);
}

/// A dead Redis cache tier is invisible to the contract: the files answer everything.
mod tiered_dead_redis_file {
    use super::*;
    conformance_suite!(
        setups::tiered_dead_redis_file::make,
        setups::tiered_dead_redis_file::CAPS
    );
    limits_suite!(setups::tiered_dead_redis_file::make);
}
