//! A read-only view of a session's lifecycle timestamps and deadlines, for pages and
//! dashboards that show a visitor (or a developer) where their session stands.

use std::time::SystemTime;

use super::SessionManager;
use super::meta::{CREATED, ROTATED, SEEN};
use crate::record::from_millis;
use crate::session::Session;

/// Where a stored session stands, as of its load in this request: see
/// [`SessionManager::life`]. Holds no id, key or owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionLife {
    /// When the session was first saved.
    pub created: SystemTime,
    /// The last time a request refreshed it (the idle clock's start).
    pub last_seen: SystemTime,
    /// When it expires unless a request comes first: `last_seen` + the idle timeout.
    pub idle_deadline: SystemTime,
    /// When it expires whatever happens: `created` + the absolute timeout, if one is set.
    pub absolute_deadline: Option<SystemTime>,
    /// When its id is next rotated (on the first request after this time), if rotation is on.
    pub next_rotation: Option<SystemTime>,
}

impl<S: crate::store::Store + 'static> SessionManager<S> {
    /// The lifecycle timestamps of `session` and the deadlines this manager's configuration
    /// gives them; `None` for a session not saved yet (created in this request), or one whose
    /// timestamps do not read.
    ///
    /// ```
    /// use sessionkit::{MemoryStore, RequestInfo, SessionConfig, SessionManager};
    ///
    /// # async fn run() -> sessionkit::Result<()> {
    /// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default())?;
    /// let active = manager.load(&RequestInfo::new()).await?;
    /// assert!(manager.life(active.session()).is_none(), "new: not saved yet");
    /// # Ok(()) }
    /// ```
    pub fn life(&self, session: &Session) -> Option<SessionLife> {
        let time = |key: &str| -> Option<SystemTime> {
            session
                .get_unchecked::<u64>(key)
                .ok()
                .flatten()
                .map(from_millis)
        };
        let created = time(CREATED)?;
        let last_seen = time(SEEN)?;
        let rotated = time(ROTATED).unwrap_or(created);
        let config = self.config();
        Some(SessionLife {
            created,
            last_seen,
            // Checked: a timestamp far in the future (a corrupt record) yields no deadline
            // rather than an overflow.
            idle_deadline: last_seen.checked_add(config.idle_timeout)?,
            absolute_deadline: config.absolute_timeout.and_then(|t| created.checked_add(t)),
            next_rotation: config.rotate_after.and_then(|t| rotated.checked_add(t)),
        })
    }
}
