//! The session lifecycle manager: from a request's cookie to a loaded [`Session`], and from
//! the finished session to the `Set-Cookie` the response needs.
//!
//! The files, in a request's order: `request` holds the types the web layer exchanges with
//! the manager; `load` resolves a presented id to a live session; `save` writes a finished
//! session back (new, changed, rotated); `regenerate` carries out a login's id change and a
//! logout; `cap` enforces the per-owner session cap after a login; `fresh` draws fresh ids.

mod cap;
mod clock;
mod config;
mod cookie;
pub(crate) mod events;
mod fresh;
mod life;
mod load;
mod meta;
mod regenerate;
mod request;
mod save;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{IpBinding, MAX_COOKIE_LEN, MAX_ROTATION_GRACE, SameSite, SessionConfig};
pub use events::{EventListener, ExpiryReason, SessionEvent};
pub use life::SessionLife;
pub use request::{ActiveSession, Outcome, RequestInfo};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use self::cookie::Presented;
use self::events::emit;
use self::request::{Existing, Origin};
use crate::error::{Error, Result};
use crate::id::{SessionId, SessionKey};
use crate::limits::later;
use crate::session::Session;
use crate::store::{Store, StoreExt};

/// Loads and saves sessions around requests, enforcing the lifecycle of
/// [`SessionConfig`]: strict ids, idle and absolute timeouts, id rotation with a grace
/// window, IP/User-Agent binding, flash messages and background cleanup.
///
/// Cheap to clone (an `Arc` inside). Generic over the store; `Arc<dyn Store>` works too.
///
/// ```
/// use sessionkit::{MemoryStore, RequestInfo, SessionConfig, SessionManager};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default())?;
///
/// // First request: no cookie. A session that stays empty costs nothing and sets no cookie.
/// let active = manager.load(&RequestInfo::new()).await?;
/// active.session().insert("username", "Bob")?;
/// let outcome = manager.finish(active).await?;
/// let set_cookie = outcome.set_cookie.expect("a new session with data sets its cookie");
///
/// // The browser sends the cookie back.
/// let cookie = set_cookie.split(';').next().unwrap().to_owned();
/// let active = manager.load(&RequestInfo::new().with_cookie_header(cookie)).await?;
/// assert_eq!(active.session().get::<String>("username")?.as_deref(), Some("Bob"));
/// let outcome = manager.finish(active).await?;
/// assert_eq!(outcome.set_cookie, None); // read-only: nothing to send, nothing written
/// # Ok::<(), sessionkit::Error>(())
/// # }).unwrap();
/// ```
pub struct SessionManager<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    store: S,
    config: SessionConfig,
    cleaning: AtomicBool,
    /// Whether the missing-client-address error was logged (it is logged once).
    warned_no_ip: AtomicBool,
}

