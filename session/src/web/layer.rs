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
use crate::store::Store;

/// Runs the session lifecycle around every request of the wrapped service.
///
/// See the [module docs](super) for what it does and an example.
#[derive(Clone)]
pub struct SessionLayer {
    lifecycle: Arc<dyn Lifecycle>,
    trusted_proxy_hops: usize,
    save_on_server_error: bool,
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("trusted_proxy_hops", &self.trusted_proxy_hops)
            .field("save_on_server_error", &self.save_on_server_error)
            .finish_non_exhaustive()
    }
}

impl SessionLayer {
    /// A layer around `manager`. Works with any store, `Arc<dyn Store>` included.
    pub fn new<S: Store + 'static>(manager: SessionManager<S>) -> Self {
        SessionLayer {
            lifecycle: Arc::new(manager),
            trusted_proxy_hops: 0,
            save_on_server_error: false,
        }
    }

    /// How many reverse proxies in front of the app append to `X-Forwarded-For` and are
    /// trusted (default 0: the header is ignored and the connection's address is the client's).
    /// With `n` hops the client is the `n`-th address from the right.
    #[must_use]
    pub fn with_trusted_proxy_hops(mut self, hops: usize) -> Self {
        self.trusted_proxy_hops = hops;
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

/// The client address: the connection's, or the one the trusted proxies reported.
fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, hops: usize) -> Option<IpAddr> {
    if hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // Fewer entries than trusted hops means the request skipped a proxy: trust nothing in it.
    let index = forwarded.len().checked_sub(hops)?;
    forwarded.get(index).and_then(|s| s.parse().ok())
}

fn request_info<B>(req: &Request<B>, hops: usize) -> RequestInfo {
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
        client_ip: client_ip(headers, peer, hops),
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

fn unavailable() -> Response<Body> {
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
            request_info(&req, self.layer.trusted_proxy_hops),
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
    fn forwarded_for_is_trusted_only_for_configured_hops() {
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 10.0.0.1"),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        let peer: Option<IpAddr> = "127.0.0.1".parse().ok();
        assert_eq!(client_ip(&h, peer, 0), peer);
        assert_eq!(client_ip(&h, peer, 1), "10.0.0.2".parse().ok());
        assert_eq!(client_ip(&h, peer, 2), "10.0.0.1".parse().ok());
        assert_eq!(client_ip(&h, peer, 3), "6.6.6.6".parse().ok());
        assert_eq!(client_ip(&h, peer, 4), None);
        let mut bad = HeaderMap::new();
        bad.append("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(client_ip(&bad, peer, 1), None);
    }
}
