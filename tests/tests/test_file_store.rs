//! FileStore beyond the conformance suite: crashes, corrupt files, I/O errors, several
//! processes on one directory, and what reaches the disk.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sessionkit::store::{ChangeSet, Error, Record, Store};
use sessionkit::{SessionId, SessionKey};
use sessionkit_backends::FileStore;
use sessionkit_backends::file::{Durability, FileConfig};
use sessionkit_tests::crash::check_after_kill;
use tempfile::TempDir;

const WRITER: &str = env!("CARGO_BIN_EXE_file_writer");

fn session_path(root: &Path, key: &SessionKey) -> PathBuf {
    let hex = key.to_hex();
    root.join("sessions")
        .join(&hex[0..2])
        .join(&hex[2..4])
        .join(&hex)
}

fn record(fields: &[(&str, &[u8])]) -> Record {
    let mut r = Record::new(SystemTime::now() + Duration::from_secs(3600));
    for (k, v) in fields {
        r.fields.insert((*k).into(), Bytes::copy_from_slice(v));
    }
    r
}

fn set(k: &str, v: &[u8]) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.set.insert(k.into(), Bytes::copy_from_slice(v));
    c
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for item in fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn temp_files(dir: &Path) -> usize {
    files(dir)
        .iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .count()
}

async fn open(dir: &TempDir) -> (FileStore, PathBuf) {
    let root = dir.path().join("store");
    (FileStore::open(&root).await.unwrap(), root)
}

fn spawn(args: &[&str]) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(WRITER)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

fn line(out: &mut BufReader<ChildStdout>) -> String {
    let mut l = String::new();
    out.read_line(&mut l).unwrap();
    l.trim_end().to_owned()
}

/// A writer process killed with SIGKILL at arbitrary instants, many times, in both durability
/// modes, never leaves a session torn, empty or missing: each reads back whole, at a version no
/// older than before the kill. Temporary files the kills leave behind are removed by cleanup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_leaves_every_session_whole() {
    const SESSIONS: usize = 4;
    const KILLS: usize = 40;
    // On the disk (cargo's per-target temp dir), not in TMPDIR: `scripts/test` may put TMPDIR
    // on tmpfs, where a write and its fsync are so quick that 40 kills never land inside one
    // (seen in CI), and the test is about a real file system's rename and fsync anyway.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = dir.path().join("store");
    let root_s = root.to_str().unwrap().to_owned();
    let mut last = [0u64; SESSIONS];
    let mut left_behind = 0;
    for round in 0..KILLS {
        let mode = if round % 2 == 0 { "sync" } else { "nosync" };
        let n = SESSIONS.to_string();
        let (mut child, mut out) = spawn(&["crash", &root_s, mode, &n]);
        assert_eq!(line(&mut out), "ready");
        // Spread the kills over the write loop: 1 to 37 ms after the writer got going.
        tokio::time::sleep(Duration::from_millis(1 + (round as u64 * 7919) % 37)).await;
        child.kill().unwrap();
        child.wait().unwrap();

        left_behind += temp_files(&root);
        let store = FileStore::open(&root).await.unwrap();
        check_after_kill(&store, round, mode, &mut last, None).await;
    }
    assert!(
        last.iter().all(|v| *v > 0),
        "the writer made progress: {last:?}"
    );
    // The kills really landed mid-write at least once.
    assert!(left_behind > 0, "no kill interrupted a write");
    let store = FileStore::open(&root).await.unwrap();
    assert_eq!(store.cleanup().await.unwrap(), 0);
    assert_eq!(temp_files(&root), 0);
}

/// Two processes saving different keys of one session at the same time both keep every save:
/// the file locks serialize them across processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_saving_one_session_keep_both() {
    const COUNT: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let (store, root) = open(&dir).await;
    let key = SessionId::generate().unwrap().key();
    store.create(&key, &record(&[])).await.unwrap();
    let (root_s, hex, count) = (root.to_str().unwrap(), key.to_hex(), COUNT.to_string());
    let (mut a, mut a_out) = spawn(&["merge", root_s, &hex, "a", &count]);
    let (mut b, mut b_out) = spawn(&["merge", root_s, &hex, "b", &count]);
    assert_eq!(line(&mut a_out), "done");
    assert_eq!(line(&mut b_out), "done");
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let fields = store.load(&key).await.unwrap().unwrap().record.fields;
    assert_eq!(fields.len(), 2 * COUNT);
    for p in ["a", "b"] {
        for i in 0..COUNT {
            assert!(fields.contains_key(&format!("{p}-{i}")), "{p}-{i} was lost");
        }
    }
}

