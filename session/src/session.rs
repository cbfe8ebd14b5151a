//! The session: a field map of MessagePack-encoded values with dictionary access.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::limits::{Footprint, Limits};
use crate::op::{Op, array_len};
use crate::record::ChangeSet;

/// Keys that start with this prefix belong to sessionkit (expiry bookkeeping, flash, binding)
/// and are refused by the dictionary API and by `#[derive(SessionData)]`.
pub const RESERVED_PREFIX: &str = "__sk.";

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

#[derive(Default)]
struct State {
    fields: BTreeMap<String, Bytes>,
    dirty: BTreeSet<String>,
    /// Operations for the store, per key, on keys with no pending set or removal.
    ops: BTreeMap<String, Vec<Op>>,
    cleared: bool,
    /// The owner tag the session was loaded with.
    owner: Option<String>,
    /// What the handler asked the manager to do at the end of the request.
    intent: Intent,
    /// Flash names set during this request: not readable until a later one.
    fresh_flash: BTreeSet<String>,
    flash_disabled: bool,
    /// The bounds setters enforce (the manager's, or the defaults).
    limits: Limits,
    /// How much `fields` holds now, and held when loaded.
    size: Footprint,
    loaded: Footprint,
}

/// Lifecycle requests recorded on a [`Session`] for the manager to carry out at the end of
/// the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Intent {
    pub(crate) regenerate: bool,
    pub(crate) destroy: bool,
    /// `Some(new)` when the owner tag is to change.
    pub(crate) owner: Option<Option<String>>,
}

/// The reserved key holding the per-session "remember me" choice.
pub(crate) const PERSIST_KEY: &str = "__sk.persist";
/// The reserved prefix of flash entries.
pub(crate) const FLASH_PREFIX: &str = "__sk.flash.";

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
        decode(&self.key, &self.bytes)
    }

    /// Decodes the value without knowing its type.
    ///
    /// # Errors
    /// [`Error::Decode`] when the bytes are not MessagePack.
    pub fn to_value(&self) -> Result<Value> {
        decode_value(&self.key, &self.bytes)
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

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::Decode {
        key: key.to_owned(),
        expected: std::any::type_name::<T>(),
        source: Box::new(e),
    })
}

