//! sqlx and SQLite errors to the core's [`Error`] kinds.

use sessionkit::Error;

/// SQLite's primary result codes this store tells apart (the low byte of an extended code).
const SQLITE_PERM: i64 = 3;
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_NOTADB: i64 = 26;

/// Maps an sqlx error met while `doing` something to the error kind callers branch on:
/// a lock held past the busy timeout or an exhausted pool is [`Error::Unavailable`]
/// (retrying may help), a damaged database file [`Error::Corrupt`], anything else
/// [`Error::Storage`] with a message that names the cause.
pub(crate) fn db_error(doing: &str, err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::PoolTimedOut => Error::unavailable_from(
            format!("sqlite store: timed out waiting for a connection while {doing}"),
            err,
        ),
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            Error::unavailable_from(format!("sqlite store: closed while {doing}"), err)
        }
        sqlx::Error::Database(db) => {
            let code = db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .unwrap_or_default();
            let why = match code & 0xff {
                SQLITE_BUSY | SQLITE_LOCKED => {
                    return Error::unavailable_from(
                        format!(
                            "sqlite store: the database stayed locked past the busy timeout \
                             while {doing}"
                        ),
                        err,
                    );
                }
                SQLITE_CORRUPT | SQLITE_NOTADB => {
                    return Error::corrupt(
                        format!("sqlite store: the database file is damaged ({doing})"),
                        err,
                    );
                }
                SQLITE_FULL => "disk full",
                SQLITE_READONLY => "read-only database",
                SQLITE_PERM => "permission denied",
                SQLITE_IOERR => "I/O error",
                SQLITE_CANTOPEN => "cannot open the database file",
                _ => "database error",
            };
            Error::storage(format!("sqlite store: {why} while {doing}"), err)
        }
        sqlx::Error::Io(_) => Error::storage(format!("sqlite store: I/O error while {doing}"), err),
        _ => Error::storage(format!("sqlite store: failed while {doing}"), err),
    }
}
