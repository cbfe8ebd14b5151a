//! The coherence tests of two app servers, each with its own memory tier over one shared
//! durable store, run on every invalidation channel (Redis's tracking in `test_coherence`,
//! PostgreSQL's LISTEN/NOTIFY in `test_postgres`): one body each, generic over the durable
//! store; the test says how each app server's store is built.

#![allow(
    clippy::print_stderr,
    reason = "the latencies observed are printed to the test log (run with --nocapture)"
)]

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sessionkit::store::{
    ChangeSet, Error, InvalidationSource, MemoryStore, Record, Store, TieredStore,
};
use sessionkit::{SessionConfig, SessionKey, SessionManager};

use crate::conformance::{enc, fresh_key, record};
use crate::restartable::Restartable;

/// One app server's store: its own memory tier over its own connection to the durable store.
pub type Coherent<D> = TieredStore<MemoryStore, D>;

/// How long a change may take to reach the other store before the test fails: generous, the
/// bound itself is measured by the benchmark.
pub const LIMIT: Duration = Duration::from_secs(20);

/// One app server over `durable`: a memory tier of its own, coherent through `durable`'s
/// channel, returned once the channel listens.
pub async fn app_server<D>(durable: D) -> Coherent<D>
where
    D: Store + InvalidationSource,
{
    let store = TieredStore::coherent(MemoryStore::bounded(1_000), durable).unwrap();
    poll("the invalidation channel to listen", || async {
        store.cache_trusted()
    })
    .await;
    store
}

/// Polls `check` until it holds; returns how long that took, and fails past [`LIMIT`].
pub async fn poll<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The change setting field `name` to `v`.
pub fn set(name: &str, v: u32) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.set.insert(name.into(), enc(v));
    c
}

/// A record of `owner` with `v` set.
pub fn owned(owner: &str, v: u32) -> Record {
    let mut r = record(&[("v", enc(v))]);
    r.owner = Some(owner.into());
    r
}

/// The value of `v` that `store` serves for `key` (`None`: no session).
pub async fn served<D: Store>(store: &Coherent<D>, key: &SessionKey) -> Option<Bytes> {
    let loaded = store.load(key).await.unwrap()?;
    Some(loaded.record.fields.get("v").cloned().unwrap_or_default())
}

/// `b` serves `key` from its memory tier. The announcement of the write that stored it may
/// reach `b` after `b`'s first fill (and drop it), so load until the copy stays.
pub async fn cache_it<D: Store>(b: &Coherent<D>, key: &SessionKey) {
    poll("B caches the session", || async {
        b.load(key).await.unwrap();
        b.cache().load(key).await.unwrap().is_some()
    })
    .await;
}

/// A write, a logout, a log-out-everywhere and a move made on A are seen on B.
pub async fn changes_on_a_are_seen_on_b<D>(a: Coherent<D>, b: Coherent<D>, setup: &str)
where
    D: Store + 'static,
{
    let a = Arc::new(a);
    let before = b.stats().invalidations;

    // A write.
    let key = fresh_key();
    a.create(&key, &owned("alice", 1)).await.unwrap();
    cache_it(&b, &key).await;
    a.apply(&key, &set("v", 2)).await.unwrap();
    let write = poll("B sees A's write", || async {
        served(&b, &key).await == Some(enc(2))
    })
    .await;

    // A logout.
    cache_it(&b, &key).await;
    a.delete(&key).await.unwrap();
    let logout = poll("B sees A's logout", || async {
        served(&b, &key).await.is_none()
    })
    .await;

    // Log out everywhere: two sessions of one owner, both cached by B.
    let manager = SessionManager::new(Arc::clone(&a), SessionConfig::default()).unwrap();
    let (k1, k2) = (fresh_key(), fresh_key());
    for k in [&k1, &k2] {
        a.create(k, &owned("bob", 7)).await.unwrap();
        cache_it(&b, k).await;
    }
    assert_eq!(manager.revoke_owner("bob").await.unwrap(), 2);
    let revoke = poll("B sees A's revocation", || async {
        served(&b, &k1).await.is_none() && served(&b, &k2).await.is_none()
    })
    .await;

    // A move on A: B's cached copy under the old key goes.
    let (old, new) = (fresh_key(), fresh_key());
    a.create(&old, &owned("carol", 3)).await.unwrap();
    cache_it(&b, &old).await;
    a.rename(&old, &new, None).await.unwrap();
    let moved = poll("B sees A's move", || async {
        served(&b, &old).await.is_none()
    })
    .await;
    assert_eq!(served(&b, &new).await, Some(enc(3)));

    let s = b.stats();
    assert!(s.invalidations > before, "{s:?}");
    assert_eq!(s.outages, 0, "{s:?}");
    eprintln!(
        "{setup}: seen on B after write {write:?}, logout {logout:?}, revoke {revoke:?}, \
         move {moved:?} (polled; {} invalidations received)",
        s.invalidations - before
    );
}

/// `server` (the durable store of A and B, keeping its data across a restart) is taken down
/// after B cached a session and brought back; A writes as soon as it is back, before B's
/// channel can have reconnected. B stops trusting its cache during the outage, cannot answer
/// (`Unavailable`) while the server is down, never serves the old copy, and caches again once
/// its channel is back.
pub async fn an_outage_never_serves_the_old_copy<D: Store>(
    server: &mut dyn Restartable,
    a: Coherent<D>,
    b: Coherent<D>,
    setup: &str,
) {
    let key = fresh_key();
    a.create(&key, &record(&[("v", enc(1))])).await.unwrap();
    cache_it(&b, &key).await;
    let outages = b.stats().outages;

    server.stop();
    let noticed = poll("B stops trusting its cache", || async {
        !b.cache_trusted()
    })
    .await;
    assert!(
        b.cache().load(&key).await.unwrap().is_none(),
        "B's cache was flushed"
    );
    match b.load(&key).await {
        Err(Error::Unavailable { .. }) => {}
        other => panic!("while {setup} is down B cannot answer: {other:?}"),
    }

    server.restart();
    // A's first request may spend its retry on reconnecting.
    poll("A's write after the restart", || async {
        a.apply(&key, &set("v", 2)).await.is_ok()
    })
    .await;
    let failed = Cell::new(0);
    poll("B reads again", || async {
        match b.load(&key).await {
            Ok(loaded) => {
                let v = loaded.map(|l| l.record.fields["v"].clone());
                assert_eq!(v, Some(enc(2)), "B never serves the old copy");
                true
            }
            Err(_) => {
                failed.set(failed.get() + 1);
                false
            }
        }
    })
    .await;
    let back = poll("B trusts its cache again", || async { b.cache_trusted() }).await;
    // Caching resumes, with the new value.
    let hits = b.stats().hits;
    assert_eq!(served(&b, &key).await, Some(enc(2)));
    assert_eq!(served(&b, &key).await, Some(enc(2)));
    assert!(b.stats().hits > hits, "B caches again: {:?}", b.stats());
    let s = b.stats();
    assert_eq!(s.outages, outages + 1, "{s:?}");
    eprintln!(
        "{setup}: outage noticed after {noticed:?}; {} reads failed while B reconnected; \
         channel back {back:?} after B's first good read",
        failed.get()
    );
}
