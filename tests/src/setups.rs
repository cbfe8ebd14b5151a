//! Every store setup the shared suites run on, declared once: each is a module with a
//! factory `make`, an `async fn() -> (store, guard)` whose guard (a temporary directory, a
//! redis-server) lives as long as the test, and the setup's capabilities `CAPS`.
//!
//! The conformance suite (`tests/tests/conformance_*.rs`) and the lifecycle suite
//! (`tests/tests/test_lifecycle.rs`) run on every setup listed here:
//!
//! ```text
//! mod memory {
//!     sessionkit_tests::conformance_suite!(setups::memory::make, setups::memory::CAPS);
//! }
//! ```
//!
//! Capabilities say how a setup differs from the strictest reading of the contract, and they
//! are true of the setup: a setup whose `cleanup` counts exactly (its durable tier's count
//! is exact) says so, so the conformance suite checks the exact count there.

#![allow(
    clippy::expect_used,
    reason = "test support: a setup that cannot be built fails the test that asked for it"
)]

use std::sync::Arc;
use std::time::Duration;

use sessionkit::store::{MemoryStore, MigratingStore, Store, TieredStore};
use sessionkit_backends::file::{Durability, FileConfig};
use sessionkit_backends::postgres::PostgresStore;
use sessionkit_backends::{FileStore, RedisConfig, RedisStore, SqliteConfig, SqliteStore};
use tempfile::TempDir;

use crate::conformance::Caps;
use crate::postgres_server::PostgresServer;
use crate::probe::Probe;
use crate::redis_server::{RedisCluster, RedisServer};

/// The unbounded `MemoryStore` keeps expired entries until they are touched or cleaned up, and
/// counts exactly. So does every tiered store whose durable tier does: `TieredStore::cleanup`
/// reports the durable tier's count.
pub const EXACT: Caps = Caps {
    exact_cleanup: true,
    many_sessions: 100_000,
};

/// The bounded `MemoryStore` (moka) may evict expired entries before `cleanup` finds them,
/// and Redis expires keys by itself, so `cleanup` counts fewer than expired, down to none.
pub const SELF_EXPIRING: Caps = Caps {
    exact_cleanup: false,
    many_sessions: 100_000,
};

/// Each synced file write costs two fsyncs (about 10 ms here), so the synced setups write 10⁴
/// sessions in the "many sessions" case.
pub const FILE_SYNCED: Caps = Caps {
    exact_cleanup: true,
    many_sessions: 10_000,
};

/// Unsynced, 10⁵ sessions pass too but took two minutes in a debug build on a shared
/// two-core machine; 2·10⁴ already spread over about 17 000 of the 65 536 shard directories.
pub const FILE_UNSYNCED: Caps = Caps {
    exact_cleanup: true,
    many_sessions: 20_000,
};

async fn file_store(durability: Durability) -> (FileStore, TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = FileConfig::new(dir.path().join("sessions"))
        .with_durability(durability)
        .open()
        .await
        .expect("the file store opens");
    (store, dir)
}

/// A synced SQLite commit costs one fsync of the WAL, so the SQLite setups write 10⁴ sessions
/// in the "many sessions" case, as the synced file setups do.
pub const SQLITE_SYNCED: Caps = Caps {
    exact_cleanup: true,
    many_sessions: 10_000,
};

/// `SqliteStore` in `sessions.sqlite3` of a fresh temporary directory.
pub async fn sqlite_store(durability: Durability) -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteConfig::new(dir.path().join("sessions.sqlite3"))
        .with_durability(durability)
        .open()
        .await
        .expect("the sqlite store opens");
    (store, dir)
}

async fn redis_store() -> (RedisStore, RedisServer) {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url())
        .await
        .expect("connect to the test redis-server");
    (store, server)
}

