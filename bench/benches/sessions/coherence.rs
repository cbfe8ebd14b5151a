//! Coherent caches over Redis (issue 14): what following the invalidation channel costs and
//! how fast it is.
//!
//! - **Cache hits**: load-hit throughput of `TieredStore::coherent(MemoryStore, RedisStore)`
//!   against the same `MemoryStore::bounded` alone and the plain (bounded-staleness)
//!   tiered store, 10⁴ sessions.
//! - **Invalidation latency**: app server A saves a session app server B has cached; the time
//!   from A's acknowledgement until B's memory tier no longer holds it. Standalone Redis and
//!   a three-master cluster, each on loopback.
//! - **Redis commands per write**: `INFO commandstats` over a run of saves, with and without
//!   listeners (their health-check `PING`s included).
//! - **The two mechanisms, raw**: client-side-caching invalidations (`CLIENT TRACKING BCAST`)
//!   against a `PUBLISH` from the write script, from the write's acknowledgement to the push
//!   arriving on another connection.
//!
//! Runs without a filter or with `coherence`; prints its figures (copied into BENCHMARKS.md
//! by hand).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use redis::aio::ConnectionLike;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use sessionkit::store::{ChangeSet, MemoryStore, Record, Store, TieredStore};
use sessionkit_backends::{RedisConfig, RedisStore};
use sessionkit_tests::redis_server::{RedisCluster, RedisServer};
use tokio::sync::mpsc;

use crate::Config;
use crate::ours::{Ours, key};
use crate::redis_server::counters;
use crate::runner::{self, Indices};
use crate::subject::{Medium, Op, Subject as _};

/// Whether this part runs for the given filter.
pub(crate) fn wanted(filter: Option<&str>) -> bool {
    filter.is_none_or(|f| "coherence".contains(&f.to_lowercase()))
}

const POPULATION: u64 = 10_000;

pub(crate) async fn run(config: &Config) -> anyhow::Result<()> {
    let rounds = if config.quick { 300 } else { 2_000 };
    eprintln!("== coherence (issue 14) ==");
    let server = RedisServer::start();
    cache_hits(config, &server.url()).await?;
    let standalone = RedisConfig::new(server.url());
    latency("standalone", standalone.clone(), rounds).await?;
    commands_per_write(&server, rounds).await?;
    raw_mechanisms_standalone(&server, rounds).await?;
    drop(server);
    let cluster = RedisCluster::start();
    latency(
        "cluster (3 masters)",
        RedisConfig::cluster(cluster.urls()),
        rounds,
    )
    .await?;
    raw_mechanisms_cluster(&cluster, rounds).await?;
    Ok(())
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?)
}

fn micros(ns: u64) -> String {
    format!("{:.0} µs", ns as f64 / 1000.0)
}

fn summary(h: &Histogram<u64>) -> String {
    format!(
        "p50 {}  p99 {}  max {}  ({} samples)",
        micros(h.value_at_quantile(0.5)),
        micros(h.value_at_quantile(0.99)),
        micros(h.max()),
        h.len()
    )
}

async fn coherent(redis: RedisConfig) -> anyhow::Result<TieredStore<MemoryStore, RedisStore>> {
    let store = TieredStore::coherent(
        MemoryStore::bounded(2_000_000),
        RedisStore::connect(redis).await?,
    )?;
    let started = Instant::now();
    while !store.cache_trusted() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the invalidation channel did not come up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(store)
}

