//! Durable stores for sessionkit.
//!
//! ## Feature flags
//!
//! - `file` (default): `FileStore`, one file per session under a directory.
//! - `redis`: `RedisStore`, for standalone Redis and Redis Cluster.
//! - `sqlite`: `SqliteStore`, one SQLite database file (WAL mode, bundled libsqlite3).
//! - `postgres`: `PostgresStore` (in `postgres`), sessions in a PostgreSQL table.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "file", feature = "sqlite"))]
mod durability;
#[cfg(any(feature = "file", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "file", feature = "sqlite"))))]
pub use durability::Durability;

#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
pub mod file;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod identifier;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod listener;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod server_errors;
#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
pub use file::FileStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{OWNER_SCAN_BATCH, RedisConfig, RedisStore};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::{SqliteConfig, SqliteStore};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
