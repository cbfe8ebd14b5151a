//! A store wrapper that stops an operation at a named point until the test lets it go on,
//! and that loses the reply of a write on command, so a race between requests can be played
//! out in one exact order instead of hoped for.
//!
//! ```no_run
//! # async fn demo(store: sessionkit_tests::pausing::PausingStore<sessionkit::MemoryStore>,
//! #               key: sessionkit::SessionKey) {
//! use sessionkit::Store;
//! use sessionkit_tests::pausing::Point;
//! let mut pause = store.arm_for(Point::AfterLoad, key);
//! // … spawn a task that loads `key`; it stops after the inner load returned …
//! pause.reached().await;
//! // … let the racing operation complete …
//! pause.release();
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use sessionkit::SessionKey;
use sessionkit::store::{ChangeSet, Error, Grace, Loaded, Record, Removed, Result, Store};
use tokio::sync::oneshot;

/// How long [`Pause::reached`] waits for a task to arrive before it declares the test hung.
pub const REACH_LIMIT: Duration = Duration::from_secs(30);

/// Where an operation can be stopped. Each point lies after the inner store answered and
/// before the answer is returned to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// After `create` returned.
    AfterCreate,
    /// After `load` returned. As the durable tier of a `TieredStore`, this is "after the
    /// durable load, before the cache fill".
    AfterLoad,
    /// After `apply` returned (for a successful apply: after it committed).
    AfterApply,
    /// After `delete` returned.
    AfterDelete,
    /// After `rename` returned: for a regeneration, between the move and the apply.
    AfterRename,
    /// After `owned_by` returned its listing, before the caller acts on it (arm it with
    /// [`PausingStore::arm`]: it has no key).
    AfterOwnedBy,
}

/// A store operation, for [`PausingStore::fail_after_write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `create`.
    Create,
    /// `apply`.
    Apply,
    /// `delete`.
    Delete,
    /// `rename`.
    Rename,
}

struct Armed {
    point: Point,
    key: Option<SessionKey>,
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

struct LostReply {
    op: Op,
    key: Option<SessionKey>,
}

/// One armed stop. The first matching call parks at its point until [`release`](Self::release)
/// is called or this handle is dropped (so a failing test never leaves a task parked).
#[derive(Debug)]
#[must_use = "an armed pause does nothing unless the test waits for it and releases it"]
pub struct Pause {
    point: Point,
    reached: oneshot::Receiver<()>,
    release: Option<oneshot::Sender<()>>,
}

impl Pause {
    /// Waits until a call is parked at the point. Panics after [`REACH_LIMIT`]: a guard
    /// against a hang, not a timing assumption.
    pub async fn reached(&mut self) {
        match tokio::time::timeout(REACH_LIMIT, &mut self.reached).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!(
                "the store was dropped before anything reached {:?}",
                self.point
            ),
            Err(_) => panic!("nothing reached {:?} within {REACH_LIMIT:?}", self.point),
        }
    }

    /// Lets the parked call go on.
    pub fn release(mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

/// Wraps any store; calls pass straight through unless a point is armed
/// ([`arm`](Self::arm), [`arm_for`](Self::arm_for)) or a write's reply is set to be lost
/// ([`fail_after_write`](Self::fail_after_write)). Each arming applies to one call.
pub struct PausingStore<S> {
    inner: S,
    armed: Mutex<Vec<Armed>>,
    lost: Mutex<Vec<LostReply>>,
    /// How many calls parked at a point.
    pub paused: AtomicU64,
    /// How many writes happened and then reported an error on command.
    pub replies_lost: AtomicU64,
}

impl<S> std::fmt::Debug for PausingStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PausingStore")
            .field("armed", &self.armed.lock().len())
            .field("lost", &self.lost.lock().len())
            .finish_non_exhaustive()
    }
}