/// `MemoryStore::new`: unbounded, exact.
pub mod memory {
    use super::*;
    /// The setup's capabilities.
    pub const CAPS: Caps = EXACT;
    /// Makes the store.
    pub async fn make() -> (MemoryStore, ()) {
        (MemoryStore::new(), ())
    }
}

/// `MemoryStore::bounded`: bounded, evicting.
pub mod memory_bounded {
    use super::*;
    /// The setup's capabilities.
    pub const CAPS: Caps = SELF_EXPIRING;
    /// Makes the store; the bound is far above what any case holds at once, so eviction
    /// must not lose live sessions here.
    pub async fn make() -> (MemoryStore, ()) {
        (MemoryStore::bounded(1_000_000), ())
    }
}

/// A bounded memory cache over an unbounded memory store.
pub mod tiered_memory_memory {
    use super::*;
    /// The durable tier counts exactly.
    pub const CAPS: Caps = EXACT;
    /// Makes the store.
    pub async fn make() -> (TieredStore<MemoryStore, MemoryStore>, ()) {
        (
            TieredStore::new(MemoryStore::bounded(10_000), MemoryStore::new()),
            (),
        )
    }
}

/// A `MemoryStore` behind `Box<dyn Store>`.
pub mod boxed_dyn {
    use super::*;
    /// The unbounded memory store counts exactly.
    pub const CAPS: Caps = EXACT;
    /// Makes the store.
    pub async fn make() -> (Box<dyn Store>, ()) {
        (Box::new(MemoryStore::new()), ())
    }
}

/// A tiered store of two unbounded memory stores behind `Arc<dyn Store>`.
pub mod arc_dyn_tiered {
    use super::*;
    /// The durable tier counts exactly.
    pub const CAPS: Caps = EXACT;
    /// Makes the store.
    pub async fn make() -> (Arc<dyn Store>, ()) {
        (
            Arc::new(TieredStore::new(MemoryStore::new(), MemoryStore::new())),
            (),
        )
    }
}

/// A dead cache tier (every operation fails) is invisible to the contract: the durable tier
/// answers everything.
pub mod tiered_dead_cache {
    use super::*;
    /// The durable tier counts exactly.
    pub const CAPS: Caps = EXACT;
    /// Makes the store.
    pub async fn make() -> (TieredStore<Probe<MemoryStore>, MemoryStore>, ()) {
        (
            TieredStore::new(Probe::dead(MemoryStore::new()), MemoryStore::new()),
            (),
        )
    }
}

/// Tiers nest: a tiered store is a store, so it can be another tier's durable store.
pub mod tiered_nested {
    use super::*;
    /// The store type.
    pub type Nested = TieredStore<MemoryStore, TieredStore<MemoryStore, MemoryStore>>;
    /// The innermost durable tier counts exactly.
    pub const CAPS: Caps = EXACT;
    /// Makes the store.
    pub async fn make() -> (Nested, ()) {
        (
            TieredStore::new(
                MemoryStore::bounded(1_000),
                TieredStore::new(MemoryStore::new(), MemoryStore::new()),
            ),
            (),
        )
    }
}

/// `FileStore`, every write synced.
pub mod file {
    use super::*;
    /// The setup's capabilities.
    pub const CAPS: Caps = FILE_SYNCED;
    /// Makes the store in a fresh temporary directory.
    pub async fn make() -> (FileStore, TempDir) {
        file_store(Durability::Sync).await
    }
}

/// `FileStore` without fsync.
pub mod file_nosync {
    use super::*;
    /// The setup's capabilities.
    pub const CAPS: Caps = FILE_UNSYNCED;
    /// Makes the store in a fresh temporary directory.
    pub async fn make() -> (FileStore, TempDir) {
        file_store(Durability::NoSync).await
    }
}

