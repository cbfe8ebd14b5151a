//! The tower layer on its own: laziness, 5xx handling, optional extraction, concrete stores.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use sessionkit::store::{MemoryStore, TieredStore};
use sessionkit::web::SessionLayer;
use sessionkit::{Session, SessionConfig, SessionManager, Store};
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
