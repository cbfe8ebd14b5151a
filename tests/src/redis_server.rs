//! Real `redis-server` processes owned by a test: a standalone server ([`RedisServer`]) or a
//! three-master Redis Cluster ([`RedisCluster`]).
//!
//! Each server listens on a free loopback port (never 6379), keeps its files in its own
//! temporary directory, persists nothing, and is killed and reaped when dropped. Set
//! `SESSIONKIT_REDIS_SERVER` / `SESSIONKIT_REDIS_CLI` to use other binaries; where they are
//! missing, `scripts/ensure-redis.sh` installs them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to answer `PING` after it was spawned.
const READY_LIMIT: Duration = Duration::from_secs(30);
/// How long a new cluster may take to reach `cluster_state:ok`.
const CLUSTER_LIMIT: Duration = Duration::from_secs(60);
/// The port of the machine's shared Redis, which tests never use.
const SHARED_PORT: u16 = 6379;

fn server_binary() -> String {
    std::env::var("SESSIONKIT_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

fn cli_binary() -> String {
    std::env::var("SESSIONKIT_REDIS_CLI").unwrap_or_else(|_| "redis-cli".into())
}

/// A loopback port nobody listens on right now (and, for cluster nodes, whose bus port,
/// `port + 10000`, is free too).
fn free_port(with_bus: bool) -> u16 {
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if port == SHARED_PORT || (with_bus && port > u16::MAX - 10_000) {
            continue;
        }
        if with_bus && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_err() {
            continue;
        }
        return port;
    }
}

/// Sends one command over a fresh connection and returns the reply's text (`+OK`, `-ERR …`,
/// `:1` or a bulk string's contents). Enough for readiness checks without a client library.
fn raw_command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_secs(2),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end().to_owned();
    if let Some(len) = line.strip_prefix('$') {
        let len: i64 = len.parse().unwrap_or(-1);
        if len < 0 {
            return Ok(String::new());
        }
        let mut body = vec![0; len as usize + 2];
        reader.read_exact(&mut body)?;
        body.truncate(len as usize);
        return Ok(String::from_utf8_lossy(&body).into_owned());
    }
    Ok(line)
}

