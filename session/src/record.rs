//! What stores hold: a [`Record`] (the field map plus expiry and owner), and what they
//! apply: a [`ChangeSet`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::SessionKey;
use crate::limits::{Footprint, Limits, later};
use crate::op::Op;

/// The encoding version written by [`Record::encode`].
pub const RECORD_VERSION: u32 = 1;

/// A point in time as whole milliseconds since the Unix epoch, the unit every store uses.
pub fn to_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The inverse of [`to_millis`].
///
/// Saturating: a time past what the platform's `SystemTime` holds (a stored record's, say)
/// becomes a time far in the future, never a panic.
pub fn from_millis(ms: u64) -> SystemTime {
    later(UNIX_EPOCH, Duration::from_millis(ms))
}

/// One session as a store holds it.
///
/// `fields` is the field map: each value is the MessagePack encoding of one entry, decoded
/// only when read. `expires_at` is when the store may forget the record; from that instant
/// it reads as absent. `owner` tags the session for "log out everywhere".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The field map, key to encoded value.
    pub fields: BTreeMap<String, Bytes>,
    /// When the record expires.
    pub expires_at: SystemTime,
    /// Who the session belongs to, if tagged.
    pub owner: Option<String>,
}

/// The versioned, named-field wire form of a record. New fields get `#[serde(default)]`, so
/// records written today keep loading.
#[derive(Serialize, Deserialize)]
struct RecordWire {
    v: u32,
    expires_at_ms: u64,
    #[serde(default)]
    owner: Option<String>,
    fields: BTreeMap<String, Bytes>,
}

impl Record {
    /// An empty record expiring at `expires_at`.
    pub fn new(expires_at: SystemTime) -> Self {
        Record {
            fields: BTreeMap::new(),
            expires_at,
            owner: None,
        }
    }

    /// Whether the record is live at `now`: it expires strictly after `now`. From the instant
    /// `expires_at` on, the record reads as absent (the [`Store`](crate::Store) contract's
    /// "expiry"). Every store and combinator asks this, never `expires_at` directly.
    ///
    /// ```
    /// # use std::time::{Duration, UNIX_EPOCH};
    /// let at = UNIX_EPOCH + Duration::from_secs(60);
    /// let record = sessionkit::store::Record::new(at);
    /// assert!(record.is_live_at(at - Duration::from_millis(1)));
    /// assert!(!record.is_live_at(at), "expired from the instant it expires");
    /// ```
    pub fn is_live_at(&self, now: SystemTime) -> bool {
        self.expires_at > now
    }

