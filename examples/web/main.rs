//! The example site: `cargo run --example web`, then open http://127.0.0.1:3000.
//!
//! Runs on `TieredStore<MemoryStore, FileStore>` in `./web-data` unless `SESSIONKIT_STORE`
//! says otherwise; see `sessionkit_examples::site` for every variable.

use sessionkit_examples::site::{prepare, serve};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let site = prepare().await?;
    let listener = tokio::net::TcpListener::bind(site.addr).await?;
    tracing::info!(addr = %site.addr, store = ?site.config.store, trusted_proxies = %site.config.trusted_proxies, "sessionkit example site listening");
    serve(listener, site.manager, site.config.trusted_proxies).await?;
    Ok(())
}
