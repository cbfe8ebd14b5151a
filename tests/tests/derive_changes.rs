//! Change tracking of typed writes: a save must send only keys whose encoded bytes changed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Serialize, Serializer};
use sessionkit::{Error, Session, SessionData};

/// A session as if freshly loaded from a store: the same fields, nothing marked changed.
fn reloaded(session: &Session) -> Session {
    let fields: BTreeMap<String, Bytes> = session
        .iter()
        .map(|raw| (raw.key().to_owned(), Bytes::copy_from_slice(raw.as_bytes())))
        .collect();
    Session::from_fields(fields)
}

fn raw(session: &Session, key: &str) -> Vec<u8> {
    session.get_raw(key).unwrap().as_bytes().to_vec()
}

/// Declares, inside the calling test, the `Shopper` type most tests here use and `sample()`.
macro_rules! declare_shopper {
    () => {
        #[derive(SessionData, Debug, Clone, PartialEq)]
        #[session(prefix = "shop")]
        struct Shopper {
            user_id: Option<u64>,
            #[session(default)]
            visits: u32,
            cart: Vec<String>,
        }

        fn sample() -> Shopper {
            Shopper {
                user_id: Some(7),
                visits: 3,
                cart: vec!["tea".into()],
            }
        }
    };
}

#[test]
fn storing_an_identical_struct_marks_nothing() {
    declare_shopper!();
    let first = Session::new();
    sample().store(&first).unwrap();
    let session = reloaded(&first);
    let loaded = Shopper::load(&session).unwrap();
    assert_eq!(loaded, sample());
    loaded.store(&session).unwrap();
    assert!(!session.is_modified());
}

#[test]
fn storing_marks_only_the_differing_field() {
    declare_shopper!();
    let first = Session::new();
    sample().store(&first).unwrap();
    let session = reloaded(&first);
    let mut shopper = Shopper::load(&session).unwrap();
    shopper.visits += 1;
    shopper.store(&session).unwrap();
    assert!(session.is_modified());
    // Only shop.visits holds new bytes; the others are byte-for-byte what was loaded.
    assert_ne!(raw(&session, "shop.visits"), raw(&first, "shop.visits"));
    assert_eq!(raw(&session, "shop.cart"), raw(&first, "shop.cart"));
    assert_eq!(raw(&session, "shop.user_id"), raw(&first, "shop.user_id"));

    // Putting the old value back leaves the bytes as loaded again.
    shopper.visits -= 1;
    let session = reloaded(&first);
    shopper.store(&session).unwrap();
    assert!(!session.is_modified());
}

#[test]
fn storing_none_removes_the_key() {
    declare_shopper!();
    let first = Session::new();
    sample().store(&first).unwrap();
    let session = reloaded(&first);
    let shopper = Shopper {
        user_id: None,
        ..sample()
    };
    shopper.store(&session).unwrap();
    assert!(session.is_modified());
    assert!(!session.contains_key("shop.user_id"));
    assert_eq!(session.keys(), ["shop.cart", "shop.visits"]);
}

#[test]
fn setting_the_same_value_marks_nothing() {
    declare_shopper!();
    let first = Session::new();
    sample().store(&first).unwrap();
    let session = reloaded(&first);
    let view = Shopper::view(&session);
    view.set_visits(3).unwrap();
    view.set_user_id(Some(7)).unwrap();
    view.set_cart(vec!["tea".into()]).unwrap();
    assert!(!session.is_modified());
    view.set_visits(4).unwrap();
    assert!(session.is_modified());
}

#[test]
fn reading_marks_nothing() {
    declare_shopper!();
    let first = Session::new();
    sample().store(&first).unwrap();
    let session = reloaded(&first);
    let view = Shopper::view(&session);
    let _ = view.visits().unwrap();
    let _ = view.user_id().unwrap();
    let _ = Shopper::load(&session).unwrap();
    assert!(!session.is_modified());
}

#[test]
fn typed_and_dictionary_writes_encode_identically() {
    declare_shopper!();
    let typed = Session::new();
    sample().store(&typed).unwrap();
    let dict = Session::new();
    dict.insert("shop.user_id", 7u64).unwrap();
    dict.insert("shop.visits", 3u32).unwrap();
    dict.insert("shop.cart", vec!["tea"]).unwrap();
    for key in Shopper::KEYS {
        assert_eq!(raw(&typed, key), raw(&dict, key), "bytes of {key}");
    }
    // So a dictionary write of the same value is not a change either.
    let session = reloaded(&typed);
    session.insert("shop.visits", 3u32).unwrap();
    assert!(!session.is_modified());
}

#[test]
fn typed_setters_and_operations_encode_like_the_dictionary() {
    #[derive(Serialize, serde::Deserialize)]
    struct Stamp {
        at: u64,
        label: String,
    }
    #[derive(SessionData)]
    struct Visit {
        count: u32,
        pages: Vec<String>,
        when: Option<(u64, String)>,
        stamp: Stamp,
    }
    let typed = Session::new();
    let view = Visit::view(&typed);
    view.set_count(3).unwrap();
    view.incr_count(2).unwrap();
    view.push_pages("home".into()).unwrap();
    view.set_when(Some((9, "noon".into()))).unwrap();
    view.set_stamp(Stamp {
        at: 1,
        label: "x".into(),
    })
    .unwrap();
    let dict = Session::new();
    dict.insert("count", 3u32).unwrap();
    dict.increment("count", 2).unwrap();
    dict.push("pages", "home").unwrap();
    dict.insert("when", (9u64, "noon")).unwrap();
    dict.insert(
        "stamp",
        Stamp {
            at: 1,
            label: "x".into(),
        },
    )
    .unwrap();
    for key in Visit::KEYS {
        assert_eq!(raw(&typed, key), raw(&dict, key), "bytes of {key}");
    }
    assert_eq!(
        raw(&typed, "count"),
        rmp_serde::to_vec_named(&5u32).unwrap()
    );
}

#[test]
fn store_is_all_or_nothing_when_a_field_cannot_be_encoded() {
    #[derive(Debug)]
    struct Unencodable;

    impl Serialize for Unencodable {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refuses to serialize"))
        }
    }

    impl<'de> serde::Deserialize<'de> for Unencodable {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Ok(Unencodable)
        }
    }

    #[derive(SessionData, Debug)]
    struct Mixed {
        fine: u32,
        broken: Option<Unencodable>,
    }

    let session = Session::new();
    let err = Mixed {
        fine: 1,
        broken: Some(Unencodable),
    }
    .store(&session)
    .unwrap_err();
    match err {
        Error::Encode { key, .. } => assert_eq!(key, "broken"),
        other => panic!("expected Error::Encode, got {other:?}"),
    }
    assert!(session.is_empty());
    assert!(!session.is_modified());
    match Mixed::view(&session).set_broken(Some(Unencodable)) {
        Err(Error::Encode { key, .. }) => assert_eq!(key, "broken"),
        other => panic!("expected Error::Encode, got {other:?}"),
    }
    assert!(!session.is_modified());
}
