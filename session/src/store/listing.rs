//! [`Listing`]: the optional scan of a store's live sessions, for operators' tools (counting,
//! inspecting, purging, copying to another store).

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::{Record, Result, Store};
use crate::id::SessionKey;

/// Where a scan resumes: an opaque position returned by [`Listing::scan`].
///
/// Its text form ([`Cursor::as_str`], [`Cursor::new`]) lets a tool print it and resume later
/// (with the same store). A cursor a store does not understand is an
/// [`Error::Config`](super::Error::Config), never a panic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cursor(String);

impl Cursor {
    /// A cursor from its text form, as [`Cursor::as_str`] gave it.
    pub fn new(text: impl Into<String>) -> Self {
        Cursor(text.into())
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The cursor of a store that scans in key order, resuming after `key`: its hex.
    pub fn after_key(key: &SessionKey) -> Self {
        Cursor(key.to_hex())
    }

    /// The key a [`Cursor::after_key`] cursor names.
    ///
    /// # Errors
    /// [`Error::Config`](super::Error::Config) when this is not such a cursor.
    pub fn key(&self) -> Result<SessionKey> {
        SessionKey::from_hex(&self.0)
            .ok_or_else(|| super::Error::Config("not a cursor of this store".into()))
    }
}

/// One page of a scan: live sessions, and where the scan goes on.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Page {
    /// The live sessions of this page: their keys and records. May be empty while
    /// [`next`](Page::next) is `Some` (a store may scan a stretch holding nothing live).
    pub sessions: Vec<(SessionKey, Record)>,
    /// Where the next page starts; `None` once the scan is complete.
    pub next: Option<Cursor>,
}

impl Page {
    /// A page of `sessions`, continuing at `next`.
    pub fn new(sessions: Vec<(SessionKey, Record)>, next: Option<Cursor>) -> Self {
        Page { sessions, next }
    }
}

/// A store whose live sessions can be listed: a cursor-based scan, page by page.
///
/// Optional: [`Store`] does not require it, so a store written for one application need not
/// implement it. The memory, file, Redis, SQLite and PostgreSQL stores do (a
/// [`TieredStore`](super::TieredStore) lists its durable tier).
///
/// # Contract
///
/// - A scan starts with `scan(None, batch)` and goes on with each page's
///   [`next`](Page::next) until it is `None`.
/// - A page holds only **live records**: expired sessions, grace aliases and tombstones are
///   skipped. `batch` is a hint of how many entries to examine per page (`0` counts as 1);
///   a page may hold fewer sessions, even none, before the end.
/// - Every session that is live for the whole scan is returned. Sessions created, deleted or
///   moved while the scan runs may or may not be. Stores that scan in key order
///   (`MemoryStore`, `FileStore`, the SQL stores) return each key **at most once**; a Redis scan may return a
///   key twice when Redis resizes its keyspace meanwhile (`SCAN`'s own guarantee), so a
///   caller that must not see a key twice keeps a set (as [`Listing::count`] does).
/// - One page is one bounded step: no lock is held, and nothing else waits, between pages,
///   so a scan of a large store never stalls the requests served meanwhile.
///
/// # Example
///
/// ```
/// use sessionkit::store::{Listing, MemoryStore, Record, Store};
/// use sessionkit::SessionId;
/// use std::time::{Duration, SystemTime};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// for _ in 0..5 {
///     let key = SessionId::generate()?.key();
///     store.create(&key, &Record::new(SystemTime::now() + Duration::from_secs(60))).await?;
/// }
/// let mut seen = 0;
/// let mut cursor = None;
/// loop {
///     let page = store.scan(cursor.as_ref(), 2).await?;
///     seen += page.sessions.len();
///     match page.next {
///         Some(next) => cursor = Some(next),
///         None => break,
///     }
/// }
/// assert_eq!(seen, 5);
/// assert_eq!(store.count().await?, 5);
/// # Ok::<(), sessionkit::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait Listing: Store {
    /// One page of live sessions from `cursor` (`None`: from the start), examining about
    /// `batch` entries.
    ///
    /// # Errors
    /// The store's errors; [`Error::Config`](super::Error::Config) for a cursor this store
    /// did not produce.
    async fn scan(&self, cursor: Option<&Cursor>, batch: usize) -> Result<Page>;

    /// How many distinct live sessions a full scan finds (duplicates dropped).
    ///
    /// # Errors
    /// As [`Listing::scan`].
    async fn count(&self) -> Result<u64> {
        let mut seen = HashSet::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = self.scan(cursor.as_ref(), SCAN_BATCH).await?;
            seen.extend(page.sessions.into_iter().map(|(key, _)| key));
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(seen.len() as u64),
            }
        }
    }
}

/// The batch [`Listing::count`] scans with.
pub const SCAN_BATCH: usize = 512;

macro_rules! forward_listing {
    ($($ptr:ident),*) => {$(
        #[async_trait]
        impl<S: Listing + ?Sized> Listing for $ptr<S> {
            async fn scan(&self, cursor: Option<&Cursor>, batch: usize) -> Result<Page> {
                (**self).scan(cursor, batch).await
            }
            async fn count(&self) -> Result<u64> {
                (**self).count().await
            }
        }
    )*};
}

forward_listing!(Arc, Box);
