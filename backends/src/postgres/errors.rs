//! How sqlx failures become the core's errors, and the time limit on every operation.

use std::future::Future;
use std::time::Duration;

use sessionkit::store::{Error, Result};

use crate::server_errors;

/// SQLSTATE codes that mean "the server cannot serve this now, try again": its shutdown,
/// startup, or connection limit, and transaction conflicts.
fn transient_state(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
        )
}

/// Sorts a sqlx error into the core's kinds: cannot reach, no answer, shutting down, pool
/// exhausted → [`Error::Unavailable`] (transient); everything else the server answered →
/// [`Error::Storage`].
pub(super) fn map_error(op: &'static str, err: sqlx::Error) -> Error {
    let unavailable = match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // The server went away in the middle of a message.
        sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| transient_state(&c)),
        _ => false,
    };
    server_errors::sorted("postgres", op, unavailable, err)
}

/// Runs one operation within `limit`; no answer in time is [`Error::Unavailable`].
pub(super) async fn timed<T>(
    op: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    server_errors::within("postgres", op, limit, fut).await?
}

/// `.map_err` shorthand for one operation's sqlx errors.
pub(super) fn sql(op: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |err| map_error(op, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_and_pool_errors_are_unavailable_others_are_storage() {
        let io = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(matches!(map_error("load", io), Error::Unavailable { .. }));
        assert!(map_error("load", sqlx::Error::PoolTimedOut).is_transient());
        assert!(matches!(
            map_error("load", sqlx::Error::RowNotFound),
            Error::Storage { .. }
        ));
        assert!(transient_state("08006") && transient_state("57P01"));
        assert!(
            !transient_state("42P01"),
            "undefined table is not transient"
        );
    }
}
