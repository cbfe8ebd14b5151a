//! The invalidation channel of a [`PostgresStore`](super::PostgresStore): `LISTEN` on the
//! table's channel, each notification (a key's hex) announced to the coherent caches.
//!
//! A background task (one per store and its clones, started by the first subscription)
//! takes a connection from the pool, runs `LISTEN`, and only then reports the channel
//! listening. Any failure of that connection reports it lost; the task then reconnects with
//! a backoff (50 ms doubling to 2 s) and reports it restored once `LISTEN` is confirmed again.
//! Notifications are delivered at most once, which is why caches flush on every loss and
//! recovery.

use std::future::Future;

use sessionkit::SessionKey;
use sessionkit::store::InvalidationHub;
use sqlx::postgres::{PgListener, PgPool};

use crate::listener::{Backoff, Listen};

/// Where the listener task listens: the store's pool and its table's channel.
pub(super) struct Source {
    pub(super) pool: PgPool,
    pub(super) name: String,
}

impl Listen for Source {
    const SERVER: &'static str = "PostgreSQL";

    fn listen(&self, hub: InvalidationHub) -> impl Future<Output = ()> + Send + 'static {
        listen(self.pool.clone(), self.name.clone(), hub)
    }
}

/// The listener task: listen, announce, and on any failure report the loss and start over.
async fn listen(pool: PgPool, name: String, hub: InvalidationHub) {
    let mut backoff = Backoff::new();
    loop {
        match subscribed(&pool, &name).await {
            Ok(mut listener) => {
                backoff.reset();
                hub.restored();
                let reason = relay(&mut listener, &hub).await;
                hub.lost();
                tracing::warn!(
                    target: "sessionkit",
                    reason = %reason,
                    "PostgreSQL invalidation channel lost; caches flush until it is back"
                );
            }
            Err(err) => tracing::debug!(
                target: "sessionkit",
                error = %err,
                backoff = ?backoff.next(),
                "PostgreSQL invalidation channel: cannot listen yet"
            ),
        }
        backoff.wait().await;
    }
}

/// A fresh listener with `LISTEN` confirmed; it never reconnects by itself (a reconnection
/// must be reported as a loss).
async fn subscribed(pool: &PgPool, name: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(name).await?;
    Ok(listener)
}

/// Announces notifications until the connection fails; returns why it stopped.
async fn relay(listener: &mut PgListener, hub: &InvalidationHub) -> String {
    loop {
        match listener.try_recv().await {
            Ok(Some(note)) => match SessionKey::from_hex(note.payload()) {
                Some(key) => hub.key(key),
                None => tracing::debug!(
                    target: "sessionkit",
                    "PostgreSQL invalidation channel: a payload that is not a key, ignored"
                ),
            },
            Ok(None) => return "the connection closed".to_owned(),
            Err(err) => return err.to_string(),
        }
    }
}
