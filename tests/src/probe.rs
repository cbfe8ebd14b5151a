//! The one test double for stores: [`Probe`] wraps any [`Store`], counts every call of each
//! of the seven operations, fails operations on command, loses the reply of a call on
//! command, and stops a call at a named point until the test lets it go on, so a race between
//! requests can be played out in one exact order instead of hoped for.
//!
//! Everything is off when the probe is built: it then only counts.
//!
//! ```no_run
//! # async fn demo(store: sessionkit_tests::probe::Probe<sessionkit::MemoryStore>,
//! #               key: sessionkit::SessionKey) {
//! use std::sync::atomic::Ordering;
//! use sessionkit_tests::probe::Point;
//! // Every `apply` fails until the switch is turned off again.
//! store.fail.apply.store(true, Ordering::SeqCst);
//! // Pause points:
//! let mut pause = store.arm_for(Point::AfterLoad, key);
//! // … spawn a task that loads `key`; it stops after the inner load returned …
//! pause.reached().await;
//! // … let the racing operation complete …
//! pause.release();
//! assert!(store.counts().load >= 1);
//! # }
//! ```

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use sessionkit::SessionKey;
use sessionkit::store::{ChangeSet, Error, Grace, Loaded, Record, Removed, Result, Store};
use tokio::sync::{Semaphore, oneshot};

/// How long [`Pause::reached`] waits for a task to arrive before it declares the test hung.
pub const REACH_LIMIT: Duration = Duration::from_secs(30);

/// One of the seven [`Store`] operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `create`.
    Create,
    /// `load`.
    Load,
    /// `apply`.
    Apply,
    /// `delete`.
    Delete,
    /// `rename`.
    Rename,
    /// `cleanup`.
    Cleanup,
    /// `owned_by`.
    OwnedBy,
}

/// One value per [`Store`] operation.
#[derive(Debug, Default)]
pub struct PerOp<T> {
    /// For `create`.
    pub create: T,
    /// For `load`.
    pub load: T,
    /// For `apply`.
    pub apply: T,
    /// For `delete`.
    pub delete: T,
    /// For `rename`.
    pub rename: T,
    /// For `cleanup`.
    pub cleanup: T,
    /// For `owned_by`.
    pub owned_by: T,
}

impl<T> PerOp<T> {
    /// The value for `op`.
    pub fn get(&self, op: Op) -> &T {
        match op {
            Op::Create => &self.create,
            Op::Load => &self.load,
            Op::Apply => &self.apply,
            Op::Delete => &self.delete,
            Op::Rename => &self.rename,
            Op::Cleanup => &self.cleanup,
            Op::OwnedBy => &self.owned_by,
        }
    }

    /// All seven values.
    pub fn all(&self) -> [&T; 7] {
        [
            &self.create,
            &self.load,
            &self.apply,
            &self.delete,
            &self.rename,
            &self.cleanup,
            &self.owned_by,
        ]
    }
}

/// Calls per operation, since the probe was built.
pub type Calls = PerOp<AtomicU64>;

/// Per-operation switches: while one is on, every call of that operation fails.
pub type Switches = PerOp<AtomicBool>;

/// Per-operation countdowns: each fails that many of the next calls of that operation.
pub type Countdowns = PerOp<AtomicU32>;

/// A snapshot of [`Calls`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// `create` calls.
    pub create: u64,
    /// `load` calls.
    pub load: u64,
    /// `apply` calls.
    pub apply: u64,
    /// `delete` calls.
    pub delete: u64,
    /// `rename` calls.
    pub rename: u64,
    /// `cleanup` calls.
    pub cleanup: u64,
    /// `owned_by` calls.
    pub owned_by: u64,
}

impl CallCounts {
    /// Calls that can change the store: create, apply, delete, rename.
    pub fn writes(&self) -> u64 {
        self.create + self.apply + self.delete + self.rename
    }

    /// Calls a request's load and save make: `load` and the writes. Neither `cleanup` (which
    /// the manager starts in the background, at random) nor `owned_by`.
    pub fn request_calls(&self) -> u64 {
        self.writes() + self.load
    }