    /// Whether the record has expired at `now`: the negation of
    /// [`is_live_at`](Self::is_live_at).
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        !self.is_live_at(now)
    }

    /// Serializes the record for stores that keep it as one blob.
    ///
    /// # Errors
    /// [`Error::Encode`] if serialization fails (it does not for well-formed records).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let wire = RecordWire {
            v: RECORD_VERSION,
            expires_at_ms: to_millis(self.expires_at),
            owner: self.owner.clone(),
            fields: self.fields.clone(),
        };
        rmp_serde::to_vec_named(&wire).map_err(|e| Error::Encode {
            key: String::new(),
            source: Box::new(e),
        })
    }

    /// Parses what [`Record::encode`] wrote.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for bytes that are not a record of a version this build reads.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let wire: RecordWire =
            rmp_serde::from_slice(bytes).map_err(|e| Error::corrupt("undecodable record", e))?;
        if wire.v == 0 || wire.v > RECORD_VERSION {
            return Err(Error::corrupt_message(format!(
                "unknown record version {}",
                wire.v
            )));
        }
        Ok(Record {
            fields: wire.fields,
            expires_at: from_millis(wire.expires_at_ms),
            owner: wire.owner,
        })
    }

    /// Applies a change set to this record in place, in the order the [`Store`] contract
    /// gives: clear, then removals, then sets, then operations, then expiry and owner.
    ///
    /// All or nothing: the operations are worked out before anything changes, so when one
    /// fails the record is left exactly as it was. A store that keeps records whole gets
    /// the operations' semantics from here.
    ///
    /// When the change set carries [`limits`](ChangeSet::limits), the merged record is
    /// checked against them first: no value over the bound, and no growth past the field or
    /// record bound (see [`Limits`]).
    ///
    /// # Errors
    /// [`Error::WrongType`], [`Error::Overflow`] or [`Error::Encode`] from the first
    /// operation that fails (see [`Op::apply_to`]); [`Error::LimitExceeded`] when the
    /// merged record would break a limit. The record is then unchanged.
    ///
    /// [`Store`]: crate::Store
    pub fn apply(&mut self, changes: &ChangeSet) -> Result<()> {
        let results = self.op_results(changes)?;
        if let Some(limits) = &changes.limits {
            self.check_limits(limits, changes, &results)?;
        }
        if changes.clear {
            self.fields.clear();
        }
        for key in &changes.remove {
            self.fields.remove(key);
        }
        for (key, value) in &changes.set {
            self.fields.insert(key.clone(), value.clone());
        }
        for (key, value) in results {
            self.fields.insert(key, value);
        }
        if let Some(expires_at) = changes.expires_at {
            self.expires_at = expires_at;
        }
        if let Some(owner) = &changes.owner {
            self.owner.clone_from(owner);
        }
        Ok(())
    }

    /// Works out the footprint of the merged record (clear, removals, sets, then the
    /// operations' results) without changing anything, and checks it against `limits`.
    fn check_limits(
        &self,
        limits: &Limits,
        changes: &ChangeSet,
        results: &[(String, Bytes)],
    ) -> Result<()> {
        let before = Footprint::of(&self.fields);
        let mut after = if changes.clear {
            Footprint::default()
        } else {
            before
        };
        // What this change set already did to a key: `None` removed, `Some(len)` set.
        let mut overlay: BTreeMap<&str, Option<usize>> = BTreeMap::new();
        let len_of = |overlay: &BTreeMap<&str, Option<usize>>, key: &str| match overlay.get(key) {
            Some(len) => *len,
            None if changes.clear => None,
            None => self.fields.get(key).map(Bytes::len),
        };
        for key in &changes.remove {
            if let Some(old) = len_of(&overlay, key) {
                after.sub(key, old);
            }
            overlay.insert(key, None);
        }
        for (key, value) in changes
            .set
            .iter()
            .chain(results.iter().map(|(k, v)| (k, v)))
        {
            limits.check_value(key, value.len())?;
            if let Some(old) = len_of(&overlay, key) {
                after.sub(key, old);
            }
            after.add(key, value.len());
            overlay.insert(key, Some(value.len()));
        }
        limits.check_growth(before, after)
    }

    /// The value each key with operations ends up with, read against what the key holds
    /// once the change set's clear, removals and sets are applied.
    fn op_results(&self, changes: &ChangeSet) -> Result<Vec<(String, Bytes)>> {
        let mut out = Vec::with_capacity(changes.ops.len());
        for (key, ops) in &changes.ops {
            if ops.is_empty() {
                continue;
            }
            let mut current = match changes.set.get(key) {
                Some(value) => Some(value.clone()),
                None if changes.clear || changes.remove.contains(key) => None,
                None => self.fields.get(key).cloned(),
            };
            for op in ops {
                current = Some(op.apply_to(key, current.as_deref())?);
            }
            if let Some(value) = current {
                out.push((key.clone(), value));
            }
        }
        Ok(out)
    }
}

/// What a save sends: only what changed.
///
/// Stores apply it atomically, merged into what they hold: keys not named here keep whatever
/// value the store has, so two requests changing different keys both keep their change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

    /// The number of value bytes it carries (what a save sends, besides key names).
    pub fn payload_len(&self) -> usize {
        let elements: usize = self
            .ops
            .values()
            .flatten()
            .filter_map(Op::element)
            .map(Bytes::len)
            .sum();
        self.set.values().map(Bytes::len).sum::<usize>() + elements
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grace {
    /// Until when the old key resolves to the moved session.
    pub until: SystemTime,
    /// An opaque token handed back with loads through the old key. The manager seals the new
    /// id in it so that only a holder of the old id can learn the new one; stores keep it as
    /// bytes and never interpret it.
    pub token: Vec<u8>,
}

/// What [`Store::load`](crate::Store::load) returns for a live key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The session's record.
    pub record: Record,
    /// Set when the key was an old key in its grace window: where the session lives now.
    pub moved: Option<Moved>,
}

