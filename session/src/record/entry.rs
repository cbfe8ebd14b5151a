//! What a blob store keeps under a key: a record, a grace alias or a tombstone.

use super::*;

/// An old key forwarding to a new one, for stores that keep it as one blob.
#[derive(Serialize, Deserialize)]
struct AliasWire {
    v: u32,
    to: [u8; 32],
    until_ms: u64,
    token: Vec<u8>,
}

/// How long the old key of a move *without* grace keeps a [tombstone](Entry::Tombstone):
/// long enough for a request that loaded the session before the move to end it through the
/// old key (a logout racing an id change), never resolving for anyone.
pub const MOVE_TOMBSTONE: Duration = Duration::from_secs(60);

/// An old key that resolves to nothing but remembers where its session went.
#[derive(Serialize, Deserialize)]
struct TombstoneWire {
    v: u32,
    to: [u8; 32],
    until_ms: u64,
}

/// What a blob store (file, memory) keeps under a key: a record, or a forward from an old key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A live session.
    Record(Record),
    /// An old key in its grace window.
    Alias {
        /// The key the session moved to.
        to: SessionKey,
        /// Until when the alias resolves.
        until: SystemTime,
        /// The move's token.
        token: Vec<u8>,
    },
    /// The old key of a move without grace: it loads as absent, refuses saves and does not
    /// hold its key against a `create`, but a `delete` through it reports where the session
    /// went ([`Removed::Alias`]), until `until` ([`MOVE_TOMBSTONE`] after the move).
    Tombstone {
        /// The key the session moved to.
        to: SessionKey,
        /// Until when the tombstone is kept.
        until: SystemTime,
    },
}

#[derive(Serialize, Deserialize)]
enum EntryWire {
    R(RecordWire),
    A(AliasWire),
    T(TombstoneWire),
}

impl Entry {
    /// Whether the entry is live at `now`, whatever its kind: it ends strictly after `now`
    /// (for a record, [`Record::is_live_at`]; for an alias or tombstone, its `until`).
    pub fn is_live_at(&self, now: SystemTime) -> bool {
        self.expires_at() > now
    }

    /// When the entry stops resolving.
    pub fn expires_at(&self) -> SystemTime {
        match self {
            Entry::Record(r) => r.expires_at,
            Entry::Alias { until, .. } | Entry::Tombstone { until, .. } => *until,
        }
    }

    /// What a move to `to` leaves under the old key at `now`: the grace alias when the move has
    /// a [`Grace`], else a [tombstone](Entry::Tombstone) for [`MOVE_TOMBSTONE`]; neither
    /// outlives the moved record (`expires_at`).
    pub fn left_by_move(
        to: SessionKey,
        grace: Option<&Grace>,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Entry {
        match grace {
            Some(g) => Entry::Alias {
                to,
                until: g.until.min(expires_at),
                token: g.token.clone(),
            },
            None => Entry::Tombstone {
                to,
                until: later(now, MOVE_TOMBSTONE).min(expires_at),
            },
        }
    }

    /// What a delete leaves under the key at `now`: nothing for a record, and a
    /// [tombstone](Entry::Tombstone) for a live alias or tombstone, so that every logout that
    /// loaded the session through this key — not only the first — can follow the move. It
    /// resolves to nothing and expires when the alias would have.
    pub fn left_by_delete(&self, now: SystemTime) -> Option<Entry> {
        match self {
            Entry::Alias { to, until, .. } | Entry::Tombstone { to, until }
                if self.is_live_at(now) =>
            {
                Some(Entry::Tombstone {
                    to: *to,
                    until: *until,
                })
            }
            _ => None,
        }
    }

    /// Whether the entry makes its key resolve at `now` (a live record or grace alias), so a
    /// `create` must not take the key. A tombstone never does.
    pub fn resolves_at(&self, now: SystemTime) -> bool {
        match self {
            Entry::Record(_) | Entry::Alias { .. } => self.is_live_at(now),
            Entry::Tombstone { .. } => false,
        }
    }

    /// Serializes the entry (versioned, named fields).
    ///
    /// # Errors
    /// [`Error::Encode`] if serialization fails.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let wire = match self {
            Entry::Record(r) => EntryWire::R(RecordWire::of(r)),
            Entry::Alias { to, until, token } => EntryWire::A(AliasWire {
                v: RECORD_VERSION,
                to: *to.as_bytes(),
                until_ms: to_millis(*until),
                token: token.clone(),
            }),
            Entry::Tombstone { to, until } => EntryWire::T(TombstoneWire {
                v: RECORD_VERSION,
                to: *to.as_bytes(),
                until_ms: to_millis(*until),
            }),
        };
        to_wire(&wire)
    }

    /// Parses what [`Entry::encode`] wrote.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let wire: EntryWire = from_wire(bytes, "entry")?;
        let v = match &wire {
            EntryWire::R(r) => r.v,
            EntryWire::A(a) => a.v,
            EntryWire::T(t) => t.v,
        };
        check_version(v, "entry")?;
        Ok(match wire {
            EntryWire::R(r) => Entry::Record(r.into_record()),
            EntryWire::A(a) => Entry::Alias {
                to: SessionKey::from_bytes(a.to),
                until: from_millis(a.until_ms),
                token: a.token,
            },
            EntryWire::T(t) => Entry::Tombstone {
                to: SessionKey::from_bytes(t.to),
                until: from_millis(t.until_ms),
            },
        })
    }
}
