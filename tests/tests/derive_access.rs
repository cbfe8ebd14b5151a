//! Typed access through the derived view and trait, and how it meets the dictionary API on
//! the same field map.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use serde::{Deserialize, Serialize};
use sessionkit::{Error, Session, SessionData};

#[test]
fn getters_read_absent_fields_by_kind() {
    #[derive(SessionData)]
    struct Shopper {
        user_id: Option<u64>,
        #[session(default)]
        visits: u32,
        cart: Vec<String>,
    }

    let session = Session::new();
    let view = Shopper::view(&session);
    assert_eq!(view.user_id().unwrap(), None);
    assert_eq!(view.visits().unwrap(), 0);
    match view.cart() {
        Err(Error::Missing { key }) => assert_eq!(key, "cart"),
        other => panic!("expected Error::Missing, got {other:?}"),
    }
    match Shopper::load(&session) {
        Err(Error::Missing { key }) => assert_eq!(key, "cart"),
        other => panic!("expected Error::Missing, got {:?}", other.map(|_| ())),
    }
    // Reading an absent default does not write it.
    assert!(session.is_empty());
    assert!(!session.is_modified());
}

#[test]
fn setters_and_removers_touch_only_their_key() {
    #[derive(SessionData)]
    struct Prefs {
        theme: Option<String>,
        #[session(default)]
        font_size: u16,
    }

    let session = Session::new();
    session.insert("unrelated", 1).unwrap();
    let view = Prefs::view(&session);
    view.set_font_size(14).unwrap();
    view.set_theme(Some("dark".to_owned())).unwrap();
    assert_eq!(session.keys(), ["font_size", "theme", "unrelated"]);
    assert_eq!(view.font_size().unwrap(), 14);
    assert_eq!(view.theme().unwrap().as_deref(), Some("dark"));

    view.set_theme(None).unwrap();
    assert!(!session.contains_key("theme"));
    assert!(view.remove_font_size());
    assert!(!view.remove_font_size());
    assert_eq!(session.keys(), ["unrelated"]);
}

#[test]
fn typed_and_dictionary_access_share_entries() {
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Item {
        sku: String,
        qty: u32,
    }

    #[derive(SessionData, Debug, PartialEq)]
    #[session(prefix = "shop")]
    struct Shopper {
        user_id: Option<u64>,
        #[session(rename = "items")]
        cart: Vec<Item>,
    }

    let session = Session::new();
    // Dictionary writes, typed reads.
    session
        .insert(
            "shop.items",
            vec![Item {
                sku: "tea".into(),
                qty: 2,
            }],
        )
        .unwrap();
    session.insert(Shopper::USER_ID_KEY, 42u64).unwrap();
    let shopper = Shopper::load(&session).unwrap();
    assert_eq!(shopper.user_id, Some(42));
    assert_eq!(shopper.cart[0].sku, "tea");

    // Typed writes, dictionary reads.
    Shopper::view(&session)
        .set_cart(vec![Item {
            sku: "jam".into(),
            qty: 1,
        }])
        .unwrap();
    let cart: Vec<Item> = session.get(Shopper::CART_KEY).unwrap().unwrap();
    assert_eq!(
        cart,
        [Item {
            sku: "jam".into(),
            qty: 1
        }]
    );
    assert_eq!(session.get::<u64>("shop.user_id").unwrap(), Some(42));
    let dynamic = session.get_value("shop.items").unwrap().unwrap();
    assert_eq!(dynamic[0]["qty"].as_u64(), Some(1));

    // A nil stored through the dictionary reads as `None`, like an absent key.
    session.insert("shop.user_id", None::<u64>).unwrap();
    assert_eq!(Shopper::view(&session).user_id().unwrap(), None);
}

#[test]
fn wrong_type_is_a_decode_error_naming_the_key() {
    #[derive(SessionData, Debug)]
    #[session(prefix = "acct")]
    struct Account {
        #[session(default)]
        visits: u32,
        name: String,
    }

    let session = Session::new();
    session.insert("acct.visits", "many").unwrap();
    session.insert("acct.name", "ann").unwrap();
    match Account::view(&session).visits() {
        Err(Error::Decode { key, expected, .. }) => {
            assert_eq!(key, "acct.visits");
            assert_eq!(expected, "u32");
        }
        other => panic!("expected Error::Decode, got {other:?}"),
    }
    match Account::load(&session) {
        Err(err @ Error::Decode { .. }) => assert!(err.to_string().contains("acct.visits")),
        other => panic!("expected Error::Decode, got {other:?}"),
    }
    // The other field is unaffected.
    assert_eq!(Account::view(&session).name().unwrap(), "ann");
}

