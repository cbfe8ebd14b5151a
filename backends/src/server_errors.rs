//! What the network stores (Redis, PostgreSQL) share in turning a client's failures into the
//! core's errors: the two kinds a failure is sorted into, and the time limit on a request.

use std::future::Future;
use std::time::Duration;

use sessionkit::error::BoxError;
use sessionkit::store::{Error, Result};

/// `server`'s failure of `op`: [`Error::Unavailable`] (transient: cannot reach the server,
/// no answer) when `unavailable`, otherwise [`Error::Storage`] (the server answered with it).
pub(crate) fn sorted(server: &str, op: &str, unavailable: bool, err: impl Into<BoxError>) -> Error {
    if unavailable {
        Error::unavailable_from(format!("{server} {op}: cannot reach the server"), err)
    } else {
        Error::storage(format!("{server} {op} failed"), err)
    }
}

/// Waits for `fut` at most `limit`: no answer in time is [`Error::Unavailable`]; what `fut`
/// gives back, success or failure, is the caller's to sort.
pub(crate) async fn within<F: Future>(
    server: &str,
    op: &str,
    limit: Duration,
    fut: F,
) -> Result<F::Output> {
    tokio::time::timeout(limit, fut).await.map_err(|elapsed| {
        Error::unavailable_from(
            format!("{server} {op}: no answer within {limit:?}"),
            elapsed,
        )
    })
}
