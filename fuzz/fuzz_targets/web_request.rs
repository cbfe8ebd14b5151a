//! The web layer: the input is read as `METHOD PATH\n` + header lines `name: value\n` up to
//! an empty line, then the body, and sent through the example site's router (its session
//! layer, extractors and handlers) on a MemoryStore. It must not panic and must never
//! answer with a 5xx (the store never fails here).
#![no_main]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use sessionkit::store::Store;
use sessionkit::{MemoryStore, SessionConfig, SessionManager};
use tower::ServiceExt as _;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let mut parts = first.splitn(2, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or(b"/");
    let mut builder = Request::builder()
        .method(axum::http::Method::from_bytes(method).unwrap_or(axum::http::Method::GET))
        .uri(std::str::from_utf8(path).unwrap_or("/"));
    let mut consumed = first.len() + 1;
    for line in lines.by_ref() {
        consumed += line.len() + 1;
        if line.is_empty() {
            break;
        }
        let mut kv = line.splitn(2, |&b| b == b':');
        let (Some(name), Some(value)) = (kv.next(), kv.next()) else {
            continue;
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            builder = builder.header(n, v);
        }
    }
    let body = data
        .get(consumed.min(data.len())..)
        .unwrap_or_default()
        .to_vec();
    let Ok(request) = builder.body(Body::from(body)) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let manager =
        SessionManager::new(store, SessionConfig::default().with_secure(false)).expect("config");
    let router = sessionkit_examples::site::router(manager);
    let response = rt.block_on(router.oneshot(request)).expect("infallible");
    assert!(response.status().as_u16() < 500, "{}", response.status());
});
