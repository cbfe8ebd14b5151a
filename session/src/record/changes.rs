//! What a save sends ([`ChangeSet`]) and what loads, moves and deletes report.

use super::*;

/// What a save sends: only what changed.
///
/// Stores apply it atomically, merged into what they hold: keys not named here keep whatever
/// value the store has, so two requests changing different keys both keep their change.
///
/// `#[non_exhaustive]`: outside this crate, start from [`ChangeSet::default`] and set the
/// (public) fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeSet {
    /// Remove every field first.
    pub clear: bool,
    /// Keys to remove.
    pub remove: BTreeSet<String>,
    /// Keys to set, with their encoded values.
    pub set: BTreeMap<String, Bytes>,
    /// A new expiry, if it changed.
    pub expires_at: Option<SystemTime>,
    /// A new owner tag (`Some(None)` removes it), if it changed.
    pub owner: Option<Option<String>>,
    /// Operations to carry out on the stored values, per key in the order given, after the
    /// sets: a counter incremented here adds to the value the store holds, not to the value
    /// this request loaded.
    pub ops: BTreeMap<String, Vec<Op>>,
    /// Bounds the merged record must keep, checked by [`Record::apply`] atomically with
    /// the merge (a store that merges elsewhere documents what it checks). Not a change:
    /// [`is_empty`](Self::is_empty) ignores it. The manager sets its
    /// [`SessionConfig::limits`](crate::SessionConfig::limits).
    pub limits: Option<Limits>,
}

impl ChangeSet {
    /// Whether applying it would change nothing.
    pub fn is_empty(&self) -> bool {
        !self.clear
            && self.remove.is_empty()
            && self.set.is_empty()
            && self.expires_at.is_none()
            && self.owner.is_none()
            && self.ops.values().all(Vec::is_empty)
    }

    /// Appends an operation on `key`, after those already queued for it.
    ///
    /// ```
    /// use sessionkit::store::{ChangeSet, Op};
    /// let mut changes = ChangeSet::default();
    /// changes.push_op("visits", Op::Increment(1));
    /// assert!(!changes.is_empty());
    /// ```
    pub fn push_op(&mut self, key: impl Into<String>, op: Op) {
        self.ops.entry(key.into()).or_default().push(op);
    }
}

/// How the old key of a moved session keeps resolving for a while (id regeneration with a
/// grace window).
///
/// `#[non_exhaustive]`: built with [`Grace::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grace {
    /// Until when the old key resolves to the moved session.
    pub until: SystemTime,
    /// An opaque token handed back with loads through the old key. The manager seals the new
    /// id in it so that only a holder of the old id can learn the new one; stores keep it as
    /// bytes and never interpret it.
    pub token: Vec<u8>,
}

/// What [`Store::load`](crate::Store::load) returns for a live key.
///
/// `#[non_exhaustive]`: built with [`Loaded::new`] (or from a [`Record`], for a key that
/// did not move).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Loaded {
    /// The session's record.
    pub record: Record,
    /// Set when the key was an old key in its grace window: where the session lives now.
    pub moved: Option<Moved>,
}

/// Where a session moved to, when it was loaded through an old key.
///
/// `#[non_exhaustive]`: built with [`Moved::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Moved {
    /// The key the session lives under now; saves go there.
    pub to: SessionKey,
    /// The [`Grace::token`] given to the move.
    pub token: Vec<u8>,
}

/// What [`Store::delete`](crate::Store::delete) found under the key it removed.
///
/// A caller that means to end a session wherever it lives now follows
/// [`Removed::Alias`] to the key the session moved to (see
/// [`StoreExt::end_session`](crate::StoreExt::end_session)): an alias is removed alone, and the
/// record it points to stays until it is removed in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// The key held nothing live (absent, expired, or an alias past its grace window).
    Nothing,
    /// The key held a live record, now removed.
    Record,
    /// The key was the grace-window alias (or the [tombstone](Entry::Tombstone) of a move
    /// without grace) of a session that moved to `to`; it is removed, the record under `to`
    /// is not.
    Alias {
        /// The key the alias pointed to.
        to: SessionKey,
    },
}

impl Removed {
    /// What removing `entry` (if any) at `now` removed.
    pub fn of(entry: Option<&Entry>, now: SystemTime) -> Self {
        match entry {
            Some(e) if !e.is_live_at(now) => Removed::Nothing,
            Some(Entry::Record(_)) => Removed::Record,
            Some(Entry::Alias { to, .. } | Entry::Tombstone { to, .. }) => {
                Removed::Alias { to: *to }
            }
            _ => Removed::Nothing,
        }
    }
}

impl Grace {
    /// A grace window until `until`, handing `token` back with loads through the old key.
    ///
    /// ```
    /// use sessionkit::store::Grace;
    /// use std::time::{Duration, SystemTime};
    /// let grace = Grace::new(SystemTime::now() + Duration::from_secs(10), b"sealed".to_vec());
    /// assert_eq!(grace.token, b"sealed");
    /// ```
    pub fn new(until: SystemTime, token: Vec<u8>) -> Self {
        Grace { until, token }
    }
}

impl Loaded {
    /// What a load returns: `record`, and `moved` when the key loaded was an old key in its
    /// grace window.
    ///
    /// ```
    /// use sessionkit::store::{Loaded, Moved, Record};
    /// use sessionkit::SessionId;
    /// use std::time::{Duration, SystemTime};
    /// let record = Record::new(SystemTime::now() + Duration::from_secs(60));
    /// let to = SessionId::generate()?.key();
    /// let loaded = Loaded::new(record, Some(Moved::new(to, b"sealed".to_vec())));
    /// assert_eq!(loaded.moved.map(|m| m.to), Some(to));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn new(record: Record, moved: Option<Moved>) -> Self {
        Loaded { record, moved }
    }
}

impl Moved {
    /// The session moved to `to`; `token` is the move's [`Grace::token`].
    pub fn new(to: SessionKey, token: Vec<u8>) -> Self {
        Moved { to, token }
    }
}

impl From<Record> for Loaded {
    fn from(record: Record) -> Self {
        Loaded {
            record,
            moved: None,
        }
    }
}
