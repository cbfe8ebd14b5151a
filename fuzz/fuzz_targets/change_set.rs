//! Change-set application: arbitrary operations against MemoryStore and a
//! TieredStore<MemoryStore, MemoryStore>, checked against a plain map of `Record`s.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sessionkit::store::{ChangeSet, Record, Store, from_millis, to_millis};
use sessionkit::{Error, MemoryStore, SessionKey, TieredStore};

#[derive(Arbitrary, Debug)]
struct Changes {
    clear: bool,
    remove: BTreeSet<String>,
    set: BTreeMap<String, Vec<u8>>,
    /// Seconds past an hour from now.
    expires_in: Option<u16>,
    owner: Option<Option<String>>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Create(u8, BTreeMap<String, Vec<u8>>, Option<String>),
    Apply(u8, Changes),
    Delete(u8),
    Load(u8),
    Rename(u8, u8),
    OwnedBy(String),
}

fn key(k: u8) -> SessionKey {
    let mut b = [7u8; 32];
    b[0] = k % 4;
    SessionKey::from_bytes(b)
}

fn at(now_ms: u64, secs: u16) -> SystemTime {
    from_millis(now_ms + 3_600_000 + u64::from(secs) * 1000)
}

fn bytes_map(m: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Bytes> {
    m.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect()
}

async fn run(store: &dyn Store, ops: &[Op], now_ms: u64, cached: bool) {
    let mut model: BTreeMap<u8, Record> = BTreeMap::new();
    let same = |got: Option<Record>, want: Option<&Record>| match (got, want) {
        (None, None) => true,
        (Some(g), Some(w)) if cached => {
            g.fields == w.fields && g.owner == w.owner && g.expires_at <= w.expires_at
        }
        (Some(g), Some(w)) => g == *w,
        _ => false,
    };
    for op in ops {
        match op {
            Op::Create(k, fields, owner) => {
                let k = k % 4;
                let record =
                    Record::from_parts(bytes_map(fields.clone()), at(now_ms, 0), owner.clone());
                let got = store.create(&key(k), &record).await;
                if model.contains_key(&k) {
                    assert!(matches!(got, Err(Error::AlreadyExists)), "{got:?}");
                } else {
                    got.expect("create");
                    model.insert(k, record);
                }
            }
            Op::Apply(k, c) => {
                let k = k % 4;
                let changes = {
                    let mut change_set = ChangeSet::default();
                    change_set.clear = c.clear;
                    change_set.remove = c.remove.clone();
                    change_set.set = bytes_map(c.set.clone());
                    change_set.expires_at = c.expires_in.map(|s| at(now_ms, s));
                    change_set.owner = c.owner.clone();
                    change_set
                };
                let got = store.apply(&key(k), &changes).await;
                match model.get_mut(&k) {
                    Some(r) => {
                        got.expect("apply");
                        r.apply(&changes).expect("model apply");
                    }
                    None => assert!(matches!(got, Err(Error::Gone)), "{got:?}"),
                }
            }
            Op::Delete(k) => {
                store.delete(&key(k % 4)).await.expect("delete");
                model.remove(&(k % 4));
            }
            Op::Load(k) => {
                let got = store
                    .load(&key(k % 4))
                    .await
                    .expect("load")
                    .map(|l| l.record);
                assert!(same(got, model.get(&(k % 4))));
            }
            Op::Rename(a, b) => {
                let (a, b) = (a % 4, b % 4);
                if a == b {
                    continue;
                }
                let got = store.rename(&key(a), &key(b), None).await;
                if !model.contains_key(&a) {
                    assert!(matches!(got, Err(Error::Gone)), "{got:?}");
                } else if model.contains_key(&b) {
                    assert!(matches!(got, Err(Error::AlreadyExists)), "{got:?}");
                } else {
                    got.expect("rename");
                    let r = model.remove(&a).expect("present");
                    model.insert(b, r);
                }
            }
            Op::OwnedBy(o) => {
                let got: BTreeSet<SessionKey> = store
                    .owned_by(o)
                    .await
                    .expect("owned_by")
                    .into_iter()
                    .collect();
                let want: BTreeSet<SessionKey> = model
                    .iter()
                    .filter(|(_, r)| r.owner.as_deref() == Some(o.as_str()))
                    .map(|(k, _)| key(*k))
                    .collect();
                assert_eq!(got, want);
            }
        }
    }
    for k in 0..4 {
        let got = store.load(&key(k)).await.expect("load").map(|l| l.record);
        assert!(same(got, model.get(&k)), "final state of {k}");
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let now_ms = to_millis(SystemTime::now() + Duration::ZERO);
    rt.block_on(async {
        run(&MemoryStore::new(), &ops, now_ms, false).await;
        run(
            &TieredStore::new(MemoryStore::new(), MemoryStore::new()),
            &ops,
            now_ms,
            true,
        )
        .await;
    });
});
