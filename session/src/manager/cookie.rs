//! Reading the session cookie out of `Cookie` headers and writing `Set-Cookie` values, with
//! the `cookie` crate.
//!
//! Reading is strict and never fails: whatever the headers hold, the result is "no cookie",
//! "a cookie that is not one of our ids" (with the reason, for the log) or an id that passed
//! [`SessionId::parse`]. Only the last ever reaches a store.

use std::time::{SystemTime, UNIX_EPOCH};

use cookie::Cookie;
use cookie::time::{Duration as CookieDuration, OffsetDateTime};

use super::config::{MAX_COOKIE_LEN, SameSite, SessionConfig};
use crate::id::{ID_LEN, SessionId};

/// The reason given for a request carrying our cookie more than once.
const DUPLICATED: &str = "duplicated";

/// What the request presented as its session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Presented {
    /// No cookie of our name.
    Missing,
    /// A cookie of our name that is not a well-formed id; the reason is for the log.
    Invalid(&'static str),
    /// A well-formed id.
    Id(SessionId),
}

impl Presented {
    /// Whether the client sent one cookie of our name whose value no version of sessionkit
    /// could have issued. A duplicated cookie is not: one of the copies may be the visitor's
    /// real session, and a removal cookie could delete that one instead of a tossed one.
    pub(crate) fn is_malformed(&self) -> bool {
        matches!(self, Presented::Invalid(reason) if *reason != DUPLICATED)
    }
}

/// Finds the session cookie `name` in the request's `Cookie` header values.
///
/// Pairs are split on `;` and parsed one at a time, so a broken cookie of another name does
/// not hide ours. Two cookies of our name (from two paths, or injected by a sibling domain)
/// are refused rather than guessed between.
pub(crate) fn find(headers: &[Vec<u8>], name: &str) -> Presented {
    let mut found: Option<Result<String, &'static str>> = None;
    for header in headers {
        let utf8 = std::str::from_utf8(header).is_ok();
        let text = String::from_utf8_lossy(header);
        for segment in text.split(';') {
            let segment = segment.trim_matches([' ', '\t']);
            if segment.is_empty() {
                continue;
            }
            let value = match Cookie::parse(segment) {
                Ok(c) if c.name() == name => Ok(c.value().to_owned()),
                Ok(_) => continue,
                // A bare `name` with no `=` is ours but malformed; other failures are not ours
                // (a pair with an empty name cannot carry our non-empty name).
                Err(_) if segment == name => Err("malformed"),
                Err(_) => continue,
            };
            if found.is_some() {
                return Presented::Invalid(DUPLICATED);
            }
            found = Some(value.and_then(|v| {
                if !utf8 && v.contains(char::REPLACEMENT_CHARACTER) {
                    Err("not UTF-8")
                } else {
                    Ok(v)
                }
            }));
        }
    }
    match found {
        None => Presented::Missing,
        Some(Err(reason)) => Presented::Invalid(reason),
        Some(Ok(value)) => classify(name, &value),
    }
}

fn classify(name: &str, value: &str) -> Presented {
    if value.is_empty() {
        return Presented::Invalid("empty");
    }
    if name.len() + value.len() > MAX_COOKIE_LEN {
        return Presented::Invalid("oversized");
    }
    if value.len() != ID_LEN {
        return Presented::Invalid("wrong length");
    }
    match SessionId::parse(value) {
        Some(id) => Presented::Id(id),
        None => Presented::Invalid("bad characters"),
    }
}

fn base(config: &SessionConfig, value: String) -> Cookie<'static> {
    let mut builder = Cookie::build((config.effective_cookie_name().to_owned(), value))
        .path(config.path.clone())
        .http_only(true)
        .secure(config.secure)
        .same_site(match config.same_site {
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::None => cookie::SameSite::None,
        });
    if let Some(domain) = &config.domain {
        builder = builder.domain(domain.clone());
    }
    builder.build()
}

/// The `Set-Cookie` value carrying `id`. With `persistent_until = Some((now, expires_at))`
/// the cookie gets `Max-Age` (whole seconds, never past the server-side expiry) and
/// `Expires`; without, it is a browser-session cookie.
pub(crate) fn set_cookie(
    config: &SessionConfig,
    id: &SessionId,
    persistent_until: Option<(SystemTime, SystemTime)>,
) -> String {
    let mut cookie = base(config, id.expose());
    if let Some((now, expires_at)) = persistent_until {
        let secs = expires_at
            .duration_since(now)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        cookie.set_max_age(CookieDuration::seconds(
            i64::try_from(secs).unwrap_or(i64::MAX),
        ));
        cookie.set_expires(to_offset(expires_at));
    }
    cookie.to_string()
}

/// The `Set-Cookie` value that removes the cookie: empty, `Max-Age=0`, `Expires` in 1970,
/// with the configured `Path`, `Domain`, `Secure` and `SameSite` so it hits the same cookie.
pub(crate) fn removal_cookie(config: &SessionConfig) -> String {
    let mut cookie = base(config, String::new());
    cookie.set_max_age(CookieDuration::ZERO);
    cookie.set_expires(OffsetDateTime::UNIX_EPOCH);
    cookie.to_string()
}

