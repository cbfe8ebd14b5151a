//! [`SessionConfig`]: every option of the manager, with its default.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use super::clock::{Clock, SystemClock};
use super::events::{EventListener, SessionEvent};
use crate::error::{Error, Result};
use crate::id::ID_LEN;
use crate::limits::{Limits, MAX_TIMEOUT};

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

    /// Sets [`cookie_name`](Self::cookie_name) to an explicit name.
    #[must_use]
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = Some(name.into());
        self
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

    /// Sets [`idle_timeout`](Self::idle_timeout).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`refresh_fraction`](Self::refresh_fraction).
    #[must_use]
    pub fn with_refresh_fraction(mut self, fraction: f64) -> Self {
        self.refresh_fraction = fraction;
        self
    }

    /// Sets [`absolute_timeout`](Self::absolute_timeout).
    #[must_use]
    pub fn with_absolute_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.absolute_timeout = timeout;
        self
    }

    /// Sets [`rotate_after`](Self::rotate_after).
    #[must_use]
    pub fn with_rotate_after(mut self, after: Option<Duration>) -> Self {
        self.rotate_after = after;
        self
    }

    /// Sets [`rotation_grace`](Self::rotation_grace).
    #[must_use]
    pub fn with_rotation_grace(mut self, grace: Duration) -> Self {
        self.rotation_grace = grace;
        self
    }

    /// Sets [`max_sessions_per_owner`](Self::max_sessions_per_owner).
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use sessionkit::SessionConfig;
    /// // One session per user: a new login ends the previous one.
    /// let config = SessionConfig::builder().with_max_sessions_per_owner(NonZeroUsize::new(1));
    /// assert_eq!(config.max_sessions_per_owner.map(NonZeroUsize::get), Some(1));
    /// ```
    #[must_use]
    pub fn with_max_sessions_per_owner(mut self, cap: Option<NonZeroUsize>) -> Self {
        self.max_sessions_per_owner = cap;
        self
    }

    /// Sets [`cleanup_probability`](Self::cleanup_probability).
    #[must_use]
    pub fn with_cleanup_probability(mut self, probability: f64) -> Self {
        self.cleanup_probability = probability;
        self
    }

    /// Sets [`integrate_flash`](Self::integrate_flash).
    #[must_use]
    pub fn with_integrate_flash(mut self, on: bool) -> Self {
        self.integrate_flash = on;
        self
    }

    /// Sets [`check_ip`](Self::check_ip): `true` is [`IpBinding::Exact`].
    #[must_use]
    pub fn with_check_ip(mut self, on: bool) -> Self {
        self.check_ip = if on { IpBinding::Exact } else { IpBinding::Off };
        self
    }

    /// Sets [`check_ip`](Self::check_ip) to any [`IpBinding`].
    #[must_use]
    pub fn with_ip_binding(mut self, binding: IpBinding) -> Self {
        self.check_ip = binding;
        self
    }

    /// Sets [`check_user_agent`](Self::check_user_agent).
    #[must_use]
    pub fn with_check_user_agent(mut self, on: bool) -> Self {
        self.check_user_agent = on;
        self
    }

    /// Sets [`persistent`](Self::persistent).
    #[must_use]
    pub fn with_persistent(mut self, on: bool) -> Self {
        self.persistent = on;
        self
    }

    /// Sets [`secure`](Self::secure). `false` is for plain-http development only.
    #[must_use]
    pub fn with_secure(mut self, on: bool) -> Self {
        self.secure = on;
        self
    }

    /// Sets [`same_site`](Self::same_site).
    #[must_use]
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Sets [`path`](Self::path).
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets [`domain`](Self::domain).
    #[must_use]
    pub fn with_domain(mut self, domain: Option<String>) -> Self {
        self.domain = domain;
        self
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

    /// Sets [`clock`](Self::clock) (a [`ManualClock`](super::ManualClock) in tests).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets [`limits`](Self::limits).
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks the configuration; [`SessionManager::new`](super::SessionManager::new) calls it.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first problem: an empty or non-token cookie name, a
    /// name too long for a 4 KiB cookie, a `__Host-` name with `secure` off, a `Path` other
    /// than `/` or a `Domain`, a `__Secure-` name with `secure` off, `SameSite=None` without
    /// `secure`, a zero timeout or one over [`MAX_TIMEOUT`] (100 years: say "never" with
    /// `None`), a grace window over [`MAX_ROTATION_GRACE`], a fraction or probability out of
    /// range, a `Path`/`Domain` with characters a cookie cannot carry, or invalid
    /// [`Limits`].
    pub fn validate(&self) -> Result<()> {
        let name = self.effective_cookie_name();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(config(format!(
                "cookie_name {name:?} must be a non-empty HTTP token (letters, digits, !#$%&'*+-.^_`|~)"
            )));
        }
        if name.len() + ID_LEN > MAX_COOKIE_LEN {
            return Err(config(format!(
                "cookie_name is {} bytes; with the id it exceeds {MAX_COOKIE_LEN} bytes",
                name.len()
            )));
        }
        if has_prefix(name, "__Host-") {
            if !self.secure {
                return Err(config("a __Host- cookie must be Secure"));
            }
            if self.path != "/" {
                return Err(config("a __Host- cookie must have Path=/"));
            }
            if self.domain.is_some() {
                return Err(config("a __Host- cookie must not have a Domain"));
            }
        }
        if has_prefix(name, "__Secure-") && !self.secure {
            return Err(config("a __Secure- cookie must be Secure"));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(config("SameSite=None requires Secure"));
        }
        if !self.path.starts_with('/') || !self.path.bytes().all(is_attr_byte) {
            return Err(config(format!(
                "path {:?} must start with '/' and hold no ';' or control characters",
                self.path
            )));
        }
        if let Some(domain) = &self.domain
            && (domain.is_empty() || !domain.bytes().all(is_attr_byte) || domain.contains(' '))
        {
            return Err(config(format!(
                "domain {domain:?} is not a valid cookie domain"
            )));
        }
        if self.idle_timeout.is_zero() {
            return Err(config("idle_timeout must be more than zero"));
        }
        if self.absolute_timeout.is_some_and(|t| t.is_zero()) {
            return Err(config("absolute_timeout must be more than zero (or None)"));
        }
        if self.rotate_after.is_some_and(|t| t.is_zero()) {
            return Err(config("rotate_after must be more than zero (or None)"));
        }
        for (name, timeout) in [
            ("idle_timeout", Some(self.idle_timeout)),
            ("absolute_timeout", self.absolute_timeout),
            ("rotate_after", self.rotate_after),
        ] {
            if timeout.is_some_and(|t| t > MAX_TIMEOUT) {
                return Err(config(format!(
                    "{name} must be at most {} days (100 years; use None for no limit where the option allows it)",
                    MAX_TIMEOUT.as_secs() / 86_400
                )));
            }
        }
        if self.rotation_grace > MAX_ROTATION_GRACE {
            return Err(config(format!(
                "rotation_grace must be at most {} s",
                MAX_ROTATION_GRACE.as_secs()
            )));
        }
        if !(0.0..1.0).contains(&self.refresh_fraction) {
            return Err(config("refresh_fraction must be in 0.0..1.0"));
        }
        if !(0.0..=1.0).contains(&self.cleanup_probability) {
            return Err(config("cleanup_probability must be in 0.0..=1.0"));
        }
        self.limits.validate()
    }

    /// How long after the last refresh a read-only request refreshes again.
    pub(crate) fn refresh_interval(&self) -> Duration {
        self.idle_timeout.mul_f64(self.refresh_fraction)
    }
}

