//! [`RedisStore`]: sessions in Redis or Redis Cluster, one round trip per operation.
//!
//! # Data layout
//!
//! Every key starts with the configured prefix (default `sessionkit:`) and is built only from
//! hashes, never from anything a client sent:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `<prefix>{<session key hex>}` | hash | one session, or an old key's alias |
//! | `<prefix>owner:{<sha256(owner) hex>}` | set | session key hexes tagged with that owner |
//!
//! A session hash has one field per field map entry, `f:<name>` → the entry's encoded value,
//! plus meta fields: `m:v` (layout version, `1`), `m:exp` (expiry, Unix ms), `m:rev` (a
//! counter bumped by every save), and, when tagged, `m:own` (the owner) and `m:oh` (its
//! SHA-256 hex). An alias left by a move in its grace window holds `m:v`, `m:exp` (the end of
//! the window), `m:to` (the new key's hex) and `m:tok` (the move's token). Every hash carries
//! `PEXPIREAT` at its own `m:exp`, so Redis forgets it exactly when it expires and never
//! later; readers also compare `m:exp` with the application's clock. An owner set expires
//! with the longest-lived session it indexes: a member is only ever added together with an
//! expiry, on a single server and in a cluster.
//!
//! The `{…}` around the key hex is a cluster hash tag: a session's key is in one slot. On a
//! single server the scripts also reach keys named inside the data (the new key of a move, an
//! owner set), which Redis allows outside cluster mode; in a cluster they never do.
//!
//! # Round trips
//!
//! A load is one plain `HGETALL` of the session hash (no script: Redis runs one command); only
//! a load through an alias (the old key of a move, in its grace window) takes a second trip,
//! an `HGETALL` of the session the alias names. Every other operation is one Lua script
//! (`EVALSHA`, loaded when the store connects and reloaded by itself after a server
//! restart): create-if-absent, the atomic merge of a save (one `HMGET` reads what the save
//! needs, `HDEL` removes the removed fields, one `HSET` writes the set ones with the meta
//! fields, `PEXPIREAT` runs only when the expiry moves: a save sends only what changed),
//! and move. A save or create of a session without an owner
//! runs at most four commands counting the `EVALSHA`; the owner index adds its own.
//! [`Store::cleanup`] returns 0: Redis expires keys itself.
//!
//! Listing an owner's sessions is the exception, on purpose: it walks the owner set with
//! `SSCAN`, [`OWNER_SCAN_BATCH`] members per trip, checking and pruning each batch in a
//! script that touches only that batch. Redis runs one script at a time, so a script walking
//! a set of 10⁵ members (an attacker's 10⁵ logins) would stall every other client; a batch
//! takes well under a millisecond. Members added or removed during the walk may be missed
//! or listed twice (duplicates are dropped); every member present throughout is listed,
//! which is what [`StoreExt::delete_owned_by`](sessionkit::store::StoreExt::delete_owned_by)
//! builds on.
//!
//! A save's operations (increment, push, add, remove) run inside the same script, against the
//! value Redis holds, on the MessagePack bytes themselves (`lua/ops.lua` follows
//! `sessionkit::store::Op` byte for byte; it does not use `cmsgpack`, whose numbers are doubles
//! and which re-encodes `bin` as `str`). They are all worked out before the script writes
//! anything, so a failing one leaves the session as it was.
//!
//! # Redis Cluster
//!
//! A script may only touch one slot there, so a few operations take more trips than on a
//! single server:
//!
//! - **The owner index** lives in the owner's slot. It is written *before* the session (one
//!   extra trip for a create with an owner or a save that sets the owner; a save that sets
//!   the owner without a new expiry first reads the session's expiry, one more), so it always
//!   lists at least every session of the owner, and never without an expiry for the set.
//!   [`owned_by`](Store::owned_by) walks the set with `SSCAN` in batches, checks each member
//!   (one request per member, a bounded number at a time) and prunes the stale ones. A save
//!   that moves the expiry of a session with an owner, or sets its owner, then extends the
//!   set's expiry in one more trip.
//! - **A move** copies the session to the new key (only if that key is free), then swaps the
//!   old key for its alias only if no save landed in between (the `m:rev` counter), copying
//!   again when one did. So no save is lost and every load sees a whole session. It is not
//!   one atomic step: if the process dies between the copy and the swap, both keys hold the
//!   session until it expires, and the caller, who got no answer, never hands out the new id.
//!
//! # Faults
//!
//! One multiplexed connection (or, for a cluster, one connection per node) is shared by every
//! clone of the store and every task. When Redis goes away, operations fail within the
//! configured timeouts with [`Error::Unavailable`]; each failure lets the connection try to
//! reconnect, so the store recovers by itself when Redis is back.
//!
//! # Invalidations
//!
//! `RedisStore` is an [`InvalidationSource`]: a memory tier in each app server built with
//! [`TieredStore::coherent`](sessionkit::store::TieredStore::coherent) drops a cached session
//! as soon as any process writes, moves, deletes or revokes it, or Redis expires or evicts it.
//! The first subscription starts one listener task per store (shared by its clones, stopped
//! with the last one). It opens a dedicated RESP3 connection to the server, or to every
//! master of a cluster, and turns on `CLIENT TRACKING ON BCAST PREFIX <prefix>`: Redis then
//! pushes the name of every changed key under the prefix, at no extra command per write;
//! session keys among them are announced, owner sets are skipped, and a flushed database
//! empties every cache.
//!
//! Delivery is at most once, so the channel fails safe: it is reported listening only after
//! every node confirmed the tracking, and lost as soon as a connection drops, a `PING` on it
//! (every second) goes unanswered within the response timeout, or a cluster's masters change.
//! While it is lost the coherent tier flushes and bypasses its cache; the listener reconnects
//! with a backoff (50 ms doubling to 2 s), rediscovering the cluster, and the tier flushes
//! again before it trusts its cache. Without a Tokio runtime the channel never listens.