fn decode_value(key: &str, mut bytes: &[u8]) -> Result<Value> {
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

fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Bytes> {
    rmp_serde::to_vec_named(value)
        .map(Bytes::from)
        .map_err(|e| Error::Encode {
            key: key.to_owned(),
            source: Box::new(e),
        })
}

fn check_user_key(key: &str) -> Result<()> {
    if key.starts_with(RESERVED_PREFIX) {
        Err(Error::ReservedKey {
            key: key.to_owned(),
        })
    } else {
        Ok(())
    }
}

fn is_user_key(key: &str) -> bool {
    !key.starts_with(RESERVED_PREFIX)
}

impl State {
    /// Refuses setting `key` to `bytes` past the session's [`Limits`].
    fn admit(&self, key: &str, bytes: &Bytes) -> Result<()> {
        let old = self.fields.get(key).map(Bytes::len);
        self.limits.admit(self.size, key, old, bytes.len())
    }

    /// A set within the limits (see [`put`](Self::put)); refused ones change nothing.
    fn set(&mut self, key: String, bytes: Bytes) -> Result<()> {
        self.admit(&key, &bytes)?;
        self.put(key, bytes);
        Ok(())
    }

    /// A plain set replaces the key's pending operations: the store gets the whole value.
    /// Unchecked: for setters that cannot fail (the manager checks the limits at save).
    fn put(&mut self, key: String, bytes: Bytes) -> Option<Bytes> {
        let had_ops = self.ops.remove(&key).is_some();
        if !had_ops && self.fields.get(&key) == Some(&bytes) {
            return Some(bytes);
        }
        self.dirty.insert(key.clone());
        self.replace_field(key, bytes)
    }

    /// `fields.insert`, keeping the footprint.
    fn replace_field(&mut self, key: String, bytes: Bytes) -> Option<Bytes> {
        if let Some(old) = self.fields.get(&key) {
            self.size.sub(&key, old.len());
        }
        self.size.add(&key, bytes.len());
        self.fields.insert(key, bytes)
    }

    fn remove(&mut self, key: &str) -> Option<Bytes> {
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
    fn operate(
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
    fn array_len(&self, key: &str) -> usize {
        self.fields.get(key).and_then(|b| array_len(b)).unwrap_or(0)
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
        let bytes = encode(&key, &value)?;
        let mut state = self.state.lock();
        let old = match state.fields.get(&key) {
            Some(old) => Some(decode::<U>(&key, old)?),
            None => None,
        };
        state.set(key, bytes)?;
        Ok(old)
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&self, key: &str) -> bool {
        is_user_key(key) && self.state.lock().remove(key).is_some()
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
        let value = decode(key, bytes)?;
        state.remove(key);
        Ok(Some(value))
    }

    /// Whether `key` holds a value.
    pub fn contains_key(&self, key: &str) -> bool {
        is_user_key(key) && self.state.lock().fields.contains_key(key)
    }

    /// The keys, in order.
    pub fn keys(&self) -> Vec<String> {
        self.state
            .lock()
            .fields
            .keys()
            .filter(|k| is_user_key(k))
            .cloned()
            .collect()
    }

    /// How many keys hold values.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .fields
            .keys()
            .filter(|k| is_user_key(k))
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
        state.fields.retain(|k, _| !is_user_key(k));
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
            .filter(|(k, _)| is_user_key(k))
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
            return decode(key, bytes);
        }
        let value = default();
        let bytes = encode(key, &value)?;
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
            let bytes = encode(&k, &v)?;
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
            .filter(|(k, _)| is_user_key(k))
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
            .map(|b| decode_value(key, b))
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
        if !is_user_key(key) {
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

    // ---- operations: merged by the store into the value it holds, so none is lost ----

    /// Adds `delta` to the integer under `key` (absent counts as 0) and returns the new value
    /// as this request sees it.
    ///
    /// The save does not write that value: it asks the store to add `delta` to whatever the
    /// key holds then, so concurrent requests incrementing one counter all count. A later
    /// [`insert`](Self::insert) of the key replaces the increment with a plain set.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// assert_eq!(session.increment("visits", 1)?, 1);
    /// assert_eq!(session.increment("visits", 2)?, 3);
    /// assert_eq!(session.get::<i64>("visits")?, Some(3));
    /// assert!(session.is_modified());
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::WrongType`] when the value is not an integer; [`Error::Overflow`] when the
    /// result leaves `i64`; [`Error::ReservedKey`] for sessionkit's own keys. The session is
    /// then unchanged. The store checks again when saving, against the value it holds: a
    /// save whose operation fails there writes nothing and fails with the same errors.
    pub fn increment(&self, key: impl Into<String>, delta: i64) -> Result<i64> {
        let key = key.into();
        check_user_key(&key)?;
        let bytes = self
            .state
            .lock()
            .operate(&key, Op::Increment(delta), |_| Ok(()))?;
        decode(&key, &bytes)
    }

    /// Appends `value` to the array under `key` (absent counts as `[]`).
    ///
    /// Like [`increment`](Self::increment), the store appends to the array it holds when the
    /// session is saved, so concurrent pushes onto one array all land, each request's in its
    /// own order.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.push("cart", "apple")?;
    /// session.push("cart", "pear")?;
    /// assert_eq!(session.get::<Vec<String>>("cart")?, Some(vec!["apple".into(), "pear".into()]));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::WrongType`] when the value is not an array; [`Error::Encode`] when `value`
    /// cannot be serialized; [`Error::ReservedKey`] for sessionkit's own keys;
    /// [`Error::LimitExceeded`] when the array would grow past
    /// [`Limits::max_value_bytes`] (the store checks again against the array it holds).
    pub fn push<T: Serialize>(&self, key: impl Into<String>, value: T) -> Result<()> {
        let key = key.into();
        check_user_key(&key)?;
        let value = encode(&key, &value)?;
        let op = Op::Push {
            value,
            max_len: None,
        };
        self.state.lock().operate(&key, op, |_| Ok(()))?;
        Ok(())
    }

    /// Appends `value` to the array under `key` unless it already holds `max_len` elements:
    /// the first `max_len` elements are kept, later ones are dropped. Returns whether the
    /// array this request sees grew; the store applies the same bound to the array it holds.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// assert!(session.push_bounded("recent", 1, 2)?);
    /// assert!(session.push_bounded("recent", 2, 2)?);
    /// assert!(!session.push_bounded("recent", 3, 2)?);
    /// assert_eq!(session.get::<Vec<u8>>("recent")?, Some(vec![1, 2]));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn push_bounded<T: Serialize>(
        &self,
        key: impl Into<String>,
        value: T,
        max_len: usize,
    ) -> Result<bool> {
        let key = key.into();
        check_user_key(&key)?;
        let value = encode(&key, &value)?;
        let op = Op::Push {
            value,
            max_len: Some(max_len),
        };
        let mut state = self.state.lock();
        let before = state.array_len(&key);
        state.operate(&key, op, |_| Ok(()))?;
        Ok(state.array_len(&key) > before)
    }

    /// Adds `value` to the set-like array under `key` unless an equal element is there
    /// (equal as encoded: the same MessagePack bytes). Returns whether the array this request
    /// sees grew. A `Vec`, `HashSet` or `BTreeSet` of the elements reads it back.
    ///
    /// ```
    /// # use std::collections::BTreeSet;
    /// # let session = sessionkit::Session::new();
    /// assert!(session.add_to_set("seen", "welcome")?);
    /// assert!(!session.add_to_set("seen", "welcome")?);
    /// assert_eq!(session.get::<BTreeSet<String>>("seen")?.map(|s| s.len()), Some(1));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn add_to_set<T: Serialize>(&self, key: impl Into<String>, value: T) -> Result<bool> {
        let key = key.into();
        check_user_key(&key)?;
        let value = encode(&key, &value)?;
        let mut state = self.state.lock();
        let before = state.array_len(&key);
        state.operate(&key, Op::Add(value), |_| Ok(()))?;
        Ok(state.array_len(&key) > before)
    }

    /// Removes every element equal to `value` (as encoded) from the array under `key`
    /// (absent counts as `[]`). Returns whether the array this request sees shrank.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.add_to_set("seen", 7)?;
    /// assert!(session.remove_from_set("seen", 7)?);
    /// assert_eq!(session.get::<Vec<u8>>("seen")?, Some(vec![]));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn remove_from_set<T: Serialize>(&self, key: impl Into<String>, value: T) -> Result<bool> {
        let key = key.into();
        check_user_key(&key)?;
        let value = encode(&key, &value)?;
        let mut state = self.state.lock();
        let before = state.array_len(&key);
        state.operate(&key, Op::Remove(value), |_| Ok(()))?;
        Ok(state.array_len(&key) < before)
    }

    /// Carries out `op` on any key, reserved ones included, once `accept` agreed to the
    /// result; returns the new local value. For the derive's typed operations.
    #[doc(hidden)]
    pub fn operate_unchecked(
        &self,
        key: &str,
        op: Op,
        accept: impl FnOnce(&Bytes) -> Result<()>,
    ) -> Result<Bytes> {
        self.state.lock().operate(key, op, accept)
    }

    /// Whether anything changed since the session was loaded (or last saved).
    pub fn is_modified(&self) -> bool {
        let state = self.state.lock();
        state.cleared || !state.dirty.is_empty() || !state.ops.is_empty()
    }

    // ---- lifecycle: recorded here, carried out by the manager when the request finishes ----

    /// Moves the session to a fresh id when the request finishes, and ends the old id at
    /// once, with no grace window. Call it on login and on every privilege change, so an id
    /// an attacker planted before the login (session fixation) is worth nothing after it.
    ///
    /// The data, flash messages included, moves with the session. If the move fails the
    /// request's save fails and the session stays whole under its old id. On a session that
    /// was never saved it changes nothing: a new session gets a new id anyway.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("user_id", 42)?;
    /// session.regenerate();
    /// assert!(session.is_regenerating());
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn regenerate(&self) {
        self.state.lock().intent.regenerate = true;
    }

    /// Whether [`regenerate`](Self::regenerate) was called during this request.
    pub fn is_regenerating(&self) -> bool {
        self.state.lock().intent.regenerate
    }

    /// Ends the session (logout): when the request finishes it is deleted from every store
    /// tier and the response clears the cookie. Its data, flash messages and owner tag are
    /// dropped from this handle at once.
    ///
    /// Whatever the request stores after this call starts a new session with a new id (so a
    /// "You have been logged out" flash survives the logout); if it stores nothing, no
    /// session remains.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("user_id", 42)?;
    /// session.destroy();
    /// assert!(session.is_empty() && session.is_destroyed());
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn destroy(&self) {
        let mut state = self.state.lock();
        state.intent = Intent {
            destroy: true,
            ..Intent::default()
        };
        state.owner = None;
        state.fields.clear();
        state.size = Footprint::default();
        state.dirty.clear();
        state.ops.clear();
        state.cleared = false;
        state.fresh_flash.clear();
    }

    /// Whether [`destroy`](Self::destroy) was called during this request.
    pub fn is_destroyed(&self) -> bool {
        self.state.lock().intent.destroy
    }

    /// Tags the session with an owner (typically the user id), or removes the tag with
    /// `None`. The manager can then list and end every session of an owner ("log out
    /// everywhere"). The tag is saved when the request finishes.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.set_owner(Some("user-42".to_owned()));
    /// assert_eq!(session.owner().as_deref(), Some("user-42"));
    /// ```
    pub fn set_owner(&self, owner: Option<String>) {
        let mut state = self.state.lock();
        state.intent.owner = if state.owner == owner {
            None
        } else {
            Some(owner)
        };
    }

    /// The owner tag, including a change made during this request.
    pub fn owner(&self) -> Option<String> {
        let state = self.state.lock();
        match &state.intent.owner {
            Some(changed) => changed.clone(),
            None => state.owner.clone(),
        }
    }

    /// Chooses a persistent cookie ("remember me": it survives a browser restart and expires
    /// with the session) or a browser-session cookie for this session, overriding the
    /// manager's default. The choice is stored with the session.
    pub fn set_persistent(&self, persistent: bool) {
        // Writing a bool cannot fail to encode; ignoring the impossible error keeps this
        // setter infallible.
        let _ = self.insert_unchecked(PERSIST_KEY.to_owned(), &persistent);
    }

    /// This session's own cookie persistence choice; `None` when it follows the manager's
    /// default.
    pub fn persistent(&self) -> Option<bool> {
        self.get_unchecked::<bool>(PERSIST_KEY).ok().flatten()
    }

    /// Leaves a flash message: a value readable once, by [`take_flash`](Self::take_flash), on
    /// a later request of this session, then gone. Any `Serialize` type works; setting the same
    /// name again replaces the message. Flash messages survive [`regenerate`](Self::regenerate),
    /// so "Welcome back" set during a login is shown after it.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.flash("notice", "Saved.")?;
    /// // Not readable during the request that set it:
    /// assert_eq!(session.take_flash::<String>("notice")?, None);
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Encode`] when the value cannot be serialized; [`Error::Config`] when the
    /// manager was configured without flash support (`integrate_flash = false`).
    pub fn flash<T: Serialize>(&self, name: &str, value: T) -> Result<()> {
        if self.state.lock().flash_disabled {
            return Err(Error::Config(
                "flash messages are disabled (integrate_flash is off)".to_owned(),
            ));
        }
        let key = format!("{FLASH_PREFIX}{name}");
        let bytes = encode(&key, &value)?;
        let mut state = self.state.lock();
        state.set(key, bytes)?;
        state.fresh_flash.insert(name.to_owned());
        Ok(())
    }

    /// Takes the flash message `name` left by an earlier request: returns it and removes it,
    /// so it is shown once. Messages set during this request are not visible yet.
    ///
    /// # Errors
    /// [`Error::Decode`] when the message is not a `T` (it is then kept);
    /// [`Error::Config`] when flash support is off.
    pub fn take_flash<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let mut state = self.state.lock();
        if state.flash_disabled {
            return Err(Error::Config(
                "flash messages are disabled (integrate_flash is off)".to_owned(),
            ));
        }
        if state.fresh_flash.contains(name) {
            return Ok(None);
        }
        let key = format!("{FLASH_PREFIX}{name}");
        let Some(bytes) = state.fields.get(&key) else {
            return Ok(None);
        };
        let value = decode(&key, bytes)?;
        state.remove(&key);
        Ok(Some(value))
    }

    // ---- for sessionkit itself: the manager's bookkeeping and the derive's expansion ----

    /// Reads any key, reserved ones included.
    #[doc(hidden)]
    pub fn get_unchecked<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let state = self.state.lock();
        state.fields.get(key).map(|b| decode(key, b)).transpose()
    }

    /// Writes any key, reserved ones included.
    #[doc(hidden)]
    pub fn insert_unchecked<T: Serialize + ?Sized>(&self, key: String, value: &T) -> Result<()> {
        let bytes = encode(&key, value)?;
        self.state.lock().set(key, bytes)
    }

    /// Removes any key, reserved ones included; returns whether it was present.
    #[doc(hidden)]
    pub fn remove_unchecked(&self, key: &str) -> bool {
        self.state.lock().remove(key).is_some()
    }

    /// The encoded bytes under any key.
    #[doc(hidden)]
    pub fn raw_unchecked(&self, key: &str) -> Option<Bytes> {
        self.state.lock().fields.get(key).cloned()
    }

    /// Writes encoded bytes under any key (marking it changed only if the bytes differ).
    #[doc(hidden)]
    pub fn set_raw_unchecked(&self, key: String, bytes: Bytes) {
        self.state.lock().put(key, bytes);
    }

    /// The changes since load, as a change set (expiry and owner left unset), and forgets them.
    pub(crate) fn take_changes(&self) -> ChangeSet {
        let mut state = self.state.lock();
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
        changes
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
            .any(|k| is_user_key(k) || k.starts_with(FLASH_PREFIX))
            || matches!(state.intent.owner, Some(Some(_)))
            || (state.intent.owner.is_none() && state.owner.is_some())
    }

    /// Records the owner tag the session was loaded with.
    pub(crate) fn set_loaded_owner(&self, owner: Option<String>) {
        self.state.lock().owner = owner;
    }

    /// Sets the bounds the setters enforce (the manager's [`Limits`]).
    pub(crate) fn set_limits(&self, limits: Limits) {
        self.state.lock().limits = limits;
    }

    /// The session's size when loaded and now, for the manager's check at save.
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

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_methods() {
        let s = Session::new();
        assert!(s.is_empty());
        s.insert("a", 1u32).unwrap();
        s.insert("", "empty key").unwrap();
        s.insert("ключ", vec![1, 2]).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.keys(), vec!["", "a", "ключ"]);
        assert_eq!(s.replace::<_, u32>("a", 2u32).unwrap(), Some(1));
        assert_eq!(s.take::<u32>("a").unwrap(), Some(2));
        assert!(!s.contains_key("a"));
        assert_eq!(s.get_or_insert_with("n", || 7u8).unwrap(), 7);
        assert_eq!(s.get_or_insert_with("n", || 9u8).unwrap(), 7);
        s.extend([("x", 1), ("y", 2)]).unwrap();
        s.retain(|raw| raw.key() != "x");
        assert!(!s.contains_key("x") && s.contains_key("y"));
        s.clear();
        assert!(s.is_empty());
    }

    #[test]
    fn wrong_type_is_a_typed_error_and_does_not_block_others() {
        let s = Session::new();
        s.insert("name", "bob").unwrap();
        s.insert("n", 1).unwrap();
        match s.get::<Vec<u64>>("name") {
            Err(Error::Decode { key, expected, .. }) => {
                assert_eq!(key, "name");
                assert!(expected.contains("Vec"));
            }
            other => panic!("expected a decode error, got {other:?}"),
        }
        let changes = s.take_changes();
        assert_eq!(changes.set.len(), 2);
    }

    #[test]
    fn reserved_keys_are_refused_and_hidden() {
        let s = Session::new();
        assert!(matches!(
            s.insert("__sk.created", 1),
            Err(Error::ReservedKey { .. })
        ));
        s.insert_unchecked("__sk.created".into(), &1u64).unwrap();
        assert!(s.is_empty());
        assert!(!s.contains_key("__sk.created"));
        assert!(s.get::<u64>("__sk.created").is_err());
        s.clear();
        let changes = s.take_changes();
        assert!(changes.clear);
        assert!(changes.set.contains_key("__sk.created"));
    }

    #[test]
    fn changes_track_only_what_changed() {
        let mut fields = BTreeMap::new();
        fields.insert("keep".to_owned(), encode("keep", &1).unwrap());
        fields.insert("gone".to_owned(), encode("gone", &2).unwrap());
        let s = Session::from_fields(fields);
        let _: Option<u32> = s.get("keep").unwrap();
        assert!(s.take_changes().is_empty());
        s.insert("keep", 1).unwrap(); // same bytes: no change
        assert!(!s.is_modified());
        s.remove("gone");
        s.insert("new", 3).unwrap();
        let c = s.take_changes();
        assert_eq!(c.remove.iter().collect::<Vec<_>>(), vec!["gone"]);
        assert_eq!(c.set.keys().collect::<Vec<_>>(), vec!["new"]);
        assert!(!s.is_modified());
    }

    #[test]
    fn dynamic_values_print_and_copy() {
        let s = Session::new();
        s.insert("m", std::collections::BTreeMap::from([("k", 1)]))
            .unwrap();
        let v = s.get_value("m").unwrap().unwrap();
        assert_eq!(v.to_string(), "{\"k\": 1}");
        s.insert_value("copy", &v).unwrap();
        let back: std::collections::BTreeMap<String, i32> = s.get("copy").unwrap().unwrap();
        assert_eq!(back["k"], 1);
    }

    #[test]
    fn lifecycle_intents_are_recorded_not_acted_on() {
        let s = Session::new();
        assert_eq!(s.intent(), Intent::default());
        s.regenerate();
        s.set_owner(Some("u".into()));
        assert!(s.is_regenerating());
        assert_eq!(s.owner().as_deref(), Some("u"));
        assert!(s.has_user_data(), "an owner alone is worth saving");
        s.destroy();
        assert_eq!(
            s.intent(),
            Intent {
                destroy: true,
                ..Intent::default()
            }
        );
        assert_eq!(s.owner(), None);
        assert!(!s.has_user_data());

        let loaded = Session::new();
        loaded.set_loaded_owner(Some("u".into()));
        loaded.set_owner(Some("u".into()));
        assert_eq!(
            loaded.intent().owner,
            None,
            "setting the same owner changes nothing"
        );
        loaded.set_owner(None);
        assert_eq!(loaded.intent().owner, Some(None));
    }

    #[test]
    fn persistence_choice_is_a_reserved_field() {
        let s = Session::new();
        assert_eq!(s.persistent(), None);
        s.set_persistent(true);
        assert_eq!(s.persistent(), Some(true));
        assert!(s.is_empty() && !s.has_user_data());
        assert!(s.take_changes().set.contains_key(PERSIST_KEY));
    }

    #[test]
    fn flash_is_hidden_from_the_dictionary_and_fresh_ones_wait() {
        let s = Session::new();
        s.flash("n", 1u8).unwrap();
        assert!(s.is_empty() && s.has_user_data());
        assert_eq!(s.take_flash::<u8>("n").unwrap(), None);
        let mut fields = BTreeMap::new();
        fields.insert(format!("{FLASH_PREFIX}n"), encode("n", &1u8).unwrap());
        let later = Session::from_fields(fields);
        assert!(matches!(
            later.take_flash::<String>("n"),
            Err(Error::Decode { .. })
        ));
        assert_eq!(later.take_flash::<u8>("n").unwrap(), Some(1));
        assert_eq!(later.take_flash::<u8>("n").unwrap(), None);
        assert!(
            later
                .take_changes()
                .remove
                .contains(&format!("{FLASH_PREFIX}n"))
        );
        let off = Session::new();
        off.disable_flash();
        assert!(matches!(off.flash("n", 1), Err(Error::Config(_))));
    }

    #[test]
    fn operations_show_locally_and_travel_as_operations() {
        let mut fields = BTreeMap::new();
        fields.insert("visits".to_owned(), encode("visits", &10).unwrap());
        let s = Session::from_fields(fields);
        assert_eq!(s.increment("visits", 1).unwrap(), 11);
        assert_eq!(s.increment("visits", 1).unwrap(), 12);
        s.push("cart", "a").unwrap();
        assert!(s.add_to_set("seen", 1).unwrap());
        assert!(!s.add_to_set("seen", 1).unwrap());
        assert_eq!(s.get::<u32>("visits").unwrap(), Some(12));
        assert!(s.is_modified());
        let c = s.take_changes();
        assert!(c.set.is_empty() && c.remove.is_empty());
        assert_eq!(c.ops["visits"], vec![Op::Increment(1), Op::Increment(1)]);
        assert_eq!(c.ops["cart"].len(), 1);
        assert_eq!(
            c.ops["seen"].len(),
            2,
            "the store decides whether it is new"
        );
        assert!(!s.is_modified());
    }

    #[test]
    fn a_set_replaces_pending_operations_and_absorbs_later_ones() {
        let s = Session::new();
        s.increment("n", 1).unwrap();
        s.insert("n", 1).unwrap(); // the same bytes as the local view, still a set now
        let c = s.take_changes();
        assert!(c.ops.is_empty());
        assert_eq!(c.set["n"], encode("n", &1).unwrap());

        s.insert("m", 5).unwrap();
        s.increment("m", 1).unwrap();
        s.remove("gone");
        s.push("r", 1).unwrap();
        assert!(
            s.remove("r"),
            "removing a key with pending operations drops them"
        );
        let c = s.take_changes();
        assert!(c.ops.is_empty());
        assert_eq!(c.set["m"], encode("m", &6).unwrap());
        assert!(c.remove.contains("r"));

        s.increment("k", 1).unwrap();
        s.clear();
        s.increment("k", 2).unwrap();
        let c = s.take_changes();
        assert!(c.clear && c.ops.is_empty());
        assert_eq!(c.set["k"], encode("k", &2).unwrap());
    }

    fn limited(limits: Limits) -> Session {
        let s = Session::new();
        s.set_limits(limits);
        s
    }

    fn limit_of<T: fmt::Debug>(result: Result<T>) -> crate::Limit {
        match result {
            Err(Error::LimitExceeded { limit, .. }) => limit,
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    #[test]
    fn setters_refuse_what_breaks_a_limit_and_change_nothing() {
        use crate::Limit;
        let s = limited(Limits::default().with_max_value_bytes(16));
        let long = "x".repeat(20);
        assert_eq!(limit_of(s.insert("a", &long)), Limit::ValueBytes);
        assert_eq!(
            limit_of(s.replace::<_, String>("a", &long)),
            Limit::ValueBytes
        );
        assert_eq!(
            limit_of(s.get_or_insert_with("a", || long.clone())),
            Limit::ValueBytes
        );
        assert_eq!(
            limit_of(s.insert_value("a", &Value::from(long.as_str()))),
            Limit::ValueBytes
        );
        assert_eq!(limit_of(s.flash("n", &long)), Limit::ValueBytes);
        assert_eq!(
            limit_of(s.extend([("ok", "y"), ("a", long.as_str())])),
            Limit::ValueBytes
        );
        s.insert("list", [1u8; 10]).unwrap();
        s.take_changes();
        assert_eq!(
            limit_of(s.push("list", 1u8).and_then(|()| s.push("list", [0u8; 8]))),
            Limit::ValueBytes
        );
        assert_eq!(s.get::<Vec<u8>>("list").unwrap().map(|l| l.len()), Some(11));
        assert_eq!(
            s.keys(),
            ["list"],
            "a refused extend sets none of its pairs"
        );

        let s = limited(Limits::default().with_max_fields(3));
        s.extend([("a", 1), ("b", 2), ("c", 3)]).unwrap();
        assert_eq!(limit_of(s.insert("d", 4)), Limit::Fields);
        assert_eq!(limit_of(s.increment("d", 1)), Limit::Fields);
        assert_eq!(limit_of(s.extend([("a", 9), ("d", 4)])), Limit::Fields);
        s.insert("a", 10).unwrap(); // a replaced key adds no field
        s.remove("c");
        s.insert("d", 4).unwrap();
        assert_eq!(s.keys(), ["a", "b", "d"]);

        // Each entry counts its key and value: "k0".."k2" with 10-byte values are 12 each.
        let s = limited(
            Limits::default()
                .with_max_value_bytes(20)
                .with_max_record_bytes(36),
        );
        let ten = Bytes::from_static(&[0xc4, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
        for k in ["k0", "k1", "k2"] {
            s.insert_raw(
                k,
                RawValue {
                    key: k.into(),
                    bytes: ten.clone(),
                },
            )
            .unwrap();
        }
        let eleven = RawValue {
            key: "k0".into(),
            bytes: Bytes::from_static(&[0xc4, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        };
        assert_eq!(
            limit_of(s.insert_raw("k0", eleven.clone())),
            Limit::RecordBytes
        );
        s.remove("k2");
        s.insert_raw("k0", eleven).unwrap();
        assert_eq!(s.footprints().1.bytes, 25);
        s.clear();
        assert_eq!(s.footprints().1.bytes, 0);
    }

    #[test]
    fn failing_operations_change_nothing() {
        let s = Session::new();
        s.insert("name", "bob").unwrap();
        s.take_changes();
        assert!(matches!(
            s.increment("name", 1),
            Err(Error::WrongType { key, .. }) if key == "name"
        ));
        assert!(matches!(s.push("name", 1), Err(Error::WrongType { .. })));
        s.insert("big", i64::MAX).unwrap();
        s.take_changes();
        assert!(matches!(s.increment("big", 1), Err(Error::Overflow { .. })));
        assert!(matches!(
            s.increment("__sk.created", 1),
            Err(Error::ReservedKey { .. })
        ));
        assert!(matches!(
            s.add_to_set("__sk.x", 1),
            Err(Error::ReservedKey { .. })
        ));
        assert!(!s.is_modified());
        assert_eq!(s.get::<String>("name").unwrap().as_deref(), Some("bob"));
        assert_eq!(s.get::<i64>("big").unwrap(), Some(i64::MAX));
    }

    #[test]
    fn bounded_pushes_and_set_removals_report_the_local_view() {
        let s = Session::new();
        assert!(s.push_bounded("xs", 1, 1).unwrap());
        assert!(!s.push_bounded("xs", 2, 1).unwrap());
        assert!(!s.remove_from_set("xs", 2).unwrap());
        assert!(s.remove_from_set("xs", 1).unwrap());
        assert_eq!(s.get::<Vec<u8>>("xs").unwrap(), Some(vec![]));
        assert_eq!(s.take_changes().ops["xs"].len(), 4);
    }
}