fn config(message: impl Into<String>) -> Error {
    Error::Config(message.into())
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What a `Path` or `Domain` attribute value may hold (RFC 6265 `av-octet` minus `;`).
fn is_attr_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b';'
}

/// Whether `name` starts with the cookie prefix `prefix`, compared as browsers do: without
/// regard to ASCII case (`__host-id` is a `__Host-` cookie to a browser).
fn has_prefix(name: &str, prefix: &str) -> bool {
    name.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cookie tossing (issue 16, item 1): unless the application names the cookie, a secure
    /// configuration uses a prefixed name a sibling subdomain cannot set, and every default
    /// name it picks passes its own validation.
    #[test]
    fn the_default_name_is_prefixed_whenever_secure() {
        let d = SessionConfig::default;
        assert_eq!(d().effective_cookie_name(), "__Host-id");
        assert_eq!(d().with_secure(false).effective_cookie_name(), "id");
        let domain = d().with_domain(Some("example.com".into()));
        assert_eq!(domain.effective_cookie_name(), "__Secure-id");
        domain.validate().unwrap();
        let path = d().with_path("/app");
        assert_eq!(path.effective_cookie_name(), "__Secure-id");
        path.validate().unwrap();
        let plain = d()
            .with_secure(false)
            .with_domain(Some("example.com".into()));
        assert_eq!(plain.effective_cookie_name(), "id");
        plain.validate().unwrap();
        // An explicit name is kept as given (the example site keeps `id`).
        assert_eq!(d().with_cookie_name("id").effective_cookie_name(), "id");
        assert!(format!("{:?}", d()).contains("__Host-id"));
    }

    fn err(c: SessionConfig) -> String {
        match c.validate() {
            Err(Error::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_secure_and_valid() {
        let c = SessionConfig::default();
        c.validate().unwrap();
        assert_eq!(c.effective_cookie_name(), "__Host-id");
        assert!(c.secure);
        assert_eq!(c.same_site, SameSite::Lax);
        assert_eq!(c.path, "/");
        assert!(c.domain.is_none());
        assert!(!c.persistent);
        assert_eq!(c.check_ip, IpBinding::Off);
        assert!(!c.check_user_agent);
        assert!(c.rotation_grace <= MAX_ROTATION_GRACE);
    }

    #[test]
    fn prefixes_are_checked_in_any_case() {
        // Browsers apply the prefixes case-insensitively: so must the check.
        let host = SessionConfig::default().with_cookie_name("__host-id");
        assert!(err(host.with_domain(Some("example.com".into()))).contains("Domain"));
        let host = SessionConfig::default().with_cookie_name("__HOST-id");
        assert!(err(host.with_path("/app")).contains("Path"));
        let secure = SessionConfig::default().with_cookie_name("__SeCuRe-id");
        assert!(err(secure.with_secure(false)).contains("Secure"));
        // Not a prefix at all: no rule applies.
        SessionConfig::default()
            .with_cookie_name("__Hos-id")
            .with_secure(false)
            .validate()
            .unwrap();
    }

    #[test]
    fn host_prefix_rules() {
        let host = SessionConfig::default().with_cookie_name("__Host-id");
        host.clone().validate().unwrap();
        assert!(err(host.clone().with_secure(false)).contains("Secure"));
        assert!(err(host.clone().with_path("/app")).contains("Path"));
        assert!(err(host.with_domain(Some("example.com".into()))).contains("Domain"));
        let secure = SessionConfig::default().with_cookie_name("__Secure-id");
        assert!(err(secure.with_secure(false)).contains("Secure"));
    }

    #[test]
    fn same_site_none_needs_secure() {
        let c = SessionConfig::default().with_same_site(SameSite::None);
        c.clone().validate().unwrap();
        assert!(err(c.with_secure(false)).contains("SameSite"));
    }

    #[test]
    fn huge_timeouts_are_refused_naming_the_option() {
        let d = SessionConfig::default;
        assert!(err(d().with_idle_timeout(Duration::MAX)).contains("idle_timeout"));
        assert!(err(d().with_absolute_timeout(Some(Duration::MAX))).contains("absolute_timeout"));
        assert!(err(d().with_rotate_after(Some(Duration::MAX))).contains("rotate_after"));
        let just_over = MAX_TIMEOUT + Duration::from_secs(1);
        assert!(err(d().with_idle_timeout(just_over)).contains("idle_timeout"));
        d().with_idle_timeout(MAX_TIMEOUT)
            .with_absolute_timeout(Some(MAX_TIMEOUT))
            .with_rotate_after(Some(MAX_TIMEOUT))
            .validate()
            .unwrap();
    }

    #[test]
    fn limits_are_validated() {
        let d = SessionConfig::default;
        assert_eq!(d().limits, Limits::default());
        assert!(err(d().with_limits(Limits::default().with_max_fields(0))).contains("limits"));
        assert!(
            err(d().with_limits(
                Limits::default()
                    .with_max_value_bytes(10)
                    .with_max_record_bytes(9)
            ))
            .contains("max_value_bytes")
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let d = SessionConfig::default;
        for name in ["", "a b", "a;b", "a=b", "é", "a\0"] {
            err(d().with_cookie_name(name));
        }
        err(d().with_cookie_name("x".repeat(MAX_COOKIE_LEN)));
        err(d().with_path("app"));
        err(d().with_path("/a;b"));
        err(d().with_domain(Some("a;b".into())));
        err(d().with_domain(Some(String::new())));
        err(d().with_idle_timeout(Duration::ZERO));
        err(d().with_absolute_timeout(Some(Duration::ZERO)));
        err(d().with_rotate_after(Some(Duration::ZERO)));
        err(d().with_rotation_grace(MAX_ROTATION_GRACE + Duration::from_secs(1)));
        d().with_rotation_grace(MAX_ROTATION_GRACE)
            .validate()
            .unwrap();
        for f in [-0.1, 1.0, f64::NAN] {
            err(d().with_refresh_fraction(f));
        }
        for p in [-0.1, 1.1, f64::NAN] {
            err(d().with_cleanup_probability(p));
        }
        d().with_cleanup_probability(1.0).validate().unwrap();
        d().with_rotate_after(None)
            .with_absolute_timeout(None)
            .validate()
            .unwrap();
    }
}
