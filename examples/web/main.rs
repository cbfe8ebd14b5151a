//! The example site: `cargo run --example web`, then open http://127.0.0.1:3000.
//!
//! Runs on `TieredStore<MemoryStore, FileStore>` in `./web-data` unless `SESSIONKIT_STORE`
//! says otherwise; see `sessionkit_examples::site` for every variable.

use std::net::{Ipv4Addr, SocketAddr};

use sessionkit::SessionManager;
use sessionkit_examples::site::{SiteConfig, open_store, serve};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = SiteConfig::from_env()?;
    if config.metrics {
        sessionkit_examples::metrics::install()?;
    }
    let store = open_store(
        config.store,
        &config.dir,
        &config.redis_url,
        &config.database_url,
    )
    .await?;
    let manager = SessionManager::new(store, config.session.clone())?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, store = ?config.store, trusted_proxies = %config.trusted_proxies, "sessionkit example site listening");
    serve(listener, manager, config.trusted_proxies.clone()).await?;
    Ok(())
}
