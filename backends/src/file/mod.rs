//! [`FileStore`]: one file per session under a directory, crash-safe and shared safely by
//! several processes.

mod config;
mod layout;
mod scan;
mod sweep;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use sessionkit::SessionKey;
use sessionkit::store::{
    ChangeSet, Error, Grace, Loaded, OWNER_BATCH, Record, Removed, Result, Store,
};

pub use config::{DEFAULT_CLEANUP_BATCH, DEFAULT_CORRUPT_RETENTION, Durability, FileConfig};
use layout::Layout;
use sweep::Sweep;

/// Sessions as files under a directory: the embedded durable tier, usually run as
/// `TieredStore<MemoryStore, FileStore>`.
///
/// # Layout
///
/// ```text
/// <root>/sessions/3f/a9/3fa9…(64 hex)   one session (or grace-window alias), Entry::encode()
/// <root>/sessions/3f/a9/.lock           the lock for every session in 3f/a9/
/// <root>/sessions/3f/a9/.tmp-…          a write in flight, or left by a crash (cleanup removes it)
/// <root>/owners/c0/c0…(64 hex)/3fa9…    empty marker: the owner index behind `owned_by`
/// ```
///
/// File names come only from [`SessionKey::to_hex`] — the SHA-256 of the session id — so
/// nothing a client sends reaches a path, and a directory listing holds no usable id. Two
/// levels of 256 subdirectories keep a million sessions at about fifteen per directory.
/// Owner directories are named by a SHA-256 of the owner tag, never the tag itself; a
/// marker is only a hint, checked against the session's record on every read. Files are
/// created mode `0600` and directories `0700` on Unix, and [`open`](Self::open) refuses a
/// root (or its `sessions`/`owners` directory) that another user owns or that group or others
/// may write: such a user could plant a record file under a key of their choosing.
///
/// # Crash safety and durability
///
/// Every write goes to a temporary file in the session's directory and is renamed over the
/// old file, so a process killed at any instant leaves each session at its old or its new
/// version, never torn or empty. [`Durability`] decides whether the file and its directory
/// are also `fsync`ed (the default, [`Durability::Sync`]) so a save survives a power loss.
///
/// # Concurrency
///
/// `create`, `apply`, `delete` and `rename` are read-modify-write under an exclusive lock
/// on the session directory's `.lock` file, taken with [`std::fs::File::lock`] (`flock(2)`
/// on Unix, `LockFileEx` on Windows). The lock is held by an open file description, so it
/// excludes other tasks of this process as well as other processes sharing the directory,
/// and the OS releases it when a process dies. Concurrent saves of different keys of one
/// session therefore all survive; `rename` locks both directories in path order. Loads take
/// no lock: renames are atomic, so a reader sees one whole version. Use a local file system;
/// `flock` over NFS is emulated and not something to rely on.
///
/// # Corrupt files and I/O errors
///
/// An empty, truncated or foreign file at a session path is logged (with the key's
/// fingerprint only) and treated as absent: `load` reports it as [`Error::Corrupt`], which
/// the manager treats as no session; `apply` returns [`Error::Gone`]; `create` and `rename`
/// refuse to overwrite it ([`Error::AlreadyExists`]); `cleanup` removes it after
/// [`FileConfig::with_corrupt_retention`]. Permission, read-only, disk-full and other I/O
/// failures are [`Error::Storage`] with the [`std::io::Error`] as source and a message that
/// names the cause; a failed write leaves the previous file in place.
///
/// All file I/O runs on tokio's blocking pool ([`tokio::task::spawn_blocking`]), and
/// `cleanup` works in bounded batches with a yield in between.
///
/// ```
/// use sessionkit::store::{MemoryStore, Record, Store, TieredStore};
/// use sessionkit::SessionId;
/// use sessionkit_backends::FileStore;
/// use std::time::{Duration, SystemTime};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// # let root = dir.path().join("sessions");
/// let store = TieredStore::new(MemoryStore::bounded(10_000), FileStore::open(&root).await?);
/// let key = SessionId::generate()?.key();
/// store.create(&key, &Record::new(SystemTime::now() + Duration::from_secs(60))).await?;
/// assert!(store.durable().load(&key).await?.is_some());
/// # Ok::<(), sessionkit::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    layout: Arc<Layout>,
    cleanup_batch: usize,
}

impl FileStore {
    /// Opens (creating if needed) a store at `root` with the default options. See
    /// [`FileConfig`] for the others.
    ///
    /// # Errors
    /// [`Error::Storage`] when the directory cannot be created or written.
    pub async fn open(root: impl AsRef<Path>) -> Result<Self> {
        FileConfig::new(root).open().await
    }

    pub(crate) async fn open_with(config: FileConfig) -> Result<Self> {
        let cleanup_batch = config.cleanup_batch;
        let layout = blocking_io(move || Layout::open(&config)).await?;
        Ok(FileStore {
            layout: Arc::new(layout),
            cleanup_batch,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    /// The durability setting the store was opened with.
    pub fn durability(&self) -> Durability {
        self.layout.durability
    }

    async fn run<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Layout) -> Result<T> + Send + 'static,
    {
        let layout = Arc::clone(&self.layout);
        blocking_io(move || op(&layout)).await
    }
}

/// Runs `op` on the blocking pool. Once started it runs to completion even if the caller's
/// future is dropped, so a cancelled request never leaves a write half done.
async fn blocking_io<T, F>(op: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|e| Error::storage("file store: a blocking I/O task failed", e))?
}

#[async_trait]
impl Store for FileStore {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        let (key, record) = (*key, record.clone());
        self.run(move |l| l.create(&key, &record)).await
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        let key = *key;
        self.run(move |l| l.load(&key)).await
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        let (key, changes) = (*key, changes.clone());
        self.run(move |l| l.apply(&key, &changes)).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        let key = *key;
        self.run(move |l| l.delete(&key)).await
    }

    async fn rename(&self, key: &SessionKey, to: &SessionKey, grace: Option<&Grace>) -> Result<()> {
        let (key, to, grace) = (*key, *to, grace.cloned());
        self.run(move |l| l.rename(&key, &to, grace.as_ref())).await
    }

    /// Removes expired sessions and aliases, temporary files left by crashed writers, stale
    /// owner index markers, and corrupt files past their retention. Returns the number of
    /// expired sessions and aliases removed.
    async fn cleanup(&self) -> Result<u64> {
        let batch = self.cleanup_batch;
        let mut sweep = Sweep::new(Arc::clone(&self.layout));
        loop {
            let (back, more) = blocking_io(move || {
                let more = sweep.step(batch)?;
                Ok((sweep, more))
            })
            .await?;
            sweep = back;
            if !more {
                return Ok(sweep.removed);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Lists the owner's markers (names only), then checks them [`OWNER_BATCH`] at a time,
    /// each batch a step of its own on the blocking pool: no lock is held across the listing,
    /// and a long one (10⁵ sessions) shares the pool with loads instead of occupying it.
    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        let owner: Arc<str> = Arc::from(owner);
        let markers = {
            let owner = Arc::clone(&owner);
            self.run(move |l| l.owner_markers(&owner)).await?
        };
        let mut keys = Vec::new();
        for batch in markers.chunks(OWNER_BATCH) {
            let (owner, batch) = (Arc::clone(&owner), batch.to_vec());
            keys.extend(
                self.run(move |l| l.check_owner_markers(&owner, &batch))
                    .await?,
            );
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}
