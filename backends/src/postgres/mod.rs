//! [`PostgresStore`]: sessions in a PostgreSQL table, one statement per load and per save.
//!
//! # Data layout
//!
//! One table (default [`DEFAULT_TABLE`], configurable and validated; its schema is
//! [`PostgresStore::migration_sql`], applied idempotently by [`PostgresStore::migrate`]).
//! A row is keyed by the session's [`SessionKey`] (`bytea`, the SHA-256 of the id: a dump of
//! the table holds no cookie anyone could replay) and holds either a record, a grace alias
//! (the old key of a move in its grace window) or a move tombstone (`kind` 0, 1, 2). A
//! record's field map is a JSONB object, field name → base64 of the encoded value (names
//! escaped: `%` → `%25`, U+0000 → `%00`, which JSONB cannot hold). Expiry is a `bigint` of
//! Unix milliseconds, indexed; the owner is a text column with a partial index on
//! `(owner, key)`. Expiry is decided with the application's clock, passed to every
//! statement, as the other stores do.
//!
//! # Round trips
//!
//! - **load**: one `SELECT`, a self-join that resolves a grace alias to its record.
//! - **create**: one `INSERT … ON CONFLICT (key) DO UPDATE … WHERE` the row there is expired
//!   or a tombstone: a live key answers [`Error::AlreadyExists`], with no window between a
//!   check and the insert.
//! - **save without operations** (the usual one): one `UPDATE` whose `SET` merges in the
//!   database, `fields = ((clear ? {} : fields) - removed) || set`, on the row it locks, and
//!   only if the row is a live record. Saves that touch different keys both keep their
//!   change; a save to a deleted or expired key writes nothing ([`Error::Gone`]).
//! - **save with operations** (increment, push, add, remove): a transaction: `SELECT … FOR
//!   UPDATE` of the record, the core's own [`Record::apply`] (so the operations, their
//!   errors and the limits are exactly the other stores'), then one `UPDATE` of the whole
//!   field map and `COMMIT`: three round trips. The row lock makes concurrent operations on
//!   one key serialize, so none is lost.
//! - **delete**, **rename**: one statement each (CTEs locking the rows they change).
//! - **cleanup**: `DELETE … WHERE key IN (SELECT … WHERE expires_at <= now LIMIT`
//!   [`CLEANUP_BATCH`] `FOR UPDATE SKIP LOCKED)`, repeated until a batch comes back short:
//!   never one unbounded `DELETE`, and never waiting on a row a request holds.
//! - **owned_by**: one indexed `SELECT`. It runs on one MVCC snapshot and takes no lock, so
//!   listing even 10⁵ sessions holds up no other request; every session that was a live
//!   record of the owner at the snapshot is listed under the key it had then.
//!
//! # Limits
//!
//! A change set's [`limits`](sessionkit::store::ChangeSet::limits) are enforced as by
//! [`Record::apply`]: in the transaction path by `Record::apply` itself; in the one-statement
//! save, each set value's size is checked before sending, and the merged field map's field
//! count and byte size (names plus decoded values) are computed in the `UPDATE`'s `WHERE`
//! against the row it locked, refusing growth past a bound exactly as `Record::apply` does
//! (skipped when the merged map's stored size alone proves it within both bounds, which
//! with the default limits is every map under 80 000 bytes). When that statement writes
//! nothing (a limit, or the key gone), the save is redone in the transaction path, which
//! tells the two apart and returns the same error `Record::apply` would.
//!
//! # Faults
//!
//! Every clone shares two sets of connections, each of at most
//! [`max_connections`](PostgresConfig::with_max_connections): the one-statement operations
//! (load, create, save without operations, delete, move) lease theirs from a minimal pool of
//! the store's own, which sends nothing but the statement (sqlx's pool pings a connection
//! when it takes it back, and by default when it hands it out: with those, an operation of
//! one statement took three round trips); everything else (transactions, listings, cleanup,
//! the listener, [`pool`](PostgresStore::pool)'s users) uses a sqlx pool. Either pings a
//! connection that sat idle for a second before using it again, and closes one whose
//! operation failed or was cancelled. When PostgreSQL cannot be reached, is shutting down, or
//! does not answer within the operation timeout, operations fail with
//! [`Error::Unavailable`]; broken connections are replaced by new ones, so the store recovers
//! by itself when the server is back (a connection that broke while in steady use fails the
//! one operation that finds it broken).
//!
//! # Invalidations
//!
//! Every write announces the keys it changed with `pg_notify('sessionkit_<table>', key hex)`
//! inside the same statement, delivered when it commits. `PostgresStore` is an
//! [`InvalidationSource`]: a listener task (one per store and its clones, started by the first
//! subscription) holds one pool connection in `LISTEN` and feeds the keys to
//! [`TieredStore::coherent`](sessionkit::store::TieredStore::coherent). It reports the channel
//! lost whenever that connection fails, reconnects with a backoff, and reports it restored
//! once `LISTEN` is confirmed again, so caches flush over every outage.

