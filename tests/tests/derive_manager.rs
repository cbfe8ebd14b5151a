//! Typed sessions through the `SessionManager`, across requests: because `store` marks only
//! fields whose bytes changed, concurrent requests that change different fields both keep
//! their change.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use serde::{Deserialize, Serialize};
use sessionkit::{MemoryStore, RequestInfo, SessionConfig, SessionData, SessionManager};

fn cookie_of(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn typed_session_survives_across_requests() {
    #[derive(SessionData, Debug, PartialEq)]
    #[session(prefix = "shop")]
    struct Shopper {
        user_id: Option<u64>,
        #[session(default)]
        visits: u32,
    }

    let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default()).unwrap();
    let active = manager.load(&RequestInfo::new()).await.unwrap();
    let view = Shopper::view(active.session());
    view.set_user_id(Some(9)).unwrap();
    view.set_visits(1).unwrap();
    let outcome = manager.finish(active).await.unwrap();
    let cookie = cookie_of(&outcome.set_cookie.unwrap());

    let active = manager
        .load(&RequestInfo::new().with_cookie_header(cookie))
        .await
        .unwrap();
    assert_eq!(
        Shopper::load(active.session()).unwrap(),
        Shopper {
            user_id: Some(9),
            visits: 1
        }
    );
    // Reading and storing the same values back writes nothing.
    Shopper::load(active.session())
        .unwrap()
        .store(active.session())
        .unwrap();
    assert!(!active.session().is_modified());
    let outcome = manager.finish(active).await.unwrap();
    assert_eq!(outcome.set_cookie, None);
}

#[tokio::test]
async fn concurrent_requests_changing_different_fields_both_persist() {
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Item {
        sku: String,
    }

    #[derive(SessionData, Debug, Clone, PartialEq)]
    #[session(prefix = "shop")]
    struct Shopper {
        #[session(default)]
        visits: u32,
        #[session(default)]
        cart: Vec<Item>,
    }

    let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default()).unwrap();
    let active = manager.load(&RequestInfo::new()).await.unwrap();
    Shopper {
        visits: 1,
        cart: Vec::new(),
    }
    .store(active.session())
    .unwrap();
    let cookie = cookie_of(&manager.finish(active).await.unwrap().set_cookie.unwrap());
    let request = RequestInfo::new().with_cookie_header(cookie.clone());

    // Two requests of the same visitor load the same state.
    let counting = manager.load(&request).await.unwrap();
    let shopping = manager.load(&request).await.unwrap();

    // One stores the whole struct with only `visits` changed ...
    let mut shopper = Shopper::load(counting.session()).unwrap();
    shopper.visits += 1;
    shopper.store(counting.session()).unwrap();
    // ... the other adds to the cart through the view, and saves first.
    Shopper::view(shopping.session())
        .set_cart(vec![Item { sku: "tea".into() }])
        .unwrap();
    manager.finish(shopping).await.unwrap();
    manager.finish(counting).await.unwrap();

    // The whole-struct store sent only `shop.visits`, so the cart written meanwhile stays.
    let last = manager.load(&request).await.unwrap();
    assert_eq!(
        Shopper::load(last.session()).unwrap(),
        Shopper {
            visits: 2,
            cart: vec![Item { sku: "tea".into() }],
        }
    );
}
