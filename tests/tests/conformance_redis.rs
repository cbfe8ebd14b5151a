//! The conformance suite on `RedisStore`: alone, against a three-master Redis Cluster, and as
//! either tier of a `TieredStore`. Every test starts its own redis-server(s) on free loopback
//! ports (see `sessionkit_tests::redis_server`); none touches the shared Redis on 6379.

use sessionkit::store::{MemoryStore, TieredStore};
use sessionkit_backends::{RedisConfig, RedisStore};
use sessionkit_tests::conformance::Caps;
use sessionkit_tests::conformance_suite;
use sessionkit_tests::redis_server::{RedisCluster, RedisServer};

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
