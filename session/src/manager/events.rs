//! Lifecycle events: logged with `tracing`, counted (feature `metrics`) and handed to an
//! optional listener.

use std::fmt;
use std::sync::Arc;

use crate::id::Fingerprint;

/// Something that happened to a session, for logs, metrics and alerts (SEC-28, SEC-29).
///
/// Every event is logged with [`tracing`] under the target `sessionkit`, counted in
/// `sessionkit_session_events_total` (feature `metrics`, see `sessionkit::metrics`) and passed to the
/// [`SessionConfig::listener`](super::SessionConfig::listener), if one is set. Sessions are
/// named only by their [`Fingerprint`], a short keyed hash: a raw id is never logged.
///
/// The suspicious ones — [`UnknownId`](Self::UnknownId), [`StaleId`](Self::StaleId),
/// [`BindingMismatch`](Self::BindingMismatch), [`Corrupt`](Self::Corrupt),
/// [`InvalidCookie`](Self::InvalidCookie) — are logged at `warn`; the rest at `info` or `debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A new session was saved for the first time.
    Created {
        /// The new session.
        session: Fingerprint,
    },
    /// The session moved to a fresh id on request (login, privilege change); the old id
    /// is dead.
    Regenerated {
        /// The old id.
        from: Fingerprint,
        /// The new id.
        to: Fingerprint,
    },
    /// The id was rotated after `rotate_after`; the old id resolves for the grace window.
    Rotated {
        /// The old id.
        from: Fingerprint,
        /// The new id.
        to: Fingerprint,
    },
    /// A session presented after its idle or absolute timeout; it was deleted.
    Expired {
        /// The expired session.
        session: Fingerprint,
        /// Which timeout ended it.
        reason: ExpiryReason,
    },
    /// The session was ended by `destroy()` (logout).
    Destroyed {
        /// The ended session.
        session: Fingerprint,
    },
    /// A save found the session gone (a concurrent logout or revocation); it was not
    /// brought back.
    Gone {
        /// The vanished session.
        session: Fingerprint,
    },
    /// Sessions of an owner were ended: all of them by
    /// [`revoke_owner`](super::SessionManager::revoke_owner), or, at a login, the oldest
    /// beyond [`max_sessions_per_owner`](super::SessionConfig::max_sessions_per_owner).
    Revoked {
        /// How many sessions were deleted.
        count: usize,
    },
    /// The request's IP or User-Agent did not match the session's; the request got a fresh
    /// session and the session itself was left alone.
    BindingMismatch {
        /// The session presented.
        session: Fingerprint,
        /// Whether the IP differed.
        ip: bool,
        /// Whether the User-Agent differed.
        user_agent: bool,
    },
    /// A well-formed id the store does not know (never issued, or long expired). Many of
    /// these from one client suggest id guessing.
    UnknownId {
        /// The presented id.
        session: Fingerprint,
    },
    /// A rotated-away id presented after its grace window.
    StaleId {
        /// The presented (old) id.
        session: Fingerprint,
    },
    /// The stored record could not be decoded; the request got a fresh session.
    Corrupt {
        /// The presented id.
        session: Fingerprint,
    },
    /// The session cookie was malformed (wrong length or alphabet, empty, oversized,
    /// duplicated); it was ignored without touching the store.
    InvalidCookie {
        /// What was wrong.
        reason: &'static str,
    },
}

/// Which timeout ended a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpiryReason {
    /// Unused for longer than the idle timeout.
    Idle,
    /// Older than the absolute timeout.
    Absolute,
}

impl SessionEvent {
    /// A stable snake_case name for the event kind, for metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            SessionEvent::Created { .. } => "created",
            SessionEvent::Regenerated { .. } => "regenerated",
            SessionEvent::Rotated { .. } => "rotated",
            SessionEvent::Expired {
                reason: ExpiryReason::Idle,
                ..
            } => "expired_idle",
            SessionEvent::Expired {
                reason: ExpiryReason::Absolute,
                ..
            } => "expired_absolute",
            SessionEvent::Destroyed { .. } => "destroyed",
            SessionEvent::Gone { .. } => "gone",
            SessionEvent::Revoked { .. } => "revoked",
            SessionEvent::BindingMismatch { .. } => "binding_mismatch",
            SessionEvent::UnknownId { .. } => "unknown_id",
            SessionEvent::StaleId { .. } => "stale_id",
            SessionEvent::Corrupt { .. } => "corrupt",
            SessionEvent::InvalidCookie { .. } => "invalid_cookie",
        }
    }

    /// Whether the event may signal an attack (worth rate limiting or alerting on).
    pub fn is_suspicious(&self) -> bool {
        matches!(
            self,
            SessionEvent::BindingMismatch { .. }
                | SessionEvent::UnknownId { .. }
                | SessionEvent::StaleId { .. }
                | SessionEvent::Corrupt { .. }
                | SessionEvent::InvalidCookie { .. }
        )
    }
}

impl fmt::Display for SessionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A function the manager calls with every [`SessionEvent`], set with
/// [`SessionConfig::with_listener`](super::SessionConfig::with_listener).
pub type EventListener = Arc<dyn Fn(&SessionEvent) + Send + Sync>;

/// Logs `event` and hands it to the listener.
pub(crate) fn emit(listener: Option<&EventListener>, event: SessionEvent) {
    log(&event);
    #[cfg(feature = "metrics")]
    crate::metrics::event(&event);
    if let Some(listener) = listener {
        listener(&event);
    }
}

fn log(event: &SessionEvent) {
    let name = event.name();
    match event {
        SessionEvent::Created { session } | SessionEvent::Destroyed { session } => {
            tracing::info!(target: "sessionkit", event = name, session = %session, "session {name}");
        }
        SessionEvent::Regenerated { from, to } | SessionEvent::Rotated { from, to } => {
            tracing::info!(target: "sessionkit", event = name, session = %from, new_session = %to, "session {name}");
        }
        SessionEvent::Expired { session, .. } => {
            tracing::info!(target: "sessionkit", event = name, session = %session, "session expired");
        }
        SessionEvent::Gone { session } => {
            tracing::info!(target: "sessionkit", event = name, session = %session, "session gone before its save; not recreated");
        }
        SessionEvent::Revoked { count } => {
            tracing::info!(target: "sessionkit", event = name, count, "sessions of an owner revoked");
        }
        SessionEvent::BindingMismatch {
            session,
            ip,
            user_agent,
        } => {
            tracing::warn!(target: "sessionkit", event = name, session = %session, ip, user_agent, "session binding mismatch; fresh session given");
        }
        SessionEvent::UnknownId { session } => {
            tracing::warn!(target: "sessionkit", event = name, session = %session, "unknown session id presented");
        }
        SessionEvent::StaleId { session } => {
            tracing::warn!(target: "sessionkit", event = name, session = %session, "rotated session id presented after its grace window");
        }
        SessionEvent::Corrupt { session } => {
            tracing::warn!(target: "sessionkit", event = name, session = %session, "undecodable session record; fresh session given");
        }
        SessionEvent::InvalidCookie { reason } => {
            tracing::warn!(target: "sessionkit", event = name, reason, "malformed session cookie ignored");
        }
    }
}
