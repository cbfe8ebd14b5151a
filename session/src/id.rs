//! Session ids (the secret in the cookie) and session keys (what stores are keyed by).
//!
//! An id is 256 bits from the operating system's CSPRNG, written as 43 characters of
//! unpadded base64url. A store never sees it: stores are keyed by the [`SessionKey`], the
//! SHA-256 of the id, so a backup, a `MONITOR` log or a directory listing holds nothing that
//! can be replayed as a cookie.

use std::fmt;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore as _;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// Length in bytes of a session id's random part.
pub const ID_BYTES: usize = 32;
/// Length in characters of an id in its cookie form.
pub const ID_LEN: usize = 43;

/// The secret a visitor's cookie carries.
///
/// Its `Debug` never prints the secret; [`SessionId::expose`] is the one way to read it, for
/// the `Set-Cookie` header.
///
/// ```
/// use sessionkit::SessionId;
/// let id = SessionId::generate()?;
/// let cookie_value = id.expose();
/// assert_eq!(cookie_value.len(), 43);
/// assert_eq!(SessionId::parse(&cookie_value), Some(id.clone()));
/// assert!(!format!("{id:?}").contains(&cookie_value));
/// # Ok::<(), sessionkit::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId([u8; ID_BYTES]);

impl SessionId {
    /// A fresh id from the OS CSPRNG.
    ///
    /// # Errors
    /// [`Error::Rng`] when the operating system cannot provide randomness. There is no
    /// fallback to a weaker generator.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; ID_BYTES];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| Error::Rng(Box::new(e)))?;
        Ok(SessionId(bytes))
    }

    /// Parses a cookie value strictly: exactly 43 characters of the base64url alphabet,
    /// canonically encoded. Anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        if value.len() != ID_LEN
            || !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        let mut bytes = [0u8; ID_BYTES];
        // The engine rejects non-canonical trailing bits, so each id has exactly one spelling.
        match URL_SAFE_NO_PAD.decode_slice(value.as_bytes(), &mut bytes) {
            Ok(ID_BYTES) => Some(SessionId(bytes)),
            _ => None,
        }
    }

    /// Builds an id from raw bytes (for stores that forward a regenerated id).
    pub fn from_bytes(bytes: [u8; ID_BYTES]) -> Self {
        SessionId(bytes)
    }

    /// The raw bytes of the id.
    pub fn as_bytes(&self) -> &[u8; ID_BYTES] {
        &self.0
    }

    /// The cookie form of the id. This is the secret: send it only in `Set-Cookie`.
    pub fn expose(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The key stores file this session under: SHA-256 of the id.
    pub fn key(&self) -> SessionKey {
        let mut h = Sha256::new();
        h.update(b"sessionkit/key/v1\0");
        h.update(self.0);
        SessionKey(h.finalize().into())
    }

    /// A short keyed hash of the id for logs: stable within a process, useless outside it.
    pub fn fingerprint(&self) -> Fingerprint {
        self.key().fingerprint()
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.fingerprint())
    }
}

/// What stores are keyed by: SHA-256 of a [`SessionId`]. Printing it shows lowercase hex,
/// which is safe in file names and Redis keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Builds a key from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SessionKey(bytes)
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 lowercase hex characters (as written by [`SessionKey::to_hex`]).
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(SessionKey(out))
    }

    /// A short keyed hash for logs (see [`Fingerprint`]).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(process_salt());
        h.update(self.0);
        let digest = h.finalize();
        let mut short = [0u8; 6];
        short.copy_from_slice(&digest[..6]);
        Fingerprint(short)
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({})", self.fingerprint())
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A 48-bit hash of a session key under a per-process random salt: enough to follow one
/// session through the logs, never enough to find or replay it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 6]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn process_salt() -> &'static [u8; 32] {
    static SALT: OnceLock<[u8; 32]> = OnceLock::new();
    SALT.get_or_init(|| {
        let mut salt = [0u8; 32];
        // Without OS randomness the salt stays zero: fingerprints are still one-way
        // (SHA-256 of a SHA-256), only linkable across processes.
        let _ = rand::rngs::OsRng.try_fill_bytes(&mut salt);
        salt
    })
}

/// Seals a regenerated id under the old one, so a store can forward the old id during a grace
/// window without ever holding a usable id: only a holder of `old` can open it.
pub(crate) fn seal_forward(old: &SessionId, new: &SessionId) -> Vec<u8> {
    let pad = forward_pad(old);
    new.0.iter().zip(pad.iter()).map(|(a, b)| a ^ b).collect()
}

/// Opens what [`seal_forward`] sealed. `None` when the token has the wrong length.
pub(crate) fn open_forward(old: &SessionId, token: &[u8]) -> Option<SessionId> {
    if token.len() != ID_BYTES {
        return None;
    }
    let pad = forward_pad(old);
    let mut out = [0u8; ID_BYTES];
    for (i, o) in out.iter_mut().enumerate() {
        *o = token[i] ^ pad[i];
    }
    Some(SessionId(out))
}

