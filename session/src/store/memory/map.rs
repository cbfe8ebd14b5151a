//! The unbounded map: merges in place under the shard's write lock.

use super::*;
use dashmap::mapref::entry::Entry as MapEntry;

pub(super) fn create(
    map: &DashMap<SessionKey, Slot>,
    key: &SessionKey,
    entry: Entry,
    now: SystemTime,
) -> bool {
    match map.entry(*key) {
        MapEntry::Occupied(mut o) => {
            if o.get().entry.resolves_at(now) {
                return false;
            }
            o.insert(Slot { entry, version: 0 });
            true
        }
        MapEntry::Vacant(v) => {
            v.insert(Slot { entry, version: 0 });
            true
        }
    }
}

pub(super) fn load(
    map: &DashMap<SessionKey, Slot>,
    key: &SessionKey,
    now: SystemTime,
) -> Option<Loaded> {
    let alias = {
        let slot = map.get(key)?;
        if !slot.entry.is_live_at(now) {
            drop(slot);
            map.remove_if(key, |_, s| !s.entry.is_live_at(now));
            return None;
        }
        match &slot.entry {
            Entry::Record(r) => return Some(Loaded::from(r.clone())),
            Entry::Alias { to, token, .. } => (*to, token.clone()),
            Entry::Tombstone { .. } => return None,
        }
    };
    // The alias's guard is dropped first: its target may live in the same shard.
    let (to, token) = alias;
    let target = map.get(&to)?;
    match &target.entry {
        Entry::Record(r) if r.is_live_at(now) => Some(Loaded {
            record: r.clone(),
            moved: Some(Moved { to, token }),
        }),
        _ => None,
    }
}

pub(super) fn apply(
    map: &DashMap<SessionKey, Slot>,
    key: &SessionKey,
    changes: &ChangeSet,
    now: SystemTime,
) -> Result<bool> {
    match map.get_mut(key) {
        Some(mut slot) => match &mut slot.entry {
            Entry::Record(r) if r.is_live_at(now) => {
                r.apply(changes)?;
                slot.version += 1;
                Ok(true)
            }
            _ => Ok(false),
        },
        None => Ok(false),
    }
}

/// Copies the record to `to`, then swaps `from` for its alias only if no save landed on
/// `from` since the copy (its version is unchanged); otherwise copies again, at most
/// [`MAX_MOVE_ATTEMPTS`] times. Each save the store accepted is therefore in the moved
/// record, and no save lands on an alias.
pub(super) fn rename(map: &DashMap<SessionKey, Slot>, mv: &Move<'_>) -> Result<()> {
    let (from, to, grace, now) = (mv.from, mv.to, mv.grace, mv.now);
    let mut first = true;
    for _ in mv.attempts() {
        let snapshot = map.get(from).and_then(|slot| match &slot.entry {
            Entry::Record(r) if r.is_live_at(now) => Some((r.clone(), slot.version)),
            _ => None,
        });
        let Some((record, version)) = snapshot else {
            if !first {
                map.remove(to);
            }
            return Err(Error::Gone);
        };
        let copy = Entry::Record(record.clone());
        if first {
            if !create(map, to, copy, now) {
                return Err(Error::AlreadyExists);
            }
            first = false;
        } else {
            map.insert(
                *to,
                Slot {
                    entry: copy,
                    version: 0,
                },
            );
        }
        // Indexed before the old key stops being the session: an owner listing made at any
        // moment finds the session under one key or the other.
        (mv.index)(to, record.owner.as_deref());
        if let Some(mut slot) = map.get_mut(from)
            && slot.version == version
            && matches!(slot.entry, Entry::Record(_))
        {
            slot.entry = Entry::left_by_move(*to, grace, record.expires_at, now);
            slot.version += 1;
            return Ok(());
        }
    }
    // The copy under `to` is nobody's: the session stays whole under `from`.
    map.remove(to);
    Err(contended())
}

/// Removes a record; turns an alias into a tombstone (see [`Entry::left_by_delete`]).
pub(super) fn delete(
    map: &DashMap<SessionKey, Slot>,
    key: &SessionKey,
    now: SystemTime,
) -> Removed {
    match map.entry(*key) {
        MapEntry::Occupied(mut o) => {
            let removed = Removed::of(Some(&o.get().entry), now);
            match o.get().entry.left_by_delete(now) {
                Some(left) => {
                    let slot = o.get_mut();
                    slot.entry = left;
                    slot.version += 1;
                }
                None => {
                    o.remove();
                }
            }
            removed
        }
        MapEntry::Vacant(_) => Removed::Nothing,
    }
}

pub(super) fn cleanup(map: &DashMap<SessionKey, Slot>, now: SystemTime) -> u64 {
    let mut removed = 0;
    map.retain(|_, slot| {
        let keep = slot.entry.is_live_at(now);
        if !keep {
            removed += 1;
        }
        keep
    });
    removed
}