mod config;
mod invalidation;
mod scripts;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX, DEFAULT_RESPONSE_TIMEOUT, MAX_PREFIX_LEN, RedisConfig,
};

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ScriptInvocation,
    ServerErrorKind, TlsCertificates, Value,
};
use sessionkit::store::{
    ChangeSet, Error, Grace, InvalidationFeed, InvalidationSource, Loaded, MAX_ALIAS_HOPS, Moved,
    Op, Record, Removed, Result, Store,
};
use sessionkit::{SessionKey, from_millis, to_millis};
use sha2::{Digest as _, Sha256};

use config::{Mode, redact};

/// How many owner-set members a cluster `owned_by` checks at once.
const OWNER_CHECK_BATCH: usize = 64;

/// The `COUNT` of each `SSCAN` step of an owner listing: one step reads (and prunes) about
/// this many members, so listing an owner with 10⁵ sessions is a few hundred short calls, never
/// one long one that holds up every other client of the server.
pub const OWNER_SCAN_BATCH: usize = 256;

/// How many times a cluster move re-copies a session that keeps being saved meanwhile.
const MAX_MOVE_ATTEMPTS: usize = 32;

/// Sessions in Redis: the store every application server can share, as the durable tier
/// (with Redis persistence) or as a shared cache in front of files.
///
/// Works against one server or a Redis Cluster; see the [module docs](self) for the data
/// layout and what Redis Cluster changes. Cloning is cheap: clones share the connection.
///
/// **A memory tier per app server** goes in front with
/// [`TieredStore::coherent`](sessionkit::store::TieredStore::coherent): it follows Redis's
/// invalidations ([module docs](self#invalidations)), so no server serves a session another
/// one changed or ended, nor anything cached across an outage of the channel.
/// `TieredStore::new` over a store several processes share has bounded staleness instead
/// (up to its `max_cache_ttl`): use it for a single process, or with Redis as the shared
/// cache in front of files.
///
/// ```no_run
/// use sessionkit::store::{MemoryStore, TieredStore};
/// use sessionkit_backends::{RedisConfig, RedisStore};
/// # async fn run() -> sessionkit::Result<()> {
/// // A per-process cache in front of Redis, coherent across processes.
/// let redis = RedisStore::connect(RedisConfig::new("redis://127.0.0.1:6380/")).await?;
/// let store = TieredStore::coherent(MemoryStore::with_capacity(10_000), redis)?;
///
/// // Redis Cluster: name some of the nodes, the rest is discovered.
/// let cluster = RedisStore::connect(RedisConfig::cluster([
///     "redis://10.0.0.1:7000/",
///     "redis://10.0.0.2:7000/",
/// ]))
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: Arc<str>,
    op_timeout: Duration,
    /// The invalidation channel (see [`InvalidationSource`]); its listener stops with the
    /// last clone.
    channel: Arc<invalidation::Channel>,
}

/// The shared connection: a reconnecting multiplexed connection, or a cluster connection.
#[derive(Clone)]
enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Standalone(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &self.is_cluster())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// `m:own`, `m:exp` and `m:to` of one session hash.
type OwnerMeta = (Option<String>, Option<String>, Option<Vec<u8>>);

/// What one session hash holds.
enum Stored {
    Record {
        record: Record,
        rev: Vec<u8>,
    },
    Alias {
        to: SessionKey,
        until: SystemTime,
        token: Vec<u8>,
    },
}

impl Stored {
    fn expires_at(&self) -> SystemTime {
        match self {
            Stored::Record { record, .. } => record.expires_at,
            Stored::Alias { until, .. } => *until,
        }
    }
}

fn corrupt(message: impl Into<String>) -> Error {
    Error::Corrupt {
        message: message.into(),
        source: None,
    }
}

fn parse_ms(value: &[u8]) -> Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| corrupt("session hash has a malformed expiry"))
}

/// How long the old key of a move without grace keeps its tombstone, in milliseconds.
fn tombstone_ms() -> u64 {
    u64::try_from(sessionkit::store::MOVE_TOMBSTONE.as_millis()).unwrap_or(u64::MAX)
}

