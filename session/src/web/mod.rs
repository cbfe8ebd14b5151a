//! The web-framework integrations: a tower [`Layer`](tower_layer::Layer) for any tower-based
//! framework (feature `tower`), axum extractors on top of it (feature `axum`), and an
//! actix-web middleware with its extractors (feature `actix`, in [`actix`]).
//! All three run the same framework-free [`SessionManager`] through the same code here: one
//! lazy load, one save path, one set of response headers and error responses.
//!
//! With axum:
//!
//! ```no_run
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//! use sessionkit::web::SessionLayer;
//! use sessionkit::{MemoryStore, Session, SessionConfig, SessionManager};
//!
//! async fn counter(session: Session) -> String {
//!     let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
//!     let _ = session.insert("n", n);
//!     format!("visit number {n}")
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default())?;
//! let app = Router::new()
//!     .route("/", get(counter))
//!     .layer(SessionLayer::new(manager));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(()) }
//! # }
//! ```
//!
//! With any other tower-based framework (feature `tower` only, no axum), a handler reaches
//! the session through the request's extensions with [`Session::from_extensions`]:
//!
//! ```
//! # #[cfg(feature = "tower")] {
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use sessionkit::web::SessionLayer;
//! use sessionkit::{MemoryStore, Session, SessionConfig, SessionManager};
//! use tower_layer::Layer;
//!
//! async fn handler(req: Request<String>) -> Result<Response<String>, Infallible> {
//!     let body = match Session::from_extensions(req.extensions()).await {
//!         Ok(session) => {
//!             let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
//!             let _ = session.insert("n", n);
//!             format!("visit number {n}")
//!         }
//!         Err(rejection) => return Ok(rejection.into_http_response()),
//!     };
//!     Ok(Response::new(body))
//! }
//!
//! # fn build() -> Result<(), sessionkit::Error> {
//! let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default())?;
//! let service = SessionLayer::new(manager).layer(tower::service_fn(handler));
//! # let _ = service; Ok(()) }
//! # }
//! ```
//!
//! # What the integrations do
//!
//! - **Lazily**: the session is loaded the first time a handler asks for it. A handler that
//!   never asks costs no store access, and its response gets no session headers.
//! - After the handler they save only what changed and add `Set-Cookie` only when needed,
//!   with `Cache-Control: no-store` on any response that sets or clears the cookie and
//!   `Vary: Cookie` on any response that read the session.
//! - **Client IP** for IP binding is the connection's address (axum:
//!   `ConnectInfo<SocketAddr>`; actix-web: the peer address; any other tower framework: the
//!   function given to [`SessionLayer::with_peer_ip`]), or the address in `X-Forwarded-For`
//!   (or `Forwarded`) only on connections from the reverse proxies the application trusts
//!   (`with_trusted_proxies`, rule in [`crate::proxy`]). With IP binding on and no client
//!   address, asking for the session fails with `500` (and one logged error) rather than
//!   binding everyone to "no address".
//! - **Store failures**: asking for the [`Session`] fails with `503 Service Unavailable` and
//!   `Retry-After` when the session cannot be loaded (ask for `Option<Session>` to run anyway
//!   without it); a failed save turns the response into that 503. Both are logged. Responses
//!   with a 5xx status are not saved unless `with_save_on_server_error` says so.
//! - **Size limits** ([`Limits`](crate::Limits)): a setter that would break one returns
//!   [`Error::LimitExceeded`] to the handler, which answers as it sees fit (`413`, a form
//!   error). A session found over a limit only at save (a setter that cannot fail, an array
//!   grown by concurrent requests) is not saved and the response becomes a `500` with the
//!   error logged; not a `503`, since retrying cannot help.
//! - Every error response the integrations make carries `Cache-Control: no-store`.

#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix;
#[cfg(feature = "axum")]
mod extract;
#[cfg(feature = "tower")]
mod layer;

#[cfg(any(feature = "axum", feature = "actix"))]
mod typed;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use layer::{PeerIp, SessionLayer, SessionService};
#[cfg(any(feature = "axum", feature = "actix"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "axum", feature = "actix"))))]
pub use typed::Typed;

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::error::Error;
use crate::error::Result;
use crate::manager::{ActiveSession, Outcome, RequestInfo, SessionManager};
use crate::proxy::TrustedProxies;
use crate::session::Session;
use crate::store::Store;

/// The manager with its store type erased, so extractors need not name it.
#[async_trait]
trait Lifecycle: Send + Sync {
    async fn load(&self, request: &RequestInfo) -> Result<ActiveSession>;
    async fn finish(&self, active: ActiveSession) -> Result<Outcome>;
    async fn finish_failed(&self, active: ActiveSession) -> Result<Outcome>;
}

#[async_trait]
impl<S: Store + 'static> Lifecycle for SessionManager<S> {
    async fn load(&self, request: &RequestInfo) -> Result<ActiveSession> {
        SessionManager::load(self, request).await
    }
    async fn finish(&self, active: ActiveSession) -> Result<Outcome> {
        SessionManager::finish(self, active).await
    }
    async fn finish_failed(&self, active: ActiveSession) -> Result<Outcome> {
        SessionManager::finish_failed(self, active).await
    }
}

