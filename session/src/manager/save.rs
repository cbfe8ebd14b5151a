//! Saving: a finished request's session written back to the store — created when new and
//! holding data, its changes merged when it exists, its id rotated when due.

use std::time::SystemTime;

use super::SessionManager;
use super::events::SessionEvent;
use super::fresh::with_fresh_id;
use super::meta::{self, Meta};
use super::request::{ActiveSession, Existing, Outcome};
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::limits::{Footprint, later};
use crate::record::{ChangeSet, Grace, Record};
use crate::reserved::PERSIST as PERSIST_KEY;
use crate::session::Intent;
use crate::store::Store;

/// What a save does, decided before it writes.
struct SavePlan {
    /// Whether anything is written (changes, a refresh, or a rotation's stamp).
    write: bool,
    /// Whether the id is rotated after the write.
    rotate: bool,
}

/// Where a save's changes landed.
enum Landed {
    /// Under the session's own key.
    InPlace,
    /// Under the id a concurrent rotation moved the session to.
    Moved(SessionId),
    /// Nowhere: the session was ended meanwhile.
    Gone,
}

/// How a rotation ended.
enum Rotation {
    /// Moved to this new id.
    Done(SessionId),
    /// A concurrent request moved it first, to this id (within its grace window).
    Joined(SessionId),
    /// The session was deleted meanwhile.
    Gone,
    /// The store failed; the id stays for now.
    Deferred,
}

