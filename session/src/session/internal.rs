//! What sessionkit itself needs from a session: access to any key, reserved ones included
//! (for the manager's bookkeeping and for the `#[derive(SessionData)]` helpers in
//! `__private`), and the change set a save sends.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Session;
use super::state::Intent;
use crate::codec::{decode_value, encode_value};
use crate::error::Result;
use crate::limits::{Footprint, Limits};
use crate::op::Op;
use crate::record::ChangeSet;
use crate::reserved;

impl Session {
    /// Reads any key, reserved ones included.
    pub(crate) fn get_unchecked<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.decode_with(key, decode_value)
    }

    /// Decodes the value under any key with `decode`, under the session's lock.
    pub(crate) fn decode_with<T>(
        &self,
        key: &str,
        decode: impl FnOnce(&str, &[u8]) -> Result<T>,
    ) -> Result<Option<T>> {
        let state = self.state.lock();
        state
            .fields
            .get(key)
            .map(|b| decode(key, &b[..]))
            .transpose()
    }

    /// Writes any key, reserved ones included.
    pub(crate) fn insert_unchecked<T: Serialize + ?Sized>(
        &self,
        key: String,
        value: &T,
    ) -> Result<()> {
        let bytes = encode_value(&key, value)?;
        self.state.lock().set(key, bytes)
    }

    /// Removes any key, reserved ones included; returns whether it was present.
    pub(crate) fn remove_unchecked(&self, key: &str) -> bool {
        self.state.lock().remove(key).is_some()
    }

    /// The encoded bytes under any key.
    pub(crate) fn raw_unchecked(&self, key: &str) -> Option<Bytes> {
        self.state.lock().fields.get(key).cloned()
    }

    /// Writes encoded bytes under any key (marking it changed only if the bytes differ).
    pub(crate) fn set_raw_unchecked(&self, key: String, bytes: Bytes) {
        self.state.lock().put(key, bytes);
    }

    /// Carries out `op` on any key, reserved ones included, once `accept` agreed to the
    /// result; returns the new local value. For the derive's typed operations.
    pub(crate) fn operate_unchecked(
        &self,
        key: &str,
        op: Op,
        accept: impl FnOnce(&Bytes) -> Result<()>,
    ) -> Result<Bytes> {
        self.state.lock().operate(key, op, accept)
    }

    /// The changes since load, as a change set (expiry and owner left unset), and forgets them;
    /// with the session's [`Footprint`]s when loaded and now, read under the same lock, so
    /// the sizes a save checks are those of the changes it sends.
    pub(crate) fn take_changes_with_footprints(&self) -> (ChangeSet, Footprint, Footprint) {
        let mut state = self.state.lock();
        let (loaded, grown) = (state.loaded, state.size);
        let mut changes = ChangeSet {
            clear: state.cleared,
            ops: std::mem::take(&mut state.ops),
            ..ChangeSet::default()
        };
        let dirty = std::mem::take(&mut state.dirty);
        for key in dirty {
            match state.fields.get(&key) {
                Some(v) => {
                    changes.set.insert(key, v.clone());
                }
                None if !state.cleared => {
                    changes.remove.insert(key);
                }
                None => {}
            }
        }
        state.cleared = false;
        (changes, loaded, grown)
    }

    /// The changes since load, and forgets them (the unit tests' view of
    /// [`take_changes_with_footprints`](Self::take_changes_with_footprints)).
    #[cfg(test)]
    pub(crate) fn take_changes(&self) -> ChangeSet {
        self.take_changes_with_footprints().0
    }

    /// Every field, reserved ones included (to create a record from a new session).
    pub(crate) fn all_fields(&self) -> BTreeMap<String, Bytes> {
        self.state.lock().fields.clone()
    }

    /// Whether the session holds anything worth persisting: user data, a flash message or
    /// an owner tag. Sessionkit's own bookkeeping alone is not (SEC-26).
    pub(crate) fn has_user_data(&self) -> bool {
        let state = self.state.lock();
        state
            .fields
            .keys()
            .any(|k| !reserved::is_reserved(k) || reserved::is_flash(k))
            || matches!(state.intent.owner, Some(Some(_)))
            || (state.intent.owner.is_none() && state.owner.is_some())
    }

    /// Records the owner tag the session was loaded with.
    pub(crate) fn set_loaded_owner(&self, owner: Option<String>) {
        self.state.lock().owner = owner;
    }

    /// Sets the bounds the setters enforce (the manager's [`Limits`](crate::Limits)).
    pub(crate) fn set_limits(&self, limits: Limits) {
        self.state.lock().limits = limits;
    }

    /// The session's size when loaded and now, for the manager's check at save.
    #[cfg(test)]
    pub(crate) fn footprints(&self) -> (Footprint, Footprint) {
        let state = self.state.lock();
        (state.loaded, state.size)
    }

    /// Turns flash support off for this handle (`integrate_flash = false`).
    pub(crate) fn disable_flash(&self) {
        self.state.lock().flash_disabled = true;
    }

    /// The lifecycle requests recorded during this request.
    pub(crate) fn intent(&self) -> Intent {
        self.state.lock().intent.clone()
    }
}