/// Load hits at 1 and 64 tasks, over a warm cache: after the population is stored and
/// `settled` (a coherent store has received the announcements of its own creates, which drop
/// what the creates cached), every session is loaded once.
async fn load_hits<S: Store + 'static>(
    config: &Config,
    name: &str,
    store: S,
    settled: impl Fn() -> bool,
) -> anyhow::Result<[f64; 2]> {
    let subject = Arc::new(Ours::new(name, Medium::Memory, store));
    runner::populate(&subject, POPULATION).await?;
    let started = Instant::now();
    while !settled() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: did not settle"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut scratch = 0;
    for i in 0..POPULATION {
        subject.run(Op::LoadHit, i, &mut scratch).await?;
    }
    let indices = Arc::new(Indices::new(POPULATION));
    let mut out = [0.0; 2];
    for (slot, tasks) in [(0, 1), (1, 64)] {
        runner::run_for(&subject, &indices, Op::LoadHit, tasks, config.timing.warmup).await?;
        let sample = runner::run_for(
            &subject,
            &indices,
            Op::LoadHit,
            tasks,
            config.timing.measure,
        )
        .await?;
        anyhow::ensure!(sample.errors == 0, "{name}: load hits failed");
        out[slot] = sample.throughput();
    }
    Ok(out)
}

async fn cache_hits(config: &Config, url: &str) -> anyhow::Result<()> {
    let memory = load_hits(
        config,
        "MemoryStore::bounded",
        MemoryStore::bounded(2_000_000),
        || true,
    )
    .await?;
    let plain = load_hits(
        config,
        "Tiered<Memory, Redis>",
        TieredStore::new(
            MemoryStore::bounded(2_000_000),
            RedisStore::connect(RedisConfig::new(url).with_prefix("bench-plain:")).await?,
        ),
        || true,
    )
    .await?;
    // Its own prefix: the same session keys as the plain tier's.
    let store = Arc::new(coherent(RedisConfig::new(url).with_prefix("bench-coherent:")).await?);
    let watched = Arc::clone(&store);
    let coherent_hits = load_hits(config, "coherent Tiered<Memory, Redis>", store, move || {
        watched.stats().invalidations >= POPULATION
    })
    .await?;
    for (label, t) in [
        ("MemoryStore::bounded alone", memory),
        ("Tiered<Memory, Redis> (bounded staleness)", plain),
        ("Tiered::coherent(Memory, Redis)", coherent_hits),
    ] {
        eprintln!(
            "  load hit  {label:<42} 1 task {:>9.0} ops/s ({:.2}×)   64 tasks {:>9.0} ops/s ({:.2}×)",
            t[0],
            t[0] / memory[0],
            t[1],
            t[1] / memory[1]
        );
    }
    Ok(())
}

fn change(n: u64) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.set
        .insert("n".into(), Bytes::from(n.to_string().into_bytes()));
    c
}

fn record() -> Record {
    let mut r = Record::new(std::time::SystemTime::now() + Duration::from_secs(3600));
    r.fields.insert("n".into(), Bytes::from_static(b"0"));
    r
}

/// A saves, B drops: from A's acknowledgement to B's memory tier no longer holding the key.
async fn latency(setup: &str, redis: RedisConfig, rounds: u64) -> anyhow::Result<()> {
    let a = coherent(redis.clone()).await?;
    let b = coherent(redis).await?;
    let mut hist = histogram()?;
    let mut from_start = histogram()?;
    let mut round_trip = histogram()?;
    let mut before_ack = 0u64;
    for i in 0..rounds {
        let k = key(1_000_000 + i);
        a.create(&k, &record()).await?;
        // B caches it (after the invalidation of A's create has passed).
        let started = Instant::now();
        loop {
            b.load(&k).await?;
            if b.cache().load(&k).await?.is_some() {
                break;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(5), "B never caches");
            tokio::task::yield_now().await;
        }
        let sent = Instant::now();
        a.apply(&k, &change(i)).await?;
        let acked = Instant::now();
        let mut spins = 0u64;
        while b.cache().load(&k).await?.is_some() {
            spins += 1;
            anyhow::ensure!(
                acked.elapsed() < Duration::from_secs(5),
                "B never dropped the key"
            );
            tokio::task::yield_now().await;
        }
        if spins == 0 {
            before_ack += 1;
        }
        let dropped = Instant::now();
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        hist.saturating_record(ns(dropped - acked));
        from_start.saturating_record(ns(dropped - sent));
        round_trip.saturating_record(ns(acked - sent));
    }
    let s = b.stats();
    eprintln!(
        "  invalidation latency, {setup}: A's save acknowledged → dropped on B: {}; \
         {before_ack} already dropped when the ack was seen; B: {} invalidations, {} outages",
        summary(&hist),
        s.invalidations,
        s.outages
    );
    eprintln!(
        "    from the save's start → dropped on B: {}; the save's own round trip: {}",
        summary(&from_start),
        summary(&round_trip)
    );
    Ok(())
}

