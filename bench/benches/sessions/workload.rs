//! The session every subject stores: about 1 KiB in 10 fields, and the ways each library
//! represents it.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One line of a shopping cart: the "list of 20 small structs".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CartLine {
    pub(crate) sku: String,
    pub(crate) qty: u32,
    pub(crate) price_cents: u64,
}

/// The whole session as an application would type it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Workload {
    pub(crate) user_id: u64,
    pub(crate) username: String,
    pub(crate) email: String,
    pub(crate) display_name: String,
    pub(crate) locale: String,
    pub(crate) csrf_token: String,
    pub(crate) login_count: u32,
    pub(crate) created_at: i64,
    pub(crate) theme: String,
    pub(crate) cart: Vec<CartLine>,
}

/// The key a "save one changed key" request changes, and the key a read-only request reads.
pub(crate) const CHANGED_KEY: &str = "login_count";
pub(crate) const READ_KEY: &str = "username";

impl Workload {
    pub(crate) fn sample() -> Self {
        Workload {
            user_id: 4_242_424_242,
            username: "margaret.hamilton".into(),
            email: "margaret.hamilton@example.com".into(),
            display_name: "Margaret H. Hamilton".into(),
            locale: "en-GB".into(),
            csrf_token: "q9V3rN1xZk7Lw2Pm8Yt4Hs6Jd0Fb5Gc3Ae1Ru7Io9Ux".into(),
            login_count: 17,
            created_at: 1_764_000_000,
            theme: "solarized-dark".into(),
            cart: (0..20)
                .map(|i| CartLine {
                    sku: format!("SKU-{:06}", 100_000 + i * 37),
                    qty: 1 + i % 4,
                    price_cents: 199 + u64::from(i) * 1_250,
                })
                .collect(),
        }
    }

    /// Each field encoded on its own, as sessionkit's field map holds it.
    pub(crate) fn fields(&self) -> BTreeMap<String, Bytes> {
        fn enc<T: Serialize>(v: &T) -> Bytes {
            Bytes::from(rmp_serde::to_vec_named(v).expect("workload encodes"))
        }
        BTreeMap::from([
            ("user_id".to_owned(), enc(&self.user_id)),
            ("username".to_owned(), enc(&self.username)),
            ("email".to_owned(), enc(&self.email)),
            ("display_name".to_owned(), enc(&self.display_name)),
            ("locale".to_owned(), enc(&self.locale)),
            ("csrf_token".to_owned(), enc(&self.csrf_token)),
            ("login_count".to_owned(), enc(&self.login_count)),
            ("created_at".to_owned(), enc(&self.created_at)),
            ("theme".to_owned(), enc(&self.theme)),
            ("cart".to_owned(), enc(&self.cart)),
        ])
    }

    /// The field map as tower-sessions keeps it (JSON values).
    pub(crate) fn json_map(&self) -> HashMap<String, serde_json::Value> {
        let serde_json::Value::Object(map) = serde_json::to_value(self).expect("workload to JSON")
        else {
            unreachable!("a struct serializes to a JSON object")
        };
        map.into_iter().collect()
    }

    /// The field map as actix-session keeps it (one JSON string per key).
    pub(crate) fn json_strings(&self) -> HashMap<String, String> {
        self.json_map()
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect()
    }

    /// The whole record as one MessagePack blob (the floors).
    pub(crate) fn blob(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("workload encodes")
    }
}

