//! Operations on a value: recorded as operations, so the store merges them into the value it
//! holds and concurrent requests lose none.

use serde::Serialize;

use super::Session;
use crate::codec::{decode_value, encode_value};
use crate::error::Result;
use crate::op::Op;
use crate::reserved::check_user_key;

impl Session {
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
    /// [`Error::WrongType`](crate::Error::WrongType) when the value is not an integer; [`Error::Overflow`](crate::Error::Overflow) when the
    /// result leaves `i64`; [`Error::ReservedKey`](crate::Error::ReservedKey) for sessionkit's own keys. The session is
    /// then unchanged. The store checks again when saving, against the value it holds: a
    /// save whose operation fails there writes nothing and fails with the same errors.
    pub fn increment(&self, key: impl Into<String>, delta: i64) -> Result<i64> {
        let key = key.into();
        check_user_key(&key)?;
        let bytes = self
            .state
            .lock()
            .operate(&key, Op::Increment(delta), |_| Ok(()))?;
        decode_value(&key, &bytes)
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
    /// [`Error::WrongType`](crate::Error::WrongType) when the value is not an array; [`Error::Encode`](crate::Error::Encode) when `value`
    /// cannot be serialized; [`Error::ReservedKey`](crate::Error::ReservedKey) for sessionkit's own keys;
    /// [`Error::LimitExceeded`](crate::Error::LimitExceeded) when the array would grow past
    /// [`Limits::max_value_bytes`](crate::Limits::max_value_bytes) (the store checks again against the array it holds).
    pub fn push<T: Serialize>(&self, key: impl Into<String>, value: T) -> Result<()> {
        self.array_op(key, &value, |value| Op::Push {
            value,
            max_len: None,
        })?;
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
        let (before, after) = self.array_op(key, &value, |value| Op::Push {
            value,
            max_len: Some(max_len),
        })?;
        Ok(after > before)
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
        let (before, after) = self.array_op(key, &value, Op::Add)?;
        Ok(after > before)
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
        let (before, after) = self.array_op(key, &value, Op::Remove)?;
        Ok(after < before)
    }

    /// Carries out the array operation `op(encoded value)` on the user key `key`, under one
    /// lock; returns the array's length as this request sees it before and after.
    fn array_op<T: Serialize>(
        &self,
        key: impl Into<String>,
        value: &T,
        op: impl FnOnce(bytes::Bytes) -> Op,
    ) -> Result<(usize, usize)> {
        let key = key.into();
        check_user_key(&key)?;
        let value = encode_value(&key, value)?;
        let mut state = self.state.lock();
        let before = state.array_len(&key);
        state.operate(&key, op(value), |_| Ok(()))?;
        Ok((before, state.array_len(&key)))
    }
}
