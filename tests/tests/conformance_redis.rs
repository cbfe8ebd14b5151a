//! The conformance suite on `RedisStore`: alone, against a three-master Redis Cluster, as
//! either tier of a `TieredStore`, and as a dead cache tier over `FileStore`. Every test starts its own redis-server(s) on free loopback
//! ports (see `sessionkit_tests::redis_server`); none touches the shared Redis on 6379.
//!
//! `limits_suite!` is left out for every setup whose durable tier is Redis: `RedisStore`
//! merges a save in a Lua script that does not check `ChangeSet::limits` (the manager's own
//! check on the session bounds what a request sends; see `sessionkit::Limits`).

use sessionkit::store::{MemoryStore, TieredStore};
use std::time::Duration;

use sessionkit_backends::file::{Durability, FileConfig};
use sessionkit_backends::{FileStore, RedisConfig, RedisStore};
use sessionkit_tests::conformance::Caps;
use sessionkit_tests::conformance_suite;
use sessionkit_tests::redis_server::{RedisCluster, RedisServer};
use tempfile::TempDir;

/// Redis expires keys by itself: `cleanup` has nothing left to remove and reports 0.
const REDIS_CAPS: Caps = Caps {
    exact_cleanup: false,
    many_sessions: 100_000,
};

/// A cluster spreads the same load over three local processes on a two-core machine: fewer
/// sessions keep the case's run time in line with the others.
const CLUSTER_CAPS: Caps = Caps {
    exact_cleanup: false,
    many_sessions: 20_000,
};

async fn standalone() -> (RedisStore, RedisServer) {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.expect("connect");
    (store, server)
}

mod redis {
    use super::*;
    async fn make() -> (RedisStore, RedisServer) {
        standalone().await
    }
    conformance_suite!(make, REDIS_CAPS);
}

mod redis_cluster {
    use super::*;
    async fn make() -> (RedisStore, RedisCluster) {
        let cluster = RedisCluster::start();
        let store = RedisStore::connect(RedisConfig::cluster(cluster.urls()))
            .await
            .expect("connect to the cluster");
        assert!(store.is_cluster());
        (store, cluster)
    }
    conformance_suite!(make, CLUSTER_CAPS);
}

/// The usual production shape: a per-process cache in front of Redis.
mod tiered_memory_redis {
    use super::*;
    async fn make() -> (TieredStore<MemoryStore, RedisStore>, RedisServer) {
        let (redis, server) = standalone().await;
        (
            TieredStore::new(MemoryStore::with_capacity(10_000), redis),
            server,
        )
    }
    conformance_suite!(make, REDIS_CAPS);
}

/// Redis as the shared cache tier over another store.
mod tiered_redis_memory {
    use super::*;
    async fn make() -> (TieredStore<RedisStore, MemoryStore>, RedisServer) {
        let (redis, server) = standalone().await;
        (TieredStore::new(redis, MemoryStore::new()), server)
    }
    conformance_suite!(make, REDIS_CAPS);
}

async fn file_store() -> (FileStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileConfig::new(dir.path().join("sessions"))
        .with_durability(Durability::Sync)
        .open()
        .await
        .unwrap();
    (store, dir)
}

/// With `FileStore` durable, `cleanup` reports the durable tier's exact count; each synced
/// write costs two fsyncs, so fewer sessions (as in `conformance_file.rs`).
const OVER_FILE_CAPS: Caps = Caps {
    exact_cleanup: true,
    many_sessions: 10_000,
};

/// Redis as the shared cache in front of files.
mod tiered_redis_file {
    use super::*;
    async fn make() -> (TieredStore<RedisStore, FileStore>, (RedisServer, TempDir)) {
        let (redis, server) = standalone().await;
        let (file, dir) = file_store().await;
        (TieredStore::new(redis, file), (server, dir))
    }
    conformance_suite!(make, OVER_FILE_CAPS);
}

/// Every request pays a refused connection to the dead cache, and the cases run their
/// requests concurrently against it: fewer sessions keep this case's run time reasonable.
const DEAD_CACHE_CAPS: Caps = Caps {
    exact_cleanup: true,
    many_sessions: 2_000,
};

/// A dead Redis cache tier is invisible to the contract: the files answer everything.
mod tiered_dead_redis_file {
    use super::*;
    async fn make() -> (TieredStore<RedisStore, FileStore>, (RedisServer, TempDir)) {
        let mut server = RedisServer::start();
        let redis = RedisStore::connect(
            RedisConfig::new(server.url())
                .with_connect_timeout(Duration::from_millis(200))
                .with_response_timeout(Duration::from_millis(200)),
        )
        .await
        .expect("connect");
        server.stop();
        let (file, dir) = file_store().await;
        (TieredStore::new(redis, file), (server, dir))
    }
    conformance_suite!(make, DEAD_CACHE_CAPS);
}
