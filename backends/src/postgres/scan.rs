//! [`Listing`] for [`PostgresStore`]: keyset pagination on the primary key. A page is one
//! `SELECT … WHERE key > $cursor AND kind = record AND expires_at > $now ORDER BY key LIMIT
//! $batch`, an index range scan on its own MVCC snapshot that takes no row lock, so a key is
//! listed at most once and nothing is held between pages. The cursor is the hex of the page's
//! last key ([`Cursor::after_key`]).

use std::time::SystemTime;

use async_trait::async_trait;
use sessionkit::store::{Cursor, Listing, Page, Result};
use sqlx::Row as _;

use super::errors::{sql, timed};
use super::{PostgresStore, key_of, ms, stored_record};

#[async_trait]
impl Listing for PostgresStore {
    /// Up to `batch` live records after the cursor, in key order. A row whose fields do not
    /// decode is logged and skipped (it is not a session anyone can load).
    async fn scan(&self, cursor: Option<&Cursor>, batch: usize) -> Result<Page> {
        let after = cursor.map(Cursor::key).transpose()?;
        let batch = batch.max(1);
        let now = SystemTime::now();
        let rows = timed("scan", self.op_timeout, async {
            sqlx::query(&self.sql.scan)
                .bind(after.as_ref().map_or(&[][..], |k| k.as_bytes().as_slice()))
                .bind(ms(now))
                .bind(i64::try_from(batch).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(sql("scan"))
        })
        .await?;
        let full = rows.len() >= batch;
        let mut last = None;
        let mut sessions = Vec::with_capacity(rows.len());
        for row in rows {
            let key: Vec<u8> = row.try_get(0).map_err(sql("scan"))?;
            let key = key_of(&key)?;
            last = Some(key);
            match stored_record(&row, 1) {
                Ok(record) if record.is_live_at(now) => sessions.push((key, record)),
                Ok(_) => {}
                Err(error) => tracing::warn!(
                    session = %key.fingerprint(),
                    %error,
                    "undecodable session row in the postgres store"
                ),
            }
        }
        let next = match last {
            Some(key) if full => Some(Cursor::after_key(&key)),
            _ => None,
        };
        Ok(Page::new(sessions, next))
    }

    /// One `SELECT count(*)` of the live records.
    async fn count(&self) -> Result<u64> {
        let n: i64 = timed("count", self.op_timeout, async {
            sqlx::query_scalar(&self.sql.count)
                .bind(ms(SystemTime::now()))
                .fetch_one(&self.pool)
                .await
                .map_err(sql("count"))
        })
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
