//! The derive's typed operations: `incr_<field>` on integer fields, `push_<field>` on lists,
//! `add_to_<field>`/`remove_from_<field>` on sets. They show at once in the view and reach the
//! store as operations, so overlapping requests on one session lose nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::collections::{BTreeSet, HashSet, VecDeque};

use sessionkit::{
    Error, MemoryStore, RequestInfo, Session, SessionConfig, SessionData, SessionManager,
};

fn cookie_of(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[test]
fn typed_operations_show_in_the_view() {
    #[derive(SessionData)]
    #[session(prefix = "p")]
    struct Profile {
        #[session(default)]
        visits: u8,
        #[session(default)]
        balance: i64,
        #[session(default)]
        recent: VecDeque<String>,
        #[session(default)]
        tags: BTreeSet<String>,
        #[session(default)]
        seen: HashSet<u32>,
    }

    let session = Session::new();
    let view = Profile::view(&session);
    assert_eq!(view.incr_visits(2).unwrap(), 2);
    assert_eq!(view.incr_balance(-5).unwrap(), -5);
    view.push_recent("a".into()).unwrap();
    assert!(view.push_recent_bounded("b".into(), 2).unwrap());
    assert!(!view.push_recent_bounded("c".into(), 2).unwrap());
    assert!(view.add_to_tags("x".into()).unwrap());
    assert!(!view.add_to_tags("x".into()).unwrap());
    assert!(view.add_to_seen(7).unwrap());
    assert!(view.remove_from_seen(&7).unwrap());
    assert!(!view.remove_from_tags(&"y".into()).unwrap());
    assert_eq!(view.visits().unwrap(), 2);
    assert_eq!(
        view.recent().unwrap(),
        VecDeque::from(["a".into(), "b".into()])
    );
    assert_eq!(view.tags().unwrap(), BTreeSet::from(["x".into()]));
    assert!(view.seen().unwrap().is_empty());
    assert_eq!(session.get::<i64>("p.balance").unwrap(), Some(-5));

    // The field's own range is checked before anything is recorded.
    assert!(matches!(view.incr_visits(254), Err(Error::Overflow { key }) if key == "p.visits"));
    assert!(matches!(view.incr_visits(-3), Err(Error::Overflow { .. })));
    assert_eq!(view.visits().unwrap(), 2);
}

#[tokio::test]
async fn overlapping_requests_lose_no_increment_or_push() {
    #[derive(SessionData)]
    struct Cart {
        #[session(default)]
        visits: u64,
        #[session(default)]
        items: Vec<String>,
    }

    let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default()).unwrap();
    let first = manager.load(&RequestInfo::new()).await.unwrap();
    Cart::view(first.session()).incr_visits(1).unwrap();
    let cookie = cookie_of(&manager.finish(first).await.unwrap().set_cookie.unwrap());

    // Two requests load the same state, then both change the same keys.
    let request = || RequestInfo::new().with_cookie_header(cookie.clone());
    let a = manager.load(&request()).await.unwrap();
    let b = manager.load(&request()).await.unwrap();
    for (active, item) in [(&a, "apple"), (&b, "pear")] {
        let view = Cart::view(active.session());
        assert_eq!(
            view.incr_visits(1).unwrap(),
            2,
            "each sees its own increment"
        );
        view.push_items(item.to_owned()).unwrap();
    }
    manager.finish(a).await.unwrap();
    manager.finish(b).await.unwrap();

    let after = manager.load(&request()).await.unwrap();
    let view = Cart::view(after.session());
    assert_eq!(view.visits().unwrap(), 3);
    assert_eq!(view.items().unwrap(), ["apple", "pear"]);
}
