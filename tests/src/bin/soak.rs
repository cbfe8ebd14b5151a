//! The load soak against the example site (see `sessionkit_tests::soak`).
//!
//! ```text
//! cargo run --release -p sessionkit-tests --bin soak -- [--full] [--store memory+file]
//!     [--framework axum|actix|both] [--requests N] [--sessions N] [--concurrency N]
//!     [--max-secs N]
//! ```
//!
//! Without `--store` it runs every setup: memory, memory+file, memory+redis, redis+file.
//! `--framework` picks the site: `axum` (the `web` example, the default), `actix` (the
//! `web-actix` example) or `both` (each setup on axum, then on actix-web). Without `--full`,
//! both run the tests' quick form (`SoakConfig::quick`) unless `--requests`/`--sessions` say
//! otherwise.
//! Exits non-zero when any request failed.
//!
//! ```text
//! cargo run --release -p sessionkit-tests --bin soak -- --races [--long]
//!     [--store memory|memory-bounded|tiered|file|redis] [--requests N] [--concurrency N]
//!     [--sessions N] [--seed N]
//! ```
//!
//! runs the race stress instead (`sessionkit_tests::soak::run_races`): exits non-zero on any
//! invariant violation or store error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a measuring tool: it prints its report and stops on a broken setup"
)]

use std::time::Duration;

use sessionkit_examples::site::StoreKind;
use sessionkit_tests::site::Framework;
use sessionkit_tests::soak::{RaceConfig, RaceStore, SoakConfig, run, run_races};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |name: &str| value(name).map(|v| v.parse::<u64>().expect("a number"));
    if args.iter().any(|a| a == "--help") {
        eprintln!(
            "soak [--full] [--store memory|memory+file|memory+redis|redis+file] [--framework axum|actix|both] [--requests N] [--sessions N] [--concurrency N] [--max-secs N]\n\
             soak --races [--long] [--store memory|memory-bounded|tiered|file|redis] [--requests N] [--concurrency N] [--sessions N] [--seed N]"
        );
        return;
    }
    if args.iter().any(|a| a == "--races") {
        races(&args, &value, &number);
        return;
    }
    let full = args.iter().any(|a| a == "--full")
        || std::env::var("SESSIONKIT_SOAK").as_deref() == Ok("full");
    let stores = match value("--store") {
        Some(s) => vec![StoreKind::parse(&s).expect("a store setup")],
        None => vec![
            StoreKind::Memory,
            StoreKind::MemoryFile,
            StoreKind::MemoryRedis,
            StoreKind::RedisFile,
        ],
    };
    let frameworks = match value("--framework").as_deref() {
        None | Some("axum") => vec![Framework::Axum],
        Some("actix") => vec![Framework::Actix],
        Some("both") => Framework::ALL.to_vec(),
        Some(other) => panic!("--framework {other}: axum, actix or both"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut failed = false;
    let sites = stores
        .iter()
        .flat_map(|&store| frameworks.iter().map(move |f| f.on(store)));
    for site in sites {
        let mut config = if full {
            SoakConfig::full(site)
        } else {
            SoakConfig::quick(site)
        };
        if let Some(n) = number("--requests") {
            config.requests = n;
        }
        if let Some(n) = number("--sessions") {
            config.sessions = usize::try_from(n).expect("sessions");
        }
        if let Some(n) = number("--concurrency") {
            config.concurrency = usize::try_from(n).expect("concurrency");
        }
        if let Some(n) = number("--max-secs") {
            config.max_time = Duration::from_secs(n);
        }
        let report = rt.block_on(run(config));
        println!("{}", report.summary());
        for e in &report.error_samples {
            println!("  error: {e}");
        }
        failed |= report.errors > 0;
    }
    if failed {
        std::process::exit(1);
    }
}

fn races(
    args: &[String],
    value: &dyn Fn(&str) -> Option<String>,
    number: &dyn Fn(&str) -> Option<u64>,
) {
    let long = args.iter().any(|a| a == "--long")
        || std::env::var("SESSIONKIT_RACES").as_deref() == Ok("long");
    let stores = match value("--store") {
        Some(s) => vec![RaceStore::parse(&s).expect("a race store setup")],
        None => RaceStore::ALL.to_vec(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut failed = false;
    for store in stores {
        let mut config = if long {
            RaceConfig::long(store)
        } else {
            RaceConfig::quick(store)
        };
        if let Some(n) = number("--requests") {
            config.operations = n;
        }
        if let Some(n) = number("--concurrency") {
            config.tasks = usize::try_from(n).expect("concurrency");
        }
        if let Some(n) = number("--sessions") {
            config.sessions = usize::try_from(n).expect("sessions");
        }
        if let Some(n) = number("--seed") {
            config.seed = n;
        }
        let report = rt.block_on(run_races(config));
        println!("{}", report.summary(store));
        for s in &report.samples {
            println!("  {s}");
        }
        failed |= report.violations > 0 || report.errors > 0;
    }
    if failed {
        std::process::exit(1);
    }
}
