//! The framework-facing types: what the manager needs to know about a request
//! ([`RequestInfo`]), the session loaded for it ([`ActiveSession`]), and what the response
//! must carry ([`Outcome`]). Their `Debug` output never shows a cookie's value.

use std::fmt;
use std::net::IpAddr;

use super::meta::Meta;
use crate::id::{Fingerprint, SessionId, SessionKey};
use crate::session::Session;

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

/// A session loaded for one request, to hand back to [`SessionManager::finish`](super::SessionManager::finish).
///
/// The handler works on [`session()`](Self::session) (clones share the data).
#[derive(Debug)]
pub struct ActiveSession {
    pub(super) session: Session,
    pub(super) origin: Origin,
    /// Whether the request carried a malformed cookie of our name, which the response clears
    /// (never a well-formed id: a concurrent request may have just replaced it with a fresh
    /// login, and clearing it could arrive after, and wipe, that login's cookie).
    pub(super) clear_malformed: bool,
    pub(super) ip_tag: Option<String>,
    pub(super) ua_tag: Option<String>,
}

/// Where a loaded session stands with the store.
#[derive(Debug)]
pub(super) enum Origin {
    /// Not in the store (yet): saved only once it holds data.
    New,
    Existing(Existing),
}

/// A session found in the store, and how the request reached it.
#[derive(Debug)]
pub(super) struct Existing {
    /// The id the session lives under now.
    pub(super) id: SessionId,
    /// The store key of `id`.
    pub(super) key: SessionKey,
    /// The presented old key, when the session was reached through a rotation grace alias.
    pub(super) alias: Option<SessionKey>,
    /// The client holds an old id and needs the current one.
    pub(super) resend: bool,
    /// The manager's bookkeeping read from the record.
    pub(super) meta: Meta,
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

/// What the response needs after [`SessionManager::finish`](super::SessionManager::finish).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_debug_shows_cookie_names_never_values() {
        let request = RequestInfo::new().with_cookie_header("theme=dark; id=s3cr3t-value");
        let shown = format!("{request:?}");
        assert!(shown.contains("theme=<redacted>; id=<redacted>"), "{shown}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("dark"),
            "{shown}"
        );
    }

    #[test]
    fn outcome_debug_keeps_attributes_and_hides_the_id() {
        let outcome = Outcome {
            set_cookie: Some("id=s3cr3t-value; Path=/; HttpOnly".to_owned()),
            ..Outcome::default()
        };
        let shown = format!("{outcome:?}");
        assert!(shown.contains("id=<redacted>; Path=/; HttpOnly"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
