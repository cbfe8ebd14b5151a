//! [`Listing`] for [`MemoryStore`]: pages in key order.
//!
//! A page walks the entries once (one shard's read lock at a time for the map, moka's
//! lock-free iterator for the cache), keeping the `batch` smallest keys after the cursor, then
//! reads the live records among them one by one. No lock outlives the page, and the cursor
//! is the last key examined, so a key is never returned twice.

use std::collections::BTreeSet;

use super::*;
use crate::store::{Cursor, Listing, Page};

/// Keeps the `batch` smallest keys offered.
struct Smallest {
    keys: BTreeSet<SessionKey>,
    batch: usize,
}

impl Smallest {
    fn offer(&mut self, key: SessionKey) {
        if self.keys.len() == self.batch {
            match self.keys.last() {
                Some(last) if *last > key => {
                    self.keys.pop_last();
                }
                _ => return,
            }
        }
        self.keys.insert(key);
    }
}

impl MemoryStore {
    fn live_record(&self, key: &SessionKey, now: SystemTime) -> Option<Record> {
        match &self.backing {
            Backing::Map(map) => match &map.get(key)?.entry {
                Entry::Record(r) if r.is_live_at(now) => Some(r.clone()),
                _ => None,
            },
            Backing::Cache(cache) => cache::record(cache, key, now),
        }
    }
}

#[async_trait]
impl Listing for MemoryStore {
    async fn scan(&self, cursor: Option<&Cursor>, batch: usize) -> Result<Page> {
        let after = cursor.map(Cursor::key).transpose()?;
        let mut smallest = Smallest {
            keys: BTreeSet::new(),
            batch: batch.max(1),
        };
        let wanted = |key: &SessionKey| after.as_ref().is_none_or(|a| key > a);
        match &self.backing {
            Backing::Map(map) => {
                for item in map.iter() {
                    if wanted(item.key()) {
                        smallest.offer(*item.key());
                    }
                }
            }
            Backing::Cache(cache) => {
                for (key, _) in cache.iter() {
                    if wanted(&key) {
                        smallest.offer(*key);
                    }
                }
            }
        }
        let next = if smallest.keys.len() == smallest.batch {
            smallest.keys.last().map(Cursor::after_key)
        } else {
            None
        };
        let now = SystemTime::now();
        let sessions = smallest
            .keys
            .into_iter()
            .filter_map(|key| Some((key, self.live_record(&key, now)?)))
            .collect();
        Ok(Page::new(sessions, next))
    }
}
