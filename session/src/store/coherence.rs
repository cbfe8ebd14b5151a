//! Invalidation channels: how a durable store shared by several processes tells each process's
//! cache tier what changed, and when it cannot.
//!
//! A durable store that can announce every write (Redis by publishing from its scripts, a SQL
//! store with `LISTEN/NOTIFY`) implements [`InvalidationSource`] with an [`InvalidationHub`].
//! [`TieredStore::coherent`](super::TieredStore::coherent) subscribes to it and drops a cached
//! session as soon as any process changes it. When the channel is down the cache cannot know
//! what it missed, so it is flushed and bypassed until the channel is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::broadcast;

use crate::id::SessionKey;

/// One message of an invalidation channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// Some process wrote, moved or deleted the session under this key.
    Key(SessionKey),
    /// The channel cannot vouch for what happened from now on (a disconnect, a restart, a
    /// subscriber that fell behind): a cache must drop everything and stop caching.
    Lost,
    /// The channel listens again: every change from now on is announced. A cache flushes what
    /// it holds once more (changes made while the channel was down were not announced) and
    /// may cache again.
    Restored,
}

/// A durable store that announces changes to its sessions to every process that uses it.
pub trait InvalidationSource {
    /// A new subscription to the store's channel.
    fn invalidations(&self) -> InvalidationFeed;
}

impl<S: InvalidationSource + ?Sized> InvalidationSource for Arc<S> {
    fn invalidations(&self) -> InvalidationFeed {
        (**self).invalidations()
    }
}

/// A cache tier that can drop everything it holds at once, which following an invalidation
/// channel through its outages needs.
pub trait Flush {
    /// Drops every entry.
    fn flush(&self);
}

/// The sending side of an invalidation channel, for store implementations: the store's
/// listener task reports each announced key and each loss and recovery of its connection;
/// any number of caches subscribe.
///
/// ```
/// use sessionkit::store::{Invalidation, InvalidationHub};
/// use sessionkit::SessionId;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let hub = InvalidationHub::new(1024);
/// let mut feed = hub.subscribe();
/// assert!(!feed.listening(), "a channel starts out not listening");
/// hub.restored();
/// let key = SessionId::generate()?.key();
/// hub.key(key);
/// assert_eq!(feed.next().await, Some(Invalidation::Restored));
/// assert_eq!(feed.next().await, Some(Invalidation::Key(key)));
/// # Ok::<(), sessionkit::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct InvalidationHub {
    sender: broadcast::Sender<Invalidation>,
    listening: Arc<AtomicBool>,
}

impl InvalidationHub {
    /// A hub whose subscribers may fall `capacity` messages behind before they are told the
    /// channel was lost (and flush).
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        InvalidationHub {
            sender,
            listening: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Announces that the session under `key` changed.
    pub fn key(&self, key: SessionKey) {
        // No subscriber is not an error: nobody caches.
        let _ = self.sender.send(Invalidation::Key(key));
    }

    /// The connection behind the channel is down.
    pub fn lost(&self) {
        self.listening.store(false, Ordering::SeqCst);
        let _ = self.sender.send(Invalidation::Lost);
    }

    /// The connection is up and subscribed: every change from now on will be announced.
    pub fn restored(&self) {
        self.listening.store(true, Ordering::SeqCst);
        let _ = self.sender.send(Invalidation::Restored);
    }

    /// Whether the channel listens now.
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    /// A new subscription.
    pub fn subscribe(&self) -> InvalidationFeed {
        // Subscribe first, then read the state: a change in between arrives as a message too.
        let receiver = self.sender.subscribe();
        let listening = self.listening.load(Ordering::SeqCst);
        InvalidationFeed {
            receiver,
            hub_listening: Arc::clone(&self.listening),
            listening,
            resync: false,
        }
    }
}

/// The receiving side of an invalidation channel (see [`InvalidationHub::subscribe`]).
#[derive(Debug)]
pub struct InvalidationFeed {
    receiver: broadcast::Receiver<Invalidation>,
    hub_listening: Arc<AtomicBool>,
    listening: bool,
    /// A `Lost` was reported for a lag: report `Restored` next if the channel still listens.
    resync: bool,
}

impl InvalidationFeed {
    /// Whether the channel listened when this subscription was made.
    pub fn listening(&self) -> bool {
        self.listening
    }

    /// The next message, or `None` once the store is gone. A subscriber that fell behind gets
    /// [`Invalidation::Lost`] followed by [`Invalidation::Restored`] (when the channel still
    /// listens): it missed keys, so it flushes.
    pub async fn next(&mut self) -> Option<Invalidation> {
        if std::mem::take(&mut self.resync) && self.hub_listening.load(Ordering::SeqCst) {
            return Some(Invalidation::Restored);
        }
        match self.receiver.recv().await {
            Ok(message) => Some(message),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    target: "sessionkit",
                    missed,
                    "session cache fell behind its invalidation channel; flushing"
                );
                self.resync = true;
                Some(Invalidation::Lost)
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
