//! The crash tests of the embedded stores (`test_file_store`, `test_sqlite_store`): what their
//! child writers (`file_writer crash`, `sqlite_writer crash`) write until they are killed, and
//! what the parent checks after each kill. Shared so the writers and the checks agree.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sessionkit::SessionKey;
use sessionkit::store::{ChangeSet, Record, Store};
use sessionkit_backends::Durability;

/// The key of session `i` in the crash test.
pub fn crash_key(i: usize) -> SessionKey {
    SessionKey::from_bytes([i as u8; 32])
}

/// The value of the `blob` field at version `v`: its size and every byte depend on `v`, so a
/// torn or mixed write cannot pass for a whole one.
pub fn blob(v: u64) -> Bytes {
    let len = 1024 + (v % 64) as usize * 1024;
    Bytes::from(
        v.to_le_bytes()
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect::<Vec<u8>>(),
    )
}

/// The save of version `v`: the fields `v` (little-endian) and [`blob`]`(v)`.
pub fn versioned(v: u64) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.set
        .insert("v".into(), Bytes::copy_from_slice(&v.to_le_bytes()));
    c.set.insert("blob".into(), blob(v));
    c
}

/// The version a session's fields hold.
pub fn version(fields: &std::collections::BTreeMap<String, Bytes>) -> u64 {
    u64::from_le_bytes(fields["v"][..].try_into().unwrap())
}

/// The writers' durability argument: `sync`, anything else `NoSync`.
pub fn durability(arg: &str) -> Durability {
    match arg {
        "sync" => Durability::Sync,
        _ => Durability::NoSync,
    }
}

/// Writes `line` to stdout and flushes it, for the parent reading the child's pipe.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// The child's loop: creates the `sessions` sessions that are missing (or continues after the
/// highest version found), says `ready`, then saves every session at the next version, round
/// after round, until it is killed. With `ack`, each round ends with `ack <v>` once every
/// save of the round returned.
pub async fn write_until_killed<S: Store>(store: &S, sessions: usize, ack: bool) {
    let mut next = 0u64;
    for i in 0..sessions {
        let key = crash_key(i);
        match store.load(&key).await.unwrap() {
            Some(loaded) => next = next.max(version(&loaded.record.fields) + 1),
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
        if ack {
            say(&format!("ack {next}"));
        }
        next += 1;
    }
}

/// The parent's check after kill `round` (of a writer in durability `mode`): every session
/// reads back from `store` whole, at a version no older than `last` holds for it and, where
/// the writer acknowledged a round, no older than `acked`. Moves `last` to what was read.
pub async fn check_after_kill<S: Store>(
    store: &S,
    round: usize,
    mode: &str,
    last: &mut [u64],
    acked: Option<u64>,
) {
    for (i, last) in last.iter_mut().enumerate() {
        let loaded = store
            .load(&crash_key(i))
            .await
            .unwrap_or_else(|e| panic!("round {round}, session {i}: {e}"))
            .unwrap_or_else(|| panic!("round {round}, session {i} is missing"));
        let v = version(&loaded.record.fields);
        assert_eq!(
            loaded.record.fields["blob"],
            blob(v),
            "round {round}, session {i} torn"
        );
        assert!(
            v >= *last,
            "round {round}, session {i} went back from {last} to {v}"
        );
        if let Some(acked) = acked {
            assert!(
                v >= acked,
                "round {round} ({mode}), session {i}: acknowledged version {acked} lost, \
                 found {v}"
            );
        }
        *last = v;
    }
}
