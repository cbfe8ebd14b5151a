//! The reserved key space: every field-map key under [`RESERVED_PREFIX`] belongs to
//! sessionkit (the manager's bookkeeping, the persistence choice, flash messages). The
//! dictionary API refuses and hides these keys, and `#[derive(SessionData)]` refuses them at
//! compile time with its own copy of the prefix (a proc-macro crate cannot depend on this
//! one; `tests/tests/derive_access.rs` checks the two agree).

use crate::error::{Error, Result};

/// Keys that start with this prefix belong to sessionkit (expiry bookkeeping, flash, binding)
/// and are refused by the dictionary API and by `#[derive(SessionData)]`.
///
/// ```
/// let session = sessionkit::Session::new();
/// let key = format!("{}created", sessionkit::reserved::RESERVED_PREFIX);
/// assert!(matches!(session.insert(key, 1), Err(sessionkit::Error::ReservedKey { .. })));
/// ```
pub const RESERVED_PREFIX: &str = "__sk.";

/// When the session was created (ms since the epoch). Rotation and regeneration keep it.
pub(crate) const CREATED: &str = "__sk.created";
/// When the session was last refreshed: the idle timeout counts from here.
pub(crate) const SEEN: &str = "__sk.seen";
/// When the id was last replaced (or the session created).
pub(crate) const ROTATED: &str = "__sk.rotated";
/// When the session gained its current owner (a login): what the per-owner cap orders by.
pub(crate) const LOGIN: &str = "__sk.login";
/// Hash of the client IP (or its network) the session is bound to.
pub(crate) const IP: &str = "__sk.ip";
/// Hash of the User-Agent the session is bound to.
pub(crate) const UA: &str = "__sk.ua";
/// The per-session "remember me" choice.
pub(crate) const PERSIST: &str = "__sk.persist";
/// The prefix of flash entries: the flash `name` is stored under `__sk.flash.name`.
pub(crate) const FLASH_PREFIX: &str = "__sk.flash.";

/// Whether `key` belongs to sessionkit rather than to the application.
pub(crate) fn is_reserved(key: &str) -> bool {
    key.starts_with(RESERVED_PREFIX)
}

/// Whether `key` is a flash entry.
pub(crate) fn is_flash(key: &str) -> bool {
    key.starts_with(FLASH_PREFIX)
}

/// The field-map key of the flash message `name`.
pub(crate) fn flash_key(name: &str) -> String {
    format!("{FLASH_PREFIX}{name}")
}

/// Refuses a reserved key with [`Error::ReservedKey`], for the dictionary API.
pub(crate) fn check_user_key(key: &str) -> Result<()> {
    if is_reserved(key) {
        Err(Error::ReservedKey {
            key: key.to_owned(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_key_is_reserved() {
        for key in [CREATED, SEEN, ROTATED, LOGIN, IP, UA, PERSIST, FLASH_PREFIX] {
            assert!(is_reserved(key), "{key}");
            assert!(check_user_key(key).is_err(), "{key}");
        }
        assert!(is_flash(&flash_key("n")) && is_reserved(&flash_key("n")));
        assert!(!is_reserved("__sk") && !is_reserved("sk.created") && !is_reserved(""));
        assert!(check_user_key("__sk").is_ok());
    }
}
