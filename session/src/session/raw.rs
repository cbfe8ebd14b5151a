//! Values without their type: [`RawValue`] (the encoded bytes) and [`Value`] (decoded
//! dynamically), for code that inspects or copies entries it does not know.

use std::fmt;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::Session;
use crate::codec::decode_value;
use crate::error::{Error, Result};
use crate::reserved::{check_user_key, is_reserved};

/// A dynamically typed value, for data whose type the reader does not know: inspect it,
/// print it, or store it under another key.
pub use rmpv::Value;

/// One encoded value of a session, with the key it came from, as returned by
/// [`Session::get_raw`] and [`Session::iter`].
#[derive(Clone, PartialEq, Eq)]
pub struct RawValue {
    pub(super) key: String,
    pub(super) bytes: Bytes,
}

impl RawValue {
    /// The key this value was read from.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("theme", "dark")?;
    /// assert_eq!(session.get_raw("theme").unwrap().key(), "theme");
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The MessagePack bytes.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("n", 5)?;
    /// assert_eq!(session.get_raw("n").unwrap().as_bytes(), [5]); // MessagePack for 5
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decodes the value as `T`.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("n", 5)?;
    /// let raw = session.get_raw("n").unwrap();
    /// assert_eq!(raw.decode::<u32>()?, 5);
    /// assert!(raw.decode::<String>().is_err());
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Decode`] naming the key and `T` when the bytes are not a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        decode_value(&self.key, &self.bytes)
    }

    /// Decodes the value without knowing its type.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("tags", ["a", "b"])?;
    /// let value = session.get_raw("tags").unwrap().to_value()?;
    /// assert_eq!(value.to_string(), "[\"a\", \"b\"]");
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
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
        self.decode_with(key, decode_dynamic)
    }

    /// Stores a dynamic value under `key`.
    ///
    /// ```
    /// # use sessionkit::{Session, Value};
    /// # let session = Session::new();
    /// session.insert_value("answer", &Value::from(42))?;
    /// assert_eq!(session.get::<u8>("answer")?, Some(42));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
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
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("n", 1)?;
    /// let raw = session.get_raw("n").unwrap();
    /// assert_eq!((raw.key(), raw.as_bytes()), ("n", &[1u8][..]));
    /// assert!(session.get_raw("missing").is_none());
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
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
}
