//! The field map as PostgreSQL holds it: one JSONB object, escaped name → base64 of the
//! encoded value; and the one place this module builds the core's record types.
//!
//! JSONB strings cannot hold U+0000, which a field name may contain, so names are escaped:
//! `%` → `%25`, U+0000 → `%00` (nothing else changes; the escape is injective and every
//! escape adds exactly two bytes, which the database's size check relies on). Values are
//! standard padded base64, so a value's decoded length is `len / 4 * 3` minus the padding.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use sessionkit::store::{ChangeSet, Error, Loaded, Moved, Record, Result};
use sessionkit::{Limit, Limits, SessionKey};

/// A field name as a JSONB object key.
pub(super) fn escape(name: &str) -> Cow<'_, str> {
    if name.contains(['%', '\0']) {
        Cow::Owned(name.replace('%', "%25").replace('\0', "%00"))
    } else {
        Cow::Borrowed(name)
    }
}

/// The inverse of [`escape`].
fn unescape(stored: &str) -> Result<String> {
    if !stored.contains('%') {
        return Ok(stored.to_owned());
    }
    let mut out = String::with_capacity(stored.len());
    let mut rest = stored;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("%25") => out.push('%'),
            Some("%00") => out.push('\0'),
            _ => {
                return Err(Error::corrupt_message(
                    "postgres: a badly escaped field name",
                ));
            }
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The JSON text of a field map (or of the sets of a change set).
pub(super) fn encode<'a>(fields: impl IntoIterator<Item = (&'a String, &'a Bytes)>) -> String {
    let map: serde_json::Map<String, serde_json::Value> = fields
        .into_iter()
        .map(|(name, value)| {
            (
                escape(name).into_owned(),
                serde_json::Value::String(STANDARD.encode(value)),
            )
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Parses what the database returns for a `fields` column (`fields::text`).
pub(super) fn decode(text: &str) -> Result<BTreeMap<String, Bytes>> {
    let map: BTreeMap<String, String> = serde_json::from_str(text)
        .map_err(|e| Error::corrupt("postgres: the fields are not a JSON object of strings", e))?;
    map.into_iter()
        .map(|(name, value)| {
            let bytes = STANDARD
                .decode(value.as_bytes())
                .map_err(|e| Error::corrupt("postgres: a field value is not base64", e))?;
            Ok((unescape(&name)?, Bytes::from(bytes)))
        })
        .collect()
}

/// Builds what a load returns — the one place this backend constructs a [`Loaded`],
/// [`Moved`] or [`Record`].
pub(super) fn loaded(
    fields: BTreeMap<String, Bytes>,
    expires_at: SystemTime,
    owner: Option<String>,
    moved: Option<(SessionKey, Vec<u8>)>,
) -> Loaded {
    Loaded::new(
        Record::from_parts(fields, expires_at, owner),
        moved.map(|(to, token)| Moved::new(to, token)),
    )
}

/// What [`Record::apply`](sessionkit::store::Record::apply) checks before anything else, for the one-statement merge: no value
/// the change set sets is over [`Limits::max_value_bytes`].
pub(super) fn check_value_sizes(limits: &Limits, changes: &ChangeSet) -> Result<()> {
    match changes
        .set
        .iter()
        .find(|(_, value)| value.len() > limits.max_value_bytes)
    {
        Some((key, value)) => Err(Error::LimitExceeded {
            limit: Limit::ValueBytes,
            key: Some(key.clone()),
            size: value.len(),
            max: limits.max_value_bytes,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_round_trip_through_json() {
        let mut fields = BTreeMap::new();
        for name in ["", "plain", "%", "%00", "\0nul", "a%25b", "ключ", "🔑"] {
            fields.insert(name.to_owned(), Bytes::from(name.as_bytes().to_vec()));
        }
        fields.insert("bin".to_owned(), Bytes::from_static(&[0, 255, 1]));
        let text = encode(&fields);
        assert!(!text.contains("\\u0000"), "JSONB refuses U+0000: {text}");
        assert_eq!(decode(&text).unwrap(), fields);
    }

    #[test]
    fn escaping_adds_two_bytes_per_percent_sign() {
        for name in ["%", "\0", "a%\0b", "x"] {
            let escaped = escape(name);
            assert_eq!(escaped.len() - 2 * escaped.matches('%').count(), name.len());
        }
    }

    #[test]
    fn garbage_is_corrupt() {
        for bad in [
            "[]",
            "{\"a\": 1}",
            "{\"a\": \"***\"}",
            "{\"%zz\": \"\"}",
            "nope",
        ] {
            assert!(matches!(decode(bad), Err(Error::Corrupt { .. })), "{bad}");
        }
    }
}
