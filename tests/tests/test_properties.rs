//! Property tests over everything that parses outside data or applies changes: id parsing,
//! the Cookie header, stored-bytes decoding, store semantics against a model, and the web
//! layer under arbitrary headers.
//!
//! Run: `cargo nextest run -p sessionkit-tests --test test_properties`
//! (more cases: `PROPTEST_CASES=5000 cargo nextest run -p sessionkit-tests --test test_properties`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request};
use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::Config;
use sessionkit::store::{ChangeSet, Entry, Record, Store};
use sessionkit::{
    Error, MemoryStore, RequestInfo, SessionConfig, SessionId, SessionKey, SessionManager,
    TieredStore, store::from_millis, store::to_millis,
};
use sessionkit_backends::FileStore;
use sessionkit_tests::probe::Probe;
use tower::ServiceExt as _;

/// `cases` unless `PROPTEST_CASES` asks for more (or fewer).
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

// ---------------------------------------------------------------------------------------
// SessionId::parse

fn is_canonical(s: &str) -> bool {
    SessionId::parse(s).is_some_and(|id| id.expose() == s)
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn id_parse_never_panics_and_only_accepts_canonical_forms(s in any::<String>()) {
        if let Some(id) = SessionId::parse(&s) {
            prop_assert_eq!(id.expose(), s);
        }
    }

    #[test]
    fn id_parse_on_the_right_alphabet_and_length(s in "[A-Za-z0-9_-]{43}") {
        // Exactly the canonical spellings pass: re-encoding gives the same text.
        match SessionId::parse(&s) {
            Some(id) => prop_assert_eq!(id.expose(), s),
            None => {
                // Rejected only for non-zero trailing bits in the last character.
                let last = s.as_bytes()[42];
                let pos = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                    .iter()
                    .position(|&c| c == last)
                    .expect("alphabet");
                prop_assert!(pos & 3 != 0, "{s:?} rejected");
            }
        }
    }

    #[test]
    fn every_generated_spelling_parses_back(bytes in any::<[u8; 32]>()) {
        let id = SessionId::from_bytes(bytes);
        prop_assert!(is_canonical(&id.expose()));
        prop_assert_eq!(SessionId::parse(&id.expose()), Some(id));
    }

    #[test]
    fn key_hex_round_trips_and_rejects_others(s in "[0-9a-fA-F]{60,68}") {
        match SessionKey::from_hex(&s) {
            Some(k) => prop_assert_eq!(k.to_hex(), s),
            None => prop_assert!(s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase())),
        }
    }
}

// ---------------------------------------------------------------------------------------
// SessionManager::load with arbitrary Cookie header bytes

/// Some 43-byte window of `bytes` is an id `SessionId::parse` accepts.
fn holds_a_well_formed_id(bytes: &[u8]) -> bool {
    bytes
        .windows(43)
        .any(|w| std::str::from_utf8(w).is_ok_and(|s| SessionId::parse(s).is_some()))
}

