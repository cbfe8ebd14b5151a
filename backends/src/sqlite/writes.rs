//! The writes of [`SqliteStore`]: each a conditional upsert or one `BEGIN IMMEDIATE`
//! transaction (read the row, decide with the core's `Entry`/`Record` rules, write, commit).

use std::time::SystemTime;

use sessionkit::SessionKey;
use sessionkit::store::{ChangeSet, Entry, Error, Grace, Record, Removed, Result};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Row as _, Sqlite, Transaction};

use super::SqliteStore;
use super::errors::db_error;
use super::rows::{Columns, decode, key_of, live_record, millis};

impl SqliteStore {
    /// Starts a write transaction that holds SQLite's write lock from its first statement,
    /// so the read it begins with is not invalidated by another writer before its write.
    async fn begin(&self, doing: &str) -> Result<Transaction<'static, Sqlite>> {
        self.inner
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| db_error(doing, e))
    }

    /// The decoded entry under `key` (`None`: no row; `Some(Err)`: a row that does not
    /// decode, already logged).
    async fn read_entry(
        &self,
        conn: &mut SqliteConnection,
        key: &SessionKey,
        doing: &str,
    ) -> Result<Option<Result<Entry>>> {
        let row = sqlx::query(&self.inner.sql.entry)
            .bind(key.as_bytes().as_slice())
            .fetch_optional(conn)
            .await
            .map_err(|e| db_error(doing, e))?;
        match row {
            None => Ok(None),
            Some(row) => {
                let bytes: Vec<u8> = row.try_get(0).map_err(|e| db_error(doing, e))?;
                Ok(Some(decode(key, &bytes)))
            }
        }
    }

    /// Writes `entry` under `key` (replacing any row), with `owner` in the indexed column.
    async fn put(
        &self,
        conn: &mut SqliteConnection,
        key: &SessionKey,
        entry: &Entry,
        owner: Option<&str>,
        doing: &str,
    ) -> Result<()> {
        let cols = Columns::of(entry)?;
        sqlx::query(&self.inner.sql.put)
            .bind(key.as_bytes().as_slice())
            .bind(cols.kind)
            .bind(cols.expires_at)
            .bind(owner)
            .bind(cols.moved_to.as_ref().map(<[u8; 32]>::as_slice))
            .bind(cols.entry)
            .execute(conn)
            .await
            .map_err(|e| db_error(doing, e))?;
        Ok(())
    }

    /// One conditional upsert: the record goes in only where the key holds no row, an expired
    /// one, or a tombstone; otherwise nothing is written and the key is taken.
    pub(super) async fn create_record(&self, key: &SessionKey, record: &Record) -> Result<()> {
        let cols = Columns::of(&Entry::Record(record.clone()))?;
        let written = sqlx::query(&self.inner.sql.create)
            .bind(key.as_bytes().as_slice())
            .bind(cols.expires_at)
            .bind(record.owner.as_deref())
            .bind(cols.entry)
            .bind(millis(SystemTime::now()))
            .execute(&self.inner.write)
            .await
            .map_err(|e| db_error("creating a session", e))?
            .rows_affected();
        if written == 0 {
            return Err(Error::AlreadyExists);
        }
        Ok(())
    }

    pub(super) async fn apply_changes(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        let doing = "saving a session";
        let mut tx = self.begin(doing).await?;
        let now = SystemTime::now();
        let record = match self.read_entry(&mut tx, key, doing).await? {
            Some(Ok(entry)) => live_record(entry, now),
            // Undecodable: no session to save into, and never rewritten.
            Some(Err(_)) | None => None,
        };
        let Some(mut record) = record else {
            rollback(tx).await;
            return Err(Error::Gone);
        };
        if changes.is_empty() {
            rollback(tx).await;
            return Ok(());
        }
        if let Err(err) = record.apply(changes) {
            rollback(tx).await;
            return Err(err);
        }
        let owner = record.owner.clone();
        let cols = Columns::of(&Entry::Record(record))?;
        sqlx::query(&self.inner.sql.update_record)
            .bind(key.as_bytes().as_slice())
            .bind(cols.expires_at)
            .bind(owner)
            .bind(cols.entry)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error(doing, e))?;
        tx.commit().await.map_err(|e| db_error(doing, e))
    }

    pub(super) async fn delete_key(&self, key: &SessionKey) -> Result<Removed> {
        let doing = "deleting a session";
        let mut tx = self.begin(doing).await?;
        let now = SystemTime::now();
        let (removed, left, exists) = match self.read_entry(&mut tx, key, doing).await? {
            None => {
                rollback(tx).await;
                return Ok(Removed::Nothing);
            }
            Some(Ok(entry)) => {
                let left = match &entry {
                    // A tombstone stays as it is.
                    Entry::Tombstone { .. } if entry.is_live_at(now) => {
                        rollback(tx).await;
                        return Ok(Removed::of(Some(&entry), now));
                    }
                    _ => entry.left_by_delete(now),
                };
                (Removed::of(Some(&entry), now), left, true)
            }
            // An undecodable row is no session: removing it is what a delete means.
            Some(Err(_)) => (Removed::Nothing, None, true),
        };
        match left {
            // An alias becomes a tombstone, so every logout through this key can follow it.
            Some(left) => {
                let cols = Columns::of(&left)?;
                sqlx::query(&self.inner.sql.to_tombstone)
                    .bind(key.as_bytes().as_slice())
                    .bind(cols.entry)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error(doing, e))?;
            }
            None if exists => {
                sqlx::query(&self.inner.sql.delete)
                    .bind(key.as_bytes().as_slice())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error(doing, e))?;
            }
            None => {}
        }
        tx.commit().await.map_err(|e| db_error(doing, e))?;
        Ok(removed)
    }

    pub(super) async fn move_record(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        let doing = "moving a session";
        let mut tx = self.begin(doing).await?;
        let now = SystemTime::now();
        let rows = sqlx::query(&self.inner.sql.entries2)
            .bind(from.as_bytes().as_slice())
            .bind(to.as_bytes().as_slice())
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| db_error(doing, e))?;
        let (mut source, mut target) = (None, None);
        for row in rows {
            let key = key_of(
                &row.try_get::<Vec<u8>, _>(0)
                    .map_err(|e| db_error(doing, e))?,
            )?;
            let bytes: Vec<u8> = row.try_get(1).map_err(|e| db_error(doing, e))?;
            let entry = decode(&key, &bytes);
            if key == *from {
                source = Some(entry);
            } else {
                target = Some(entry);
            }
        }
        let Some(record) = source
            .and_then(Result::ok)
            .and_then(|e| live_record(e, now))
        else {
            rollback(tx).await;
            return Err(Error::Gone);
        };
        match &target {
            Some(Ok(e)) if e.resolves_at(now) => {
                rollback(tx).await;
                return Err(Error::AlreadyExists);
            }
            // Never overwrite what cannot be read; the caller picks another id.
            Some(Err(_)) => {
                rollback(tx).await;
                return Err(Error::AlreadyExists);
            }
            Some(Ok(_)) | None => {}
        }
        let owner = record.owner.clone();
        let left = Entry::left_by_move(*to, grace, record.expires_at, now);
        self.put(&mut tx, to, &Entry::Record(record), owner.as_deref(), doing)
            .await?;
        if left.is_live_at(now) {
            // The row left behind keeps the owner, so an owner listing that already passed
            // the new key still finds the session through the old one.
            self.put(&mut tx, from, &left, owner.as_deref(), doing)
                .await?;
        } else {
            sqlx::query(&self.inner.sql.delete)
                .bind(from.as_bytes().as_slice())
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error(doing, e))?;
        }
        tx.commit().await.map_err(|e| db_error(doing, e))
    }
}

/// Ends a transaction that wrote nothing. A failure only means the connection is broken; the
/// pool then discards it, and SQLite rolls back whatever it held.
async fn rollback(tx: Transaction<'static, Sqlite>) {
    if let Err(err) = tx.rollback().await {
        tracing::warn!(error = %err, "sqlite store: rolling back a read-only transaction failed");
    }
}
