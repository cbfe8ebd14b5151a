//! Bounds on what one session may hold ([`Limits`]), and the time arithmetic that must not
//! overflow however large a configured duration or a stored time is.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::error::{Error, Result};

/// Which bound an [`Error::LimitExceeded`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`Limits::max_fields`]: keys in one session.
    Fields,
    /// [`Limits::max_value_bytes`]: the encoded size of one value.
    ValueBytes,
    /// [`Limits::max_record_bytes`]: the size of one session's field map.
    RecordBytes,
    /// [`MemoryStore::with_max_entries`](crate::MemoryStore::with_max_entries): entries in
    /// an unbounded memory store.
    Entries,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Fields => "max_fields",
            Limit::ValueBytes => "max_value_bytes",
            Limit::RecordBytes => "max_record_bytes",
            Limit::Entries => "max_entries",
        })
    }
}

/// The default [`Limits::max_fields`].
pub const DEFAULT_MAX_FIELDS: usize = 10_000;
/// The default [`Limits::max_value_bytes`]: 1 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;
/// The default [`Limits::max_record_bytes`]: 4 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 4 << 20;

/// How much one session may hold, so that no handler bug or visitor-driven loop can grow a
/// session (and the store) without bound. The defaults are far above what a normal site
/// stores; set them on [`SessionConfig::with_limits`](crate::SessionConfig::with_limits).
///
/// Sizes are counted in bytes of the field map: each key's UTF-8 length plus its encoded
/// (MessagePack) value, sessionkit's own `__sk.` keys included (three to six small ones:
/// timestamps, binding tags; they count against `max_fields` too). A stored record is that
/// plus a few bytes per field.
///
/// Where they are enforced, before anything is written:
///
/// - [`Session`](crate::Session)'s setters (`insert`, `push`, typed setters, …) refuse a
///   value over `max_value_bytes`, a new key beyond `max_fields`, and a change that grows
///   the session past `max_record_bytes`, with [`Error::LimitExceeded`]; the session is
///   then unchanged, so the handler sees the error where it set the value.
/// - The manager checks the whole session again when it saves (setters that cannot fail,
///   such as `Session::update`, are caught there) and writes nothing when a bound is
///   exceeded; the web layer then answers `500` (not `503`: retrying cannot help).
/// - Stores that merge with [`Record::apply`](crate::store::Record::apply) (memory, file, and the
///   tiers over them) check the merged record again, atomically with the save, so an
///   operation such as `push` cannot grow a value or the record past a bound even when
///   concurrent requests push onto one array. `RedisStore` merges in a script that does not
///   re-check: there the bound is the manager's view (the loaded session plus this
///   request's changes), and concurrent requests may together exceed it by what each adds.
///
/// A bound on the fields or the record refuses only a change that *grows* a session past
/// it: a session that is over a bound already (the limits were lowered) keeps working and
/// may shrink. A value over `max_value_bytes` is always refused.
///
/// ```
/// use sessionkit::{Limits, SessionConfig};
/// let config = SessionConfig::default()
///     .with_limits(Limits::default().with_max_value_bytes(64 * 1024).with_max_fields(100));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The most keys one session holds. Default [`DEFAULT_MAX_FIELDS`] (10⁴).
    pub max_fields: usize,
    /// The largest encoded value. Default [`DEFAULT_MAX_VALUE_BYTES`] (1 MiB).
    pub max_value_bytes: usize,
    /// The largest field map (keys plus encoded values). Default
    /// [`DEFAULT_MAX_RECORD_BYTES`] (4 MiB).
    pub max_record_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_fields: DEFAULT_MAX_FIELDS,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// How many fields a field map has and how many bytes they take (see [`Limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Footprint {
    pub(crate) fields: usize,
    pub(crate) bytes: usize,
}

impl Footprint {
    pub(crate) fn of(fields: &BTreeMap<String, Bytes>) -> Self {
        let bytes = fields.iter().fold(0usize, |sum, (k, v)| {
            sum.saturating_add(entry_len(k, v.len()))
        });
        Footprint {
            fields: fields.len(),
            bytes,
        }
    }

    /// Adds the entry `key` with a value of `len` bytes.
    pub(crate) fn add(&mut self, key: &str, len: usize) {
        self.fields += 1;
        self.bytes = self.bytes.saturating_add(entry_len(key, len));
    }

    /// Takes away the entry `key` with a value of `len` bytes.
    pub(crate) fn sub(&mut self, key: &str, len: usize) {
        self.fields = self.fields.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(entry_len(key, len));
    }
}

fn entry_len(key: &str, len: usize) -> usize {
    key.len().saturating_add(len)
}

impl Limits {
    setters! {
        /// Sets [`max_fields`](Self::max_fields).
        fn with_max_fields(max: usize) => max_fields = max;

        /// Sets [`max_value_bytes`](Self::max_value_bytes).
        fn with_max_value_bytes(max: usize) => max_value_bytes = max;

        /// Sets [`max_record_bytes`](Self::max_record_bytes).
        fn with_max_record_bytes(max: usize) => max_record_bytes = max;
    }

