//! The tower layer on its own: laziness, 5xx handling, optional extraction, concrete stores.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use sessionkit::store::{MemoryStore, TieredStore};
use sessionkit::web::SessionLayer;
use sessionkit::{Error, Limits, Session, SessionConfig, SessionManager, Store};
use sessionkit_tests::counting::CountingStore;
use sessionkit_tests::failing::FailingStore;

type Probe = CountingStore<FailingStore<TieredStore<MemoryStore, MemoryStore>>>;

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
    Arc::new(CountingStore::new(FailingStore::new(TieredStore::new(
        MemoryStore::new(),
        MemoryStore::new(),
    ))))
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
    let before = store.counts();
    for _ in 0..5 {
        let res = get_with(&base, "/plain", Some(&cookie)).await;
        assert!(res.headers().get("set-cookie").is_none());
        assert!(res.headers().get("vary").is_none());
    }
    assert_eq!(store.counts(), before);
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
    store.inner().set_all(true);
    let res = get_with(&base, "/count", Some(&cookie)).await;
    assert_eq!(res.status(), 503);
    assert!(!res.text().await.unwrap().is_empty(), "a 503 that says why");
    let res = get_with(&base, "/optional", Some(&cookie)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "without session");
    store.inner().set_all(false);
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
