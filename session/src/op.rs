//! Operations a save asks the store to carry out on the value it holds under a key, so that
//! concurrent requests changing one key (a counter, a cart) lose nothing.
//!
//! They work on the MessagePack bytes directly: integers are read and written in the same
//! compact form rmp-serde writes, and array elements are kept byte for byte (never decoded
//! and re-encoded), so every store — including Redis's Lua scripts, which follow the same
//! rules — produces the same bytes.

use bytes::Bytes;

use crate::error::{Error, Result};

/// One operation on the value under a key, carried by a [`ChangeSet`](crate::store::ChangeSet)
/// and carried out by the store against the value it holds, atomically with the rest of the
/// save.
///
/// An operation on an absent key starts from the empty value: `0` for
/// [`Increment`](Op::Increment), `[]` for the array operations. Every operation writes its
/// result, so [`Remove`](Op::Remove) on an absent key stores `[]`.
///
/// ```
/// use sessionkit::store::Op;
/// let one = Op::Increment(1).apply_to("visits", None)?;
/// let two = Op::Increment(1).apply_to("visits", Some(&one))?;
/// assert_eq!(rmp_serde::from_slice::<i64>(&two).unwrap(), 2);
/// # Ok::<(), sessionkit::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Adds a signed delta to an integer. A result outside `i64` is [`Error::Overflow`].
    Increment(i64),
    /// Appends an encoded element to an array. With `max_len`, an array that already holds
    /// `max_len` elements is left as it is: the first `max_len` elements are kept.
    Push {
        /// The element, one MessagePack value.
        value: Bytes,
        /// The most elements the array may hold.
        max_len: Option<usize>,
    },
    /// Appends an encoded element to an array unless an equal one (byte for byte) is there.
    Add(Bytes),
    /// Removes every element equal (byte for byte) to this one from an array.
    Remove(Bytes),
}

const EXPECT_INTEGER: &str = "an integer";
const EXPECT_ARRAY: &str = "an array";

impl Op {
    /// The element an array operation carries, if it is one.
    pub fn element(&self) -> Option<&Bytes> {
        match self {
            Op::Increment(_) => None,
            Op::Push { value, .. } | Op::Add(value) | Op::Remove(value) => Some(value),
        }
    }

    /// Checks what the operation carries, before a store relies on it: an element must be
    /// exactly one well-formed MessagePack value.
    ///
    /// # Errors
    /// [`Error::Encode`] naming `key` otherwise.
    pub fn check(&self, key: &str) -> Result<()> {
        match self.element() {
            Some(value) if value_len(value) != Some(value.len()) => Err(Error::Encode {
                key: key.to_owned(),
                source: "an operation's element is not one MessagePack value".into(),
            }),
            _ => Ok(()),
        }
    }

    /// The value `key` holds after this operation, given what it holds now (`None`: absent).
    ///
    /// # Errors
    /// [`Error::WrongType`] when the value is not an integer (for an increment) or not an
    /// array (for the others); [`Error::Overflow`] when an increment leaves `i64`;
    /// [`Error::Encode`] when the operation's element is malformed. `key` is only used to
    /// name the key in the error.
    pub fn apply_to(&self, key: &str, current: Option<&[u8]>) -> Result<Bytes> {
        self.check(key)?;
        let wrong = |expected| Error::WrongType {
            key: key.to_owned(),
            expected,
        };
        let overflow = || Error::Overflow {
            key: key.to_owned(),
        };
        if let Op::Increment(delta) = self {
            let now = match current {
                None => 0,
                Some(bytes) => match read_int(bytes) {
                    Some(Int::Fits(v)) => v,
                    Some(Int::TooBig) => return Err(overflow()),
                    None => return Err(wrong(EXPECT_INTEGER)),
                },
            };
            let next = now.checked_add(*delta).ok_or_else(overflow)?;
            return crate::codec::encode_value(key, &next);
        }
        let mut items = match current {
            None => Vec::new(),
            Some(bytes) => array_items(bytes).ok_or_else(|| wrong(EXPECT_ARRAY))?,
        };
        match self {
            Op::Push { value, max_len } => {
                if max_len.is_none_or(|max| items.len() < max) {
                    items.push(value);
                }
            }
            Op::Add(value) => {
                if !items.contains(&&value[..]) {
                    items.push(value);
                }
            }
            Op::Remove(value) => items.retain(|item| *item != &value[..]),
            Op::Increment(_) => {}
        }
        write_array(key, &items)
    }
}

enum Int {
    Fits(i64),
    /// A `u64` above `i64::MAX`.
    TooBig,
}