impl<S> Clone for SessionManager<S> {
    fn clone(&self) -> Self {
        SessionManager {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for SessionManager<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Lets the next background cleanup start once this one ends, however it ends.
struct CleaningGuard<S>(Arc<Inner<S>>);

impl<S> Drop for CleaningGuard<S> {
    fn drop(&mut self) {
        self.0.cleaning.store(false, Ordering::Release);
    }
}

impl<S: Store + 'static> SessionManager<S> {
    /// A manager over `store` with `config`.
    ///
    /// # Errors
    /// [`Error::Config`] when the configuration is invalid (see [`SessionConfig::validate`]).
    pub fn new(store: S, config: SessionConfig) -> Result<Self> {
        config.validate()?;
        Ok(SessionManager {
            inner: Arc::new(Inner {
                store,
                config,
                cleaning: AtomicBool::new(false),
                warned_no_ip: AtomicBool::new(false),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    fn now(&self) -> SystemTime {
        self.inner.config.clock.now()
    }

    fn emit(&self, event: SessionEvent) {
        emit(self.inner.config.listener.as_ref(), event);
    }

    /// Loads the request's session, or starts a new one.
    ///
    /// The new session is lazy: it reaches the store, and the response gets a cookie, only
    /// if the request stores something in it. The visitor gets a new session when:
    ///
    /// - the cookie is missing, empty, oversized, malformed, not UTF-8, duplicated, or not a
    ///   well-formed id — the store is not asked at all;
    /// - the store does not know the id (an id is never adopted: a new one is issued);
    /// - the session passed its idle or absolute timeout (it is deleted);
    /// - the id was rotated away and its grace window is over;
    /// - the IP or User-Agent binding does not match (the session itself stays untouched);
    /// - the record cannot be decoded.
    ///
    /// Each of these is reported as a [`SessionEvent`]. An id within its rotation grace
    /// window loads the session it moved to, and [`finish`](Self::finish) sends the client
    /// the new id.
    ///
    /// On [`cleanup_probability`](SessionConfig::cleanup_probability) of calls it also starts
    /// the store's cleanup in a background task (when called inside a Tokio runtime).
    ///
    /// # Errors
    /// Store errors other than a corrupt record ([`Error::Unavailable`],
    /// [`Error::Storage`]): the web layer decides whether to fail the request.
    /// [`Error::NoClientIp`] when IP binding is on and the request has no
    /// [`client_ip`](RequestInfo::client_ip) (logged once per manager): a server set up
    /// without client addresses must not silently bind every visitor to the same nothing.
    pub async fn load(&self, request: &RequestInfo) -> Result<ActiveSession> {
        self.maybe_cleanup();
        let config = &self.inner.config;
        let ip_tag = match (config.check_ip, request.client_ip) {
            (IpBinding::Off, _) => None,
            (binding, Some(ip)) => Some(meta::ip_tag(ip, binding)),
            (_, None) => {
                if !self.inner.warned_no_ip.swap(true, Ordering::Relaxed) {
                    tracing::error!(target: "sessionkit", "IP binding is on, but requests arrive without a client address: no session is loaded until the server provides one (with axum: into_make_service_with_connect_info::<SocketAddr>()) or IP binding is turned off");
                }
                return Err(Error::NoClientIp);
            }
        };
        let ua_tag = config
            .check_user_agent
            .then(|| meta::ua_tag(request.user_agent.as_deref()));
        let presented = cookie::find(&request.cookie_headers, config.effective_cookie_name());
        let clear_malformed = presented.is_malformed();
        let found = match presented {
            Presented::Missing => None,
            Presented::Invalid(reason) => {
                self.emit(SessionEvent::InvalidCookie { reason });
                None
            }
            Presented::Id(id) => {
                self.resolve(id, ip_tag.as_deref(), ua_tag.as_deref())
                    .await?
            }
        };
        let (session, origin) = match found {
            Some((existing, record)) => {
                let session = Session::from_fields(record.fields);
                session.set_loaded_owner(record.owner);
                (session, Origin::Existing(existing))
            }
            None => (Session::new(), Origin::New),
        };
        if !config.integrate_flash {
            session.disable_flash();
        }
        session.set_limits(config.limits);
        Ok(ActiveSession {
            session,
            origin,
            clear_malformed,
            ip_tag,
            ua_tag,
        })
    }

    /// Deletes a key the request will not use, logging (not failing on) store errors: the
    /// visitor gets a fresh session either way, and the store expires the record itself.
    async fn forget(&self, key: &SessionKey, what: &'static str) {
        if let Err(err) = self.inner.store.delete(key).await {
            tracing::warn!(target: "sessionkit", session = %key.fingerprint(), error = %err, "could not delete {what}");
        }
    }

    /// Saves what the request changed and says what the response must carry.
    ///
    /// - A new session is created in the store only if it holds data (user keys, a flash
    ///   message or an owner); then the response sets its cookie.
    /// - An existing session sends only its changes, merged by the store. A request that
    ///   changed nothing writes nothing, unless the idle deadline is due for a refresh
    ///   (see [`refresh_fraction`](SessionConfig::refresh_fraction)) or the id for rotation.
    /// - [`Session::regenerate`] moves the session to a fresh id; the old id is dead at once.
    /// - [`Session::destroy`] deletes it and clears the cookie (or, if the request stored data
    ///   after the call, starts a new session for that data under a new id).
    /// - An id older than [`rotate_after`](SessionConfig::rotate_after) is replaced; the old
    ///   id resolves for [`rotation_grace`](SessionConfig::rotation_grace) more.
    ///
    /// A session deleted meanwhile by another request (logout, revocation) is not brought
    /// back: the changes are dropped and [`Outcome::gone`] is set.
    ///
    /// Nothing is written when the session breaks the configured
    /// [`Limits`](crate::Limits) (checked on the whole session, and again by the store as it
    /// merges, where it can).
    ///
    /// # Errors
    /// Store errors; [`Error::LimitExceeded`] when the session would grow past a limit (then
    /// nothing was written). When regeneration fails, the session stays as it was under its
    /// old id.
    pub async fn finish(&self, active: ActiveSession) -> Result<Outcome> {
        let intent = active.session.intent();
        match &active.origin {
            Origin::New => self.finish_new(&active).await,
            Origin::Existing(existing) if intent.destroy => self.destroy(&active, existing).await,
            Origin::Existing(existing) if intent.regenerate => {
                self.regenerate(&active, existing, &intent, true).await
            }
            Origin::Existing(existing) => self.save(&active, existing, &intent).await,
        }
    }

    /// Finishes a request whose handler failed (a 5xx response): nothing the handler stored
    /// is saved, but what it ended stays ended.
    ///
    /// - After [`Session::destroy`] the session is ended and the cookie cleared, as
    ///   [`finish`](Self::finish) would (data stored after the call is dropped).
    /// - After [`Session::regenerate`] the session moves to a fresh id with none of the
    ///   request's changes, and the pre-login id is dead, as after a successful
    ///   regeneration.
    /// - Otherwise nothing is written and no cookie is sent.
    ///
    /// # Errors
    /// Store errors.
    pub async fn finish_failed(&self, active: ActiveSession) -> Result<Outcome> {
        let intent = active.session.intent();
        match &active.origin {
            Origin::Existing(existing) if intent.destroy => {
                self.end(existing).await?;
                Ok(self.removal(false))
            }
            Origin::Existing(existing) if intent.regenerate => {
                self.regenerate(&active, existing, &intent, false).await
            }
            Origin::New | Origin::Existing(_) => Ok(Outcome {
                vary_cookie: true,
                ..Outcome::default()
            }),
        }
    }

    fn persistent(&self, session: &Session) -> bool {
        session.persistent().unwrap_or(self.inner.config.persistent)
    }

    /// The record's expiry: the idle deadline, capped by the absolute one.
    fn deadline(&self, seen: SystemTime, created: SystemTime) -> SystemTime {
        let config = &self.inner.config;
        let idle = later(seen, config.idle_timeout);
        match config.absolute_timeout {
            Some(limit) => idle.min(later(created, limit)),
            None => idle,
        }
    }

    fn cookie_for(
        &self,
        session: &Session,
        id: &SessionId,
        now: SystemTime,
        expires_at: SystemTime,
    ) -> Outcome {
        let persistent = self.persistent(session).then_some((now, expires_at));
        Outcome {
            set_cookie: Some(cookie::set_cookie(&self.inner.config, id, persistent)),
            cache_control_no_store: true,
            vary_cookie: true,
            gone: false,
        }
    }

    fn removal(&self, gone: bool) -> Outcome {
        Outcome {
            set_cookie: Some(cookie::removal_cookie(&self.inner.config)),
            cache_control_no_store: true,
            vary_cookie: true,
            gone,
        }
    }

    fn gone(&self, existing: &Existing) -> Outcome {
        self.emit(SessionEvent::Gone {
            session: existing.id.fingerprint(),
        });
        Outcome {
            set_cookie: None,
            cache_control_no_store: false,
            vary_cookie: true,
            gone: true,
        }
    }

    /// The keys of the live sessions tagged with `owner` (see [`Session::set_owner`]).
    ///
    /// # Errors
    /// Store errors.
    pub async fn sessions_of(&self, owner: &str) -> Result<Vec<SessionKey>> {
        self.inner.store.owned_by(owner).await
    }

    /// Ends every session tagged with `owner` ("log out everywhere", after a password change
    /// or when an account is disabled) and returns how many it ended. A request of one of
    /// those sessions still in flight cannot bring it back.
    ///
    /// # Errors
    /// The first store error; sessions ended before it stay ended.
    pub async fn revoke_owner(&self, owner: &str) -> Result<usize> {
        let count = self.inner.store.delete_owned_by(owner).await?;
        self.emit(SessionEvent::Revoked { count });
        Ok(count)
    }

    /// Runs the store's cleanup now and returns how many records it removed; for a cron job
    /// when [`cleanup_probability`](SessionConfig::cleanup_probability) is 0.
    ///
    /// # Errors
    /// Store errors.
    pub async fn cleanup_now(&self) -> Result<u64> {
        self.inner.store.cleanup().await
    }

    /// Starts a background cleanup on `cleanup_probability` of the calls, unless one is
    /// running. Outside a Tokio runtime it does nothing.
    fn maybe_cleanup(&self) {
        let probability = self.inner.config.cleanup_probability;
        if probability <= 0.0 || (probability < 1.0 && rand::random::<f64>() >= probability) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self
            .inner
            .cleaning
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let guard = CleaningGuard(Arc::clone(&self.inner));
        runtime.spawn(async move {
            match guard.0.store.cleanup().await {
                Ok(removed) => {
                    tracing::debug!(target: "sessionkit", removed, "session store cleanup finished");
                }
                Err(err) => {
                    tracing::warn!(target: "sessionkit", error = %err, "session store cleanup failed");
                }
            }
            drop(guard);
        });
    }
}