mod config;
mod errors;
mod fields;
mod invalidation;
mod lanes;
mod scan;
mod sql;
mod writes;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_OP_TIMEOUT, DEFAULT_TABLE,
    MAX_TABLE_LEN, PostgresConfig,
};

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sessionkit::SessionKey;
use sessionkit::store::{
    ChangeSet, Error, Grace, InvalidationFeed, InvalidationSource, Loaded, MOVE_TOMBSTONE, Record,
    Removed, Result, Store,
};
use sqlx::Connection as _;
use sqlx::Row as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::listener::Channel;

use errors::{sql, timed};
use lanes::{Lanes, PING_IDLE};
use sql::{ALIAS, RECORD, Sql, TOMBSTONE};
use writes::{key_of, ms, stored_record, time};

/// How many expired rows one cleanup statement removes.
pub const CLEANUP_BATCH: i64 = 1_000;

/// Sessions in PostgreSQL: a durable store every application server can share, for teams that
/// run a database and no Redis. See the [module docs](self) for the layout, the statements
/// each operation runs, and how it fails.
///
/// ```no_run
/// use sessionkit::store::{MemoryStore, TieredStore};
/// use sessionkit_backends::postgres::{PostgresConfig, PostgresStore};
/// # async fn run() -> sessionkit::Result<()> {
/// let store = PostgresConfig::new("postgres://app@127.0.0.1/app").connect().await?;
/// store.migrate().await?; // CREATE TABLE / INDEX IF NOT EXISTS
/// // A per-process cache in front, kept coherent by LISTEN/NOTIFY.
/// let tiered = TieredStore::coherent(MemoryStore::bounded(10_000), store)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    /// The connections of the one-statement operations (see `lanes.rs`).
    lanes: Arc<Lanes>,
    /// Connections for everything else: transactions, listings, cleanup, the listener, and
    /// callers that share it (sqlx replaces broken ones by itself).
    pool: PgPool,
    /// The statements of the store's table, built once.
    sql: Arc<Sql>,
    /// The bound on one operation, waiting for a connection included.
    op_timeout: Duration,
    /// The invalidation channel (see [`InvalidationSource`]); its listener stops with the
    /// last clone.
    channel: Arc<Channel<invalidation::Source>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("channel", &self.sql.channel)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects with the defaults of [`PostgresConfig::new`].
    ///
    /// # Errors
    /// As [`PostgresConfig::connect`].
    pub async fn open(url: &str) -> Result<Self> {
        PostgresConfig::new(url).connect().await
    }

    async fn connect(config: PostgresConfig) -> Result<Self> {
        PostgresConfig::validate_table(&config.table)?;
        let options: PgConnectOptions = config
            .url
            .parse()
            .map_err(|e| Error::Config(format!("postgres: a bad connection URL: {e}")))?;
        let lanes = Arc::new(Lanes::new(
            options.clone(),
            config.max_connections,
            config.connect_timeout,
        ));
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.connect_timeout)
            // sqlx pings every connection it hands out by default: one more round trip per
            // operation. Only a connection that sat idle for a while is checked; one that
            // broke while in use fails its operation (`Unavailable`) and is closed when it
            // goes back to the pool.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < PING_IDLE {
                        return Ok(true);
                    }
                    let alive = conn.ping().await.is_ok();
                    if !alive {
                        tracing::debug!(
                            target: "sessionkit",
                            "postgres: an idle pool connection is gone; opening another"
                        );
                    }
                    Ok(alive)
                })
            })
            .connect_with(options)
            .await
            .map_err(sql("connect"))?;
        let sql = Arc::new(Sql::new(&config.table, config.notify));
        let channel = Arc::new(Channel::new(invalidation::Source {
            pool: pool.clone(),
            name: sql.channel.clone(),
        }));
        Ok(PostgresStore {
            lanes,
            pool,
            sql,
            op_timeout: config.op_timeout,
            channel,
        })
    }

    /// The SQL that creates the table and its indexes, idempotent (`IF NOT EXISTS`), for
    /// those who run migrations with their own tool.
    ///
    /// ```
    /// let sql = sessionkit_backends::postgres::PostgresStore::migration_sql("sessions")?;
    /// assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "sessions""#));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] for a table name [`PostgresConfig::validate_table`] refuses.
    pub fn migration_sql(table: &str) -> Result<String> {
        PostgresConfig::validate_table(table)?;
        Ok(sql::migration(table))
    }

    /// Creates the table and its indexes if they do not exist. Safe to run from every
    /// process at start: concurrent runs take turns on a transaction-scoped advisory lock.
    ///
    /// # Errors
    /// [`Error::Unavailable`] or [`Error::Storage`] from the database.
    pub async fn migrate(&self) -> Result<()> {
        timed("migrate", self.op_timeout, async {
            let mut tx = self.pool.begin().await.map_err(sql("migrate"))?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(&self.sql.channel)
                .execute(&mut *tx)
                .await
                .map_err(sql("migrate"))?;
            sqlx::raw_sql(&self.sql.migration)
                .execute(&mut *tx)
                .await
                .map_err(sql("migrate"))?;
            tx.commit().await.map_err(sql("migrate"))
        })
        .await
    }

    /// The connection pool, for callers that share it (health checks, their own queries).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// PostgreSQL announces every change to a session key with `NOTIFY`: see the
