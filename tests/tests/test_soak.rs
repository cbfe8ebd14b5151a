//! The quick form of the load soak: 5 000 mixed requests over 500 sessions per store
//! setup, on the axum site (`soak_axum_*`) and on the actix-web one (`soak_actix_*`), with no
//! error allowed. `SESSIONKIT_SOAK=full` runs the full form (10^6 requests over
//! 10^5 sessions) instead; the binary `soak` prints the figures (see RELIABILITY.md).
//!
//! The race stress (`races_*`): 4 000 requests per store setup from 12 tasks on 4 hot
//! sessions, rotating nearly every request, with logins, logouts and revocations racing
//! each other; no invariant violation and no store error allowed. `SESSIONKIT_RACES=long`
//! runs the long form (200 000 requests per setup from 16 tasks).
//!
//! Run: `cargo nextest run --all-features -p sessionkit-tests --test test_soak`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout,
    reason = "test code: a failed expectation fails the test; figures are printed to the test log"
)]

use sessionkit_examples::site::StoreKind;
use sessionkit_tests::site::{Framework, SiteKind};
use sessionkit_tests::soak::{RaceConfig, RaceStore, SoakConfig, run, run_races};

async fn soak(site: SiteKind) {
    let config = if std::env::var("SESSIONKIT_SOAK").as_deref() == Ok("full") {
        SoakConfig::full(site)
    } else {
        SoakConfig::quick(site)
    };
    let wanted = config.requests;
    let report = run(config).await;
    eprintln!("{}", report.summary());
    assert_eq!(report.errors, 0, "{:?}", report.error_samples);
    assert_eq!(report.requests, wanted, "stopped early");
    assert!(report.logins > 0 && report.logouts > 0 && report.id_changes > 0);
}

/// The soak tests of one framework: the same store setups, the same form and assertions.
macro_rules! soak_tests {
    ($framework:ident: $($name:ident => $store:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                soak(Framework::$framework.on(StoreKind::$store)).await;
            }
        )*
    };
}

soak_tests!(Axum:
    soak_axum_memory => Memory,
    soak_axum_memory_file => MemoryFile,
    soak_axum_memory_redis => MemoryRedis,
    soak_axum_redis_file => RedisFile,
);

soak_tests!(Actix:
    soak_actix_memory => Memory,
    soak_actix_memory_file => MemoryFile,
    soak_actix_memory_redis => MemoryRedis,
    soak_actix_redis_file => RedisFile,
);

async fn races(store: RaceStore) {
    let config = if std::env::var("SESSIONKIT_RACES").as_deref() == Ok("long") {
        RaceConfig::long(store)
    } else {
        RaceConfig::quick(store)
    };
    let wanted = config.operations;
    let report = run_races(config).await;
    eprintln!("{}", report.summary(store));
    for sample in &report.samples {
        eprintln!("  {sample}");
    }
    assert_eq!(report.violations, 0, "{:?}", report.samples);
    assert_eq!(report.errors, 0, "{:?}", report.samples);
    assert_eq!(report.operations, wanted);
    // The mix really exercised every path.
    assert!(report.saves > 0 && report.rotations > 0 && report.regenerations > 0);
    assert!(report.destroys > 0 && report.revocations > 0 && report.checked_loads > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn races_memory() {
    races(RaceStore::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn races_memory_bounded() {
    races(RaceStore::MemoryBounded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn races_tiered_memory() {
    races(RaceStore::TieredMemory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn races_file() {
    races(RaceStore::File).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn races_redis() {
    races(RaceStore::Redis).await;
}
