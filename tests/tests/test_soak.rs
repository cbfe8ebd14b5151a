//! The quick form of the load soak: 20 000 mixed requests over 2 000 sessions per store
//! setup, with no error allowed. `SESSIONKIT_SOAK=full` runs the full form (10^6 requests over
//! 10^5 sessions) instead; the binary `soak` prints the figures (see RELIABILITY.md).
//!
//! Run: `cargo nextest run -p sessionkit-tests --test test_soak`

use sessionkit_examples::site::StoreKind;
use sessionkit_tests::soak::{SoakConfig, run};

async fn soak(store: StoreKind) {
    let config = if std::env::var("SESSIONKIT_SOAK").as_deref() == Ok("full") {
        SoakConfig::full(store)
    } else {
        SoakConfig::quick(store)
    };
    let wanted = config.requests;
    let report = run(config).await;
    eprintln!("{}", report.summary());
    assert_eq!(report.errors, 0, "{:?}", report.error_samples);
    assert_eq!(report.requests, wanted, "stopped early");
    assert!(report.logins > 0 && report.logouts > 0 && report.id_changes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_memory() {
    soak(StoreKind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_memory_file() {
    soak(StoreKind::MemoryFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_memory_redis() {
    soak(StoreKind::MemoryRedis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_redis_file() {
    soak(StoreKind::RedisFile).await;
}
