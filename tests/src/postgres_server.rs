//! A real PostgreSQL server owned by a test: [`PostgresServer`].
//!
//! Each server runs as the `postgres` user (tests run as root, which PostgreSQL refuses) on a
//! free loopback port (never 5432), with its data directory and socket in its own temporary
//! directory, `fsync` off (a test needs no durability), and is shut down and reaped when
//! dropped.
//!
//! `initdb` takes seconds, and nextest runs every test in its own process, so the cluster is
//! made once per machine and PostgreSQL version into a template directory,
//! `$TMPDIR/sessionkit-pg-template-<version>`, under a file lock (the first process makes
//! it, the others wait for it); each server copies it (`cp -a`, a fraction of a second).
//! Set `SESSIONKIT_PG_BIN` to the directory of other binaries; where none are installed,
//! `scripts/ensure-postgres.sh` installs Debian's `postgresql` package.

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to accept connections after it was spawned.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// How long a shutdown may take before the server is killed.
const STOP_LIMIT: Duration = Duration::from_secs(20);
/// The port of the machine's shared PostgreSQL, which tests never use.
const SHARED_PORT: u16 = 5432;

/// The directory of the PostgreSQL binaries: `SESSIONKIT_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SESSIONKIT_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/ensure-postgres.sh)")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a /usr/lib/postgresql/<version>/bin/postgres")
        .1
}

/// The uid and gid of the `postgres` user.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        assert!(out.status.success(), "no postgres user");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a numeric id")
    };
    (id("-u"), id("-g"))
}

fn chown_to_postgres(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown {}", path.display());
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if port != SHARED_PORT {
            return port;
        }
    }
}

/// The template cluster for `bin`, made once per machine under a file lock.
fn template(bin: &Path) -> PathBuf {
    let version = bin
        .parent()
        .and_then(Path::file_name)
        .and_then(|v| v.to_str())
        .unwrap_or("custom")
        .to_owned();
    let base = std::env::temp_dir();
    let dir = base.join(format!("sessionkit-pg-template-{version}"));
    let ready = dir.join("SESSIONKIT_READY");
    if ready.exists() {
        return dir;
    }
    let lock = File::create(base.join(format!("sessionkit-pg-template-{version}.lock")))
        .expect("create the template lock file");
    lock.lock().expect("lock the template");
    if !ready.exists() {
        let partial = base.join(format!("sessionkit-pg-template-{version}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&partial).expect("create the template directory");
        chown_to_postgres(&partial);
        let (uid, gid) = postgres_user();
        let out = Command::new(bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg("-D")
            .arg(partial.join("data"))
            .uid(uid)
            .gid(gid)
            .current_dir(&partial)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&partial, &dir).expect("publish the template");
        File::create(&ready).expect("mark the template ready");
    }
    drop(lock);
    dir
}

/// A PostgreSQL server of the test's own; see the [module docs](self).
pub struct PostgresServer {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl PostgresServer {
    /// Copies the template cluster, starts the server and waits until it accepts
    /// connections.
    pub fn start() -> Self {
        let bin = bin_dir();
        let template = template(&bin);
        let dir = tempfile::Builder::new()
            .prefix("sessionkit-pg-")
            .tempdir()
            .expect("a temporary directory");
        let status = Command::new("cp")
            .arg("-a")
            .arg(template.join("data"))
            .arg(dir.path().join("data"))
            .status()
            .expect("run cp");
        assert!(status.success(), "copy the template cluster");
        chown_to_postgres(dir.path());
        let mut server = PostgresServer {
            bin,
            dir,
            port: free_port(),
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let (uid, gid) = postgres_user();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("open the server log");
        let child = Command::new(self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=32MB",
            ])
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn postgres");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("postgres exited ({status}): {}", self.log());
            }
            assert!(
                started.elapsed() < READY_LIMIT,
                "postgres not ready: {}",
                self.log()
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Shuts the server down (fast shutdown: open connections are closed) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "INT");
            reap(&mut child);
        }
    }

    /// Starts the stopped server again, on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status();
}

/// Waits for the server to exit, killing it past [`STOP_LIMIT`].
fn reap(child: &mut Child) {
    let started = Instant::now();
    while started.elapsed() < STOP_LIMIT {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown: the postmaster stops its backends and removes its shared
            // memory, which a SIGKILL would leave behind.
            signal(&child, "QUIT");
            reap(&mut child);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_restarts_and_stops() {
        let mut server = PostgresServer::start();
        assert_ne!(server.port(), SHARED_PORT);
        server.restart();
        server.stop();
        assert!(server.child.is_none());
    }
}
