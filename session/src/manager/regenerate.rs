//! The two intents that end an id: regeneration (a login moves the session to a fresh id,
//! and the old one dies at once) and destruction (a logout ends the session).

use super::SessionManager;
use super::events::SessionEvent;
use super::fresh::with_fresh_id;
use super::request::{ActiveSession, Existing, Outcome};
use crate::error::{Error, Result};
use crate::record::ChangeSet;
use crate::session::Intent;
use crate::store::{Store, StoreExt};

impl<S: Store + 'static> SessionManager<S> {
    /// Login / privilege change: move to a fresh id with no grace, then apply the changes
    /// there. It fails closed: when the move or the changes fail, the fresh key is removed
    /// (the login is not kept anywhere) and the pre-login data is never moved back under the
    /// pre-login id, which an attacker may have planted. The visitor logs in again.
    ///
    /// With `keep_changes` false (the request failed), only the move is carried out.
    pub(super) async fn regenerate(
        &self,
        active: &ActiveSession,
        existing: &Existing,
        intent: &Intent,
        keep_changes: bool,
    ) -> Result<Outcome> {
        let store = &self.inner.store;
        let now = self.now();
        let mut changes = if keep_changes {
            self.changes(active, existing, intent, now)?
        } else {
            ChangeSet::default()
        };
        let expires_at = self.stamp(&mut changes, &existing.meta, now, true)?;
        let mut from = existing.id.clone();
        let new_id = loop {
            let from_key = from.key();
            let (new_id, moved) = with_fresh_id(|new_id| {
                let to = new_id.key();
                async move { store.rename(&from_key, &to, None).await }
            })
            .await?;
            match moved {
                Ok(()) => break new_id,
                Err(err) if err.committed() => break new_id,
                // Every fresh id was taken (a broken store); the taken keys are not ours.
                Err(err @ Error::AlreadyExists) => return Err(err),
                // A concurrent request rotated the id: regenerate from where the session
                // lives now (once; a second rotation in between is a lost race).
                Err(Error::Gone) if from == existing.id => match self.follow(&from).await? {
                    Some(moved) => from = moved,
                    None => return Ok(self.gone(existing)),
                },
                Err(Error::Gone) => return Ok(self.gone(existing)),
                Err(err) => {
                    // The move may have happened (a reply lost after a write): the fresh key
                    // is nobody's either way.
                    self.forget(&new_id.key(), "fresh key of a failed regeneration")
                        .await;
                    return Err(err);
                }
            }
        };
        match store.apply(&new_id.key(), &changes).await {
            Ok(()) => {}
            Err(err) if err.committed() => {
                tracing::warn!(target: "sessionkit", session = %new_id.fingerprint(), error = %err, "regenerated session saved; a cache tier is stale");
            }
            // A logout or revocation ended the session after the move (through the old key's
            // tombstone): this login lost that race.
            Err(Error::Gone) => {
                self.forget(&new_id.key(), "regenerated session ended meanwhile")
                    .await;
                return Ok(self.gone(existing));
            }
            Err(err) => {
                tracing::warn!(target: "sessionkit", session = %existing.id.fingerprint(), error = %err, "regeneration failed after the move; ending the session");
                self.forget(&new_id.key(), "regenerated session whose changes failed")
                    .await;
                return Err(err);
            }
        }
        if let Some(alias) = &existing.alias {
            self.forget(alias, "regenerated session's old alias").await;
        }
        if from != existing.id {
            self.forget(&existing.key, "regenerated session's old id")
                .await;
        }
        self.emit(SessionEvent::Regenerated {
            from: existing.id.fingerprint(),
            to: new_id.fingerprint(),
        });
        if keep_changes && let Some(Some(owner)) = &intent.owner {
            self.enforce_cap(owner, &new_id.key()).await;
        }
        Ok(self.cookie_for(&active.session, &new_id, now, expires_at))
    }

    pub(super) async fn destroy(
        &self,
        active: &ActiveSession,
        existing: &Existing,
    ) -> Result<Outcome> {
        self.end(existing).await?;
        if active.session.has_user_data() {
            // Data stored after the logout belongs to a new session, under a new id.
            self.finish_new(active).await
        } else {
            Ok(self.removal(false))
        }
    }

    /// Ends the session wherever it lives now: under the key it was loaded from, or under the
    /// key a concurrent rotation moved it to (followed through the grace alias).
    pub(super) async fn end(&self, existing: &Existing) -> Result<()> {
        let store = &self.inner.store;
        store.end_session(&existing.key).await?;
        if let Some(alias) = &existing.alias {
            store.delete(alias).await?;
        }
        self.emit(SessionEvent::Destroyed {
            session: existing.id.fingerprint(),
        });
        Ok(())
    }
}
