//! The conformance suite on the core crate's stores.

use std::sync::Arc;

use sessionkit::store::{MemoryStore, Store, TieredStore};
use sessionkit_tests::conformance::Caps;
use sessionkit_tests::conformance_suite;
use sessionkit_tests::failing::FailingStore;

/// The bounded MemoryStore (moka) expires entries by itself, so cleanup finds fewer than it
/// could; so does a tiered store whose durable tier is exact but whose count is the durable's.
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
}

mod memory_bounded {
    use super::*;
    async fn make() -> (MemoryStore, ()) {
        // Far above what any case holds at once: eviction must not lose live sessions here.
        (MemoryStore::with_capacity(1_000_000), ())
    }
    conformance_suite!(make, MEMORY_CAPS);
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
}

mod boxed_dyn {
    use super::*;
    async fn make() -> (Box<dyn Store>, ()) {
        (Box::new(MemoryStore::new()), ())
    }
    conformance_suite!(make, MEMORY_CAPS);
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
}
