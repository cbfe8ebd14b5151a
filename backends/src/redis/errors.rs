//! How redis-rs failures become the core's errors: the kinds ([`map_error`]), the time limit
//! on every request ([`timed`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind};
use sessionkit::store::{Error, Result};

use crate::server_errors;

/// The kind of the I/O error inside a redis-rs error (which keeps it behind an `Arc`).
fn io_error_kind(err: &RedisError) -> Option<std::io::ErrorKind> {
    type Shared = Arc<dyn std::error::Error + Send + Sync>;
    let source = std::error::Error::source(err)?;
    let io = match source.downcast_ref::<Shared>() {
        Some(shared) => shared.downcast_ref::<std::io::Error>(),
        None => source.downcast_ref::<std::io::Error>(),
    };
    io.map(std::io::Error::kind)
}

/// Sorts a redis-rs error into the core's kinds: cannot reach or no answer → unavailable
/// (transient); everything the server answered with, and a peer we refuse to trust (a TLS
/// certificate that does not verify) → a storage failure.
pub(super) fn map_error(op: &'static str, err: RedisError) -> Error {
    let io_kind = io_error_kind(&err);
    let unavailable = match err.kind() {
        ErrorKind::Io => !matches!(
            io_kind,
            Some(std::io::ErrorKind::InvalidData | std::io::ErrorKind::PermissionDenied)
        ),
        ErrorKind::ClusterConnectionNotFound => true,
        ErrorKind::Server(kind) => matches!(
            kind,
            ServerErrorKind::ClusterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::BusyLoading
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::ReadOnly
        ),
        // BUSY: a script runs past the server's time limit; it ends or gets killed.
        _ => {
            err.code() == Some("BUSY")
                || err.is_timeout()
                || err.is_connection_dropped()
                || err.is_connection_refusal()
        }
    };
    server_errors::sorted("redis", op, unavailable, err)
}

/// Runs one request within `limit`: no answer in time is [`Error::Unavailable`]; the
/// server's own reply, success or error, is handed back for the caller to sort (a
/// `WRONGTYPE` means different things to different callers).
pub(super) async fn answered<T>(
    op: &'static str,
    limit: Duration,
    fut: impl Future<Output = RedisResult<T>>,
) -> Result<RedisResult<T>> {
    server_errors::within("redis", op, limit, fut).await
}

/// Runs one request within `limit`, its failure sorted by [`map_error`].
pub(super) async fn timed<T>(
    op: &'static str,
    limit: Duration,
    fut: impl Future<Output = RedisResult<T>>,
) -> Result<T> {
    answered(op, limit, fut)
        .await?
        .map_err(|err| map_error(op, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unavailable_and_server_errors_are_not() {
        let io: RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
        assert!(matches!(map_error("load", io), Error::Unavailable { .. }));
        let server: RedisError =
            (ErrorKind::Server(ServerErrorKind::ResponseError), "ERR x").into();
        assert!(matches!(map_error("load", server), Error::Storage { .. }));
        let down: RedisError = (ErrorKind::Server(ServerErrorKind::ClusterDown), "down").into();
        assert!(map_error("load", down).is_transient());
        let tls: RedisError =
            std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid peer certificate").into();
        assert!(matches!(map_error("connect", tls), Error::Storage { .. }));
    }
}