/// Empty, truncated and foreign files at a session path read as corrupt (absent to the
/// manager), never panic, refuse saves, are never overwritten by create, and can be deleted.
#[tokio::test]
async fn corrupt_truncated_empty_and_foreign_files_read_as_absent() {
    let dir = tempfile::tempdir().unwrap();
    let (store, root) = open(&dir).await;
    let full = {
        let key = SessionId::generate().unwrap().key();
        store
            .create(&key, &record(&[("a", &[1; 300])]))
            .await
            .unwrap();
        fs::read(session_path(&root, &key)).unwrap()
    };
    let bad: [(&str, Vec<u8>); 5] = [
        ("empty", Vec::new()),
        ("truncated", full[..full.len() / 2].to_vec()),
        ("one byte short", full[..full.len() - 1].to_vec()),
        ("text", b"hello, I am not a session\n".to_vec()),
        ("random", (0..=255u8).rev().collect()),
    ];
    for (what, bytes) in bad {
        let key = SessionId::generate().unwrap().key();
        let mut r = record(&[("a", b"1")]);
        r.owner = Some("carol".into());
        store.create(&key, &r).await.unwrap();
        fs::write(session_path(&root, &key), &bytes).unwrap();

        let err = store.load(&key).await.unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err:?}");
        let err = store.apply(&key, &set("b", b"2")).await.unwrap_err();
        assert!(matches!(err, Error::Gone), "{what}: {err:?}");
        let err = store.create(&key, &record(&[])).await.unwrap_err();
        assert!(matches!(err, Error::AlreadyExists), "{what}: {err:?}");
        assert_eq!(
            fs::read(session_path(&root, &key)).unwrap(),
            bytes,
            "{what}: rewritten"
        );
        assert!(store.owned_by("carol").await.unwrap().is_empty(), "{what}");
        store.delete(&key).await.unwrap();
        assert!(store.load(&key).await.unwrap().is_none(), "{what}");
    }

    // A directory where a session file should be is foreign too.
    let key = SessionId::generate().unwrap().key();
    store.create(&key, &record(&[])).await.unwrap();
    let path = session_path(&root, &key);
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    assert!(matches!(store.load(&key).await, Err(Error::Corrupt { .. })));
    assert!(matches!(
        store.apply(&key, &set("a", b"1")).await,
        Err(Error::Gone)
    ));
}

/// `cleanup` keeps a corrupt file for the configured retention, then removes it, and leaves
/// files and directories that are not the store's alone.
#[tokio::test]
async fn cleanup_keeps_corrupt_files_for_retention_and_ignores_foreign_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = FileStore::open(&root).await.unwrap();
    let key = SessionId::generate().unwrap().key();
    store.create(&key, &record(&[])).await.unwrap();
    let path = session_path(&root, &key);
    fs::write(&path, b"").unwrap();
    let foreign = [
        root.join("README"),
        root.join("sessions").join("notes.txt"),
        path.parent().unwrap().join("not-a-key"),
        path.parent().unwrap().join("ABCDEF"),
    ];
    for f in &foreign {
        fs::write(f, b"mine").unwrap();
    }
    fs::create_dir_all(root.join("sessions").join("zz").join("yy")).unwrap();

    assert_eq!(store.cleanup().await.unwrap(), 0);
    assert!(path.exists(), "removed before its retention");

    let eager = FileConfig::new(&root)
        .with_corrupt_retention(Duration::ZERO)
        .open()
        .await
        .unwrap();
    assert_eq!(eager.cleanup().await.unwrap(), 0);
    assert!(!path.exists(), "kept past its retention");
    for f in &foreign {
        assert_eq!(fs::read(f).unwrap(), b"mine", "{f:?}");
    }
    assert!(root.join("sessions").join("zz").join("yy").is_dir());
}

/// `cleanup`, in batches of one entry, removes every expired session and alias (counting
/// them), temporary files left by crashed writers and stale owner markers, and keeps live
/// sessions, their markers and the lock files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_in_small_batches_removes_expired_temp_and_stale_markers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = FileConfig::new(&root)
        .with_cleanup_batch(1)
        .with_durability(Durability::NoSync)
        .open()
        .await
        .unwrap();
    let mut dead = Vec::new();
    for _ in 0..40 {
        let key = SessionId::generate().unwrap().key();
        let mut r = record(&[("x", b"1")]);
        r.expires_at = SystemTime::now() + Duration::from_millis(200);
        r.owner = Some("dave".into());
        store.create(&key, &r).await.unwrap();
        dead.push(key);
    }
    let live = SessionId::generate().unwrap().key();
    let mut r = record(&[("x", b"1")]);
    r.owner = Some("dave".into());
    store.create(&live, &r).await.unwrap();
    let leaf = session_path(&root, &live).parent().unwrap().to_owned();
    for i in 0..5 {
        fs::write(leaf.join(format!(".tmp-crashed{i}")), b"partial").unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;

    assert_eq!(store.cleanup().await.unwrap(), 40);
    assert_eq!(temp_files(&root), 0);
    assert!(leaf.join(".lock").exists());
    assert_eq!(store.owned_by("dave").await.unwrap(), vec![live]);
    let markers = files(&root.join("owners"));
    assert_eq!(markers.len(), 1, "{markers:?}");
    assert!(markers[0].ends_with(live.to_hex()));
    assert_eq!(store.cleanup().await.unwrap(), 0);
}

