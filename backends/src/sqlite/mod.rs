//! [`SqliteStore`]: sessions in one SQLite database file, crash-safe, WAL mode.

mod config;
mod errors;
mod rows;
mod scan;
mod schema;
mod writes;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use sessionkit::SessionKey;
use sessionkit::store::{
    ChangeSet, Entry, Error, Grace, Loaded, MAX_ALIAS_HOPS, OWNER_BATCH, Record, Removed, Result,
    Store,
};
use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

pub use config::{
    DEFAULT_BUSY_TIMEOUT, DEFAULT_CLEANUP_BATCH, DEFAULT_READERS, DEFAULT_TABLE, SqliteConfig,
};
use errors::db_error;
use rows::{decode, key_of, live_record, loaded, millis};
use schema::{KIND_RECORD, Sql};

use crate::Durability;

/// Sessions in one SQLite database file: the embedded durable tier, alone or as
/// `TieredStore<MemoryStore, SqliteStore>`.
///
/// # Data layout
///
/// One table (default [`DEFAULT_TABLE`], see [`SqliteConfig::with_table`]), one row per key:
///
/// ```text
/// key         BLOB PRIMARY KEY   the SessionKey: SHA-256 of the id, never the id
/// kind        INTEGER            0 record, 1 grace alias, 2 tombstone of a move
/// expires_at  INTEGER            milliseconds since the epoch (index: batched cleanup)
/// owner       TEXT               owner tag (index on (owner, key): owned_by)
/// moved_to    BLOB               an alias's or tombstone's target key
/// entry       BLOB               sessionkit's Entry::encode(): the whole record or forward
/// ```
///
/// A record is one blob, so a load is one read and a save one read and one write, inside one
/// transaction. A load through a grace alias reads the alias and its target in the same
/// statement.
///
/// # Transactions, concurrency and durability
///
/// The database runs in WAL mode: readers never wait for the writer. Every read-modify-write
/// (`apply`, `delete`, `rename`) is one `BEGIN IMMEDIATE` transaction that reads the row,
/// merges with [`Record::apply`] (the same code as every blob store, operations and limits
/// included) and writes it back, so concurrent saves of different keys of one session all
/// survive and a save racing a logout never brings it back. `create` is one conditional
/// upsert. Writes of this process queue for one write connection; another process sharing
/// the file waits for SQLite's lock up to the busy timeout ([`SqliteConfig::with_busy_timeout`]),
/// then gets [`Error::Unavailable`]. Loads and owner listings run on a few read connections.
///
/// [`Durability::Sync`] (the default) is `synchronous = FULL`: each commit `fsync`s the WAL,
/// and a save that returned survives a power loss. [`Durability::NoSync`] is
/// `synchronous = NORMAL`: the WAL is synced at checkpoints only. Either way a process killed
/// at any instant leaves every session at its old or new version (SQLite's journal).
///
/// # Errors
///
/// A row that does not decode is logged and reported by `load` as [`Error::Corrupt`] (the
/// manager treats it as no session); `apply` and `rename` treat it as no session
/// ([`Error::Gone`]) and `create` will not overwrite it ([`Error::AlreadyExists`]) while its
/// expiry column says it is live; `delete` and `cleanup` remove it. A damaged database file
/// is [`Error::Corrupt`], a lock held past the busy timeout [`Error::Unavailable`], other
/// SQLite failures (disk full, read-only, permissions) [`Error::Storage`].
///
/// ```
/// use sessionkit::store::{MemoryStore, Record, Store, TieredStore};
/// use sessionkit::SessionId;
/// use sessionkit_backends::SqliteStore;
/// use std::time::{Duration, SystemTime};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// let sqlite = SqliteStore::open(dir.path().join("sessions.sqlite3")).await?;
/// let store = TieredStore::new(MemoryStore::bounded(10_000), sqlite);
/// let key = SessionId::generate()?.key();
/// store.create(&key, &Record::new(SystemTime::now() + Duration::from_secs(60))).await?;
/// assert!(store.durable().load(&key).await?.is_some());
/// # Ok::<(), sessionkit::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// One connection: this process's writes queue here instead of spinning on SQLite's
    /// busy handler.
    write: SqlitePool,
    read: SqlitePool,
    sql: Sql,
    durability: Durability,
    cleanup_batch: u32,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file `path` with the default options. See
    /// [`SqliteConfig`] for the others.
    ///
    /// # Errors
    /// As [`SqliteConfig::open`].
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        SqliteConfig::new(path).open().await
    }

    pub(crate) async fn open_with(config: SqliteConfig) -> Result<Self> {
        create_private(&config.path)?;
        let options = SqliteConnectOptions::new()
            .filename(&config.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match config.durability {
                Durability::Sync => SqliteSynchronous::Full,
                Durability::NoSync => SqliteSynchronous::Normal,
            })
            .busy_timeout(config.busy_timeout);
        // A queued write waits for the write connection as long as it would wait for the lock.
        let acquire = config.busy_timeout.max(std::time::Duration::from_secs(1));
        // No ping before handing out a connection: a local file has no link to lose, and the
        // ping would be one more round trip to the connection's worker thread per operation.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(acquire)
            .connect_with(options.clone())
            .await
            .map_err(|e| db_error("opening the database", e))?;
        let read = SqlitePoolOptions::new()
            .max_connections(config.readers)
            .test_before_acquire(false)
            .acquire_timeout(acquire)
            .connect_with(options)
            .await
            .map_err(|e| db_error("opening the database", e))?;
        let store = SqliteStore {
            inner: Arc::new(Inner {
                write,
                read,
                sql: Sql::new(&config.table),
                durability: config.durability,
                cleanup_batch: config.cleanup_batch,
            }),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Creates the table and its indexes if they are missing. Idempotent (every statement is
    /// `IF NOT EXISTS`), and run by [`open`](Self::open); call it again after dropping the
    /// table by hand.
    ///
    /// # Errors
    /// As [`SqliteConfig::open`].
    pub async fn migrate(&self) -> Result<()> {
        let doing = "creating the session table";
        let mut tx = self
            .inner
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| db_error(doing, e))?;
        sqlx::raw_sql(&self.inner.sql.migrate)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error(doing, e))?;
        tx.commit().await.map_err(|e| db_error(doing, e))
    }

    /// The SQL [`migrate`](Self::migrate) runs, for a deployment that manages its schema
    /// itself.
    ///
    /// # Errors
    /// [`Error::Config`] for a table name that is not a plain identifier.
    pub fn migration_sql(table: &str) -> Result<String> {
        config::check_table_name(table)?;
        Ok(Sql::new(table).migrate)
    }

    /// The durability setting the store was opened with.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Closes both connection pools, waiting for the connections to finish what they run.
    pub async fn close(&self) {
        self.inner.write.close().await;
        self.inner.read.close().await;
    }

    /// Lists one page of the owner's index after `after`, in key order: the live records, and
    /// the sessions that rows moved away from it lead to.
    async fn owner_page(
        &self,
        owner: &str,
        after: &[u8],
    ) -> Result<(Vec<SessionKey>, Option<Vec<u8>>)> {
        let doing = "listing an owner's sessions";
        let rows = sqlx::query(&self.inner.sql.owner_page)
            .bind(owner)
            .bind(after)
            .bind(i64::try_from(OWNER_BATCH).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.read)
            .await
            .map_err(|e| db_error(doing, e))?;
        let now = millis(SystemTime::now());
        let last = match rows.last() {
            Some(row) if rows.len() >= OWNER_BATCH => Some(
                row.try_get::<Vec<u8>, _>(0)
                    .map_err(|e| db_error(doing, e))?,
            ),
            _ => None,
        };
        let mut keys = Vec::new();
        for row in rows {
            let key: Vec<u8> = row.try_get(0).map_err(|e| db_error(doing, e))?;
            let kind: i64 = row.try_get(1).map_err(|e| db_error(doing, e))?;
            let expires_at: i64 = row.try_get(2).map_err(|e| db_error(doing, e))?;
            let moved_to: Option<Vec<u8>> = row.try_get(3).map_err(|e| db_error(doing, e))?;
            if expires_at <= now {
                continue;
            }
            if kind == KIND_RECORD {
                keys.push(key_of(&key)?);
            } else if let Some(to) = moved_to {
                // The session moved since the listing began, possibly to a key the listing
                // already passed: follow it.
                if let Some(target) = self.follow_moves(key_of(&to)?, owner, now).await? {
                    keys.push(target);
                }
            }
        }
        Ok((keys, last))
    }

    /// Runs the read-only `statement` bound to `key` on a read connection; its row, if any.
    async fn read_row(
        &self,
        doing: &'static str,
        statement: &str,
        key: &SessionKey,
    ) -> Result<Option<SqliteRow>> {
        sqlx::query(statement)
            .bind(key.as_bytes().as_slice())
            .fetch_optional(&self.inner.read)
            .await
            .map_err(|e| db_error(doing, e))
    }

    /// The key of the live record of `owner` that a move to `to` led to, following at most
    /// [`MAX_ALIAS_HOPS`] further moves.
    async fn follow_moves(
        &self,
        mut to: SessionKey,
        owner: &str,
        now: i64,
    ) -> Result<Option<SessionKey>> {
        let doing = "following a moved session";
        for _ in 0..MAX_ALIAS_HOPS {
            let Some(row) = self.read_row(doing, &self.inner.sql.hop, &to).await? else {
                return Ok(None);
            };
            let kind: i64 = row.try_get(0).map_err(|e| db_error(doing, e))?;
            let expires_at: i64 = row.try_get(1).map_err(|e| db_error(doing, e))?;
            let row_owner: Option<String> = row.try_get(2).map_err(|e| db_error(doing, e))?;
            let moved_to: Option<Vec<u8>> = row.try_get(3).map_err(|e| db_error(doing, e))?;
            match (kind, moved_to) {
                (KIND_RECORD, _) => {
                    let mine = expires_at > now && row_owner.as_deref() == Some(owner);
                    return Ok(mine.then_some(to));
                }
                (_, Some(next)) => to = key_of(&next)?,
                (_, None) => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// Creates the database file `0600` if it does not exist yet, so that session data is never
/// readable by other local users (SQLite gives its `-wal` and `-shm` files the database
/// file's permissions).
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop).map_err(|e| {
        Error::storage(
            format!(
                "sqlite store: cannot create the database file {}",
                path.display()
            ),
            e,
        )
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        self.create_record(key, record).await
    }

    /// One statement: the row and, when it is a grace alias, the row it points to.
    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        let doing = "loading a session";
        let Some(row) = self.read_row(doing, &self.inner.sql.load, key).await? else {
            return Ok(None);
        };
        let now = SystemTime::now();
        let entry: Vec<u8> = row.try_get(0).map_err(|e| db_error(doing, e))?;
        match decode(key, &entry)? {
            Entry::Record(r) => Ok(r.is_live_at(now).then(|| loaded(r, None))),
            Entry::Alias { to, until, token } if until > now => {
                let target: Option<Vec<u8>> = row.try_get(1).map_err(|e| db_error(doing, e))?;
                let Some(target) = target else {
                    return Ok(None);
                };
                Ok(live_record(decode(&to, &target)?, now).map(|r| loaded(r, Some((to, token)))))
            }
            Entry::Alias { .. } | Entry::Tombstone { .. } => Ok(None),
        }
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        self.apply_changes(key, changes).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        self.delete_key(key).await
    }

    async fn rename(&self, key: &SessionKey, to: &SessionKey, grace: Option<&Grace>) -> Result<()> {
        self.move_record(key, to, grace).await
    }

    /// Deletes expired rows (records, aliases, tombstones) through the expiry index, in
    /// batches of [`SqliteConfig::with_cleanup_batch`] rows, each its own short write
    /// transaction, yielding in between. Returns the number of rows removed.
    async fn cleanup(&self) -> Result<u64> {
        let batch = self.inner.cleanup_batch;
        let mut removed = 0;
        loop {
            let now = millis(SystemTime::now());
            let done = sqlx::query(&self.inner.sql.cleanup)
                .bind(now)
                .bind(i64::from(batch))
                .execute(&self.inner.write)
                .await
                .map_err(|e| db_error("removing expired sessions", e))?
                .rows_affected();
            removed += done;
            if done < u64::from(batch) {
                return Ok(removed);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Walks the owner index [`OWNER_BATCH`] rows at a time, each page its own short read;
    /// rows left by a move are followed to where the session lives now.
    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        let mut keys = Vec::new();
        let mut after = Vec::new();
        loop {
            let (page, next) = self.owner_page(owner, &after).await?;
            keys.extend(page);
            match next {
                Some(next) => after = next,
                None => break,
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}
