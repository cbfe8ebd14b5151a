//! The session: a field map of MessagePack-encoded values with dictionary access.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{decode_value, encode_value};
use crate::error::Result;
use crate::limits::Footprint;
use crate::reserved::{check_user_key, is_reserved};

mod internal;
mod lifecycle;
mod ops;
mod raw;
mod state;
#[cfg(test)]
mod tests;

pub(crate) use state::Intent;
use state::State;

pub use raw::{RawValue, Value};

/// A visitor's session data: a map from `String` keys to values of any `Serialize` type,
/// each stored encoded and decoded only when read.
///
/// `Session` is a cheap handle: clones share the same data, so a web framework can hand it
/// to several extractors. Every method takes `&self` and holds an internal lock only for the
/// duration of the call.
///
/// It records what changed — keys set, keys removed, a clear — so a save sends only that,
/// merged by the store into what it holds. A request that only reads sends nothing.
///
/// ```
/// use sessionkit::Session;
/// let session = Session::new();
/// session.insert("meals", ["breakfast", "lunch", "dinner"])?;
/// session.insert("username", "Bob")?;
/// assert_eq!(session.get::<String>("username")?.as_deref(), Some("Bob"));
/// assert_eq!(session.get::<Vec<String>>("meals")?.map(|m| m.len()), Some(3));
/// assert_eq!(session.len(), 2);
/// // The wrong type is an error that names the key, never a panic.
/// let err = session.get::<u32>("username").unwrap_err();
/// assert!(err.to_string().contains("username"));
/// # Ok::<(), sessionkit::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Session {
    state: Arc<Mutex<State>>,
}

impl Session {
    /// An empty session.
    ///
    /// ```
    /// let session = sessionkit::Session::new();
    /// assert!(session.is_empty() && !session.is_modified());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A session holding `fields` as loaded from a store, with nothing changed yet.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use sessionkit::Session;
    /// let mut fields = BTreeMap::new();
    /// fields.insert("visits".to_owned(), bytes::Bytes::from_static(&[3])); // MessagePack for 3
    /// let session = Session::from_fields(fields);
    /// assert_eq!(session.get::<u32>("visits")?, Some(3));
    /// assert!(!session.is_modified());
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn from_fields(fields: BTreeMap<String, Bytes>) -> Self {
        let size = Footprint::of(&fields);
        Session {
            state: Arc::new(Mutex::new(State {
                fields,
                size,
                loaded: size,
                ..State::default()
            })),
        }
    }

