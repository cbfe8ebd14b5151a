//! A typed session beside dictionary access on the same data, saved to and loaded from an
//! in-memory store. No server needed: `cargo run -p sessionkit-examples --example typed`.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sessionkit::store::Record;
use sessionkit::{MemoryStore, Session, SessionData, SessionId, Store};

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

    // Save to a store and load back, as a request handler would across requests.
    let store = MemoryStore::new();
    let key = SessionId::generate()?.key();
    let fields = session
        .iter()
        .map(|raw| (raw.key().to_owned(), raw.as_bytes().to_vec().into()))
        .collect();
    let record = Record {
        fields,
        expires_at: SystemTime::now() + Duration::from_secs(3600),
        owner: None,
    };
    store.create(&key, &record).await?;
    let Some(loaded) = store.load(&key).await? else {
        return Err(sessionkit::Error::Gone);
    };
    let next_request = Session::from_fields(loaded.record.fields);

    // The whole struct at once; storing marks changed only fields whose bytes differ.
    let mut shopper = Shopper::load(&next_request)?;
    println!("loaded: {shopper:?}");
    shopper.cart.push(Item {
        sku: "jam".into(),
        qty: 1,
    });
    shopper.store(&next_request)?;
    println!("changed after store: {}", next_request.is_modified());
    println!(
        "theme kept: {:?}",
        next_request.get::<String>("theme")?.as_deref()
    );
    Ok(())
}
