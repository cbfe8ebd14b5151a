//! The layer around a plain `tower::Service` (`service_fn`), with `String` bodies: no
//! axum anywhere (these run with `--no-default-features --features tower` in CI).

use std::convert::Infallible;
use std::net::SocketAddr;

use tower::{ServiceExt, service_fn};

use super::*;
use crate::{IpBinding, MemoryStore, SessionConfig};

/// Counts visits in the session it finds in the request's extensions.
async fn count(req: Request<String>) -> Result<Response<String>, Infallible> {
    match Session::from_extensions(req.extensions()).await {
        Ok(session) => {
            let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
            session.insert("n", n).map_err(|_| ()).ok();
            Ok(Response::new(n.to_string()))
        }
        Err(rejection) => Ok(rejection.into_http_response()),
    }
}

/// Never asks for the session.
async fn plain(_req: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new("plain".to_owned()))
}

/// The server's own peer-address extension.
#[derive(Clone)]
struct Peer(SocketAddr);

fn request(cookie: Option<&str>, peer: Option<&str>) -> Request<String> {
    let mut req = Request::new(String::new());
    if let Some(cookie) = cookie {
        req.headers_mut()
            .insert(COOKIE, HeaderValue::from_str(cookie).expect("valid cookie"));
    }
    if let Some(peer) = peer {
        req.extensions_mut()
            .insert(Peer(peer.parse().expect("socket address")));
    }
    req
}

fn cookie_of(res: &Response<String>) -> String {
    let set = res.headers()[http::header::SET_COOKIE]
        .to_str()
        .expect("ascii");
    set.split(';').next().expect("a name=value pair").to_owned()
}

fn layer(config: SessionConfig) -> SessionLayer {
    let config = config.with_secure(false);
    SessionLayer::new(SessionManager::new(MemoryStore::new(), config).expect("valid config"))
        .with_peer_ip(|parts| parts.extensions.get::<Peer>().map(|p| p.0.ip()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_tower_service_gets_a_session_through_extensions() {
    let svc = layer(SessionConfig::default()).layer(service_fn(count));
    let res = svc
        .clone()
        .oneshot(request(None, None))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "1");
    assert_eq!(res.headers()[http::header::CACHE_CONTROL], "no-store");
    assert_eq!(res.headers()[http::header::VARY], "cookie");
    let cookie = cookie_of(&res);
    let res = svc
        .oneshot(request(Some(&cookie), None))
        .await
        .expect("infallible");
    assert_eq!(
        res.body(),
        "2",
        "the saved session came back with its cookie"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_never_asks_gets_no_session_headers() {
    let svc = layer(SessionConfig::default()).layer(service_fn(plain));
    let res = svc.oneshot(request(None, None)).await.expect("infallible");
    assert_eq!(res.body(), "plain");
    assert!(res.headers().get(http::header::SET_COOKIE).is_none());
    assert!(res.headers().get(http::header::VARY).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_binding_uses_the_pluggable_peer_address() {
    let svc =
        layer(SessionConfig::default().with_ip_binding(IpBinding::Exact)).layer(service_fn(count));
    let res = svc
        .clone()
        .oneshot(request(None, Some("192.0.2.1:5000")))
        .await
        .expect("infallible");
    assert_eq!(res.body(), "1");
    let cookie = cookie_of(&res);
    let res = svc
        .clone()
        .oneshot(request(Some(&cookie), Some("192.0.2.1:5001")))
        .await
        .expect("infallible");
    assert_eq!(res.body(), "2", "same address, same session");
    let res = svc
        .clone()
        .oneshot(request(Some(&cookie), Some("198.51.100.7:5000")))
        .await
        .expect("infallible");
    assert_eq!(res.body(), "1", "another address gets a fresh session");
    // No peer address at all: a loud 500, not a session bound to nobody.
    let res = svc
        .oneshot(request(Some(&cookie), None))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()[http::header::CACHE_CONTROL], "no-store");
    assert!(res.headers().get(http::header::RETRY_AFTER).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outside_the_layer_is_told_so() {
    let res = service_fn(count)
        .oneshot(request(None, None))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.body(), "session layer missing for this route");
}

#[test]
fn a_503_says_when_to_retry_and_is_never_cached() {
    let res: Response<String> = SessionRejection::Unavailable.into_http_response();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[http::header::RETRY_AFTER], "1");
    assert_eq!(res.headers()[http::header::CACHE_CONTROL], "no-store");
}
