// Option, default, required, rename, skip and prefix together, through the view and the trait.
use serde::{Deserialize, Serialize};
use sessionkit::{Error, Session, SessionData};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
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
    #[session(skip)]
    scratch: String,
    coupon: std::option::Option<String>,
    referrer: ::core::option::Option<String>,
}

fn main() {
    let session = Session::new();
    let view = Shopper::view(&session);
    assert!(matches!(view.cart(), Err(Error::Missing { key }) if key == "shop.items"));
    view.set_cart(vec![Item { sku: "tea".into(), qty: 1 }]).unwrap();
    view.set_user_id(Some(7)).unwrap();
    assert_eq!(view.visits().unwrap(), 0);
    assert!(view.remove_user_id());
    assert_eq!(
        Shopper::KEYS,
        ["shop.user_id", "shop.visits", "shop.items", "shop.coupon", "shop.referrer"]
    );
    assert_eq!(Shopper::CART_KEY, "shop.items");
    let loaded = Shopper::load(&session).unwrap();
    assert_eq!(loaded.scratch, "");
    assert_eq!(loaded.user_id, None);
    // Fully qualified `Option`s are `Option` fields too: absent reads as `None`.
    assert_eq!((loaded.coupon, loaded.referrer), (None, None));
    view.set_coupon(Some("SAVE".into())).unwrap();
    view.set_coupon(None).unwrap();
    assert!(!session.contains_key(Shopper::COUPON_KEY));
}
