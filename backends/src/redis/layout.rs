//! The wire format of the data layout described in the [module docs](super#data-layout): the
//! names of the keys, the fields of a session hash and how its `HGETALL` reads back, and the
//! arguments and replies of the scripts.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;
use redis::{ScriptInvocation, Value};
use sessionkit::store::{Entry, Error, Op, Record, Result};
use sessionkit::{SessionKey, store::from_millis};
use sha2::{Digest as _, Sha256};

use super::RedisStore;

impl RedisStore {
    /// The Redis key of a session: `<prefix>{<key hex>}`.
    // The integration tests reach it through `redis::test_support`.
    pub(crate) fn redis_key(&self, key: &SessionKey) -> String {
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
    // The integration tests reach it through `redis::test_support`.
    pub(crate) fn owner_key(&self, owner: &str) -> String {
        self.owner_set(&owner_hash(owner))
    }

    /// The Redis key of the owner set of the owner whose [`owner_hash`] is `owner_hash`.
    pub(super) fn owner_set(&self, owner_hash: &str) -> String {
        format!("{}owner:{{{}}}", self.prefix, owner_hash)
    }
}

/// The SHA-256 hex of an owner: names its set (the owner itself never appears in a key).
pub(super) fn owner_hash(owner: &str) -> String {
    hex::encode(Sha256::digest(owner.as_bytes()))
}

/// A boolean script argument.
pub(super) fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

/// How long the old key of a move without grace keeps its tombstone, in milliseconds.
pub(super) fn tombstone_ms() -> u64 {
    u64::try_from(sessionkit::store::MOVE_TOMBSTONE.as_millis()).unwrap_or(u64::MAX)
}

/// `m:own`, `m:exp` and `m:to` of one session hash.
pub(super) type OwnerMeta = (Option<String>, Option<String>, Option<Vec<u8>>);

/// What one session hash holds: a record or an alias (never a tombstone, which reads as
/// absent), and the record's `m:rev` save counter (empty for an alias).
pub(super) struct Stored {
    pub(super) entry: Entry,
    pub(super) rev: Vec<u8>,
}

fn parse_ms(value: &[u8]) -> Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::corrupt_message("session hash has a malformed expiry"))
}

/// Reads a session hash (`HGETALL` order: name, value, name, value, …). A tombstone (the old
/// key of a move without grace) reads as absent.
pub(super) fn parse(flat: Vec<Vec<u8>>) -> Result<Option<Stored>> {
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
            .ok_or_else(|| Error::corrupt_message("session hash reply has an odd length"))?;
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
                to =
                    Some(hex.ok_or_else(|| {
                        Error::corrupt_message("alias target is not a session key")
                    })?);
            }
            b"m:tok" => token = Some(value),
            b"m:rev" => rev = value,
            b"m:dead" => tombstone = true,
            // `m:oh` and meta fields of later layouts.
            _ => {}
        }
    }
    if version.as_deref() != Some(b"1") {
        return Err(Error::corrupt_message(
            "session hash has no known layout version",
        ));
    }
    let expires_at =
        from_millis(expires.ok_or_else(|| Error::corrupt_message("session hash has no expiry"))?);
    if tombstone {
        // The old key of a move without grace: it resolves to nothing.
        return Ok(None);
    }
    let entry = match to {
        Some(to) => Entry::Alias {
            to,
            until: expires_at,
            token: token.unwrap_or_default(),
        },
        None => Entry::Record(Record::from_parts(fields, expires_at, owner)),
    };
    Ok(Some(Stored { entry, rev }))
}

/// The record a parsed hash holds, with its `m:rev`, if it is a record live at `now`.
pub(super) fn live_record(stored: Option<Stored>, now: SystemTime) -> Option<(Record, Vec<u8>)> {
    match stored {
        Some(Stored {
            entry: Entry::Record(record),
            rev,
        }) if record.is_live_at(now) => Some((record, rev)),
        _ => None,
    }
}

/// Adds one operation's four arguments to an `apply` call (see `lua/ops.lua`, `run_op`).
pub(super) fn op_args(apply: &mut ScriptInvocation<'_>, name: &str, op: &Op) -> Result<()> {
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
pub(super) fn op_failure(items: Vec<Value>) -> Error {
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

/// A script's integer status, or an error saying what came back instead.
pub(super) fn status(op: &'static str, value: &Value) -> Result<i64> {
    match value {
        Value::Int(n) => Ok(*n),
        other => Err(Error::Storage {
            message: format!("redis {op}: unexpected script reply {other:?}"),
            source: None,
        }),
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
        let Some(Stored {
            entry: Entry::Record(record),
            rev,
        }) = parse(flat(&[
            ("m:v", b"1"),
            ("m:exp", b"1900000000000"),
            ("m:rev", b"4"),
            ("m:own", b"alice"),
            ("m:oh", b"ignored"),
            ("f:cart", b"\x93\x01\x02\x03"),
            ("f:", b""),
        ]))
        .unwrap()
        else {
            panic!("not a record")
        };
        assert_eq!(record.expires_at, from_millis(1_900_000_000_000));
        assert_eq!(record.owner.as_deref(), Some("alice"));
        assert_eq!(record.fields.len(), 2);
        assert_eq!(record.fields["cart"].as_ref(), b"\x93\x01\x02\x03");
        assert_eq!(rev, b"4");

        let target = "ab".repeat(32);
        let Some(Stored {
            entry: Entry::Alias { to, until, token },
            ..
        }) = parse(flat(&[
            ("m:v", b"1"),
            ("m:exp", b"5"),
            ("m:to", target.as_bytes()),
            ("m:tok", b"tok"),
        ]))
        .unwrap()
        else {
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
}
