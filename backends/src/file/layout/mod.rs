//! The blocking half of the file store: where files live, how they are locked and replaced.
//! Everything here runs on tokio's blocking pool, never on an async worker thread.

mod ops;
mod owners;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sessionkit::SessionKey;
use sessionkit::store::{
    ChangeSet, Entry, Error, Grace, Loaded, MAX_ALIAS_HOPS, Moved, Record, Removed, Result,
};
use sha2::{Digest as _, Sha256};

use super::config::{Durability, FileConfig};

/// Prefix of the temporary files a write renames over its target.
pub(crate) const TMP_PREFIX: &str = ".tmp-";
/// Name of the lock file in each session directory.
pub(crate) const LOCK_NAME: &str = ".lock";
const SESSIONS: &str = "sessions";
const OWNERS: &str = "owners";

/// What a session path holds.
pub(crate) enum Slot {
    Absent,
    Entry(Entry),
    /// Unreadable as an entry (empty, truncated, foreign): no session for `apply`, `owned_by`
    /// and `cleanup`, reported by `load`, and never overwritten by `create` or `rename`.
    Corrupt(Error),
}

/// An exclusive OS advisory lock on one session directory, released when dropped (closing
/// the descriptor releases the lock, also when the process dies).
pub(crate) struct DirLock(#[allow(dead_code, reason = "held for its Drop")] File);

/// Maps an I/O error to the typed error callers branch on, saying what failed and why.
pub(crate) fn io_error(doing: &str, err: io::Error) -> Error {
    let why = match err.kind() {
        io::ErrorKind::PermissionDenied => "permission denied",
        io::ErrorKind::StorageFull => "disk full",
        io::ErrorKind::QuotaExceeded => "disk quota exceeded",
        io::ErrorKind::FileTooLarge => "file too large",
        io::ErrorKind::ReadOnlyFilesystem => "read-only file system",
        io::ErrorKind::NotADirectory => "a path component is not a directory",
        io::ErrorKind::NotFound => "no such file or directory",
        _ => "I/O error",
    };
    Error::storage(format!("file store: {why} while {doing}"), err)
}

/// The entries of `dir`, none when it does not exist; `doing` names the listing in errors.
pub(crate) fn list_dir(dir: &Path, doing: &str) -> Result<Vec<fs::DirEntry>> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(doing, e)),
    };
    listing
        .map(|item| item.map_err(|e| io_error(doing, e)))
        .collect()
}

fn owner_hash(owner: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"sessionkit/file/owner/v1\0");
    h.update(owner.as_bytes());
    hex::encode(h.finalize())
}

/// Whether `entry` holds its key against a `create` (a tombstone does not).
fn live(entry: &Entry, now: SystemTime) -> bool {
    entry.resolves_at(now)
}

/// Whether `slot` already holds a tombstone (a delete leaves it as it is).
fn slot_is_tombstone(slot: &Slot) -> bool {
    matches!(slot, Slot::Entry(Entry::Tombstone { .. }))
}