/// Where a session moved to, when it was loaded through an old key.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl From<Record> for Loaded {
    fn from(record: Record) -> Self {
        Loaded {
            record,
            moved: None,
        }
    }
}

/// An old key forwarding to a new one, for stores that keep it as one blob.
#[derive(Serialize, Deserialize)]
struct AliasWire {
    v: u32,
    to: [u8; 32],
    until_ms: u64,
    token: Vec<u8>,
}

/// How long the old key of a move *without* grace keeps a [tombstone](Entry::Tombstone):
/// long enough for a request that loaded the session before the move to end it through the
/// old key (a logout racing an id change), never resolving for anyone.
pub const MOVE_TOMBSTONE: Duration = Duration::from_secs(60);

/// An old key that resolves to nothing but remembers where its session went.
#[derive(Serialize, Deserialize)]
struct TombstoneWire {
    v: u32,
    to: [u8; 32],
    until_ms: u64,
}

/// What a blob store (file, memory) keeps under a key: a record, or a forward from an old key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A live session.
    Record(Record),
    /// An old key in its grace window.
    Alias {
        /// The key the session moved to.
        to: SessionKey,
        /// Until when the alias resolves.
        until: SystemTime,
        /// The move's token.
        token: Vec<u8>,
    },
    /// The old key of a move without grace: it loads as absent, refuses saves and does not
    /// hold its key against a `create`, but a `delete` through it reports where the session
    /// went ([`Removed::Alias`]), until `until` ([`MOVE_TOMBSTONE`] after the move).
    Tombstone {
        /// The key the session moved to.
        to: SessionKey,
        /// Until when the tombstone is kept.
        until: SystemTime,
    },
}

#[derive(Serialize, Deserialize)]
enum EntryWire {
    R(RecordWire),
    A(AliasWire),
    T(TombstoneWire),
}

impl Entry {
    /// Whether the entry is live at `now`, whatever its kind: it ends strictly after `now`
    /// (for a record, [`Record::is_live_at`]; for an alias or tombstone, its `until`).
    pub fn is_live_at(&self, now: SystemTime) -> bool {
        self.expires_at() > now
    }

    /// When the entry stops resolving.
    pub fn expires_at(&self) -> SystemTime {
        match self {
            Entry::Record(r) => r.expires_at,
            Entry::Alias { until, .. } | Entry::Tombstone { until, .. } => *until,
        }
    }

