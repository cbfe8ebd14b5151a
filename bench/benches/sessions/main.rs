//! sessionkit against its peers and the raw floors, in one process and one run.
//!
//! `cargo bench -p sessionkit-bench` runs everything and rewrites the generated part of
//! `BENCHMARKS.md` and `bench/throughput.svg`; `-- --quick` is a shorter run at 10⁴
//! sessions; a bare word filters subjects by name (then nothing is written). The words
//! `coherence`, `ops`, `owners` and `sqlite` run those parts alone and print their figures
//! (`sqlite` also runs the matrix's SQLite subjects); `sql` runs the PostgreSQL stores
//! (sessionkit's and tower-sessions' on one private PostgreSQL) and prints how they compare.
#![allow(
    clippy::print_stderr,
    clippy::print_stdout,
    reason = "a benchmark harness reports progress on the terminal"
)]
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a failed set-up is a failed benchmark run; there is no caller to recover"
)]
#![allow(
    clippy::cast_precision_loss,
    reason = "throughput figures are floating point"
)]

mod coherence;
mod extras;
mod floors;
mod ours;
mod owners;
mod peers;
mod plot;
mod postgres;
mod redis_server;
mod report;
mod routes;
mod runner;
mod sqlite;
mod subject;
mod workload;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessionkit::store::{MemoryStore, TieredStore};

use crate::redis_server::Counters;
use crate::runner::{Indices, Sample, Timing};
use crate::subject::{Kind, Medium, Op, Subject};
use sessionkit_tests::redis_server::RedisServer;

/// One measured cell of the results.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) subject: String,
    pub(crate) kind: Kind,
    pub(crate) medium: Medium,
    pub(crate) op: Op,
    pub(crate) tasks: usize,
    pub(crate) population: u64,
    pub(crate) sample: Sample,
    /// Redis counters over the measured operations, for Redis-backed subjects.
    pub(crate) redis: Option<Counters>,
    /// Store writes counted by a wrapper during read-only requests (sessionkit subjects).
    pub(crate) store_writes: Option<u64>,
}

pub(crate) struct Config {
    pub(crate) quick: bool,
    pub(crate) filter: Option<String>,
    timing: Timing,
}

impl Config {
    fn sizes(&self, medium: Medium) -> &'static [u64] {
        match (self.quick, medium) {
            (true, _) => &[10_000],
            (false, Medium::File | Medium::Postgres) => &[10_000, 100_000],
            (false, _) => &[10_000, 100_000, 1_000_000],
        }
    }

    /// The full matrix at 10⁴ sessions; at larger populations, what scaling is about.
    fn cells(&self, population: u64) -> Vec<(Op, usize)> {
        if population <= 10_000 {
            Op::ALL.iter().flat_map(|&op| [(op, 1), (op, 64)]).collect()
        } else {
            vec![(Op::LoadHit, 64), (Op::SaveChanged, 64)]
        }
    }
}

pub(crate) struct Harness {
    pub(crate) config: Config,
    redis: Option<RedisServer>,
    admin: Option<redis::aio::MultiplexedConnection>,
    pub(crate) rows: Vec<Row>,
}

impl Harness {
    async fn redis_admin(&mut self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        if self.admin.is_none() {
            let server = RedisServer::start();
            let client = redis::Client::open(server.url())?;
            // Flushing a million sessions takes longer than the default response timeout.
            let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
            self.admin = Some(
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            );
            self.redis = Some(server);
        }
        Ok(self.admin.clone().expect("just set"))
    }

    fn redis_url(&self) -> String {
        self.redis
            .as_ref()
            .map(RedisServer::url)
            .unwrap_or_default()
    }