async fn commands_per_write(server: &RedisServer, rounds: u64) -> anyhow::Result<()> {
    let client = redis::Client::open(server.url())?;
    let mut admin = client.get_multiplexed_async_connection().await?;
    let plain = RedisStore::open(&server.url()).await?;
    let coherent_a = coherent(RedisConfig::new(server.url())).await?;
    let _coherent_b = coherent(RedisConfig::new(server.url())).await?;
    for (label, store) in [
        ("RedisStore alone", &plain as &dyn Store),
        ("coherent A (A and B listening)", &coherent_a as &dyn Store),
    ] {
        let keys: Vec<_> = (0..rounds).map(|i| key(2_000_000 + i)).collect();
        for k in &keys {
            store.create(k, &record()).await?;
        }
        let before = counters(&mut admin).await?;
        let started = Instant::now();
        for (i, k) in keys.iter().enumerate() {
            store.apply(k, &change(i as u64)).await?;
        }
        let elapsed = started.elapsed();
        let d = counters(&mut admin).await? - before;
        eprintln!(
            "  commands per save, {label}: {:.3} ({} commands for {rounds} saves in {:.2} s)",
            d.calls as f64 / rounds as f64,
            d.calls,
            elapsed.as_secs_f64()
        );
        for k in &keys {
            store.delete(k).await?;
        }
    }
    Ok(())
}

/// A RESP3 connection whose pushes arrive, time-stamped, on the returned receiver.
async fn listener(
    url: &str,
) -> anyhow::Result<(
    redis::aio::MultiplexedConnection,
    mpsc::UnboundedReceiver<(Instant, PushInfo)>,
)> {
    let info = redis::Client::open(url)?.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(settings))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let config = AsyncConnectionConfig::new()
        .set_push_sender(move |push: PushInfo| tx.send((Instant::now(), push)));
    Ok((
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await?,
        rx,
    ))
}

const RAW_PREFIX: &str = "probe:";
const RAW_CHANNEL: &str = "probe-invalidations";