/// `n` big-endian bytes of `b` from `at`, as an unsigned number.
fn be(b: &[u8], at: usize, n: usize) -> Option<u64> {
    let bytes = b.get(at..at.checked_add(n)?)?;
    Some(bytes.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

/// `b` as one MessagePack integer and nothing else.
#[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)] // two's complement reads
fn read_int(b: &[u8]) -> Option<Int> {
    let (&marker, rest) = b.split_first()?;
    let exact = |n: usize| be(b, 1, n).filter(|_| rest.len() == n);
    Some(Int::Fits(match marker {
        0x00..=0x7f if rest.is_empty() => i64::from(marker),
        0xe0..=0xff if rest.is_empty() => i64::from(marker as i8),
        0xcc => exact(1)? as i64,
        0xcd => exact(2)? as i64,
        0xce => exact(4)? as i64,
        0xcf => return Some(i64::try_from(exact(8)?).map_or(Int::TooBig, Int::Fits)),
        0xd0 => i64::from(exact(1)? as u8 as i8),
        0xd1 => i64::from(exact(2)? as u16 as i16),
        0xd2 => i64::from(exact(4)? as u32 as i32),
        0xd3 => exact(8)? as i64,
        _ => return None,
    }))
}

/// The length of the one well-formed MessagePack value at the start of `b`.
pub(crate) fn value_len(b: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    // Values still to read: arrays and maps add their elements instead of recursing, so a
    // deeply nested value cannot exhaust the stack.
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let marker = *b.get(pos)?;
        pos += 1;
        let len = |n: usize| be(b, pos, n).and_then(|v| usize::try_from(v).ok());
        let (skip, children): (usize, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (1 + len(1)?, 0),
            0xc5 | 0xda => (2 + len(2)?, 0),
            0xc6 | 0xdb => (4 + len(4)?, 0),
            0xc7 => (2 + len(1)?, 0),
            0xc8 => (3 + len(2)?, 0),
            0xc9 => (5 + len(4)?, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, be(b, pos, 2)?),
            0xdd => (4, be(b, pos, 4)?),
            0xde => (2, 2 * be(b, pos, 2)?),
            0xdf => (4, 2 * be(b, pos, 4)?),
            0xc1 => return None,
        };
        pos = pos.checked_add(skip)?;
        if pos > b.len() {
            return None;
        }
        pending = pending.checked_add(children)?;
    }
    Some(pos)
}

/// The element count in the header of the array `b`, without checking the elements.
pub(crate) fn array_len(b: &[u8]) -> Option<usize> {
    let count = match *b.first()? {
        m @ 0x90..=0x9f => u64::from(m & 0x0f),
        0xdc => be(b, 1, 2)?,
        0xdd => be(b, 1, 4)?,
        _ => return None,
    };
    usize::try_from(count).ok()
}

/// The elements of `b`, which must be exactly one well-formed MessagePack array.
fn array_items(b: &[u8]) -> Option<Vec<&[u8]>> {
    let (count, mut pos) = match *b.first()? {
        m @ 0x90..=0x9f => (u64::from(m & 0x0f), 1),
        0xdc => (be(b, 1, 2)?, 3),
        0xdd => (be(b, 1, 4)?, 5),
        _ => return None,
    };
    let mut items = Vec::with_capacity(usize::try_from(count).ok()?.min(b.len()));
    for _ in 0..count {
        let len = value_len(b.get(pos..)?)?;
        items.push(&b[pos..pos + len]);
        pos += len;
    }
    (pos == b.len()).then_some(items)
}

/// A MessagePack array of `items`, with the shortest header (as rmp-serde writes it).
fn write_array(key: &str, items: &[&[u8]]) -> Result<Bytes> {
    let mut out = Vec::with_capacity(5 + items.iter().map(|i| i.len()).sum::<usize>());
    let n = items.len();
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xdc);
        out.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(0xdd);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        return Err(Error::Encode {
            key: key.to_owned(),
            source: "an array longer than MessagePack allows".into(),
        });
    }
    for item in items {
        out.extend_from_slice(item);
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc<T: serde::Serialize>(v: &T) -> Vec<u8> {
        rmp_serde::to_vec_named(v).unwrap()
    }

    #[test]
    fn integers_read_back_in_every_width() {
        for v in [
            0i64,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            u32::MAX as i64,
            u32::MAX as i64 + 1,
            i64::MAX,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32768,
            -32769,
            i32::MIN as i64,
            i32::MIN as i64 - 1,
            i64::MIN,
        ] {
            assert!(
                matches!(read_int(&enc(&v)), Some(Int::Fits(x)) if x == v),
                "{v}"
            );
            assert_eq!(value_len(&enc(&v)), Some(enc(&v).len()));
        }
        assert!(matches!(read_int(&enc(&u64::MAX)), Some(Int::TooBig)));
        assert!(read_int(&enc(&1.5f64)).is_none());
        assert!(read_int(&[0xcd, 0x01]).is_none(), "truncated");
        assert!(read_int(&[0x01, 0x01]).is_none(), "trailing bytes");
    }

    #[test]
    fn increment_starts_from_zero_and_writes_what_rmp_serde_writes() {
        let one = Op::Increment(1).apply_to("n", None).unwrap();
        assert_eq!(&one[..], &enc(&1i64)[..]);
        let mut v = one;
        for delta in [200, 70_000, 5_000_000_000, -10_000_000_000, -64] {
            let before: i64 = rmp_serde::from_slice(&v).unwrap();
            v = Op::Increment(delta).apply_to("n", Some(&v)).unwrap();
            assert_eq!(&v[..], &enc(&(before + delta))[..]);
        }
    }

    #[test]
    fn increment_refuses_overflow_and_wrong_types() {
        let max = enc(&i64::MAX);
        assert!(matches!(
            Op::Increment(1).apply_to("n", Some(&max)),
            Err(Error::Overflow { key }) if key == "n"
        ));
        let min = enc(&i64::MIN);
        assert!(matches!(
            Op::Increment(-1).apply_to("n", Some(&min)),
            Err(Error::Overflow { .. })
        ));
        assert!(matches!(
            Op::Increment(-1).apply_to("n", Some(&enc(&u64::MAX))),
            Err(Error::Overflow { .. })
        ));
        for wrong in [enc(&"7"), enc(&1.0f64), enc(&vec![1]), vec![0xc1]] {
            assert!(matches!(
                Op::Increment(1).apply_to("n", Some(&wrong)),
                Err(Error::WrongType { key, expected: EXPECT_INTEGER }) if key == "n"
            ));
        }
    }

    #[test]
    fn push_keeps_elements_byte_for_byte_and_stops_at_the_bound() {
        #[derive(serde::Serialize)]
        struct Item {
            sku: &'static str,
            qty: f32,
        }
        let item = Bytes::from(enc(&Item { sku: "a", qty: 0.5 }));
        let mut v: Option<Bytes> = None;
        for i in 0..20 {
            let op = Op::Push {
                value: item.clone(),
                max_len: Some(17),
            };
            v = Some(op.apply_to("cart", v.as_deref()).unwrap());
            let n = array_items(v.as_deref().unwrap()).unwrap().len();
            assert_eq!(n, (i + 1).min(17));
        }
        let v = v.unwrap();
        assert_eq!(v[0], 0xdc, "16 and more elements take a 16-bit header");
        let items = array_items(&v).unwrap();
        assert!(items.iter().all(|i| *i == &item[..]));
        let pushed = Op::Push {
            value: Bytes::from(enc(&3u8)),
            max_len: None,
        }
        .apply_to("xs", Some(&enc(&vec![1u8, 2])))
        .unwrap();
        assert_eq!(&pushed[..], &enc(&vec![1u8, 2, 3])[..]);
    }

    #[test]
    fn add_and_remove_treat_the_array_as_a_set() {
        let a = Bytes::from(enc(&"a"));
        let b = Bytes::from(enc(&"b"));
        let v = Op::Add(a.clone()).apply_to("s", None).unwrap();
        let v = Op::Add(a.clone()).apply_to("s", Some(&v)).unwrap();
        let v = Op::Add(b.clone()).apply_to("s", Some(&v)).unwrap();
        assert_eq!(&v[..], &enc(&vec!["a", "b"])[..]);
        let v = Op::Remove(a.clone()).apply_to("s", Some(&v)).unwrap();
        assert_eq!(&v[..], &enc(&vec!["b"])[..]);
        let empty = Op::Remove(a).apply_to("s", None).unwrap();
        assert_eq!(&empty[..], &enc(&Vec::<u8>::new())[..]);
    }

    #[test]
    fn array_operations_refuse_non_arrays_and_malformed_elements() {
        let op = Op::Add(Bytes::from(enc(&1)));
        for wrong in [enc(&1), enc(&"x"), vec![0x92, 0x01], vec![0x91, 0x01, 0x02]] {
            assert!(matches!(
                op.apply_to("s", Some(&wrong)),
                Err(Error::WrongType {
                    expected: EXPECT_ARRAY,
                    ..
                })
            ));
        }
        let bad = Op::Push {
            value: Bytes::from_static(&[0x92, 0x01]),
            max_len: None,
        };
        assert!(matches!(bad.apply_to("s", None), Err(Error::Encode { .. })));
        assert!(bad.check("s").is_err());
    }

    #[test]
    fn value_len_walks_every_kind() {
        let mut map = std::collections::BTreeMap::new();
        map.insert("k".to_owned(), vec![Some(1.5f64), None]);
        let nested = enc(&(
            map,
            "s".repeat(40),
            serde_bytes_like(),
            true,
            -5i8,
            1e300f64,
        ));
        assert_eq!(value_len(&nested), Some(nested.len()));
        assert_eq!(value_len(&nested[..nested.len() - 1]), None);
        let ext = [0xd6, 0x01, 0, 0, 0, 0];
        assert_eq!(value_len(&ext), Some(6));
    }

    fn serde_bytes_like() -> rmpv::Value {
        rmpv::Value::Binary(vec![0; 300])
    }
}