    /// What a one-key save of a ~100 KiB session sends to Redis, measured by the server.
    async fn big_save_redis(&mut self) -> anyhow::Result<(String, u64, u64)> {
        use sessionkit::Store as _;
        let mut admin = self.redis_admin().await?;
        let store = sessionkit_backends::RedisStore::open(&self.redis_url()).await?;
        let (key, record, changes) = extras::big_session();
        let whole = record.encode()?.len() as u64;
        store.create(&key, &record).await?;
        let before = redis_server::counters(&mut admin).await?;
        store.apply(&key, &changes).await?;
        let after = redis_server::counters(&mut admin).await?;
        // The admin connection's own INFO requests between the snapshots count too.
        let info_requests: u64 = ["commandstats", "stats", "persistence"]
            .iter()
            .map(|section| {
                format!("*2\r\n$4\r\nINFO\r\n${}\r\n{section}\r\n", section.len()).len() as u64
            })
            .sum();
        let sent = (after - before).net_in.saturating_sub(info_requests);
        store.delete(&key).await?;
        Ok((
            "sessionkit RedisStore (bytes Redis received)".into(),
            sent,
            whole,
        ))
    }

    /// Measures one subject at every population its medium runs at. `make` builds a fresh,
    /// empty subject.
    pub(crate) async fn bench<S, F, Fut>(&mut self, name: &str, make: F) -> anyhow::Result<()>
    where
        S: Subject,
        F: Fn() -> Fut,
        Fut: Future<Output = anyhow::Result<S>>,
    {
        match &self.config.filter {
            // `sql`: the stores on a SQL database.
            Some(f) if f == "sql" && postgres::is_sql(name) => {}
            Some(f) if !name.to_lowercase().contains(&f.to_lowercase()) => return Ok(()),
            // Prototypes are measured only when asked for by name.
            None if name.starts_with("prototype") => return Ok(()),
            _ => {}
        }
        let probe = make().await?;
        let (medium, kind) = (probe.medium(), probe.kind());
        drop(probe);
        // 10⁶ sessions only where it is affordable: peers that keep each session as a map of
        // JSON values take ~17 KiB per session in memory (17 GiB at 10⁶), and filling every
        // Redis subject with 10⁶ would not fit the time budget; nor would 10⁵ sessions of
        // every file subject (creating and removing the files takes minutes). sessionkit's
        // stores and the floors run at every size of their medium.
        let cap = match (kind, name.contains("Tiered<"), medium) {
            (Kind::Floor | Kind::Peer, _, Medium::File | Medium::Postgres)
            | (_, true, Medium::File | Medium::Postgres) => 10_000,
            // The bounded (cache) form is here to explain the tiers' cache hits.
            _ if name.contains("MemoryStore::bounded") => 10_000,
            (Kind::Peer, _, _) | (_, true, _) => 100_000,
            _ => u64::MAX,
        };
        for &population in self.config.sizes(medium).iter().filter(|&&p| p <= cap) {
            let mut admin = if medium == Medium::Redis {
                let mut admin = self.redis_admin().await?;
                let () = redis::cmd("FLUSHALL")
                    .arg("SYNC")
                    .query_async(&mut admin)
                    .await?;
                Some(admin)
            } else {
                None
            };
            let subject = Arc::new(make().await?);
            let t0 = Instant::now();
            runner::populate(&subject, population).await?;
            eprintln!(
                "{name} @ {population}: filled in {:.1}s",
                t0.elapsed().as_secs_f64()
            );
            let cells = self.config.cells(population);
            if cells.iter().any(|(op, _)| *op == Op::ReadOnly) {
                subject.prepare().await?;
            }
            let indices = Arc::new(Indices::new(population));
            for (op, tasks) in cells {
                let timing = self.config.timing;
                if op == Op::Delete {
                    // Deletes remove sessions made for them just before, by save-new.
                    indices.refill(&subject, tasks, timing.warmup).await?;
                }
                runner::run_for(&subject, &indices, op, tasks, timing.warmup).await?;
                if op == Op::Delete {
                    indices.refill(&subject, tasks, timing.measure).await?;
                }
                let before = match &mut admin {
                    Some(a) => Some(redis_server::counters(a).await?),
                    None => None,
                };
                let counted = subject.count_writes(op == Op::ReadOnly);
                let sample = runner::run_for(&subject, &indices, op, tasks, timing.measure).await?;
                let store_writes = match (counted, subject.count_writes(false)) {
                    (Some(before), Some(after)) if op == Op::ReadOnly => Some(after - before),
                    _ => None,
                };
                let redis = match (&mut admin, before) {
                    (Some(a), Some(before)) => Some(redis_server::counters(a).await? - before),
                    _ => None,
                };
                eprintln!(
                    "  {:<20} {:>2} tasks: {:>10.0} ops/s  p50 {:>8} ns  p99 {:>9} ns{}",
                    op.label(),
                    tasks,
                    sample.throughput(),
                    sample.p50_ns,
                    sample.p99_ns,
                    if sample.errors > 0 {
                        format!("  ({} ERRORS)", sample.errors)
                    } else {
                        String::new()
                    }
                );
                self.rows.push(Row {
                    subject: subject.name(),
                    kind: subject.kind(),
                    medium,
                    op,
                    tasks,
                    population,
                    sample,
                    redis,
                    store_writes,
                });
            }
            drop(subject);
        }
        Ok(())
    }
}

