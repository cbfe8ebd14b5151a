//! Options of a [`SqliteStore`](super::SqliteStore) and the table-name check.

use sessionkit::setters;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sessionkit::{Error, Result};

use super::SqliteStore;
use crate::{Durability, identifier};

/// The default table name.
pub const DEFAULT_TABLE: &str = "sessionkit_sessions";

/// The default time a write waits for the database's write lock (held by another process, or
/// by this process's writer) before it fails with [`Error::Unavailable`].
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The default number of rows [`cleanup`](sessionkit::Store::cleanup) deletes per statement:
/// each batch is a short write transaction of its own, so a long cleanup never keeps other
/// writers waiting for more than one batch.
pub const DEFAULT_CLEANUP_BATCH: u32 = 500;

/// The default number of read connections (loads and owner listings run on them, beside the
/// one write connection).
pub const DEFAULT_READERS: u32 = 4;

/// The longest table name accepted (the indexes append a suffix to it).
const MAX_TABLE_LEN: usize = 48;

/// Builds a [`SqliteStore`].
///
/// ```
/// use sessionkit_backends::{Durability, SqliteConfig};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = SqliteConfig::new(dir.path().join("sessions.sqlite3"))
///     .with_table("web_sessions")
///     .with_durability(Durability::NoSync)
///     .open()
///     .await?;
/// # drop(store);
/// // A table name is an SQL identifier: anything but letters, digits and `_` is refused.
/// let err = SqliteConfig::new(dir.path().join("x.sqlite3")).with_table("a\"; DROP").open().await;
/// assert!(matches!(err, Err(sessionkit::Error::Config(_))));
/// # Ok::<(), sessionkit::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub(crate) path: PathBuf,
    pub(crate) table: String,
    pub(crate) durability: Durability,
    pub(crate) busy_timeout: Duration,
    pub(crate) readers: u32,
    pub(crate) cleanup_batch: u32,
}

impl SqliteConfig {
    /// A store in the database file `path` (created if missing, mode `0600` on Unix), table
    /// [`DEFAULT_TABLE`], [`Durability::Sync`].
    pub fn new(path: impl AsRef<Path>) -> Self {
        SqliteConfig {
            path: path.as_ref().to_path_buf(),
            table: DEFAULT_TABLE.to_owned(),
            durability: Durability::default(),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            readers: DEFAULT_READERS,
            cleanup_batch: DEFAULT_CLEANUP_BATCH,
        }
    }

    setters! {
        /// Sets the table name: an ASCII letter or `_`, then letters, digits or `_`, at most 48
        /// characters, not starting with `sqlite_`. Checked by [`open`](Self::open).
        fn with_table(table: impl Into<String>) => table = table.into();

        /// Sets whether commits are flushed to the disk (default [`Durability::Sync`]:
        /// `synchronous = FULL`; [`Durability::NoSync`]: `synchronous = NORMAL`).
        fn with_durability(durability: Durability) => durability = durability;

        /// Sets how long a write waits for the write lock before failing with
        /// [`Error::Unavailable`] (default [`DEFAULT_BUSY_TIMEOUT`]).
        fn with_busy_timeout(timeout: Duration) => busy_timeout = timeout;

        /// Sets the number of read connections (default [`DEFAULT_READERS`]; at least 1).
        fn with_readers(readers: u32) => readers = readers.max(1);

        /// Sets how many expired rows `cleanup` deletes per write transaction (default
        /// [`DEFAULT_CLEANUP_BATCH`]; at least 1).
        fn with_cleanup_batch(rows: u32) => cleanup_batch = rows.max(1);
    }

    /// Opens the database (creating it if needed), sets WAL mode, and creates the table and
    /// its indexes if missing ([`SqliteStore::migrate`]).
    ///
    /// # Errors
    /// [`Error::Config`] for a table name that is not a plain identifier;
    /// [`Error::Storage`] when the file cannot be created or opened;
    /// [`Error::Unavailable`] when the database stays locked past the busy timeout.
    pub async fn open(self) -> Result<SqliteStore> {
        check_table_name(&self.table)?;
        SqliteStore::open_with(self).await
    }
}

/// Refuses a table name that is not a plain SQL identifier, so that nothing but letters,
/// digits and `_` ever reaches the SQL text (where it is quoted as well).
pub(crate) fn check_table_name(table: &str) -> Result<()> {
    if !identifier::is_plain(table, MAX_TABLE_LEN) {
        return Err(Error::Config(format!(
            "sqlite store: the table name must be an ASCII letter or `_` followed by letters, \
             digits or `_`, at most {MAX_TABLE_LEN} characters (got {} characters)",
            table.len()
        )));
    }
    if table.to_ascii_lowercase().starts_with("sqlite_") {
        return Err(Error::Config(
            "sqlite store: table names starting with `sqlite_` are reserved by SQLite".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        for good in ["sessions", "_s", "web_sessions_2", "A"] {
            assert!(check_table_name(good).is_ok(), "{good}");
        }
        let long = "x".repeat(MAX_TABLE_LEN + 1);
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "a;DROP TABLE x",
            "sqlite_master",
            "SQLITE_x",
            "é",
            long.as_str(),
        ] {
            assert!(
                matches!(check_table_name(bad), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
    }
}
