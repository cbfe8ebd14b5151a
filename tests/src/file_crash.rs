//! What the FileStore crash test's child writes and its parent checks: shared so the two agree.

use bytes::Bytes;
use sessionkit::SessionKey;

/// The key of session `i` in the crash test.
pub fn crash_key(i: usize) -> SessionKey {
    SessionKey::from_bytes([i as u8; 32])
}

/// The value of the `blob` field at version `v`: its size and every byte depend on `v`, so a
/// torn or mixed write cannot pass for a whole one.
pub fn blob(v: u64) -> Bytes {
    let len = 1024 + (v % 64) as usize * 1024;
    Bytes::from(
        v.to_le_bytes()
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect::<Vec<u8>>(),
    )
}
