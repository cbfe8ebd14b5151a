//! The tower layer and service, generic over request and response bodies.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{COOKIE, USER_AGENT};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::{Failure, Finish, LazySession, SessionRejection, Shared};
use crate::manager::SessionManager;
use crate::proxy::TrustedProxies;
use crate::session::Session;
use crate::store::Store;

/// How the layer learns the address of the connection a request came on, from the request's
/// parts (usually an extension the server put there). See [`SessionLayer::with_peer_ip`].
pub type PeerIp = Arc<dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync>;

/// Runs the session lifecycle around every request of the wrapped service.
///
/// Generic over the request body and the response body (any body that can be built from a
/// `&'static str`, for the layer's own error responses). See the [module docs](super) for
/// what it does and examples.
#[derive(Clone)]
pub struct SessionLayer {
    shared: Shared,
    peer_ip: PeerIp,
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("trusted_proxies", &self.shared.trusted_proxies)
            .field("save_on_server_error", &self.shared.save_on_server_error)
            .finish_non_exhaustive()
    }
}

/// The default [`PeerIp`]: axum's `ConnectInfo<SocketAddr>` when the `axum` feature is on;
/// nothing otherwise (no tower framework has one standard place for it).
fn default_peer_ip(parts: &Parts) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    {
        parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|axum::extract::ConnectInfo(addr)| addr.ip())
    }
    #[cfg(not(feature = "axum"))]
    {
        let _ = parts;
        None
    }
}

impl SessionLayer {
    /// A layer around `manager`. Works with any store, `Arc<dyn Store>` included.
    pub fn new<S: Store + 'static>(manager: SessionManager<S>) -> Self {
        SessionLayer {
            shared: Shared::new(manager),
            peer_ip: Arc::new(default_peer_ip),
        }
    }

    /// The reverse proxies whose forwarding header (`X-Forwarded-For` by default, or
    /// `Forwarded`) is believed. Default: none, so the client is always the connection's
    /// address (see [`with_peer_ip`](Self::with_peer_ip)).
    ///
    /// The header is read only on connections **from** one of these addresses, and walked
    /// from the right past trusted proxies; see [`crate::proxy`] for the rule. A client that
    /// connects directly and sends `X-Forwarded-For: <someone else's address>` is still
    /// identified by its own address.
    ///
    /// ```
    /// use sessionkit::proxy::TrustedProxies;
    /// use sessionkit::web::SessionLayer;
    /// use sessionkit::{MemoryStore, SessionConfig, SessionManager};
    ///
    /// let config = SessionConfig::default().with_check_ip(true);
    /// let manager = SessionManager::new(MemoryStore::new(), config)?;
    /// let layer = SessionLayer::new(manager)
    ///     .with_trusted_proxies(TrustedProxies::parse("10.0.0.0/8, ::1")?);
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    #[must_use]
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.shared.trusted_proxies = Arc::new(proxies);
        self
    }

    /// Where the connection's address is found in a request. Default: axum's
    /// `ConnectInfo<SocketAddr>` extension with the `axum` feature, none without it. Other
    /// servers put the peer address in an extension of their own; name it here. Forwarding
    /// headers are then believed only from the [trusted proxies](Self::with_trusted_proxies).
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use sessionkit::web::SessionLayer;
    /// use sessionkit::{MemoryStore, SessionConfig, SessionManager};
    ///
    /// /// What this application's server inserts into every request.
    /// #[derive(Clone)]
    /// struct Peer(SocketAddr);
    ///
    /// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default())?;
    /// let layer = SessionLayer::new(manager)
    ///     .with_peer_ip(|parts| parts.extensions.get::<Peer>().map(|p| p.0.ip()));
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    #[must_use]
    pub fn with_peer_ip(
        mut self,
        peer_ip: impl Fn(&Parts) -> Option<IpAddr> + Send + Sync + 'static,
    ) -> Self {
        self.peer_ip = Arc::new(peer_ip);
        self
    }

    /// Whether a response with a 5xx status still saves the session (default `false`: a
    /// handler that failed half-way does not persist half its changes). Either way a logout
    /// ([`Session::destroy`](crate::Session::destroy)) or an id regeneration the handler asked
    /// for is carried out (see [`SessionManager::finish_failed`]).
    #[must_use]
    pub fn with_save_on_server_error(mut self, save: bool) -> Self {
        self.shared.save_on_server_error = save;
        self
    }
}

impl<I> Layer<I> for SessionLayer {
    type Service = SessionService<I>;

    fn layer(&self, inner: I) -> Self::Service {
        SessionService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct SessionService<I> {
    inner: I,
    layer: SessionLayer,
}

/// An error response, the one way the tower layer and the axum extractors build one.
fn failure_response<B: From<&'static str>>(failure: Failure) -> Response<B> {
    let mut res = Response::new(B::from(failure.body));
    *res.status_mut() =
        StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = res.headers_mut();
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    if let Some(seconds) = failure.retry_after() {
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static(seconds));
    }
    res
}

impl SessionRejection {
    /// The response this rejection is answered with (`503` with `Retry-After`, or `500`;
    /// always `Cache-Control: no-store`), for handlers of any tower framework that got it
    /// from [`Session::from_extensions`].
    pub fn into_http_response<B: From<&'static str>>(self) -> Response<B> {
        failure_response(self.failure())
    }
}

impl Session {
    /// The request's session, for handlers of any framework behind [`SessionLayer`]: loaded
    /// on the first call (later calls in the same request share it), saved by the layer after
    /// the handler. Pass the request's extensions (`req.extensions()` or
    /// `parts.extensions`).
    ///
    /// # Errors
    /// [`SessionRejection::Unavailable`] when the store failed (logged; answer with
    /// [`SessionRejection::into_http_response`], or go on without a session),
    /// [`SessionRejection::MissingLayer`] when the request did not pass through a
    /// [`SessionLayer`], [`SessionRejection::NoClientIp`] when IP binding is on and the layer
    /// found no client address.
    pub fn from_extensions(
        extensions: &http::Extensions,
    ) -> impl Future<Output = Result<Session, SessionRejection>> + Send + 'static {
        super::session_of(extensions.get::<LazySession>().cloned())
    }
}

impl<I, ReqB, ResB> Service<Request<ReqB>> for SessionService<I>
where
    I: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    I::Future: Send + 'static,
    ReqB: Send + 'static,
    ResB: From<&'static str> + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = I::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let shared = self.layer.shared.clone();
        let headers = &parts.headers;
        let info = shared.request_info(
            headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes),
            headers
                .get_all(shared.trusted_proxies.header().name())
                .iter()
                .map(HeaderValue::as_bytes),
            headers.get(USER_AGENT).map(HeaderValue::as_bytes),
            (self.layer.peer_ip)(&parts),
        );
        let lazy = LazySession::new(shared.lifecycle.clone(), info);
        parts.extensions.insert(lazy.clone());
        let req = Request::from_parts(parts, body);
        // The clone that was made ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut res = inner.call(req).await?;
            match shared.finish(&lazy, res.status().is_server_error()).await {
                None | Some(Finish::Untouched) => Ok(res),
                Some(Finish::Failed(failure)) => Ok(failure_response(failure)),
                Some(Finish::Headers {
                    outcome,
                    on_bad_header,
                }) => match super::apply_outcome!(res.headers_mut(), &outcome) {
                    Ok(()) => Ok(res),
                    Err(err) => {
                        tracing::error!(error = %err, "session cookie could not be sent");
                        Ok(on_bad_header.map_or(res, failure_response))
                    }
                },
            }
        })
    }
}

#[cfg(test)]
mod tests;
