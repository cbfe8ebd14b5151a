//! The writing half of the one-statement and locked operations, and the conversions between
//! stored columns and the core's types.

use std::time::SystemTime;

use sessionkit::SessionKey;
use sessionkit::store::{ChangeSet, Error, Record, Result};
use sessionkit::store::{from_millis, to_millis};
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use super::errors::{sql, timed};
use super::{PostgresStore, fields};

/// Unix milliseconds as PostgreSQL's `bigint`.
pub(super) fn ms(t: SystemTime) -> i64 {
    i64::try_from(to_millis(t)).unwrap_or(i64::MAX)
}

/// The inverse of [`ms`]; a negative stored value reads as the epoch (long expired).
pub(super) fn time(ms: i64) -> SystemTime {
    from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A stored key column.
pub(super) fn key_of(bytes: &[u8]) -> Result<SessionKey> {
    <[u8; 32]>::try_from(bytes)
        .map(SessionKey::from_bytes)
        .map_err(|_| Error::corrupt_message("postgres: a stored key is not 32 bytes"))
}

impl PostgresStore {
    /// Runs `statement` (bound to `key` and the current time) within the operation limit,
    /// and fetches the row it returns, if any.
    pub(super) async fn row_at_now(
        &self,
        op: &'static str,
        statement: &str,
        key: &SessionKey,
    ) -> Result<Option<PgRow>> {
        timed(op, self.op_timeout, async {
            let mut lease = self.lanes.lease().await.map_err(sql(op))?;
            let row = sqlx::query(statement)
                .bind(key.as_bytes().as_slice())
                .bind(ms(SystemTime::now()))
                .fetch_optional(lease.conn())
                .await
                .map_err(sql(op))?;
            lease.done();
            Ok(row)
        })
        .await
    }

    /// A save with operations: lock, merge with [`Record::apply`], write, commit.
    pub(super) async fn apply_locked(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        let now = ms(SystemTime::now());
        let mut tx = self.pool.begin().await.map_err(sql("save"))?;
        let row = sqlx::query(&self.sql.lock)
            .bind(key.as_bytes().as_slice())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql("save"))?;
        let Some(row) = row else {
            // Dropping the transaction rolls it back.
            return Err(Error::Gone);
        };
        let mut record = stored_record(&row, 0)?;
        record.apply(changes)?;
        sqlx::query(&self.sql.write)
            .bind(key.as_bytes().as_slice())
            .bind(fields::encode(&record.fields))
            .bind(ms(record.expires_at))
            .bind(record.owner.as_deref())
            .fetch_one(&mut *tx)
            .await
            .map_err(sql("save"))?;
        tx.commit().await.map_err(sql("save"))
    }

    /// A save without operations: one statement merging in the database. `Ok(false)` when it
    /// wrote nothing (the key holds no live record, or a limit refused the merge).
    pub(super) async fn apply_merged(&self, key: &SessionKey, changes: &ChangeSet) -> Result<bool> {
        let removed: Vec<String> = changes
            .remove
            .iter()
            .map(|name| fields::escape(name).into_owned())
            .collect();
        let statement = match changes.limits {
            Some(_) => &self.sql.apply_limited,
            None => &self.sql.apply,
        };
        let query = sqlx::query_scalar(statement)
            .bind(key.as_bytes().as_slice())
            .bind(ms(SystemTime::now()))
            .bind(changes.clear)
            .bind(removed)
            .bind(fields::encode(&changes.set))
            .bind(changes.expires_at.map(ms))
            .bind(changes.owner.is_some())
            .bind(changes.owner.as_ref().and_then(Option::as_deref));
        let query = match changes.limits {
            Some(l) => {
                let max_fields = i64::try_from(l.max_fields).unwrap_or(i64::MAX);
                let max_bytes = i64::try_from(l.max_record_bytes).unwrap_or(i64::MAX);
                query
                    .bind(max_fields)
                    .bind(max_bytes)
                    .bind(super::sql::quick_bound(max_fields, max_bytes))
            }
            None => query,
        };
        let mut lease = self.lanes.lease().await.map_err(sql("save"))?;
        let written: i64 = query.fetch_one(lease.conn()).await.map_err(sql("save"))?;
        lease.done();
        Ok(written > 0)
    }
}

/// A record from the columns `fields::text, expires_at, owner` starting at `at`.
pub(super) fn stored_record(row: &PgRow, at: usize) -> Result<Record> {
    let text: String = row.try_get(at).map_err(sql("load"))?;
    let expires: i64 = row.try_get(at + 1).map_err(sql("load"))?;
    let owner: Option<String> = row.try_get(at + 2).map_err(sql("load"))?;
    Ok(fields::loaded(fields::decode(&text)?, time(expires), owner, None).record)
}
