//! The session lifecycle manager: from a request's cookie to a loaded [`Session`], and from
//! the finished session to the `Set-Cookie` the response needs.

mod clock;
mod config;
mod cookie;
mod events;
mod meta;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{IpBinding, MAX_COOKIE_LEN, MAX_ROTATION_GRACE, SameSite, SessionConfig};
pub use events::{EventListener, ExpiryReason, SessionEvent};

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use self::cookie::Presented;
use self::events::emit;
use self::meta::Meta;
use crate::error::{Error, Result};
use crate::id::{Fingerprint, SessionId, SessionKey};
use crate::limits::{Footprint, later};
use crate::record::{ChangeSet, Grace, Record};
use crate::session::{Intent, PERSIST_KEY, Session};
use crate::store::{Store, StoreExt};

/// How many fresh ids a save tries when the store reports one as taken. A collision of
/// 256-bit random ids does not happen; a store that keeps saying "taken" is broken.
const ID_ATTEMPTS: usize = 3;

/// What the manager needs to know about a request.
///
/// The web layer fills it: every `Cookie` header value as received, the client IP as it
/// decided after weighing its proxies, and the `User-Agent`.
///
/// ```
/// use sessionkit::RequestInfo;
/// let request = RequestInfo::new()
///     .with_cookie_header("theme=dark; id=...")
///     .with_client_ip("192.0.2.7".parse().unwrap())
///     .with_user_agent("Mozilla/5.0");
/// assert_eq!(request.cookie_headers.len(), 1);
/// ```
///
/// `Debug` never prints a cookie's value (it may be a session id): each `Cookie` header shows
/// as its cookie names with redacted values.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct RequestInfo {
    /// Every `Cookie` header value of the request, as bytes.
    pub cookie_headers: Vec<Vec<u8>>,
    /// The client's IP address, if known.
    pub client_ip: Option<IpAddr>,
    /// The `User-Agent` header, if sent.
    pub user_agent: Option<Vec<u8>>,
}

impl RequestInfo {
    /// A request with no cookie, IP or User-Agent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one `Cookie` header value.
    #[must_use]
    pub fn with_cookie_header(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.cookie_headers.push(value.into());
        self
    }

    /// Sets the client IP.
    #[must_use]
    pub fn with_client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// Sets the `User-Agent`.
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: impl Into<Vec<u8>>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }
}

/// A session loaded for one request, to hand back to [`SessionManager::finish`].
///
/// The handler works on [`session()`](Self::session) (clones share the data).
#[derive(Debug)]
pub struct ActiveSession {
    session: Session,
    origin: Origin,
    /// Whether the request carried a malformed cookie of our name, which the response clears
    /// (never a well-formed id: a concurrent request may have just replaced it with a fresh
    /// login, and clearing it could arrive after, and wipe, that login's cookie).
    clear_malformed: bool,
    ip_tag: Option<String>,
    ua_tag: Option<String>,
}

#[derive(Debug)]
enum Origin {
    /// Not in the store (yet): saved only once it holds data.
    New,
    Existing(Existing),
}

#[derive(Debug)]
struct Existing {
    /// The id the session lives under now.
    id: SessionId,
    key: SessionKey,
    /// The presented old key, when the session was reached through a rotation grace alias.
    alias: Option<SessionKey>,
    /// The client holds an old id and needs the current one.
    resend: bool,
    meta: Meta,
}

impl ActiveSession {
    /// The session handle. Clone it freely; every clone sees the same data.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Whether the session is not in the store: the visitor had no valid session, and gets
    /// one (with a cookie) only if the request stores something in it.
    pub fn is_new(&self) -> bool {
        matches!(self.origin, Origin::New)
    }

    /// The loaded session's fingerprint, for the application's own logs.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        match &self.origin {
            Origin::New => None,
            Origin::Existing(e) => Some(e.id.fingerprint()),
        }
    }
}

impl fmt::Debug for RequestInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cookies: Vec<String> = self
            .cookie_headers
            .iter()
            .map(|h| redact_cookie_pairs(&String::from_utf8_lossy(h)))
            .collect();
        f.debug_struct("RequestInfo")
            .field("cookie_headers", &cookies)
            .field("client_ip", &self.client_ip)
            .field(
                "user_agent",
                &self.user_agent.as_deref().map(String::from_utf8_lossy),
            )
            .finish()
    }
}

