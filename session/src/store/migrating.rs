//! [`MigratingStore`]: moves a live site from one store to another without logging anyone out.

use async_trait::async_trait;

use super::{ChangeSet, Error, Grace, Loaded, Record, Removed, Result, Store};
use crate::id::SessionKey;

/// Two stores during a migration: `New` answers, `Old` is the fallback that drains into it.
///
/// - **Loads** read `New`; a session only in `Old` is copied into `New` (a create, so a
///   racing copy or save in `New` wins: the copier then reloads `New`) and served from there.
///   After copying, the copier checks that `Old` still holds the session: if a logout ended
///   it meanwhile, the copy is deleted again, so a racing logout is never undone.
/// - **Saves** go to `New`; a save to a session only in `Old` copies it first, then applies.
/// - **Creates** go to `New`, refused ([`Error::AlreadyExists`]) when `Old` holds the key.
/// - **Deletes** reach `Old` first, then `New` (the order the copy's check relies on);
///   **moves** copy the session into `New` if needed, delete it from `Old`, then move it in
///   `New` (the same order), so the old key can never come back from `Old`.
/// - `cleanup` runs on both; `owned_by` is the union of both.
///
/// Deploy with `MigratingStore::new(new, old)`, copy the rest in the background (a scan of
/// `Old` with [`Listing`](super::Listing), creating each record in `New` unless it is there
/// already and, after each create, deleting the copy again if `Old` no longer holds the
/// session: it was ended or moved since the scan; [`copy_session`] is that step for one
/// session, `sessionkit migrate` runs it for each), then deploy with `New` alone. While the
/// migration runs, end sessions only through this store: a session deleted from `Old` behind
/// its back looks like a logout, and a copy racing it is dropped.
///
/// ```
/// use sessionkit::store::{MemoryStore, MigratingStore, Record, Store};
/// use sessionkit::SessionId;
/// use std::time::{Duration, SystemTime};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (new, old) = (MemoryStore::new(), MemoryStore::new());
/// let key = SessionId::generate()?.key();
/// old.create(&key, &Record::new(SystemTime::now() + Duration::from_secs(60))).await?;
/// let store = MigratingStore::new(new.clone(), old);
/// assert!(store.load(&key).await?.is_some());
/// assert!(new.load(&key).await?.is_some()); // copied on first read
/// # Ok::<(), sessionkit::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct MigratingStore<N, O> {
    new: N,
    old: O,
}

impl<N: Store, O: Store> MigratingStore<N, O> {
    /// Reads `new` first, falls back to `old`.
    pub fn new(new: N, old: O) -> Self {
        MigratingStore { new, old }
    }

    /// The store being migrated to.
    pub fn new_store(&self) -> &N {
        &self.new
    }

    /// The store being drained.
    pub fn old_store(&self) -> &O {
        &self.old
    }

    /// Copies what `Old` holds under `key` into `New` and loads it from `New`.
    async fn copy(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        let Some(found) = self.old.load(key).await? else {
            return Ok(None);
        };
        let target = found.moved.as_ref().map_or(*key, |m| m.to);
        // A create, so a racing copy or save in New wins; then the check of Old, so a logout
        // or move since our read is not undone.
        if copy_session(&self.old, &self.new, &target, &found.record).await? == Copied::Ended {
            return Ok(None);
        }
        match found.moved {
            None => self.new.load(key).await,
            Some(moved) => Ok(self
                .new
                .load(&target)
                .await?
                .map(|l| Loaded::new(l.record, Some(moved)))),
        }
    }
}

#[async_trait]
impl<N: Store, O: Store> Store for MigratingStore<N, O> {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        if self.new.load(key).await?.is_none() && self.old.load(key).await?.is_some() {
            return Err(Error::AlreadyExists);
        }
        self.new.create(key, record).await
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        match self.new.load(key).await? {
            Some(loaded) => Ok(Some(loaded)),
            None => self.copy(key).await,
        }
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        match self.new.apply(key, changes).await {
            Err(Error::Gone) => match self.copy(key).await? {
                Some(loaded) if loaded.moved.is_none() => self.new.apply(key, changes).await,
                _ => Err(Error::Gone),
            },
            other => other,
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        let old = self.old.delete(key).await?;
        let new = self.new.delete(key).await?;
        Ok(match new {
            Removed::Nothing => old,
            report => report,
        })
    }

