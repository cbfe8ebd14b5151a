//! The [`Store`] trait every backend implements, its conveniences in [`StoreExt`], and the
//! two stores of the core crate: [`MemoryStore`] and the [`TieredStore`] combinator.

mod coherence;
mod listing;
mod memory;
#[cfg(feature = "metrics")]
mod metered;
mod migrating;
mod tiered;

pub use coherence::{Flush, Invalidation, InvalidationFeed, InvalidationHub, InvalidationSource};
pub use listing::{Cursor, Listing, Page, SCAN_BATCH};
pub use memory::{MAX_MOVE_ATTEMPTS, MemoryStore, OWNER_BATCH};
#[cfg(feature = "metrics")]
pub use metered::Metered;
pub use migrating::{Copied, MigratingStore, copy_session};
pub use tiered::{DEFAULT_MAX_CACHE_TTL, TierStats, TieredStore};

use std::sync::Arc;

use async_trait::async_trait;

pub use crate::error::{Error, Result};
use crate::id::SessionKey;
pub use crate::op::Op;
pub use crate::record::{
    ChangeSet, Entry, Grace, Loaded, MOVE_TOMBSTONE, Moved, RECORD_VERSION, Record, Removed,
    from_millis, to_millis,
};

/// Where sessions live.
///
/// Keys are [`SessionKey`]s — hashes of session ids — so no store ever holds an id a client
/// could replay. The trait is object safe (`Arc<dyn Store>` is a `Store`) and minimal:
/// conveniences live in [`StoreExt`].
///
/// # The contract
///
/// Every backend passes the one conformance suite in the `tests/` package, which checks this:
///
/// - **Expiry.** A record whose `expires_at` has passed reads as absent from every method,
///   even before [`cleanup`](Store::cleanup) ran, and may be reclaimed at any time.
/// - **Create only if absent.** [`create`](Store::create) fails with
///   [`Error::AlreadyExists`] when a live record (or a grace-window alias) holds the key, so
///   an id collision can never merge two visitors.
/// - **Changes, not snapshots.** [`apply`](Store::apply) merges a [`ChangeSet`] into the
///   stored record atomically: clear, then removals, then sets, then operations, then expiry
///   and owner. Keys the change set does not name keep the value the store holds, so
///   concurrent saves that touch different keys both survive; on the same key a set is last
///   writer wins. A change set for a key that holds no live record fails with [`Error::Gone`]
///   and writes nothing: a save racing a logout never brings the session back.
/// - **Operations.** The [`Op`]s of [`ChangeSet::ops`] (increment, push, add, remove) are
///   carried out against the value the store holds at that moment, inside the same atomic
///   merge, so concurrent saves that increment one counter or push onto one array lose
///   nothing. An absent key starts from `0` or `[]`. When an operation fails
///   ([`Error::WrongType`], [`Error::Overflow`]) the whole change set writes nothing.
///   [`Record::apply`] implements exactly these rules for stores that hold whole records.
/// - **Move.** [`rename`](Store::rename) moves a record to a fresh key atomically. With a
///   [`Grace`], the old key keeps resolving — [`load`](Store::load) returns the record with
///   [`Loaded::moved`] set — until `grace.until` or the record's own expiry, whichever comes
///   first; without one the old key is dead at once: it loads as absent, but for
///   [`MOVE_TOMBSTONE`] a [`delete`](Store::delete) through it still reports where the session
///   went, so a logout that loaded the session just before the move ends it. An alias never accepts
///   [`apply`](Store::apply) (it fails with [`Error::Gone`]): saves go to the new key.
/// - **Delete says what it removed.** [`delete`](Store::delete) removes a record and reports
///   it as a [`Removed`]: a live record, a live alias or tombstone with the key it points to,
///   or nothing. Deleting an alias leaves its target alone and turns the alias into a
///   [tombstone](Entry::Tombstone) until it would have expired, so the key stops resolving
///   but every later delete through it still reports the move; a caller that ends a session
///   follows the report ([`StoreExt::end_session`]). Because a move needs a live record at its
///   source, a record removed here can no longer move away, so following the report ends the
///   session even while other requests rotate its id or end it too.
/// - **Owner index.** [`owned_by`](Store::owned_by) lists the live records whose owner tag is
///   the given owner (set by [`create`](Store::create) or [`apply`](Store::apply)). Every
///   session that is a live record of the owner for the whole listing is listed, under a
///   key it had during the listing (a listing follows a session that moved meanwhile);
///   one created or ended during the listing may or may not be. An owner may have a huge
///   number of sessions (an attacker can log in 10⁵ times): walk the index in bounded steps,
///   never holding a lock, or the server, that other requests need for the whole walk.
/// - **Errors** are [`Error`] variants; a record that cannot be decoded is reported as
///   [`Error::Corrupt`] by [`load`](Store::load) and is never silently rewritten.
///
/// # Implementing a store
///
/// ```
/// use std::collections::HashMap;
/// use std::time::SystemTime;
/// use sessionkit::store::{ChangeSet, Error, Grace, Loaded, Record, Removed, Result, Store};
/// use sessionkit::SessionKey;
///
/// /// A toy store: one mutex around a map, no grace aliases.
/// #[derive(Default)]
/// struct MapStore(std::sync::Mutex<HashMap<SessionKey, Record>>);
///
/// impl MapStore {
///     fn map(&self) -> Result<std::sync::MutexGuard<'_, HashMap<SessionKey, Record>>> {
///         self.0.lock().map_err(|_| Error::unavailable("poisoned"))
///     }
/// }
///
/// #[async_trait::async_trait]
/// impl Store for MapStore {
///     async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
///         let mut map = self.map()?;
///         match map.get(key) {
///             Some(r) if r.is_live_at(SystemTime::now()) => Err(Error::AlreadyExists),
///             _ => { map.insert(*key, record.clone()); Ok(()) }
///         }
///     }
///     async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
///         let map = self.map()?;
///         Ok(map.get(key).filter(|r| r.is_live_at(SystemTime::now())).cloned().map(Loaded::from))
///     }
///     async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
///         let mut map = self.map()?;
///         match map.get_mut(key) {
///             Some(r) if r.is_live_at(SystemTime::now()) => r.apply(changes),
///             _ => Err(Error::Gone),
///         }
///     }
///     async fn delete(&self, key: &SessionKey) -> Result<Removed> {
///         let removed = self.map()?.remove(key);
///         Ok(match removed {
///             Some(r) if r.is_live_at(SystemTime::now()) => Removed::Record,
///             _ => Removed::Nothing,
///         })
///     }
///     async fn rename(&self, from: &SessionKey, to: &SessionKey, _grace: Option<&Grace>) -> Result<()> {
///         let mut map = self.map()?;
///         if map.contains_key(to) { return Err(Error::AlreadyExists); }
///         let record = map.remove(from).ok_or(Error::Gone)?;
///         map.insert(*to, record);
///         Ok(())
///     }
///     async fn cleanup(&self) -> Result<u64> {
///         let mut map = self.map()?;
///         let before = map.len();
///         map.retain(|_, r| r.is_live_at(SystemTime::now()));
///         Ok((before - map.len()) as u64)
///     }
///     async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
///         let map = self.map()?;
///         Ok(map.iter().filter(|(_, r)| r.owner.as_deref() == Some(owner)).map(|(k, _)| *k).collect())
///     }
/// }
/// ```
#[async_trait]
pub trait Store: Send + Sync {
    /// Stores `record` under `key` only if no live record or alias holds the key.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if the key is taken; backend errors otherwise.
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()>;