    /// What a move to `to` leaves under the old key at `now`: the grace alias when the move has
    /// a [`Grace`], else a [tombstone](Entry::Tombstone) for [`MOVE_TOMBSTONE`]; neither
    /// outlives the moved record (`expires_at`).
    pub fn left_by_move(
        to: SessionKey,
        grace: Option<&Grace>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Entry {
        match grace {
            Some(g) => Entry::Alias {
                to,
                until: g.until.min(expires_at),
                token: g.token.clone(),
            },
            None => Entry::Tombstone {
                to,
                until: later(now, MOVE_TOMBSTONE).min(expires_at),
            },
        }
    }

    /// What a delete leaves under the key at `now`: nothing for a record, and a
    /// [tombstone](Entry::Tombstone) for a live alias or tombstone, so that every logout that
    /// loaded the session through this key — not only the first — can follow the move. It
    /// resolves to nothing and expires when the alias would have.
    pub fn left_by_delete(&self, now: SystemTime) -> Option<Entry> {
        match self {
            Entry::Alias { to, until, .. } | Entry::Tombstone { to, until }
                if self.is_live_at(now) =>
            {
                Some(Entry::Tombstone {
                    to: *to,
                    until: *until,
                })
            }
            _ => None,
        }
    }

    /// Whether the entry makes its key resolve at `now` (a live record or grace alias), so a
    /// `create` must not take the key. A tombstone never does.
    pub fn resolves_at(&self, now: SystemTime) -> bool {
        match self {
            Entry::Record(_) | Entry::Alias { .. } => self.is_live_at(now),
            Entry::Tombstone { .. } => false,
        }
    }

    /// Serializes the entry (versioned, named fields).
    ///
    /// # Errors
    /// [`Error::Encode`] if serialization fails.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let wire = match self {
            Entry::Record(r) => EntryWire::R(RecordWire {
                v: RECORD_VERSION,
                expires_at_ms: to_millis(r.expires_at),
                owner: r.owner.clone(),
                fields: r.fields.clone(),
            }),
            Entry::Alias { to, until, token } => EntryWire::A(AliasWire {
                v: RECORD_VERSION,
                to: *to.as_bytes(),
                until_ms: to_millis(*until),
                token: token.clone(),
            }),
            Entry::Tombstone { to, until } => EntryWire::T(TombstoneWire {
                v: RECORD_VERSION,
                to: *to.as_bytes(),
                until_ms: to_millis(*until),
            }),
        };
        rmp_serde::to_vec_named(&wire).map_err(|e| Error::Encode {
            key: String::new(),
            source: Box::new(e),
        })
    }

    /// Parses what [`Entry::encode`] wrote.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let wire: EntryWire =
            rmp_serde::from_slice(bytes).map_err(|e| Error::corrupt("undecodable entry", e))?;
        let v = match &wire {
            EntryWire::R(r) => r.v,
            EntryWire::A(a) => a.v,
            EntryWire::T(t) => t.v,
        };
        if v == 0 || v > RECORD_VERSION {
            return Err(Error::corrupt_message(format!("unknown entry version {v}")));
        }
        Ok(match wire {
            EntryWire::R(r) => Entry::Record(Record {
                fields: r.fields,
                expires_at: from_millis(r.expires_at_ms),
                owner: r.owner,
            }),
            EntryWire::A(a) => Entry::Alias {
                to: SessionKey::from_bytes(a.to),
                until: from_millis(a.until_ms),
                token: a.token,
            },
            EntryWire::T(t) => Entry::Tombstone {
                to: SessionKey::from_bytes(t.to),
                until: from_millis(t.until_ms),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        let mut r = Record::new(from_millis(1_900_000_000_000));
        r.fields.insert("a".into(), Bytes::from_static(&[1, 2, 3]));
        r.fields.insert("".into(), Bytes::new());
        r.owner = Some("alice".into());
        r
    }

    #[test]
    fn record_round_trips() {
        let r = sample();
        assert_eq!(Record::decode(&r.encode().unwrap()).unwrap(), r);
    }

    #[test]
    fn entry_round_trips() {
        let e = Entry::Record(sample());
        assert_eq!(Entry::decode(&e.encode().unwrap()).unwrap(), e);
        let a = Entry::Alias {
            to: SessionKey::from_bytes([7; 32]),
            until: from_millis(123_456),
            token: vec![1, 2],
        };
        assert_eq!(Entry::decode(&a.encode().unwrap()).unwrap(), a);
    }

    /// Every kind of entry, and a delete through it, ends at the instant it expires: live one
    /// millisecond before, gone at `expires_at` itself (the Store contract's expiry).
    #[test]
    fn liveness_ends_at_the_expiry_instant_for_every_kind() {
        let end = from_millis(1_000_000);
        let before = end - Duration::from_millis(1);
        let to = SessionKey::from_bytes([7; 32]);
        let record = Record::new(end);
        assert!(record.is_live_at(before) && !record.is_expired_at(before));
        assert!(!record.is_live_at(end) && record.is_expired_at(end));
        let entries = [
            Entry::Record(record),
            Entry::Alias {
                to,
                until: end,
                token: vec![1],
            },
            Entry::Tombstone { to, until: end },
        ];
        for e in &entries {
            assert!(e.is_live_at(before) && !e.is_live_at(end), "{e:?}");
            assert_eq!(Removed::of(Some(e), end), Removed::Nothing, "{e:?}");
            assert_ne!(Removed::of(Some(e), before), Removed::Nothing, "{e:?}");
            assert_eq!(e.left_by_delete(end), None, "{e:?}");
        }
        assert_eq!(Removed::of(Some(&entries[0]), before), Removed::Record);
        assert_eq!(
            Removed::of(Some(&entries[2]), before),
            Removed::Alias { to }
        );
        assert!(entries[1].resolves_at(before) && !entries[1].resolves_at(end));
        assert!(
            !entries[2].resolves_at(before),
            "a tombstone never resolves"
        );
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for bad in [&b""[..], b"\xc1", b"\x92\x01", b"hello world", &[0xff; 64]] {
            assert!(matches!(Record::decode(bad), Err(Error::Corrupt { .. })));
            assert!(matches!(Entry::decode(bad), Err(Error::Corrupt { .. })));
        }
        let mut future = sample().encode().unwrap();
        // A record from a future version is refused, not misread.
        let wire = RecordWire {
            v: 99,
            expires_at_ms: 0,
            owner: None,
            fields: BTreeMap::new(),
        };
        future = rmp_serde::to_vec_named(&wire).unwrap_or(future);
        assert!(matches!(
            Record::decode(&future),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn apply_orders_clear_remove_set() {
        let mut r = sample();
        let mut c = ChangeSet {
            clear: true,
            ..ChangeSet::default()
        };
        c.set.insert("b".into(), Bytes::from_static(b"x"));
        c.owner = Some(None);
        r.apply(&c).unwrap();
        assert_eq!(r.fields.len(), 1);
        assert_eq!(r.owner, None);
    }

    fn int(n: i64) -> Bytes {
        Bytes::from(rmp_serde::to_vec(&n).unwrap())
    }

    #[test]
    fn ops_apply_after_sets_and_see_clear_and_removals() {
        let mut r = sample();
        r.fields.insert("n".into(), int(5));
        r.fields.insert("m".into(), int(5));
        let mut c = ChangeSet::default();
        c.set.insert("s".into(), int(10));
        c.remove.insert("m".into());
        c.push_op("s", Op::Increment(1));
        c.push_op("m", Op::Increment(1));
        c.push_op("n", Op::Increment(1));
        c.push_op("n", Op::Increment(2));
        r.apply(&c).unwrap();
        assert_eq!(r.fields["s"], int(11), "the set comes first");
        assert_eq!(r.fields["m"], int(1), "a removed key starts from zero");
        assert_eq!(r.fields["n"], int(8), "ops on one key run in order");
        let mut cleared = ChangeSet {
            clear: true,
            ..ChangeSet::default()
        };
        cleared.push_op("n", Op::Increment(1));
        r.apply(&cleared).unwrap();
        assert_eq!(r.fields.len(), 1);
        assert_eq!(r.fields["n"], int(1));
    }

    #[test]
    fn a_failing_op_leaves_the_record_untouched() {
        let mut r = sample();
        let before = r.clone();
        let mut c = ChangeSet {
            clear: true,
            expires_at: Some(from_millis(1)),
            owner: Some(None),
            ..ChangeSet::default()
        };
        c.set.insert("x".into(), Bytes::from_static(b"\xa3str"));
        c.push_op("b", Op::Increment(1));
        c.push_op("x", Op::Increment(1)); // "x" is set to a string by this very change set
        match r.apply(&c) {
            Err(Error::WrongType { key, .. }) => assert_eq!(key, "x"),
            other => panic!("expected a wrong-type error, got {other:?}"),
        }
        assert_eq!(r, before);
        assert!(!c.is_empty());
        assert!(
            ChangeSet {
                ops: BTreeMap::from([("k".to_owned(), Vec::new())]),
                ..ChangeSet::default()
            }
            .is_empty()
        );
    }
}
