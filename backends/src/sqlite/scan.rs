//! [`Listing`] for [`SqliteStore`]: keyset pagination on the primary key. A page is one
//! `SELECT … WHERE key > cursor AND kind = record AND expires_at > now ORDER BY key LIMIT
//! batch` on a read connection (WAL: it waits for no writer and holds nothing once it
//! returns), so a key is listed at most once and no lock is held between pages. The cursor is
//! the hex of the page's last key ([`Cursor::after_key`]).

use std::time::SystemTime;

use async_trait::async_trait;
use sessionkit::store::{Cursor, Entry, Listing, Page, Result};
use sqlx::Row as _;

use super::SqliteStore;
use super::errors::db_error;
use super::rows::{decode, key_of, millis};

#[async_trait]
impl Listing for SqliteStore {
    /// Up to `batch` live records after the cursor, in key order. A row whose entry does not
    /// decode is logged and skipped (it is not a session anyone can load).
    async fn scan(&self, cursor: Option<&Cursor>, batch: usize) -> Result<Page> {
        let doing = "listing sessions";
        let after = cursor.map(Cursor::key).transpose()?;
        let batch = batch.max(1);
        let now = SystemTime::now();
        let rows = sqlx::query(&self.inner.sql.scan)
            .bind(after.as_ref().map_or(&[][..], |k| k.as_bytes().as_slice()))
            .bind(millis(now))
            .bind(i64::try_from(batch).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.read)
            .await
            .map_err(|e| db_error(doing, e))?;
        let full = rows.len() >= batch;
        let mut last = None;
        let mut sessions = Vec::with_capacity(rows.len());
        for row in rows {
            let key: Vec<u8> = row.try_get(0).map_err(|e| db_error(doing, e))?;
            let entry: Vec<u8> = row.try_get(1).map_err(|e| db_error(doing, e))?;
            let key = key_of(&key)?;
            last = Some(key);
            // `decode` has logged an undecodable row already.
            if let Ok(Entry::Record(record)) = decode(&key, &entry)
                && record.is_live_at(now)
            {
                sessions.push((key, record));
            }
        }
        let next = match last {
            Some(key) if full => Some(Cursor::after_key(&key)),
            _ => None,
        };
        Ok(Page::new(sessions, next))
    }

    /// One `SELECT count(*)` of the live records (through the expiry index).
    async fn count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(&self.inner.sql.count)
            .bind(millis(SystemTime::now()))
            .fetch_one(&self.inner.read)
            .await
            .map_err(|e| db_error("counting sessions", e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
