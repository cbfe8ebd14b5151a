//! Typed sessions: the [`SessionData`] trait that `#[derive(SessionData)]` implements, and the
//! hidden helpers its expansion calls.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::session::Session;

/// A struct whose fields are entries of a session's field map, one key per field.
///
/// Implement it with `#[derive(SessionData)]` (feature `derive`). The derive also gives the
/// struct a typed view, `Type::view(&session)`, with a getter, a setter and a remover per
/// field, and the keys as associated constants (`Type::FIELD_KEY`). This trait is the part
/// generic code can rely on: load everything, store everything, list the keys.
///
/// `use sessionkit::SessionData;` imports both the derive and this trait, as with serde's
/// `Serialize`.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use sessionkit::{Session, SessionData};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Item {
///     sku: String,
///     qty: u32,
/// }
///
/// #[derive(SessionData, Debug, PartialEq)]
/// #[session(prefix = "shop")]
/// struct Shopper {
///     user_id: Option<u64>,
///     #[session(default)]
///     visits: u32,
///     #[session(rename = "items")]
///     cart: Vec<Item>,
/// }
///
/// let session = Session::new();
/// let view = Shopper::view(&session);
/// assert_eq!(view.user_id()?, None); // an absent Option reads as None
/// assert_eq!(view.visits()?, 0); // an absent `default` field reads as its Default
/// assert!(view.cart().is_err()); // an absent required field is Error::Missing
///
/// view.set_visits(view.visits()? + 1)?; // encodes and marks only this key
/// view.set_cart(vec![Item { sku: "tea".into(), qty: 2 }])?;
///
/// // The same entries through the dictionary API, under the prefixed keys.
/// assert_eq!(Shopper::VISITS_KEY, "shop.visits");
/// assert_eq!(session.get::<u32>("shop.visits")?, Some(1));
/// assert_eq!(Shopper::KEYS, ["shop.user_id", "shop.visits", "shop.items"]);
///
/// // Or the whole struct at once.
/// let mut shopper = Shopper::load(&session)?;
/// shopper.user_id = Some(7);
/// shopper.store(&session)?; // only shop.user_id differs, so only it is marked changed
/// # Ok::<(), sessionkit::Error>(())
/// ```
pub trait SessionData: Sized {
    /// The field map key of every stored field, in declaration order.
    const KEYS: &'static [&'static str];

    /// Decodes every field from `session`.
    ///
    /// An absent `Option` field loads as `None`, an absent `#[session(default)]` field as its
    /// `Default`, and a `#[session(skip)]` field always as its `Default`.
    ///
    /// # Errors
    /// [`Error::Missing`] naming the key of the first absent required field;
    /// [`Error::Decode`] naming the key of the first value that is not of its field's type.
    fn load(session: &Session) -> Result<Self>;

    /// Writes every field into `session`.
    ///
    /// All fields are encoded before any is written, so an encode error leaves the session
    /// unchanged. Only keys whose encoded bytes differ from what the session holds are
    /// marked changed; a `None` field removes its key.
    ///
    /// # Errors
    /// [`Error::Encode`] naming the key of the first field that cannot be serialized.
    fn store(&self, session: &Session) -> Result<()>;

    /// Removes every key of this type from `session`; returns how many were present.
    fn remove_from(session: &Session) -> usize {
        Self::KEYS
            .iter()
            .filter(|key| session.remove_unchecked(key))
            .count()
    }
}

/// A `#[session(default)]` field's type. Exists so a type without `Default` gets one clear
/// error at the field instead of trait-bound notes from deep inside the expansion.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` must implement `Default` to be a `#[session(default)]` or `#[session(skip)]` field",
    label = "`{Self}` does not implement `Default`",
    note = "an absent `#[session(default)]` field and every `#[session(skip)]` field load as `Default::default()`",
    note = "derive or implement `Default` for `{Self}`, or make the field an `Option`"
)]
pub trait FieldDefault {
    /// The value an absent field reads as.
    fn field_default() -> Self;
}

impl<T: Default> FieldDefault for T {
    fn field_default() -> Self {
        T::default()
    }
}

/// Reads a required field: absent is [`Error::Missing`].
#[doc(hidden)]
pub fn get_required<T: DeserializeOwned>(session: &Session, key: &str) -> Result<T> {
    session.get_unchecked(key)?.ok_or_else(|| Error::Missing {
        key: key.to_owned(),
    })
}

/// Reads a `#[session(default)]` field: absent is `T::default()`.
#[doc(hidden)]
pub fn get_default<T: DeserializeOwned + FieldDefault>(session: &Session, key: &str) -> Result<T> {
    Ok(session.get_unchecked(key)?.unwrap_or_else(T::field_default))
}

/// Reads an `Option` field: absent (or a stored nil) is `None`.
#[doc(hidden)]
pub fn get_option<T: DeserializeOwned>(session: &Session, key: &str) -> Result<Option<T>> {
    Ok(session.get_unchecked::<Option<T>>(key)?.flatten())
}

/// Writes a field's value.
#[doc(hidden)]
pub fn set_value<T: Serialize + ?Sized>(session: &Session, key: &str, value: &T) -> Result<()> {
    session.insert_unchecked(key.to_owned(), value)
}

/// Writes an `Option` field: `None` removes the key, `Some(v)` stores `v` itself so the
/// dictionary API reads it as a plain value.
#[doc(hidden)]
pub fn set_option<T: Serialize>(session: &Session, key: &str, value: Option<&T>) -> Result<()> {
    match value {
        Some(v) => session.insert_unchecked(key.to_owned(), v),
        None => {
            session.remove_unchecked(key);
            Ok(())
        }
    }
}

/// Removes a field's key; returns whether it was present.
#[doc(hidden)]
pub fn remove(session: &Session, key: &str) -> bool {
    session.remove_unchecked(key)
}

/// Encodes a field's value for [`write_fields`]. Uses the same encoding as
/// [`Session::insert`], so equal values give equal bytes.
#[doc(hidden)]
pub fn encode_value<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Option<Bytes>> {
    rmp_serde::to_vec_named(value)
        .map(|v| Some(Bytes::from(v)))
        .map_err(|e| Error::Encode {
            key: key.to_owned(),
            source: Box::new(e),
        })
}

/// Encodes an `Option` field for [`write_fields`]: `None` becomes a removal.
#[doc(hidden)]
pub fn encode_option<T: Serialize>(key: &str, value: Option<&T>) -> Result<Option<Bytes>> {
    match value {
        Some(v) => encode_value(key, v),
        None => Ok(None),
    }
}

/// Writes encoded fields: `Some` sets the key (marked changed only if the bytes differ),
/// `None` removes it.
#[doc(hidden)]
pub fn write_fields<const N: usize>(session: &Session, fields: [(&str, Option<Bytes>); N]) {
    for (key, bytes) in fields {
        match bytes {
            Some(bytes) => session.set_raw_unchecked(key.to_owned(), bytes),
            None => {
                session.remove_unchecked(key);
            }
        }
    }
}