/// Reads a session hash (`HGETALL` order: name, value, name, value, …). A tombstone (the old
/// key of a move without grace) reads as absent.
fn parse(flat: Vec<Vec<u8>>) -> Result<Option<Stored>> {
    if flat.is_empty() {
        return Ok(None);
    }
    let mut fields = BTreeMap::new();
    let (mut version, mut expires, mut owner, mut to, mut token) = (None, None, None, None, None);
    let mut tombstone = false;
    let mut rev = Vec::new();
    let mut items = flat.into_iter();
    while let Some(name) = items.next() {
        let value = items
            .next()
            .ok_or_else(|| corrupt("session hash reply has an odd length"))?;
        if name.starts_with(b"f:") {
            // The reply's own buffer becomes the name: no copy.
            let mut field = name;
            field.drain(..2);
            let field = String::from_utf8(field)
                .map_err(|e| Error::corrupt("session field name is not UTF-8", e))?;
            fields.insert(field, Bytes::from(value));
            continue;
        }
        match name.as_slice() {
            b"m:v" => version = Some(value),
            b"m:exp" => expires = Some(parse_ms(&value)?),
            b"m:own" => {
                owner = Some(
                    String::from_utf8(value)
                        .map_err(|e| Error::corrupt("session owner is not UTF-8", e))?,
                );
            }
            b"m:to" => {
                let hex = std::str::from_utf8(&value)
                    .ok()
                    .and_then(SessionKey::from_hex);
                to = Some(hex.ok_or_else(|| corrupt("alias target is not a session key"))?);
            }
            b"m:tok" => token = Some(value),
            b"m:rev" => rev = value,
            b"m:dead" => tombstone = true,
            // `m:oh` and meta fields of later layouts.
            _ => {}
        }
    }
    if version.as_deref() != Some(b"1") {
        return Err(corrupt("session hash has no known layout version"));
    }
    let expires_at = from_millis(expires.ok_or_else(|| corrupt("session hash has no expiry"))?);
    if tombstone {
        // The old key of a move without grace: it resolves to nothing.
        return Ok(None);
    }
    Ok(Some(match to {
        Some(to) => Stored::Alias {
            to,
            until: expires_at,
            token: token.unwrap_or_default(),
        },
        None => Stored::Record {
            record: Record {
                fields,
                expires_at,
                owner,
            },
            rev,
        },
    }))
}

/// The kind of the I/O error inside a redis-rs error (which keeps it behind an `Arc`).
fn io_error_kind(err: &RedisError) -> Option<std::io::ErrorKind> {
    type Shared = Arc<dyn std::error::Error + Send + Sync>;
    let source = std::error::Error::source(err)?;
    let io = match source.downcast_ref::<Shared>() {
        Some(shared) => shared.downcast_ref::<std::io::Error>(),
        None => source.downcast_ref::<std::io::Error>(),
    };
    io.map(std::io::Error::kind)
}

/// Sorts a redis-rs error into the core's kinds: cannot reach or no answer → unavailable
/// (transient); everything the server answered with, and a peer we refuse to trust (a TLS
/// certificate that does not verify) → a storage failure.
fn map_error(op: &'static str, err: RedisError) -> Error {
    let io_kind = io_error_kind(&err);
    let unavailable = match err.kind() {
        ErrorKind::Io => !matches!(
            io_kind,
            Some(std::io::ErrorKind::InvalidData | std::io::ErrorKind::PermissionDenied)
        ),
        ErrorKind::ClusterConnectionNotFound => true,
        ErrorKind::Server(kind) => matches!(
            kind,
            ServerErrorKind::ClusterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::BusyLoading
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::ReadOnly
        ),
        // BUSY: a script runs past the server's time limit; it ends or gets killed.
        _ => {
            err.code() == Some("BUSY")
                || err.is_timeout()
                || err.is_connection_dropped()
                || err.is_connection_refusal()
        }
    };
    if unavailable {
        Error::unavailable_from(format!("redis {op}: cannot reach the server"), err)
    } else {
        Error::storage(format!("redis {op} failed"), err)
    }
}

async fn timed<T>(
    op: &'static str,
    limit: Duration,
    fut: impl Future<Output = RedisResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(map_error(op, err)),
        Err(elapsed) => Err(Error::unavailable_from(
            format!("redis {op}: no answer within {limit:?}"),
            elapsed,
        )),
    }
}

fn tls_certs(config: &RedisConfig) -> Option<TlsCertificates> {
    config.root_cert.as_ref().map(|pem| TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.clone()),
    })
}

