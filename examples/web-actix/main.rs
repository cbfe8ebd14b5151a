//! The example site on actix-web: `cargo run --example web-actix`, then open
//! http://127.0.0.1:3000. The same routes, page, JSON and environment variables as the `web`
//! example (see `sessionkit_examples::site`).

use sessionkit_examples::site::prepare;
use sessionkit_examples::site_actix::server;

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let site = prepare().await?;
    let listener = std::net::TcpListener::bind(site.addr)?;
    tracing::info!(addr = %site.addr, store = ?site.config.store, trusted_proxies = %site.config.trusted_proxies, "sessionkit example site (actix-web) listening");
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let (server, _handle) = server(listener, site.manager, site.config.trusted_proxies, workers)?;
    server.await?;
    Ok(())
}