    /// Every call counted here, of all seven operations.
    pub fn total(&self) -> u64 {
        self.writes() + self.load + self.cleanup + self.owned_by
    }
}

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
    /// [`Probe::arm`]: it has no key).
    AfterOwnedBy,
}

struct Armed {
    point: Point,
    key: Option<SessionKey>,
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
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
    #[allow(clippy::panic, reason = "test support: a hung race must fail the test")]
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

/// Wraps any store and counts every call that reaches it. On command, per operation:
///
/// - [`fail`](Self::fail): every call fails with [`Error::Unavailable`] while the switch is
///   on, without reaching the inner store ([`set_all`](Self::set_all), [`dead`](Self::dead)
///   for a whole dead store);
/// - [`fail_next`](Self::fail_next): the next *n* calls fail that way;
/// - [`fail_after_write`](Self::fail_after_write): the next call is carried out by the inner
///   store and then reported as failed (a reply lost after the write);
/// - [`arm`](Self::arm) / [`arm_for`](Self::arm_for): the next call stops at a [`Point`];
/// - [`exists_on_create`](Self::exists_on_create), [`corrupt_load`](Self::corrupt_load),
///   [`hold_cleanup`](Self::hold_cleanup): the faults of the lifecycle suite.
///
/// A call is counted first, then refused by a switch or a countdown, then passed on; a pause
/// and a lost reply happen after the inner store answered.
pub struct Probe<S> {
    inner: S,
    /// Calls per operation.
    pub calls: Calls,
    /// Switches: while one is on, every call of its operation fails.
    pub fail: Switches,
    /// Countdowns: each fails that many of the next calls of its operation.
    pub fail_next: Countdowns,
    /// How many calls failed on command (switch or countdown).
    pub failures: AtomicU64,
    /// Each fails that many of the next creates with [`Error::AlreadyExists`] (an id
    /// collision), without reaching the inner store.
    pub exists_on_create: AtomicU32,
    /// While set, every load fails with [`Error::Corrupt`] (a record that does not decode).
    pub corrupt_load: AtomicBool,
    /// While set, cleanups wait for [`release_cleanup`](Self::release_cleanup) before they
    /// reach the inner store.
    pub hold_cleanup: AtomicBool,
    /// How many calls happened and then reported an error on command.
    pub replies_lost: AtomicU64,
    cleanups_finished: AtomicU64,
    cleanup_release: Semaphore,
    armed: Mutex<Vec<Armed>>,
    lost: Mutex<Vec<Op>>,
}

impl<S> std::fmt::Debug for Probe<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("calls", &self.counts())
            .field("armed", &self.armed.lock().len())
            .field("lost", &self.lost.lock().len())
            .finish_non_exhaustive()
    }
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl<S> Probe<S> {
    /// Wraps `inner`: counting only, nothing armed.
    pub fn new(inner: S) -> Self {
        Probe {
            inner,
            calls: Calls::default(),
            fail: Switches::default(),
            fail_next: Countdowns::default(),
            failures: AtomicU64::new(0),
            exists_on_create: AtomicU32::new(0),
            corrupt_load: AtomicBool::new(false),
            hold_cleanup: AtomicBool::new(false),
            replies_lost: AtomicU64::new(0),
            cleanups_finished: AtomicU64::new(0),
            cleanup_release: Semaphore::new(0),
            armed: Mutex::new(Vec::new()),
            lost: Mutex::new(Vec::new()),
        }
    }

    /// Wraps `inner` with every [`fail`](Self::fail) switch on: a dead store.
    pub fn dead(inner: S) -> Self {
        let s = Self::new(inner);
        s.set_all(true);
        s
    }

    /// Turns every [`fail`](Self::fail) switch on or off.
    pub fn set_all(&self, on: bool) {
        for flag in self.fail.all() {
            flag.store(on, Ordering::SeqCst);
        }
    }

    /// The wrapped store, for checks that must not count.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The counts so far.
    pub fn counts(&self) -> CallCounts {
        let c = &self.calls;
        let get = |n: &AtomicU64| n.load(Ordering::SeqCst);
        CallCounts {
            create: get(&c.create),
            load: get(&c.load),
            apply: get(&c.apply),
            delete: get(&c.delete),
            rename: get(&c.rename),
            cleanup: get(&c.cleanup),
            owned_by: get(&c.owned_by),
        }
    }

    /// Cleanups that reached the probe.
    pub fn cleanups_started(&self) -> u64 {
        self.calls.cleanup.load(Ordering::SeqCst)
    }

    /// Cleanups that returned (successfully or not) from the inner store.
    pub fn cleanups_finished(&self) -> u64 {
        self.cleanups_finished.load(Ordering::SeqCst)
    }

    /// Lets one held cleanup (see [`hold_cleanup`](Self::hold_cleanup)) go on.
    pub fn release_cleanup(&self) {
        self.cleanup_release.add_permits(1);
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
        self.lost.lock().push(op);
    }

    /// How many lost replies are still armed.
    pub fn lost_replies_pending(&self) -> usize {
        self.lost.lock().len()
    }

    fn matches(wanted: Option<SessionKey>, keys: &[SessionKey]) -> bool {
        wanted.is_none_or(|k| keys.contains(&k))
    }

    /// Counts the call, then fails it if its switch is on or its countdown is not spent.
    fn enter(&self, op: Op) -> Result<()> {
        self.calls.get(op).fetch_add(1, Ordering::SeqCst);
        if self.fail.get(op).load(Ordering::SeqCst) || take(self.fail_next.get(op)) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            Err(Error::unavailable(format!("{op:?} failed on command")))
        } else {
            Ok(())
        }
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
            let _ = armed.reached.send(());
            // Released, or the test dropped its handle: go on either way.
            let _ = armed.release.await;
        }
    }

    /// Turns a successful call into a lost reply when one is armed for it.
    fn after_write<T>(&self, op: Op, result: Result<T>) -> Result<T> {
        let value = result?;
        let hit = {
            let mut lost = self.lost.lock();
            let found = lost.iter().position(|l| *l == op);
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
impl<S: Store> Store for Probe<S> {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        self.enter(Op::Create)?;
        if take(&self.exists_on_create) {
            return Err(Error::AlreadyExists);
        }
        let result = self.inner.create(key, record).await;
        self.stop_at(Point::AfterCreate, &[*key]).await;
        self.after_write(Op::Create, result)
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        self.enter(Op::Load)?;
        if self.corrupt_load.load(Ordering::SeqCst) {
            return Err(Error::corrupt("injected", "probe"));
        }
        let result = self.inner.load(key).await;
        self.stop_at(Point::AfterLoad, &[*key]).await;
        self.after_write(Op::Load, result)
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        self.enter(Op::Apply)?;
        let result = self.inner.apply(key, changes).await;
        self.stop_at(Point::AfterApply, &[*key]).await;
        self.after_write(Op::Apply, result)
    }

    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        self.enter(Op::Delete)?;
        let result = self.inner.delete(key).await;
        self.stop_at(Point::AfterDelete, &[*key]).await;
        self.after_write(Op::Delete, result)
    }

    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        self.enter(Op::Rename)?;
        let result = self.inner.rename(from, to, grace).await;
        self.stop_at(Point::AfterRename, &[*from, *to]).await;
        self.after_write(Op::Rename, result)
    }

    async fn cleanup(&self) -> Result<u64> {
        self.enter(Op::Cleanup)?;
        if self.hold_cleanup.load(Ordering::SeqCst) {
            self.cleanup_release
                .acquire()
                .await
                .map_err(|e| Error::unavailable_from("closed", e))?
                .forget();
        }
        let result = self.inner.cleanup().await;
        self.cleanups_finished.fetch_add(1, Ordering::SeqCst);
        self.after_write(Op::Cleanup, result)
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        self.enter(Op::OwnedBy)?;
        let result = self.inner.owned_by(owner).await;
        self.stop_at(Point::AfterOwnedBy, &[]).await;
        self.after_write(Op::OwnedBy, result)
    }
}
