//! Connecting: the URL and TLS checks, the shared connection (a reconnecting multiplexed
//! connection, or a cluster connection), loading the scripts, and the timed requests every
//! operation goes through.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, Pipeline, RedisError, RedisFuture, RedisResult, ScriptInvocation, TlsCertificates, Value,
};
use sessionkit::SessionKey;
use sessionkit::store::{Error, Result};

use super::config::{Mode, redact};
use super::errors::{answered, map_error, timed};
use super::layout::{Stored, parse};
use super::{RedisConfig, RedisStore, invalidation, scripts};
use crate::listener::Channel;

/// The shared connection: a reconnecting multiplexed connection, or a cluster connection.
#[derive(Clone)]
pub(super) enum Conn {
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

fn tls_certs(config: &RedisConfig) -> Option<TlsCertificates> {
    config.root_cert.as_ref().map(|pem| TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.clone()),
    })
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
        let channel = Arc::new(Channel::new(invalidation::Settings {
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

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// One request within the operation timeout.
    pub(super) async fn call<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = RedisResult<T>>,
    ) -> Result<T> {
        timed(op, self.op_timeout, fut).await
    }

    /// One script run (`EVALSHA`, loading the script when the server lacks it).
    pub(super) async fn eval<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut conn = self.conn.clone();
        self.call(op, invocation.invoke_async(&mut conn)).await
    }

    /// Reads one session hash without following aliases: a plain `HGETALL`, one command.
    pub(super) async fn stored(&self, key: &SessionKey) -> Result<Option<Stored>> {
        parse(self.hgetall(key).await?)
    }

    /// The flat `HGETALL` reply of one session hash; a key holding something else is corrupt.
    pub(super) async fn hgetall(&self, key: &SessionKey) -> Result<Vec<Vec<u8>>> {
        let mut conn = self.conn.clone();
        let mut hgetall = redis::cmd("HGETALL");
        hgetall.arg(self.redis_key(key));
        let reply = hgetall.query_async::<Vec<Vec<u8>>>(&mut conn);
        match answered("load", self.op_timeout, reply).await? {
            Ok(flat) => Ok(flat),
            Err(err) if err.code() == Some("WRONGTYPE") => Err(Error::corrupt_message(
                "the session key does not hold a hash",
            )),
            Err(err) => Err(map_error("load", err)),
        }
    }

    /// Deletes one key.
    pub(super) async fn del(&self, redis_key: &str) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .call(
                "delete",
                redis::cmd("DEL").arg(redis_key).query_async(&mut conn),
            )
            .await?;
        Ok(())
    }
}
