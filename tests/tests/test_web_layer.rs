//! The tower layer on its own: laziness, 5xx handling, optional extraction, concrete stores,
//! and where the client address for IP binding comes from.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use sessionkit::proxy::{ForwardedHeader, TrustedProxies};
use sessionkit::store::{MemoryStore, TieredStore};
use sessionkit::web::SessionLayer;
use sessionkit::{Error, IpBinding, Limits, Session, SessionConfig, SessionManager, Store};
use sessionkit_tests::probe;

type Probe = probe::Probe<TieredStore<MemoryStore, MemoryStore>>;

async fn count(session: Session) -> String {
    let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
    let _ = session.insert("n", n);
    n.to_string()
}

async fn no_session() -> &'static str {
    "no session needed"
}

async fn write_then_fail(session: Session) -> StatusCode {
    let _ = session.insert("n", 1000u64);
    StatusCode::INTERNAL_SERVER_ERROR
}

/// Sets a value over the test layer's 1 KiB value limit through `insert`, which refuses it:
/// the handler sees the error and answers 413 itself.
async fn too_large(session: Session) -> StatusCode {
    match session.insert("blob", "x".repeat(2000)) {
        Err(Error::LimitExceeded { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        Ok(()) => StatusCode::OK,
    }
}

/// Gets the same value in through `update`, a setter that cannot fail: only the save
/// finds it.
async fn too_large_unchecked(session: Session) -> &'static str {
    let scratch = Session::new();
    let _ = scratch.insert("blob", "x".repeat(2000));
    session.update(&scratch);
    "handler done"
}

async fn optional(session: Option<Session>) -> String {
    match session {
        Some(_) => "with session".into(),
        None => "without session".into(),
    }
}

async fn serve(layer: SessionLayer) -> String {
    let app = Router::new()
        .route("/count", get(count))
        .route("/plain", get(no_session))
        .route("/fail", get(write_then_fail))
        .route("/optional", get(optional))
        .route("/too-large", get(too_large))
        .route("/too-large-unchecked", get(too_large_unchecked))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    format!("http://{addr}")
}

fn probe() -> Arc<Probe> {
    Arc::new(probe::Probe::new(TieredStore::new(
        MemoryStore::new(),
        MemoryStore::new(),
    )))
}

/// A layer over a concrete `TieredStore` (through an `Arc` of it, so the test can count).
fn layer(store: Arc<Probe>, save_on_error: bool) -> SessionLayer {
    let manager = SessionManager::new(store, SessionConfig::default().with_secure(false)).unwrap();
    SessionLayer::new(manager).with_save_on_server_error(save_on_error)
}

async fn get_with(base: &str, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::new();
    let mut req = client.get(format!("{base}{path}"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

fn cookie_of(res: &reqwest::Response) -> String {
    let sc = res.headers()["set-cookie"].to_str().unwrap();
    sc.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_that_never_ask_cost_no_store_access() {
    let store = probe();
    let base = serve(layer(store.clone(), false)).await;
    let first = get_with(&base, "/count", None).await;
    let cookie = cookie_of(&first);
    // Counters only grow: an equal sum means no count changed.
    let before = store.counts().request_calls();
    for _ in 0..5 {
        let res = get_with(&base, "/plain", Some(&cookie)).await;
        assert!(res.headers().get("set-cookie").is_none());
        assert!(res.headers().get("vary").is_none());
    }
    assert_eq!(store.counts().request_calls(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_that_read_the_session_vary_on_cookie() {
    let base = serve(layer(probe(), false)).await;
    let res = get_with(&base, "/count", None).await;
    assert_eq!(res.headers()["cache-control"], "no-store");
    let vary: Vec<_> = res.headers().get_all("vary").iter().collect();
    assert!(
        vary.iter()
            .any(|v| v.to_str().unwrap().eq_ignore_ascii_case("cookie"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_do_not_save_unless_configured() {
    for save_on_error in [false, true] {
        let store = probe();
        let base = serve(layer(store.clone(), save_on_error)).await;
        let cookie = cookie_of(&get_with(&base, "/count", None).await);
        let res = get_with(&base, "/fail", Some(&cookie)).await;
        assert_eq!(res.status(), 500);
        let next = get_with(&base, "/count", Some(&cookie))
            .await
            .text()
            .await
            .unwrap();
        let expected = if save_on_error { "1001" } else { "2" };
        assert_eq!(next, expected, "save_on_server_error = {save_on_error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_is_a_503_or_no_session_for_optional_extractors() {
    let store = probe();
    let base = serve(layer(store.clone(), false)).await;
    let cookie = cookie_of(&get_with(&base, "/count", None).await);
    store.set_all(true);
    let res = get_with(&base, "/count", Some(&cookie)).await;
    assert_eq!(res.status(), 503);
    // The extractor's 503 is the layer's: retry soon, and no cache keeps it.
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(!res.text().await.unwrap().is_empty(), "a 503 that says why");
    let res = get_with(&base, "/optional", Some(&cookie)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "without session");
    store.set_all(false);
    let res = get_with(&base, "/count", Some(&cookie)).await;
    assert_eq!(res.text().await.unwrap(), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_takes_any_store_form() {
    // Concrete tiered store, an Arc<dyn Store>, and a Box<dyn Store> all make a layer.
    let concrete = SessionManager::new(
        TieredStore::new(MemoryStore::new(), MemoryStore::new()),
        SessionConfig::default(),
    )
    .unwrap();
    let dynamic: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let boxed: Box<dyn Store> = Box::new(MemoryStore::new());
    for layer in [
        SessionLayer::new(concrete),
        SessionLayer::new(SessionManager::new(dynamic, SessionConfig::default()).unwrap()),
        SessionLayer::new(SessionManager::new(boxed, SessionConfig::default()).unwrap()),
    ] {
        let base = serve(layer).await;
        let res = get_with(&base, "/count", None).await;
        let sc = res.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(sc.contains("Secure"), "the library default is Secure: {sc}");
        assert_eq!(res.text().await.unwrap(), "1");
    }
}

/// A session over its size limit is the handler's (or the visitor's) doing, not an outage:
/// the handler sees the error where it sets the value; a value only the save finds makes the
/// response a 500 without `Retry-After` (never the store-outage 503), and nothing is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_over_its_limit_is_not_a_503() {
    let store = probe();
    let config = SessionConfig::default()
        .with_secure(false)
        .with_limits(Limits::default().with_max_value_bytes(1024));
    let manager = SessionManager::new(store.clone(), config).unwrap();
    let base = serve(SessionLayer::new(manager)).await;
    let cookie = cookie_of(&get_with(&base, "/count", None).await);

    let res = get_with(&base, "/too-large", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let writes = store.counts().writes();
    let res = get_with(&base, "/too-large-unchecked", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.headers().get("retry-after").is_none());
    assert!(
        res.text().await.unwrap().contains("limit"),
        "a 500 that says why"
    );
    assert_eq!(
        store.counts().writes(),
        writes,
        "the oversized session was written"
    );
    let res = get_with(&base, "/count", Some(&cookie)).await;
    assert_eq!(
        res.text().await.unwrap(),
        "2",
        "the session survives, without the blob"
    );
}
/// A layer binding sessions to the exact client IP, believing forwarding headers from `proxies`.
fn bound_layer(proxies: TrustedProxies) -> SessionLayer {
    let config = SessionConfig::default()
        .with_secure(false)
        .with_ip_binding(IpBinding::Exact);
    let manager = SessionManager::new(MemoryStore::new(), config).unwrap();
    SessionLayer::new(manager).with_trusted_proxies(proxies)
}

/// `GET /count` from the loopback address `from` (all of 127.0.0.0/8 is local on Linux),
/// with a cookie and a forwarding header (`name: value`) if given.
async fn count_from(
    base: &str,
    from: &str,
    cookie: &str,
    forwarded: Option<(&str, &str)>,
) -> String {
    let from: IpAddr = from.parse().unwrap();
    let client = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let mut req = client.get(format!("{base}/count")).header("cookie", cookie);
    if let Some((name, value)) = forwarded {
        req = req.header(name, value);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// SEC-27: the victim reaches the site through the trusted proxy at 127.0.0.1, which reports
/// their address in `X-Forwarded-For`. An attacker holding the victim's cookie who connects
/// directly and claims the victim's address in the same header fails the IP binding (a fresh
/// session); so does one who goes through the proxy, whose real address the proxy appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_client_cannot_claim_the_victims_address() {
    let base = serve(bound_layer(TrustedProxies::parse("127.0.0.1").unwrap())).await;
    let victim = ("x-forwarded-for", "198.51.100.7");
    let client = reqwest::Client::builder()
        .local_address("127.0.0.1".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let first = client
        .get(format!("{base}/count"))
        .header(victim.0, victim.1)
        .send()
        .await
        .unwrap();
    let cookie = cookie_of(&first);
    assert_eq!(
        count_from(&base, "127.0.0.1", &cookie, Some(victim)).await,
        "2"
    );
    // Direct, spoofing the victim's address.
    assert_eq!(
        count_from(&base, "127.0.0.3", &cookie, Some(victim)).await,
        "1"
    );
    // Direct, with no header: its own address.
    assert_eq!(count_from(&base, "127.0.0.3", &cookie, None).await, "1");
    // Through the proxy, with the victim's address prepended by the attacker.
    let prepended = ("x-forwarded-for", "198.51.100.7, 203.0.113.9");
    assert_eq!(
        count_from(&base, "127.0.0.1", &cookie, Some(prepended)).await,
        "1"
    );
    // The victim, through the proxy, still has their session.
    assert_eq!(
        count_from(&base, "127.0.0.1", &cookie, Some(victim)).await,
        "3"
    );
}

/// SEC-27: a chain of two trusted proxies is walked from the right, in the RFC 7239
/// `Forwarded` form too, and the other header is then ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_trusted_proxies_reports_the_client() {
    let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8")
        .unwrap()
        .with_header(ForwardedHeader::Forwarded);
    let base = serve(bound_layer(proxies)).await;
    let client = reqwest::Client::new();
    let first = client
        .get(format!("{base}/count"))
        .header("forwarded", "for=\"[2001:db8::7]:5151\", for=10.1.1.1")
        .send()
        .await
        .unwrap();
    let cookie = cookie_of(&first);
    let victim = (
        "forwarded",
        "for=\"[2001:db8::7]:1\";proto=https, for=10.2.2.2:80",
    );
    assert_eq!(
        count_from(&base, "127.0.0.1", &cookie, Some(victim)).await,
        "2"
    );
    // X-Forwarded-For is not read when Forwarded is configured.
    let other = ("x-forwarded-for", "2001:db8::7");
    assert_eq!(
        count_from(&base, "127.0.0.1", &cookie, Some(other)).await,
        "1"
    );
    // Direct from an untrusted address: the header is ignored.
    assert_eq!(
        count_from(&base, "127.0.0.4", &cookie, Some(victim)).await,
        "1"
    );
}

/// IP binding on, but the server does not pass connection info to the layer: every request
/// would share one "no address" binding. It fails loudly instead, with a 500 that says why,
/// also for handlers that accept `Option<Session>`; with binding off the same server works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_without_a_client_address_fails_loudly() {
    for check_ip in [true, false] {
        let config = SessionConfig::default()
            .with_secure(false)
            .with_check_ip(check_ip);
        let manager = SessionManager::new(MemoryStore::new(), config).unwrap();
        let app = Router::new()
            .route("/count", get(count))
            .route("/optional", get(optional))
            .layer(SessionLayer::new(manager));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            // No `into_make_service_with_connect_info`: the layer sees no peer address.
            let _ = axum::serve(listener, app).await;
        });
        let res = get_with(&base, "/count", None).await;
        if !check_ip {
            assert_eq!(res.status(), 200);
            continue;
        }
        assert_eq!(res.status(), 500);
        assert!(res.headers().get("set-cookie").is_none());
        assert!(res.text().await.unwrap().contains("client address"));
        let res = get_with(&base, "/optional", None).await;
        assert_eq!(res.status(), 500, "not silently run without a session");
    }
}

/// The same behaviour through the actix-web middleware: one save path, one set of error
/// responses, over the same manager.
mod actix {
    use actix_web::dev::{Service, ServiceResponse};
    use actix_web::http::StatusCode;
    use actix_web::{App, HttpResponse, test, web};
    use sessionkit::web::actix::SessionMiddleware;

    use super::{Arc, Error, Limits, Probe, Session, SessionConfig, SessionManager, probe};

    /// A response through the middleware: the handler's body, or the middleware's own.
    type Res = ServiceResponse<actix_web::body::EitherBody<actix_web::body::BoxBody>>;

    async fn count(session: Session) -> String {
        super::count(session).await
    }

    async fn write_then_fail(session: Session) -> HttpResponse {
        let _ = session.insert("n", 1000u64);
        HttpResponse::InternalServerError().finish()
    }

    async fn too_large(session: Session) -> HttpResponse {
        match session.insert("blob", "x".repeat(2000)) {
            Err(Error::LimitExceeded { .. }) => HttpResponse::PayloadTooLarge().finish(),
            Err(_) => HttpResponse::InternalServerError().finish(),
            Ok(()) => HttpResponse::Ok().finish(),
        }
    }

    async fn too_large_unchecked(session: Session) -> &'static str {
        super::too_large_unchecked(session).await
    }

    async fn optional(session: Option<Session>) -> String {
        super::optional(session).await
    }

    fn middleware(
        store: Arc<Probe>,
        config: SessionConfig,
        save_on_error: bool,
    ) -> SessionMiddleware {
        let manager = SessionManager::new(store, config.with_secure(false)).unwrap();
        SessionMiddleware::new(manager).with_save_on_server_error(save_on_error)
    }

    async fn app(
        middleware: SessionMiddleware,
    ) -> impl Service<actix_http::Request, Response = Res, Error = actix_web::Error> {
        test::init_service(
            App::new()
                .wrap(middleware)
                .route("/count", web::get().to(count))
                .route("/fail", web::get().to(write_then_fail))
                .route("/optional", web::get().to(optional))
                .route("/too-large", web::get().to(too_large))
                .route("/too-large-unchecked", web::get().to(too_large_unchecked)),
        )
        .await
    }

    async fn get(
        app: &impl Service<actix_http::Request, Response = Res, Error = actix_web::Error>,
        path: &str,
        cookie: Option<&str>,
    ) -> Res {
        let mut req = test::TestRequest::get().uri(path);
        if let Some(cookie) = cookie {
            req = req.insert_header(("cookie", cookie));
        }
        test::call_service(app, req.to_request()).await
    }

    fn cookie_of(res: &Res) -> String {
        let sc = res.headers().get("set-cookie").unwrap().to_str().unwrap();
        sc.split(';').next().unwrap().to_owned()
    }

    async fn body(res: Res) -> String {
        String::from_utf8(test::read_body(res).await.to_vec()).unwrap()
    }

    #[actix_web::test]
    async fn server_errors_do_not_save_unless_configured() {
        for save_on_error in [false, true] {
            let app = app(middleware(probe(), SessionConfig::default(), save_on_error)).await;
            let cookie = cookie_of(&get(&app, "/count", None).await);
            let res = get(&app, "/fail", Some(&cookie)).await;
            assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let next = body(get(&app, "/count", Some(&cookie)).await).await;
            let expected = if save_on_error { "1001" } else { "2" };
            assert_eq!(next, expected, "save_on_server_error = {save_on_error}");
        }
    }

    #[actix_web::test]
    async fn a_failing_store_is_a_503_or_no_session_for_optional_extractors() {
        let store = probe();
        let app = app(middleware(store.clone(), SessionConfig::default(), false)).await;
        let cookie = cookie_of(&get(&app, "/count", None).await);
        store.set_all(true);
        let res = get(&app, "/count", Some(&cookie)).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get("retry-after").unwrap(), "1");
        assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
        assert!(!body(res).await.is_empty(), "a 503 that says why");
        let res = get(&app, "/optional", Some(&cookie)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body(res).await, "without session");
        store.set_all(false);
        assert_eq!(body(get(&app, "/count", Some(&cookie)).await).await, "2");
    }

    #[actix_web::test]
    async fn a_session_over_its_limit_is_not_a_503() {
        let store = probe();
        let config =
            SessionConfig::default().with_limits(Limits::default().with_max_value_bytes(1024));
        let app = app(middleware(store.clone(), config, false)).await;
        let cookie = cookie_of(&get(&app, "/count", None).await);
        let res = get(&app, "/too-large", Some(&cookie)).await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let writes = store.counts().writes();
        let res = get(&app, "/too-large-unchecked", Some(&cookie)).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.headers().get("retry-after").is_none());
        assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
        assert!(body(res).await.contains("limit"), "a 500 that says why");
        assert_eq!(
            store.counts().writes(),
            writes,
            "the oversized session was written"
        );
        assert_eq!(body(get(&app, "/count", Some(&cookie)).await).await, "2");
    }
}
