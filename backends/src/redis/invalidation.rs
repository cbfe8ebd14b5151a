//! The invalidation channel of a [`RedisStore`](super::RedisStore): Redis client-side-caching
//! invalidations in broadcast mode, turned into [`Invalidation`] messages.
//!
//! A background task (one per store and its clones, started by the first
//! [`invalidations`](sessionkit::store::InvalidationSource::invalidations) call) opens a
//! dedicated RESP3 connection to the server — to every master of a cluster — and sends
//! `CLIENT TRACKING ON BCAST PREFIX <prefix>`. From then on Redis pushes the name of every key
//! under the prefix that any client changes, and every key that expires or is evicted; the
//! task announces the session keys among them (`<prefix>{<64 hex>}`; owner sets share the
//! prefix and are skipped). A flush of the database arrives as a null invalidation and is
//! announced as a loss followed by a recovery, so every cache starts empty.
//!
//! The task reports the channel as listening only once every node confirmed the tracking.
//! It reports it lost as soon as a connection drops, or a `PING` on one (every
//! [`CHECK_INTERVAL`]) gets no answer in time, or the cluster's masters change; then it
//! reconnects (rediscovering the cluster) with a backoff. Delivery is at most once, so the
//! cache in front of the store flushes on every loss and recovery.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    RedisResult, Value,
};
use sessionkit::SessionKey;
use sessionkit::store::InvalidationHub;
use tokio::sync::mpsc;

use crate::listener::{Backoff, Listen};

/// How often the listener checks its connections with `PING` (and, for a cluster, whether the
/// masters changed).
pub(super) const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Where the listener connects: one server, or a cluster's seed nodes.
#[derive(Clone)]
pub(super) enum Target {
    Standalone(Box<ConnectionInfo>),
    Cluster(Vec<ConnectionInfo>),
}

/// How the listener connects and what it listens for.
#[derive(Clone)]
pub(super) struct Settings {
    pub(super) target: Target,
    pub(super) prefix: Arc<str>,
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Duration,
}

impl Listen for Settings {
    const SERVER: &'static str = "Redis";

    fn listen(&self, hub: InvalidationHub) -> impl Future<Output = ()> + Send + 'static {
        listen(self.clone(), hub)
    }
}

/// Why a listening session ended.
#[derive(Debug)]
enum Ended {
    Disconnected,
    NoAnswer(String),
    Topology,
    Failed(String),
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Disconnected => f.write_str("a connection dropped"),
            Ended::NoAnswer(e) => write!(f, "health check failed: {e}"),
            Ended::Topology => f.write_str("the cluster's masters changed"),
            Ended::Failed(e) => write!(f, "cannot listen: {e}"),
        }
    }
}

/// Listens, reconnecting with a backoff, until aborted.
async fn listen(settings: Settings, hub: InvalidationHub) {
    let mut backoff = Backoff::new();
    let mut known = Vec::new();
    loop {
        let ended = session(&settings, &hub, &mut known).await;
        let was_listening = hub.listening();
        if was_listening {
            hub.lost();
        }
        if was_listening {
            tracing::warn!(target: "sessionkit", reason = %ended, "Redis invalidation channel lost; reconnecting");
            backoff.reset();
        } else {
            tracing::debug!(target: "sessionkit", reason = %ended, backoff = ?backoff.next(), "Redis invalidation channel not up yet");
        }
        backoff.wait().await;
    }
}

/// One node's tracking connection.
struct Node {
    addr: String,
    conn: MultiplexedConnection,
}