impl<S: Store + 'static> SessionManager<S> {
    /// Creates a new session in the store, under a fresh id, if the request stored data in
    /// it; then the response sets its cookie.
    pub(super) async fn finish_new(&self, active: &ActiveSession) -> Result<Outcome> {
        let session = &active.session;
        if !session.has_user_data() {
            // Nothing to keep (SEC-26). A malformed cookie is cleared, so the client stops
            // presenting it; a well-formed id that led nowhere is left alone (see `Outcome`).
            return Ok(if active.clear_malformed {
                self.removal(false)
            } else {
                Outcome::default()
            });
        }
        let now = self.now();
        let record = self.new_record(active, now)?;
        let expires_at = record.expires_at;
        let store = &self.inner.store;
        let (id, created) = with_fresh_id(|id| {
            let key = id.key();
            let record = &record;
            async move { store.create(&key, record).await }
        })
        .await?;
        created?;
        self.emit(SessionEvent::Created {
            session: id.fingerprint(),
        });
        if let Some(owner) = &record.owner {
            self.enforce_cap(owner, &id.key()).await;
        }
        Ok(self.cookie_for(session, &id, now, expires_at))
    }

    /// The first record of a new session: its data, its bookkeeping stamped `now`, its
    /// binding tags, checked against the limits.
    fn new_record(&self, active: &ActiveSession, now: SystemTime) -> Result<Record> {
        let session = &active.session;
        let mut extra = ChangeSet::default();
        self.bind(active, None, &mut extra)?;
        let mut fields = session.all_fields();
        fields.extend(extra.set);
        fields.insert(meta::CREATED.to_owned(), meta::time(meta::CREATED, now)?);
        fields.insert(meta::SEEN.to_owned(), meta::time(meta::SEEN, now)?);
        fields.insert(meta::ROTATED.to_owned(), meta::time(meta::ROTATED, now)?);
        let owner = session.owner();
        if owner.is_some() {
            fields.insert(meta::LOGIN.to_owned(), meta::time(meta::LOGIN, now)?);
        }
        let limits = &self.inner.config.limits;
        for (key, value) in &fields {
            limits.check_value(key, value.len())?;
        }
        limits.check_growth(Footprint::default(), Footprint::of(&fields))?;
        Ok(Record {
            fields,
            expires_at: self.deadline(now, now),
            owner,
        })
    }

    /// Saves an existing session that neither ends nor regenerates: writes its changes (or
    /// only a refresh of its idle deadline when due), rotates its id when due, and says
    /// whether the response carries the cookie.
    pub(super) async fn save(
        &self,
        active: &ActiveSession,
        existing: &Existing,
        intent: &Intent,
    ) -> Result<Outcome> {
        let now = self.now();
        let mut changes = self.changes(active, existing, intent, now)?;
        let persist_changed =
            changes.set.contains_key(PERSIST_KEY) || changes.remove.contains(PERSIST_KEY);
        let plan = self.plan(existing, &changes, now);
        let expires_at = if plan.write {
            self.stamp(&mut changes, &existing.meta, now, plan.rotate)?
        } else {
            self.deadline(existing.meta.seen, existing.meta.created)
        };
        let landed = if plan.write {
            self.write(existing, &mut changes).await?
        } else {
            Landed::InPlace
        };
        let (id, resend) = match landed {
            Landed::Gone => return Ok(self.gone(existing)),
            // The changes followed a concurrent rotation: the client needs the new id, and
            // the session is not rotated again.
            Landed::Moved(moved) => (moved, true),
            Landed::InPlace if plan.rotate => {
                match self.rotate(&existing.id, expires_at, now).await? {
                    Rotation::Done(new_id) | Rotation::Joined(new_id) => (new_id, true),
                    Rotation::Gone => return Ok(self.gone(existing)),
                    Rotation::Deferred => (existing.id.clone(), existing.resend),
                }
            }
            Landed::InPlace => (existing.id.clone(), existing.resend),
        };
        if let Some(Some(owner)) = &intent.owner {
            self.enforce_cap(owner, &id.key()).await;
        }
        let session = &active.session;
        if resend || persist_changed || (plan.write && self.persistent(session)) {
            Ok(self.cookie_for(session, &id, now, expires_at))
        } else {
            Ok(Outcome {
                vary_cookie: true,
                ..Outcome::default()
            })
        }
    }

    /// Decides what a save does besides sending its changes: rotate the id (when it is older
    /// than `rotate_after` and the client is not already being sent a newer one), and write
    /// at all (changes, a due idle refresh, or a rotation).
    fn plan(&self, existing: &Existing, changes: &ChangeSet, now: SystemTime) -> SavePlan {
        let config = &self.inner.config;
        let meta = &existing.meta;
        let rotate = !existing.resend
            && config
                .rotate_after
                .is_some_and(|after| now >= later(meta.rotated, after));
        let refresh = now >= later(meta.seen, config.refresh_interval());
        SavePlan {
            write: !changes.is_empty() || refresh || rotate,
            rotate,
        }
    }

    /// Writes a save's stamped changes where the session lives: under its key, or, when a
    /// concurrent request rotated it meanwhile, under the id it moved to (within the grace
    /// window).
    async fn write(&self, existing: &Existing, changes: &mut ChangeSet) -> Result<Landed> {
        let store = &self.inner.store;
        match store.apply(&existing.key, changes).await {
            Ok(()) => Ok(Landed::InPlace),
            Err(err) if err.committed() => {
                self.stale_cache(&existing.id, &err);
                Ok(Landed::InPlace)
            }
            Err(Error::Gone) => {
                let Some(moved) = self.follow(&existing.id).await? else {
                    return Ok(Landed::Gone);
                };
                // The rotation that moved it stamped its own time.
                changes.set.remove(meta::ROTATED);
                match store.apply(&moved.key(), changes).await {
                    Ok(()) => {}
                    Err(err) if err.committed() => self.stale_cache(&moved, &err),
                    Err(Error::Gone) => return Ok(Landed::Gone),
                    Err(err) => return Err(err),
                }
                Ok(Landed::Moved(moved))
            }
            Err(err) => Err(err),
        }
    }

    /// The change set of a save: the session's changes, the owner, missing binding tags.
    pub(super) fn changes(
        &self,
        active: &ActiveSession,
        existing: &Existing,
        intent: &Intent,
        now: SystemTime,
    ) -> Result<ChangeSet> {
        let limits = self.inner.config.limits;
        let (mut changes, loaded, grown) = active.session.take_changes_with_footprints();
        for (key, value) in &changes.set {
            limits.check_value(key, value.len())?;
        }
        limits.check_growth(loaded, grown)?;
        changes.limits = Some(limits);
        if let Some(owner) = &intent.owner {
            changes.owner = Some(owner.clone());
            if owner.is_some() {
                changes
                    .set
                    .insert(meta::LOGIN.to_owned(), meta::time(meta::LOGIN, now)?);
            }
        }
        self.bind(active, Some(&existing.meta), &mut changes)?;
        Ok(changes)
    }

    /// Adds the binding tags a session lacks (new, or created before binding was on).
    fn bind(
        &self,
        active: &ActiveSession,
        meta: Option<&Meta>,
        changes: &mut ChangeSet,
    ) -> Result<()> {
        if let Some(tag) = &active.ip_tag
            && meta.is_none_or(|m| m.ip.is_none())
        {
            changes
                .set
                .insert(meta::IP.to_owned(), meta::encode(meta::IP, tag)?);
        }
        if let Some(tag) = &active.ua_tag
            && meta.is_none_or(|m| m.ua.is_none())
        {
            changes
                .set
                .insert(meta::UA.to_owned(), meta::encode(meta::UA, tag)?);
        }
        Ok(())
    }

    /// Stamps a change set that is going to be written: refreshed now, new expiry.
    pub(super) fn stamp(
        &self,
        changes: &mut ChangeSet,
        meta: &Meta,
        now: SystemTime,
        rotated: bool,
    ) -> Result<SystemTime> {
        changes
            .set
            .insert(meta::SEEN.to_owned(), meta::time(meta::SEEN, now)?);
        if rotated {
            changes
                .set
                .insert(meta::ROTATED.to_owned(), meta::time(meta::ROTATED, now)?);
        }
        let expires_at = self.deadline(now, meta.created);
        changes.expires_at = Some(expires_at);
        Ok(expires_at)
    }

    /// Replaces `id` with a fresh one, leaving the old id resolving for the grace window.
    async fn rotate(
        &self,
        id: &SessionId,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<Rotation> {
        let config = &self.inner.config;
        let store = &self.inner.store;
        let until = later(now, config.rotation_grace).min(expires_at);
        let from = id.key();
        let (new_id, moved) = with_fresh_id(|new_id| {
            let to = new_id.key();
            let grace = (!config.rotation_grace.is_zero())
                .then(|| Grace::new(until, meta::grace_token(id, new_id, until)));
            async move { store.rename(&from, &to, grace.as_ref()).await }
        })
        .await?;
        match moved {
            Ok(()) => {}
            Err(err) if err.committed() => self.stale_cache(id, &err),
            // Every fresh id was taken (a broken store): try again on the next request.
            Err(Error::AlreadyExists) => return Ok(Rotation::Deferred),
            // Another request rotated it between our save and this move.
            Err(Error::Gone) => {
                return Ok(match self.follow(id).await? {
                    Some(new_id) => Rotation::Joined(new_id),
                    None => Rotation::Gone,
                });
            }
            Err(err) => {
                // The session is intact under its id; the next request tries again.
                tracing::warn!(target: "sessionkit", session = %id.fingerprint(), error = %err, "id rotation failed; keeping the current id");
                return Ok(Rotation::Deferred);
            }
        }
        self.emit(SessionEvent::Rotated {
            from: id.fingerprint(),
            to: new_id.fingerprint(),
        });
        Ok(Rotation::Done(new_id))
    }

    /// After `key` answered "gone": if a concurrent request rotated it and the grace window
    /// is open, where the session lives now.
    pub(super) async fn follow(&self, id: &SessionId) -> Result<Option<SessionId>> {
        let now = self.now();
        Ok(match self.inner.store.load(&id.key()).await? {
            Some(loaded) => loaded.moved.and_then(|moved| {
                meta::open_move(id, &moved)
                    .filter(|(_, until)| *until > now)
                    .map(|(new_id, _)| new_id)
            }),
            None => None,
        })
    }

    /// A write the store committed although a cache tier could not be told: the lifecycle
    /// goes on as written (the cache tier already stopped trusting its copy, or reported it).
    pub(super) fn stale_cache(&self, id: &SessionId, err: &Error) {
        tracing::warn!(target: "sessionkit", session = %id.fingerprint(), error = %err, "session written; a cache tier could not drop its copy");
    }
}
