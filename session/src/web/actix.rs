//! actix-web: [`SessionMiddleware`] and extractors for [`Session`], `Option<Session>` and
//! [`Typed`], with the behaviour of the tower layer (see the
//! [module docs](super)): the same lazy load, save, response headers and error responses,
//! through the same [`SessionManager`].
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use sessionkit::web::actix::SessionMiddleware;
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
//! HttpServer::new(move || {
//!     App::new()
//!         .wrap(SessionMiddleware::new(manager.clone()))
//!         .route("/", web::get().to(counter))
//! })
//! .bind(("127.0.0.1", 3000))?
//! .run()
//! .await?;
//! # Ok(()) }
//! ```
//!
//! The client address is the connection's peer address, or the one in the forwarding header
//! on connections from [trusted proxies](SessionMiddleware::with_trusted_proxies).
//!
//! `Option<Session>` is actix-web's own optional extractor: `None` whenever the session
//! cannot be had (the store is down, or the route is not behind the middleware), so the
//! handler can answer without one.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::StatusCode;
use actix_web::http::header::{
    CACHE_CONTROL, COOKIE, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};

use super::{Failure, Finish, LazySession, SessionRejection, Shared, Typed};
use crate::manager::SessionManager;
use crate::proxy::TrustedProxies;
use crate::session::Session;
use crate::store::Store;

/// Runs the session lifecycle around every request of an actix-web app or scope
/// (`App::wrap`). Cheap to clone: build it once, clone it into the server's app factory.
#[derive(Clone, Debug)]
pub struct SessionMiddleware {
    shared: Shared,
}

impl SessionMiddleware {
    /// A middleware around `manager`. Works with any store, `Arc<dyn Store>` included.
    pub fn new<S: Store + 'static>(manager: SessionManager<S>) -> Self {
        SessionMiddleware {
            shared: Shared::new(manager),
        }
    }

    /// The reverse proxies whose forwarding header is believed, as
    /// [`SessionLayer::with_trusted_proxies`](super::SessionLayer::with_trusted_proxies)
    /// (rule in [`crate::proxy`]). Default: none, so the client is always the peer address.
    ///
    /// ```
    /// use sessionkit::proxy::TrustedProxies;
    /// use sessionkit::web::actix::SessionMiddleware;
    /// use sessionkit::{MemoryStore, SessionConfig, SessionManager};
    ///
    /// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default())?;
    /// let middleware = SessionMiddleware::new(manager)
    ///     .with_trusted_proxies(TrustedProxies::parse("10.0.0.0/8")?);
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    #[must_use]
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.shared.trusted_proxies = Arc::new(proxies);
        self
    }

    /// Whether a response with a 5xx status still saves the session (default `false`); a
    /// logout or id regeneration is carried out either way, as
    /// [`SessionManager::finish_failed`] does.
    #[must_use]
    pub fn with_save_on_server_error(mut self, save: bool) -> Self {
        self.shared.save_on_server_error = save;
        self
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = SessionMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionMiddlewareService {
            service: Rc::new(service),
            shared: self.shared.clone(),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around the app's.
#[derive(Debug)]
pub struct SessionMiddlewareService<S> {
    service: Rc<S>,
    shared: Shared,
}

/// An error response, the one way the actix-web integration builds one.
fn failure_response(failure: Failure) -> HttpResponse {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = HttpResponse::build(status);
    res.insert_header((CACHE_CONTROL, "no-store"));
    if let Some(seconds) = failure.retry_after() {
        res.insert_header((RETRY_AFTER, seconds));
    }
    res.body(failure.body)
}

impl<S, B> Service<ServiceRequest> for SessionMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let shared = self.shared.clone();
        let headers = req.headers();
        let info = shared.request_info(
            headers.get_all(COOKIE).map(HeaderValue::as_bytes),
            headers
                .get_all(shared.trusted_proxies.header().name())
                .map(HeaderValue::as_bytes),
            headers.get(USER_AGENT).map(HeaderValue::as_bytes),
            req.peer_addr().map(|addr| addr.ip()),
        );
        let lazy = LazySession::new(shared.lifecycle.clone(), info);
        req.extensions_mut().insert(lazy.clone());
        let service = Rc::clone(&self.service);
        Box::pin(async move {
            let mut res = service.call(req).await?;
            match shared.finish(&lazy, res.status().is_server_error()).await {
                None | Some(Finish::Untouched) => Ok(res.map_into_left_body()),
                Some(Finish::Failed(failure)) => Ok(res
                    .into_response(failure_response(failure))
                    .map_into_right_body()),
                Some(Finish::Headers {
                    outcome,
                    on_bad_header,
                }) => match super::apply_outcome!(res.headers_mut(), &outcome) {
                    Ok(()) => Ok(res.map_into_left_body()),
                    Err(err) => {
                        tracing::error!(error = %err, "session cookie could not be sent");
                        Ok(match on_bad_header {
                            Some(failure) => res
                                .into_response(failure_response(failure))
                                .map_into_right_body(),
                            None => res.map_into_left_body(),
                        })
                    }
                },
            }
        })
    }
}

