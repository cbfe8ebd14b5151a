//! A child process for the SqliteStore crash test (`tests/tests/test_sqlite_store.rs`): it
//! saves versioned sessions in a loop until it is killed, and acknowledges each round on
//! stdout only after every save of the round returned.
//!
//! ```text
//! sqlite_writer crash <db-path> <sync|nosync> <sessions>   write forever (until SIGKILL)
//! ```
//!
//! Each round prints `ack <v>`: every session was saved at version `v` (fields `v` and
//! `blob`, see `sessionkit_tests::crash`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test child process: it stops on a broken setup"
)]

use sessionkit_backends::SqliteConfig;
use sessionkit_tests::crash;

async fn run_crash(path: &str, durability: &str, sessions: usize) {
    let store = SqliteConfig::new(path)
        .with_durability(crash::durability(durability))
        .open()
        .await
        .unwrap();
    crash::write_until_killed(&store, sessions, true).await
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["crash", path, durability, n] => run_crash(path, durability, n.parse().unwrap()).await,
        _ => panic!("usage: see the module docs"),
    }
}