/// `a=1; b=2` as `a=<redacted>; b=<redacted>`: the names, never a value.
fn redact_cookie_pairs(header: &str) -> String {
    header
        .split(';')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => format!("{}=<redacted>", name.trim()),
            None => "<redacted>".to_owned(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `Set-Cookie` value with the cookie's value redacted and its attributes kept.
fn redact_set_cookie(header: &str) -> String {
    match header.split_once(';') {
        Some((pair, attributes)) => format!("{};{attributes}", redact_cookie_pairs(pair)),
        None => redact_cookie_pairs(header),
    }
}

/// What the response needs after [`SessionManager::finish`].
///
/// `Debug` shows the `Set-Cookie` header with its value redacted (it is the session id).
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// The full `Set-Cookie` header value to send, if any: the session's cookie (new, rotated,
    /// regenerated, or refreshed when persistent) or a removal cookie.
    pub set_cookie: Option<String>,
    /// Whether the response should carry `Cache-Control: no-store`: true whenever it sets or
    /// clears the cookie, so no cache stores one visitor's cookie for another (SEC-22).
    pub cache_control_no_store: bool,
    /// Whether the response depended on the session cookie (add `Vary: Cookie`).
    pub vary_cookie: bool,
    /// The session vanished before its save (a concurrent logout, revocation or login on
    /// another request). Its changes were dropped, not written back. No cookie is sent: this
    /// request lost a race, and a removal cookie could arrive after, and wipe, the cookie of
    /// the request that won it.
    pub gone: bool,
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outcome")
            .field(
                "set_cookie",
                &self.set_cookie.as_deref().map(redact_set_cookie),
            )
            .field("cache_control_no_store", &self.cache_control_no_store)
            .field("vary_cookie", &self.vary_cookie)
            .field("gone", &self.gone)
            .finish()
    }
}

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

    /// Finds the live session behind a well-formed id, applying every server-side rule.
    async fn resolve(
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
        let (current, alias, resend) = match &loaded.moved {
            None => (id, None, false),
            Some(moved) => match meta::open_grace(&id, &moved.token) {
                Some((new_id, until)) if new_id.key() == moved.to => {
                    if until <= now {
                        self.emit(SessionEvent::StaleId {
                            session: id.fingerprint(),
                        });
                        self.forget(&key, "stale alias").await;
                        return Ok(None);
                    }
                    (new_id, Some(key), true)
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
            self.forget(&current.key(), "expired session").await;
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
            key: current.key(),
            id: current,
            alias,
            resend,
            meta,
        };
        Ok(Some((existing, loaded.record)))
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

    async fn finish_new(&self, active: &ActiveSession) -> Result<Outcome> {
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
        let expires_at = self.deadline(now, now);
        let record = Record {
            fields,
            expires_at,
            owner,
        };
        let mut attempt = 0;
        let id = loop {
            let id = SessionId::generate()?;
            match self.inner.store.create(&id.key(), &record).await {
                Ok(()) => break id,
                Err(Error::AlreadyExists) if attempt + 1 < ID_ATTEMPTS => attempt += 1,
                Err(err) => return Err(err),
            }
        };
        self.emit(SessionEvent::Created {
            session: id.fingerprint(),
        });
        if let Some(owner) = &record.owner {
            self.enforce_cap(owner, &id.key()).await;
        }
        Ok(self.cookie_for(session, &id, now, expires_at))
    }

    /// Ends the session wherever it lives now: under the key it was loaded from, or under the
    /// key a concurrent rotation moved it to (followed through the grace alias).
    async fn end(&self, existing: &Existing) -> Result<()> {
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

    async fn destroy(&self, active: &ActiveSession, existing: &Existing) -> Result<Outcome> {
        self.end(existing).await?;
        if active.session.has_user_data() {
            // Data stored after the logout belongs to a new session, under a new id.
            self.finish_new(active).await
        } else {
            Ok(self.removal(false))
        }
    }

    /// The change set of a save: the session's changes, the owner, missing binding tags.
    fn changes(
        &self,
        active: &ActiveSession,
        existing: &Existing,
        intent: &Intent,
    ) -> Result<ChangeSet> {
        let limits = self.inner.config.limits;
        let (loaded, now) = active.session.footprints();
        let mut changes = active.session.take_changes();
        for (key, value) in &changes.set {
            limits.check_value(key, value.len())?;
        }
        limits.check_growth(loaded, now)?;
        changes.limits = Some(limits);
        if let Some(owner) = &intent.owner {
            changes.owner = Some(owner.clone());
            if owner.is_some() {
                changes
                    .set
                    .insert(meta::LOGIN.to_owned(), meta::time(meta::LOGIN, self.now())?);
            }
        }
        self.bind(active, Some(&existing.meta), &mut changes)?;
        Ok(changes)
    }

    /// Stamps a change set that is going to be written: refreshed now, new expiry.
    fn stamp(
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

    /// Login / privilege change: move to a fresh id with no grace, then apply the changes
    /// there. It fails closed: when the move or the changes fail, the fresh key is removed
    /// (the login is not kept anywhere) and the pre-login data is never moved back under the
    /// pre-login id, which an attacker may have planted. The visitor logs in again.
    ///
    /// With `keep_changes` false (the request failed), only the move is carried out.
    async fn regenerate(
        &self,
        active: &ActiveSession,
        existing: &Existing,
        intent: &Intent,
        keep_changes: bool,
    ) -> Result<Outcome> {
        let store = &self.inner.store;
        let now = self.now();
        let mut changes = if keep_changes {
            self.changes(active, existing, intent)?
        } else {
            ChangeSet::default()
        };
        let expires_at = self.stamp(&mut changes, &existing.meta, now, true)?;
        let mut from = existing.id.clone();
        let mut attempt = 0;
        let new_id = loop {
            let new_id = SessionId::generate()?;
            match store.rename(&from.key(), &new_id.key(), None).await {
                Ok(()) => break new_id,
                Err(err) if err.committed() => break new_id,
                Err(Error::AlreadyExists) if attempt + 1 < ID_ATTEMPTS => attempt += 1,
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

    /// After `key` answered "gone": if a concurrent request rotated it and the grace window
    /// is open, where the session lives now.
    async fn follow(&self, id: &SessionId) -> Result<Option<SessionId>> {
        let now = self.now();
        Ok(match self.inner.store.load(&id.key()).await? {
            Some(loaded) => loaded.moved.and_then(|moved| {
                meta::open_grace(id, &moved.token)
                    .filter(|(new_id, until)| new_id.key() == moved.to && *until > now)
                    .map(|(new_id, _)| new_id)
            }),
            None => None,
        })
    }

    async fn save(
        &self,
        active: &ActiveSession,
        existing: &Existing,
        intent: &Intent,
    ) -> Result<Outcome> {
        let config = &self.inner.config;
        let store = &self.inner.store;
        let session = &active.session;
        let now = self.now();
        let meta = &existing.meta;
        let mut changes = self.changes(active, existing, intent)?;
        let persist_changed =
            changes.set.contains_key(PERSIST_KEY) || changes.remove.contains(PERSIST_KEY);
        let mut rotate = !existing.resend
            && config
                .rotate_after
                .is_some_and(|after| now >= later(meta.rotated, after));
        let refresh = now >= later(meta.seen, config.refresh_interval());
        let write = !changes.is_empty() || refresh || rotate;
        let mut expires_at = self.deadline(meta.seen, meta.created);
        if write {
            expires_at = self.stamp(&mut changes, meta, now, rotate)?;
        }
        let mut id = existing.id.clone();
        let mut resend = existing.resend;
        if write {
            match store.apply(&existing.key, &changes).await {
                Ok(()) => {}
                Err(err) if err.committed() => self.stale_cache(&existing.id, &err),
                Err(Error::Gone) => match self.follow(&existing.id).await? {
                    // A concurrent request rotated the id: save there, send the new cookie.
                    Some(moved) => {
                        changes.set.remove(meta::ROTATED);
                        match store.apply(&moved.key(), &changes).await {
                            Ok(()) => {}
                            Err(err) if err.committed() => self.stale_cache(&moved, &err),
                            Err(Error::Gone) => return Ok(self.gone(existing)),
                            Err(err) => return Err(err),
                        }
                        id = moved;
                        resend = true;
                        rotate = false;
                    }
                    None => return Ok(self.gone(existing)),
                },
                Err(err) => return Err(err),
            }
        }
        if rotate {
            match self.rotate(&id, expires_at, now).await? {
                Rotation::Done(new_id) | Rotation::Joined(new_id) => {
                    id = new_id;
                    resend = true;
                }
                Rotation::Gone => return Ok(self.gone(existing)),
                Rotation::Deferred => {}
            }
        }
        if let Some(Some(owner)) = &intent.owner {
            self.enforce_cap(owner, &id.key()).await;
        }
        let persistent = self.persistent(session);
        if resend || persist_changed || (persistent && write) {
            Ok(self.cookie_for(session, &id, now, expires_at))
        } else {
            Ok(Outcome {
                vary_cookie: true,
                ..Outcome::default()
            })
        }
    }

    /// A write the store committed although a cache tier could not be told: the lifecycle
    /// goes on as written (the cache tier already stopped trusting its copy, or reported it).
    fn stale_cache(&self, id: &SessionId, err: &Error) {
        tracing::warn!(target: "sessionkit", session = %id.fingerprint(), error = %err, "session written; a cache tier could not drop its copy");
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
        for _ in 0..ID_ATTEMPTS {
            let new_id = SessionId::generate()?;
            let grace = (!config.rotation_grace.is_zero()).then(|| Grace {
                until,
                token: meta::grace_token(id, &new_id, until),
            });
            let moved = match store.rename(&id.key(), &new_id.key(), grace.as_ref()).await {
                Err(err) if err.committed() => {
                    self.stale_cache(id, &err);
                    Ok(())
                }
                other => other,
            };
            match moved {
                Ok(()) => {
                    self.emit(SessionEvent::Rotated {
                        from: id.fingerprint(),
                        to: new_id.fingerprint(),
                    });
                    return Ok(Rotation::Done(new_id));
                }
                Err(Error::AlreadyExists) => continue,
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
        }
        Ok(Rotation::Deferred)
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

    /// SEC-14: after a session gained `owner` and was saved under `keep`, ends that owner's
    /// sessions beyond [`max_sessions_per_owner`](SessionConfig::max_sessions_per_owner),
    /// the oldest logins first, never `keep`. A store error is logged, not returned: the login
    /// is saved, and the next one enforces the cap again.
    async fn enforce_cap(&self, owner: &str, keep: &SessionKey) {
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
