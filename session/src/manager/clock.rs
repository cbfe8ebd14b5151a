//! Where the manager gets the time from: the system clock, or a clock tests move by hand.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

/// A source of the current time for the [`SessionManager`](super::SessionManager).
///
/// Idle, absolute and rotation deadlines are all measured with it, so a [`ManualClock`] lets a
/// test walk a session through hours of its life in milliseconds.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock, the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until moved. Clones share the same time.
///
/// Start it at the real time (as [`ManualClock::new`] does) when the store is a real one:
/// stores expire records by the system clock, the manager by this one, and a manual clock
/// that runs ahead only makes the manager stricter than the store.
///
/// ```
/// use sessionkit::{Clock, manager::ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(clock.now(), start + Duration::from_secs(3600));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock set to the current system time.
    pub fn new() -> Self {
        Self::at(SystemTime::now())
    }

    /// A clock set to `time`.
    pub fn at(time: SystemTime) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(time)),
        }
    }

    /// Moves the clock forward by `by` (no further than the platform's `SystemTime` reaches).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock();
        *now = crate::limits::later(*now, by);
    }

    /// Sets the clock to `time` (forward or back).
    pub fn set(&self, time: SystemTime) {
        *self.now.lock() = time;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock")
            .field(&*self.now.lock())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock()
    }
}
