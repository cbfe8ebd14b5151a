//! [`PostgresConfig`]: where the database is, the table's name, and the pool's bounds.

use sessionkit::setters;
use std::time::Duration;

use sessionkit::store::{Error, Result};

use super::PostgresStore;
use crate::identifier;

/// The default table name.
pub const DEFAULT_TABLE: &str = "sessionkit_sessions";
/// The longest table name accepted: PostgreSQL keeps 63 bytes of an identifier, and the
/// index and channel names add a suffix of up to 11 bytes to it.
pub const MAX_TABLE_LEN: usize = 48;
/// The default bound on a pool connection's setup, and on waiting for a free connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The default bound on one operation, from asking the pool for a connection to the answer.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(5);
/// The default bound on each of the store's two sets of connections (see the
/// [module docs](super#faults)).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// How to reach PostgreSQL and which table to use; [`connect`](Self::connect) makes the store.
///
/// ```
/// use sessionkit_backends::postgres::PostgresConfig;
/// let config = PostgresConfig::new("postgres://app@db.internal/app")
///     .with_table("web_sessions")
///     .with_max_connections(32);
/// assert_eq!(config.table(), "web_sessions");
/// // Only plain identifiers are accepted as table names.
/// assert!(PostgresConfig::validate_table("sessions; DROP TABLE users").is_err());
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    pub(super) url: String,
    pub(super) table: String,
    pub(super) max_connections: u32,
    pub(super) connect_timeout: Duration,
    pub(super) op_timeout: Duration,
    pub(super) notify: bool,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("PostgresConfig")
            .field("table", &self.table)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("op_timeout", &self.op_timeout)
            .field("notify", &self.notify)
            .finish_non_exhaustive()
    }
}

impl PostgresConfig {
    /// A configuration for the database at `url` (`postgres://user:password@host:port/db`,
    /// with `?sslmode=require` or `verify-full` for TLS through rustls), the table
    /// [`DEFAULT_TABLE`], and the default bounds.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            table: DEFAULT_TABLE.to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            op_timeout: DEFAULT_OP_TIMEOUT,
            notify: true,
        }
    }

    setters! {
        /// The table name; checked by [`connect`](Self::connect) (see
        /// [`validate_table`](Self::validate_table)).
        fn with_table(table: impl Into<String>) => table = table.into();

        /// The most connections each of the store's two sets opens: the one-statement
        /// operations' and the sqlx pool's (at least 2: the invalidation listener keeps one of
        /// the pool's). See the [module docs](super#faults).
        fn with_max_connections(max: u32) => max_connections = max.max(2);

        /// The bound on opening a connection and on waiting for a free one.
        fn with_connect_timeout(timeout: Duration) => connect_timeout = timeout;

        /// The bound on one operation; past it the operation fails with
        /// [`Error::Unavailable`].
        fn with_op_timeout(timeout: Duration) => op_timeout = timeout;

        /// Whether writes announce the keys they change with `pg_notify` (default `true`). Turn
        /// it off only when no process puts a coherent cache
        /// ([`TieredStore::coherent`](sessionkit::store::TieredStore::coherent)) in front of this
        /// table: those caches would then miss other processes' changes.
        fn with_notify(notify: bool) => notify = notify;
    }

    /// The configured table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Checks a table name: 1 to [`MAX_TABLE_LEN`] ASCII letters, digits and underscores,
    /// not starting with a digit. It is written into SQL text (quoted), so nothing else is
    /// accepted.
    ///
    /// # Errors
    /// [`Error::Config`] naming what is wrong.
    pub fn validate_table(table: &str) -> Result<()> {
        if !identifier::is_plain(table, MAX_TABLE_LEN) {
            return Err(Error::Config(format!(
                "postgres: the table name must be 1 to {MAX_TABLE_LEN} ASCII letters, digits or \
                 underscores, not starting with a digit (got {} bytes)",
                table.len()
            )));
        }
        Ok(())
    }

    /// Connects (one connection is opened and checked now; the pool opens more when
    /// needed and replaces broken ones by itself). Does not create the table: see
    /// [`PostgresStore::migrate`].
    ///
    /// # Errors
    /// [`Error::Config`] for a bad table name or URL; [`Error::Unavailable`] when the server
    /// cannot be reached; [`Error::Storage`] when it refuses the connection.
    pub async fn connect(self) -> Result<PostgresStore> {
        PostgresStore::connect(self).await
    }
}