/// Connects, turns tracking on everywhere, reports the channel restored and follows it until
/// something goes wrong.
async fn session(settings: &Settings, hub: &InvalidationHub, known: &mut Vec<String>) -> Ended {
    let (tx, mut rx) = mpsc::unbounded_channel::<PushInfo>();
    let infos = match &settings.target {
        Target::Standalone(info) => vec![(**info).clone()],
        Target::Cluster(seeds) => match discover(settings, seeds, known).await {
            Ok(masters) => masters,
            Err(e) => return Ended::Failed(e),
        },
    };
    let mut nodes = Vec::with_capacity(infos.len());
    for info in infos {
        match track(settings, info, tx.clone()).await {
            Ok(node) => nodes.push(node),
            Err(e) => return Ended::Failed(e),
        }
    }
    // Only the connections hold the sender now: when they are all gone, `recv` says so.
    drop(tx);
    hub.restored();
    tracing::info!(target: "sessionkit", nodes = nodes.len(), "Redis invalidation channel listening");
    let masters: BTreeSet<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let mut check = tokio::time::interval(CHECK_INTERVAL);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    loop {
        tokio::select! {
            push = rx.recv() => {
                let Some(push) = push else { return Ended::Disconnected };
                match push.kind {
                    PushKind::Invalidate => announce(&settings.prefix, hub, &push.data),
                    PushKind::Disconnection => return Ended::Disconnected,
                    _ => {}
                }
            }
            _ = check.tick() => {
                if let Err(ended) = health(settings, &mut nodes, &masters).await {
                    return ended;
                }
            }
        }
    }
}

/// Announces the session keys of one invalidation push. A null invalidation (the database
/// was flushed: everything changed) is announced as a loss and a recovery, so every cache
/// starts empty; the tracking stays on, so the channel listens on.
fn announce(prefix: &str, hub: &InvalidationHub, data: &[Value]) {
    match data.first() {
        Some(Value::Array(keys) | Value::Set(keys)) => {
            for key in keys {
                if let Value::BulkString(name) = key
                    && let Some(key) = session_key(prefix, name)
                {
                    hub.key(key);
                }
            }
        }
        // A null invalidation; anything unexpected is treated the same way (fail safe).
        _ => {
            tracing::info!(target: "sessionkit", "Redis database flushed; session caches start empty");
            hub.lost();
            hub.restored();
        }
    }
}

/// The session key named by a Redis key `<prefix>{<64 hex>}`; `None` for an owner set or any
/// other key under the prefix.
fn session_key(prefix: &str, name: &[u8]) -> Option<SessionKey> {
    let tagged = name.strip_prefix(prefix.as_bytes())?;
    let hex = tagged.strip_prefix(b"{")?.strip_suffix(b"}")?;
    if hex.len() != 64 {
        return None;
    }
    SessionKey::from_hex(std::str::from_utf8(hex).ok()?)
}

/// PINGs every connection; for a cluster also checks that the masters are still the ones we
/// track.
async fn health(
    settings: &Settings,
    nodes: &mut [Node],
    masters: &BTreeSet<String>,
) -> Result<(), Ended> {
    for node in nodes.iter_mut() {
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<Value>(&mut node.conn);
        match tokio::time::timeout(settings.response_timeout, ping).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Ended::NoAnswer(format!("{}: {e}", node.addr))),
            Err(_) => return Err(Ended::NoAnswer(format!("{}: no answer in time", node.addr))),
        }
    }
    if matches!(settings.target, Target::Cluster(_))
        && let Some(node) = nodes.first_mut()
    {
        let cmd = redis::cmd("CLUSTER").arg("SLOTS").to_owned();
        let slots = cmd.query_async(&mut node.conn);
        let reply = match tokio::time::timeout(settings.response_timeout, slots).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(Ended::NoAnswer(format!("{}: {e}", node.addr))),
            Err(_) => return Err(Ended::NoAnswer(format!("{}: no answer in time", node.addr))),
        };
        let now: BTreeSet<String> = master_addrs(&reply, &node.addr)
            .into_iter()
            .map(|(host, port)| format!("{host}:{port}"))
            .collect();
        if &now != masters {
            return Err(Ended::Topology);
        }
    }
    Ok(())
}

fn addr_label(info: &ConnectionInfo) -> String {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => format!("{other}"),
    }
}