/// Makes a throwaway CA and a server certificate for 127.0.0.1 / localhost in `dir`.
fn make_certificates(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write server.ext");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=sessionkit test CA",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run openssl ({e}): TLS tests need it"));
        assert!(
            output.status.success(),
            "openssl {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A `redis-server` child process on a free loopback port, killed when dropped.
///
/// ```no_run
/// use sessionkit_tests::redis_server::RedisServer;
/// let server = RedisServer::start();
/// let url = server.url(); // redis://127.0.0.1:<port>/
/// # drop(url);
/// ```
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    extra: Vec<String>,
    tls: bool,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a standalone server and waits until it answers `PING`.
    ///
    /// # Panics
    /// When the binary is missing or the server does not come up in time (with its log).
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts a server with extra command-line arguments (for example
    /// `["--cluster-enabled", "yes"]`).
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    pub fn start_with_args(extra: &[&str]) -> Self {
        Self::start_inner(extra, false)
    }

    /// Starts a server that speaks only TLS, with a certificate for `127.0.0.1` and
    /// `localhost` signed by a throwaway CA ([`ca_cert_pem`](Self::ca_cert_pem)); clients are
    /// not asked for certificates. Needs the `openssl` command.
    ///
    /// # Panics
    /// As [`RedisServer::start`], or when the certificates cannot be made.
    pub fn start_tls() -> Self {
        Self::start_inner(&[], true)
    }

    fn start_inner(extra: &[&str], tls: bool) -> Self {
        let cluster = extra.contains(&"--cluster-enabled");
        let dir = tempfile::Builder::new()
            .prefix("sessionkit-redis-")
            .tempdir()
            .expect("temp dir for redis-server");
        let mut server = RedisServer {
            child: None,
            port: 0,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            tls,
            dir,
        };
        if tls {
            make_certificates(server.dir.path());
        }
        // Another process may take the port between our probe and the server's bind: try a
        // few ports before giving up.
        for attempt in 1..=5 {
            server.port = free_port(cluster);
            match server.spawn() {
                Ok(()) => return server,
                Err(log) if attempt < 5 && log.contains("Address already in use") => {
                    server.kill();
                }
                Err(log) => panic!(
                    "redis-server on port {} did not become ready:\n{log}",
                    server.port
                ),
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let log = dir.join("redis.log");
        // Readiness and failures are read from the log: keep an earlier run's lines apart.
        let _ = std::fs::rename(&log, dir.join("redis.log.prev"));
        let child = Command::new(server_binary())
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .args(self.tls_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}); install Redis with scripts/ensure-redis.sh \
                     or set SESSIONKIT_REDIS_SERVER",
                    server_binary()
                )
            });
        self.child = Some(child);
        self.wait_ready()
    }

    fn tls_args(&self) -> Vec<String> {
        if !self.tls {
            return Vec::new();
        }
        let file = |name: &str| self.dir.path().join(name).display().to_string();
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            self.port.to_string(),
            "--tls-cert-file".into(),
            file("server.crt"),
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("ca.crt"),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    }

    fn ready(&self) -> bool {
        if self.tls {
            // No TLS client here: trust the log once the port accepts connections.
            self.log().contains("Ready to accept connections")
                && TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok()
        } else {
            // A server with `--requirepass` answers NOAUTH: it is up all the same.
            raw_command(self.port, &["PING"])
                .is_ok_and(|reply| reply == "+PONG" || reply.starts_with("-NOAUTH"))
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if self.ready() {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .is_some();
            if exited || started.elapsed() > READY_LIMIT {
                let mut stderr = String::new();
                if let Some(err) = self.child.as_mut().and_then(|c| c.stderr.as_mut())
                    && exited
                {
                    let _ = err.read_to_string(&mut stderr);
                }
                return Err(format!("{}{stderr}", self.log()));
            }
            sleep(Duration::from_millis(25));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`, or `rediss://…` for a [TLS](Self::start_tls) server.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The PEM certificate of the CA that signed a [TLS](Self::start_tls) server's certificate.
    ///
    /// # Panics
    /// For a server started without TLS.
    pub fn ca_cert_pem(&self) -> Vec<u8> {
        assert!(self.tls, "not a TLS server");
        std::fs::read(self.dir.path().join("ca.crt")).expect("read ca.crt")
    }

    /// The server's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (data is lost: nothing is persisted) and waits for it to exit. The
    /// port and directory are kept for [`restart`](Self::restart).
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Freezes the server (`SIGSTOP`): it keeps its connections but answers nothing, like a
    /// server stuck in a long command or behind a dead network path.
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [`pause`](Self::pause)d server run again (`SIGCONT`).
    ///
    /// # Panics
    /// As [`RedisServer::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server is running").id();
        // The shell's builtin `kill`: minimal images may lack a `kill` binary.
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill {signal} {pid}"))
            .status()
            .expect("run sh -c kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Starts the server again on the same port (stopping it first if it runs).
    ///
    /// # Panics
    /// When it does not come back (with its log).
    pub fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The old socket may linger for a moment after the kill.
                Err(log)
                    if log.contains("Address already in use")
                        && started.elapsed() < READY_LIMIT =>
                {
                    self.kill();
                    sleep(Duration::from_millis(100));
                }
                Err(log) => panic!("redis-server did not restart on port {}:\n{log}", self.port),
            }
        }
    }

    /// Sends one command to the server over a fresh connection and returns the reply as text
    /// (status, error, integer or bulk string). For checks that need no client library.
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub fn command(&self, args: &[&str]) -> String {
        raw_command(self.port, args).unwrap_or_else(|e| panic!("redis command {args:?}: {e}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of three or more masters (no replicas), each a [`RedisServer`] on its own
/// loopback port with its own directory and `nodes.conf`.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three masters, creates the cluster with `redis-cli --cluster create` and waits
    /// until every node reports `cluster_state:ok`.
    ///
    /// # Panics
    /// When a node does not start or the cluster does not form in time.
    pub fn start() -> Self {
        Self::start_masters(3)
    }

    /// Like [`RedisCluster::start`] with `masters` nodes (at least 3).
    ///
    /// # Panics
    /// As [`RedisCluster::start`], and for fewer than 3 masters.
    pub fn start_masters(masters: usize) -> Self {
        assert!(masters >= 3, "Redis Cluster needs at least three masters");
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| {
                RedisServer::start_with_args(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let output = Command::new(cli_binary())
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}); install Redis with scripts/ensure-redis.sh \
                     or set SESSIONKIT_REDIS_CLI",
                    cli_binary()
                )
            });
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        cluster
    }

    /// Waits until every node reports `cluster_state:ok` with all slots served (after a node
    /// was restarted, say).
    ///
    /// # Panics
    /// When that does not happen in time (with the nodes' logs).
    pub fn wait_ok(&self) {
        let started = Instant::now();
        let want_nodes = format!("cluster_known_nodes:{}", self.nodes.len());
        loop {
            let ready = self.nodes.iter().all(|n| {
                raw_command(n.port(), &["CLUSTER", "INFO"]).is_ok_and(|info| {
                    info.contains("cluster_state:ok")
                        && info.contains("cluster_slots_ok:16384")
                        && info.contains(&want_nodes)
                })
            });
            if ready {
                return;
            }
            if started.elapsed() > CLUSTER_LIMIT {
                let logs: Vec<String> = self.nodes.iter().map(RedisServer::log).collect();
                panic!(
                    "the cluster did not reach cluster_state:ok:\n{}",
                    logs.join("\n---\n")
                );
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// The nodes' URLs, to hand to a cluster client.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// One node, to stop, pause or restart it (it keeps its port and `nodes.conf`, so a
    /// restarted node rejoins the cluster).
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }
}

/// A connection to `server` for a test's own inspection, named `admin` in `CLIENT LIST` (so
/// tests that count the store's clients can leave it out).
pub async fn admin(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("admin")
        .query_async(&mut conn)
        .await
        .unwrap();
    conn
}

/// How many times the server has run `command` (lower case), from `INFO commandstats`
/// (0 when it never ran). Commands run inside scripts count.
pub async fn command_calls(conn: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}