/// A bounded memory cache over a synced `FileStore`.
pub mod tiered_memory_file {
    use super::*;
    /// Cleanup reports the durable file tier's count, which is exact.
    pub const CAPS: Caps = FILE_SYNCED;
    /// Makes the store in a fresh temporary directory.
    pub async fn make() -> (TieredStore<MemoryStore, FileStore>, TempDir) {
        let (file, dir) = file_store(Durability::Sync).await;
        (TieredStore::new(MemoryStore::bounded(10_000), file), dir)
    }
}

/// `SqliteStore`, every commit synced (`synchronous = FULL`).
pub mod sqlite {
    use super::*;
    /// The setup's capabilities: cleanup deletes expired rows and counts them exactly.
    pub const CAPS: Caps = SQLITE_SYNCED;
    /// Makes the store in a fresh temporary directory.
    pub async fn make() -> (SqliteStore, TempDir) {
        sqlite_store(Durability::Sync).await
    }
}

/// A bounded memory cache over a synced `SqliteStore` (bounded staleness: SQLite offers no
/// invalidation channel, so the form is `TieredStore::new`, as for files).
pub mod tiered_memory_sqlite {
    use super::*;
    /// Cleanup reports the durable SQLite tier's count, which is exact.
    pub const CAPS: Caps = SQLITE_SYNCED;
    /// Makes the store in a fresh temporary directory.
    pub async fn make() -> (TieredStore<MemoryStore, SqliteStore>, TempDir) {
        let (sqlite, dir) = sqlite_store(Durability::Sync).await;
        (TieredStore::new(MemoryStore::bounded(10_000), sqlite), dir)
    }
}

/// `RedisStore` on its own redis-server (never the shared one on 6379).
pub mod redis {
    use super::*;
    /// Redis expires keys by itself: `cleanup` has nothing left to remove.
    pub const CAPS: Caps = SELF_EXPIRING;
    /// Starts a redis-server and connects.
    pub async fn make() -> (RedisStore, RedisServer) {
        redis_store().await
    }
}

/// `RedisStore` against a three-master Redis Cluster.
pub mod redis_cluster {
    use super::*;
    /// A cluster spreads the same load over three local processes on a two-core machine:
    /// fewer sessions keep the "many sessions" case's run time in line with the others.
    pub const CAPS: Caps = Caps {
        exact_cleanup: false,
        many_sessions: 20_000,
    };
    /// Starts the cluster and connects.
    pub async fn make() -> (RedisStore, RedisCluster) {
        let cluster = RedisCluster::start();
        let store = RedisStore::connect(RedisConfig::cluster(cluster.urls()))
            .await
            .expect("connect to the cluster");
        assert!(store.is_cluster());
        (store, cluster)
    }
}

/// The usual production shape: a per-process cache in front of Redis.
pub mod tiered_memory_redis {
    use super::*;
    /// Cleanup reports the durable Redis tier's count.
    pub const CAPS: Caps = SELF_EXPIRING;
    /// Starts a redis-server and connects.
    pub async fn make() -> (TieredStore<MemoryStore, RedisStore>, RedisServer) {
        let (redis, server) = redis_store().await;
        (
            TieredStore::new(MemoryStore::bounded(10_000), redis),
            server,
        )
    }
}

/// Redis as the shared cache tier over an unbounded memory store.
pub mod tiered_redis_memory {
    use super::*;
    /// Cleanup reports the durable memory tier's count, which is exact.
    pub const CAPS: Caps = EXACT;
    /// Starts a redis-server and connects.
    pub async fn make() -> (TieredStore<RedisStore, MemoryStore>, RedisServer) {
        let (redis, server) = redis_store().await;
        (TieredStore::new(redis, MemoryStore::new()), server)
    }
}

/// Redis as the shared cache in front of synced files.
pub mod tiered_redis_file {
    use super::*;
    /// Cleanup reports the durable file tier's exact count; synced writes, so fewer sessions.
    pub const CAPS: Caps = FILE_SYNCED;
    /// Starts a redis-server, connects, and opens the files.
    pub async fn make() -> (TieredStore<RedisStore, FileStore>, (RedisServer, TempDir)) {
        let (redis, server) = redis_store().await;
        let (file, dir) = file_store(Durability::Sync).await;
        (TieredStore::new(redis, file), (server, dir))
    }
}

