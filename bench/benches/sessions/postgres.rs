//! The SQL subjects: sessionkit's `PostgresStore` (alone and under a coherent memory tier)
//! and tower-sessions' sqlx `PostgresStore`, on one private PostgreSQL server (the tests'
//! helper, `sessionkit_tests::postgres_server`, never the shared one on 5432). Each subject
//! instance gets a table of its own, so every population starts empty. Both pools hold the
//! same number of connections.

use std::sync::atomic::{AtomicU64, Ordering};

use sessionkit::store::TieredStore;
use sessionkit_backends::postgres::PostgresConfig;
use sessionkit_tests::postgres_server::PostgresServer;

use crate::subject::{Medium, Op};
use crate::{Harness, cache_tier, ours, peers};

/// Connections in each subject's pool.
const POOL: u32 = 16;

pub(crate) const OURS: &str = "sessionkit PostgresStore";
pub(crate) const TIERED: &str = "sessionkit Tiered<Memory, Postgres> (coherent)";
pub(crate) const THEIRS: &str = "tower-sessions sqlx PostgresStore";
/// Without `pg_notify` in the writes: what the invalidation announcements cost.
pub(crate) const QUIET: &str = "sessionkit PostgresStore (notify off)";

/// Whether the `sql` filter selects `name`.
pub(crate) fn is_sql(name: &str) -> bool {
    [OURS, QUIET, TIERED, THEIRS].contains(&name)
}

fn wanted(filter: Option<&str>) -> bool {
    match filter {
        None | Some("sql") => true,
        Some(f) => [OURS, QUIET, TIERED, THEIRS]
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
    h.bench(TIERED, || async {
        Ok(ours::Ours::new(
            TIERED,
            Medium::Postgres,
            TieredStore::coherent(cache_tier(), ours_store(table()).await?)?,
        ))
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
        for ours in [OURS, QUIET] {
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
