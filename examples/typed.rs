//! A typed session beside dictionary access on the same data, then carried across two
//! requests by the session manager over an in-memory store. No server needed:
//! `cargo run --example typed`.

#![allow(
    clippy::print_stdout,
    reason = "an example shows what it does on the terminal"
)]

use serde::{Deserialize, Serialize};
use sessionkit::{MemoryStore, RequestInfo, Session, SessionConfig, SessionData, SessionManager};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Item {
    sku: String,
    qty: u32,
}

/// Each field is one entry of the session's field map, under `shop.<name>`.
#[derive(SessionData, Debug)]
#[session(prefix = "shop")]
struct Shopper {
    /// Absent reads as `None`; setting `None` removes the key.
    user_id: Option<u64>,
    /// Absent reads as `0`.
    #[session(default)]
    visits: u32,
    /// Required: absent is `Error::Missing`. Stored as `shop.items`.
    #[session(rename = "items")]
    cart: Vec<Item>,
}

#[tokio::main]
async fn main() -> sessionkit::Result<()> {
    let session = Session::new();

    // Typed: one field at a time through the view. Wrong types do not compile.
    let shop = Shopper::view(&session);
    shop.set_visits(shop.visits()? + 1)?;
    shop.set_cart(vec![Item {
        sku: "tea".into(),
        qty: 2,
    }])?;

    // Dictionary: the same entries by key, plus data with no fixed shape.
    session.insert(Shopper::USER_ID_KEY, 42u64)?;
    session.insert("theme", "dark")?;
    println!("user id, typed:       {:?}", shop.user_id()?);
    println!(
        "visits, dictionary:   {:?}",
        session.get::<u32>("shop.visits")?
    );
    for entry in session.iter() {
        println!("  {} = {}", entry.key(), entry.to_value()?);
    }

    // Across requests with the manager: the browser sends the cookie back.
    let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default())?;
    let first = manager.load(&RequestInfo::new()).await?;
    Shopper::load(&session)?.store(first.session())?;
    let Some(set_cookie) = manager.finish(first).await?.set_cookie else {
        return Err(sessionkit::Error::Gone);
    };
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
    let next = manager
        .load(&RequestInfo::new().with_cookie_header(cookie))
        .await?;

    // The whole struct at once; storing marks changed only fields whose bytes differ.
    let mut shopper = Shopper::load(next.session())?;
    println!("loaded: {shopper:?}");
    shopper.cart.push(Item {
        sku: "jam".into(),
        qty: 1,
    });
    shopper.store(next.session())?; // sends only shop.items
    println!("changed after store: {}", next.session().is_modified());
    manager.finish(next).await?;
    Ok(())
}
