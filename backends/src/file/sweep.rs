//! `cleanup` as a resumable walk: each step handles a bounded number of directory entries on
//! the blocking pool, and the async side yields between steps.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use sessionkit::SessionKey;
use sessionkit::store::{Entry, Result};

use super::layout::{LOCK_NAME, Layout, Slot, TMP_PREFIX, list_dir};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Sessions,
    Owners,
    Done,
}

/// Where a cleanup pass is.
pub(crate) struct Sweep {
    layout: Arc<Layout>,
    phase: Phase,
    tops: Vec<PathBuf>,
    leaves: Vec<PathBuf>,
    current: Option<(PathBuf, Vec<OsString>)>,
    /// Expired sessions and aliases removed so far.
    pub(crate) removed: u64,
}

pub(crate) fn is_hex(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The subdirectories of `dir` whose names are `len` lowercase hex characters; anything else
/// is not ours and is left alone.
pub(crate) fn hex_dirs(dir: &Path, len: usize) -> Result<Vec<PathBuf>> {
    let listing = list_dir(dir, "listing the store directory")?;
    Ok(listing
        .into_iter()
        .filter(|item| {
            item.file_name().to_str().is_some_and(|n| is_hex(n, len))
                && item.file_type().is_ok_and(|t| t.is_dir())
        })
        .map(|item| item.path())
        .collect())
}

fn names(dir: &Path) -> Result<Vec<OsString>> {
    let listing = list_dir(dir, "listing the store directory")?;
    Ok(listing.into_iter().map(|item| item.file_name()).collect())
}

impl Sweep {
    pub(crate) fn new(layout: Arc<Layout>) -> Self {
        Sweep {
            layout,
            phase: Phase::Sessions,
            // The empty path stands for the phase's root: listing it is left to the first
            // step, off the async thread.
            tops: vec![PathBuf::new()],
            leaves: Vec::new(),
            current: None,
            removed: 0,
        }
    }

    /// Handles about `budget` directory entries. Returns `false` once the pass is complete.
    pub(crate) fn step(&mut self, budget: usize) -> Result<bool> {
        let mut left = budget.max(1);
        while left > 0 {
            if let Some((dir, pending)) = &mut self.current {
                if pending.is_empty() {
                    if self.phase == Phase::Owners {
                        // Only succeeds when empty; a marker written meanwhile keeps it.
                        let _ = fs::remove_dir(&*dir);
                    }
                    self.current = None;
                    continue;
                }
                let chunk = pending.split_off(pending.len().saturating_sub(left));
                left -= chunk.len();
                let dir = dir.clone();
                match self.phase {
                    Phase::Sessions => self.sweep_sessions(&dir, chunk)?,
                    Phase::Owners => self.sweep_owners(&dir, chunk)?,
                    Phase::Done => {}
                }
                continue;
            }
            left -= 1;
            if let Some(leaf) = self.leaves.pop() {
                let pending = names(&leaf)?;
                self.current = Some((leaf, pending));
                continue;
            }
            if let Some(top) = self.tops.pop() {
                let (root, leaf_len) = match self.phase {
                    Phase::Sessions => (self.layout.sessions_root(), 2),
                    _ => (self.layout.owners_root(), 64),
                };
                if top.as_os_str().is_empty() {
                    self.tops = hex_dirs(root, 2)?;
                } else {
                    self.leaves = hex_dirs(&top, leaf_len)?;
                }
                continue;
            }
            match self.phase {
                Phase::Sessions => {
                    self.phase = Phase::Owners;
                    self.tops.push(PathBuf::new());
                }
                Phase::Owners | Phase::Done => {
                    self.phase = Phase::Done;
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Under the directory's lock, so no write is in flight here: removes expired entries,
    /// temporary files (any that exist were left by a crashed writer), and corrupt files older
    /// than the retention.
    fn sweep_sessions(&mut self, dir: &Path, chunk: Vec<OsString>) -> Result<()> {
        let layout = Arc::clone(&self.layout);
        let Some(_lock) = layout.lock_existing(dir)? else {
            return Ok(());
        };
        let now = SystemTime::now();
        for name in chunk {
            let Some(name) = name.to_str() else { continue };
            let path = dir.join(name);
            if name.starts_with(TMP_PREFIX) {
                remove_quietly(&path);
                continue;
            }
            if name == LOCK_NAME {
                continue;
            }
            let Some(key) = SessionKey::from_hex(name) else {
                continue;
            };
            if layout.paths(&key).1 != path {
                continue;
            }
            match layout.read_slot(&path, &key)? {
                Slot::Entry(entry) if !entry.is_live_at(now) => {
                    if fs::remove_file(&path).is_ok() {
                        self.removed += 1;
                    }
                    if let Entry::Record(r) = entry
                        && let Some(owner) = r.owner
                    {
                        let owner_dir = layout.owner_dir(&owner);
                        layout.remove_marker(&owner_dir, &key);
                    }
                }
                Slot::Corrupt(_) => {
                    let old = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| now.duration_since(t).ok())
                        .is_some_and(|age| age >= layout.corrupt_retention);
                    if old {
                        tracing::warn!(session = %key.fingerprint(), "removing a corrupt session file past its retention");
                        remove_quietly(&path);
                    }
                }
                Slot::Entry(_) | Slot::Absent => {}
            }
        }
        Ok(())
    }

    /// Removes owner index markers whose session is gone, expired, or has another owner.
    fn sweep_owners(&mut self, dir: &Path, chunk: Vec<OsString>) -> Result<()> {
        let now = SystemTime::now();
        for name in chunk {
            let Some(key) = name.to_str().and_then(SessionKey::from_hex) else {
                continue;
            };
            let (_, path) = self.layout.paths(&key);
            let current = match self.layout.read_slot(&path, &key)? {
                Slot::Entry(Entry::Record(r)) if r.is_live_at(now) => r
                    .owner
                    .as_deref()
                    .is_some_and(|o| Layout::is_owner_dir(dir, o)),
                _ => false,
            };
            if !current {
                self.layout.drop_stale_marker(dir, &key)?;
            }
        }
        Ok(())
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "file store cleanup could not remove a file");
    }
}
