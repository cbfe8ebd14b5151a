//! [`Listing`] for [`RedisStore`]: `SCAN` with `MATCH <prefix>{*}` and `COUNT <batch>`, then
//! one `HGETALL` per key found (sent concurrently on the multiplexed connection). In a
//! cluster the scan visits every master in turn (sorted by address, from `CLUSTER SLOTS`).
//!
//! Cursor text: the server's `SCAN` cursor; in a cluster `<master index>:<SCAN cursor>`.
//! `SCAN` never blocks the server for more than one batch. It returns every key present for
//! the whole scan, and may return a key twice if Redis resizes its keyspace meanwhile (see
//! [`Listing`]'s contract). A cluster whose masters change during a scan may have keys missed
//! or repeated; run the scan again.

use std::time::SystemTime;

use async_trait::async_trait;
use redis::Value;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use sessionkit::SessionKey;
use sessionkit::store::{Cursor, Error, Listing, Page, Result};

use super::RedisStore;
use super::connection::Conn;
use super::errors::map_error;
use super::invalidation::master_addrs;
use super::layout::live_record;

fn bad_cursor() -> Error {
    Error::Config("not a cursor of this store".into())
}

/// The `MATCH` pattern of session keys: the prefix with glob characters escaped, then `{*}`.
fn pattern(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 4);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push_str("{*}");
    out
}

impl RedisStore {
    /// The session key a Redis key names, if it is `<prefix>{<64 hex>}`.
    fn session_key_of(&self, name: &[u8]) -> Option<SessionKey> {
        let rest = name.strip_prefix(self.prefix.as_bytes())?;
        let hex = rest.strip_prefix(b"{")?.strip_suffix(b"}")?;
        SessionKey::from_hex(std::str::from_utf8(hex).ok()?)
    }

    /// The cluster's masters, sorted.
    async fn masters(
        &self,
        conn: &mut redis::cluster_async::ClusterConnection,
    ) -> Result<Vec<(String, u16)>> {
        let reply: Value = self
            .call("scan", redis::cmd("CLUSTER").arg("SLOTS").query_async(conn))
            .await?;
        let masters = master_addrs(&reply, "");
        if masters.is_empty() {
            return Err(Error::unavailable(
                "Redis Cluster: CLUSTER SLOTS lists no masters",
            ));
        }
        Ok(masters)
    }
}

#[async_trait]
impl Listing for RedisStore {
    async fn scan(&self, cursor: Option<&Cursor>, batch: usize) -> Result<Page> {
        let mut cmd = redis::cmd("SCAN");
        let batch = batch.max(1);
        let pattern = pattern(&self.prefix);
        let (names, next) = match self.conn.clone() {
            Conn::Standalone(mut conn) => {
                let from = match cursor {
                    Some(c) => c.as_str().parse::<u64>().map_err(|_| bad_cursor())?,
                    None => 0,
                };
                cmd.arg(from)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(batch);
                let (next, names): (u64, Vec<Vec<u8>>) =
                    self.call("scan", cmd.query_async(&mut conn)).await?;
                (names, (next != 0).then(|| Cursor::new(next.to_string())))
            }
            Conn::Cluster(mut conn) => {
                let (node, from) = match cursor {
                    Some(c) => {
                        let (i, s) = c.as_str().split_once(':').ok_or_else(bad_cursor)?;
                        let i = i.parse::<usize>().map_err(|_| bad_cursor())?;
                        (i, s.parse::<u64>().map_err(|_| bad_cursor())?)
                    }
                    None => (0, 0),
                };
                let masters = self.masters(&mut conn).await?;
                let Some((host, port)) = masters.get(node).cloned() else {
                    // The cluster has fewer masters than when the scan began: it is over.
                    return Ok(Page::new(Vec::new(), None));
                };
                cmd.arg(from)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(batch);
                let routing =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                let reply = self.call("scan", conn.route_command(cmd, routing)).await?;
                let (next, names): (u64, Vec<Vec<u8>>) =
                    redis::from_redis_value(reply).map_err(|e| map_error("scan", e.into()))?;
                let next = if next != 0 {
                    Some(Cursor::new(format!("{node}:{next}")))
                } else if node + 1 < masters.len() {
                    Some(Cursor::new(format!("{}:0", node + 1)))
                } else {
                    None
                };
                (names, next)
            }
        };
        let keys: Vec<SessionKey> = names
            .iter()
            .filter_map(|n| self.session_key_of(n))
            .collect();
        let stored = futures::future::try_join_all(keys.iter().map(|k| self.stored(k))).await?;
        let now = SystemTime::now();
        let sessions = keys
            .into_iter()
            .zip(stored)
            .filter_map(|(key, s)| Some((key, live_record(s, now)?.0)))
            .collect();
        Ok(Page::new(sessions, next))
    }
}