#[test]
fn keys_follow_prefix_and_rename() {
    #[derive(SessionData)]
    #[session(prefix = "cart.v2")]
    struct Cart {
        items: Vec<u64>,
        #[session(rename = "coupon_code")]
        coupon: Option<String>,
        #[session(skip)]
        _cache: Vec<u8>,
        r#type: Option<String>,
    }

    assert_eq!(Cart::ITEMS_KEY, "cart.v2.items");
    assert_eq!(Cart::COUPON_KEY, "cart.v2.coupon_code");
    assert_eq!(Cart::TYPE_KEY, "cart.v2.type");
    assert_eq!(
        Cart::KEYS,
        ["cart.v2.items", "cart.v2.coupon_code", "cart.v2.type"]
    );
}

#[test]
fn skipped_fields_are_never_stored() {
    #[derive(SessionData, Debug, PartialEq)]
    struct Page {
        title: String,
        #[session(skip)]
        rendered: Option<String>,
    }

    let session = Session::new();
    Page {
        title: "home".into(),
        rendered: Some("<h1>home</h1>".into()),
    }
    .store(&session)
    .unwrap();
    assert_eq!(session.keys(), ["title"]);
    assert_eq!(
        Page::load(&session).unwrap(),
        Page {
            title: "home".into(),
            rendered: None
        }
    );
}

#[test]
fn remove_from_removes_only_the_types_keys() {
    #[derive(SessionData)]
    #[session(prefix = "wizard")]
    struct Wizard {
        step: u8,
        answers: Vec<String>,
    }

    let session = Session::new();
    session.insert("keep", true).unwrap();
    Wizard::view(&session).set_step(2).unwrap();
    assert_eq!(Wizard::remove_from(&session), 1);
    assert_eq!(session.keys(), ["keep"]);
}

#[test]
fn generic_code_works_over_the_trait() {
    #[derive(SessionData, Debug, PartialEq, Clone)]
    struct Flags {
        beta: bool,
    }

    #[derive(SessionData, Debug, PartialEq, Clone)]
    struct Slot<T> {
        value: Option<T>,
        #[session(default)]
        history: Vec<T>,
    }

    fn copy<T: SessionData>(from: &Session, to: &Session) -> sessionkit::Result<()> {
        T::load(from)?.store(to)
    }

    let a = Session::new();
    let b = Session::new();
    Flags { beta: true }.store(&a).unwrap();
    Slot {
        value: Some(3u8),
        history: vec![1, 2],
    }
    .store(&a)
    .unwrap();
    copy::<Flags>(&a, &b).unwrap();
    copy::<Slot<u8>>(&a, &b).unwrap();
    assert_eq!(Slot::<u8>::load(&b).unwrap().history, [1, 2]);
    assert_eq!(b.keys(), ["beta", "history", "value"]);
    // A generic view decodes with the type parameter chosen at the call site.
    assert!(matches!(
        Slot::<String>::view(&b).value(),
        Err(Error::Decode { .. })
    ));
}

#[test]
fn derive_and_session_agree_on_the_reserved_prefix() {
    // session-derive keeps its own copy of the prefix (a proc-macro crate cannot depend on
    // sessionkit), declared once in valid.rs; the `key/reserved_*` UI cases show it refusing
    // keys under it. Its declaration must spell sessionkit's prefix.
    const DERIVE_SOURCE: &str = include_str!("../../session-derive/src/valid.rs");
    let declared: Vec<&str> = DERIVE_SOURCE
        .lines()
        .filter_map(|line| line.strip_prefix("const RESERVED_PREFIX: &str = "))
        .collect();
    assert_eq!(
        declared,
        [format!("{:?};", sessionkit::reserved::RESERVED_PREFIX)],
        "session-derive/src/valid.rs must declare RESERVED_PREFIX once, equal to sessionkit's \
         (update it and the key/reserved_* UI cases together)"
    );
}
