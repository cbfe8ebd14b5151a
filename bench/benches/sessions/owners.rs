//! Owner scans (issue 16, item 4): what listing and revoking an owner with a huge number of
//! sessions (an attacker who logged into their own account 10⁵ times, then pressed "log out
//! everywhere") does to everyone else's requests.
//!
//! Per store (`MemoryStore`, `FileStore` without fsync, `RedisStore` on a private server): the
//! owner gets 10⁵ sessions (10⁴ with `--quick`) next to 1 000 unrelated ones; one task loads
//! unrelated sessions back to back, first alone (the baseline), then while `owned_by` lists
//! the owner, then while `delete_owned_by` revokes it. Printed: p50, p99 and max of those
//! loads per phase, and how long the listing and the revocation took. The goal is
//! "no more than 10 ms added to an unrelated load".
//!
//! Runs without a filter or with `owners`; prints its figures (copied into BENCHMARKS.md by
//! hand).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use sessionkit::store::{MemoryStore, Record, Store, StoreExt};
use sessionkit::{SessionId, SessionKey};
use sessionkit_backends::RedisStore;
use sessionkit_backends::file::{Durability, FileConfig};
use sessionkit_tests::redis_server::RedisServer;

use crate::Config;

/// Whether this part runs for the given filter.
pub(crate) fn wanted(filter: Option<&str>) -> bool {
    filter.is_none_or(|f| "owners".contains(&f.to_lowercase()))
}

const OWNER: &str = "mallory";
const UNRELATED: usize = 1_000;
const BASELINE: Duration = Duration::from_millis(500);

pub(crate) async fn run(config: &Config) -> anyhow::Result<()> {
    let sessions = if config.quick { 10_000 } else { 100_000 };
    eprintln!("== owner scans (issue 16, item 4): {sessions} sessions of one owner ==");
    eprintln!("store | phase | unrelated loads | p50 µs | p99 µs | max µs | phase took");
    measure("MemoryStore", MemoryStore::new(), sessions).await?;
    let dir = tempfile::tempdir()?;
    let file = FileConfig::new(dir.path().join("owners"))
        .with_durability(Durability::NoSync)
        .open()
        .await?;
    measure("FileStore (NoSync)", file, sessions).await?;
    let server = RedisServer::start();
    measure(
        "RedisStore",
        RedisStore::open(&server.url()).await?,
        sessions,
    )
    .await?;
    // Removing 10⁵ files takes a while: off the async threads.
    std::thread::spawn(move || drop(dir));
    Ok(())
}

fn record(owner: Option<&str>) -> Record {
    let mut r = Record::new(SystemTime::now() + Duration::from_secs(3600));
    r.fields
        .insert("n".into(), bytes::Bytes::from_static(b"\x01"));
    r.owner = owner.map(str::to_owned);
    r
}

async fn populate<S: Store + 'static>(
    store: &Arc<S>,
    count: usize,
    owner: Option<&'static str>,
) -> anyhow::Result<Vec<SessionKey>> {
    let mut tasks = tokio::task::JoinSet::new();
    let per_task = count.div_ceil(32);
    for _ in 0..32 {
        let store = Arc::clone(store);
        tasks.spawn(async move {
            let mut keys = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let key = SessionId::generate()?.key();
                store.create(&key, &record(owner)).await?;
                keys.push(key);
            }
            anyhow::Ok(keys)
        });
    }
    let mut keys = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        keys.extend(joined??);
    }
    Ok(keys)
}

/// Loads unrelated sessions one after another until `done` says stop; their latencies.
async fn loads<S: Store>(
    store: &S,
    unrelated: &[SessionKey],
    done: impl Fn() -> bool,
) -> anyhow::Result<Histogram<u64>> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut i = 0;
    while !done() {
        let key = &unrelated[i % unrelated.len()];
        i += 1;
        let started = Instant::now();
        let loaded = store.load(key).await?;
        hist.record(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX))?;
        anyhow::ensure!(loaded.is_some(), "an unrelated session went missing");
    }
    Ok(hist)
}

fn row(store: &str, phase: &str, hist: &Histogram<u64>, took: Option<Duration>) {
    let us = |ns: u64| ns as f64 / 1000.0;
    eprintln!(
        "{store} | {phase} | {} | {:.1} | {:.1} | {:.1} | {}",
        hist.len(),
        us(hist.value_at_quantile(0.5)),
        us(hist.value_at_quantile(0.99)),
        us(hist.max()),
        took.map_or_else(|| "–".to_owned(), |t| format!("{:.2} s", t.as_secs_f64()))
    );
}

/// Runs `work` in its own task while one task loads unrelated sessions; returns the loads'
/// latencies and how long `work` took.
async fn during<S, T, F>(
    store: &Arc<S>,
    unrelated: &[SessionKey],
    work: F,
) -> anyhow::Result<(Histogram<u64>, Duration, T)>
where
    S: Store + 'static,
    T: Send + 'static,
    F: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let started = Instant::now();
    let task = tokio::spawn(work);
    let hist = loads(&**store, unrelated, || task.is_finished()).await?;
    let out = task.await??;
    Ok((hist, started.elapsed(), out))
}

async fn measure<S: Store + 'static>(name: &str, store: S, sessions: usize) -> anyhow::Result<()> {
    let store = Arc::new(store);
    let setup = Instant::now();
    let unrelated = populate(&store, UNRELATED, None).await?;
    let owned = populate(&store, sessions, Some(OWNER)).await?;
    eprintln!(
        "  ({name}: {} sessions stored in {:.1} s)",
        owned.len() + unrelated.len(),
        setup.elapsed().as_secs_f64()
    );

    let until = Instant::now() + BASELINE;
    let baseline = loads(&*store, &unrelated, || Instant::now() >= until).await?;
    row(name, "alone", &baseline, None);

    let lister = Arc::clone(&store);
    let (hist, took, listed) = during(&store, &unrelated, async move {
        Ok(lister.owned_by(OWNER).await?.len())
    })
    .await?;
    anyhow::ensure!(
        listed == owned.len(),
        "{name}: listed {listed} of {}",
        owned.len()
    );
    row(name, "during owned_by", &hist, Some(took));

    let revoker = Arc::clone(&store);
    let (hist, took, ended) = during(&store, &unrelated, async move {
        Ok(revoker.delete_owned_by(OWNER).await?)
    })
    .await?;
    anyhow::ensure!(
        ended == owned.len(),
        "{name}: revoked {ended} of {}",
        owned.len()
    );
    row(name, "during revocation", &hist, Some(took));
    Ok(())
}