fn cookie_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"id=".to_vec()),
        Just(b"id".to_vec()),
        Just(b"; ".to_vec()),
        Just(b";".to_vec()),
        Just(b"=".to_vec()),
        Just(b"\"".to_vec()),
        Just(b" ".to_vec()),
        Just(b"ID=".to_vec()),
        Just(b"__Host-id=".to_vec()),
        Just(b"__host-id=".to_vec()),
        Just(b"__Secure-id=".to_vec()),
        "[A-Za-z0-9_-]{0,45}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..8),
        any::<[u8; 32]>().prop_map(|b| SessionId::from_bytes(b).expose().into_bytes()),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn load_never_panics_and_only_well_formed_ids_reach_the_store(
        headers in proptest::collection::vec(cookie_bytes(), 0..3),
        ua in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
        let store = Arc::new(Probe::new(MemoryStore::new()));
        let manager = SessionManager::new(Arc::clone(&store), SessionConfig::default()).expect("config");
        let mut request = RequestInfo::new();
        for h in &headers {
            request = request.with_cookie_header(h.clone());
        }
        if let Some(ua) = ua {
            request = request.with_user_agent(ua);
        }
        let active = rt.block_on(manager.load(&request)).expect("load never fails on input");
        prop_assert!(active.is_new(), "an empty store has no session");
        if !headers.iter().any(|h| holds_a_well_formed_id(h)) {
            prop_assert_eq!(store.counts().request_calls(), 0, "{:?}", headers);
        }
        prop_assert!(store.counts().load <= 1);
        prop_assert_eq!(store.counts().writes(), 0);
    }

    #[test]
    fn a_well_formed_id_among_junk_is_looked_up_once(
        before in "[a-zA-Z0-9 =;\t]{0,40}",
        after in "[a-zA-Z0-9 =;\t]{0,40}",
        bytes in any::<[u8; 32]>(),
    ) {
        // Junk that cannot name our cookie: no "id" substring.
        prop_assume!(!before.to_ascii_lowercase().contains("id") && !after.to_ascii_lowercase().contains("id"));
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
        let store = Arc::new(Probe::new(MemoryStore::new()));
        let manager = SessionManager::new(Arc::clone(&store), SessionConfig::default().with_cookie_name("id")).expect("config");
        let id = SessionId::from_bytes(bytes).expose();
        let header = format!("{before};id={id};{after}");
        let request = RequestInfo::new().with_cookie_header(header.clone());
        let active = rt.block_on(manager.load(&request)).expect("load");
        prop_assert!(active.is_new());
        prop_assert_eq!(store.counts().load, 1, "{:?}", header);
    }
}

// ---------------------------------------------------------------------------------------
// Record::decode / Entry::decode

fn record() -> impl Strategy<Value = Record> {
    (
        proptest::collection::btree_map(
            "\\PC{0,12}",
            proptest::collection::vec(any::<u8>(), 0..24),
            0..6,
        ),
        0u64..=u64::from(u32::MAX) * 1000,
        proptest::option::of("\\PC{0,16}"),
    )
        .prop_map(|(fields, ms, owner)| {
            Record::from_parts(
                fields
                    .into_iter()
                    .map(|(k, v)| (k, Bytes::from(v)))
                    .collect(),
                from_millis(ms),
                owner,
            )
        })
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        record().prop_map(Entry::Record),
        (
            any::<[u8; 32]>(),
            0u64..=u64::from(u32::MAX) * 1000,
            proptest::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(to, ms, token)| Entry::Alias {
                to: SessionKey::from_bytes(to),
                until: from_millis(ms),
                token,
            }),
    ]
}

