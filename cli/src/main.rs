//! `sessionkit`: count, inspect, purge and migrate the sessions of a store.
//!
//! Exit codes: 0 success; 1 a store operation failed; 2 bad usage (unknown store scheme, bad
//! argument; clap's own usage errors also exit 2).

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args, Parser, Subcommand};
use sessionkit::SessionKey;
use sessionkit::store::{
    Copied, Cursor, Error, Listing, Record, Store, StoreExt, copy_session, from_millis, to_millis,
};
use sessionkit_backends::postgres::PostgresStore;
use sessionkit_backends::{FileStore, RedisConfig, RedisStore, SqliteStore};
use time::format_description::well_known::Rfc3339;

const EXAMPLES: &str = "Examples:
  sessionkit --store file:/var/lib/site/sessions count
  sessionkit --store redis://127.0.0.1:6379/0 inspect --owner alice --values
  sessionkit --store redis+cluster://10.0.0.1:7000,10.0.0.2:7000 purge --owner alice
  sessionkit --store file:/var/lib/site/sessions migrate --to redis://127.0.0.1:6379 --dry-run

Exit codes: 0 success, 1 a store operation failed, 2 bad usage (e.g. an unknown store scheme).";

/// Administer the sessions of a sessionkit store.
#[derive(Parser, Debug)]
#[command(name = "sessionkit", version, after_help = EXAMPLES)]
struct Cli {
    /// The store: `file:DIR`, `redis://HOST:PORT[/DB]`, `redis+cluster://HOST:PORT[,HOST:PORT…]`,
    /// `sqlite:PATH` or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, value_name = "URL")]
    store: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the number of live sessions, alone on stdout.
    Count,
    /// Show sessions: fingerprint, owner, timestamps, key names.
    Inspect(Inspect),
    /// End sessions; prints how many were removed.
    Purge(Purge),
    /// Copy every live session to another store (existing keys are skipped: rerun to resume;
    /// safe while the site runs on a `MigratingStore` over the two).
    Migrate(Migrate),
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct Which {
    /// The sessions tagged with this owner.
    #[arg(long)]
    owner: Option<String>,
    /// The session whose store key has this hex (64 digits).
    #[arg(long)]
    key: Option<String>,
}

#[derive(Args, Debug)]
struct Inspect {
    #[command(flatten)]
    which: Which,
    /// Also print the values, as JSON.
    #[arg(long)]
    values: bool,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct PurgeWhat {
    /// Remove expired sessions and aliases (the store's cleanup).
    #[arg(long)]
    expired: bool,
    /// End every session of this owner.
    #[arg(long)]
    owner: Option<String>,
    /// End every session (needs --yes).
    #[arg(long)]
    all: bool,
}

#[derive(Args, Debug)]
struct Purge {
    #[command(flatten)]
    what: PurgeWhat,
    /// Confirms --all.
    #[arg(long)]
    yes: bool,
}

#[derive(Args, Debug)]
struct Migrate {
    /// The store to copy to (same URL forms as --store).
    #[arg(long, value_name = "URL")]
    to: String,
    /// Count what would be copied, write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// A failure and its exit code.
enum Failure {
    Usage(String),
    Store(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Store(e)
    }
}

async fn open(url: &str) -> Result<Box<dyn Listing>, Failure> {
    if let Some(dir) = url.strip_prefix("file:") {
        return Ok(Box::new(FileStore::open(dir).await?));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        return Ok(Box::new(RedisStore::open(url).await?));
    }
    if let Some(nodes) = url.strip_prefix("redis+cluster://") {
        let urls: Vec<String> = nodes.split(',').map(|n| format!("redis://{n}")).collect();
        return Ok(Box::new(
            RedisStore::connect(RedisConfig::cluster(urls)).await?,
        ));
    }
    if let Some(path) = url.strip_prefix("sqlite:") {
        return Ok(Box::new(SqliteStore::open(path).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::open(url).await?;
        // Idempotent (IF NOT EXISTS): a fresh database can be the target of `migrate`.
        store.migrate().await?;
        return Ok(Box::new(store));
    }
    Err(Failure::Usage(format!(
        "unknown store URL {url:?}: expected file:DIR, redis://HOST:PORT[/DB], redis+cluster://HOST:PORT[,HOST:PORT...], sqlite:PATH or postgres://..."
    )))
}

/// Every live session, page by page, duplicates dropped.
async fn all(store: &dyn Listing) -> Result<Vec<(SessionKey, Record)>, Failure> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = store.scan(cursor.as_ref(), 500).await?;
        for (key, record) in page.sessions {
            if seen.insert(key) {
                out.push((key, record));
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

fn timestamp(record: &Record, name: &str) -> String {
    record
        .fields
        .get(name)
        .and_then(|b| rmpv::decode::read_value(&mut &b[..]).ok())
        .and_then(|v| v.as_u64())
        .map_or_else(|| "-".to_owned(), |ms| when(from_millis(ms)))
}

/// `t` as an RFC 3339 date in UTC, to the millisecond stores keep (`2026-12-01T23:58:07.125Z`);
/// a time past the year 9999, which RFC 3339 cannot write, as milliseconds since the epoch.
fn when(t: SystemTime) -> String {
    let ms = to_millis(t);
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|date| date.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms since the epoch"))
}

fn describe(key: &SessionKey, record: &Record, values: bool) -> String {
    let mut out = format!(
        "session {}\n  key: {}\n  owner: {}\n  created: {}\n  last seen: {}\n  last rotation: {}\n  expires: {}\n",
        key.fingerprint(),
        key.to_hex(),
        record.owner.as_deref().unwrap_or("-"),
        timestamp(record, "__sk.created"),
        timestamp(record, "__sk.seen"),
        timestamp(record, "__sk.rotated"),
        when(record.expires_at),
    );
    let names: Vec<&str> = record
        .fields
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with(sessionkit::reserved::RESERVED_PREFIX))
        .collect();
    out.push_str(&format!("  keys: {}\n", names.join(", ")));
    if values {
        let map: serde_json::Map<String, serde_json::Value> = record
            .fields
            .iter()
            .filter(|(k, _)| !k.starts_with(sessionkit::reserved::RESERVED_PREFIX))
            .map(|(k, b)| {
                let v = rmpv::decode::read_value(&mut &b[..])
                    .ok()
                    .and_then(|v| serde_json::to_value(v).ok())
                    .unwrap_or(serde_json::Value::Null);
                (k.clone(), v)
            })
            .collect();
        out.push_str(&format!("  values: {}\n", serde_json::Value::Object(map)));
    }
    out
}

async fn run(cli: Cli) -> Result<String, Failure> {
    let store = open(&cli.store).await?;
    match cli.command {
        Command::Count => Ok(format!("{}\n", store.count().await?)),
        Command::Inspect(inspect) => {
            let keys: Vec<SessionKey> = match (&inspect.which.owner, &inspect.which.key) {
                (Some(owner), _) => store.owned_by(owner).await?,
                (_, Some(hex)) => vec![
                    SessionKey::from_hex(hex)
                        .ok_or_else(|| Failure::Usage("--key: expected 64 hex digits".into()))?,
                ],
                (None, None) => Vec::new(),
            };
            let mut out = String::new();
            for key in keys {
                if let Some(loaded) = store.load(&key).await?
                    && loaded.moved.is_none()
                {
                    out.push_str(&describe(&key, &loaded.record, inspect.values));
                }
            }
            Ok(out)
        }
        Command::Purge(purge) => {
            let removed = if purge.what.expired {
                store.cleanup().await?
            } else if let Some(owner) = &purge.what.owner {
                store.delete_owned_by(owner).await? as u64
            } else {
                if !purge.yes {
                    return Err(Failure::Usage("purge --all needs --yes".into()));
                }
                let mut n = 0;
                for (key, _) in all(store.as_ref()).await? {
                    if store.end_session(&key).await? {
                        n += 1;
                    }
                }
                n
            };
            Ok(format!("{removed}\n"))
        }
        Command::Migrate(m) => {
            let target = open(&m.to).await?;
            let sessions = all(store.as_ref()).await?;
            let bar = std::io::stderr()
                .is_terminal()
                .then(|| indicatif::ProgressBar::new(sessions.len() as u64));
            let (mut copied, mut skipped, mut dropped) = (0u64, 0u64, 0u64);
            for (i, (key, record)) in sessions.iter().enumerate() {
                let exists = target.load(key).await?.is_some();
                if exists {
                    skipped += 1;
                } else if m.dry_run {
                    copied += 1;
                } else {
                    // The site may be running on a `MigratingStore` over the two meanwhile:
                    // a session it ends between our scan and this copy is not brought back.
                    match copy_session(store.as_ref(), target.as_ref(), key, record).await? {
                        Copied::Copied => copied += 1,
                        Copied::AlreadyThere => skipped += 1,
                        Copied::Ended => dropped += 1,
                    }
                }
                match &bar {
                    Some(bar) => bar.inc(1),
                    None if (i + 1) % 1000 == 0 => {
                        eprintln_progress(i + 1, sessions.len());
                    }
                    None => {}
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let verb = if m.dry_run { "would copy" } else { "copied" };
            Ok(format!(
                "{verb} {copied}, skipped {skipped} (already there), dropped {dropped} (ended meanwhile)\n"
            ))
        }
    }
}

#[allow(clippy::print_stderr, reason = "the command's progress lines")]
fn eprintln_progress(done: usize, total: usize) {
    eprintln!("migrated {done}/{total}");
}

#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command's output"
)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sessionkit: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("sessionkit: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Store(e)) => {
            eprintln!("sessionkit: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_are_rfc3339_utc_to_the_millisecond() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_169_487_125);
        assert_eq!(when(t), "2026-12-01T23:58:07.125Z");
        assert_eq!(when(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let far = from_millis(u64::MAX);
        assert_eq!(when(far), format!("{} ms since the epoch", to_millis(far)));
    }
}
