//! The manager's bookkeeping, kept in reserved field-map keys of each session, and the grace
//! token it hands the store when it rotates an id.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};

use super::config::IpBinding;
use crate::codec::decode_value;
use crate::error::Result;
use crate::id::{ID_BYTES, SessionId, open_forward, seal_forward};
use crate::record::{Moved, from_millis, to_millis};

pub(crate) use crate::codec::encode_value as encode;
pub(crate) use crate::reserved::{CREATED, IP, LOGIN, ROTATED, SEEN, UA};

/// The bookkeeping of a stored session.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) created: SystemTime,
    pub(crate) seen: SystemTime,
    pub(crate) rotated: SystemTime,
    pub(crate) ip: Option<String>,
    pub(crate) ua: Option<String>,
}

impl Meta {
    /// Reads the bookkeeping; `None` when a timestamp is missing or undecodable, which the
    /// manager treats as a corrupt record.
    pub(crate) fn read(fields: &BTreeMap<String, Bytes>) -> Option<Meta> {
        let created = from_millis(get::<u64>(fields, CREATED)?);
        let seen = from_millis(get::<u64>(fields, SEEN)?);
        let rotated = get::<u64>(fields, ROTATED).map_or(created, from_millis);
        Some(Meta {
            created,
            seen,
            rotated,
            ip: get(fields, IP),
            ua: get(fields, UA),
        })
    }
}

/// When the session logged in as its owner, for the per-owner cap: the [`LOGIN`] stamp, or
/// its creation for a session saved before the stamp existed (the epoch if neither reads).
pub(crate) fn login_time(fields: &BTreeMap<String, Bytes>) -> SystemTime {
    get::<u64>(fields, LOGIN)
        .or_else(|| get::<u64>(fields, CREATED))
        .map_or(SystemTime::UNIX_EPOCH, from_millis)
}

/// A bookkeeping value; `None` when absent or undecodable.
fn get<T: DeserializeOwned>(fields: &BTreeMap<String, Bytes>, key: &str) -> Option<T> {
    fields.get(key).and_then(|b| decode_value(key, b).ok())
}

/// Encodes a timestamp.
pub(crate) fn time(key: &str, t: SystemTime) -> Result<Bytes> {
    encode(key, &to_millis(t))
}

/// The binding tag of a client IP: a hash of the address, or of its /24 (IPv4) or /64
/// (IPv6) network under [`IpBinding::Subnet`]. There is no tag for "no address": the manager
/// refuses to load a session with binding on and no address
/// ([`Error::NoClientIp`](crate::Error::NoClientIp)). An IPv4 address reached over IPv6
/// (`::ffff:a.b.c.d`) is the same client as `a.b.c.d`.
pub(crate) fn ip_tag(ip: IpAddr, binding: IpBinding) -> String {
    let mut h = Sha256::new();
    h.update(b"sessionkit/ip/v1\0");
    match (ip.to_canonical(), binding) {
        (IpAddr::V4(v4), IpBinding::Subnet) => {
            let [a, b, c, _] = v4.octets();
            h.update([4, a, b, c]);
        }
        (IpAddr::V6(v6), IpBinding::Subnet) => {
            h.update([6]);
            h.update(&v6.octets()[..8]);
        }
        (IpAddr::V4(v4), _) => {
            h.update([4]);
            h.update(v4.octets());
        }
        (IpAddr::V6(v6), _) => {
            h.update([6]);
            h.update(v6.octets());
        }
    }
    short_hex(h)
}

/// The binding tag of a User-Agent: a hash, so the header itself is never stored.
pub(crate) fn ua_tag(ua: Option<&[u8]>) -> String {
    let mut h = Sha256::new();
    h.update(b"sessionkit/ua/v1\0");
    match ua {
        None => h.update(b"none"),
        Some(ua) => {
            h.update(b"some:");
            h.update(ua);
        }
    }
    short_hex(h)
}

fn short_hex(h: Sha256) -> String {
    hex::encode(&h.finalize()[..16])
}

/// The grace token of a rotation: the new id sealed under the old one, then the end of the
/// grace window by the manager's clock (stores enforce the window by the system clock; the
/// manager checks it again by its own).
pub(crate) fn grace_token(old: &SessionId, new: &SessionId, until: SystemTime) -> Vec<u8> {
    let mut token = seal_forward(old, new);
    token.extend_from_slice(&to_millis(until).to_be_bytes());
    token
}

/// Opens a [`grace_token`] with the old id: the new id and the end of the window.
fn open_grace(old: &SessionId, token: &[u8]) -> Option<(SessionId, SystemTime)> {
    if token.len() != ID_BYTES + 8 {
        return None;
    }
    let (sealed, until) = token.split_at(ID_BYTES);
    let new = open_forward(old, sealed)?;
    let until = u64::from_be_bytes(until.try_into().ok()?);
    Some((new, from_millis(until)))
}

/// Opens the grace token of a load through the old id `old` that reports `moved`: the new id
/// and the end of the window, only if the token opens with `old` and names the key the
/// session moved to (anything else is a corrupt or forged alias).
pub(crate) fn open_move(old: &SessionId, moved: &Moved) -> Option<(SessionId, SystemTime)> {
    open_grace(old, &moved.token).filter(|(new_id, _)| new_id.key() == moved.to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn grace_token_round_trips() {
        let old = SessionId::generate().unwrap();
        let new = SessionId::generate().unwrap();
        let until = from_millis(to_millis(SystemTime::now() + Duration::from_secs(10)));
        let token = grace_token(&old, &new, until);
        assert_eq!(open_grace(&old, &token), Some((new.clone(), until)));
        let other = SessionId::generate().unwrap();
        assert_ne!(open_grace(&other, &token).map(|t| t.0), Some(new));
        assert!(open_grace(&old, &token[..39]).is_none());
    }

    #[test]
    fn ip_tags() {
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        let b: IpAddr = "10.1.2.200".parse().unwrap();
        let c: IpAddr = "10.1.3.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let exact = IpBinding::Exact;
        let subnet = IpBinding::Subnet;
        assert_eq!(ip_tag(a, exact), ip_tag(mapped, exact));
        assert_ne!(ip_tag(a, exact), ip_tag(b, exact));
        assert_eq!(ip_tag(a, subnet), ip_tag(b, subnet));
        assert_ne!(ip_tag(a, subnet), ip_tag(c, subnet));
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let v6c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_tag(v6a, subnet), ip_tag(v6b, subnet));
        assert_ne!(ip_tag(v6a, subnet), ip_tag(v6c, subnet));
        assert_ne!(ip_tag(v6a, exact), ip_tag(v6b, exact));
    }

    #[test]
    fn ua_tag_hides_the_header() {
        let tag = ua_tag(Some(b"Mozilla/5.0"));
        assert_eq!(tag.len(), 32);
        assert!(!tag.contains("Mozilla"));
        assert_ne!(tag, ua_tag(None));
        assert_ne!(tag, ua_tag(Some(b"")));
    }
}
