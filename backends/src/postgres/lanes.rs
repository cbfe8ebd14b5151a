//! The connections of the one-statement operations (load, create, save, delete, move): a
//! minimal pool of its own, because sqlx's pool pings every connection it takes back (and,
//! by default, every one it hands out), which tripled the round trips of an operation that
//! is one statement.
//!
//! A lease takes a permit (at most `size` connections are in use), then an idle connection,
//! or opens one within the connect timeout. A connection goes back to the idle list only when
//! its operation finished without an error: one whose operation failed or was cancelled
//! (dropped mid-statement, by the operation timeout say) is closed, so no half-read reply is
//! ever taken for the next one's. A connection idle for [`PING_IDLE`] is pinged before it is
//! used again, so one the server dropped meanwhile (a restart) is replaced, not failed on.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

/// A connection idle for this long is pinged before it is used again.
pub(super) const PING_IDLE: Duration = Duration::from_secs(1);

/// The pool of the one-statement operations.
pub(super) struct Lanes {
    options: PgConnectOptions,
    connect_timeout: Duration,
    permits: Semaphore,
    idle: Mutex<Vec<(PgConnection, Instant)>>,
}

impl Lanes {
    /// At most `size` connections, opened when first needed.
    pub(super) fn new(options: PgConnectOptions, size: u32, connect_timeout: Duration) -> Self {
        let size = usize::try_from(size).unwrap_or(1).max(1);
        Lanes {
            options,
            connect_timeout,
            permits: Semaphore::new(size),
            idle: Mutex::new(Vec::with_capacity(size)),
        }
    }

    /// A connection for one operation; give it back with [`Lease::done`].
    pub(super) async fn lease(&self) -> Result<Lease<'_>, sqlx::Error> {
        let permit = tokio::time::timeout(self.connect_timeout, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let Some((mut conn, since)) = idle else {
                break;
            };
            if since.elapsed() < PING_IDLE || conn.ping().await.is_ok() {
                return Ok(Lease {
                    lanes: self,
                    conn,
                    _permit: permit,
                });
            }
            tracing::debug!(
                target: "sessionkit",
                "postgres: an idle connection is gone; opening another"
            );
        }
        let conn = tokio::time::timeout(
            self.connect_timeout,
            PgConnection::connect_with(&self.options),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(Lease {
            lanes: self,
            conn,
            _permit: permit,
        })
    }
}

/// One connection, in use by one operation. Dropped without [`done`](Self::done) (an error, a
/// cancellation), it is closed.
pub(super) struct Lease<'a> {
    lanes: &'a Lanes,
    conn: PgConnection,
    _permit: SemaphorePermit<'a>,
}

impl Lease<'_> {
    /// The connection.
    pub(super) fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// The operation finished cleanly: the connection goes back to the idle list (before the
    /// permit is released, so the next lease finds it).
    pub(super) fn done(self) {
        let Lease {
            lanes,
            conn,
            _permit,
        } = self;
        lanes
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((conn, Instant::now()));
    }
}
