//! The invalidation channel of a [`PostgresStore`](super::PostgresStore): `LISTEN` on the
//! table's channel, each notification (a key's hex) announced to the coherent caches.
//!
//! A background task (one per store and its clones, started by the first subscription)
//! takes a connection from the pool, runs `LISTEN`, and only then reports the channel
//! listening. Any failure of that connection reports it lost; the task then reconnects with
//! a backoff (50 ms doubling to 2 s) and reports it restored once `LISTEN` is confirmed again.
//! Notifications are delivered at most once, which is why caches flush on every loss and
//! recovery.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sessionkit::SessionKey;
use sessionkit::store::{InvalidationFeed, InvalidationHub};
use sqlx::postgres::{PgListener, PgPool};

/// The first wait before reconnecting; doubled after each failed attempt.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How many messages a slow cache may fall behind before it is told to flush.
const HUB_CAPACITY: usize = 4096;

/// The channel shared by a store and its clones. Dropping the last clone stops the listener.
pub(super) struct Channel {
    hub: InvalidationHub,
    pool: PgPool,
    name: String,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("listening", &self.hub.listening())
            .finish_non_exhaustive()
    }
}

impl Channel {
    pub(super) fn new(pool: PgPool, name: String) -> Self {
        Channel {
            hub: InvalidationHub::new(HUB_CAPACITY),
            pool,
            name,
            task: Mutex::new(None),
        }
    }

    /// A subscription; starts the listener on the first call made inside a Tokio runtime.
    pub(super) fn subscribe(&self) -> InvalidationFeed {
        let feed = self.hub.subscribe();
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if task.is_none() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let listener = runtime.spawn(listen(
                        self.pool.clone(),
                        self.name.clone(),
                        self.hub.clone(),
                    ));
                    *task = Some(listener.abort_handle());
                }
                Err(_) => tracing::warn!(
                    target: "sessionkit",
                    "PostgreSQL invalidations asked for outside a Tokio runtime; \
                     the channel stays down until asked for inside one"
                ),
            }
        }
        feed
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// The listener task: listen, announce, and on any failure report the loss and start over.
async fn listen(pool: PgPool, name: String, hub: InvalidationHub) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match subscribed(&pool, &name).await {
            Ok(mut listener) => {
                backoff = MIN_BACKOFF;
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
                "PostgreSQL invalidation channel: cannot listen yet"
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
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