    /// Loads the live record under `key`, following a grace-window alias.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an undecodable record; backend errors otherwise.
    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>>;

    /// Merges `changes` into the live record under `key`, atomically, operations included.
    ///
    /// # Errors
    /// [`Error::Gone`] if no live record holds the key; [`Error::WrongType`] or
    /// [`Error::Overflow`] naming the key of a failing operation. Nothing is written then.
    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()>;

    /// Removes the record under `key`, or turns the alias under it into a tombstone, and says
    /// what the key held, atomically. Deleting an absent key succeeds with
    /// [`Removed::Nothing`]. An alias's target is left alone: the report names it.
    ///
    /// # Errors
    /// Backend errors only.
    async fn delete(&self, key: &SessionKey) -> Result<Removed>;

    /// Moves the record under `from` to `to`, atomically, leaving `from` as an alias until
    /// the grace window ends, or removing it at once when `grace` is `None`.
    ///
    /// # Errors
    /// [`Error::Gone`] if `from` holds no live record; [`Error::AlreadyExists`] if `to` is taken.
    async fn rename(&self, from: &SessionKey, to: &SessionKey, grace: Option<&Grace>)
    -> Result<()>;

    /// Removes expired records and aliases, returning how many it removed. A backend whose
    /// storage expires entries by itself may return 0.
    ///
    /// # Errors
    /// Backend errors only.
    async fn cleanup(&self) -> Result<u64>;

    /// The keys of the live records tagged with `owner`.
    ///
    /// # Errors
    /// Backend errors only.
    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>>;
}

/// How many moves [`StoreExt::end_session`] follows before it gives up. Each move leaves an
/// alias for at most the grace window, so a longer chain means the session is being rotated
/// faster than it can be ended.
pub const MAX_ALIAS_HOPS: usize = 16;

/// How many rounds of listing and ending [`StoreExt::delete_owned_by`] runs before it gives up.
pub const MAX_REVOKE_ROUNDS: usize = 8;