/// Cleanup running in a loop while tasks save never disturbs a write in flight: every save
/// succeeds and is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_alongside_saves_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _root) = open(&dir).await;
    let key = SessionId::generate().unwrap().key();
    store.create(&key, &record(&[])).await.unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let writers = futures::future::join_all((0..4).map(|t| {
        let (store, done) = (&store, &done);
        async move {
            for i in 0..40 {
                store
                    .apply(&key, &set(&format!("t{t}-{i}"), &[0; 2048]))
                    .await
                    .unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }));
    let sweeper = async {
        let mut passes = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) || passes == 0 {
            assert_eq!(store.cleanup().await.unwrap(), 0);
            passes += 1;
        }
    };
    futures::future::join(writers, sweeper).await;
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().record.fields.len(),
        160
    );
}

/// Whether this process ignores file permissions (root, or CAP_DAC_OVERRIDE).
fn ignores_permissions(dir: &Path) -> bool {
    let probe = dir.join("probe");
    fs::create_dir(&probe).unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o500)).unwrap();
    let writable = fs::write(probe.join("x"), b"").is_ok();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o700)).unwrap();
    fs::remove_dir_all(&probe).unwrap();
    writable
}

fn walk_dirs_first(path: &Path, f: &mut dyn FnMut(&Path)) {
    f(path);
    if path.is_dir() {
        for item in fs::read_dir(path).unwrap() {
            walk_dirs_first(&item.unwrap().path(), f);
        }
    }
}

fn chmod_tree(path: &Path, dirs: u32, files: u32) {
    if path.is_dir() {
        // Open a directory before walking it, close it after.
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).unwrap();
        for item in fs::read_dir(path).unwrap() {
            chmod_tree(&item.unwrap().path(), dirs, files);
        }
        fs::set_permissions(path, fs::Permissions::from_mode(dirs)).unwrap();
    } else {
        fs::set_permissions(path, fs::Permissions::from_mode(files)).unwrap();
    }
}

/// A store directory that became read-only under a running process: loads still work, every
/// write fails with `Error::Storage` saying "permission denied", and nothing stored is lost.
///
/// Root ignores permission bits, so when the test runs as root the store is handed to uid
/// 65534 (`nobody`) and the operations run in a child process with that uid: the errors are
/// the kernel's real EACCES either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_directory_is_a_typed_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, root) = open(&dir).await;
    let key = SessionId::generate().unwrap().key();
    store
        .create(&key, &record(&[("a", b"1"), ("b", b"2")]))
        .await
        .unwrap();
    let before = fs::read(session_path(&root, &key)).unwrap();

    let privileged = ignores_permissions(dir.path());
    let mut cmd = Command::new(WRITER);
    cmd.args(["ops", root.to_str().unwrap(), &key.to_hex()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if privileged {
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        walk_dirs_first(&root, &mut |p| {
            std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap()
        });
        cmd.uid(65534).gid(65534);
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(line(&mut out), "open");
    chmod_tree(&root, 0o500, 0o400);
    writeln!(child.stdin.take().unwrap()).unwrap();

    assert_eq!(line(&mut out), "load ok 2");
    for op in ["apply", "create", "rename", "delete"] {
        let l = line(&mut out);
        assert!(l.starts_with(&format!("{op} err storage ")), "{l}");
        assert!(l.contains("permission denied"), "{l}");
    }
    // Cleanup has nothing to remove here, so it never needs to write.
    assert_eq!(line(&mut out), "cleanup ok");
    assert!(child.wait().unwrap().success());

    chmod_tree(&root, 0o700, 0o600);
    assert_eq!(fs::read(session_path(&root, &key)).unwrap(), before);
    let fields = store.load(&key).await.unwrap().unwrap().record.fields;
    assert_eq!(fields.len(), 2);
    assert_eq!(temp_files(&root), 0);
}

/// A write the kernel cuts short (here: EFBIG from a file size limit, the same short write a
/// full disk gives) is `Error::Storage` naming the cause; the previous version stays and no
/// temporary file is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_cut_short_keeps_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let (store, root) = open(&dir).await;
    let key = SessionId::generate().unwrap().key();
    store.create(&key, &record(&[("a", b"1")])).await.unwrap();
    let before = fs::read(session_path(&root, &key)).unwrap();

    // RLIMIT_FSIZE of 64 KiB; SIGXFSZ ignored (inherited through exec) so write(2) returns
    // EFBIG instead of killing the writer.
    let out = Command::new("sh")
        .args(["-c", "ulimit -f 128 && trap '' XFSZ && exec \"$0\" \"$@\""])
        .arg(WRITER)
        .args(["big", root.to_str().unwrap(), &key.to_hex(), "1048576"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("apply err storage "), "{stdout}");
    assert!(
        stdout.contains("file too large while writing a session file"),
        "{stdout}"
    );

    assert_eq!(fs::read(session_path(&root, &key)).unwrap(), before);
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().record.fields.len(),
        1
    );
    assert_eq!(temp_files(&root), 0);
}

/// A root whose parent is a regular file fails to open with a typed error that says so.
#[tokio::test]
async fn root_under_a_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    fs::write(&file, b"x").unwrap();
    let err = FileStore::open(file.join("store")).await.unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err:?}");
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

