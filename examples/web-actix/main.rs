//! The example site on actix-web: `cargo run --example web-actix`, then open
//! http://127.0.0.1:3000. The same routes, page, JSON and environment variables as the `web`
//! example (see `sessionkit_examples::site`).

use std::net::{Ipv4Addr, SocketAddr};

use sessionkit::SessionManager;
use sessionkit_examples::site::{SiteConfig, open_store};
use sessionkit_examples::site_actix::server;

#[actix_web::main]
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
    let listener = std::net::TcpListener::bind(addr)?;
    tracing::info!(%addr, store = ?config.store, trusted_proxies = %config.trusted_proxies, "sessionkit example site (actix-web) listening");
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let (server, _handle) = server(listener, manager, config.trusted_proxies.clone(), workers)?;
    server.await?;
    Ok(())
}
