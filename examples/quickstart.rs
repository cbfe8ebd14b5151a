//! Quickstart: the dictionary API and a tiered store, on the embedded default (no server).
//!
//! Run with `cargo run --example quickstart`.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sessionkit::store::{MemoryStore, Record, Store, TieredStore};
use sessionkit::{Session, SessionId};

#[derive(Debug, Serialize, Deserialize)]
struct CartItem {
    sku: String,
    qty: u32,
}

#[tokio::main]
async fn main() -> Result<(), sessionkit::Error> {
    // A session is a dictionary of serde values.
    let session = Session::new();
    session.insert("meals", ["breakfast", "lunch", "dinner"])?;
    session.insert("username", "Bob")?;
    session.insert(
        "cart",
        vec![CartItem {
            sku: "tea".into(),
            qty: 2,
        }],
    )?;
    let visits: u32 = session.get_or_insert_with("visits", || 0)?;
    session.insert("visits", visits + 1)?;

    println!("keys: {:?}", session.keys());
    println!("username: {:?}", session.get::<String>("username")?);
    let cart: Vec<CartItem> = session.get("cart")?.unwrap_or_default();
    println!("cart: {cart:?}");
    // Untyped access: read any value without knowing its type.
    for entry in session.iter() {
        println!("  {} = {}", entry.key(), entry.to_value()?);
    }
    // Asking for the wrong type is an error that names the key, never a panic.
    if let Err(err) = session.get::<u64>("username") {
        println!("as expected: {err}");
    }

    // Storage composes: a bounded in-process cache in front of a durable store (here another
    // MemoryStore; FileStore or RedisStore in production).
    let store = TieredStore::new(MemoryStore::with_capacity(10_000), MemoryStore::new());
    let id = SessionId::generate()?;
    let mut record = Record::new(SystemTime::now() + Duration::from_secs(1800));
    for entry in session.iter() {
        record
            .fields
            .insert(entry.key().to_owned(), entry.as_bytes().to_vec().into());
    }
    store.create(&id.key(), &record).await?;
    let loaded = store.load(&id.key()).await?.map(|l| l.record);
    let again = Session::from_fields(loaded.map(|r| r.fields).unwrap_or_default());
    println!(
        "loaded back from the tiered store: username = {:?}, visits = {:?}",
        again.get::<String>("username")?,
        again.get::<u32>("visits")?
    );
    println!("tier stats: {:?}", store.stats());
    Ok(())
}
