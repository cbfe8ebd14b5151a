//! The conformance suite on the core crate's stores.

use std::sync::Arc;

use sessionkit::store::{MemoryStore, Store, TieredStore};
use sessionkit_tests::conformance::Caps;
use sessionkit_tests::failing::FailingStore;
use sessionkit_tests::{conformance_suite, limits_suite};

/// The bounded MemoryStore (moka) may evict expired entries before cleanup finds them, so
/// cleanup counts fewer than it could; so does a tiered store whose durable tier is exact but
/// whose count is the durable's.
const MEMORY_CAPS: Caps = Caps {
    exact_cleanup: false,
    many_sessions: 100_000,
};

/// The unbounded MemoryStore keeps expired entries until they are touched or cleaned up, and
/// counts exactly.
const EXACT_CAPS: Caps = Caps {
    exact_cleanup: true,
    many_sessions: 100_000,
};

mod memory {
    use super::*;
    async fn make() -> (MemoryStore, ()) {
        (MemoryStore::new(), ())
    }
    conformance_suite!(make, EXACT_CAPS);
    limits_suite!(make);
}

mod memory_bounded {
    use super::*;
    async fn make() -> (MemoryStore, ()) {
        // Far above what any case holds at once: eviction must not lose live sessions here.
        (MemoryStore::with_capacity(1_000_000), ())
    }
    conformance_suite!(make, MEMORY_CAPS);
    limits_suite!(make);
}

mod tiered_memory_memory {
    use super::*;
    async fn make() -> (TieredStore<MemoryStore, MemoryStore>, ()) {
        (
            TieredStore::new(MemoryStore::with_capacity(10_000), MemoryStore::new()),
            (),
        )
    }
    conformance_suite!(make, MEMORY_CAPS);
    limits_suite!(make);
}

mod boxed_dyn {
    use super::*;
    async fn make() -> (Box<dyn Store>, ()) {
        (Box::new(MemoryStore::new()), ())
    }
    conformance_suite!(make, MEMORY_CAPS);
    limits_suite!(make);
}

mod arc_dyn_tiered {
    use super::*;
    async fn make() -> (Arc<dyn Store>, ()) {
        (
            Arc::new(TieredStore::new(MemoryStore::new(), MemoryStore::new())),
            (),
        )
    }
    conformance_suite!(make, MEMORY_CAPS);
    limits_suite!(make);
}

/// A dead cache tier is invisible to the contract: the durable tier answers everything.
mod tiered_dead_cache {
    use super::*;
    async fn make() -> (TieredStore<FailingStore<MemoryStore>, MemoryStore>, ()) {
        (
            TieredStore::new(FailingStore::dead(MemoryStore::new()), MemoryStore::new()),
            (),
        )
    }
    conformance_suite!(make, MEMORY_CAPS);
    limits_suite!(make);
}

/// Tiers nest: a tiered store is a store, so it can be another tier's durable store.
mod tiered_nested {
    use super::*;
    type Nested = TieredStore<MemoryStore, TieredStore<MemoryStore, MemoryStore>>;
    async fn make() -> (Nested, ()) {
        (
            TieredStore::new(
                MemoryStore::with_capacity(1_000),
                TieredStore::new(MemoryStore::new(), MemoryStore::new()),
            ),
            (),
        )
    }
    conformance_suite!(make, MEMORY_CAPS);
    limits_suite!(make);
}

/// The racing-move behaviour reaches MemoryStore's retry branches: a save lands on the record
/// between the move's copy and its swap, and the move copies again. Each form runs the race
/// (on a clone sharing the store's data and counters) until a retry is counted, at most
/// `ROUNDS` times, and prints how many it took.
mod move_retries {
    use super::*;
    use sessionkit::store::MAX_MOVE_ATTEMPTS;
    use sessionkit_tests::conformance::{MoveRace, race_saves_against_move};

    const ROUNDS: usize = 200;

    /// Races `store` (through `wrap`) until `counter` counts a retry; returns the count.
    async fn race_until_retry<S: Store + 'static>(
        form: &str,
        counter: &MemoryStore,
        store: S,
    ) -> u64 {
        let store = Arc::new(store);
        let mut total = MoveRace::default();
        let mut rounds = 0;
        while rounds < ROUNDS && counter.move_retries() == 0 {
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
            "{form}: no move was retried in {ROUNDS} rounds of saves racing moves"
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
        let store = MemoryStore::with_capacity(1_000_000);
        race_until_retry("MemoryStore::with_capacity", &store, store.clone()).await;
    }

    /// In a tiered store the move happens in the durable tier.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn tiered_memory_memory_retries_moves() {
        let durable = MemoryStore::new();
        let tiered = TieredStore::new(MemoryStore::with_capacity(10_000), durable.clone());
        race_until_retry(
            "TieredStore<Memory, Memory> (durable tier)",
            &durable,
            tiered,
        )
        .await;
    }
}