    /// Checks the limits themselves (the manager's configuration check calls it).
    ///
    /// # Errors
    /// [`Error::Config`] when a bound is zero, or a value may be larger than a record.
    pub fn validate(&self) -> Result<()> {
        if self.max_fields == 0 || self.max_value_bytes == 0 || self.max_record_bytes == 0 {
            return Err(Error::Config(
                "limits: max_fields, max_value_bytes and max_record_bytes must be more than zero"
                    .to_owned(),
            ));
        }
        if self.max_value_bytes > self.max_record_bytes {
            return Err(Error::Config(
                "limits: max_value_bytes must not exceed max_record_bytes".to_owned(),
            ));
        }
        Ok(())
    }

    /// Refuses a value of `len` bytes for `key` over [`max_value_bytes`](Self::max_value_bytes).
    pub(crate) fn check_value(&self, key: &str, len: usize) -> Result<()> {
        if len > self.max_value_bytes {
            return Err(Error::LimitExceeded {
                limit: Limit::ValueBytes,
                key: Some(key.to_owned()),
                size: len,
                max: self.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Refuses going from `before` to `after` when that grows the field count or the bytes
    /// past their bound.
    pub(crate) fn check_growth(&self, before: Footprint, after: Footprint) -> Result<()> {
        for (limit, size, was, max) in [
            (Limit::Fields, after.fields, before.fields, self.max_fields),
            (
                Limit::RecordBytes,
                after.bytes,
                before.bytes,
                self.max_record_bytes,
            ),
        ] {
            if size > max && size > was {
                return Err(Error::LimitExceeded {
                    limit,
                    key: None,
                    size,
                    max,
                });
            }
        }
        Ok(())
    }

    /// Checks setting `key` to a value of `len` bytes in a map whose footprint is `now` and
    /// whose current value for `key` is `old` bytes long (`None`: absent).
    pub(crate) fn admit(
        &self,
        now: Footprint,
        key: &str,
        old: Option<usize>,
        len: usize,
    ) -> Result<()> {
        self.check_value(key, len)?;
        let mut after = now;
        if let Some(old) = old {
            after.sub(key, old);
        }
        after.add(key, len);
        self.check_growth(now, after)
    }
}

/// The longest timeout the manager accepts (100 years): anything longer means "never" and
/// is better said with `None`, and every deadline computed from it stays representable.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `t + d`, or a time later than any deadline sessionkit computes (about the year 11970)
/// when the sum leaves what the platform's `SystemTime` can hold: a huge duration or a
/// stored time near the end of the range means "not yet", never a panic.
pub(crate) fn later(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).unwrap_or_else(|| t.max(far_future()))
}

fn far_future() -> SystemTime {
    const TEN_THOUSAND_YEARS: Duration = Duration::from_secs(10_000 * 365 * 24 * 3600);
    // Every platform's SystemTime reaches past the year 11970 (Windows: 30828); the epoch
    // fallback is unreachable.
    UNIX_EPOCH
        .checked_add(TEN_THOUSAND_YEARS)
        .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_a_bound_is_refused_shrinking_is_not() {
        let limits = Limits::default()
            .with_max_fields(2)
            .with_max_record_bytes(10)
            .with_max_value_bytes(8);
        let two = Footprint {
            fields: 2,
            bytes: 6,
        };
        match limits.admit(two, "c", None, 1) {
            Err(Error::LimitExceeded {
                limit: Limit::Fields,
                size: 3,
                max: 2,
                ..
            }) => {}
            other => panic!("expected the field bound, got {other:?}"),
        }
        // Replacing a key is no new field; 6 - (1 + 2) + (1 + 6) = 10 fits.
        limits.admit(two, "a", Some(2), 6).unwrap();
        match limits.admit(two, "a", Some(2), 7) {
            Err(Error::LimitExceeded {
                limit: Limit::RecordBytes,
                size: 11,
                max: 10,
                ..
            }) => {}
            other => panic!("expected the record bound, got {other:?}"),
        }
        match limits.admit(two, "a", Some(2), 9) {
            Err(Error::LimitExceeded {
                limit: Limit::ValueBytes,
                key: Some(key),
                size: 9,
                max: 8,
            }) => assert_eq!(key, "a"),
            other => panic!("expected the value bound, got {other:?}"),
        }
        // Already over the bounds (they were lowered): shrinking is still allowed.
        let over = Footprint {
            fields: 5,
            bytes: 50,
        };
        limits.admit(over, "a", Some(5), 1).unwrap();
    }

    #[test]
    fn time_sums_saturate_instead_of_panicking() {
        let now = SystemTime::now();
        assert!(later(now, Duration::MAX) > later(now, MAX_TIMEOUT));
        assert_eq!(
            later(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }
}
