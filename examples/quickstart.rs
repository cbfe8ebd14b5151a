//! Quickstart: the dictionary API, then two requests through the lifecycle manager on the
//! embedded default store, `TieredStore<MemoryStore, FileStore>`. No server needed.
//!
//! Run with `cargo run --example quickstart`.

#![allow(
    clippy::print_stdout,
    reason = "an example shows what it does on the terminal"
)]

use serde::{Deserialize, Serialize};
use sessionkit::store::{MemoryStore, TieredStore};
use sessionkit::{RequestInfo, Session, SessionConfig, SessionManager};
use sessionkit_backends::FileStore;

#[derive(Debug, Serialize, Deserialize)]
struct CartItem {
    sku: String,
    qty: u32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A session is a dictionary of serde values.
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

    // 2. Storage composes: a bounded in-process cache in front of files on disk.
    let dir = tempfile::tempdir()?;
    let store = TieredStore::new(
        MemoryStore::bounded(10_000),
        FileStore::open(dir.path()).await?,
    );
    // Plain http on localhost for this demo; the library's default is Secure cookies.
    let manager = SessionManager::new(store, SessionConfig::default().with_secure(false))?;

    // First request: no cookie. Storing something starts a session and sets its cookie.
    let first = manager.load(&RequestInfo::new()).await?;
    first.session().update(&session);
    let outcome = manager.finish(first).await?;
    let set_cookie = outcome
        .set_cookie
        .ok_or("a new session with data sets a cookie")?;
    println!("response 1: Set-Cookie: {set_cookie}");

    // Second request: the browser sends the cookie back.
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
    let second = manager
        .load(&RequestInfo::new().with_cookie_header(cookie))
        .await?;
    let visits: u32 = second.session().get("visits")?.unwrap_or(0);
    second.session().insert("visits", visits + 1)?;
    println!(
        "request 2 sees username = {:?}, visits now {}",
        second.session().get::<String>("username")?,
        visits + 1
    );
    let outcome = manager.finish(second).await?;
    println!(
        "response 2: Set-Cookie: {:?} (the id is unchanged, only the changed key was saved)",
        outcome.set_cookie
    );
    println!("tier stats: {:?}", manager.store().stats());
    Ok(())
}
