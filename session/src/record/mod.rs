//! What stores hold: a [`Record`] (the field map plus expiry and owner), and what they
//! apply: a [`ChangeSet`].

mod changes;
mod entry;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::SessionKey;
use crate::limits::{Footprint, Limits, later};
use crate::op::Op;

pub use changes::{ChangeSet, Grace, Loaded, Moved, Removed};
pub use entry::{Entry, MOVE_TOMBSTONE};

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
///
/// The fields are public to read and change; the struct is `#[non_exhaustive]`, so a store
/// outside this crate builds one with [`Record::new`] or [`Record::from_parts`], and a
/// field added later breaks no store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

impl RecordWire {
    fn of(record: &Record) -> Self {
        RecordWire {
            v: RECORD_VERSION,
            expires_at_ms: to_millis(record.expires_at),
            owner: record.owner.clone(),
            fields: record.fields.clone(),
        }
    }

    fn into_record(self) -> Record {
        Record {
            fields: self.fields,
            expires_at: from_millis(self.expires_at_ms),
            owner: self.owner,
        }
    }
}

/// Serializes a wire form (MessagePack, named fields).
fn to_wire<T: Serialize>(wire: &T) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(wire).map_err(|e| Error::Encode {
        key: String::new(),
        source: Box::new(e),
    })
}

/// Parses a wire form; `what` names it in the error.
fn from_wire<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::corrupt(format!("undecodable {what}"), e))
}

/// Refuses a layout version this build does not read.
fn check_version(v: u32, what: &str) -> Result<()> {
    if v == 0 || v > RECORD_VERSION {
        return Err(Error::corrupt_message(format!(
            "unknown {what} version {v}"
        )));
    }
    Ok(())
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

    /// A record of `fields`, expiring at `expires_at`, tagged with `owner`: what a store
    /// builds from what it read.
    ///
    /// ```
    /// use sessionkit::store::Record;
    /// use std::collections::BTreeMap;
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let mut fields = BTreeMap::new();
    /// fields.insert("visits".to_owned(), bytes::Bytes::from_static(&[3]));
    /// let at = UNIX_EPOCH + Duration::from_secs(60);
    /// let record = Record::from_parts(fields, at, Some("alice".to_owned()));
    /// assert_eq!(record.owner.as_deref(), Some("alice"));
    /// assert_eq!(record.fields.len(), 1);
    /// ```
    pub fn from_parts(
        fields: BTreeMap<String, Bytes>,
        expires_at: SystemTime,
        owner: Option<String>,
    ) -> Self {
        Record {
            fields,
            expires_at,
            owner,
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
        to_wire(&RecordWire::of(self))
    }

    /// Parses what [`Record::encode`] wrote.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for bytes that are not a record of a version this build reads.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let wire: RecordWire = from_wire(bytes, "record")?;
        check_version(wire.v, "record")?;
        Ok(wire.into_record())
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
