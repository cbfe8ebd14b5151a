//! Typed access through the view: getters, setters, removers, key constants, and how they
//! meet the dictionary API on the same field map.

use serde::{Deserialize, Serialize};
use sessionkit::{Error, Session, SessionData};

#[test]
fn smoke() {
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Item {
        sku: String,
        qty: u32,
    }

    #[derive(SessionData, Debug, PartialEq)]
    #[session(prefix = "shop")]
    struct Shopper {
        user_id: Option<u64>,
        #[session(default)]
        visits: u32,
        #[session(rename = "items")]
        cart: Vec<Item>,
    }

    let session = Session::new();
    let view = Shopper::view(&session);
    assert_eq!(view.user_id().unwrap(), None);
    assert!(matches!(view.cart(), Err(Error::Missing { .. })));
    view.set_visits(3).unwrap();
    assert_eq!(session.get::<u32>(Shopper::VISITS_KEY).unwrap(), Some(3));
    let _ = Shopper::load(&session);
}
