//! The one encoding of session values: MessagePack through rmp-serde, structs as maps with
//! named fields. The dictionary API, typed views, the manager's bookkeeping and the store's
//! operations all go through here, so equal values give equal bytes whichever way they are
//! written (a typed write of an unchanged value is then no change).

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Encodes the value stored under `key`.
///
/// # Errors
/// [`Error::Encode`] naming `key` when `value` cannot be serialized.
pub(crate) fn encode_value<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Bytes> {
    rmp_serde::to_vec_named(value)
        .map(Bytes::from)
        .map_err(|e| Error::Encode {
            key: key.to_owned(),
            source: Box::new(e),
        })
}

/// Decodes the value stored under `key` as a `T`.
///
/// # Errors
/// [`Error::Decode`] naming `key` and `T` when the bytes are not a `T`.
pub(crate) fn decode_value<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::Decode {
        key: key.to_owned(),
        expected: std::any::type_name::<T>(),
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Item {
        sku: String,
        qty: u32,
    }

    #[test]
    fn structs_are_maps_with_named_fields_and_round_trip() {
        let item = Item {
            sku: "tea".into(),
            qty: 2,
        };
        let bytes = encode_value("k", &item).unwrap();
        // fixmap of 2, then the field name "sku": names are written, not positions.
        assert_eq!(&bytes[..5], &[0x82, 0xa3, b's', b'k', b'u']);
        assert_eq!(decode_value::<Item>("k", &bytes).unwrap(), item);
        assert!(matches!(
            decode_value::<u8>("k", &bytes),
            Err(Error::Decode { key, .. }) if key == "k"
        ));
    }

    #[test]
    fn integers_use_the_smallest_form() {
        // The store's increment writes i64 results; they must equal a plain write.
        assert_eq!(
            encode_value("k", &5i64).unwrap(),
            encode_value("k", &5u8).unwrap()
        );
        assert_eq!(&encode_value("k", &-1i64).unwrap()[..], &[0xff]);
    }
}
