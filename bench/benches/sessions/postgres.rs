//! The SQL subjects: sessionkit's `PostgresStore` (alone and under a coherent memory tier)
//! and tower-sessions' sqlx `PostgresStore`, on one private PostgreSQL server (the tests'
//! helper, `sessionkit_tests::postgres_server`, never the shared one on 5432). Each subject
//! instance gets a table of its own, so every population starts empty. Both pools hold the
//! same number of connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use sessionkit::Limits;
use sessionkit::store::{ChangeSet, MemoryStore, Store as _, TieredStore};
use sessionkit_backends::postgres::{PostgresConfig, PostgresStore};
use sessionkit_tests::postgres_server::PostgresServer;

use crate::subject::{Kind, Medium, Op, Subject};
use crate::workload::CHANGED_KEY;
use crate::{Harness, cache_tier, ours, peers};

/// Connections in each subject's pool.
const POOL: u32 = 16;

pub(crate) const OURS: &str = "sessionkit PostgresStore";
pub(crate) const TIERED: &str = "sessionkit Tiered<Memory, Postgres> (coherent)";
pub(crate) const THEIRS: &str = "tower-sessions sqlx PostgresStore";
/// Without `pg_notify` in the writes: what the invalidation announcements cost.
pub(crate) const QUIET: &str = "sessionkit PostgresStore (notify off)";
/// Saves that carry the session limits, as the manager's always do (the other subjects'
/// one-key saves send none, as the peers check none): the statement that also checks the
/// merged map's field count and size.
pub(crate) const LIMITED: &str = "sessionkit PostgresStore (saves with limits)";

/// Whether the `sql` filter selects `name`.
pub(crate) fn is_sql(name: &str) -> bool {
    [OURS, QUIET, LIMITED, TIERED, THEIRS].contains(&name)
}

fn wanted(filter: Option<&str>) -> bool {
    match filter {
        None | Some("sql") => true,
        Some(f) => [OURS, QUIET, LIMITED, TIERED, THEIRS]
            .iter()
            .any(|n| n.to_lowercase().contains(&f.to_lowercase())),
    }
}

pub(crate) async fn run(h: &mut Harness) -> anyhow::Result<()> {
    if !wanted(h.config.filter.as_deref()) {
        return Ok(());
    }
    let server = PostgresServer::start();
    let url = server.url();
    let seq = AtomicU64::new(0);
    let table = || format!("bench_{}", seq.fetch_add(1, Ordering::Relaxed));
    let store_with = |table: String, notify: bool| {
        let url = url.clone();
        async move {
            let store = PostgresConfig::new(url)
                .with_table(table)
                .with_notify(notify)
                .with_max_connections(POOL)
                .connect()
                .await?;
            store.migrate().await?;
            anyhow::Ok(store)
        }
    };
    let ours_store = |table: String| store_with(table, true);
    h.bench(OURS, || async {
        Ok(ours::Ours::new(
            OURS,
            Medium::Postgres,
            ours_store(table()).await?,
        ))
    })
    .await?;
    h.bench(QUIET, || async {
        Ok(ours::Ours::new(
            QUIET,
            Medium::Postgres,
            store_with(table(), false).await?,
        ))
    })
    .await?;
    h.bench(LIMITED, || async {
        let store = Arc::new(ours_store(table()).await?);
        Ok(Limited {
            inner: ours::Ours::new(LIMITED, Medium::Postgres, Arc::clone(&store)),
            store,
        })
    })
    .await?;
    h.bench(TIERED, || async {
        let tier = Arc::new(TieredStore::coherent(
            cache_tier(),
            ours_store(table()).await?,
        )?);
        Ok(Settled {
            inner: ours::Ours::new(TIERED, Medium::Postgres, Arc::clone(&tier)),
            tier,
            created: AtomicU64::new(0),
        })
    })
    .await?;
    h.bench(THEIRS, || async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(POOL)
            .connect(&url)
            .await?;
        let store = tower_sessions_sqlx_store::PostgresStore::new(pool)
            .with_table_name(table())
            .map_err(|e| anyhow::anyhow!(e))?;
        store.migrate().await?;
        Ok(peers::v14::Tower14::new(THEIRS, Medium::Postgres, store))
    })
    .await?;
    compare(h);
    drop(server);
    Ok(())
}

