//! The owner index: one marker file per session under `owners/<hash of owner>/`.

use super::*;

impl Layout {
    /// Makes sure the owner index has a marker for `key`. Called, under the session's lock,
    /// before the record naming `owner` is written, so every record with an owner has its
    /// marker even after a crash (a marker without its record is verified away on read).
    pub(super) fn ensure_marker(&self, owner: &str, key: &SessionKey) -> Result<()> {
        let dir = self.owner_dir(owner);
        let marker = dir.join(key.to_hex());
        if marker.is_file() {
            return Ok(());
        }
        let doing = "writing an owner index marker";
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.ensure_dir(&dir).map_err(|e| io_error(doing, e))?;
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&marker) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
                // `cleanup` removed the owner's empty directory in between: make it again.
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => {}
                Err(e) => return Err(io_error(doing, e)),
            }
        }
        if self.sync() {
            sync_dir(&dir).map_err(|e| io_error(doing, e))?;
        }
        Ok(())
    }

    /// Removes a marker that no longer matches; failures only leave a stale marker behind,
    /// which readers verify away, so they are logged, not returned.
    pub(crate) fn remove_marker(&self, owner_dir: &Path, key: &SessionKey) {
        match fs::remove_file(owner_dir.join(key.to_hex())) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                session = %key.fingerprint(),
                error = %e,
                "could not remove a stale owner index marker"
            ),
        }
    }

    /// The keys named by `owner`'s index markers: a listing of names only, no file read.
    pub(crate) fn owner_markers(&self, owner: &str) -> Result<Vec<SessionKey>> {
        let listing = list_dir(&self.owner_dir(owner), "listing the owner index")?;
        Ok(listing
            .iter()
            .filter_map(|item| item.file_name().to_str().and_then(SessionKey::from_hex))
            .collect())
    }

    /// Which of `markers` (from [`owner_markers`](Self::owner_markers)) are live sessions of
    /// `owner`, dropping the stale markers. Each check locks at most one session directory,
    /// briefly, and only for a stale marker; loads take no lock at all.
    pub(crate) fn check_owner_markers(
        &self,
        owner: &str,
        markers: &[SessionKey],
    ) -> Result<Vec<SessionKey>> {
        let dir = self.owner_dir(owner);
        let now = SystemTime::now();
        let mut keys = Vec::new();
        for key in markers {
            let (_, path) = self.paths(key);
            match self.read_slot(&path, key)? {
                Slot::Entry(Entry::Record(r))
                    if r.is_live_at(now) && r.owner.as_deref() == Some(owner) =>
                {
                    keys.push(*key);
                }
                Slot::Corrupt(_) => {}
                // The session moved since the markers were listed: the new key's marker may
                // have been written after the listing read the directory, so follow the moves.
                Slot::Entry(Entry::Alias { to, .. } | Entry::Tombstone { to, .. }) => {
                    if let Some(target) = self.follow_moves(to, owner, now)? {
                        keys.push(target);
                    }
                    self.drop_stale_marker(&dir, key)?;
                }
                Slot::Entry(_) | Slot::Absent => self.drop_stale_marker(&dir, key)?,
            }
        }
        Ok(keys)
    }

    /// The key of the live session of `owner` that a move to `to` led to, following at most
    /// [`MAX_ALIAS_HOPS`] further moves.
    fn follow_moves(
        &self,
        mut to: SessionKey,
        owner: &str,
        now: SystemTime,
    ) -> Result<Option<SessionKey>> {
        for _ in 0..MAX_ALIAS_HOPS {
            let (_, path) = self.paths(&to);
            match self.read_slot(&path, &to)? {
                Slot::Entry(Entry::Record(r))
                    if r.is_live_at(now) && r.owner.as_deref() == Some(owner) =>
                {
                    return Ok(Some(to));
                }
                Slot::Entry(Entry::Alias { to: next, .. } | Entry::Tombstone { to: next, .. }) => {
                    to = next;
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Removes the marker of `key` in `owner_dir` if, under the session's lock, the session
    /// is not a live record of that owner (an apply may be setting the owner right now).
    pub(crate) fn drop_stale_marker(&self, owner_dir: &Path, key: &SessionKey) -> Result<()> {
        let (dir, path) = self.paths(key);
        let _lock = self.lock_created(&dir)?;
        let stale = match live_record(self.read_slot(&path, key)?, SystemTime::now()) {
            Some(r) => !r
                .owner
                .as_deref()
                .is_some_and(|o| Self::is_owner_dir(owner_dir, o)),
            None => true,
        };
        if stale {
            self.remove_marker(owner_dir, key);
        }
        Ok(())
    }
}
