//! Measures what FileStore's durability option costs on this machine:
//! `cargo run --release -p sessionkit-tests --bin file_bench [-- <ops> <dir>]`.
//!
//! Prints the mean latency of sequential `apply`s (1 KiB session, one field changed) and
//! `load`s with `Durability::Sync` and `Durability::NoSync`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a measuring tool: it prints its report and stops on a broken setup"
)]

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sessionkit::SessionId;
use sessionkit::store::{ChangeSet, Record, Store};
use sessionkit_backends::file::{Durability, FileConfig};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let ops: u32 = args.next().map_or(2000, |n| n.parse().unwrap());
    let base = args.next().map_or_else(std::env::temp_dir, Into::into);
    for durability in [Durability::Sync, Durability::NoSync] {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let store = FileConfig::new(dir.path())
            .with_durability(durability)
            .open()
            .await
            .unwrap();
        let key = SessionId::generate().unwrap().key();
        let mut r = Record::new(SystemTime::now() + Duration::from_secs(3600));
        r.fields
            .insert("payload".into(), Bytes::from(vec![1u8; 1024]));
        store.create(&key, &r).await.unwrap();
        let start = Instant::now();
        for i in 0..ops {
            let mut c = ChangeSet::default();
            c.set
                .insert("n".into(), Bytes::copy_from_slice(&i.to_le_bytes()));
            store.apply(&key, &c).await.unwrap();
        }
        let apply = start.elapsed() / ops;
        let start = Instant::now();
        for _ in 0..ops {
            store.load(&key).await.unwrap().unwrap();
        }
        let load = start.elapsed() / ops;
        println!("{durability:?}: apply {apply:?}/op, load {load:?}/op ({ops} ops)");
    }
}