/// What every integration holds: the manager and how to treat requests.
#[derive(Clone)]
struct Shared {
    lifecycle: Arc<dyn Lifecycle>,
    trusted_proxies: Arc<TrustedProxies>,
    save_on_server_error: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("trusted_proxies", &self.trusted_proxies)
            .field("save_on_server_error", &self.save_on_server_error)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn new<S: Store + 'static>(manager: SessionManager<S>) -> Self {
        Shared {
            lifecycle: Arc::new(manager),
            trusted_proxies: Arc::new(TrustedProxies::new()),
            save_on_server_error: false,
        }
    }

    /// The request as the manager sees it, from any framework's headers: every `Cookie`
    /// value, the values of the configured forwarding header, the `User-Agent`, and the
    /// connection's address.
    fn request_info<'a>(
        &self,
        cookies: impl Iterator<Item = &'a [u8]>,
        forwarded: impl Iterator<Item = &'a [u8]>,
        user_agent: Option<&[u8]>,
        peer: Option<IpAddr>,
    ) -> RequestInfo {
        RequestInfo {
            cookie_headers: cookies.map(<[u8]>::to_vec).collect(),
            // Without the connection's address nothing in the headers can be trusted.
            client_ip: peer.map(|peer| self.trusted_proxies.client_ip(peer, forwarded)),
            user_agent: user_agent.map(<[u8]>::to_vec),
        }
    }

    /// The end of a request whose handler answered with `status_is_server_error` or not: the
    /// session's save (or, after a 5xx, only a logout or id change it asked for). `None` when
    /// the handler never loaded the session.
    async fn finish(&self, lazy: &LazySession, status_is_server_error: bool) -> Option<Finish> {
        let active = lazy.take().await?;
        if status_is_server_error && !self.save_on_server_error {
            // Nothing the handler stored is saved, but a logout or a login's id change it
            // asked for is still carried out.
            return Some(match self.lifecycle.finish_failed(active).await {
                Ok(outcome) => Finish::Headers {
                    outcome,
                    on_bad_header: None,
                },
                Err(err) => {
                    tracing::error!(error = %err, "a failed request's session could not be finished");
                    Finish::Untouched
                }
            });
        }
        Some(match self.lifecycle.finish(active).await {
            Ok(outcome) => Finish::Headers {
                outcome,
                on_bad_header: Some(Failure::UNAVAILABLE),
            },
            Err(err) => {
                tracing::error!(error = %err, "session could not be saved");
                Finish::Failed(Failure::for_save_error(&err))
            }
        })
    }
}

/// What to do with the handler's response once the session is finished.
enum Finish {
    /// Add the outcome's headers; if one cannot be sent, answer `on_bad_header` instead
    /// (`None`: keep the response, it is already an error).
    Headers {
        outcome: Outcome,
        on_bad_header: Option<Failure>,
    },
    /// Leave the response as it is.
    Untouched,
    /// Replace the response.
    Failed(Failure),
}

/// The headers an [`Outcome`] asks for, in order: `(name, value, append)`; `append` false
/// means the header replaces any the handler set.
fn outcome_headers(outcome: &Outcome) -> impl Iterator<Item = (&'static str, &str, bool)> {
    let cookie = outcome
        .set_cookie
        .as_deref()
        .map(|cookie| ("set-cookie", cookie, true));
    let no_store = outcome
        .cache_control_no_store
        .then_some(("cache-control", "no-store", false));
    let vary = outcome.vary_cookie.then_some(("vary", "cookie", true));
    cookie.into_iter().chain(no_store).chain(vary)
}

/// Adds an [`Outcome`]'s headers to a header map, or says which value the map refused. The
/// tower layer's map (`http` 1) and actix-web's are different types of the same shape, with no
/// common trait: each integration expands this with its own `HeaderMap`, `HeaderName` and
/// `HeaderValue` in scope.
#[cfg(any(feature = "tower", feature = "actix"))]
macro_rules! apply_outcome {
    ($headers:expr, $outcome:expr) => {{
        let headers = $headers;
        let mut applied: Result<(), String> = Ok(());
        for (name, value, append) in super::outcome_headers($outcome) {
            match HeaderValue::from_str(value) {
                Ok(value) if append => {
                    headers.append(HeaderName::from_static(name), value);
                }
                Ok(value) => {
                    headers.insert(HeaderName::from_static(name), value);
                }
                Err(e) => {
                    applied = Err(e.to_string());
                    break;
                }
            }
        }
        applied
    }};
}
#[cfg(any(feature = "tower", feature = "actix"))]
use apply_outcome;

/// An error response the integrations make: every framework builds it from this one
/// description, with `Cache-Control: no-store` always and `Retry-After` on a 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failure {
    status: u16,
    body: &'static str,
}

