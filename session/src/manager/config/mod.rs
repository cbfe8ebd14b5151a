//! [`SessionConfig`]: every option of the manager, with its default.

#[cfg(test)]
mod tests;
mod validate;

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use super::clock::{Clock, SystemClock};
use super::events::{EventListener, SessionEvent};
use crate::error::{Error, Result};
use crate::limits::Limits;

/// The longest rotation grace window the manager accepts.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(60);

/// Browsers keep at most this many bytes of a cookie's name and value together.
pub const MAX_COOKIE_LEN: usize = 4096;

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SameSite {
    /// Sent only with same-site requests.
    Strict,
    /// Also sent with top-level cross-site navigations (links). The default.
    #[default]
    Lax,
    /// Sent with every request; browsers require `Secure` with it, and so does the manager.
    None,
}

/// How a session is bound to the client's IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpBinding {
    /// No binding (the default).
    #[default]
    Off,
    /// The request's IP must equal the one the session was created from.
    Exact,
    /// The request's IP must be in the same network as the one the session was created
    /// from: the same /24 for IPv4, the same /64 for IPv6. Tolerates NAT pools and IPv6
    /// privacy addresses.
    Subnet,
}

/// The manager's configuration: one option per setting of the library sessionkit descends
/// from, plus the ones a modern session library needs.
///
/// Build it from [`SessionConfig::default()`] (or [`SessionConfig::builder()`], the same
/// thing) with the `with_*` methods; [`SessionManager::new`](super::SessionManager::new)
/// validates it.
///
/// | option | default | what it does |
/// |---|---|---|
/// | [`cookie_name`](Self::cookie_name) | `None`: `__Host-id` when `secure` (see [`effective_cookie_name`](Self::effective_cookie_name)), `id` without | the cookie's name; `__Host-`/`__Secure-` names are checked |
/// | [`idle_timeout`](Self::idle_timeout) | 30 min | a session unused this long is gone |
/// | [`refresh_fraction`](Self::refresh_fraction) | 0.1 | a read-only request refreshes the idle deadline only when this fraction of `idle_timeout` has passed since the last refresh |
/// | [`absolute_timeout`](Self::absolute_timeout) | `Some(12 h)` | a session ends this long after creation, however busy |
/// | [`rotate_after`](Self::rotate_after) | `Some(15 min)` | the id is replaced after this long |
/// | [`rotation_grace`](Self::rotation_grace) | 10 s (max 60 s) | how long a rotated-away id still resolves |
/// | [`cleanup_probability`](Self::cleanup_probability) | 0.01 | fraction of requests that start a background `Store::cleanup` |
/// | [`integrate_flash`](Self::integrate_flash) | `true` | flash messages on [`Session`](crate::Session) |
/// | [`check_ip`](Self::check_ip) | [`IpBinding::Off`] | bind the session to the client IP |
/// | [`check_user_agent`](Self::check_user_agent) | `false` | bind the session to the User-Agent (stored hashed) |
/// | [`persistent`](Self::persistent) | `false` | `Max-Age`/`Expires` on the cookie ("remember me"); per session with [`Session::set_persistent`](crate::Session::set_persistent) |
/// | [`secure`](Self::secure) | `true` | the `Secure` attribute; turn off only for plain-http development |
/// | [`same_site`](Self::same_site) | [`SameSite::Lax`] | the `SameSite` attribute |
/// | [`path`](Self::path) | `"/"` | the `Path` attribute |
/// | [`domain`](Self::domain) | `None` | the `Domain` attribute (unset: this host only) |
/// | [`limits`](Self::limits) | 10⁴ fields, 1 MiB a value, 4 MiB a session | bounds on what one session holds ([`Limits`]) |
/// | [`max_sessions_per_owner`](Self::max_sessions_per_owner) | `None` | at most this many live sessions per owner; a login ends the oldest beyond it (SEC-14) |
///
/// The cookie is always `HttpOnly`.
///
/// ```
/// use sessionkit::{SessionConfig, SameSite};
/// use std::time::Duration;
/// let config = SessionConfig::builder()
///     .with_cookie_name("__Host-session")
///     .with_idle_timeout(Duration::from_secs(15 * 60))
///     .with_absolute_timeout(Some(Duration::from_secs(8 * 3600)))
///     .with_same_site(SameSite::Strict);
/// assert!(config.validate().is_ok());
/// // `__Host-` cookies must be Secure, on Path=/, without a Domain:
/// assert!(config.with_domain(Some("example.com".into())).validate().is_err());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The cookie's name (seed: `cookie_name`). Default `None`: the library picks the name
    /// browsers protect best for the other attributes, see
    /// [`effective_cookie_name`](Self::effective_cookie_name). A name starting with `__Host-`
    /// (in any case) requires `secure`, `path = "/"` and no `domain`; `__Secure-` requires
    /// `secure`.
    pub cookie_name: Option<String>,
    /// How long an unused session lives (seed: `session_expire_time`). Default 30 minutes.
    /// Enforced by the manager on every request and passed to the store as the record's
    /// expiry.
    pub idle_timeout: Duration,
    /// Refresh throttling: a request that changes nothing writes to the store only when this
    /// fraction of `idle_timeout` has passed since the session was last refreshed. Default
    /// 0.1 (3 minutes of a 30 minute timeout), so read traffic costs almost no writes; the
    /// price is that a session may end up to that much earlier than `idle_timeout` after the
    /// last request. 0 refreshes on every request. Must be in `0.0..1.0`.
    pub refresh_fraction: f64,
    /// How long after its creation a session ends, however active (SEC-10). Default
    /// `Some(12 hours)`; `None` disables it. Rotation and regeneration do not reset it.
    pub absolute_timeout: Option<Duration>,
    /// The id is replaced with a fresh one after this long (seed: `session_token_ttl`).
    /// Default `Some(15 minutes)`; `None` disables rotation.
    pub rotate_after: Option<Duration>,
    /// For how long a rotated-away id still resolves to the session, so requests already
    /// in flight with it are not logged out. Default 10 seconds, at most
    /// [`MAX_ROTATION_GRACE`].
    pub rotation_grace: Duration,
    /// At most this many live sessions per owner (SEC-14, "newest wins"). Default `None`:
    /// no cap. When a session gains an owner ([`Session::set_owner`](crate::Session::set_owner),
    /// at login) and is saved, the manager lists that owner's sessions and ends the ones
    /// beyond the cap, oldest login first; the session logging in is never one of them.
    ///
    /// The cap is enforced by each login, after its save: two logins of one owner at the
    /// same moment may briefly leave more sessions than the cap, and may end each other
    /// (each sees the other as an older one). Once the last of them finished, at most the
    /// cap is left. A store error while enforcing it is logged, not returned: the login
    /// itself was saved, and the next login enforces the cap again.
    pub max_sessions_per_owner: Option<NonZeroUsize>,
    /// On this fraction of requests the store's cleanup is started in the background
    /// (seed: `clean_check_percent`, as a fraction). Default 0.01. Never more than one
    /// cleanup runs at a time. 0 turns it off (use
    /// [`SessionManager::cleanup_now`](super::SessionManager::cleanup_now) from a cron job).
    pub cleanup_probability: f64,
    /// Flash messages (seed: `integrate_flash`). Default `true`.
    pub integrate_flash: bool,
    /// Bind sessions to the client IP (seed: `check_ip`). Default [`IpBinding::Off`]. The
    /// IP comes from [`RequestInfo`](super::RequestInfo); deciding which proxy headers to
    /// trust is the web layer's job (see [`TrustedProxies`](crate::proxy::TrustedProxies)).
    ///
    /// With binding on, every request must carry a client IP: a request without one is not
    /// given a session at all ([`load`](super::SessionManager::load) fails with
    /// [`Error::NoClientIp`](crate::Error::NoClientIp), logged once, and the axum layer
    /// answers `500`), because binding every such visitor to the same "no address" would
    /// silently turn binding off.
    pub check_ip: IpBinding,
    /// Bind sessions to the User-Agent (seed: `check_user_agent`). Default `false`. Only a
    /// hash of it is stored.
    pub check_user_agent: bool,
    /// Persistent cookies (seed: `set_cookie_expires`): `Max-Age` and `Expires` follow the
    /// session's expiry, so the cookie survives a browser restart. Default `false`: a
    /// browser-session cookie. Each session can override it.
    pub persistent: bool,
    /// The cookie's `Secure` attribute. Default `true`. Switch it off only to develop over
    /// plain http on localhost: browsers then send the cookie over unencrypted connections.
    pub secure: bool,
    /// The cookie's `SameSite` attribute. Default [`SameSite::Lax`]; `None` needs `secure`.
    pub same_site: SameSite,
    /// The cookie's `Path`. Default `"/"`.
    pub path: String,
    /// The cookie's `Domain`. Default `None`: only the host that set it receives it.
    pub domain: Option<String>,
    /// Called with every lifecycle event, on the request's path: keep it cheap (count,
    /// enqueue). Default `None`.
    pub listener: Option<EventListener>,
    /// Where the manager reads the time. Default [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// How much one session may hold (fields, bytes of a value, bytes of the session),
    /// enforced before anything is written. Default [`Limits::default()`].
    pub limits: Limits,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            cookie_name: None,
            idle_timeout: Duration::from_secs(30 * 60),
            refresh_fraction: 0.1,
            absolute_timeout: Some(Duration::from_secs(12 * 3600)),
            rotate_after: Some(Duration::from_secs(15 * 60)),
            rotation_grace: Duration::from_secs(10),
            max_sessions_per_owner: None,
            cleanup_probability: 0.01,
            integrate_flash: true,
            check_ip: IpBinding::Off,
            check_user_agent: false,
            persistent: false,
            secure: true,
            same_site: SameSite::Lax,
            path: "/".to_owned(),
            domain: None,
            listener: None,
            clock: Arc::new(SystemClock),
            limits: Limits::default(),
        }
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("cookie_name", &self.effective_cookie_name())
            .field("idle_timeout", &self.idle_timeout)
            .field("refresh_fraction", &self.refresh_fraction)
            .field("absolute_timeout", &self.absolute_timeout)
            .field("rotate_after", &self.rotate_after)
            .field("rotation_grace", &self.rotation_grace)
            .field("max_sessions_per_owner", &self.max_sessions_per_owner)
            .field("cleanup_probability", &self.cleanup_probability)
            .field("integrate_flash", &self.integrate_flash)
            .field("check_ip", &self.check_ip)
            .field("check_user_agent", &self.check_user_agent)
            .field("persistent", &self.persistent)
            .field("secure", &self.secure)
            .field("same_site", &self.same_site)
            .field("path", &self.path)
            .field("domain", &self.domain)
            .field(
                "listener",
                &self.listener.as_ref().map(|_| "Fn(&SessionEvent)"),
            )
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl SessionConfig {
    /// The default configuration, to adjust with the `with_*` methods.
    pub fn builder() -> Self {
        Self::default()
    }

    setters! {
        /// Sets [`cookie_name`](Self::cookie_name) to an explicit name.
        fn with_cookie_name(name: impl Into<String>) => cookie_name = Some(name.into());
    }

    /// The name the cookie is sent and looked for under: [`cookie_name`](Self::cookie_name)
    /// when set; otherwise
    ///
    /// - `__Host-id` when `secure` is on, `path` is `/` and there is no `domain` (the
    ///   defaults). Browsers accept a `__Host-` cookie only host-only, `Secure` and on `Path=/`,
    ///   so a page on a sibling subdomain cannot set ("toss") one for this host;
    /// - `__Secure-id` when `secure` is on with a `domain` or another `path` (browsers accept
    ///   it only from a secure origin with `Secure`);
    /// - `id` when `secure` is off (plain-http development: browsers refuse both prefixes
    ///   without `Secure`).
    ///
    /// ```
    /// use sessionkit::SessionConfig;
    ///
    /// assert_eq!(SessionConfig::default().effective_cookie_name(), "__Host-id");
    /// assert_eq!(SessionConfig::default().with_secure(false).effective_cookie_name(), "id");
    /// let shared = SessionConfig::default().with_domain(Some("example.com".into()));
    /// assert_eq!(shared.effective_cookie_name(), "__Secure-id");
    /// let named = SessionConfig::default().with_cookie_name("sid");
    /// assert_eq!(named.effective_cookie_name(), "sid");
    /// ```
    pub fn effective_cookie_name(&self) -> &str {
        match &self.cookie_name {
            Some(name) => name,
            None if !self.secure => "id",
            None if self.path == "/" && self.domain.is_none() => "__Host-id",
            None => "__Secure-id",
        }
    }

    setters! {
        /// Sets [`idle_timeout`](Self::idle_timeout).
        fn with_idle_timeout(timeout: Duration) => idle_timeout = timeout;

        /// Sets [`refresh_fraction`](Self::refresh_fraction).
        fn with_refresh_fraction(fraction: f64) => refresh_fraction = fraction;

        /// Sets [`absolute_timeout`](Self::absolute_timeout).
        fn with_absolute_timeout(timeout: Option<Duration>) => absolute_timeout = timeout;

        /// Sets [`rotate_after`](Self::rotate_after).
        fn with_rotate_after(after: Option<Duration>) => rotate_after = after;

        /// Sets [`rotation_grace`](Self::rotation_grace).
        fn with_rotation_grace(grace: Duration) => rotation_grace = grace;

        /// Sets [`max_sessions_per_owner`](Self::max_sessions_per_owner).
        ///
        /// ```
        /// use std::num::NonZeroUsize;
        /// use sessionkit::SessionConfig;
        /// // One session per user: a new login ends the previous one.
        /// let config = SessionConfig::builder().with_max_sessions_per_owner(NonZeroUsize::new(1));
        /// assert_eq!(config.max_sessions_per_owner.map(NonZeroUsize::get), Some(1));
        /// ```
        fn with_max_sessions_per_owner(cap: Option<NonZeroUsize>) => max_sessions_per_owner = cap;

        /// Sets [`cleanup_probability`](Self::cleanup_probability).
        fn with_cleanup_probability(probability: f64) => cleanup_probability = probability;

        /// Sets [`integrate_flash`](Self::integrate_flash).
        fn with_integrate_flash(on: bool) => integrate_flash = on;

        /// Sets [`check_ip`](Self::check_ip): `true` is [`IpBinding::Exact`].
        fn with_check_ip(on: bool) => check_ip = if on { IpBinding::Exact } else { IpBinding::Off };

        /// Sets [`check_ip`](Self::check_ip) to any [`IpBinding`].
        fn with_ip_binding(binding: IpBinding) => check_ip = binding;

        /// Sets [`check_user_agent`](Self::check_user_agent).
        fn with_check_user_agent(on: bool) => check_user_agent = on;

        /// Sets [`persistent`](Self::persistent).
        fn with_persistent(on: bool) => persistent = on;

        /// Sets [`secure`](Self::secure). `false` is for plain-http development only.
        fn with_secure(on: bool) => secure = on;

        /// Sets [`same_site`](Self::same_site).
        fn with_same_site(same_site: SameSite) => same_site = same_site;

        /// Sets [`path`](Self::path).
        fn with_path(path: impl Into<String>) => path = path.into();

        /// Sets [`domain`](Self::domain).
        fn with_domain(domain: Option<String>) => domain = domain;
    }

    /// Sets [`listener`](Self::listener).
    ///
    /// ```
    /// use sessionkit::{SessionConfig, SessionEvent};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// let suspicious = Arc::new(AtomicU64::new(0));
    /// let counter = suspicious.clone();
    /// let config = SessionConfig::default().with_listener(move |e: &SessionEvent| {
    ///     if e.is_suspicious() {
    ///         counter.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// });
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn with_listener<F>(mut self, listener: F) -> Self
    where
        F: Fn(&SessionEvent) + Send + Sync + 'static,
    {
        self.listener = Some(Arc::new(listener));
        self
    }

    setters! {
        /// Sets [`clock`](Self::clock) (a [`ManualClock`](super::ManualClock) in tests).
        fn with_clock(clock: impl Clock + 'static) => clock = Arc::new(clock);

        /// Sets [`limits`](Self::limits).
        fn with_limits(limits: Limits) => limits = limits;
    }

    /// How long after the last refresh a read-only request refreshes again.
    pub(crate) fn refresh_interval(&self) -> Duration {
        self.idle_timeout.mul_f64(self.refresh_fraction)
    }
}
