//! Typed sessions: the [`SessionData`] trait that `#[derive(SessionData)]` implements, and the
//! hidden helpers its expansion calls.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::error::{Error, Result};
use crate::op::{Op, array_len};
use crate::session::Session;

/// A struct whose fields are entries of a session's field map, one key per field.
///
/// Implement it with `#[derive(SessionData)]` (feature `derive`, on by default).
/// `use sessionkit::SessionData;` imports both the derive and this trait, as with serde's
/// `Serialize`. The trait is the part generic code relies on: load every field, store every
/// field, list the keys. For one field at a time, the derive also generates a typed view.
///
/// # What the derive generates
///
/// For `struct Shopper { .. }` with some visibility `V`, and for each stored field `f: T`:
///
/// - `Shopper::view(&session) -> ShopperView<'_>`, a `Copy` handle borrowing the session, with
///   - `f(&self) -> Result<T>`: decodes only this key;
///   - `set_f(&self, value: T) -> Result<()>`: encodes only this key and marks it changed
///     only if its bytes differ;
///   - `remove_f(&self) -> bool`: removes the key, saying whether it was there;
/// - `Shopper::F_KEY: &str`, the key, so dynamic code reaches the same entry;
/// - `impl SessionData for Shopper`.
///
/// All of them have visibility `V`. A raw identifier drops its `r#`: `r#type` gives
/// `set_type` and `TYPE_KEY`. The generated `ShopperView` name and the `view` and `*_KEY`
/// items must not clash with the user's own.
///
/// # Field kinds
///
/// | field | absent reads as | stored as |
/// |-------|-----------------|-----------|
/// | `f: Option<T>` | `None` | the `T` itself; `None` removes the key |
/// | `#[session(default)] f: T` | `T::default()` (not written back) | `T` |
/// | `f: T` | [`Error::Missing`] naming the key | `T` |
/// | `#[session(skip)] f: T` | not stored; loads as `T::default()` | nothing |
///
/// A value of the wrong type is [`Error::Decode`] naming the key. `Option` is recognised by
/// its spelling (`Option<T>`, `std::option::Option<T>`); an alias of it is a required field.
/// A stored nil also reads as `None`, so an `Option<Option<T>>` field cannot keep `Some(None)`.
///
/// # Attributes
///
/// - On the struct: `#[session(prefix = "shop")]` puts every key under `shop.`: the field
///   `visits` is stored as `shop.visits`. `#[session(crate = "path")]` names the sessionkit
///   crate for frameworks that re-export it.
/// - On a field: `default`, `skip`, and `rename = "name"` (the key's last part; the prefix
///   still applies).
///
/// Refused at compile time, each error at its token and all at once: enums, unions, tuple
/// and unit structs; unknown or malformed attributes; two fields with the same key; a key
/// under [`RESERVED_PREFIX`](crate::reserved::RESERVED_PREFIX); `default` on an `Option`; `default` or
/// `skip` on a type without `Default`.
///
/// # Encoding
///
/// Each field is encoded on its own with its type's `Serialize` impl, exactly as
/// [`Session::insert`] does, so typed and dictionary writes of equal values give equal bytes.
/// The struct itself needs no serde derive, and serde attributes on field types
/// (`rename_all`, `tag`, `with` inside the type, ...) apply as usual.
///
/// # Generics and lifetimes
///
/// Type and const parameters are supported; field types that mention a type parameter get
/// `Serialize + DeserializeOwned` bounds. Name the parameters to reach the constants
/// (`Slot::<u8>::VALUE_KEY`). Lifetime parameters and reference fields are refused: values
/// are decoded into owned data, so use `String`, `Vec<T>` or `Cow<'static, str>`.
///
/// # Concurrency
///
/// Every getter and setter locks the session once. `load` reads field by field and `store`
/// encodes every field first, then writes them one by one, so a write through another handle
/// of the same session can land in between, as with a sequence of dictionary calls.
///
/// # Examples
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
    codec::encode_value(key, value).map(Some)
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

#[doc(hidden)]
pub fn increment<T: DeserializeOwned>(session: &Session, key: &str, delta: i64) -> Result<T> {
    let mut value = None;
    session.operate_unchecked(key, Op::Increment(delta), |bytes| {
        // The store counts in i64; the field's own type is checked here, before recording.
        value = rmp_serde::from_slice::<T>(bytes).ok();
        match value {
            Some(_) => Ok(()),
            None => Err(Error::Overflow {
                key: key.to_owned(),
            }),
        }
    })?;
    value.ok_or_else(|| Error::Overflow {
        key: key.to_owned(),
    })
}

#[doc(hidden)]
pub fn push<T: Serialize + ?Sized>(
    session: &Session,
    key: &str,
    item: &T,
    max_len: Option<usize>,
) -> Result<bool> {
    let value = codec::encode_value(key, item)?;
    let before = session.raw_unchecked(key).and_then(|b| array_len(&b));
    let after = session.operate_unchecked(key, Op::Push { value, max_len }, |_| Ok(()))?;
    Ok(array_len(&after) > Some(before.unwrap_or(0)))
}

#[doc(hidden)]
pub fn set_op<T: Serialize + ?Sized>(
    session: &Session,
    key: &str,
    item: &T,
    add: bool,
) -> Result<bool> {
    let value = codec::encode_value(key, item)?;
    let before = session
        .raw_unchecked(key)
        .and_then(|b| array_len(&b))
        .unwrap_or(0);
    let op = if add {
        Op::Add(value)
    } else {
        Op::Remove(value)
    };
    let after = array_len(&session.operate_unchecked(key, op, |_| Ok(()))?).unwrap_or(0);
    Ok(if add { after > before } else { after < before })
}