/// A mutation of an encoding: flip, overwrite, insert or truncate at a position.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(pos, op, byte) in edits {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let i = pos % bytes.len();
        match op % 4 {
            0 => bytes[i] ^= byte | 1,
            1 => bytes[i] = byte,
            2 => bytes.insert(i, byte),
            _ => bytes.truncate(i),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Record::decode(&bytes);
        let _ = Entry::decode(&bytes);
    }

    #[test]
    fn records_round_trip(r in record()) {
        let encoded = r.encode().expect("encode");
        prop_assert_eq!(Record::decode(&encoded).expect("decode"), r.clone());
        let e = Entry::Record(r);
        prop_assert_eq!(Entry::decode(&e.encode().expect("encode")).expect("decode"), e);
    }

    #[test]
    fn mutated_encodings_decode_or_fail_typed(
        e in entry(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let bytes = mutate(e.encode().expect("encode"), &edits);
        match Entry::decode(&bytes) {
            Ok(_) => {}
            Err(err) => prop_assert!(matches!(err, Error::Corrupt { .. }), "{err:?}"),
        }
        if let Entry::Record(r) = &e {
            let bytes = mutate(r.encode().expect("encode"), &edits);
            match Record::decode(&bytes) {
                Ok(_) => {}
                Err(err) => prop_assert!(matches!(err, Error::Corrupt { .. }), "{err:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Store model: random operations against MemoryStore, FileStore and TieredStore match a
// BTreeMap.

const KEYS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Create(usize, Record),
    Apply(usize, ChangeSet),
    Delete(usize),
    Load(usize),
    Rename(usize, usize),
    OwnedBy(String),
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("f:x".to_owned()),
        Just("m:exp".to_owned()),
        Just("ünï".to_owned()),
        "[a-z]{1,3}",
    ]
}

fn owner() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("alice".to_owned()),
        Just("bob".to_owned()),
        Just("c a{r}o/l".to_owned())
    ]
}

/// A time well in the future, to the millisecond (what every store keeps).
fn future() -> impl Strategy<Value = SystemTime> {
    (3_600_000u64..7_200_000).prop_map(|ms| from_millis(to_millis(SystemTime::now()) + ms))
}

fn live_record() -> impl Strategy<Value = Record> {
    (
        proptest::collection::btree_map(
            field_name(),
            proptest::collection::vec(any::<u8>(), 0..16),
            0..4,
        ),
        future(),
        proptest::option::of(owner()),
    )
        .prop_map(|(fields, expires_at, owner)| {
            Record::from_parts(
                fields
                    .into_iter()
                    .map(|(k, v)| (k, Bytes::from(v)))
                    .collect(),
                expires_at,
                owner,
            )
        })
}

fn change_set() -> impl Strategy<Value = ChangeSet> {
    (
        any::<bool>(),
        proptest::collection::btree_set(field_name(), 0..3),
        proptest::collection::btree_map(
            field_name(),
            proptest::collection::vec(any::<u8>(), 0..16),
            0..3,
        ),
        proptest::option::of(future()),
        proptest::option::of(proptest::option::of(owner())),
    )
        .prop_map(|(clear, remove, set, expires_at, owner)| {
            let mut change_set = ChangeSet::default();
            change_set.clear = clear;
            change_set.remove = remove;
            change_set.set = set.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect();
            change_set.expires_at = expires_at;
            change_set.owner = owner;
            change_set
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..KEYS, live_record()).prop_map(|(k, r)| Op::Create(k, r)),
        4 => (0..KEYS, change_set()).prop_map(|(k, c)| Op::Apply(k, c)),
        1 => (0..KEYS).prop_map(Op::Delete),
        2 => (0..KEYS).prop_map(Op::Load),
        1 => (0..KEYS, 0..KEYS).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => owner().prop_map(Op::OwnedBy),
    ]
}

fn key(i: usize) -> SessionKey {
    let mut b = [0u8; 32];
    b[0] = u8::try_from(i).expect("small");
    b[31] = 0x5a;
    SessionKey::from_bytes(b)
}

/// What a store's load returned matches the model's record. With `capped_expiry` (a
/// TieredStore answering from its cache) the reported expiry may be earlier than the
/// record's: the cache copy expires after at most `max_cache_ttl`.
fn same_record(got: Option<Record>, want: Option<&Record>, capped_expiry: bool) -> bool {
    match (got, want) {
        (None, None) => true,
        (Some(g), Some(w)) if capped_expiry => {
            g.fields == w.fields && g.owner == w.owner && g.expires_at <= w.expires_at
        }
        (Some(g), Some(w)) => g == *w,
        _ => false,
    }
}

async fn run_model(
    store: &dyn Store,
    ops: &[Op],
    capped_expiry: bool,
) -> Result<(), TestCaseError> {
    let mut model: BTreeMap<usize, Record> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Create(k, r) => {
                let got = store.create(&key(*k), r).await;
                if model.contains_key(k) {
                    prop_assert!(matches!(got, Err(Error::AlreadyExists)), "{op:?}: {got:?}");
                } else {
                    prop_assert!(got.is_ok(), "{op:?}: {got:?}");
                    model.insert(*k, r.clone());
                }
            }
            Op::Apply(k, c) => {
                let got = store.apply(&key(*k), c).await;
                match model.get_mut(k) {
                    Some(r) => {
                        prop_assert!(got.is_ok(), "{op:?}: {got:?}");
                        r.apply(c).unwrap();
                    }
                    None => prop_assert!(matches!(got, Err(Error::Gone)), "{op:?}: {got:?}"),
                }
            }
            Op::Delete(k) => {
                let got = store.delete(&key(*k)).await;
                prop_assert!(got.is_ok(), "{op:?}: {got:?}");
                model.remove(k);
            }
            Op::Load(k) => {
                let got = store.load(&key(*k)).await;
                let got = got.map_err(|e| TestCaseError::fail(format!("{op:?}: {e:?}")))?;
                let got = got.map(|l| l.record);
                prop_assert!(
                    same_record(got.clone(), model.get(k), capped_expiry),
                    "{op:?}: {got:?} vs {:?}",
                    model.get(k)
                );
            }
            Op::Rename(a, b) => {
                if a == b {
                    continue;
                }
                let got = store.rename(&key(*a), &key(*b), None).await;
                if !model.contains_key(a) {
                    prop_assert!(matches!(got, Err(Error::Gone)), "{op:?}: {got:?}");
                } else if model.contains_key(b) {
                    prop_assert!(matches!(got, Err(Error::AlreadyExists)), "{op:?}: {got:?}");
                } else {
                    prop_assert!(got.is_ok(), "{op:?}: {got:?}");
                    let r = model.remove(a).expect("present");
                    model.insert(*b, r);
                }
            }
            Op::OwnedBy(o) => {
                let got = store.owned_by(o).await;
                let got: BTreeSet<SessionKey> = got
                    .map_err(|e| TestCaseError::fail(format!("{op:?}: {e:?}")))?
                    .into_iter()
                    .collect();
                let want: BTreeSet<SessionKey> = model
                    .iter()
                    .filter(|(_, r)| r.owner.as_deref() == Some(o.as_str()))
                    .map(|(k, _)| key(*k))
                    .collect();
                prop_assert_eq!(got, want, "{:?}", op);
            }
        }
    }
    // Every key ends as the model says.
    for k in 0..KEYS {
        let got = store
            .load(&key(k))
            .await
            .map_err(|e| TestCaseError::fail(format!("final load: {e:?}")))?;
        let got = got.map(|l| l.record);
        prop_assert!(
            same_record(got.clone(), model.get(&k), capped_expiry),
            "final state of key {k}: {got:?} vs {:?}",
            model.get(&k)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn memory_store_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = runtime();
        rt.block_on(async {
            let store = MemoryStore::new();
            run_model(&store, &ops, false).await
        })?;
    }

    #[test]
    fn file_store_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = runtime();
        rt.block_on(async {
            let dir = tempfile::tempdir().expect("dir");
            let store = FileStore::open(dir.path()).await.expect("open");
            run_model(&store, &ops, false).await
        })?;
    }

    #[test]
    fn tiered_store_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = runtime();
        rt.block_on(async {
            let dir = tempfile::tempdir().expect("dir");
            let store = TieredStore::new(MemoryStore::new(), FileStore::open(dir.path()).await.expect("open"));
            run_model(&store, &ops, true).await?;
            // The durable tier alone holds the same truth.
            let durable = store.durable();
            for k in 0..KEYS {
                let cached = store.load(&key(k)).await.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                let stored = durable.load(&key(k)).await.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                let stored = stored.map(|l| l.record);
                prop_assert!(same_record(cached.map(|l| l.record), stored.as_ref(), true));
            }
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------------------------------
// The web layer: arbitrary requests through the site's router.

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("cookie".to_owned()),
        1 => Just("user-agent".to_owned()),
        1 => Just("x-forwarded-for".to_owned()),
        1 => Just("content-type".to_owned()),
        1 => Just("accept".to_owned()),
        1 => "[a-z][a-z0-9-]{0,10}",
    ]
}