/// Only hex of hashed keys and hashed owners reaches a path: no id, no owner string, no
/// client input. Files are private to the owner (0600, directories 0700).
#[tokio::test]
async fn only_hashed_names_reach_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (store, root) = open(&dir).await;
    let id = SessionId::generate().unwrap();
    let mut r = record(&[("../../etc/passwd", b"x")]);
    r.owner = Some("../../alice".into());
    store.create(&id.key(), &r).await.unwrap();
    let moved = SessionId::generate().unwrap().key();
    store
        .rename(
            &id.key(),
            &moved,
            Some(&sessionkit::store::Grace::new(
                SystemTime::now() + Duration::from_secs(60),
                vec![1],
            )),
        )
        .await
        .unwrap();

    let is_hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let all = files(&root);
    assert!(all.len() >= 4, "{all:?}");
    for f in &all {
        let rel = f.strip_prefix(&root).unwrap();
        let parts: Vec<&str> = rel.iter().map(|p| p.to_str().unwrap()).collect();
        let ok = match parts[..] {
            ["sessions", a, b, name] => {
                is_hex(a, 2)
                    && is_hex(b, 2)
                    && (name == ".lock"
                        || (is_hex(name, 64) && name.starts_with(&format!("{a}{b}"))))
            }
            ["owners", a, h, name] => {
                is_hex(a, 2) && is_hex(h, 64) && h.starts_with(a) && is_hex(name, 64)
            }
            _ => false,
        };
        assert!(ok, "unexpected path {rel:?}");
        let text = rel.to_string_lossy();
        assert!(!text.contains(&id.expose()) && !text.contains("alice"));
        assert_eq!(
            fs::metadata(f).unwrap().permissions().mode() & 0o077,
            0,
            "{rel:?}"
        );
    }
    for d in [root.join("sessions"), root.join("owners")] {
        walk_dirs_first(&d, &mut |p| {
            if p.is_dir() {
                assert_eq!(
                    fs::metadata(p).unwrap().permissions().mode() & 0o777,
                    0o700,
                    "{p:?}"
                );
            }
        });
    }
}

/// An owner marker is only a hint: one pointing at another owner's session (or nothing) is
/// not listed, and cleanup removes it.
#[tokio::test]
async fn stale_owner_markers_are_verified_away() {
    let dir = tempfile::tempdir().unwrap();
    let (store, root) = open(&dir).await;
    let (erin, frank) = (
        SessionId::generate().unwrap().key(),
        SessionId::generate().unwrap().key(),
    );
    for (k, o) in [(erin, "erin"), (frank, "frank")] {
        let mut r = record(&[]);
        r.owner = Some(o.into());
        store.create(&k, &r).await.unwrap();
    }
    let frank_marker = files(&root.join("owners"))
        .into_iter()
        .find(|p| p.ends_with(frank.to_hex()))
        .unwrap();
    let erin_dir = files(&root.join("owners"))
        .into_iter()
        .find(|p| p.ends_with(erin.to_hex()))
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    // Forge markers in erin's directory: one for frank's session, one for no session.
    let nobody = SessionId::generate().unwrap().key();
    fs::copy(&frank_marker, erin_dir.join(frank.to_hex())).unwrap();
    fs::write(erin_dir.join(nobody.to_hex()), b"").unwrap();
    assert_eq!(store.owned_by("erin").await.unwrap(), vec![erin]);
    assert_eq!(fs::read_dir(&erin_dir).unwrap().count(), 1);

    fs::write(erin_dir.join(frank.to_hex()), b"").unwrap();
    assert_eq!(store.cleanup().await.unwrap(), 0);
    assert_eq!(fs::read_dir(&erin_dir).unwrap().count(), 1);
    assert_eq!(store.owned_by("frank").await.unwrap(), vec![frank]);
}

