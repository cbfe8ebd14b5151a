//! What every subject — sessionkit store, peer library, raw floor — is driven through.

use std::future::Future;

/// The operations measured, in the order they run (delete removes what save-new created).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Op {
    /// Load a session that exists.
    LoadHit,
    /// Load a session id that was never stored.
    LoadMiss,
    /// A request that loads, reads one key, and lets the lifecycle decide to write nothing.
    ReadOnly,
    /// Store a new session.
    SaveNew,
    /// Save a loaded session after changing one key.
    SaveChanged,
    /// Delete a session.
    Delete,
}

impl Op {
    pub(crate) const ALL: [Op; 6] = [
        Op::LoadHit,
        Op::LoadMiss,
        Op::ReadOnly,
        Op::SaveNew,
        Op::SaveChanged,
        Op::Delete,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Op::LoadHit => "load hit",
            Op::LoadMiss => "load miss",
            Op::ReadOnly => "read-only request",
            Op::SaveNew => "save new",
            Op::SaveChanged => "save 1 changed key",
            Op::Delete => "delete",
        }
    }
}

/// Who a subject is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One of sessionkit's stores.
    Ours,
    /// Another library.
    Peer,
    /// The raw operation with nothing on top.
    Floor,
}

/// Where a subject keeps its data, which decides the session counts it runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Medium {
    Memory,
    Redis,
    File,
    /// A private PostgreSQL server on loopback.
    Postgres,
}

/// A thing to measure. `i` names a session: indices below the population size exist, those
/// at or above [`MISS_BASE`](crate::workload::MISS_BASE) never do, and save-new/delete use
/// fresh indices from the population size up.
///
/// `Scratch` is per-task state that a real request would already have in hand (the loaded
/// record a peer saves back whole), so building it is not charged to the save.
pub(crate) trait Subject: Send + Sync + 'static {
    type Scratch: Send + 'static;

    fn name(&self) -> String;
    fn kind(&self) -> Kind;
    fn medium(&self) -> Medium;
    fn scratch(&self) -> Self::Scratch;

    /// Set-up after the population is stored, before read-only requests run.
    fn prepare(&self) -> impl Future<Output = anyhow::Result<()>> + Send {
        std::future::ready(Ok(()))
    }

    /// Turns store-write counting on or off, returning the count so far; `None` when the
    /// subject cannot count (Redis subjects are counted by the server instead).
    fn count_writes(&self, _on: bool) -> Option<u64> {
        None
    }

    /// Runs one operation. `Ok(true)` when a load found its session.
    fn run(
        &self,
        op: Op,
        i: u64,
        scratch: &mut Self::Scratch,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send;
}