fn header_value(live: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => cookie_bytes(),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => proptest::sample::select(live).prop_map(|id| format!("id={id}").into_bytes()),
        1 => Just(b"application/x-www-form-urlencoded".to_vec()),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_owned()),
        Just("/api/session".to_owned()),
        Just("/login".to_owned()),
        Just("/logout".to_owned()),
        Just("/logout-everywhere".to_owned()),
        Just("/cart".to_owned()),
        Just("/flash".to_owned()),
        "/[a-z%0-9/.?=&-]{0,20}",
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"username=alice".to_vec()),
        Just(b"item=tea".to_vec()),
        Just(b"message=hi".to_vec()),
        "[a-z=&%0-9]{0,30}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

#[test]
fn web_layer_answers_any_request_without_a_5xx_other_than_503() {
    let rt = runtime();
    let store = Arc::new(Probe::new(Arc::new(MemoryStore::new()) as Arc<dyn Store>));
    let dyn_store: Arc<dyn Store> = store.clone();
    let manager = SessionManager::new(
        dyn_store,
        SessionConfig::default()
            .with_secure(false)
            .with_check_user_agent(true)
            .with_rotate_after(Some(Duration::from_secs(1)))
            .with_rotation_grace(Duration::from_secs(5)),
    )
    .expect("config");
    let router = sessionkit_examples::site::router(manager);
    // A few live sessions for the requests to present.
    let live: Vec<String> = rt.block_on(async {
        let mut ids = Vec::new();
        for name in ["alice", "bob", "carol"] {
            let req = Request::post("/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("username={name}")))
                .expect("request");
            let res = router.clone().oneshot(req).await.expect("infallible");
            let sc = res
                .headers()
                .get("set-cookie")
                .and_then(|v| v.to_str().ok())
                .expect("login sets a cookie");
            let value = sc
                .split(';')
                .next()
                .and_then(|p| p.strip_prefix("id="))
                .expect("id");
            ids.push(value.to_owned());
        }
        ids
    });
    let strategy = (
        prop_oneof![Just("GET"), Just("POST"), Just("HEAD"), Just("PUT")],
        path(),
        proptest::collection::vec((header_name(), header_value(live.clone())), 0..6),
        body(),
        any::<u8>(),
    );
    let mut runner = proptest::test_runner::TestRunner::new(config(256));
    runner
        .run(&strategy, |(method, path, headers, body, fail)| {
            let mut req = Request::builder().method(method).uri(path.as_str());
            for (name, value) in &headers {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_bytes(value),
                ) {
                    req = req.header(n, v);
                }
            }
            let Ok(req) = req.body(Body::from(body)) else {
                return Ok(()); // not a request hyper could have produced (bad URI)
            };
            // One request in eight meets a failing store.
            let failing = fail % 8 == 0;
            store.set_all(failing);
            let res = rt
                .block_on(router.clone().oneshot(req))
                .expect("infallible");
            store.set_all(false);
            let status = res.status().as_u16();
            prop_assert!(
                status < 500 || status == 503,
                "{} {} {:?} -> {}",
                method,
                path,
                headers,
                status
            );
            if !failing {
                prop_assert!(
                    status != 503,
                    "{} {} -> 503 without a failure",
                    method,
                    path
                );
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // Random inputs may never reach the store while it fails (most carry no live cookie):
    // make sure the failure path was taken at least once, with a request that must reach it.
    store.set_all(true);
    let req = Request::get("/api/session")
        .header("cookie", format!("id={}", live[0]))
        .body(Body::empty())
        .expect("request");
    let res = rt
        .block_on(router.clone().oneshot(req))
        .expect("infallible");
    store.set_all(false);
    assert_eq!(res.status().as_u16(), 503);
    assert!(
        store.failures.load(Ordering::SeqCst) > 0,
        "the failing store was never hit"
    );
}
