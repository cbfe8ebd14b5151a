//! The owner index behind `owned_by`: one lock per owner, pruned in batches.

use super::*;

impl MemoryStore {
    /// The key of the live session of `owner` that the index member `key` leads to: `key`
    /// itself, or, when the session moved since it was indexed (an alias or a tombstone is
    /// left under `key`), the key it moved to, following at most [`MAX_ALIAS_HOPS`] moves.
    /// A listing copies the members before it checks them, so a session that moves (and is
    /// indexed under its new key) after the copy is still found.
    fn owner_lead(&self, key: &SessionKey, owner: &str, now: SystemTime) -> Option<SessionKey> {
        let mut key = *key;
        for _ in 0..MAX_ALIAS_HOPS {
            let next = |e: &Entry| match e {
                _ if !e.is_live_at(now) => None,
                Entry::Record(r) if r.owner.as_deref() == Some(owner) => Some(None),
                Entry::Alias { to, .. } | Entry::Tombstone { to, .. } => Some(Some(*to)),
                Entry::Record(_) => None,
            };
            let step = match &self.backing {
                Backing::Map(map) => map.get(&key).and_then(|slot| next(&slot.entry)),
                Backing::Cache(cache) => cache.get(&key).and_then(|c| next(&c.state.lock().entry)),
            }?;
            match step {
                None => return Some(key),
                Some(to) => key = to,
            }
        }
        None
    }

    pub(super) fn index_owner(&self, key: &SessionKey, owner: Option<&str>) {
        if let Some(owner) = owner {
            // Inserted while the shard guard is held, so `prune` cannot drop the owner's set
            // (when it looked empty) between this lookup and the insert.
            let set = self.owners.entry(owner.to_owned()).or_default();
            set.lock().insert(*key);
        }
    }

    /// The live keys of `owner`, pruning the stale ones. The member keys are copied out under
    /// the owner's lock, then checked without it, a batch at a time with a yield in between;
    /// a stale key is removed under the lock only after a second check there (a create or
    /// save tagging it indexes it after taking the same lock, so it is never lost).
    pub(super) async fn prune(&self, owner: &str) -> Vec<SessionKey> {
        let Some(set) = self.owners.get(owner).map(|s| Arc::clone(s.value())) else {
            return Vec::new();
        };
        let members: Vec<SessionKey> = set.lock().iter().copied().collect();
        let mut live = Vec::new();
        for batch in members.chunks(OWNER_BATCH) {
            let now = SystemTime::now();
            let mut stale = Vec::new();
            for key in batch {
                let lead = self.owner_lead(key, owner, now);
                if let Some(live_key) = lead {
                    live.push(live_key);
                }
                if lead != Some(*key) {
                    stale.push(*key);
                }
            }
            if !stale.is_empty() {
                let mut keys = set.lock();
                for key in stale {
                    if self.owner_lead(&key, owner, now) != Some(key) {
                        keys.remove(&key);
                    }
                }
            }
            tokio::task::yield_now().await;
        }
        self.owners.remove_if(owner, |_, s| s.lock().is_empty());
        live
    }
}
