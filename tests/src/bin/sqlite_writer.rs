//! A child process for the SqliteStore crash test (`tests/tests/test_sqlite_store.rs`): it
//! saves versioned sessions in a loop until it is killed, and acknowledges each round on
//! stdout only after every save of the round returned.
//!
//! ```text
//! sqlite_writer crash <db-path> <sync|nosync> <sessions>   write forever (until SIGKILL)
//! ```
//!
//! Each round prints `ack <v>`: every session was saved at version `v` (fields `v` and
//! `blob`, see `sessionkit_tests::file_crash`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test child process: it stops on a broken setup"
)]

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sessionkit::store::{ChangeSet, Record, Store};
use sessionkit_backends::{Durability, SqliteConfig};
use sessionkit_tests::file_crash::{blob, crash_key};

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

fn versioned(v: u64) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.set
        .insert("v".into(), Bytes::copy_from_slice(&v.to_le_bytes()));
    c.set.insert("blob".into(), blob(v));
    c
}

async fn crash(path: &str, durability: &str, sessions: usize) {
    let durability = match durability {
        "sync" => Durability::Sync,
        _ => Durability::NoSync,
    };
    let store = SqliteConfig::new(path)
        .with_durability(durability)
        .open()
        .await
        .unwrap();
    let mut next = 0u64;
    for i in 0..sessions {
        let key = crash_key(i);
        match store.load(&key).await.unwrap() {
            Some(loaded) => {
                let v = u64::from_le_bytes(loaded.record.fields["v"][..].try_into().unwrap());
                next = next.max(v + 1);
            }
            None => {
                let mut r = Record::new(SystemTime::now() + Duration::from_secs(3600));
                r.fields = versioned(0).set;
                store.create(&key, &r).await.unwrap();
            }
        }
    }
    say("ready");
    loop {
        for i in 0..sessions {
            store.apply(&crash_key(i), &versioned(next)).await.unwrap();
        }
        say(&format!("ack {next}"));
        next += 1;
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["crash", path, durability, n] => crash(path, durability, n.parse().unwrap()).await,
        _ => panic!("usage: see the module docs"),
    }
}
