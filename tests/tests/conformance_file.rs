//! The conformance suite on `FileStore`, alone and as the durable tier under `MemoryStore`.

use sessionkit::store::{MemoryStore, TieredStore};
use sessionkit_backends::FileStore;
use sessionkit_backends::file::{Durability, FileConfig};
use sessionkit_tests::conformance::Caps;
use sessionkit_tests::{conformance_suite, limits_suite};
use tempfile::TempDir;

/// Each synced write costs two fsyncs (about 10 ms here), so the synced invocations write 10⁴
/// sessions. Unsynced, 10⁵ pass too but took two minutes in a debug build on this shared
/// machine; 2·10⁴ already spread over about 17 000 of the 65 536 shard directories.
const SYNCED_CAPS: Caps = Caps {
    exact_cleanup: true,
    many_sessions: 10_000,
};
const UNSYNCED_CAPS: Caps = Caps {
    exact_cleanup: true,
    many_sessions: 20_000,
};

async fn open(durability: Durability) -> (FileStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileConfig::new(dir.path().join("sessions"))
        .with_durability(durability)
        .open()
        .await
        .unwrap();
    (store, dir)
}

mod file {
    use super::*;
    async fn make() -> (FileStore, TempDir) {
        open(Durability::Sync).await
    }
    conformance_suite!(make, SYNCED_CAPS);
    limits_suite!(make);
}

mod file_nosync {
    use super::*;
    async fn make() -> (FileStore, TempDir) {
        open(Durability::NoSync).await
    }
    conformance_suite!(make, UNSYNCED_CAPS);
    limits_suite!(make);
}

/// The MemoryStore tier expires entries by itself, but cleanup reports the durable tier's
/// count, which is exact.
mod tiered_memory_file {
    use super::*;
    async fn make() -> (TieredStore<MemoryStore, FileStore>, TempDir) {
        let (file, dir) = open(Durability::Sync).await;
        (
            TieredStore::new(MemoryStore::with_capacity(10_000), file),
            dir,
        )
    }
    conformance_suite!(make, SYNCED_CAPS);
    limits_suite!(make);
}