/// [module docs](self#invalidations).
impl InvalidationSource for PostgresStore {
    fn invalidations(&self) -> InvalidationFeed {
        self.channel.subscribe()
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        let created: i64 = timed("create", self.op_timeout, async {
            let mut lease = self.lanes.lease().await.map_err(sql("create"))?;
            let created = sqlx::query_scalar(&self.sql.create)
                .bind(key.as_bytes().as_slice())
                .bind(ms(record.expires_at))
                .bind(ms(SystemTime::now()))
                .bind(fields::encode(&record.fields))
                .bind(record.owner.as_deref())
                .fetch_one(lease.conn())
                .await
                .map_err(sql("create"))?;
            lease.done();
            Ok(created)
        })
        .await?;
        if created > 0 {
            Ok(())
        } else {
            Err(Error::AlreadyExists)
        }
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        let row = self.row_at_now("load", &self.sql.load, key).await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let kind: i16 = row.try_get(0).map_err(sql("load"))?;
        match kind {
            RECORD => {
                let text: String = row.try_get(2).map_err(sql("load"))?;
                let expires: i64 = row.try_get(1).map_err(sql("load"))?;
                let owner: Option<String> = row.try_get(3).map_err(sql("load"))?;
                Ok(Some(fields::loaded(
                    fields::decode(&text)?,
                    time(expires),
                    owner,
                    None,
                )))
            }
            ALIAS => {
                let target: Option<Vec<u8>> = row.try_get(4).map_err(sql("load"))?;
                let token: Option<Vec<u8>> = row.try_get(5).map_err(sql("load"))?;
                let resolved: Option<String> = row.try_get(6).map_err(sql("load"))?;
                let (Some(target), Some(_)) = (target, resolved) else {
                    // The alias's record is gone or expired: the key resolves to nothing.
                    return Ok(None);
                };
                let record = stored_record(&row, 6)?;
                Ok(Some(fields::loaded(
                    record.fields,
                    record.expires_at,
                    record.owner,
                    Some((key_of(&target)?, token.unwrap_or_default())),
                )))
            }
            other => Err(Error::corrupt_message(format!(
                "postgres: unknown entry kind {other}"
            ))),
        }
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        timed("save", self.op_timeout, async {
            let has_ops = changes.ops.values().any(|ops| !ops.is_empty());
            if !has_ops {
                if let Some(limits) = &changes.limits {
                    fields::check_value_sizes(limits, changes)?;
                }
                if self.apply_merged(key, changes).await? {
                    return Ok(());
                }
            }
            // Operations, or a merge that wrote nothing: the transaction tells "gone" from
            // "over a limit" exactly as Record::apply does.
            self.apply_locked(key, changes).await
        })
        .await
    }

    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        let row = self.row_at_now("delete", &self.sql.delete, key).await?;
        let Some(row) = row else {
            return Ok(Removed::Nothing);
        };
        let kind: i16 = row.try_get(0).map_err(sql("delete"))?;
        let target: Option<Vec<u8>> = row.try_get(1).map_err(sql("delete"))?;
        let live: bool = row.try_get(2).map_err(sql("delete"))?;
        Ok(match (live, kind, target) {
            (false, _, _) => Removed::Nothing,
            (true, RECORD, _) => Removed::Record,
            (true, ALIAS | TOMBSTONE, Some(to)) => Removed::Alias { to: key_of(&to)? },
            _ => {
                return Err(Error::corrupt_message(
                    "postgres: an alias without a target",
                ));
            }
        })
    }

    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        let now = SystemTime::now();
        let (kind, until, token) = match grace {
            Some(g) => (ALIAS, g.until, Some(g.token.as_slice())),
            None => (
                TOMBSTONE,
                now.checked_add(MOVE_TOMBSTONE).unwrap_or(now),
                None,
            ),
        };
        let row = timed("move", self.op_timeout, async {
            let mut lease = self.lanes.lease().await.map_err(sql("move"))?;
            let row = sqlx::query(&self.sql.rename)
                .bind(from.as_bytes().as_slice())
                .bind(to.as_bytes().as_slice())
                .bind(ms(now))
                .bind(kind)
                .bind(token)
                .bind(ms(until))
                .fetch_one(lease.conn())
                .await
                .map_err(sql("move"))?;
            lease.done();
            Ok(row)
        })
        .await?;
        let found: i64 = row.try_get(0).map_err(sql("move"))?;
        let inserted: i64 = row.try_get(1).map_err(sql("move"))?;
        match (found, inserted) {
            (0, _) => Err(Error::Gone),
            (_, 0) => Err(Error::AlreadyExists),
            _ => Ok(()),
        }
    }

    async fn cleanup(&self) -> Result<u64> {
        let mut removed = 0;
        loop {
            let now = ms(SystemTime::now());
            let done = timed("cleanup", self.op_timeout, async {
                sqlx::query(&self.sql.cleanup)
                    .bind(now)
                    .bind(CLEANUP_BATCH)
                    .execute(&self.pool)
                    .await
                    .map_err(sql("cleanup"))
            })
            .await?
            .rows_affected();
            removed += done;
            if done < u64::try_from(CLEANUP_BATCH).unwrap_or(u64::MAX) {
                return Ok(removed);
            }
        }
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        let keys: Vec<Vec<u8>> = timed("owned_by", self.op_timeout, async {
            sqlx::query_scalar(&self.sql.owned_by)
                .bind(owner)
                .bind(ms(SystemTime::now()))
                .fetch_all(&self.pool)
                .await
                .map_err(sql("owned_by"))
        })
        .await?;
        keys.iter().map(|k| key_of(k)).collect()
    }
}