/// A fresh key whose file lives in the shard directory `sessions/<a>/<b>/`.
fn key_in(a: u8, b: u8) -> SessionKey {
    let mut bytes = *SessionId::generate().unwrap().key().as_bytes();
    bytes[0] = a;
    bytes[1] = b;
    SessionKey::from_bytes(bytes)
}

/// Moves crossing between two shard directories in both directions at once, with saves to the
/// same sessions, finish without deadlock (both directories are locked in one fixed order) and
/// lose no accepted save.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_moves_between_two_directories_finish() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _root) = open(&dir).await;
    let store = std::sync::Arc::new(store);
    let mut tasks = Vec::new();
    for t in 0..16u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let (x, y) = if t % 2 == 0 {
                ((0x11, 0x22), (0x33, 0x44))
            } else {
                ((0x33, 0x44), (0x11, 0x22))
            };
            for _ in 0..10 {
                let (from, to) = (key_in(x.0, x.1), key_in(y.0, y.1));
                store.create(&from, &record(&[])).await.unwrap();
                let saver = {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let c = set("s", b"1");
                        match store.apply(&from, &c).await {
                            Ok(()) => true,
                            Err(Error::Gone) => store.apply(&to, &c).await.is_ok(),
                            Err(e) => panic!("{e:?}"),
                        }
                    })
                };
                store.rename(&from, &to, None).await.unwrap();
                let saved = saver.await.unwrap();
                let fields = store.load(&to).await.unwrap().unwrap().record.fields;
                assert_eq!(fields.contains_key("s"), saved);
                assert!(store.load(&from).await.unwrap().is_none());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Issue 16, item 8: the store creates its tree private (directories `0700`, files `0600`)
/// and refuses a root another local user could write into, naming the problem, before it
/// writes anything.
#[tokio::test]
async fn a_root_others_can_write_is_refused() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (store, root) = open(&dir).await;
    let key = SessionId::generate().unwrap().key();
    store.create(&key, &record(&[("a", b"1")])).await.unwrap();
    for d in [root.clone(), root.join("sessions"), root.join("owners")] {
        assert_eq!(
            fs::metadata(&d).unwrap().mode() & 0o777,
            0o700,
            "{}",
            d.display()
        );
    }
    assert_eq!(
        fs::metadata(session_path(&root, &key)).unwrap().mode() & 0o777,
        0o600
    );
    drop(store);

    for (sub, mode, says) in [
        ("", 0o777, "everyone"),
        ("", 0o770, "its group"),
        ("", 0o1777, "everyone"),
        ("sessions", 0o757, "everyone"),
        ("owners", 0o730, "its group"),
    ] {
        let target = if sub.is_empty() {
            root.clone()
        } else {
            root.join(sub)
        };
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
        match FileStore::open(&root).await {
            Err(Error::Config(m)) => {
                assert!(m.contains(says) && m.contains("plant"), "{m}");
                assert!(m.contains(&target.display().to_string()), "{m}");
            }
            other => panic!("opened a root with {sub:?} mode {mode:o}: {other:?}"),
        }
        fs::set_permissions(&target, fs::Permissions::from_mode(0o700)).unwrap();
    }
    // A new root under a shared parent is still fine: only the store's own tree must be
    // private.
    let shared = dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    FileStore::open(shared.join("store")).await.unwrap();
    FileStore::open(&root).await.unwrap();
}

/// A root pre-created by another user (here uid 65534, so this needs root to `chown`) is
/// refused even when its mode is private.
#[tokio::test]
async fn a_root_owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
    let me = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    if me.trim() != "0" {
        eprintln!(
            "not root: cannot chown a directory to another user; covered when run as root (CI)"
        );
        return;
    }
    std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
    match FileStore::open(&root).await {
        Err(Error::Config(m)) => assert!(m.contains("owned by uid 65534"), "{m}"),
        other => panic!("opened a root owned by another user: {other:?}"),
    }
    assert!(
        fs::read_dir(&root).unwrap().next().is_none(),
        "wrote into the refused root"
    );
}