/// The cache tier of every `TieredStore` subject: bounded, as a cache is, but large enough to
/// hold every stored session so that loads measure cache hits.
pub(crate) fn cache_tier() -> MemoryStore {
    MemoryStore::bounded(2_000_000)
}

async fn run_all(config: Config) -> anyhow::Result<(Vec<Row>, extras::Extras)> {
    let mut h = Harness {
        config,
        redis: None,
        admin: None,
        rows: Vec::new(),
    };
    let started = Instant::now();
    let blob = workload::Workload::sample().blob().len();
    anyhow::ensure!(
        (900..1400).contains(&blob),
        "the workload should be ~1 KiB, is {blob} B"
    );
    let mut extras = extras::before(&h).await?;

    // ---- memory ----
    h.bench("sessionkit MemoryStore", || async {
        Ok(ours::Ours::new(
            "sessionkit MemoryStore",
            Medium::Memory,
            MemoryStore::new(),
        ))
    })
    .await?;
    h.bench("sessionkit MemoryStore::bounded", || async {
        Ok(ours::Ours::new(
            "sessionkit MemoryStore::bounded",
            Medium::Memory,
            cache_tier(),
        ))
    })
    .await?;
    h.bench("sessionkit Tiered<Memory, Memory>", || async {
        Ok(ours::Ours::new(
            "sessionkit Tiered<Memory, Memory>",
            Medium::Memory,
            TieredStore::new(cache_tier(), MemoryStore::new()),
        ))
    })
    .await?;
    h.bench("tower-sessions MemoryStore", || async {
        Ok(peers::v15::Tower15::new(
            "tower-sessions MemoryStore",
            Medium::Memory,
            tower_sessions::MemoryStore::default(),
        ))
    })
    .await?;
    h.bench("tower-sessions MokaStore", || async {
        Ok(peers::v14::Tower14::new(
            "tower-sessions MokaStore",
            Medium::Memory,
            tower_sessions_moka_store::MokaStore::new(None),
        ))
    })
    .await?;
    h.bench("DashMap + rmp-serde (floor)", || async {
        Ok(floors::MapFloor::default())
    })
    .await?;

    // ---- redis ----
    let fred_pool = |url: String| async move {
        use tower_sessions_redis_store::fred::prelude::*;
        let pool = Pool::new(Config::from_url(&url)?, None, None, None, 1)?;
        pool.init().await?;
        anyhow::Ok(pool)
    };
    h.redis_admin().await?;
    let url = h.redis_url();
    h.bench("sessionkit RedisStore", || async {
        Ok(ours::Ours::new(
            "sessionkit RedisStore",
            Medium::Redis,
            sessionkit_backends::RedisStore::open(&url).await?,
        ))
    })
    .await?;
    h.bench("sessionkit Tiered<Memory, Redis>", || async {
        Ok(ours::Ours::new(
            "sessionkit Tiered<Memory, Redis>",
            Medium::Redis,
            TieredStore::new(
                cache_tier(),
                sessionkit_backends::RedisStore::open(&url).await?,
            ),
        ))
    })
    .await?;
    h.bench("tower-sessions Caching<Moka, Redis>", || async {
        Ok(peers::v14::Tower14::new(
            "tower-sessions Caching<Moka, Redis>",
            Medium::Redis,
            tower_sessions_core_014::session_store::CachingSessionStore::new(
                tower_sessions_moka_store::MokaStore::new(None),
                tower_sessions_redis_store::RedisStore::new(fred_pool(url.clone()).await?),
            ),
        ))
    })
    .await?;
    h.bench("tower-sessions RedisStore", || async {
        Ok(peers::v14::Tower14::new(
            "tower-sessions RedisStore",
            Medium::Redis,
            tower_sessions_redis_store::RedisStore::new(fred_pool(url.clone()).await?),
        ))
    })
    .await?;
    h.bench("actix-session RedisSessionStore", || async {
        let store = actix_session::storage::RedisSessionStore::new(url.clone()).await?;
        Ok(peers::Actix::new(store))
    })
    .await?;
    h.bench("redis-rs GET/SET EX (floor)", || async {
        let client = redis::Client::open(url.clone())?;
        Ok(floors::RedisFloor::new(
            client.get_multiplexed_async_connection().await?,
        ))
    })
    .await?;

    // ---- files ----
    // Files live under the system temp dir, on disk.
    let root = tempfile::tempdir()?;
    let seq = std::sync::atomic::AtomicU64::new(0);
    let fresh_dir = || {
        let dir = root.path().join(format!(
            "d{}",
            seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map(|()| dir)
    };
    let file_store = |dir: std::path::PathBuf| async move {
        use sessionkit_backends::file::{Durability, FileConfig};
        anyhow::Ok(
            FileConfig::new(dir)
                .with_durability(Durability::NoSync)
                .open()
                .await?,
        )
    };
    h.bench("sessionkit FileStore (NoSync)", || async {
        Ok(ours::Ours::new(
            "sessionkit FileStore (NoSync)",
            Medium::File,
            file_store(fresh_dir()?).await?,
        ))
    })
    .await?;
    h.bench("sessionkit Tiered<Memory, File>", || async {
        Ok(ours::Ours::new(
            "sessionkit Tiered<Memory, File>",
            Medium::File,
            TieredStore::new(cache_tier(), file_store(fresh_dir()?).await?),
        ))
    })
    .await?;
    h.bench("file write+rename / read (floor)", || async {
        Ok(floors::FileFloor::new(fresh_dir()?))
    })
    .await?;
    // SQLite (issue 18): on disk as the files, at the same NoSync durability.
    h.bench("sessionkit SqliteStore (NoSync)", || async {
        let store = sessionkit_backends::SqliteConfig::new(fresh_dir()?.join("s.sqlite3"))
            .with_durability(sessionkit_backends::Durability::NoSync)
            .open()
            .await?;
        Ok(ours::Ours::new(
            "sessionkit SqliteStore (NoSync)",
            Medium::File,
            store,
        ))
    })
    .await?;
    h.bench("tower-sessions SqliteStore (sqlx, NoSync)", || async {
        let path = fresh_dir()?.join("t.sqlite3");
        Ok(peers::v14::Tower14::new(
            "tower-sessions SqliteStore (sqlx, NoSync)",
            Medium::File,
            sqlite::tower_sqlite(&path, sessionkit_backends::Durability::NoSync).await?,
        ))
    })
    .await?;

    // ---- PostgreSQL ----
    postgres::run(&mut h).await?;

    if coherence::wanted(h.config.filter.as_deref()) {
        coherence::run(&h.config).await?;
    }
    if owners::wanted(h.config.filter.as_deref()) {
        owners::run(&h.config).await?;
    }
    if sqlite::wanted(h.config.filter.as_deref()) {
        sqlite::run(&h.config).await?;
    }
    if routes::wanted(h.config.filter.as_deref()) {
        routes::run().await?;
    }
    eprintln!("subjects done in {:.0}s", started.elapsed().as_secs_f64());
    let op_filter = h.config.filter.as_deref() == Some("ops");
    if h.config.filter.is_none() || op_filter {
        let rounds = if h.config.quick { 300 } else { 3_000 };
        let redis = || sessionkit_backends::RedisStore::open(&url);
        let costs = &mut extras.op_costs;
        costs.push(extras::op_cost("MemoryStore", MemoryStore::new(), rounds).await?);
        costs.push(extras::op_cost("MemoryStore::bounded", cache_tier(), rounds).await?);
        costs.push(
            extras::op_cost(
                "Tiered<Memory, Memory>",
                TieredStore::new(cache_tier(), MemoryStore::new()),
                rounds,
            )
            .await?,
        );
        costs.push(extras::op_cost("RedisStore", redis().await?, rounds).await?);
        costs.push(
            extras::op_cost(
                "Tiered<Memory, Redis>",
                TieredStore::new(cache_tier(), redis().await?),
                rounds,
            )
            .await?,
        );
        let file = file_store(fresh_dir()?).await?;
        costs.push(extras::op_cost("FileStore (NoSync)", file, rounds).await?);
        let tiered = TieredStore::new(cache_tier(), file_store(fresh_dir()?).await?);
        costs.push(extras::op_cost("Tiered<Memory, File>", tiered, rounds).await?);
        if op_filter {
            // `-- ops`: the operation costs alone, printed (BENCHMARKS.md is left as it is).
            eprintln!("store | insert µs | increment µs | push µs");
            for c in costs.iter() {
                eprintln!(
                    "{} | {:.2} | {:.2} | {:.2}",
                    c.store, c.insert_us, c.increment_us, c.push_us
                );
            }
        }
    }
    // The removal of 10⁵-session directories takes minutes on a busy disk: overlap it with
    // the resident-memory children, which measure memory, not time.
    let remover = std::thread::spawn(move || drop(root));
    if h.config.filter.is_none() {
        extras.big_save.push(h.big_save_redis().await?);
    }
    extras::after(&h, &mut extras);
    let _ = remover.join();
    Ok((h.rows, extras))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(pos) = args.iter().position(|a| a == "--rss") {
        // Child mode: measure one store's resident memory in a fresh process.
        let which = args.get(pos + 1).map(String::as_str).unwrap_or("");
        return extras::rss_child(which);
    }
    if let Some(pos) = args.iter().position(|a| a == "--profile") {
        // Profiling mode (for callgrind): one subject, one operation, a fixed count.
        let op = args.get(pos + 1).map(String::as_str).unwrap_or("load-hit");
        let count = args
            .get(pos + 2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(20_000);
        return extras::profile(op, count);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    let timing = if quick {
        Timing {
            warmup: Duration::from_millis(30),
            measure: Duration::from_millis(120),
        }
    } else {
        Timing {
            warmup: Duration::from_millis(100),
            measure: Duration::from_millis(400),
        }
    };
    let config = Config {
        quick,
        filter,
        timing,
    };
    let write = config.filter.is_none();
    let load_before = report::loadavg();
    let start = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (rows, extras) = runtime.block_on(run_all(config))?;
    drop(runtime);
    let meta = report::Meta {
        quick,
        load_before,
        load_after: report::loadavg(),
        duration: start.elapsed(),
    };
    if write {
        report::write(&rows, &extras, &meta)?;
    } else {
        eprintln!("filtered run: BENCHMARKS.md and the plot left as they were");
    }
    Ok(())
}