/// The write both mechanisms pay for; the second script also publishes the key.
fn scripts() -> (redis::Script, redis::Script) {
    (
        redis::Script::new("redis.call('HSET', KEYS[1], 'n', ARGV[1]) return 1"),
        redis::Script::new(
            "redis.call('HSET', KEYS[1], 'n', ARGV[1]) \
             redis.call('PUBLISH', ARGV[2], ARGV[3]) return 1",
        ),
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Mechanism {
    Tracking,
    Publish,
}

/// `rounds` writes through `writer`; for each, the time from its acknowledgement to the push
/// naming it on `pushes`.
async fn raw_latency<C: ConnectionLike + Send>(
    writer: &mut C,
    pushes: &mut mpsc::UnboundedReceiver<(Instant, PushInfo)>,
    mechanism: Mechanism,
    rounds: u64,
) -> anyhow::Result<Histogram<u64>> {
    let (plain, publishing) = scripts();
    let mut hist = histogram()?;
    for i in 0..rounds {
        let hex = format!("{i:064x}");
        let redis_key = format!("{RAW_PREFIX}{{{hex}}}");
        let mut call = match mechanism {
            Mechanism::Tracking => plain.key(&redis_key),
            Mechanism::Publish => publishing.key(&redis_key),
        };
        call.arg(i).arg(RAW_CHANNEL).arg(&hex);
        let _: i64 = call.invoke_async(writer).await?;
        let acked = Instant::now();
        loop {
            let (at, push) = tokio::time::timeout(Duration::from_secs(5), pushes.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("the listener closed"))?;
            let wanted = match (push.kind, mechanism) {
                (PushKind::Invalidate, Mechanism::Tracking) => {
                    matches!(push.data.first(), Some(Value::Array(keys))
                        if keys.iter().any(|k| *k == Value::BulkString(redis_key.clone().into_bytes())))
                }
                (PushKind::Message, Mechanism::Publish) => {
                    push.data.get(1) == Some(&Value::BulkString(hex.clone().into_bytes()))
                }
                _ => false,
            };
            if wanted {
                let ns = u64::try_from(at.saturating_duration_since(acked).as_nanos())
                    .unwrap_or(u64::MAX);
                hist.saturating_record(ns.max(1));
                break;
            }
        }
    }
    Ok(hist)
}

async fn track(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<()> {
    let () = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(RAW_PREFIX)
        .query_async(conn)
        .await?;
    Ok(())
}

async fn calls_of(
    admin: &mut redis::aio::MultiplexedConnection,
    command: &str,
) -> anyhow::Result<u64> {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(admin)
        .await?;
    Ok(stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:")))
        .and_then(|f| f.split(',').find_map(|x| x.strip_prefix("calls=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

async fn raw_mechanisms_standalone(server: &RedisServer, rounds: u64) -> anyhow::Result<()> {
    let url = server.url();
    let mut writer = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let mut admin = writer.clone();
    let (mut tracking, mut tracked) = listener(&url).await?;
    track(&mut tracking).await?;
    let (mut subscriber, mut messages) = listener(&url).await?;
    subscriber.subscribe(RAW_CHANNEL).await?;
    let t = raw_latency(&mut writer, &mut tracked, Mechanism::Tracking, rounds).await?;
    let publishes = calls_of(&mut admin, "publish").await?;
    let p = raw_latency(&mut writer, &mut messages, Mechanism::Publish, rounds).await?;
    let published = calls_of(&mut admin, "publish").await? - publishes;
    eprintln!("  raw, standalone, CLIENT TRACKING BCAST: {}", summary(&t));
    eprintln!(
        "  raw, standalone, PUBLISH from the script: {}; {:.2} PUBLISH per write",
        summary(&p),
        published as f64 / rounds as f64
    );
    Ok(())
}

async fn raw_mechanisms_cluster(cluster: &RedisCluster, rounds: u64) -> anyhow::Result<()> {
    let urls = cluster.urls();
    let mut writer = redis::cluster::ClusterClient::new(urls.clone())?
        .get_async_connection()
        .await?;
    // Tracking: one connection per master, all feeding one receiver.
    let (tx, mut tracked) = mpsc::unbounded_channel();
    let mut trackers = Vec::new();
    for url in &urls {
        let (mut conn, mut rx) = listener(url).await?;
        track(&mut conn).await?;
        let tx = tx.clone();
        trackers.push(tokio::spawn(async move {
            while let Some(push) = rx.recv().await {
                if tx.send(push).is_err() {
                    break;
                }
            }
            drop(conn);
        }));
    }
    drop(tx);
    // PUBLISH: one subscriber on one node; the cluster bus forwards every message to it.
    let (mut subscriber, mut messages) = listener(&urls[0]).await?;
    subscriber.subscribe(RAW_CHANNEL).await?;
    let t = raw_latency(&mut writer, &mut tracked, Mechanism::Tracking, rounds).await?;
    let p = raw_latency(&mut writer, &mut messages, Mechanism::Publish, rounds).await?;
    eprintln!(
        "  raw, cluster, CLIENT TRACKING BCAST (a connection per master, relayed): {}",
        summary(&t)
    );
    eprintln!(
        "  raw, cluster, PUBLISH from the script (one subscriber; bus-forwarded for 2/3 of keys): {}",
        summary(&p)
    );
    for tracker in trackers {
        tracker.abort();
    }
    Ok(())
}
