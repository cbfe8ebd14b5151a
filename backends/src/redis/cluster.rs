//! What Redis Cluster changes (see the [module docs](super#redis-cluster)): a script touches
//! one slot, so the owner index is written in its own trips, a move copies and then swaps,
//! and an owner listing checks each member with its own request.

use std::time::SystemTime;

use sessionkit::store::{Error, Grace, MAX_ALIAS_HOPS, Result};
use sessionkit::{SessionKey, store::to_millis};

use super::errors::{answered, map_error};
use super::layout::{OwnerMeta, flag, live_record, parse, status, tombstone_ms};
use super::{OWNER_SCAN_BATCH, RedisStore, scripts};

/// How many owner-set members a cluster `owned_by` checks at once.
const OWNER_CHECK_BATCH: usize = 64;

/// How many times a cluster move re-copies a session that keeps being saved meanwhile.
const MAX_MOVE_ATTEMPTS: usize = 32;

impl RedisStore {
    /// Adds a session to an owner set in its own trip (cluster only: the set is in another
    /// slot), keeping the set alive at least until `expires_at` (the session's expiry, Unix
    /// ms), so no owner set is ever without a TTL.
    pub(super) async fn index(&self, set: &str, key: &SessionKey, expires_at: &str) -> Result<()> {
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
    pub(super) async fn index_before_tagging(
        &self,
        set: &str,
        key: &SessionKey,
        exp: &str,
    ) -> Result<()> {
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

    /// Cluster move: copy, then swap the old key for its alias if it did not change meanwhile.
    pub(super) async fn rename_across_slots(
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
            // The raw reply is copied to the new key as it is.
            let flat = self.hgetall(from).await?;
            let Some((record, rev)) = live_record(parse(flat.clone())?, now) else {
                if !first {
                    self.del(&to_key).await?;
                }
                return Err(Error::Gone);
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

    /// Cluster owner listing: the set in `SSCAN` batches; each batch's members' meta fields
    /// (concurrently, a bounded number at a time), then one `SREM` for its stale members.
    pub(super) async fn owned_across_slots(&self, owner: &str) -> Result<Vec<SessionKey>> {
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
            let mut hmget = redis::cmd("HMGET");
            hmget
                .arg(self.redis_key(&key))
                .arg("m:own")
                .arg("m:exp")
                .arg("m:to");
            let meta = hmget.query_async::<OwnerMeta>(&mut conn);
            let (own, exp, to) = match answered("owned_by", self.op_timeout, meta).await? {
                Ok(meta) => meta,
                // A member whose key now holds something else is stale too.
                Err(err) if err.code() == Some("WRONGTYPE") => return Ok(None),
                Err(err) => return Err(map_error("owned_by", err)),
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
}