fn to_offset(t: SystemTime) -> OffsetDateTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn id() -> SessionId {
        SessionId::generate().unwrap()
    }

    fn h(s: &str) -> Vec<Vec<u8>> {
        vec![s.as_bytes().to_vec()]
    }

    #[test]
    fn finds_the_id_among_other_cookies() {
        let id = id();
        let v = id.expose();
        assert_eq!(
            find(&h(&format!("id={v}")), "id"),
            Presented::Id(id.clone())
        );
        assert_eq!(
            find(&h(&format!("a=1; id={v};b=2")), "id"),
            Presented::Id(id.clone())
        );
        // Other headers, broken neighbours and lookalike names do not matter.
        let headers = vec![
            b"theme=dark; =nameless; junk".to_vec(),
            format!("xid=zzz; id={v}; idx=1").into_bytes(),
        ];
        assert_eq!(find(&headers, "id"), Presented::Id(id));
    }

    #[test]
    fn missing() {
        assert_eq!(find(&[], "id"), Presented::Missing);
        assert_eq!(find(&h(""), "id"), Presented::Missing);
        assert_eq!(find(&h("other=1; ; ;"), "id"), Presented::Missing);
        assert_eq!(find(&h("ID=1"), "id"), Presented::Missing);
        assert!(!Presented::Missing.is_malformed());
    }

    #[test]
    fn invalid_values_name_their_reason() {
        let v = id().expose();
        let cases: Vec<(String, &str)> = vec![
            ("id=".into(), "empty"),
            ("id".into(), "malformed"),
            (format!("id={}", "A".repeat(5000)), "oversized"),
            ("id=abc".into(), "wrong length"),
            (format!("id={v}A"), "wrong length"),
            (format!("id=\"{v}\""), "wrong length"),
            (format!("id={}", &v[..42]), "wrong length"),
            (format!("id={}/", &v[..42]), "bad characters"),
            (format!("id={}+", &v[..42]), "bad characters"),
            (format!("id=../{}", &v[..40]), "bad characters"),
            (format!("id={}%", &v[..42]), "bad characters"),
            (format!("id={}\0", &v[..42]), "bad characters"),
            (format!("id={v}; id={v}"), "duplicated"),
            (format!("id={v}; id={}", id().expose()), "duplicated"),
            (format!("id={v}; id"), "duplicated"),
        ];
        for (header, reason) in cases {
            let got = find(&h(&header), "id");
            assert_eq!(got, Presented::Invalid(reason), "{header:?}");
            // Only a duplicate is not cleared: one copy may be the visitor's real session.
            assert_eq!(got.is_malformed(), reason != "duplicated", "{header:?}");
        }
        // Duplicates across two Cookie headers count too.
        let two = vec![
            format!("id={v}").into_bytes(),
            format!("id={v}").into_bytes(),
        ];
        assert_eq!(find(&two, "id"), Presented::Invalid("duplicated"));
    }

    #[test]
    fn non_utf8_bytes() {
        let v = id();
        let mut bad = b"id=".to_vec();
        bad.extend_from_slice(&v.expose().as_bytes()[..41]);
        bad.extend_from_slice(&[0xff, 0xfe]);
        assert_eq!(find(&[bad], "id"), Presented::Invalid("not UTF-8"));
        // Broken bytes in another cookie do not cost the visitor their session.
        let mut header = b"junk=\xff\xfe; ".to_vec();
        header.extend_from_slice(format!("id={}", v.expose()).as_bytes());
        assert_eq!(find(&[header], "id"), Presented::Id(v));
    }

    #[test]
    fn set_cookie_has_the_secure_defaults() {
        let config = SessionConfig::default();
        let id = id();
        let header = set_cookie(&config, &id, None);
        let c = Cookie::parse(header.clone()).unwrap();
        assert_eq!(c.value(), id.expose());
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.secure(), Some(true));
        assert_eq!(c.same_site(), Some(cookie::SameSite::Lax));
        assert_eq!(c.path(), Some("/"));
        assert_eq!(c.domain(), None);
        assert_eq!(c.max_age(), None);
        assert_eq!(c.expires(), None);
        assert!(!header.contains("Domain"));
    }

    #[test]
    fn persistent_cookie_never_outlives_the_session() {
        let config = SessionConfig::default();
        let now = SystemTime::now();
        let expires = now + Duration::from_millis(1_799_999);
        let c = Cookie::parse(set_cookie(&config, &id(), Some((now, expires)))).unwrap();
        assert_eq!(c.max_age(), Some(CookieDuration::seconds(1799)));
        assert!(c.expires_datetime().is_some());
    }

    #[test]
    fn removal_cookie_matches_the_configured_attributes() {
        let config = SessionConfig::default()
            .with_path("/app")
            .with_domain(Some("example.com".into()))
            .with_same_site(SameSite::Strict);
        let c = Cookie::parse(removal_cookie(&config)).unwrap();
        assert_eq!(c.value(), "");
        assert_eq!(c.max_age(), Some(CookieDuration::ZERO));
        assert_eq!(c.expires_datetime(), Some(OffsetDateTime::UNIX_EPOCH));
        assert_eq!(c.path(), Some("/app"));
        assert_eq!(c.domain(), Some("example.com"));
        assert_eq!(c.secure(), Some(true));
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.same_site(), Some(cookie::SameSite::Strict));
    }
}
