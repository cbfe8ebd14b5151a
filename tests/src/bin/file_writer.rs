//! A child process for the FileStore tests (`tests/tests/test_file_store.rs`): it writes to a
//! store directory in one of a few modes so the tests can kill it mid-write, run two writers
//! against one session, or watch it hit a real permission or size error.
//!
//! ```text
//! file_writer crash <root> <sync|nosync> <sessions>   write forever (until SIGKILL)
//! file_writer merge <root> <key-hex> <prefix> <count> set <prefix>-0..count on one session
//! file_writer ops <root> <key-hex>                    open, wait for a stdin line, try each operation
//! file_writer big <root> <key-hex> <bytes>            one save of a value of <bytes> bytes
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a measuring tool: it prints its report and stops on a broken setup"
)]

use std::io::BufRead as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sessionkit::store::{ChangeSet, Error, Record, Store};
use sessionkit::{SessionId, SessionKey};
use sessionkit_backends::FileStore;
use sessionkit_backends::file::FileConfig;
use sessionkit_tests::crash::{self, say};

fn outcome<T>(op: &str, r: sessionkit::Result<T>) -> String {
    match r {
        Ok(_) => format!("{op} ok"),
        Err(e) => {
            let kind = match &e {
                Error::Storage { .. } => "storage",
                Error::Corrupt { .. } => "corrupt",
                Error::Gone => "gone",
                Error::AlreadyExists => "exists",
                _ => "other",
            };
            format!("{op} err {kind} {e}")
        }
    }
}

async fn run_crash(root: &str, durability: &str, sessions: usize) {
    let store = FileConfig::new(root)
        .with_durability(crash::durability(durability))
        .open()
        .await
        .unwrap();
    crash::write_until_killed(&store, sessions, false).await
}

async fn merge(root: &str, key: SessionKey, prefix: &str, count: usize) {
    let store = FileStore::open(root).await.unwrap();
    for i in 0..count {
        let mut c = ChangeSet::default();
        c.set.insert(
            format!("{prefix}-{i}"),
            Bytes::copy_from_slice(&i.to_le_bytes()),
        );
        store.apply(&key, &c).await.unwrap();
    }
    say("done");
}

async fn ops(root: &str, key: SessionKey) {
    let store = FileStore::open(root).await.unwrap();
    say("open");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    let loaded = store.load(&key).await;
    say(&match &loaded {
        Ok(Some(l)) => format!("load ok {}", l.record.fields.len()),
        Ok(None) => "load ok absent".into(),
        Err(e) => format!("load err {e}"),
    });
    let mut c = ChangeSet::default();
    c.set.insert("late".into(), Bytes::from_static(b"x"));
    say(&outcome("apply", store.apply(&key, &c).await));
    let fresh = SessionId::generate().unwrap().key();
    let r = Record::new(SystemTime::now() + Duration::from_secs(60));
    say(&outcome("create", store.create(&fresh, &r).await));
    say(&outcome("rename", store.rename(&key, &fresh, None).await));
    say(&outcome("delete", store.delete(&key).await));
    say(&outcome("cleanup", store.cleanup().await));
}

async fn big(root: &str, key: SessionKey, bytes: usize) {
    let store = FileStore::open(root).await.unwrap();
    let mut c = ChangeSet::default();
    c.set.insert("big".into(), Bytes::from(vec![7u8; bytes]));
    say(&outcome("apply", store.apply(&key, &c).await));
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let key = |s: &str| SessionKey::from_hex(s).expect("a 64-hex key");
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["crash", root, durability, n] => run_crash(root, durability, n.parse().unwrap()).await,
        ["merge", root, k, prefix, n] => merge(root, key(k), prefix, n.parse().unwrap()).await,
        ["ops", root, k] => ops(root, key(k)).await,
        ["big", root, k, n] => big(root, key(k), n.parse().unwrap()).await,
        _ => panic!("usage: see the module docs"),
    }
}
