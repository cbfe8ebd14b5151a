//! The state behind a [`Session`](super::Session) handle, and the edits every setter goes through: the
//! limits check, change tracking and the footprint.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::error::Result;
use crate::limits::{Footprint, Limits};
use crate::op::{Op, array_len};

#[derive(Default)]
pub(super) struct State {
    pub(super) fields: BTreeMap<String, Bytes>,
    pub(super) dirty: BTreeSet<String>,
    /// Operations for the store, per key, on keys with no pending set or removal.
    pub(super) ops: BTreeMap<String, Vec<Op>>,
    pub(super) cleared: bool,
    /// The owner tag the session was loaded with.
    pub(super) owner: Option<String>,
    /// What the handler asked the manager to do at the end of the request.
    pub(super) intent: Intent,
    /// Flash names set during this request: not readable until a later one.
    pub(super) fresh_flash: BTreeSet<String>,
    pub(super) flash_disabled: bool,
    /// The bounds setters enforce (the manager's, or the defaults).
    pub(super) limits: Limits,
    /// How much `fields` holds now, and held when loaded.
    pub(super) size: Footprint,
    pub(super) loaded: Footprint,
}

/// Lifecycle requests recorded on a [`Session`](super::Session) for the manager to carry out at the end of
/// the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Intent {
    pub(crate) regenerate: bool,
    pub(crate) destroy: bool,
    /// `Some(new)` when the owner tag is to change.
    pub(crate) owner: Option<Option<String>>,
}

impl State {
    /// Refuses setting `key` to `bytes` past the session's [`Limits`].
    pub(super) fn admit(&self, key: &str, bytes: &Bytes) -> Result<()> {
        let old = self.fields.get(key).map(Bytes::len);
        self.limits.admit(self.size, key, old, bytes.len())
    }

    /// A set within the limits (see [`put`](Self::put)); refused ones change nothing.
    pub(super) fn set(&mut self, key: String, bytes: Bytes) -> Result<()> {
        self.admit(&key, &bytes)?;
        self.put(key, bytes);
        Ok(())
    }

    /// A plain set replaces the key's pending operations: the store gets the whole value.
    /// Unchecked: for setters that cannot fail (the manager checks the limits at save).
    pub(super) fn put(&mut self, key: String, bytes: Bytes) -> Option<Bytes> {
        let had_ops = self.ops.remove(&key).is_some();
        if !had_ops && self.fields.get(&key) == Some(&bytes) {
            return Some(bytes);
        }
        self.dirty.insert(key.clone());
        self.replace_field(key, bytes)
    }

    /// `fields.insert`, keeping the footprint.
    pub(super) fn replace_field(&mut self, key: String, bytes: Bytes) -> Option<Bytes> {
        if let Some(old) = self.fields.get(&key) {
            self.size.sub(&key, old.len());
        }
        self.size.add(&key, bytes.len());
        self.fields.insert(key, bytes)
    }

    pub(super) fn remove(&mut self, key: &str) -> Option<Bytes> {
        let had_ops = self.ops.remove(key).is_some();
        let old = self.fields.remove(key);
        if let Some(old) = &old {
            self.size.sub(key, old.len());
        }
        if old.is_some() || had_ops {
            self.dirty.insert(key.to_owned());
        }
        old
    }

    /// Carries out `op` on the local value of `key` (after `accept` agreed to the result) and
    /// records it for the store, which repeats it on the value it holds. When the key already
    /// has a pending set or removal (or the session was cleared), the store is sent the whole
    /// local value instead: the set already stands for everything this request did to it.
    pub(super) fn operate(
        &mut self,
        key: &str,
        op: Op,
        accept: impl FnOnce(&Bytes) -> Result<()>,
    ) -> Result<Bytes> {
        let next = op.apply_to(key, self.fields.get(key).map(|b| &b[..]))?;
        accept(&next)?;
        self.admit(key, &next)?;
        self.replace_field(key.to_owned(), next.clone());
        if self.cleared || self.dirty.contains(key) {
            self.dirty.insert(key.to_owned());
        } else {
            self.ops.entry(key.to_owned()).or_default().push(op);
        }
        Ok(next)
    }

    /// The number of elements of the local array under `key` (0 when absent or not an array).
    pub(super) fn array_len(&self, key: &str) -> usize {
        self.fields.get(key).and_then(|b| array_len(b)).unwrap_or(0)
    }
}
