//! What the invalidation listeners of the network stores share: the channel a store and its
//! clones hold (one background task, started by the first subscription inside a Tokio runtime
//! and stopped when the last clone is dropped) and the reconnection backoff.
//!
//! Each store says how to listen through [`Listen`]; this module owns when the task starts
//! and stops.

use std::fmt;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sessionkit::store::{InvalidationFeed, InvalidationHub};

/// The first wait before reconnecting; doubled after each failed attempt.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How many messages a slow cache may fall behind before it is told to flush.
const HUB_CAPACITY: usize = 4096;

/// How a store's listener task follows its server's invalidations.
pub(crate) trait Listen: Send + Sync + 'static {
    /// The server's name in log lines ("Redis", "PostgreSQL").
    const SERVER: &'static str;

    /// The listener task: announces on `hub`, reconnecting (with a [`Backoff`]) until aborted.
    fn listen(&self, hub: InvalidationHub) -> impl Future<Output = ()> + Send + 'static;
}

/// The channel shared by a store and its clones. Dropping the last clone stops the listener.
pub(crate) struct Channel<L> {
    hub: InvalidationHub,
    source: L,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl<L> fmt::Debug for Channel<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("listening", &self.hub.listening())
            .finish_non_exhaustive()
    }
}

impl<L: Listen> Channel<L> {
    /// A channel that listens through `source` once subscribed to.
    pub(crate) fn new(source: L) -> Self {
        Channel {
            hub: InvalidationHub::new(HUB_CAPACITY),
            source,
            task: Mutex::new(None),
        }
    }

    /// A subscription; starts the listener on the first call made inside a Tokio runtime.
    /// Outside one the subscription stays "not listening" until a later call starts it.
    pub(crate) fn subscribe(&self) -> InvalidationFeed {
        let feed = self.hub.subscribe();
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if task.is_none() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let listener = runtime.spawn(self.source.listen(self.hub.clone()));
                    *task = Some(listener.abort_handle());
                }
                Err(_) => tracing::warn!(
                    target: "sessionkit",
                    "{} invalidations asked for outside a Tokio runtime; \
                     the channel stays down until asked for inside one",
                    L::SERVER
                ),
            }
        }
        feed
    }
}

impl<L> Drop for Channel<L> {
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

/// The wait between reconnection attempts: 50 ms, doubling to 2 s, back to 50 ms on success.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff { next: MIN_BACKOFF }
    }

    /// The next wait, for log lines.
    pub(crate) fn next(&self) -> Duration {
        self.next
    }

    /// After a success: the next wait is the shortest again.
    pub(crate) fn reset(&mut self) {
        self.next = MIN_BACKOFF;
    }

    /// Waits, then doubles the next wait (up to the longest).
    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.advance()).await;
    }

    /// The wait to make now; doubles the next one (up to the longest).
    fn advance(&mut self) -> Duration {
        let now = self.next;
        self.next = (now * 2).min(MAX_BACKOFF);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_longest_and_resets() {
        let mut backoff = Backoff::new();
        let waits: Vec<Duration> = (0..8).map(|_| backoff.advance()).collect();
        assert_eq!(waits[0], MIN_BACKOFF);
        assert_eq!(waits[1], MIN_BACKOFF * 2);
        assert_eq!(waits[7], MAX_BACKOFF);
        backoff.reset();
        assert_eq!(backoff.next(), MIN_BACKOFF);
    }
}