impl Failure {
    const fn new(status: u16, body: &'static str) -> Failure {
        Failure { status, body }
    }

    /// The store is down (a failed load or save): retry shortly.
    const UNAVAILABLE: Failure = Failure::new(503, "session store unavailable, please retry");
    /// A session over its [`Limits`](crate::Limits): retrying cannot help.
    const OVER_LIMIT: Failure = Failure::new(500, "session data over its configured limit");
    const MISSING_LAYER: Failure = Failure::new(500, "session layer missing for this route");
    const NO_CLIENT_IP: Failure = Failure::new(
        500,
        "session IP binding is on but the server provides no client address",
    );

    /// The seconds in `Retry-After`, on a 503 only.
    const RETRY_AFTER: &'static str = "1";

    fn retry_after(self) -> Option<&'static str> {
        (self.status == 503).then_some(Self::RETRY_AFTER)
    }

    /// The response for a save that failed with `err`. A session over its
    /// [`Limits`](crate::Limits) is the application's (or the visitor's) doing, not an
    /// outage: a `500` without `Retry-After`. A memory store at its entry bound and every
    /// store failure are a `503` with `Retry-After`.
    fn for_save_error(err: &Error) -> Failure {
        match err {
            Error::LimitExceeded { limit, .. } if *limit != crate::Limit::Entries => {
                Failure::OVER_LIMIT
            }
            _ => Failure::UNAVAILABLE,
        }
    }
}

/// Why a session could not be had for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionRejection {
    /// The store failed; answered with `503 Service Unavailable` and `Retry-After`.
    Unavailable,
    /// The route is not behind the session layer or middleware: a programming error,
    /// answered with `500 Internal Server Error`.
    MissingLayer,
    /// IP binding is on but the request has no client address
    /// ([`Error::NoClientIp`]): the server is not serving with
    /// connection info. A configuration error, answered with `500 Internal Server Error`.
    NoClientIp,
}

impl SessionRejection {
    fn failure(self) -> Failure {
        match self {
            SessionRejection::Unavailable => Failure::UNAVAILABLE,
            SessionRejection::MissingLayer => Failure::MISSING_LAYER,
            SessionRejection::NoClientIp => Failure::NO_CLIENT_IP,
        }
    }

    /// The HTTP status this rejection is answered with.
    pub fn status(self) -> u16 {
        self.failure().status
    }
}

impl std::fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionRejection::Unavailable => "session store unavailable",
            SessionRejection::MissingLayer => "session layer missing",
            SessionRejection::NoClientIp => "no client address for IP binding",
        })
    }
}

impl std::error::Error for SessionRejection {}

enum Slot {
    Unloaded,
    Loaded(Box<ActiveSession>),
    Failed(SessionRejection),
}

/// What the integrations put in the request's extensions: the means to load the session once.
#[derive(Clone)]
struct LazySession {
    inner: Arc<LazyInner>,
}

struct LazyInner {
    lifecycle: Arc<dyn Lifecycle>,
    request: RequestInfo,
    slot: Mutex<Slot>,
}

impl LazySession {
    fn new(lifecycle: Arc<dyn Lifecycle>, request: RequestInfo) -> Self {
        LazySession {
            inner: Arc::new(LazyInner {
                lifecycle,
                request,
                slot: Mutex::new(Slot::Unloaded),
            }),
        }
    }

    /// The session, loading it on first use; why not when it could not be loaded (logged).
    async fn get(&self) -> Result<Session, SessionRejection> {
        let mut slot = self.inner.slot.lock().await;
        match &*slot {
            Slot::Loaded(active) => return Ok(active.session().clone()),
            Slot::Failed(rejection) => return Err(*rejection),
            Slot::Unloaded => {}
        }
        match self.inner.lifecycle.load(&self.inner.request).await {
            Ok(active) => {
                let session = active.session().clone();
                *slot = Slot::Loaded(Box::new(active));
                Ok(session)
            }
            Err(Error::NoClientIp) => {
                // The manager logged the misconfiguration once; not again per request.
                tracing::debug!("session not loaded: no client address for IP binding");
                *slot = Slot::Failed(SessionRejection::NoClientIp);
                Err(SessionRejection::NoClientIp)
            }
            Err(err) => {
                tracing::error!(error = %err, "session could not be loaded");
                *slot = Slot::Failed(SessionRejection::Unavailable);
                Err(SessionRejection::Unavailable)
            }
        }
    }

    async fn take(&self) -> Option<ActiveSession> {
        let mut slot = self.inner.slot.lock().await;
        match std::mem::replace(&mut *slot, Slot::Unloaded) {
            Slot::Loaded(active) => Some(*active),
            Slot::Unloaded | Slot::Failed(_) => None,
        }
    }
}

/// The session from a lazy handle found (or not) in a request's extensions.
async fn session_of(lazy: Option<LazySession>) -> Result<Session, SessionRejection> {
    lazy.ok_or(SessionRejection::MissingLayer)?.get().await
}

#[cfg(test)]
mod tests;
