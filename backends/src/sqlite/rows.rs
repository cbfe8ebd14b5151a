//! Between rows and the core's values: what each column of a row is for an [`Entry`], the
//! time unit, decoding with a log line for a damaged row, and the one place this backend
//! builds a [`Loaded`].

use std::time::SystemTime;

use sessionkit::store::{Entry, Error, Loaded, Moved, Record, Result};
use sessionkit::{SessionKey, store::to_millis};

use super::schema::{KIND_ALIAS, KIND_RECORD, KIND_TOMBSTONE};

/// A point in time as the `expires_at` column holds it: whole milliseconds since the Unix
/// epoch (the unit of [`Entry::encode`]), saturating at `i64::MAX`.
pub(crate) fn millis(t: SystemTime) -> i64 {
    i64::try_from(to_millis(t)).unwrap_or(i64::MAX)
}

/// The columns a row holding `entry` gets, besides its key and owner.
pub(crate) struct Columns {
    pub(crate) kind: i64,
    pub(crate) expires_at: i64,
    pub(crate) moved_to: Option<[u8; 32]>,
    pub(crate) entry: Vec<u8>,
}

impl Columns {
    pub(crate) fn of(entry: &Entry) -> Result<Columns> {
        let (kind, moved_to) = match entry {
            Entry::Record(_) => (KIND_RECORD, None),
            Entry::Alias { to, .. } => (KIND_ALIAS, Some(*to.as_bytes())),
            Entry::Tombstone { to, .. } => (KIND_TOMBSTONE, Some(*to.as_bytes())),
        };
        Ok(Columns {
            kind,
            expires_at: millis(entry.expires_at()),
            moved_to,
            entry: entry.encode()?,
        })
    }
}

/// Decodes the `entry` column of `key`'s row. A row that does not decode is logged (with
/// the key's fingerprint only) and reported as [`Error::Corrupt`]; it is never rewritten.
pub(crate) fn decode(key: &SessionKey, bytes: &[u8]) -> Result<Entry> {
    Entry::decode(bytes).inspect_err(|err| {
        tracing::warn!(
            session = %key.fingerprint(),
            error = %err,
            "undecodable session row in the sqlite store"
        );
    })
}

/// A 32-byte key column.
pub(crate) fn key_of(bytes: &[u8]) -> Result<SessionKey> {
    <[u8; 32]>::try_from(bytes)
        .map(SessionKey::from_bytes)
        .map_err(|_| Error::corrupt_message("sqlite store: a key column is not 32 bytes"))
}

/// The live record an entry holds at `now`, if it is one.
pub(crate) fn live_record(entry: Entry, now: SystemTime) -> Option<Record> {
    match entry {
        Entry::Record(r) if r.is_live_at(now) => Some(r),
        _ => None,
    }
}

/// Builds what `load` returns: the one place this backend constructs a [`Loaded`] or a
/// [`Moved`].
pub(crate) fn loaded(record: Record, moved: Option<(SessionKey, Vec<u8>)>) -> Loaded {
    Loaded::new(record, moved.map(|(to, token)| Moved::new(to, token)))
}