fn live_record(slot: Slot, now: SystemTime) -> Option<Record> {
    match slot {
        Slot::Entry(Entry::Record(r)) if r.is_live_at(now) => Some(r),
        _ => None,
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // std cannot open a directory on Windows; there the rename's durability is left to the
    // file system.
    Ok(())
}

/// Refuses a store directory another local user could write into: one owned by another
/// user, or writable by group or others. Such a user could plant a record file under a key of
/// their choosing (the hash of an id they know) and so hand a visitor a session they control.
/// The directories this store creates are `0700`; one that already existed must be as private.
#[cfg(unix)]
fn check_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = fs::metadata(dir).map_err(|e| io_error("checking the store directory", e))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::Config(format!(
            "the session store directory {} is owned by uid {}, not by this process (uid {me}); \
             another user could plant sessions in it: use a directory this user created",
            dir.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Error::Config(format!(
            "the session store directory {} is writable by {} (mode {:o}); another user could \
             plant sessions in it: `chmod go-w` it (the store creates its directories 0700)",
            dir.display(),
            if meta.mode() & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            },
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_dir: &Path) -> Result<()> {
    // Windows ACLs are not inspected; the directory's inherited ACL applies.
    Ok(())
}

fn dir_builder() -> fs::DirBuilder {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
}

fn lock_file(dir: &Path) -> io::Result<DirLock> {
    let path = dir.join(LOCK_NAME);
    // A read-only descriptor is enough for flock(2), so reads and cleanup still lock on a
    // directory that became read-only; only a missing lock file needs write access.
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut options = OpenOptions::new();
            options.write(true).create(true).truncate(false);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options.open(&path)?
        }
        Err(e) => return Err(e),
    };
    loop {
        match file.lock() {
            Ok(()) => return Ok(DirLock(file)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The store's directory tree (drawn in [`FileStore`](super::FileStore)'s docs) and the
/// operations on it.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) root: PathBuf,
    sessions: PathBuf,
    owners: PathBuf,
    pub(crate) durability: Durability,
    pub(crate) corrupt_retention: std::time::Duration,
}

impl Layout {
    pub(crate) fn open(config: &FileConfig) -> Result<Layout> {
        let layout = Layout {
            root: config.root.clone(),
            sessions: config.root.join(SESSIONS),
            owners: config.root.join(OWNERS),
            durability: config.durability,
            corrupt_retention: config.corrupt_retention,
        };
        let doing = "creating the store directory";
        dir_builder()
            .recursive(true)
            .create(&layout.root)
            .map_err(|e| io_error(doing, e))?;
        // Checked before anything is written into it.
        check_private(&layout.root)?;
        layout
            .ensure_dir(&layout.sessions)
            .map_err(|e| io_error(doing, e))?;
        layout
            .ensure_dir(&layout.owners)
            .map_err(|e| io_error(doing, e))?;
        for dir in [&layout.sessions, &layout.owners] {
            check_private(dir)?;
        }
        // Fail at startup, not on the first save, when the directory is not writable.
        tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&layout.sessions)
            .map_err(|e| io_error("checking that the store directory is writable", e))?;
        Ok(layout)
    }

    fn sync(&self) -> bool {
        self.durability == Durability::Sync
    }

    pub(crate) fn sessions_root(&self) -> &Path {
        &self.sessions
    }

    pub(crate) fn owners_root(&self) -> &Path {
        &self.owners
    }

    /// The directory and file of `key`: `sessions/<hex[0..2]>/<hex[2..4]>/<hex>`. The hex of
    /// the hashed key is the only thing that ever reaches a path.
    pub(crate) fn paths(&self, key: &SessionKey) -> (PathBuf, PathBuf) {
        let hex = key.to_hex();
        let dir = self.sessions.join(&hex[0..2]).join(&hex[2..4]);
        let file = dir.join(&hex);
        (dir, file)
    }

    pub(crate) fn owner_dir(&self, owner: &str) -> PathBuf {
        let hash = owner_hash(owner);
        self.owners.join(&hash[0..2]).join(hash)
    }

    /// Whether `dir` (a directory under `owners/`) is the one of `owner`.
    pub(crate) fn is_owner_dir(dir: &Path, owner: &str) -> bool {
        dir.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == owner_hash(owner))
    }

    /// Creates `dir` and missing parents inside the root, making each new directory entry
    /// durable under [`Durability::Sync`].
    fn ensure_dir(&self, dir: &Path) -> io::Result<()> {
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "expected a directory in the session store",
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let parent = dir.parent().filter(|p| p.starts_with(&self.root));
        if let Some(parent) = parent
            && parent != self.root
        {
            self.ensure_dir(parent)?;
        }
        match dir_builder().create(dir) {
            Ok(()) => {
                if let (true, Some(parent)) = (self.sync(), parent) {
                    sync_dir(parent)?;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Locks the session directory `dir`, or `None` when it does not exist (so no session
    /// lives there and nothing needs to be created).
    pub(crate) fn lock_existing(&self, dir: &Path) -> Result<Option<DirLock>> {
        match lock_file(dir) {
            Ok(lock) => Ok(Some(lock)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("locking a session directory", e)),
        }
    }

    fn lock_created(&self, dir: &Path) -> Result<DirLock> {
        self.ensure_dir(dir)
            .map_err(|e| io_error("creating a session directory", e))?;
        lock_file(dir).map_err(|e| io_error("locking a session directory", e))
    }

    /// Reads what `path` holds. Reads need no lock: files are only ever replaced by rename,
    /// so a reader sees the old or the new file, whole.
    pub(crate) fn read_slot(&self, path: &Path, key: &SessionKey) -> Result<Slot> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Slot::Absent),
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => {
                return Ok(self.corrupt(key, Error::corrupt("not a session file", e)));
            }
            Err(e) => return Err(io_error("reading a session file", e)),
        };
        if bytes.is_empty() {
            let err = Error::corrupt_message("empty session file");
            return Ok(self.corrupt(key, err));
        }
        Ok(match Entry::decode(&bytes) {
            Ok(entry) => Slot::Entry(entry),
            Err(err) => self.corrupt(key, err),
        })
    }

    fn corrupt(&self, key: &SessionKey, err: Error) -> Slot {
        tracing::warn!(
            session = %key.fingerprint(),
            error = %err,
            "unreadable session file; treating the session as absent"
        );
        Slot::Corrupt(err)
    }

    /// Writes `bytes` to `target` atomically: a temporary file in the same directory, then a
    /// rename over the target. The caller holds the directory's lock.
    fn write_atomic(&self, dir: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        if self.sync() {
            tmp.as_file().sync_all()?;
        }
        // On any error above the temporary file is removed when `tmp` drops; the target is
        // untouched.
        tmp.persist(target).map_err(|e| e.error)?;
        if self.sync() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    fn write_entry(&self, dir: &Path, target: &Path, entry: &Entry) -> Result<()> {
        let bytes = entry.encode()?;
        self.write_atomic(dir, target, &bytes)
            .map_err(|e| io_error("writing a session file", e))
    }

    fn remove_file(&self, dir: &Path, path: &Path) -> Result<()> {
        match fs::remove_file(path) {
            Ok(()) => {
                if self.sync() {
                    sync_dir(dir).map_err(|e| io_error("syncing a session directory", e))?;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("removing a session file", e)),
        }
    }
}
