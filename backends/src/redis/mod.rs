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

mod cluster;
mod config;
mod connection;
mod errors;
mod invalidation;
mod layout;
mod scan;
mod scripts;

/// Key names for the integration tests, which check what Redis holds. Not part of the API:
/// it may change in any release.
#[doc(hidden)]
pub mod test_support {
    use sessionkit::SessionKey;

    use super::RedisStore;

    /// The Redis key of the session `key`: `<prefix>{<key hex>}`.
    pub fn redis_key(store: &RedisStore, key: &SessionKey) -> String {
        store.redis_key(key)
    }

    /// The Redis key of `owner`'s index set: `<prefix>owner:{<sha256(owner) hex>}`.
    pub fn owner_key(store: &RedisStore, owner: &str) -> String {
        store.owner_key(owner)
    }
}

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX, DEFAULT_RESPONSE_TIMEOUT, MAX_PREFIX_LEN, RedisConfig,
};

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use redis::Value;
use sessionkit::store::{
    ChangeSet, Entry, Error, Grace, InvalidationFeed, InvalidationSource, Loaded, MAX_ALIAS_HOPS,
    Moved, Record, Removed, Result, Store,
};
use sessionkit::{SessionKey, store::to_millis};

use connection::Conn;
use errors::map_error;
use layout::{flag, live_record, op_args, op_failure, owner_hash, status, tombstone_ms};

use crate::listener::Channel;

/// The `COUNT` of each `SSCAN` step of an owner listing: one step reads (and prunes) about
/// this many members, so listing an owner with 10⁵ sessions is a few hundred short calls, never
/// one long one that holds up every other client of the server.
pub const OWNER_SCAN_BATCH: usize = 256;

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
/// let store = TieredStore::coherent(MemoryStore::bounded(10_000), redis)?;
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
    channel: Arc<Channel<invalidation::Settings>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &self.is_cluster())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
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
            let next = items.next().ok_or_else(|| {
                Error::corrupt_message("redis owned_by: the script returned no cursor")
            })?;
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
        let main = self.stored(key).await?.map(|stored| stored.entry);
        let now = SystemTime::now();
        let (to, token) = match main {
            Some(entry) if !entry.is_live_at(now) => return Ok(None),
            Some(Entry::Record(record)) => return Ok(Some(Loaded::from(record))),
            Some(Entry::Alias { to, token, .. }) => (to, token),
            // A tombstone reads as absent (see `layout::parse`).
            None | Some(Entry::Tombstone { .. }) => return Ok(None),
        };
        Ok(live_record(self.stored(&to).await?, now)
            .map(|(record, _)| Loaded::new(record, Some(Moved::new(to, token)))))
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
        // Cluster: the owner set lives in another slot, so it is written in trips of its own:
        // before the tag (a listing after the tag must find the session) and again after it,
        // from the script's reply. The second write is not redundant: a listing that ran
        // between the two saw a member not yet tagged and pruned it.
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
                .ok_or_else(|| Error::corrupt_message("an alias names no valid target")),
            other => Err(Error::Storage {
                message: format!("redis delete: unexpected script reply {other:?}"),
                source: None,
            }),
        }
    }

    async fn rename(&self, key: &SessionKey, to: &SessionKey, grace: Option<&Grace>) -> Result<()> {
        if self.is_cluster() {
            return self.rename_across_slots(key, to, grace).await;
        }
        let (until, token) = grace.map_or((String::new(), &[][..]), |g| {
            (to_millis(g.until).to_string(), g.token.as_slice())
        });
        let moved = self
            .eval(
                "move",
                scripts::RENAME
                    .key(self.redis_key(key))
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
