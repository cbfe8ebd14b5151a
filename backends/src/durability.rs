//! [`Durability`]: the one flush-to-disk choice shared by the embedded durable stores
//! (`FileStore`, `SqliteStore`).

/// Whether each write is flushed to the disk before it counts as done.
///
/// Both settings keep every write atomic, so a process that crashes or is killed at any
/// instant leaves every session at its old or its new version. They differ when the *machine*
/// stops (power loss, kernel panic).
///
/// - `FileStore` writes a temporary file and renames it over the old one; `Sync` also
///   `fsync`s the file and its directory.
/// - `SqliteStore` runs in WAL mode; `Sync` is `PRAGMA synchronous = FULL` (the WAL is
///   `fsync`ed at every commit), `NoSync` is `synchronous = NORMAL` (the WAL is synced only at
///   checkpoints).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Flush every write before it returns. A save that returned survives a power loss. The
    /// cost is one or two `fsync` calls per write: from tens of microseconds on a server SSD
    /// with a power-loss-protected cache to several milliseconds on consumer disks and network
    /// volumes.
    #[default]
    Sync,
    /// Leave flushing to the operating system. Writes cost a few microseconds, but after a
    /// power loss a session written in the last seconds may be at an older version, absent,
    /// or (FileStore) read as corrupt, and so as absent. Process crashes are still safe.
    NoSync,
}
