//! Loading: from a presented, well-formed id to the live session behind it, applying every
//! server-side rule (unknown id, rotation grace, timeouts, bindings, undecodable records).

use super::SessionManager;
use super::events::{ExpiryReason, SessionEvent};
use super::meta::{self, Meta};
use super::request::Existing;
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::limits::later;
use crate::record::Record;
use crate::store::Store;

impl<S: Store + 'static> SessionManager<S> {
    /// Finds the live session behind a well-formed id, applying every server-side rule.
    pub(super) async fn resolve(
        &self,
        id: SessionId,
        ip_tag: Option<&str>,
        ua_tag: Option<&str>,
    ) -> Result<Option<(Existing, Record)>> {
        let config = &self.inner.config;
        let store = &self.inner.store;
        let key = id.key();
        let now = self.now();
        let loaded = match store.load(&key).await {
            Ok(Some(loaded)) => loaded,
            Ok(None) => {
                self.emit(SessionEvent::UnknownId {
                    session: id.fingerprint(),
                });
                return Ok(None);
            }
            Err(err @ Error::Corrupt { .. }) => {
                tracing::warn!(target: "sessionkit", session = %id.fingerprint(), error = %err, "session record failed to decode");
                self.emit(SessionEvent::Corrupt {
                    session: id.fingerprint(),
                });
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        // The id the session lives under now, with its key (hashed once).
        let (current, current_key, alias, resend) = match &loaded.moved {
            None => (id, key, None, false),
            Some(moved) => match meta::open_move(&id, moved) {
                Some((new_id, until)) => {
                    if until <= now {
                        self.emit(SessionEvent::StaleId {
                            session: id.fingerprint(),
                        });
                        self.forget(&key, "stale alias").await;
                        return Ok(None);
                    }
                    (new_id, moved.to, Some(key), true)
                }
                _ => {
                    self.emit(SessionEvent::Corrupt {
                        session: id.fingerprint(),
                    });
                    return Ok(None);
                }
            },
        };
        let Some(meta) = Meta::read(&loaded.record.fields) else {
            self.emit(SessionEvent::Corrupt {
                session: current.fingerprint(),
            });
            return Ok(None);
        };
        let expired = if config
            .absolute_timeout
            .is_some_and(|limit| now >= later(meta.created, limit))
        {
            Some(ExpiryReason::Absolute)
        } else if now >= later(meta.seen, config.idle_timeout) {
            Some(ExpiryReason::Idle)
        } else {
            None
        };
        if let Some(reason) = expired {
            self.emit(SessionEvent::Expired {
                session: current.fingerprint(),
                reason,
            });
            self.forget(&current_key, "expired session").await;
            if let Some(alias) = &alias {
                self.forget(alias, "expired session's alias").await;
            }
            return Ok(None);
        }
        // A session created before binding was switched on is bound on its next save.
        let ip_mismatch = matches!((ip_tag, &meta.ip), (Some(req), Some(bound)) if req != bound);
        let ua_mismatch = matches!((ua_tag, &meta.ua), (Some(req), Some(bound)) if req != bound);
        if ip_mismatch || ua_mismatch {
            self.emit(SessionEvent::BindingMismatch {
                session: current.fingerprint(),
                ip: ip_mismatch,
                user_agent: ua_mismatch,
            });
            return Ok(None);
        }
        let existing = Existing {
            key: current_key,
            id: current,
            alias,
            resend,
            meta,
        };
        Ok(Some((existing, loaded.record)))
    }
}
