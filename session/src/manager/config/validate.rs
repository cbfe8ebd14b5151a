//! [`SessionConfig::validate`]: the checks a configuration must pass.

use super::*;
use crate::id::ID_LEN;
use crate::limits::MAX_TIMEOUT;

impl SessionConfig {
    /// Checks the configuration; [`SessionManager::new`](crate::manager::SessionManager::new) calls it.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first problem: an empty or non-token cookie name, a
    /// name too long for a 4 KiB cookie, a `__Host-` name with `secure` off, a `Path` other
    /// than `/` or a `Domain`, a `__Secure-` name with `secure` off, `SameSite=None` without
    /// `secure`, a zero timeout or one over [`MAX_TIMEOUT`] (100 years: say "never" with
    /// `None`), a grace window over [`MAX_ROTATION_GRACE`], a fraction or probability out of
    /// range, a `Path`/`Domain` with characters a cookie cannot carry, or invalid
    /// [`Limits`].
    pub fn validate(&self) -> Result<()> {
        let name = self.effective_cookie_name();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(config(format!(
                "cookie_name {name:?} must be a non-empty HTTP token (letters, digits, !#$%&'*+-.^_`|~)"
            )));
        }
        if name.len() + ID_LEN > MAX_COOKIE_LEN {
            return Err(config(format!(
                "cookie_name is {} bytes; with the id it exceeds {MAX_COOKIE_LEN} bytes",
                name.len()
            )));
        }
        if has_prefix(name, "__Host-") {
            if !self.secure {
                return Err(config("a __Host- cookie must be Secure"));
            }
            if self.path != "/" {
                return Err(config("a __Host- cookie must have Path=/"));
            }
            if self.domain.is_some() {
                return Err(config("a __Host- cookie must not have a Domain"));
            }
        }
        if has_prefix(name, "__Secure-") && !self.secure {
            return Err(config("a __Secure- cookie must be Secure"));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(config("SameSite=None requires Secure"));
        }
        if !self.path.starts_with('/') || !self.path.bytes().all(is_attr_byte) {
            return Err(config(format!(
                "path {:?} must start with '/' and hold no ';' or control characters",
                self.path
            )));
        }
        if let Some(domain) = &self.domain
            && (domain.is_empty() || !domain.bytes().all(is_attr_byte) || domain.contains(' '))
        {
            return Err(config(format!(
                "domain {domain:?} is not a valid cookie domain"
            )));
        }
        if self.idle_timeout.is_zero() {
            return Err(config("idle_timeout must be more than zero"));
        }
        if self.absolute_timeout.is_some_and(|t| t.is_zero()) {
            return Err(config("absolute_timeout must be more than zero (or None)"));
        }
        if self.rotate_after.is_some_and(|t| t.is_zero()) {
            return Err(config("rotate_after must be more than zero (or None)"));
        }
        for (name, timeout) in [
            ("idle_timeout", Some(self.idle_timeout)),
            ("absolute_timeout", self.absolute_timeout),
            ("rotate_after", self.rotate_after),
        ] {
            if timeout.is_some_and(|t| t > MAX_TIMEOUT) {
                return Err(config(format!(
                    "{name} must be at most {} days (100 years; use None for no limit where the option allows it)",
                    MAX_TIMEOUT.as_secs() / 86_400
                )));
            }
        }
        if self.rotation_grace > MAX_ROTATION_GRACE {
            return Err(config(format!(
                "rotation_grace must be at most {} s",
                MAX_ROTATION_GRACE.as_secs()
            )));
        }
        if !(0.0..1.0).contains(&self.refresh_fraction) {
            return Err(config("refresh_fraction must be in 0.0..1.0"));
        }
        if !(0.0..=1.0).contains(&self.cleanup_probability) {
            return Err(config("cleanup_probability must be in 0.0..=1.0"));
        }
        self.limits.validate()
    }
}

fn config(message: impl Into<String>) -> Error {
    Error::Config(message.into())
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What a `Path` or `Domain` attribute value may hold (RFC 6265 `av-octet` minus `;`).
fn is_attr_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b';'
}

/// Whether `name` starts with the cookie prefix `prefix`, compared as browsers do: without
/// regard to ASCII case (`__host-id` is a `__Host-` cookie to a browser).
fn has_prefix(name: &str, prefix: &str) -> bool {
    name.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}