/// A dead Redis cache tier (its server stopped after the connection) over synced files: the
/// files answer everything.
pub mod tiered_dead_redis_file {
    use super::*;
    /// Every request pays a refused connection to the dead cache, and the conformance cases
    /// run their requests concurrently against it: fewer sessions keep the run time
    /// reasonable.
    pub const CAPS: Caps = Caps {
        exact_cleanup: true,
        many_sessions: 2_000,
    };
    /// Starts a redis-server, connects, stops the server, and opens the files.
    pub async fn make() -> (TieredStore<RedisStore, FileStore>, (RedisServer, TempDir)) {
        let mut server = RedisServer::start();
        let redis = RedisStore::connect(
            RedisConfig::new(server.url())
                .with_connect_timeout(Duration::from_millis(200))
                .with_response_timeout(Duration::from_millis(200)),
        )
        .await
        .expect("connect");
        server.stop();
        let (file, dir) = file_store(Durability::Sync).await;
        (TieredStore::new(redis, file), (server, dir))
    }
}

async fn postgres_store() -> (PostgresStore, PostgresServer) {
    let server = PostgresServer::start();
    let store = PostgresStore::open(&server.url())
        .await
        .expect("connect to the test PostgreSQL");
    store.migrate().await.expect("create the table");
    (store, server)
}

/// Each PostgreSQL save is a round trip to a server on this two-core machine (and the
/// conformance cases run their requests concurrently): 5·10³ sessions keep the "many
/// sessions" case in line with the others. Cleanup deletes exactly what expired.
pub const POSTGRES: Caps = Caps {
    exact_cleanup: true,
    many_sessions: 5_000,
};

/// `PostgresStore` on its own PostgreSQL server (never the shared one on 5432).
pub mod postgres {
    use super::*;
    /// The setup's capabilities.
    pub const CAPS: Caps = POSTGRES;
    /// Starts a server, connects and migrates.
    pub async fn make() -> (PostgresStore, PostgresServer) {
        postgres_store().await
    }
}

/// A per-process memory cache in front of PostgreSQL, kept coherent by LISTEN/NOTIFY.
pub mod tiered_memory_postgres {
    use super::*;
    /// Cleanup reports the durable tier's exact count.
    pub const CAPS: Caps = POSTGRES;
    /// Starts a server, connects, migrates, and subscribes the cache to the channel.
    pub async fn make() -> (TieredStore<MemoryStore, PostgresStore>, PostgresServer) {
        let (store, server) = postgres_store().await;
        (
            TieredStore::coherent(MemoryStore::bounded(10_000), store).expect("a coherent tier"),
            server,
        )
    }
}

/// `MigratingStore` from one memory store to another (both unbounded, exact).
pub mod migrating_memory_memory {
    use super::*;
    /// Both stores count exactly.
    pub const CAPS: Caps = EXACT;
    /// Makes the store.
    pub async fn make() -> (MigratingStore<MemoryStore, MemoryStore>, ()) {
        (
            MigratingStore::new(MemoryStore::new(), MemoryStore::new()),
            (),
        )
    }
}

/// `MigratingStore` from files to Redis (its own redis-server).
pub mod migrating_redis_file {
    use super::*;
    /// Cleanup counts the files' expired entries; Redis expires its own.
    pub const CAPS: Caps = SELF_EXPIRING;
    /// Starts a redis-server, opens a temporary store directory, and connects.
    pub async fn make() -> (
        MigratingStore<RedisStore, FileStore>,
        (RedisServer, TempDir),
    ) {
        let (redis, server) = redis_store().await;
        let (file, dir) = file_store(Durability::Sync).await;
        (MigratingStore::new(redis, file), (server, dir))
    }
}
