//! SEC-14: the per-owner session cap, enforced after a session gains an owner.

use std::time::SystemTime;

use super::SessionManager;
use super::events::SessionEvent;
use super::meta;
use crate::error::{Error, Result};
use crate::id::SessionKey;
use crate::store::{Store, StoreExt};

impl<S: Store + 'static> SessionManager<S> {
    /// SEC-14: after a session gained `owner` and was saved under `keep`, ends that owner's
    /// sessions beyond [`max_sessions_per_owner`](super::SessionConfig::max_sessions_per_owner),
    /// the oldest logins first, never `keep`. A store error is logged, not returned: the login
    /// is saved, and the next one enforces the cap again.
    pub(super) async fn enforce_cap(&self, owner: &str, keep: &SessionKey) {
        let Some(cap) = self.inner.config.max_sessions_per_owner else {
            return;
        };
        match self.end_beyond_cap(owner, keep, cap.get()).await {
            Ok(0) => {}
            Ok(count) => self.emit(SessionEvent::Revoked { count }),
            Err(err) => {
                tracing::warn!(target: "sessionkit", session = %keep.fingerprint(), error = %err, "could not enforce the per-owner session cap");
            }
        }
    }

    /// Lists `owner`'s sessions and ends all but the `cap - 1` newest logins besides `keep`.
    /// Listing is one store call; only when the owner is over the cap are the other sessions
    /// loaded to read their login times.
    async fn end_beyond_cap(&self, owner: &str, keep: &SessionKey, cap: usize) -> Result<usize> {
        let store = &self.inner.store;
        let keys = store.owned_by(owner).await?;
        if keys.len() <= cap {
            return Ok(0);
        }
        let mut others = Vec::with_capacity(keys.len());
        for key in keys.iter().filter(|k| *k != keep) {
            match store.load(key).await {
                Ok(Some(loaded)) if loaded.record.owner.as_deref() == Some(owner) => {
                    others.push((meta::login_time(&loaded.record.fields), *key));
                }
                // Ended, or tagged with another owner, since the listing.
                Ok(_) => {}
                // An undecodable session of this owner is the first to go.
                Err(Error::Corrupt { .. }) => others.push((SystemTime::UNIX_EPOCH, *key)),
                Err(err) => return Err(err),
            }
        }
        // Newest first: the session logging in takes one of the places.
        others.sort_unstable_by(|a, b| b.cmp(a));
        let mut ended = 0;
        for (_, key) in others.iter().skip(cap - 1) {
            match store.end_session(key).await {
                Ok(true) => ended += 1,
                Ok(false) => {}
                Err(err) if err.committed() => ended += 1,
                Err(err) => return Err(err),
            }
        }
        Ok(ended)
    }
}
