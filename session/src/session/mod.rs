//! The session: a field map of MessagePack-encoded values with dictionary access.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{decode_value, encode_value};
use crate::error::{Error, Result};
use crate::limits::Footprint;
use crate::reserved::{check_user_key, is_reserved};

mod internal;
mod lifecycle;
mod ops;
mod state;
#[cfg(test)]
mod tests;

pub(crate) use state::Intent;
use state::State;

/// A dynamically typed value, for data whose type the reader does not know: inspect it,
/// print it, or store it under another key.
pub use rmpv::Value;

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

/// One encoded value of a session, with the key it came from, as returned by
/// [`Session::get_raw`] and [`Session::iter`].
#[derive(Clone, PartialEq, Eq)]
pub struct RawValue {
    key: String,
    bytes: Bytes,
}

impl RawValue {
    /// The key this value was read from.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The MessagePack bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decodes the value as `T`.
    ///
    /// # Errors
    /// [`Error::Decode`] naming the key and `T` when the bytes are not a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        decode_value(&self.key, &self.bytes)
    }

    /// Decodes the value without knowing its type.
    ///
    /// # Errors
    /// [`Error::Decode`] when the bytes are not MessagePack.
    pub fn to_value(&self) -> Result<Value> {
        decode_dynamic(&self.key, &self.bytes)
    }
}

impl fmt::Debug for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_value() {
            Ok(v) => write!(f, "{:?} => {v}", self.key),
            Err(_) => write!(
                f,
                "{:?} => <{} undecodable bytes>",
                self.key,
                self.bytes.len()
            ),
        }
    }
}

/// Decodes bytes without knowing their type; the whole input must be one value.
fn decode_dynamic(key: &str, mut bytes: &[u8]) -> Result<Value> {
    let value = rmpv::decode::read_value(&mut bytes).map_err(|e| Error::Decode {
        key: key.to_owned(),
        expected: "sessionkit::Value",
        source: Box::new(e),
    })?;
    if bytes.is_empty() {
        Ok(value)
    } else {
        Err(Error::Decode {
            key: key.to_owned(),
            expected: "sessionkit::Value",
            source: "trailing bytes after the value".into(),
        })
    }
}

impl Session {
    /// An empty session.
    pub fn new() -> Self {
        Self::default()
    }

    /// A session holding `fields` as loaded from a store, with nothing changed yet.
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
    /// # Errors
    /// [`Error::Decode`] naming the key and `T` when the stored value is not a `T`;
    /// [`Error::ReservedKey`] for sessionkit's own keys.
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
    /// [`Error::Encode`] when `value` cannot be serialized (the session is unchanged);
    /// [`Error::ReservedKey`] for sessionkit's own keys; [`Error::LimitExceeded`] when the
    /// value, or the session with it, breaks the [`Limits`] (the manager's
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
    /// # Errors
    /// As [`insert`](Self::insert); [`Error::Decode`] when the previous value is not a `U`
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
    pub fn remove(&self, key: &str) -> bool {
        !is_reserved(key) && self.state.lock().remove(key).is_some()
    }

    /// Removes `key` and returns its value decoded as `T`.
    ///
    /// # Errors
    /// [`Error::Decode`] when the value is not a `T` (the key is then kept);
    /// [`Error::ReservedKey`] for sessionkit's own keys.
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
    pub fn contains_key(&self, key: &str) -> bool {
        !is_reserved(key) && self.state.lock().fields.contains_key(key)
    }

    /// The keys, in order.
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
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .fields
            .keys()
            .filter(|k| !is_reserved(k))
            .count()
    }

    /// Whether no key holds a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every key. The save clears the stored session, so keys another request added
    /// meanwhile go too.
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
    /// # Errors
    /// [`Error::Decode`] when the present value is not a `T`; [`Error::Encode`] when the
    /// default cannot be serialized; [`Error::ReservedKey`] for sessionkit's own keys.
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

    /// Inserts every pair; all or nothing (Python's `update`).
    ///
    /// # Errors
    /// The first [`Error::Encode`] or [`Error::ReservedKey`]; then nothing is inserted.
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

    /// Copies every entry of `other` into this session, as stored (no decoding).
    ///
    /// It cannot fail, so it does not check the [`Limits`]: a session it grows past them is
    /// refused when the manager saves it ([`Error::LimitExceeded`], nothing written).
    pub fn update(&self, other: &Session) {
        let entries: Vec<RawValue> = other.iter().collect();
        let mut state = self.state.lock();
        for raw in entries {
            state.put(raw.key, raw.bytes);
        }
    }

    /// Keeps only the entries for which `keep` returns `true`.
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

    /// The value under `key` without knowing its type.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("visits", 3)?;
    /// let v = session.get_value("visits")?.unwrap();
    /// assert_eq!(v.as_u64(), Some(3));
    /// assert_eq!(v.to_string(), "3");
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Decode`] when the stored bytes are not MessagePack;
    /// [`Error::ReservedKey`] for sessionkit's own keys.
    pub fn get_value(&self, key: &str) -> Result<Option<Value>> {
        check_user_key(key)?;
        let state = self.state.lock();
        state
            .fields
            .get(key)
            .map(|b| decode_dynamic(key, b))
            .transpose()
    }

    /// Stores a dynamic value under `key`.
    ///
    /// # Errors
    /// [`Error::ReservedKey`] for sessionkit's own keys.
    pub fn insert_value(&self, key: impl Into<String>, value: &Value) -> Result<()> {
        let key = key.into();
        check_user_key(&key)?;
        let mut buf = Vec::new();
        rmpv::encode::write_value(&mut buf, value).map_err(|e| Error::Encode {
            key: key.clone(),
            source: Box::new(e),
        })?;
        self.state.lock().set(key, Bytes::from(buf))
    }

    /// The encoded value under `key`, to inspect or to copy elsewhere with
    /// [`insert_raw`](Self::insert_raw).
    pub fn get_raw(&self, key: &str) -> Option<RawValue> {
        if is_reserved(key) {
            return None;
        }
        self.state.lock().fields.get(key).map(|b| RawValue {
            key: key.to_owned(),
            bytes: b.clone(),
        })
    }

    /// Stores an encoded value under `key` as is.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("draft", vec![1, 2, 3])?;
    /// let raw = session.get_raw("draft").unwrap();
    /// session.insert_raw("published", raw)?;
    /// assert_eq!(session.get::<Vec<u8>>("published")?, Some(vec![1, 2, 3]));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::ReservedKey`] for sessionkit's own keys.
    pub fn insert_raw(&self, key: impl Into<String>, value: RawValue) -> Result<()> {
        let key = key.into();
        check_user_key(&key)?;
        self.state.lock().set(key, value.bytes)
    }

    /// Whether anything changed since the session was loaded (or last saved).
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
