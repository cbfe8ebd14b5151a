//! Raw ids never appear in `Debug` output (issue 16, item 6; SEC-16, SEC-29): an application
//! that logs the request or response types with `{:?}` must not write session ids to its logs.
//!
//! Run: `cargo nextest run -p sessionkit-tests --test test_redaction`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use sessionkit::{MemoryStore, RequestInfo, SessionConfig, SessionManager};

#[tokio::test]
async fn request_and_outcome_debug_never_show_the_id() {
    let manager =
        SessionManager::new(MemoryStore::new(), SessionConfig::default()).expect("config");
    let active = manager.load(&RequestInfo::new()).await.expect("load");
    active.session().insert("k", 1).expect("insert");
    let outcome = manager.finish(active).await.expect("finish");
    let set_cookie = outcome.set_cookie.clone().expect("a cookie");
    let pair = set_cookie.split(';').next().expect("pair");
    let (name, id) = pair.split_once('=').expect("name=value");

    let shown = format!("{outcome:?} {outcome:#?}");
    assert!(
        !shown.contains(id),
        "Outcome's Debug prints the id: {shown}"
    );
    assert!(
        shown.contains(name) && shown.contains("HttpOnly"),
        "{shown}"
    );

    let request = RequestInfo::new()
        .with_cookie_header(format!("theme=dark; {pair}"))
        .with_cookie_header(pair.to_owned())
        .with_user_agent("Mozilla/5.0");
    let shown = format!("{request:?} {request:#?}");
    assert!(
        !shown.contains(id),
        "RequestInfo's Debug prints the id: {shown}"
    );
    assert!(
        !shown.contains("dark"),
        "cookie values are redacted: {shown}"
    );
    assert!(
        shown.contains("theme") && shown.contains("Mozilla/5.0"),
        "{shown}"
    );

    let active = manager.load(&request).await.expect("load");
    let shown = format!("{active:?} {active:#?} {:?}", active.session());
    assert!(
        !shown.contains(id),
        "ActiveSession's Debug prints the id: {shown}"
    );
    manager.finish(active).await.expect("finish");
}