fn forward_pad(old: &SessionId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sessionkit/forward/v1\0");
    h.update(old.0);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_full_entropy() {
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let id = SessionId::generate().unwrap();
            let s = id.expose();
            assert_eq!(s.len(), ID_LEN);
            assert!(seen.insert(s));
        }
        // 43 chars of a 64-letter alphabet carry 258 bits; 256 of them are the id's bytes.
        assert!(ID_LEN as f64 * 64f64.log2() >= 256.0);
    }

    /// What SEC-01's "the whole id is random" rules out, measured over a run of ids: a bit
    /// set in far more or far fewer than half of them (a fixed, counted, time-based or derived
    /// segment pins or skews some bits), and consecutive ids sharing far more than half their
    /// bits (a counter or a clock makes neighbours nearly equal). Bounds are 8 standard
    /// deviations of a fair coin: a CSPRNG trips one with probability below 10⁻¹².
    fn randomness_violations(ids: impl Iterator<Item = [u8; ID_BYTES]>) -> Vec<String> {
        let mut n = 0u32;
        let mut ones = [0u32; ID_BYTES * 8];
        let mut shared_bits = 0u64;
        let mut previous: Option<[u8; ID_BYTES]> = None;
        for bytes in ids {
            n += 1;
            for (i, count) in ones.iter_mut().enumerate() {
                *count += u32::from((bytes[i / 8] >> (i % 8)) & 1);
            }
            if let Some(p) = previous {
                shared_bits += p
                    .iter()
                    .zip(&bytes)
                    .map(|(a, b)| u64::from((!(a ^ b)).count_ones()))
                    .sum::<u64>();
            }
            previous = Some(bytes);
        }
        let mut violations = Vec::new();
        let sigma = f64::from(n).sqrt() / 2.0;
        for (bit, &count) in ones.iter().enumerate() {
            if (f64::from(count) - f64::from(n) / 2.0).abs() >= 8.0 * sigma {
                violations.push(format!("bit {bit} is set in {count} of {n} ids"));
            }
        }
        let pairs = f64::from(n.saturating_sub(1)) * 256.0;
        if (shared_bits as f64 - pairs / 2.0).abs() >= 8.0 * pairs.sqrt() / 2.0 {
            violations.push(format!(
                "neighbouring ids share {shared_bits} of {pairs} bits"
            ));
        }
        violations
    }

    #[test]
    fn every_bit_of_an_id_is_random() {
        let ids = (0..100_000).map(|_| *SessionId::generate().unwrap().as_bytes());
        let violations = randomness_violations(ids);
        assert!(violations.is_empty(), "{violations:?}");
    }

    /// The check above can fail: generators SEC-01 forbids are caught by it.
    #[test]
    fn the_randomness_check_catches_weak_generators() {
        let random = || *SessionId::generate().unwrap().as_bytes();
        // A counter in the whole id.
        let counter = (0u64..100_000).map(|i| {
            let mut b = [0u8; ID_BYTES];
            b[..8].copy_from_slice(&i.to_le_bytes());
            b
        });
        assert!(!randomness_violations(counter).is_empty());
        // Random but for a fixed 4-byte prefix (a node or datastore tag).
        let prefixed = (0..100_000).map(|_| {
            let mut b = random();
            b[..4].copy_from_slice(b"node");
            b
        });
        assert!(!randomness_violations(prefixed).is_empty());
        // Random but for a timestamp in the first 8 bytes.
        let start = std::time::Instant::now();
        let timed = (0..100_000).map(|_| {
            let mut b = random();
            let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            b[..8].copy_from_slice(&nanos.to_be_bytes());
            b
        });
        assert!(!randomness_violations(timed).is_empty());
    }

    #[test]
    fn parse_is_strict() {
        let id = SessionId::generate().unwrap();
        let s = id.expose();
        assert_eq!(SessionId::parse(&s), Some(id));
        assert!(SessionId::parse("").is_none());
        assert!(SessionId::parse(&s[..42]).is_none());
        assert!(SessionId::parse(&format!("{s}A")).is_none());
        assert!(SessionId::parse(&format!("{}=", &s[..42])).is_none());
        assert!(SessionId::parse(&format!("{}/", &s[..42])).is_none());
        assert!(SessionId::parse(&format!("{}+", &s[..42])).is_none());
        assert!(SessionId::parse(&format!("../{}", &s[..40])).is_none());
        assert!(SessionId::parse(&format!("{}\0", &s[..42])).is_none());
        assert!(SessionId::parse(&"é".repeat(21)).is_none());
        // The last character carries 4 unused bits: a non-canonical spelling is refused.
        let mut chars: Vec<char> = s.chars().collect();
        let last = chars[42];
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = alphabet.find(last).unwrap();
        chars[42] = alphabet.chars().nth(pos ^ 1).unwrap();
        let noncanonical: String = chars.into_iter().collect();
        assert!(SessionId::parse(&noncanonical).is_none());
    }

    #[test]
    fn debug_and_key_never_show_the_secret() {
        let id = SessionId::generate().unwrap();
        let secret = id.expose();
        assert!(!format!("{id:?}").contains(&secret));
        let key = id.key();
        assert!(!key.to_hex().contains(&secret));
        assert_eq!(SessionKey::from_hex(&key.to_hex()), Some(key));
        assert!(SessionKey::from_hex("../etc").is_none());
        assert!(SessionKey::from_hex(&key.to_hex().to_uppercase()).is_none());
    }

    #[test]
    fn forward_seal_round_trips_only_with_the_old_id() {
        let old = SessionId::generate().unwrap();
        let new = SessionId::generate().unwrap();
        let other = SessionId::generate().unwrap();
        let token = seal_forward(&old, &new);
        assert_eq!(open_forward(&old, &token), Some(new.clone()));
        assert_ne!(open_forward(&other, &token), Some(new));
        assert!(open_forward(&old, &token[1..]).is_none());
    }
}