    /// The value under `key`, decoded as `T`; `None` when absent.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("username", "bob")?;
    /// assert_eq!(session.get::<String>("username")?.as_deref(), Some("bob"));
    /// assert_eq!(session.get::<String>("missing")?, None);
    /// assert!(session.get::<u32>("username").is_err()); // the wrong type
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Decode`](crate::Error::Decode) naming the key and `T` when the stored value is not a `T`;
    /// [`Error::ReservedKey`](crate::Error::ReservedKey) for sessionkit's own keys.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        check_user_key(key)?;
        self.get_unchecked(key)
    }

    /// Stores `value` under `key`, replacing any previous value.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("cart", vec![("apple", 3u32)])?;
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Encode`](crate::Error::Encode) when `value` cannot be serialized (the session is unchanged);
    /// [`Error::ReservedKey`](crate::Error::ReservedKey) for sessionkit's own keys; [`Error::LimitExceeded`](crate::Error::LimitExceeded) when the
    /// value, or the session with it, breaks the [`Limits`](crate::Limits) (the manager's
    /// [`SessionConfig::limits`](crate::SessionConfig::limits), or the defaults for a
    /// session made with [`Session::new`]); the session is then unchanged. Every setter
    /// that returns a `Result` checks the limits the same way; those that cannot fail
    /// ([`update`](Self::update), a typed view's whole-struct write) are
    /// checked when the session is saved.
    pub fn insert<T: Serialize>(&self, key: impl Into<String>, value: T) -> Result<()> {
        let key = key.into();
        check_user_key(&key)?;
        self.insert_unchecked(key, &value)
    }

    /// Stores `value` under `key` and returns the previous value decoded as `U`.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("theme", "light")?;
    /// let old: Option<String> = session.replace("theme", "dark")?;
    /// assert_eq!(old.as_deref(), Some("light"));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`insert`](Self::insert); [`Error::Decode`](crate::Error::Decode) when the previous value is not a `U`
    /// (the new value is not stored then).
    pub fn replace<T: Serialize, U: DeserializeOwned>(
        &self,
        key: impl Into<String>,
        value: T,
    ) -> Result<Option<U>> {
        let key = key.into();
        check_user_key(&key)?;
        let bytes = encode_value(&key, &value)?;
        let mut state = self.state.lock();
        let old = match state.fields.get(&key) {
            Some(old) => Some(decode_value::<U>(&key, old)?),
            None => None,
        };
        state.set(key, bytes)?;
        Ok(old)
    }

    /// Removes `key`; returns whether it was present.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("cart", [1, 2])?;
    /// assert!(session.remove("cart"));
    /// assert!(!session.remove("cart"));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn remove(&self, key: &str) -> bool {
        !is_reserved(key) && self.state.lock().remove(key).is_some()
    }

    /// Removes `key` and returns its value decoded as `T`.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("return_to", "/checkout")?;
    /// assert_eq!(session.take::<String>("return_to")?.as_deref(), Some("/checkout"));
    /// assert!(!session.contains_key("return_to"));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Decode`](crate::Error::Decode) when the value is not a `T` (the key is then kept);
    /// [`Error::ReservedKey`](crate::Error::ReservedKey) for sessionkit's own keys.
    pub fn take<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        check_user_key(key)?;
        let mut state = self.state.lock();
        let Some(bytes) = state.fields.get(key) else {
            return Ok(None);
        };
        let value = decode_value(key, bytes)?;
        state.remove(key);
        Ok(Some(value))
    }

    /// Whether `key` holds a value.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("user_id", 42)?;
    /// assert!(session.contains_key("user_id"));
    /// assert!(!session.contains_key("cart"));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn contains_key(&self, key: &str) -> bool {
        !is_reserved(key) && self.state.lock().fields.contains_key(key)
    }

    /// The keys, in order.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("b", 2)?;
    /// session.insert("a", 1)?;
    /// assert_eq!(session.keys(), ["a", "b"]);
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn keys(&self) -> Vec<String> {
        self.state
            .lock()
            .fields
            .keys()
            .filter(|k| !is_reserved(k))
            .cloned()
            .collect()
    }

    /// How many keys hold values.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("a", 1)?;
    /// session.insert("b", 2)?;
    /// assert_eq!(session.len(), 2);
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .fields
            .keys()
            .filter(|k| !is_reserved(k))
            .count()
    }

    /// Whether no key holds a value.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// assert!(session.is_empty());
    /// session.insert("a", 1)?;
    /// assert!(!session.is_empty());
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every key. The save clears the stored session, so keys another request added
    /// meanwhile go too.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("a", 1)?;
    /// session.clear();
    /// assert!(session.is_empty() && session.is_modified());
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn clear(&self) {
        let mut state = self.state.lock();
        state.fields.retain(|k, _| is_reserved(k));
        state.size = Footprint::of(&state.fields);
        state.ops.clear();
        state.cleared = true;
        // The clear wipes the stored map; sessionkit's own keys are written again after it.
        let kept: Vec<String> = state.fields.keys().cloned().collect();
        state.dirty = kept.into_iter().collect();
    }

    /// A snapshot of the entries, in key order.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("a", 1)?;
    /// session.insert("b", "two")?;
    /// for entry in session.iter() {
    ///     println!("{} = {}", entry.key(), entry.to_value()?);
    /// }
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn iter(&self) -> std::vec::IntoIter<RawValue> {
        self.state
            .lock()
            .fields
            .iter()
            .filter(|(k, _)| !is_reserved(k))
            .map(|(k, v)| RawValue {
                key: k.clone(),
                bytes: v.clone(),
            })
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// The value under `key`, or `default()` stored under it first (Python's `setdefault`).
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// assert_eq!(session.get_or_insert_with("lang", || "en".to_owned())?, "en");
    /// // Present now: the default is not used.
    /// assert_eq!(session.get_or_insert_with("lang", || "fr".to_owned())?, "en");
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Decode`](crate::Error::Decode) when the present value is not a `T`; [`Error::Encode`](crate::Error::Encode) when the
    /// default cannot be serialized; [`Error::ReservedKey`](crate::Error::ReservedKey) for sessionkit's own keys.
    pub fn get_or_insert_with<T, F>(&self, key: &str, default: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T,
    {
        check_user_key(key)?;
        let mut state = self.state.lock();
        if let Some(bytes) = state.fields.get(key) {
            return decode_value(key, bytes);
        }
        let value = default();
        let bytes = encode_value(key, &value)?;
        state.set(key.to_owned(), bytes)?;
        Ok(value)
    }

    /// Encodes and inserts every `(key, value)` pair, replacing present values; all or
    /// nothing: when one pair is refused (a reserved key, a value that cannot be encoded, or
    /// the batch breaking the [`Limits`](crate::Limits)), none is inserted. To copy the
    /// entries of another session as stored, see [`update`](Self::update).
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.extend([("width", 800), ("height", 600)])?;
    /// assert_eq!(session.get::<u32>("height")?, Some(600));
    /// // A reserved key refuses the whole batch.
    /// assert!(session.extend([("depth", 1), ("__sk.x", 2)]).is_err());
    /// assert!(!session.contains_key("depth"));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// The first [`Error::Encode`](crate::Error::Encode) or [`Error::ReservedKey`](crate::Error::ReservedKey), or [`Error::LimitExceeded`](crate::Error::LimitExceeded);
    /// then nothing is inserted.
    pub fn extend<K, V, I>(&self, entries: I) -> Result<()>
    where
        K: Into<String>,
        V: Serialize,
        I: IntoIterator<Item = (K, V)>,
    {
        let mut encoded = Vec::new();
        for (k, v) in entries {
            let k = k.into();
            check_user_key(&k)?;
            let bytes = encode_value(&k, &v)?;
            encoded.push((k, bytes));
        }
        let mut state = self.state.lock();
        // All or nothing: the whole batch is checked against the limits before any of it is
        // set (a key given twice counts once, with its last value).
        let mut after = state.size;
        let mut batch: BTreeMap<&str, usize> = BTreeMap::new();
        for (k, bytes) in &encoded {
            state.limits.check_value(k, bytes.len())?;
            let old = batch
                .insert(k, bytes.len())
                .or_else(|| state.fields.get(k).map(Bytes::len));
            if let Some(old) = old {
                after.sub(k, old);
            }
            after.add(k, bytes.len());
        }
        state.limits.check_growth(state.size, after)?;
        for (k, bytes) in encoded {
            state.put(k, bytes);
        }
        Ok(())
    }

    /// Copies every entry of `other` into this session as stored (no decoding or encoding),
    /// replacing present values with the same key; sessionkit's own reserved entries of
    /// `other` are not copied. To insert values of your own, see [`extend`](Self::extend).
    ///
    /// It cannot fail, so it does not check the [`Limits`](crate::Limits): a session it grows past them is
    /// refused when the manager saves it ([`Error::LimitExceeded`](crate::Error::LimitExceeded), nothing written).
    ///
    /// ```
    /// # use sessionkit::Session;
    /// let guest = Session::new();
    /// guest.insert("cart", ["tea"])?;
    /// let user = Session::new();
    /// user.insert("user_id", 42)?;
    /// user.update(&guest);
    /// assert_eq!(user.keys(), ["cart", "user_id"]);
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn update(&self, other: &Session) {
        let entries: Vec<RawValue> = other.iter().collect();
        let mut state = self.state.lock();
        for raw in entries {
            state.put(raw.key, raw.bytes);
        }
    }

    /// Keeps only the entries for which `keep` returns `true`.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("draft.title", "Hi")?;
    /// session.insert("user_id", 42)?;
    /// session.retain(|entry| !entry.key().starts_with("draft."));
    /// assert_eq!(session.keys(), ["user_id"]);
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn retain<F: FnMut(&RawValue) -> bool>(&self, mut keep: F) {
        let mut state = self.state.lock();
        let doomed: Vec<String> = state
            .fields
            .iter()
            .filter(|(k, _)| !is_reserved(k))
            .filter(|(k, v)| {
                !keep(&RawValue {
                    key: (*k).clone(),
                    bytes: (*v).clone(),
                })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            state.remove(&key);
        }
    }

    /// Whether anything changed since the session was loaded (or last saved).
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// assert!(!session.is_modified());
    /// session.insert("a", 1)?;
    /// assert!(session.is_modified());
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn is_modified(&self) -> bool {
        let state = self.state.lock();
        state.cleared || !state.dirty.is_empty() || !state.ops.is_empty()
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
