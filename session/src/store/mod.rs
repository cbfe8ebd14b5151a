//! The [`Store`] trait every backend implements, its conveniences in [`StoreExt`], and the
//! two stores of the core crate: [`MemoryStore`] and the [`TieredStore`] combinator.

mod memory;
mod tiered;

pub use memory::MemoryStore;
pub use tiered::{DEFAULT_MAX_CACHE_TTL, TierStats, TieredStore};

use std::sync::Arc;

use async_trait::async_trait;

pub use crate::error::{Error, Result};
use crate::id::SessionKey;
pub use crate::op::Op;
pub use crate::record::{ChangeSet, Entry, Grace, Loaded, Moved, Record};

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
///   first; without one the old key is dead at once. An alias never accepts
///   [`apply`](Store::apply) (it fails with [`Error::Gone`]): saves go to the new key.
/// - **Owner index.** [`owned_by`](Store::owned_by) lists the live records whose owner tag is
///   the given owner (set by [`create`](Store::create) or [`apply`](Store::apply)).
/// - **Errors** are [`Error`] variants; a record that cannot be decoded is reported as
///   [`Error::Corrupt`] by [`load`](Store::load) and is never silently rewritten.
///
/// # Implementing a store
///
/// ```
/// use std::collections::HashMap;
/// use std::time::SystemTime;
/// use sessionkit::store::{ChangeSet, Error, Grace, Loaded, Record, Result, Store};
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
///             Some(r) if !r.is_expired_at(SystemTime::now()) => Err(Error::AlreadyExists),
///             _ => { map.insert(*key, record.clone()); Ok(()) }
///         }
///     }
///     async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
///         let map = self.map()?;
///         Ok(map.get(key).filter(|r| !r.is_expired_at(SystemTime::now())).cloned().map(Loaded::from))
///     }
///     async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
///         let mut map = self.map()?;
///         match map.get_mut(key) {
///             Some(r) if !r.is_expired_at(SystemTime::now()) => r.apply(changes),
///             _ => Err(Error::Gone),
///         }
///     }
///     async fn delete(&self, key: &SessionKey) -> Result<()> {
///         self.map()?.remove(key);
///         Ok(())
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
///         map.retain(|_, r| !r.is_expired_at(SystemTime::now()));
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

    /// Removes whatever `key` holds. Removing an absent key succeeds.
    ///
    /// # Errors
    /// Backend errors only.
    async fn delete(&self, key: &SessionKey) -> Result<()>;

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

/// Conveniences over any [`Store`].
#[async_trait]
pub trait StoreExt: Store {
    /// Deletes every live session tagged with `owner` ("log out everywhere") and returns how
    /// many it deleted.
    ///
    /// # Errors
    /// The first backend error; sessions deleted before it stay deleted.
    async fn delete_owned_by(&self, owner: &str) -> Result<usize> {
        let keys = self.owned_by(owner).await?;
        for key in &keys {
            self.delete(key).await?;
        }
        Ok(keys.len())
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
            async fn delete(&self, key: &SessionKey) -> Result<()> {
                (**self).delete(key).await
            }
            async fn rename(
                &self,
                from: &SessionKey,
                to: &SessionKey,
                grace: Option<&Grace>,
            ) -> Result<()> {
                (**self).rename(from, to, grace).await
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