impl ResponseError for SessionRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        failure_response(self.failure())
    }
}

fn extract(req: &HttpRequest) -> impl Future<Output = Result<Session, SessionRejection>> + 'static {
    super::session_of(req.extensions().get::<LazySession>().cloned())
}

/// The request's session, loaded on first extraction; a `503` (with `Retry-After`) when the
/// store is down, a `500` when the route is not behind [`SessionMiddleware`].
impl FromRequest for Session {
    type Error = SessionRejection;
    type Future = Pin<Box<dyn Future<Output = Result<Session, SessionRejection>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        Box::pin(extract(req))
    }
}

/// The request's session as a typed struct; rejected as [`Session`] is.
impl<T: 'static> FromRequest for Typed<T> {
    type Error = SessionRejection;
    type Future = Pin<Box<dyn Future<Output = Result<Typed<T>, SessionRejection>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let session = extract(req);
        Box::pin(async move { Ok(Typed::new(session.await?)) })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{App, test, web};

    use super::*;
    use crate::{MemoryStore, SessionConfig};

    async fn count(session: Session) -> String {
        let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
        session.insert("n", n).map_err(|_| ()).ok();
        n.to_string()
    }

    async fn optional(session: Option<Session>) -> &'static str {
        if session.is_some() { "with" } else { "without" }
    }

    async fn plain() -> &'static str {
        "plain"
    }

    #[actix_web::test]
    async fn the_middleware_loads_lazily_and_saves() {
        let config = SessionConfig::default().with_secure(false);
        let manager = SessionManager::new(MemoryStore::new(), config).expect("valid config");
        let app = test::init_service(
            App::new()
                .wrap(SessionMiddleware::new(manager))
                .route("/count", web::get().to(count))
                .route("/optional", web::get().to(optional))
                .route("/plain", web::get().to(plain)),
        )
        .await;
        let res =
            test::call_service(&app, test::TestRequest::get().uri("/plain").to_request()).await;
        assert!(res.headers().get("set-cookie").is_none());
        assert!(res.headers().get("vary").is_none());

        let res =
            test::call_service(&app, test::TestRequest::get().uri("/count").to_request()).await;
        assert_eq!(
            res.headers()
                .get("cache-control")
                .expect("cache-control header"),
            "no-store"
        );
        assert_eq!(res.headers().get("vary").expect("vary header"), "cookie");
        let cookie = res
            .headers()
            .get("set-cookie")
            .expect("set-cookie header")
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("name=value")
            .to_owned();
        let res = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/count")
                .insert_header(("cookie", cookie))
                .to_request(),
        )
        .await;
        assert_eq!(test::read_body(res).await, "2");

        let res =
            test::call_service(&app, test::TestRequest::get().uri("/optional").to_request()).await;
        assert_eq!(test::read_body(res).await, "with");
    }

    #[actix_web::test]
    async fn a_route_outside_the_middleware_is_a_500_or_no_session() {
        let app = test::init_service(
            App::new()
                .route("/count", web::get().to(count))
                .route("/optional", web::get().to(optional)),
        )
        .await;
        let res =
            test::call_service(&app, test::TestRequest::get().uri("/count").to_request()).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            res.headers()
                .get("cache-control")
                .expect("cache-control header"),
            "no-store"
        );
        let res =
            test::call_service(&app, test::TestRequest::get().uri("/optional").to_request()).await;
        assert_eq!(test::read_body(res).await, "without");
    }
}
