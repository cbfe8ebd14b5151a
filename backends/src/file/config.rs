//! Options of a [`FileStore`](super::FileStore).

use sessionkit::setters;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sessionkit::Result;

use super::FileStore;

pub use crate::durability::Durability;

/// The default number of directory entries [`FileStore::cleanup`] handles between two yields
/// to the async runtime.
///
/// [`FileStore::cleanup`]: sessionkit::Store::cleanup
pub const DEFAULT_CLEANUP_BATCH: usize = 256;

/// The default time a corrupt session file is kept for inspection before `cleanup` removes it.
pub const DEFAULT_CORRUPT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Builds a [`FileStore`].
///
/// ```
/// use sessionkit_backends::file::{Durability, FileConfig};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// # let root = dir.path().join("sessions");
/// let store = FileConfig::new(&root)
///     .with_durability(Durability::NoSync)
///     .with_cleanup_batch(1024)
///     .open()
///     .await?;
/// # drop(store);
/// # Ok::<(), sessionkit::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FileConfig {
    pub(crate) root: PathBuf,
    pub(crate) durability: Durability,
    pub(crate) cleanup_batch: usize,
    pub(crate) corrupt_retention: Duration,
}

impl FileConfig {
    /// A store rooted at `root` (created if missing), with [`Durability::Sync`].
    pub fn new(root: impl AsRef<Path>) -> Self {
        FileConfig {
            root: root.as_ref().to_path_buf(),
            durability: Durability::default(),
            cleanup_batch: DEFAULT_CLEANUP_BATCH,
            corrupt_retention: DEFAULT_CORRUPT_RETENTION,
        }
    }

    setters! {
        /// Sets whether writes are flushed to the disk (default [`Durability::Sync`]).
        fn with_durability(durability: Durability) => durability = durability;

        /// Sets how many directory entries `cleanup` handles per blocking step before it yields
        /// to the runtime (default [`DEFAULT_CLEANUP_BATCH`]; at least 1).
        fn with_cleanup_batch(entries: usize) => cleanup_batch = entries.max(1);

        /// Sets how long `cleanup` leaves a corrupt session file in place for an operator to
        /// inspect before removing it (default [`DEFAULT_CORRUPT_RETENTION`]). Until then it
        /// reads as corrupt, which callers treat as absent.
        fn with_corrupt_retention(retention: Duration) => corrupt_retention = retention;
    }

    /// Creates the directory layout if needed and opens the store.
    ///
    /// # Errors
    /// [`Error::Storage`](sessionkit::Error::Storage) when the root cannot be created or
    /// written (permission denied, read-only file system, a path component that is a file);
    /// [`Error::Config`](sessionkit::Error::Config) when an existing root, `sessions` or
    /// `owners` directory is owned by another user or writable by group or others (Unix).
    pub async fn open(self) -> Result<FileStore> {
        FileStore::open_with(self).await
    }
}