/// Prints ours against theirs at 64 tasks and 10⁴ sessions.
fn compare(h: &Harness) {
    let thr = |subject: &str, op: Op| {
        h.rows
            .iter()
            .find(|r| r.subject == subject && r.op == op && r.tasks == 64 && r.population == 10_000)
            .map(|r| r.sample.throughput())
    };
    for op in [Op::LoadHit, Op::SaveChanged, Op::SaveNew, Op::Delete] {
        for ours in [OURS, QUIET, LIMITED] {
            if let (Some(a), Some(b)) = (thr(ours, op), thr(THEIRS, op)) {
                eprintln!(
                    "sql, 64 tasks, {:<20} {ours}: {a:>8.0} ops/s, {THEIRS}: {b:>8.0} ops/s, \
                     ratio {:.2}x",
                    op.label(),
                    a / b
                );
            }
        }
    }
}

type Tier = TieredStore<MemoryStore, PostgresStore>;

/// The coherent tier as a subject. Its own writes are announced back to it like any other
/// process's (the channel cannot tell them apart), so each create's announcement drops what
/// the create cached. Before its loads are measured it waits until the announcements have
/// stopped arriving and then loads every stored session once: load hits measure a warm
/// cache, as the Redis coherence figures do. Its counters are printed when it is dropped.
struct Settled {
    inner: ours::Ours<Arc<Tier>>,
    tier: Arc<Tier>,
    /// Sessions stored by save-new (read by `prepare`, right after the population).
    created: AtomicU64,
}

impl Settled {
    /// Waits until no announcement has arrived for 300 ms (at most 60 s).
    async fn settle(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last = (self.tier.stats().invalidations, Instant::now());
        while last.1.elapsed() < Duration::from_millis(300) {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "{TIERED}: the announcements did not settle"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            let seen = self.tier.stats().invalidations;
            if seen != last.0 {
                last = (seen, Instant::now());
            }
        }
        Ok(())
    }
}

/// The identity methods of a subject that wraps `self.inner` (an `ours::Ours` subject) and
/// changes only how it prepares or runs.
macro_rules! same_identity_as_inner {
    () => {
        fn name(&self) -> String {
            self.inner.name()
        }
        fn kind(&self) -> Kind {
            self.inner.kind()
        }
        fn medium(&self) -> Medium {
            self.inner.medium()
        }
        fn scratch(&self) -> u32 {
            self.inner.scratch()
        }
    };
}

impl Subject for Settled {
    type Scratch = u32;

    same_identity_as_inner!();

    async fn prepare(&self) -> anyhow::Result<()> {
        // The manager's sessions for read-only requests are created (and announced) first.
        self.inner.prepare().await?;
        self.settle().await?;
        let population = self.created.load(Ordering::Relaxed);
        let inner = &self.inner;
        let warmed = futures::stream::iter(0..population)
            .map(|i| async move {
                let mut scratch = 0;
                inner.run(Op::LoadHit, i, &mut scratch).await
            })
            .buffer_unordered(16)
            .fold(0u64, |n, found| async move {
                n + u64::from(matches!(found, Ok(true)))
            })
            .await;
        anyhow::ensure!(
            warmed == population,
            "{TIERED}: {warmed} of {population} loaded"
        );
        eprintln!("  {TIERED}: settled and warmed, {:?}", self.tier.stats());
        Ok(())
    }

    fn count_writes(&self, on: bool) -> Option<u64> {
        self.inner.count_writes(on)
    }

    async fn run(&self, op: Op, i: u64, scratch: &mut u32) -> anyhow::Result<bool> {
        if op == Op::SaveNew {
            self.created.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.run(op, i, scratch).await
    }
}

impl Drop for Settled {
    fn drop(&mut self) {
        eprintln!("  {TIERED}: {:?}", self.tier.stats());
    }
}

/// `PostgresStore` whose one-key saves carry the default [`Limits`], as the manager's do.
struct Limited {
    inner: ours::Ours<Arc<PostgresStore>>,
    store: Arc<PostgresStore>,
}

impl Subject for Limited {
    type Scratch = u32;

    same_identity_as_inner!();

    async fn prepare(&self) -> anyhow::Result<()> {
        self.inner.prepare().await
    }

    fn count_writes(&self, on: bool) -> Option<u64> {
        self.inner.count_writes(on)
    }

    async fn run(&self, op: Op, i: u64, count: &mut u32) -> anyhow::Result<bool> {
        if op != Op::SaveChanged {
            return self.inner.run(op, i, count).await;
        }
        *count = count.wrapping_add(1);
        let mut changes = ChangeSet::default();
        changes.set.insert(
            CHANGED_KEY.to_owned(),
            Bytes::from(rmp_serde::to_vec_named(count)?),
        );
        changes.limits = Some(Limits::default());
        self.store.apply(&ours::key(i), &changes).await?;
        Ok(true)
    }
}