/// Conveniences over any [`Store`].
#[async_trait]
pub trait StoreExt: Store {
    /// Ends the session `key` leads to, wherever it lives now: removes `key` and, when `key`
    /// was the grace alias of a session that moved (a concurrent rotation), the record it
    /// moved to, following further moves. Returns whether a session record was removed.
    ///
    /// This is what a logout needs: a request that loaded the session under `key` may race
    /// another request rotating it to a new key, and deleting `key` alone would then leave
    /// the session alive under the new one.
    ///
    /// ```
    /// use sessionkit::store::{Grace, MemoryStore, Record, Store, StoreExt};
    /// use sessionkit::SessionId;
    /// use std::time::{Duration, SystemTime};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let (old, new) = (SessionId::generate()?.key(), SessionId::generate()?.key());
    /// let soon = SystemTime::now() + Duration::from_secs(60);
    /// store.create(&old, &Record::new(soon)).await?;
    /// // Another request rotates the id, leaving `old` as an alias for a while.
    /// store.rename(&old, &new, Some(&Grace::new(soon, vec![]))).await?;
    /// // Ending the session through the old key ends it under the new key too.
    /// assert!(store.end_session(&old).await?);
    /// assert!(store.load(&new).await?.is_none());
    /// # Ok::<(), sessionkit::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// Backend errors; [`Error::Unavailable`] when the session moved more than
    /// [`MAX_ALIAS_HOPS`] times while being ended. [`Error::CacheNotInvalidated`] is not an
    /// error here: the durable tier removed the key, so the chain is followed on.
    async fn end_session(&self, key: &SessionKey) -> Result<bool> {
        let mut key = *key;
        let mut stale_cache = None;
        for _ in 0..MAX_ALIAS_HOPS {
            let removed = match self.delete(&key).await {
                Ok(removed) => removed,
                // Removed from the durable tier: follow on, report the stale cache at the end.
                Err(Error::CacheNotInvalidated { source, removed }) => {
                    stale_cache = Some(Error::CacheNotInvalidated {
                        source,
                        removed: None,
                    });
                    removed.unwrap_or(Removed::Nothing)
                }
                Err(err) => return Err(err),
            };
            match removed {
                Removed::Alias { to } => key = to,
                Removed::Record => return stale_cache.map_or(Ok(true), Err),
                Removed::Nothing => return stale_cache.map_or(Ok(false), Err),
            }
        }
        Err(Error::unavailable(
            "the session kept moving to new ids while it was being ended",
        ))
    }

    /// Ends every live session tagged with `owner` ("log out everywhere") and returns how
    /// many it ended.
    ///
    /// Complete under concurrency: each listed session is ended wherever it moved
    /// ([`end_session`](Self::end_session)), and the owner is listed again until the listing
    /// comes back empty, so a session that moved to a new key without a grace alias between
    /// the listing and its deletion is found under its new key.
    ///
    /// Every session that existed when the call began is ended: a session is listed under
    /// the key it has at listing time (stores index a moved session before its old key stops
    /// being it), and one that moves after the listing is followed from its old key. The
    /// further rounds catch what a store's listing missed. Sessions that keep appearing
    /// (new logins of the owner while this runs) can outlast the last round: then it stops
    /// after [`MAX_REVOKE_ROUNDS`], logs a warning and returns what it ended.
    ///
    /// An owner may have a huge number of sessions: the store lists them in bounded steps,
    /// and this yields to the runtime after every [`OWNER_BATCH`] sessions it ends, so a
    /// revocation never monopolizes a runtime thread, even over a store that never suspends.
    ///
    /// # Errors
    /// The first backend error (sessions ended before it stay ended).
    async fn delete_owned_by(&self, owner: &str) -> Result<usize> {
        let mut ended = 0;
        for _ in 0..MAX_REVOKE_ROUNDS {
            let keys = self.owned_by(owner).await?;
            if keys.is_empty() {
                return Ok(ended);
            }
            for (i, key) in keys.iter().enumerate() {
                if self.end_session(key).await? {
                    ended += 1;
                }
                // A store that answers at once (memory) never suspends this loop: let other
                // tasks on this thread run between batches of a long revocation.
                if (i + 1) % OWNER_BATCH == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
        tracing::warn!(
            target: "sessionkit",
            ended,
            rounds = MAX_REVOKE_ROUNDS,
            "an owner's sessions kept appearing while they were being revoked"
        );
        Ok(ended)
    }

    /// Whether a live record (or alias) holds `key`.
    ///
    /// # Errors
    /// As [`Store::load`].
    async fn exists(&self, key: &SessionKey) -> Result<bool> {
        Ok(self.load(key).await?.is_some())
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

macro_rules! forward_store {
    ($($ptr:ident),*) => {$(
        #[async_trait]
        impl<S: Store + ?Sized> Store for $ptr<S> {
            async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
                (**self).create(key, record).await
            }
            async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
                (**self).load(key).await
            }
            async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
                (**self).apply(key, changes).await
            }
            async fn delete(&self, key: &SessionKey) -> Result<Removed> {
                (**self).delete(key).await
            }
            async fn rename(&self, key: &SessionKey, to: &SessionKey, grace: Option<&Grace>) -> Result<()> {
                (**self).rename(key, to, grace).await
            }
            async fn cleanup(&self) -> Result<u64> {
                (**self).cleanup().await
            }
            async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
                (**self).owned_by(owner).await
            }
        }
    )*};
}

forward_store!(Arc, Box);
