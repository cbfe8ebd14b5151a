//! Issue 18's SQLite figures: `SqliteStore` against `FileStore` at equal durability (`Sync`
//! and `NoSync`), and against tower-sessions' sqlx `SqliteStore` on the same settings: load
//! hit and one-key save, 64 tasks. `-- sqlite` runs these alone (and the matrix's SQLite
//! subjects) and prints them; BENCHMARKS.md is left as it is.

use std::sync::Arc;
use std::time::Duration;

use sessionkit_backends::file::FileConfig;
use sessionkit_backends::{Durability, SqliteConfig};
use tower_sessions_sqlx_store::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};

use crate::Config;
use crate::ours::Ours;
use crate::peers::v14::Tower14;
use crate::runner::{self, Indices, Sample};
use crate::subject::{Medium, Op, Subject};

/// Whether the run asked for these figures (every unfiltered run does).
pub(crate) fn wanted(filter: Option<&str>) -> bool {
    filter.is_none_or(|f| "sqlite".contains(&f.to_lowercase()))
}

const TASKS: usize = 64;

/// tower-sessions' sqlx store on its own pool: WAL and the synchronous level that matches
/// `durability`, as `SqliteStore` sets them, so both pay the same disk work per commit.
pub(crate) async fn tower_sqlite(
    path: &std::path::Path,
    durability: Durability,
) -> anyhow::Result<tower_sessions_sqlx_store::SqliteStore> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if durability == Durability::Sync {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        })
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new().connect_with(options).await?;
    let store = tower_sessions_sqlx_store::SqliteStore::new(pool);
    store.migrate().await?;
    Ok(store)
}

/// Fills `subject` with `population` sessions, then measures a load hit and a one-key save
/// on 64 tasks.
async fn measure<S: Subject>(
    config: &Config,
    subject: S,
    population: u64,
) -> anyhow::Result<(Sample, Sample)> {
    let subject = Arc::new(subject);
    runner::populate(&subject, population).await?;
    let indices = Arc::new(Indices::new(population));
    let mut out = Vec::new();
    for op in [Op::LoadHit, Op::SaveChanged] {
        runner::run_for(&subject, &indices, op, TASKS, config.timing.warmup).await?;
        out.push(runner::run_for(&subject, &indices, op, TASKS, config.timing.measure).await?);
    }
    let save = out.pop().ok_or_else(|| anyhow::anyhow!("two samples"))?;
    let load = out.pop().ok_or_else(|| anyhow::anyhow!("two samples"))?;
    Ok((load, save))
}

fn print(name: &str, (load, save): &(Sample, Sample)) {
    let errors = load.errors + save.errors;
    eprintln!(
        "{name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}{}",
        load.throughput(),
        load.p50_ns as f64 / 1e3,
        load.p99_ns as f64 / 1e3,
        save.throughput(),
        save.p50_ns as f64 / 1e3,
        save.p99_ns as f64 / 1e3,
        if errors > 0 {
            format!(" ({errors} ERRORS)")
        } else {
            String::new()
        }
    );
}

pub(crate) async fn run(config: &Config) -> anyhow::Result<()> {
    let population = if config.quick { 1_000 } else { 5_000 };
    let dir = tempfile::tempdir()?;
    eprintln!(
        "== SQLite (issue 18): {population} sessions, {TASKS} tasks, files under the system \
         temp dir (on disk) =="
    );
    eprintln!(
        "store | load hit ops/s | p50 µs | p99 µs | save 1 changed key ops/s | p50 µs | p99 µs"
    );
    for (label, durability) in [("Sync", Durability::Sync), ("NoSync", Durability::NoSync)] {
        let file = FileConfig::new(dir.path().join(format!("files-{label}")))
            .with_durability(durability)
            .open()
            .await?;
        let name = format!("sessionkit FileStore ({label})");
        let figures = measure(config, Ours::new(&name, Medium::File, file), population).await?;
        print(&name, &figures);

        let sqlite = SqliteConfig::new(dir.path().join(format!("ours-{label}.sqlite3")))
            .with_durability(durability)
            .open()
            .await?;
        let name = format!("sessionkit SqliteStore ({label})");
        let figures = measure(config, Ours::new(&name, Medium::File, sqlite), population).await?;
        print(&name, &figures);

        let tower = tower_sqlite(
            &dir.path().join(format!("tower-{label}.sqlite3")),
            durability,
        )
        .await?;
        let name = format!("tower-sessions SqliteStore ({label})");
        let figures = measure(config, Tower14::new(&name, Medium::File, tower), population).await?;
        print(&name, &figures);
    }
    Ok(())
}