/// A 50-field session, for the cost of one getter against decoding everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sessionkit::SessionData)]
pub(crate) struct Wide {
    pub(crate) f00: String,
    pub(crate) f01: String,
    pub(crate) f02: String,
    pub(crate) f03: String,
    pub(crate) f04: String,
    pub(crate) f05: String,
    pub(crate) f06: String,
    pub(crate) f07: String,
    pub(crate) f08: String,
    pub(crate) f09: String,
    pub(crate) f10: String,
    pub(crate) f11: String,
    pub(crate) f12: String,
    pub(crate) f13: String,
    pub(crate) f14: String,
    pub(crate) f15: String,
    pub(crate) f16: String,
    pub(crate) f17: String,
    pub(crate) f18: String,
    pub(crate) f19: String,
    pub(crate) f20: String,
    pub(crate) f21: String,
    pub(crate) f22: String,
    pub(crate) f23: String,
    pub(crate) f24: String,
    pub(crate) f25: String,
    pub(crate) f26: String,
    pub(crate) f27: String,
    pub(crate) f28: String,
    pub(crate) f29: String,
    pub(crate) f30: String,
    pub(crate) f31: String,
    pub(crate) f32: String,
    pub(crate) f33: String,
    pub(crate) f34: String,
    pub(crate) f35: String,
    pub(crate) f36: String,
    pub(crate) f37: String,
    pub(crate) f38: String,
    pub(crate) f39: String,
    pub(crate) f40: String,
    pub(crate) f41: String,
    pub(crate) f42: String,
    pub(crate) f43: String,
    pub(crate) f44: String,
    pub(crate) f45: String,
    pub(crate) f46: String,
    pub(crate) f47: String,
    pub(crate) f48: String,
    pub(crate) f49: String,
}

impl Wide {
    pub(crate) fn sample() -> Self {
        Wide {
            f00: format!("value number {}", 0),
            f01: format!("value number {}", 1),
            f02: format!("value number {}", 2),
            f03: format!("value number {}", 3),
            f04: format!("value number {}", 4),
            f05: format!("value number {}", 5),
            f06: format!("value number {}", 6),
            f07: format!("value number {}", 7),
            f08: format!("value number {}", 8),
            f09: format!("value number {}", 9),
            f10: format!("value number {}", 10),
            f11: format!("value number {}", 11),
            f12: format!("value number {}", 12),
            f13: format!("value number {}", 13),
            f14: format!("value number {}", 14),
            f15: format!("value number {}", 15),
            f16: format!("value number {}", 16),
            f17: format!("value number {}", 17),
            f18: format!("value number {}", 18),
            f19: format!("value number {}", 19),
            f20: format!("value number {}", 20),
            f21: format!("value number {}", 21),
            f22: format!("value number {}", 22),
            f23: format!("value number {}", 23),
            f24: format!("value number {}", 24),
            f25: format!("value number {}", 25),
            f26: format!("value number {}", 26),
            f27: format!("value number {}", 27),
            f28: format!("value number {}", 28),
            f29: format!("value number {}", 29),
            f30: format!("value number {}", 30),
            f31: format!("value number {}", 31),
            f32: format!("value number {}", 32),
            f33: format!("value number {}", 33),
            f34: format!("value number {}", 34),
            f35: format!("value number {}", 35),
            f36: format!("value number {}", 36),
            f37: format!("value number {}", 37),
            f38: format!("value number {}", 38),
            f39: format!("value number {}", 39),
            f40: format!("value number {}", 40),
            f41: format!("value number {}", 41),
            f42: format!("value number {}", 42),
            f43: format!("value number {}", 43),
            f44: format!("value number {}", 44),
            f45: format!("value number {}", 45),
            f46: format!("value number {}", 46),
            f47: format!("value number {}", 47),
            f48: format!("value number {}", 48),
            f49: format!("value number {}", 49),
        }
    }

    /// The 50 fields encoded one by one, as a session's field map holds them.
    pub(crate) fn fields(&self) -> BTreeMap<String, Bytes> {
        let serde_json::Value::Object(map) = serde_json::to_value(self).expect("wide to JSON")
        else {
            unreachable!("a struct serializes to a JSON object")
        };
        map.into_iter()
            .map(|(k, v)| {
                let s = v.as_str().expect("string field").to_owned();
                (
                    k,
                    Bytes::from(rmp_serde::to_vec_named(&s).expect("encodes")),
                )
            })
            .collect()
    }
}

/// Fast deterministic keys: `i` spread over 32 bytes (splitmix64).
pub(crate) fn key_bytes(i: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut x = i;
    for chunk in out.chunks_exact_mut(8) {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

/// Lowercase hex of the key bytes, as sessionkit's file and Redis stores name records.
pub(crate) fn key_hex(i: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in key_bytes(i) {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// Indices at or above this are never created: loads of them miss.
pub(crate) const MISS_BASE: u64 = 1 << 62;
