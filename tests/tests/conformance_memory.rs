//! The conformance suite on the core crate's stores (the setups are
//! `sessionkit_tests::setups`, shared with the lifecycle suite).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "test code: a failed expectation fails the test; figures are printed to the test log"
)]

use std::sync::Arc;

use sessionkit::store::{MemoryStore, Store, TieredStore};
use sessionkit_tests::{conformance_suite, limits_suite, setups};

mod memory {
    use super::*;
    conformance_suite!(setups::memory::make, setups::memory::CAPS);
    limits_suite!(setups::memory::make);
}

mod memory_bounded {
    use super::*;
    conformance_suite!(setups::memory_bounded::make, setups::memory_bounded::CAPS);
    limits_suite!(setups::memory_bounded::make);
}

mod tiered_memory_memory {
    use super::*;
    conformance_suite!(
        setups::tiered_memory_memory::make,
        setups::tiered_memory_memory::CAPS
    );
    limits_suite!(setups::tiered_memory_memory::make);
}

mod boxed_dyn {
    use super::*;
    conformance_suite!(setups::boxed_dyn::make, setups::boxed_dyn::CAPS);
    limits_suite!(setups::boxed_dyn::make);
}

mod arc_dyn_tiered {
    use super::*;
    conformance_suite!(setups::arc_dyn_tiered::make, setups::arc_dyn_tiered::CAPS);
    limits_suite!(setups::arc_dyn_tiered::make);
}

/// A dead cache tier is invisible to the contract: the durable tier answers everything.
mod tiered_dead_cache {
    use super::*;
    conformance_suite!(
        setups::tiered_dead_cache::make,
        setups::tiered_dead_cache::CAPS
    );
    limits_suite!(setups::tiered_dead_cache::make);
}

/// Tiers nest: a tiered store is a store, so it can be another tier's durable store.
mod tiered_nested {
    use super::*;
    conformance_suite!(setups::tiered_nested::make, setups::tiered_nested::CAPS);
    limits_suite!(setups::tiered_nested::make);
}

/// The racing-move behaviour reaches MemoryStore's retry branches: a save lands on the record
/// between the move's copy and its swap, and the move copies again. Each form runs the race
/// (on a clone sharing the store's data and counters) until a retry is counted, at most
/// `ROUNDS` times or for `BUDGET`, whichever ends first, and prints how many it took. The
/// window a save must hit is a few instructions wide: on an idle machine a few rounds find it,
/// on a saturated one (two cores, other builds running) it took hundreds, so the budget is
/// generous; the loop stops at the first retry.
mod move_retries {
    use super::*;
    use sessionkit::store::MAX_MOVE_ATTEMPTS;
    use sessionkit_tests::conformance::{MoveRace, race_saves_against_move};

    const ROUNDS: usize = 20_000;
    const BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

    /// Races `store` (through `wrap`) until `counter` counts a retry; returns the count.
    async fn race_until_retry<S: Store + 'static>(
        form: &str,
        counter: &MemoryStore,
        store: S,
    ) -> u64 {
        let store = Arc::new(store);
        let mut total = MoveRace::default();
        let mut rounds = 0;
        let start = std::time::Instant::now();
        while rounds < ROUNDS && start.elapsed() < BUDGET && counter.move_retries() == 0 {
            let race = race_saves_against_move(Arc::clone(&store)).await;
            total.moved += race.moved;
            total.contended += race.contended;
            total.saves += race.saves;
            rounds += 1;
        }
        let retries = counter.move_retries();
        eprintln!(
            "{form}: move_retries = {retries} after {rounds} race round(s) ({} moves done, {} gave up after {MAX_MOVE_ATTEMPTS} attempts, {} saves accepted)",
            total.moved, total.contended, total.saves
        );
        assert!(
            retries > 0,
            "{form}: no move was retried in {rounds} rounds of saves racing moves"
        );
        retries
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn unbounded_memory_retries_moves() {
        let store = MemoryStore::new();
        race_until_retry("MemoryStore::new", &store, store.clone()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn bounded_memory_retries_moves() {
        let store = MemoryStore::bounded(1_000_000);
        race_until_retry("MemoryStore::bounded", &store, store.clone()).await;
    }

    /// In a tiered store the move happens in the durable tier.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn tiered_memory_memory_retries_moves() {
        let durable = MemoryStore::new();
        let tiered = TieredStore::new(MemoryStore::bounded(10_000), durable.clone());
        race_until_retry(
            "TieredStore<Memory, Memory> (durable tier)",
            &durable,
            tiered,
        )
        .await;
    }
}
