//! The file store's operations on one session, each under the session directory's lock.

use super::*;

impl Layout {
    pub(crate) fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        let entry = Entry::Record(record.clone());
        let (dir, path) = self.paths(key);
        let _lock = self.lock_created(&dir)?;
        match self.read_slot(&path, key)? {
            Slot::Entry(e) if live(&e, SystemTime::now()) => return Err(Error::AlreadyExists),
            // Never overwrite what we cannot read; the caller picks another id.
            Slot::Corrupt(_) => return Err(Error::AlreadyExists),
            Slot::Entry(_) | Slot::Absent => {}
        }
        if let Some(owner) = &record.owner {
            self.ensure_marker(owner, key)?;
        }
        self.write_entry(&dir, &path, &entry)
    }

    pub(crate) fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        let (_, path) = self.paths(key);
        let now = SystemTime::now();
        match self.read_slot(&path, key)? {
            Slot::Absent => Ok(None),
            Slot::Corrupt(err) => Err(err),
            Slot::Entry(Entry::Record(r)) => Ok(r.is_live_at(now).then(|| r.into())),
            Slot::Entry(e) if !e.is_live_at(now) => Ok(None),
            Slot::Entry(Entry::Tombstone { .. }) => Ok(None),
            Slot::Entry(Entry::Alias { to, token, .. }) => {
                let (_, target) = self.paths(&to);
                match self.read_slot(&target, &to)? {
                    Slot::Corrupt(err) => Err(err),
                    slot => Ok(live_record(slot, now)
                        .map(|record| Loaded::new(record, Some(Moved::new(to, token))))),
                }
            }
        }
    }

    pub(crate) fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        let (dir, path) = self.paths(key);
        let Some(_lock) = self.lock_existing(&dir)? else {
            return Err(Error::Gone);
        };
        let slot = self.read_slot(&path, key)?;
        let Some(mut record) = live_record(slot, SystemTime::now()) else {
            return Err(Error::Gone);
        };
        if changes.is_empty() {
            return Ok(());
        }
        let old_owner = record.owner.clone();
        record.apply(changes)?;
        if let Some(owner) = &record.owner {
            self.ensure_marker(owner, key)?;
        }
        self.write_entry(&dir, &path, &Entry::Record(record.clone()))?;
        if let Some(old) = old_owner
            && record.owner.as_ref() != Some(&old)
        {
            self.remove_marker(&self.owner_dir(&old), key);
        }
        Ok(())
    }

    pub(crate) fn delete(&self, key: &SessionKey) -> Result<Removed> {
        let (dir, path) = self.paths(key);
        let Some(_lock) = self.lock_existing(&dir)? else {
            return Ok(Removed::Nothing);
        };
        let slot = self.read_slot(&path, key)?;
        let now = SystemTime::now();
        let (removed, left) = match &slot {
            Slot::Entry(entry) => (Removed::of(Some(entry), now), entry.left_by_delete(now)),
            Slot::Absent | Slot::Corrupt(_) => (Removed::Nothing, None),
        };
        match left {
            // An alias becomes a tombstone, so every logout through this key can follow it.
            Some(_) if slot_is_tombstone(&slot) => {}
            Some(left) => self.write_entry(&dir, &path, &left)?,
            None => self.remove_file(&dir, &path)?,
        }
        if let Slot::Entry(Entry::Record(Record {
            owner: Some(owner), ..
        })) = &slot
        {
            self.remove_marker(&self.owner_dir(owner), key);
        }
        Ok(removed)
    }

    pub(crate) fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        let (from_dir, from_path) = self.paths(from);
        let (to_dir, to_path) = self.paths(to);
        if !from_dir.is_dir() {
            return Err(Error::Gone);
        }
        // Both directories are locked, always in path order, so a concurrent apply on either
        // key waits and two renames cannot deadlock.
        let _locks = if from_dir == to_dir {
            (self.lock_created(&from_dir)?, None)
        } else if from_dir < to_dir {
            let first = self.lock_created(&from_dir)?;
            (first, Some(self.lock_created(&to_dir)?))
        } else {
            let first = self.lock_created(&to_dir)?;
            (first, Some(self.lock_created(&from_dir)?))
        };
        let now = SystemTime::now();
        let Some(record) = live_record(self.read_slot(&from_path, from)?, now) else {
            return Err(Error::Gone);
        };
        match self.read_slot(&to_path, to)? {
            Slot::Entry(e) if live(&e, now) => return Err(Error::AlreadyExists),
            Slot::Corrupt(_) => return Err(Error::AlreadyExists),
            Slot::Entry(_) | Slot::Absent => {}
        }
        if let Some(owner) = &record.owner {
            self.ensure_marker(owner, to)?;
        }
        // The new key is written first: a crash before the old key is replaced leaves the
        // session whole under its old key, plus a copy nobody holds the id of.
        self.write_entry(&to_dir, &to_path, &Entry::Record(record.clone()))?;
        let left = Entry::left_by_move(*to, grace, record.expires_at, now);
        let replaced = if left.is_live_at(now) {
            self.write_entry(&from_dir, &from_path, &left)
        } else {
            self.remove_file(&from_dir, &from_path)
        };
        if let Err(err) = replaced {
            // Undo the copy so the move can be retried; the old key is untouched.
            if let Err(undo) = self.remove_file(&to_dir, &to_path) {
                tracing::warn!(session = %to.fingerprint(), error = %undo, "could not undo a failed move");
            }
            return Err(err);
        }
        if let Some(owner) = &record.owner {
            self.remove_marker(&self.owner_dir(owner), from);
        }
        Ok(())
    }
}