impl<S: Store> PausingStore<S> {
    /// Wraps `inner`, nothing armed.
    pub fn new(inner: S) -> Self {
        PausingStore {
            inner,
            armed: Mutex::new(Vec::new()),
            lost: Mutex::new(Vec::new()),
            paused: AtomicU64::new(0),
            replies_lost: AtomicU64::new(0),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Stops the next call that reaches `point`, whatever its key.
    pub fn arm(&self, point: Point) -> Pause {
        self.arm_key(point, None)
    }

    /// Stops the next call that reaches `point` for `key` (for a rename: as its source or its
    /// target).
    pub fn arm_for(&self, point: Point, key: SessionKey) -> Pause {
        self.arm_key(point, Some(key))
    }

    fn arm_key(&self, point: Point, key: Option<SessionKey>) -> Pause {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        self.armed.lock().push(Armed {
            point,
            key,
            reached: reached_tx,
            release: release_rx,
        });
        Pause {
            point,
            reached: reached_rx,
            release: Some(release_tx),
        }
    }

    /// The next successful `op` (on any key) is carried out by the inner store and then
    /// reported as [`Error::Unavailable`]: a reply lost after the write.
    pub fn fail_after_write(&self, op: Op) {
        self.lost.lock().push(LostReply { op, key: None });
    }

    /// As [`fail_after_write`](Self::fail_after_write), for a call on `key` only (for a
    /// rename: as its source or its target).
    pub fn fail_after_write_for(&self, op: Op, key: SessionKey) {
        self.lost.lock().push(LostReply { op, key: Some(key) });
    }

    /// How many lost replies are still armed.
    pub fn lost_replies_pending(&self) -> usize {
        self.lost.lock().len()
    }

    fn matches(wanted: Option<SessionKey>, keys: &[SessionKey]) -> bool {
        wanted.is_none_or(|k| keys.contains(&k))
    }

    async fn stop_at(&self, point: Point, keys: &[SessionKey]) {
        let armed = {
            let mut armed = self.armed.lock();
            let found = armed
                .iter()
                .position(|a| a.point == point && Self::matches(a.key, keys));
            found.map(|i| armed.remove(i))
        };
        if let Some(armed) = armed {
            self.paused.fetch_add(1, Ordering::SeqCst);
            let _ = armed.reached.send(());
            // Released, or the test dropped its handle: go on either way.
            let _ = armed.release.await;
        }
    }

    /// Turns a successful write into a lost reply when one is armed for it.
    fn after_write<T>(&self, op: Op, keys: &[SessionKey], result: Result<T>) -> Result<T> {
        let value = result?;
        let hit = {
            let mut lost = self.lost.lock();
            let found = lost
                .iter()
                .position(|l| l.op == op && Self::matches(l.key, keys));
            found.map(|i| lost.remove(i)).is_some()
        };
        if hit {
            self.replies_lost.fetch_add(1, Ordering::SeqCst);
            Err(Error::unavailable(format!(
                "{op:?}: reply lost after the write"
            )))
        } else {
            Ok(value)
        }
    }
}

#[async_trait]
impl<S: Store> Store for PausingStore<S> {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        let result = self.inner.create(key, record).await;
        self.stop_at(Point::AfterCreate, &[*key]).await;
        self.after_write(Op::Create, &[*key], result)
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        let result = self.inner.load(key).await;
        self.stop_at(Point::AfterLoad, &[*key]).await;
        result
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        let result = self.inner.apply(key, changes).await;
        self.stop_at(Point::AfterApply, &[*key]).await;
        self.after_write(Op::Apply, &[*key], result)
    }

    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        let result = self.inner.delete(key).await;
        self.stop_at(Point::AfterDelete, &[*key]).await;
        self.after_write(Op::Delete, &[*key], result)
    }

    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        let result = self.inner.rename(from, to, grace).await;
        self.stop_at(Point::AfterRename, &[*from, *to]).await;
        self.after_write(Op::Rename, &[*from, *to], result)
    }

    async fn cleanup(&self) -> Result<u64> {
        self.inner.cleanup().await
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        let result = self.inner.owned_by(owner).await;
        self.stop_at(Point::AfterOwnedBy, &[]).await;
        result
    }
}
