//! The bounded cache: moka finds the cell and evicts; the cell's own lock orders a save
//! against everything else done to that entry.

use super::*;

/// One entry of the bounded cache: moka holds an `Arc` of it, and a save merges into the
/// entry in place under its lock (no copy of the record). Whatever replaces or removes a
/// cell (through moka's compute on its key, which runs one at a time per key) first marks it
/// detached under the same lock, so a save that fetched the cell just before can tell it no
/// longer stands for the key and answers `Gone` instead of writing into nothing.
pub(super) struct Cell {
    pub(super) state: Mutex<CellState>,
}

pub(super) struct CellState {
    pub(super) entry: Entry,
    /// Bumped by every save merged in, so a move can tell whether the record changed.
    version: u64,
    /// Replaced or removed from the cache: saves must not land here.
    pub(super) detached: bool,
}

impl Cell {
    fn new(entry: Entry) -> Arc<Cell> {
        Arc::new(Cell {
            state: Mutex::new(CellState {
                entry,
                version: 0,
                detached: false,
            }),
        })
    }

    /// When the entry stops resolving.
    fn expires_at(&self) -> SystemTime {
        self.state.lock().entry.expires_at()
    }
}

type Cache = moka::sync::Cache<SessionKey, Arc<Cell>>;

/// Marks the cell that moka is about to replace or remove.
fn detach(cell: &Cell) {
    cell.state.lock().detached = true;
}

pub(super) fn create(cache: &Cache, key: &SessionKey, entry: Entry, now: SystemTime) -> bool {
    let fresh = Cell::new(entry);
    let result = cache
        .entry(*key)
        .and_compute_with(|existing| match existing {
            Some(e) if e.value().state.lock().entry.resolves_at(now) => Op::Nop,
            Some(e) => {
                detach(e.value());
                Op::Put(fresh)
            }
            None => Op::Put(fresh),
        });
    matches!(
        result,
        CompResult::Inserted(_) | CompResult::ReplacedWith(_)
    )
}

/// The live record under `key`, cloned.
pub(super) fn record(cache: &Cache, key: &SessionKey, now: SystemTime) -> Option<Record> {
    let cell = cache.get(key)?;
    let state = cell.state.lock();
    match &state.entry {
        Entry::Record(r) if r.is_live_at(now) && !state.detached => Some(r.clone()),
        _ => None,
    }
}

pub(super) fn load(cache: &Cache, key: &SessionKey, now: SystemTime) -> Option<Loaded> {
    let cell = cache.get(key)?;
    let (to, token) = {
        let state = cell.state.lock();
        if !state.entry.is_live_at(now) {
            return None;
        }
        match &state.entry {
            Entry::Record(r) => return Some(Loaded::from(r.clone())),
            Entry::Tombstone { .. } => return None,
            Entry::Alias { to, token, .. } => (*to, token.clone()),
        }
    };
    record(cache, &to, now).map(|record| Loaded {
        record,
        moved: Some(Moved { to, token }),
    })
}

/// Merges `changes` into the live record in place. `Ok(false)`: nothing live (or an
/// alias) is there.
pub(super) fn apply(
    cache: &Cache,
    key: &SessionKey,
    changes: &ChangeSet,
    now: SystemTime,
) -> Result<bool> {
    let Some(cell) = cache.get(key) else {
        return Ok(false);
    };
    {
        let mut state = cell.state.lock();
        if state.detached {
            return Ok(false);
        }
        match &mut state.entry {
            Entry::Record(r) if r.is_live_at(now) => r.apply(changes)?,
            _ => return Ok(false),
        }
        state.version += 1;
    }
    Ok(true)
}

/// As the map's `rename`, with the cell's version counter.
pub(super) fn rename(cache: &Cache, mv: &Move<'_>) -> Result<()> {
    let (from, to, grace, now) = (mv.from, mv.to, mv.grace, mv.now);
    let mut first = true;
    for _ in mv.attempts() {
        let snapshot = cache.get(from).and_then(|cell| {
            let state = cell.state.lock();
            match &state.entry {
                Entry::Record(r) if r.is_live_at(now) && !state.detached => {
                    Some((r.clone(), state.version, Arc::clone(&cell)))
                }
                _ => None,
            }
        });
        let Some((record, version, current)) = snapshot else {
            if !first {
                remove(cache, to);
            }
            return Err(Error::Gone);
        };
        let expires_at = record.expires_at;
        let owner = record.owner.clone();
        let copy = Entry::Record(record);
        if first {
            if !create(cache, to, copy, now) {
                return Err(Error::AlreadyExists);
            }
            first = false;
        } else {
            let copy = Cell::new(copy);
            cache.entry(*to).and_compute_with(|existing| {
                if let Some(e) = existing {
                    detach(e.value());
                }
                Op::Put(copy)
            });
        }
        (mv.index)(to, owner.as_deref());
        let replacement = Cell::new(Entry::left_by_move(*to, grace, expires_at, now));
        let swapped = cache
            .entry(*from)
            .and_compute_with(|existing| match existing {
                Some(e) if Arc::ptr_eq(e.value(), &current) => {
                    let mut state = current.state.lock();
                    if state.version == version && !state.detached {
                        state.detached = true;
                        Op::Put(replacement)
                    } else {
                        Op::Nop
                    }
                }
                _ => Op::Nop,
            });
        if matches!(swapped, CompResult::ReplacedWith(_)) {
            return Ok(());
        }
    }
    remove(cache, to);
    Err(contended())
}

/// Removes `key`. Through the entry API, like every replacement
/// here: moka runs compute operations on one key one at a time, and the removed cell is
/// detached, so a save that fetched it just before cannot land.
pub(super) fn remove(cache: &Cache, key: &SessionKey) {
    cache
        .entry(*key)
        .and_compute_with(|existing| match existing {
            Some(e) => {
                detach(e.value());
                Op::Remove
            }
            None => Op::Nop,
        });
}

/// As the map's `delete`, through the entry API (see [`remove`]).
pub(super) fn delete(cache: &Cache, key: &SessionKey, now: SystemTime) -> Removed {
    let mut removed = Removed::Nothing;
    cache
        .entry(*key)
        .and_compute_with(|existing| match existing {
            Some(e) => {
                let left = {
                    let mut state = e.value().state.lock();
                    state.detached = true;
                    removed = Removed::of(Some(&state.entry), now);
                    state.entry.left_by_delete(now)
                };
                match left {
                    Some(left) => Op::Put(Cell::new(left)),
                    None => Op::Remove,
                }
            }
            None => Op::Nop,
        });
    removed
}

pub(super) fn cleanup(cache: &Cache, now: SystemTime) -> u64 {
    let expired: Vec<SessionKey> = cache
        .iter()
        .filter(|(_, c)| c.expires_at() <= now)
        .map(|(k, _)| *k)
        .collect();
    let mut removed = 0;
    for key in expired {
        let gone = cache
            .entry(key)
            .and_compute_with(|existing| match existing {
                Some(e) => {
                    let mut state = e.value().state.lock();
                    if state.entry.is_live_at(now) {
                        Op::Nop
                    } else {
                        state.detached = true;
                        Op::Remove
                    }
                }
                None => Op::Nop,
            });
        if matches!(gone, CompResult::Removed(_)) {
            removed += 1;
        }
    }
    cache.run_pending_tasks();
    removed
}