fn owner_hash(owner: &str) -> String {
    hex::encode(Sha256::digest(owner.as_bytes()))
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

/// A script's integer status, or an error saying what came back instead.
/// Adds one operation's four arguments to an `apply` call (see `lua/ops.lua`, `run_op`).
fn op_args(apply: &mut ScriptInvocation<'_>, name: &str, op: &Op) -> Result<()> {
    op.check(name)?;
    apply.arg(format!("f:{name}"));
    match op {
        Op::Increment(delta) => {
            // Lua numbers are doubles: the delta travels as two exact 32-bit halves.
            let high = delta >> 32;
            let low = delta & 0xffff_ffff;
            apply.arg("i").arg(high).arg(low);
        }
        Op::Push { value, max_len } => {
            let bound = max_len.map(|m| m.to_string()).unwrap_or_default();
            apply.arg("p").arg(value.as_ref()).arg(bound);
        }
        Op::Add(value) => {
            apply.arg("a").arg(value.as_ref()).arg("");
        }
        Op::Remove(value) => {
            apply.arg("r").arg(value.as_ref()).arg("");
        }
        other => {
            return Err(Error::Storage {
                message: format!("redis save: operation {other:?} is not supported"),
                source: None,
            });
        }
    }
    Ok(())
}

/// The error of an `apply` whose operation failed: `{code, name}` from `run_op`.
fn op_failure(items: Vec<Value>) -> Error {
    let (code, key) = match items.as_slice() {
        [Value::Int(code), name] => (
            *code,
            redis::from_redis_value::<String>(name.clone()).unwrap_or_default(),
        ),
        _ => (0, String::new()),
    };
    match code {
        2 => Error::WrongType {
            key,
            expected: "an integer",
        },
        3 => Error::WrongType {
            key,
            expected: "an array",
        },
        4 => Error::Overflow { key },
        _ => Error::Storage {
            message: format!("redis save: unexpected operation failure {items:?}"),
            source: None,
        },
    }
}

fn status(op: &'static str, value: &Value) -> Result<i64> {
    match value {
        Value::Int(n) => Ok(*n),
        other => Err(Error::Storage {
            message: format!("redis {op}: unexpected script reply {other:?}"),
            source: None,
        }),
    }
}

impl RedisStore {
    /// Checks the configuration, connects to Redis (or a cluster) and loads the scripts; with
    /// [`RedisConfig::with_lazy_connect`], only checks the configuration and leaves the rest to
    /// the first operation.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad prefix, URL or timeout; [`Error::Unavailable`] when Redis
    /// cannot be reached within the timeouts; [`Error::Storage`] when it refuses us (wrong
    /// password, scripting disabled).
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        config.validate()?;
        if config.urls().iter().any(|u| u.starts_with("rediss://")) {
            // redis-rs builds its TLS config from the process-wide rustls provider; install
            // ring unless the application installed one already (then this is a no-op).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let op_timeout = config.operation_timeout();
        let bad_url = |e: RedisError| {
            let urls: Vec<String> = config.urls().into_iter().map(redact).collect();
            Error::Config(format!("invalid Redis URL in {urls:?}: {e}"))
        };
        let mut targets = Vec::new();
        let conn = match &config.mode {
            Mode::Standalone(url) => {
                let client = match tls_certs(&config) {
                    Some(certs) => redis::Client::build_with_tls(url.as_str(), certs),
                    None => redis::Client::open(url.as_str()),
                }
                .map_err(bad_url)?;
                targets.push(client.get_connection_info().clone());
                // One reconnection attempt per failed request, not a long backoff: requests
                // fail fast while Redis is down, and the next one tries again.
                let manager = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.response_timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_millis(100));
                Conn::Standalone(if config.lazy {
                    ConnectionManager::new_lazy_with_config(client, manager).map_err(bad_url)?
                } else {
                    timed(
                        "connect",
                        op_timeout,
                        ConnectionManager::new_with_config(client, manager),
                    )
                    .await?
                })
            }
            Mode::Cluster(nodes) => {
                for url in nodes {
                    let seed = match tls_certs(&config) {
                        Some(certs) => redis::Client::build_with_tls(url.as_str(), certs),
                        None => redis::Client::open(url.as_str()),
                    }
                    .map_err(bad_url)?;
                    targets.push(seed.get_connection_info().clone());
                }
                let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str));
                if let Some(certs) = tls_certs(&config) {
                    builder = builder.certs(certs);
                }
                let client = builder
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.response_timeout)
                    .retries(2)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()
                    .map_err(bad_url)?;
                Conn::Cluster(if config.lazy {
                    client.get_pending_async_connection_with_config(
                        ClusterConfig::new()
                            .set_connection_timeout(config.connect_timeout)
                            .set_response_timeout(config.response_timeout),
                    )
                } else {
                    timed("connect", op_timeout, client.get_async_connection()).await?
                })
            }
        };
        let prefix: Arc<str> = Arc::from(config.prefix.as_str());
        let target = match (&config.mode, targets.pop()) {
            (Mode::Standalone(_), Some(info)) => invalidation::Target::Standalone(Box::new(info)),
            (_, last) => invalidation::Target::Cluster(targets.into_iter().chain(last).collect()),
        };
        let channel = Arc::new(invalidation::Channel::new(invalidation::Settings {
            target,
            prefix: Arc::clone(&prefix),
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
        }));
        let store = RedisStore {
            conn,
            prefix,
            op_timeout,
            channel,
        };
        if !config.lazy {
            for script in scripts::all() {
                let mut conn = store.conn.clone();
                store
                    .call("script load", script.load_async(&mut conn))
                    .await?;
            }
        }
        Ok(store)
    }

    /// Connects to one server at `url` with the default prefix and timeouts.
    ///
    /// # Errors
    /// As [`RedisStore::connect`].
    pub async fn open(url: &str) -> Result<Self> {
        Self::connect(RedisConfig::new(url)).await
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// The Redis key of a session: `<prefix>{<key hex>}`.
    pub fn redis_key(&self, key: &SessionKey) -> String {
        let mut hex = [0u8; 64];
        let mut out = String::with_capacity(self.prefix.len() + 66);
        out.push_str(&self.prefix);
        out.push('{');
        match hex::encode_to_slice(key.as_bytes(), &mut hex) {
            Ok(()) => out.push_str(std::str::from_utf8(&hex).unwrap_or_default()),
            // Unreachable (a key is 32 bytes, 64 hex digits); the general path if it were not.
            Err(_) => out.push_str(&key.to_hex()),
        }
        out.push('}');
        out
    }

    /// The Redis key of an owner's index set: `<prefix>owner:{<sha256(owner) hex>}`.
    pub fn owner_key(&self, owner: &str) -> String {
        self.owner_set(&owner_hash(owner))
    }

    fn owner_set(&self, owner_hash: &str) -> String {
        format!("{}owner:{{{}}}", self.prefix, owner_hash)
    }

    async fn call<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = RedisResult<T>>,
    ) -> Result<T> {
        timed(op, self.op_timeout, fut).await
    }

    async fn eval<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut conn = self.conn.clone();
        self.call(op, invocation.invoke_async(&mut conn)).await
    }

    /// Adds a session to an owner set in its own trip (cluster only: the set is in another
    /// slot), keeping the set alive at least until `expires_at` (the session's expiry, Unix
    /// ms), so no owner set is ever without a TTL.
    async fn index(&self, set: &str, key: &SessionKey, expires_at: &str) -> Result<()> {
        let now = to_millis(SystemTime::now());
        let _: i64 = self
            .eval(
                "index owner",
                scripts::INDEX
                    .key(set)
                    .arg(now)
                    .arg(key.to_hex())
                    .arg(expires_at),
            )
            .await?;
        Ok(())
    }

    /// Cluster save that tags a session with an owner: indexes it first, with the expiry the
    /// save gives it (`exp`, Unix ms, or empty), else the one it has (read in one more trip).
    /// A session with no live expiry is not indexed: the save then finds it gone, or (when
    /// it was created meanwhile) indexes it after the write from the script's reply.
    async fn index_before_tagging(&self, set: &str, key: &SessionKey, exp: &str) -> Result<()> {
        if !exp.is_empty() {
            return self.index(set, key, exp).await;
        }
        let mut conn = self.conn.clone();
        let current: Option<String> = match self
            .call(
                "save",
                redis::cmd("HGET")
                    .arg(self.redis_key(key))
                    .arg("m:exp")
                    .query_async(&mut conn),
            )
            .await
        {
            Ok(current) => current,
            // Not a session hash: the save reports it.
            Err(Error::Storage { .. }) => None,
            Err(err) => return Err(err),
        };
        match current {
            Some(current) => self.index(set, key, &current).await,
            None => Ok(()),
        }
    }

    /// Reads one hash without following aliases: a plain `HGETALL`, one command.
    async fn read(&self, key: &SessionKey) -> Result<(Vec<Vec<u8>>, Option<Stored>)> {
        let flat = self.hgetall(key).await?;
        let stored = parse(flat.clone())?;
        Ok((flat, stored))
    }

    /// The flat `HGETALL` reply of one session hash; a key holding something else is corrupt.
    async fn hgetall(&self, key: &SessionKey) -> Result<Vec<Vec<u8>>> {
        let mut conn = self.conn.clone();
        let reply = tokio::time::timeout(
            self.op_timeout,
            redis::cmd("HGETALL")
                .arg(self.redis_key(key))
                .query_async::<Vec<Vec<u8>>>(&mut conn),
        )
        .await;
        match reply {
            Ok(Ok(flat)) => Ok(flat),
            Ok(Err(err)) if err.code() == Some("WRONGTYPE") => {
                Err(corrupt("the session key does not hold a hash"))
            }
            Ok(Err(err)) => Err(map_error("load", err)),
            Err(elapsed) => Err(Error::unavailable_from(
                format!("redis load: no answer within {:?}", self.op_timeout),
                elapsed,
            )),
        }
    }

    /// Cluster move: copy, then swap the old key for its alias if it did not change meanwhile.
    async fn rename_across_slots(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        let from_key = self.redis_key(from);
        let to_key = self.redis_key(to);
        let to_hex = to.to_hex();
        let (until, token) = grace.map_or((String::new(), &[][..]), |g| {
            (to_millis(g.until).to_string(), g.token.as_slice())
        });
        let mut first = true;
        for _ in 0..MAX_MOVE_ATTEMPTS {
            let now = SystemTime::now();
            let (flat, stored) = self.read(from).await?;
            let (record, rev) = match stored {
                Some(Stored::Record { record, rev }) if record.expires_at > now => (record, rev),
                _ => {
                    if !first {
                        self.del(&to_key).await?;
                    }
                    return Err(Error::Gone);
                }
            };
            let exp = to_millis(record.expires_at).to_string();
            if let Some(owner) = &record.owner {
                self.index(&self.owner_key(owner), to, &exp).await?;
            }
            let mut put = scripts::PUT.key(&to_key);
            put.arg(to_millis(now)).arg(flag(first)).arg(&exp);
            for item in &flat {
                put.arg(item.as_slice());
            }
            if status("move", &self.eval("move", &put).await?)? == 2 {
                return Err(Error::AlreadyExists);
            }
            first = false;
            let swapped = self
                .eval(
                    "move",
                    scripts::SWAP
                        .key(&from_key)
                        .arg(to_millis(SystemTime::now()))
                        .arg(rev)
                        .arg(flag(grace.is_some()))
                        .arg(&until)
                        .arg(&to_hex)
                        .arg(token)
                        .arg(tombstone_ms()),
                )
                .await?;
            match status("move", &swapped)? {
                1 => return Ok(()),
                3 => continue,
                _ => {
                    self.del(&to_key).await?;
                    return Err(Error::Gone);
                }
            }
        }
        // The copy under `to` is nobody's: the session stays whole under `from`.
        if !first {
            self.del(&to_key).await?;
        }
        Err(Error::unavailable(
            "redis move: the session kept changing while it was being moved",
        ))
    }

    async fn del(&self, redis_key: &str) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .call(
                "delete",
                redis::cmd("DEL").arg(redis_key).query_async(&mut conn),
            )
            .await?;
        Ok(())
    }

    /// Cluster owner listing: the set in `SSCAN` batches; each batch's members' meta fields
    /// (concurrently, a bounded number at a time), then one `SREM` for its stale members.
    async fn owned_across_slots(&self, owner: &str) -> Result<Vec<SessionKey>> {
        let set = self.owner_key(owner);
        let mut conn = self.conn.clone();
        let mut cursor = String::from("0");
        let mut keep = Vec::new();
        loop {
            let (next, members): (String, Vec<String>) = self
                .call(
                    "owned_by",
                    redis::cmd("SSCAN")
                        .arg(&set)
                        .arg(&cursor)
                        .arg("COUNT")
                        .arg(OWNER_SCAN_BATCH)
                        .query_async(&mut conn),
                )
                .await?;
            let stale = self.check_members(owner, members, &mut keep).await?;
            if !stale.is_empty() {
                let _: i64 = self
                    .call(
                        "owned_by",
                        redis::cmd("SREM")
                            .arg(&set)
                            .arg(&stale)
                            .query_async(&mut conn),
                    )
                    .await?;
            }
            if next == "0" {
                return Ok(keep);
            }
            cursor = next;
        }
    }

    /// Checks owner-set members that live in many slots, [`OWNER_CHECK_BATCH`] at a time:
    /// pushes the live sessions of `owner` they lead to onto `keep` (a member whose session
    /// moved since it was indexed leads to the new key) and returns the stale members.
    async fn check_members(
        &self,
        owner: &str,
        members: Vec<String>,
        keep: &mut Vec<SessionKey>,
    ) -> Result<Vec<String>> {
        let now = to_millis(SystemTime::now());
        let mut stale = Vec::new();
        let mut members = members.into_iter().peekable();
        while members.peek().is_some() {
            let mut checks = tokio::task::JoinSet::new();
            for member in members.by_ref().take(OWNER_CHECK_BATCH) {
                let Some(key) = SessionKey::from_hex(&member) else {
                    stale.push(member);
                    continue;
                };
                let (store, owner) = (self.clone(), owner.to_owned());
                checks.spawn(async move {
                    let lead = store.lead(key, &owner, now).await;
                    (member, key, lead)
                });
            }
            while let Some(joined) = checks.join_next().await {
                let (member, key, lead) =
                    joined.map_err(|e| Error::storage("redis owned_by: a check failed", e))?;
                let lead = lead?;
                if let Some(live) = lead {
                    keep.push(live);
                }
                if lead != Some(key) {
                    stale.push(member);
                }
            }
        }
        Ok(stale)
    }

    /// The live session of `owner` an owner-set member leads to (cluster): the member itself,
    /// or where it moved, following at most [`MAX_ALIAS_HOPS`] moves, one request each.
    async fn lead(&self, mut key: SessionKey, owner: &str, now: u64) -> Result<Option<SessionKey>> {
        for _ in 0..MAX_ALIAS_HOPS {
            let mut conn = self.conn.clone();
            let hmget = redis::cmd("HMGET")
                .arg(self.redis_key(&key))
                .arg("m:own")
                .arg("m:exp")
                .arg("m:to")
                .to_owned();
            let meta =
                tokio::time::timeout(self.op_timeout, hmget.query_async::<OwnerMeta>(&mut conn));
            let (own, exp, to) = match meta.await {
                Ok(Ok(meta)) => meta,
                // A member whose key now holds something else is stale too.
                Ok(Err(err)) if err.code() == Some("WRONGTYPE") => return Ok(None),
                Ok(Err(err)) => return Err(map_error("owned_by", err)),
                Err(elapsed) => {
                    return Err(Error::unavailable_from(
                        "redis owned_by: no answer in time",
                        elapsed,
                    ));
                }
            };
            let live = exp
                .and_then(|e| e.parse::<u64>().ok())
                .is_some_and(|e| e > now);
            if !live {
                return Ok(None);
            }
            match to {
                None if own.as_deref() == Some(owner) => return Ok(Some(key)),
                None => return Ok(None),
                Some(to) => match std::str::from_utf8(&to).ok().and_then(SessionKey::from_hex) {
                    Some(to) => key = to,
                    None => return Ok(None),
                },
            }
        }
        Ok(None)
    }

    /// Single-server owner listing: the `owners` script, one `SSCAN` batch per trip.
    async fn owned_here(&self, owner: &str) -> Result<Vec<SessionKey>> {
        let set = self.owner_key(owner);
        let mut cursor = String::from("0");
        let mut keys = Vec::new();
        loop {
            let reply: Vec<String> = self
                .eval(
                    "owned_by",
                    scripts::OWNERS
                        .key(&set)
                        .arg(to_millis(SystemTime::now()))
                        .arg(&*self.prefix)
                        .arg(owner)
                        .arg(&cursor)
                        .arg(OWNER_SCAN_BATCH)
                        .arg(MAX_ALIAS_HOPS),
                )
                .await?;
            let mut items = reply.into_iter();
            let next = items
                .next()
                .ok_or_else(|| corrupt("redis owned_by: the script returned no cursor"))?;
            keys.extend(items.filter_map(|h| SessionKey::from_hex(&h)));
            if next == "0" {
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

/// Redis announces every change to a session key to the processes that listen: see
/// [`TieredStore::coherent`](sessionkit::store::TieredStore::coherent) and the
/// [module docs](self#invalidations).
impl InvalidationSource for RedisStore {
    fn invalidations(&self) -> InvalidationFeed {
        self.channel.subscribe()
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn create(&self, key: &SessionKey, record: &Record) -> Result<()> {
        let exp = to_millis(record.expires_at).to_string();
        let hash = record.owner.as_deref().map(owner_hash);
        let set = hash.as_deref().map(|h| self.owner_set(h));
        if let (Some(set), true) = (&set, self.is_cluster()) {
            self.index(set, key, &exp).await?;
        }
        let mut create = scripts::CREATE.key(self.redis_key(key));
        if let (Some(set), false) = (&set, self.is_cluster()) {
            create.key(set);
        }
        create
            .arg(to_millis(SystemTime::now()))
            .arg(&exp)
            .arg(key.to_hex())
            .arg(flag(record.owner.is_some()))
            .arg(record.owner.as_deref().unwrap_or(""))
            .arg(hash.as_deref().unwrap_or(""));
        for (name, value) in &record.fields {
            create.arg(format!("f:{name}")).arg(value.as_ref());
        }
        match status("create", &self.eval("create", &create).await?)? {
            1 => Ok(()),
            _ => Err(Error::AlreadyExists),
        }
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Loaded>> {
        // One plain `HGETALL`: no script, nothing but the hash. Only an alias (the old key of
        // a move, in its grace window) takes a second trip, for the session it points to.
        let main = parse(self.hgetall(key).await?)?;
        let now = SystemTime::now();
        let (to, token) = match main {
            None => return Ok(None),
            Some(stored) if stored.expires_at() <= now => return Ok(None),
            Some(Stored::Record { record, .. }) => return Ok(Some(Loaded::from(record))),
            Some(Stored::Alias { to, token, .. }) => (to, token),
        };
        let target = self.read(&to).await?.1;
        Ok(match target {
            Some(Stored::Record { record, .. }) if record.expires_at > now => Some(Loaded {
                record,
                moved: Some(Moved { to, token }),
            }),
            _ => None,
        })
    }

    async fn apply(&self, key: &SessionKey, changes: &ChangeSet) -> Result<()> {
        let cluster = self.is_cluster();
        let (op, owner, hash) = match &changes.owner {
            None => ("", "", None),
            Some(None) => ("-", "", None),
            Some(Some(owner)) => ("=", owner.as_str(), Some(owner_hash(owner))),
        };
        let set = hash.as_deref().map(|h| self.owner_set(h));
        let exp = changes
            .expires_at
            .map(|t| to_millis(t).to_string())
            .unwrap_or_default();
        if let (Some(set), true) = (&set, cluster) {
            self.index_before_tagging(set, key, &exp).await?;
        }
        let mut apply = scripts::APPLY.key(self.redis_key(key));
        if let (Some(set), false) = (&set, cluster) {
            apply.key(set);
        }
        apply
            .arg(to_millis(SystemTime::now()))
            .arg(&*self.prefix)
            .arg(flag(!cluster))
            .arg(flag(changes.clear))
            .arg(&exp)
            .arg(op)
            .arg(owner)
            .arg(hash.as_deref().unwrap_or(""))
            .arg(key.to_hex())
            .arg(changes.remove.len())
            .arg(changes.ops.values().map(Vec::len).sum::<usize>());
        for name in &changes.remove {
            apply.arg(format!("f:{name}"));
        }
        for (name, ops) in &changes.ops {
            for op in ops {
                op_args(&mut apply, name, op)?;
            }
        }
        for (name, value) in &changes.set {
            apply.arg(format!("f:{name}")).arg(value.as_ref());
        }
        match self.eval::<Value>("save", &apply).await? {
            Value::Int(1) => Ok(()),
            Value::Int(0) => Err(Error::Gone),
            Value::Array(items) if matches!(items.first(), Some(Value::Int(_))) => {
                Err(op_failure(items))
            }
            Value::Array(items) => {
                // Cluster: the session's owner set needs to live as long as the session.
                let parts: Vec<String> = redis::from_redis_value(Value::Array(items))
                    .map_err(|e| map_error("save", e.into()))?;
                match parts.as_slice() {
                    [hash, exp] => self.index(&self.owner_set(hash), key, exp).await,
                    _ => Err(Error::Storage {
                        message: "redis save: unexpected script reply".into(),
                        source: None,
                    }),
                }
            }
            other => Err(Error::Storage {
                message: format!("redis save: unexpected script reply {other:?}"),
                source: None,
            }),
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<Removed> {
        let reply: Value = self
            .eval(
                "delete",
                scripts::DELETE
                    .key(self.redis_key(key))
                    .arg(to_millis(SystemTime::now())),
            )
            .await?;
        match reply {
            Value::Int(0) => Ok(Removed::Nothing),
            Value::Int(1) => Ok(Removed::Record),
            Value::BulkString(hex) => std::str::from_utf8(&hex)
                .ok()
                .and_then(SessionKey::from_hex)
                .map(|to| Removed::Alias { to })
                .ok_or_else(|| corrupt("an alias names no valid target")),
            other => Err(Error::Storage {
                message: format!("redis delete: unexpected script reply {other:?}"),
                source: None,
            }),
        }
    }

    async fn rename(
        &self,
        from: &SessionKey,
        to: &SessionKey,
        grace: Option<&Grace>,
    ) -> Result<()> {
        if self.is_cluster() {
            return self.rename_across_slots(from, to, grace).await;
        }
        let (until, token) = grace.map_or((String::new(), &[][..]), |g| {
            (to_millis(g.until).to_string(), g.token.as_slice())
        });
        let moved = self
            .eval(
                "move",
                scripts::RENAME
                    .key(self.redis_key(from))
                    .key(self.redis_key(to))
                    .arg(to_millis(SystemTime::now()))
                    .arg(&*self.prefix)
                    .arg(to.to_hex())
                    .arg(flag(grace.is_some()))
                    .arg(until)
                    .arg(token)
                    .arg(tombstone_ms()),
            )
            .await?;
        match status("move", &moved)? {
            1 => Ok(()),
            2 => Err(Error::AlreadyExists),
            _ => Err(Error::Gone),
        }
    }

    async fn cleanup(&self) -> Result<u64> {
        // Redis expires sessions, aliases and owner sets by itself.
        Ok(0)
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<SessionKey>> {
        let mut keys = if self.is_cluster() {
            self.owned_across_slots(owner).await?
        } else {
            self.owned_here(owner).await?
        };
        // `SSCAN` may return a member twice.
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(pairs: &[(&str, &[u8])]) -> Vec<Vec<u8>> {
        pairs
            .iter()
            .flat_map(|(k, v)| [k.as_bytes().to_vec(), v.to_vec()])
            .collect()
    }

    #[test]
    fn parses_records_and_aliases() {
        let Some(Stored::Record { record, rev }) = parse(flat(&[
            ("m:v", b"1"),
            ("m:exp", b"1900000000000"),
            ("m:rev", b"4"),
            ("m:own", b"alice"),
            ("m:oh", b"ignored"),
            ("f:cart", b"\x93\x01\x02\x03"),
            ("f:", b""),
        ]))
        .unwrap() else {
            panic!("not a record")
        };
        assert_eq!(record.expires_at, from_millis(1_900_000_000_000));
        assert_eq!(record.owner.as_deref(), Some("alice"));
        assert_eq!(record.fields.len(), 2);
        assert_eq!(record.fields["cart"].as_ref(), b"\x93\x01\x02\x03");
        assert_eq!(rev, b"4");

        let target = "ab".repeat(32);
        let Some(Stored::Alias { to, until, token }) = parse(flat(&[
            ("m:v", b"1"),
            ("m:exp", b"5"),
            ("m:to", target.as_bytes()),
            ("m:tok", b"tok"),
        ]))
        .unwrap() else {
            panic!("not an alias")
        };
        assert_eq!(to.to_hex(), target);
        assert_eq!(until, from_millis(5));
        assert_eq!(token, b"tok");
        assert!(parse(Vec::new()).unwrap().is_none());
    }

    #[test]
    fn malformed_hashes_are_corrupt() {
        let cases: Vec<Vec<Vec<u8>>> = vec![
            flat(&[("m:exp", b"1")]),
            flat(&[("m:v", b"2"), ("m:exp", b"1")]),
            flat(&[("m:v", b"1")]),
            flat(&[("m:v", b"1"), ("m:exp", b"soon")]),
            flat(&[("m:v", b"1"), ("m:exp", b"1"), ("m:to", b"nothex")]),
            vec![
                b"m:v".to_vec(),
                b"1".to_vec(),
                b"m:exp".to_vec(),
                b"1".to_vec(),
                b"f:\xff".to_vec(),
                Vec::new(),
            ],
            flat(&[("m:v", b"1"), ("m:exp", b"1"), ("m:own", b"\xff")]),
            vec![b"m:v".to_vec()],
        ];
        for case in cases {
            assert!(matches!(parse(case), Err(Error::Corrupt { .. })));
        }
    }

    #[test]
    fn io_errors_are_unavailable_and_server_errors_are_not() {
        let io: RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
        assert!(matches!(map_error("load", io), Error::Unavailable { .. }));
        let server: RedisError =
            (ErrorKind::Server(ServerErrorKind::ResponseError), "ERR x").into();
        assert!(matches!(map_error("load", server), Error::Storage { .. }));
        let down: RedisError = (ErrorKind::Server(ServerErrorKind::ClusterDown), "down").into();
        assert!(map_error("load", down).is_transient());
        let tls: RedisError =
            std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid peer certificate").into();
        assert!(matches!(map_error("connect", tls), Error::Storage { .. }));
    }
}