    async fn rename(&self, key: &SessionKey, to: &SessionKey, grace: Option<&Grace>) -> Result<()> {
        if self.new.load(key).await?.is_none() {
            self.copy(key).await?;
        }
        // Old first, as in `delete`: a copy (ours on a read, or a background one) checks Old
        // after creating in New, so once the key has left Old no copy of it can outlive the
        // move; moving in New first would let a copy made between the two steps revive the old
        // id in New.
        self.old.delete(key).await?;
        self.new.rename(key, to, grace).await
    }

    async fn cleanup(&self) -> Result<u64> {
        Ok(self.new.cleanup().await? + self.old.cleanup().await?)
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        let mut keys = self.new.owned_by(owner).await?;
        keys.extend(self.old.owned_by(owner).await?);
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

/// What [`copy_session`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copied {
    /// The record was created in the target, and the source still holds the session.
    Copied,
    /// The target already held the key (a copy, a newer save, or the alias of a move made
    /// since): nothing was written.
    AlreadyThere,
    /// The record was created in the target, but the source no longer holds the session: it
    /// was ended or moved after the record was read, so the copy was deleted again.
    Ended,
}

/// Copies one session, read from `from` as `record` under `key`, into `to` without undoing
/// anything the site did meanwhile: the step of a migration that drains `from` into `to`
/// while a [`MigratingStore`] over the two serves requests.
///
/// The record is *created* in `to` (never overwriting: whatever `to` holds under the key is
/// newer, and the copy is [`Copied::AlreadyThere`]). After the create, `from` must still hold
/// the session: a logout or a move (login) through the `MigratingStore` between the read of
/// `record` and the create has removed it from `from` first, so if it is gone the copy is
/// deleted again ([`Copied::Ended`]) and the ended session or pre-login id does not come
/// back. `MigratingStore` makes the same step when a read finds a session only in `Old`.
///
/// # Errors
/// The stores' errors. A failure after the create (of the check or of the delete) leaves the
/// copy in `to` even if the session ended meanwhile; running the step again reports it
/// [`Copied::AlreadyThere`] without checking again.
///
/// ```
/// use sessionkit::store::{Copied, MemoryStore, Record, Store, copy_session};
/// use sessionkit::SessionId;
/// use std::time::{Duration, SystemTime};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (from, to) = (MemoryStore::new(), MemoryStore::new());
/// let key = SessionId::generate()?.key();
/// from.create(&key, &Record::new(SystemTime::now() + Duration::from_secs(60))).await?;
/// let record = from.load(&key).await?.expect("scanned").record;
/// assert_eq!(copy_session(&from, &to, &key, &record).await?, Copied::Copied);
/// assert_eq!(copy_session(&from, &to, &key, &record).await?, Copied::AlreadyThere);
///
/// // Ended between the scan and the copy: the copy does not bring it back.
/// let other = SessionId::generate()?.key();
/// from.create(&other, &record).await?;
/// let scanned = from.load(&other).await?.expect("scanned").record;
/// from.delete(&other).await?;
/// assert_eq!(copy_session(&from, &to, &other, &scanned).await?, Copied::Ended);
/// assert!(to.load(&other).await?.is_none());
/// # Ok::<(), sessionkit::Error>(())
/// # }).unwrap();
/// ```
pub async fn copy_session<F, T>(
    from: &F,
    to: &T,
    key: &SessionKey,
    record: &Record,
) -> Result<Copied>
where
    F: Store + ?Sized,
    T: Store + ?Sized,
{
    match to.create(key, record).await {
        Ok(()) => {}
        Err(Error::AlreadyExists) => return Ok(Copied::AlreadyThere),
        Err(e) => return Err(e),
    }
    if from.load(key).await?.is_some() {
        return Ok(Copied::Copied);
    }
    to.delete(key).await?;
    Ok(Copied::Ended)
}