/// Opens a RESP3 connection whose pushes go to `tx` and turns broadcast tracking on.
async fn track(
    settings: &Settings,
    info: ConnectionInfo,
    tx: mpsc::UnboundedSender<PushInfo>,
) -> Result<Node, String> {
    let addr = addr_label(&info);
    let conn = open(settings, info, Some(tx))
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut node = Node { addr, conn };
    let cmd = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(&*settings.prefix)
        .to_owned();
    let on = cmd.query_async::<Value>(&mut node.conn);
    match tokio::time::timeout(settings.response_timeout, on).await {
        Ok(Ok(Value::Okay)) => Ok(node),
        Ok(Ok(other)) => Err(format!("{}: CLIENT TRACKING answered {other:?}", node.addr)),
        Ok(Err(e)) => Err(format!("{}: CLIENT TRACKING failed: {e}", node.addr)),
        Err(_) => Err(format!("{}: CLIENT TRACKING got no answer", node.addr)),
    }
}

/// A RESP3 connection to `info` (with `pushes` receiving its push messages).
async fn open(
    settings: &Settings,
    info: ConnectionInfo,
    pushes: Option<mpsc::UnboundedSender<PushInfo>>,
) -> RedisResult<MultiplexedConnection> {
    let redis = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(redis))?;
    let mut config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.response_timeout));
    if let Some(tx) = pushes {
        config = config.set_push_sender(tx);
    }
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// The cluster's masters, asked of the masters found last time and then of the seeds.
async fn discover(
    settings: &Settings,
    seeds: &[ConnectionInfo],
    known: &mut Vec<String>,
) -> Result<Vec<ConnectionInfo>, String> {
    let Some(template) = seeds.first() else {
        return Err("no cluster nodes configured".into());
    };
    let mut candidates: Vec<ConnectionInfo> = known
        .iter()
        .filter_map(|addr| {
            let (host, port) = addr.rsplit_once(':')?;
            Some(with_addr(template, host, port.parse().ok()?))
        })
        .collect();
    candidates.extend(seeds.iter().cloned());
    let mut last_error = String::from("no node answered");
    for candidate in candidates {
        let label = addr_label(&candidate);
        let asked = async {
            let mut conn = open(settings, candidate, None).await?;
            redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async::<Value>(&mut conn)
                .await
        };
        let limit = settings
            .connect_timeout
            .saturating_add(settings.response_timeout);
        match tokio::time::timeout(limit, asked).await {
            Ok(Ok(reply)) => {
                let masters = master_addrs(&reply, &label);
                if masters.is_empty() {
                    last_error = format!("{label}: CLUSTER SLOTS lists no masters");
                    continue;
                }
                *known = masters.iter().map(|(h, p)| format!("{h}:{p}")).collect();
                return Ok(masters
                    .iter()
                    .map(|(host, port)| with_addr(template, host, *port))
                    .collect());
            }
            Ok(Err(e)) => last_error = format!("{label}: {e}"),
            Err(_) => last_error = format!("{label}: no answer in time"),
        }
    }
    Err(last_error)
}

/// `template` (credentials, TLS settings) pointed at another node.
fn with_addr(template: &ConnectionInfo, host: &str, port: u16) -> ConnectionInfo {
    let addr = match template.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host.to_owned(), port),
    };
    template.clone().set_addr(addr)
}

/// The distinct masters in a `CLUSTER SLOTS` reply (`[[start, end, [host, port, id, …], …], …]`),
/// sorted. A master listed without a host is the node that answered (`asked`, `host:port`).
pub(super) fn master_addrs(reply: &Value, asked: &str) -> Vec<(String, u16)> {
    let mut masters = BTreeSet::new();
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    for range in ranges {
        let Value::Array(parts) = range else { continue };
        let Some(Value::Array(master)) = parts.get(2) else {
            continue;
        };
        let host = match master.first() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            Some(Value::SimpleString(h)) => h.clone(),
            _ => String::new(),
        };
        let Some(Value::Int(port)) = master.get(1) else {
            continue;
        };
        let Ok(port) = u16::try_from(*port) else {
            continue;
        };
        let host = if host.is_empty() || host == "?" {
            asked
                .rsplit_once(':')
                .map_or_else(|| asked.to_owned(), |(h, _)| h.to_owned())
        } else {
            host
        };
        masters.insert((host, port));
    }
    masters.into_iter().collect()
}

#[cfg(test)]
mod tests;
