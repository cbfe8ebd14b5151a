//! The tower layer and service.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE, USER_AGENT, VARY};
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::{LazySession, Lifecycle};
use crate::manager::{Outcome, RequestInfo, SessionManager};
use crate::proxy::TrustedProxies;
use crate::store::Store;

/// Runs the session lifecycle around every request of the wrapped service.
///
/// See the [module docs](super) for what it does and an example.
#[derive(Clone)]
pub struct SessionLayer {
    lifecycle: Arc<dyn Lifecycle>,
    trusted_proxies: Arc<TrustedProxies>,
    save_on_server_error: bool,
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("trusted_proxies", &self.trusted_proxies)
            .field("save_on_server_error", &self.save_on_server_error)
            .finish_non_exhaustive()
    }
}

impl SessionLayer {
    /// A layer around `manager`. Works with any store, `Arc<dyn Store>` included.
    pub fn new<S: Store + 'static>(manager: SessionManager<S>) -> Self {
        SessionLayer {
            lifecycle: Arc::new(manager),
            trusted_proxies: Arc::new(TrustedProxies::new()),
            save_on_server_error: false,
        }
    }

    /// The reverse proxies whose forwarding header (`X-Forwarded-For` by default, or
    /// `Forwarded`) is believed. Default: none, so the client is always the connection's
    /// address ([`ConnectInfo<SocketAddr>`](ConnectInfo)).
    ///
    /// The header is read only on connections **from** one of these addresses, and walked
    /// from the right past trusted proxies; see [`crate::proxy`] for the rule. A client that
    /// connects directly and sends `X-Forwarded-For: <someone else's address>` is still
    /// identified by its own address.
    ///
    /// (This replaces `with_trusted_proxy_hops`, which trusted the header by counting hops
    /// whoever sent it, so a client connecting directly could claim any address.)
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
        self.trusted_proxies = Arc::new(proxies);
        self
    }

    /// Whether a response with a 5xx status still saves the session (default `false`: a
    /// handler that failed half-way does not persist half its changes). Either way a logout
    /// ([`Session::destroy`](crate::Session::destroy)) or an id regeneration the handler asked
    /// for is carried out (see [`SessionManager::finish_failed`]).
    #[must_use]
    pub fn with_save_on_server_error(mut self, save: bool) -> Self {
        self.save_on_server_error = save;
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

/// The client address: the connection's, or the one its trusted proxies reported. Without
/// the connection's address nothing in the headers can be trusted, so there is none.
fn client_ip(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    proxies: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = peer?;
    let values = headers
        .get_all(proxies.header().name())
        .into_iter()
        .map(HeaderValue::as_bytes);
    Some(proxies.client_ip(peer, values))
}

fn request_info<B>(req: &Request<B>, proxies: &TrustedProxies) -> RequestInfo {
    let headers = req.headers();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    RequestInfo {
        cookie_headers: headers
            .get_all(COOKIE)
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect(),
        client_ip: client_ip(headers, peer, proxies),
        user_agent: headers.get(USER_AGENT).map(|v| v.as_bytes().to_vec()),
    }
}

fn apply_outcome(headers: &mut HeaderMap, outcome: &Outcome) -> Result<(), String> {
    if let Some(cookie) = &outcome.set_cookie {
        let value = HeaderValue::from_str(cookie).map_err(|e| e.to_string())?;
        headers.append(SET_COOKIE, value);
    }
    if outcome.cache_control_no_store {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if outcome.vary_cookie {
        headers.append(VARY, HeaderValue::from_static("cookie"));
    }
    Ok(())
}

/// The one "store unavailable" response, from the layer (a failed save) and from the
/// extractors (a failed load): `503`, `Cache-Control: no-store`, `Retry-After: 1`.
pub(super) fn unavailable() -> Response<Body> {
    let mut res = Response::new(Body::from("session store unavailable, please retry"));
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    res
}

/// The response for a save that failed with `err`. A session over its
/// [`Limits`](crate::Limits) is the application's (or the visitor's) doing, not an outage:
/// retrying cannot help, so it is a `500` without `Retry-After`. A memory store at its entry
/// bound and every store failure are a `503` with `Retry-After`.
fn save_failed(err: &crate::Error) -> Response<Body> {
    match err {
        crate::Error::LimitExceeded { limit, .. } if *limit != crate::Limit::Entries => {
            let mut res = Response::new(Body::from("session data over its configured limit"));
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        _ => unavailable(),
    }
}

impl<I, B> Service<Request<B>> for SessionService<I>
where
    I: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    I::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = I::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let lazy = LazySession::new(
            self.layer.lifecycle.clone(),
            request_info(&req, &self.layer.trusted_proxies),
        );
        req.extensions_mut().insert(lazy.clone());
        // The clone that was made ready is the one to call; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let lifecycle = self.layer.lifecycle.clone();
        let save_on_server_error = self.layer.save_on_server_error;
        Box::pin(async move {
            let mut res = inner.call(req).await?;
            let Some(active) = lazy.take().await else {
                return Ok(res);
            };
            if res.status().is_server_error() && !save_on_server_error {
                // Nothing the handler stored is saved, but a logout or a login's id change it
                // asked for is still carried out.
                match lifecycle.finish_failed(active).await {
                    Ok(outcome) => {
                        if let Err(err) = apply_outcome(res.headers_mut(), &outcome) {
                            tracing::error!(error = %err, "session cookie could not be sent");
                        }
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "a failed request's session could not be finished");
                    }
                }
                return Ok(res);
            }
            match lifecycle.finish(active).await {
                Ok(outcome) => {
                    if let Err(err) = apply_outcome(res.headers_mut(), &outcome) {
                        tracing::error!(error = %err, "session cookie could not be sent");
                        return Ok(unavailable());
                    }
                    Ok(res)
                }
                Err(err) => {
                    tracing::error!(error = %err, "session could not be saved");
                    Ok(save_failed(&err))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_headers_count_only_from_trusted_peers() {
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 192.0.2.1"),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        h.append("forwarded", HeaderValue::from_static("for=198.51.100.1"));
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(client_ip(&h, ip("10.0.0.1"), &proxies), ip("192.0.2.1"));
        assert_eq!(
            client_ip(&h, ip("203.0.113.9"), &proxies),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(&h, None, &proxies),
            None,
            "no peer: nothing to trust"
        );
        assert_eq!(
            client_ip(&h, ip("10.0.0.1"), &TrustedProxies::new()),
            ip("10.0.0.1")
        );
        let forwarded = proxies.with_header(crate::proxy::ForwardedHeader::Forwarded);
        assert_eq!(
            client_ip(&h, ip("10.0.0.1"), &forwarded),
            ip("198.51.100.1")
        );
    }
}
