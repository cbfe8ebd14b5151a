use super::*;
use crate::limits::MAX_TIMEOUT;

/// Cookie tossing (issue 16, item 1): unless the application names the cookie, a secure
/// configuration uses a prefixed name a sibling subdomain cannot set, and every default
/// name it picks passes its own validation.
#[test]
fn the_default_name_is_prefixed_whenever_secure() {
    let d = SessionConfig::default;
    assert_eq!(d().effective_cookie_name(), "__Host-id");
    assert_eq!(d().with_secure(false).effective_cookie_name(), "id");
    let domain = d().with_domain(Some("example.com".into()));
    assert_eq!(domain.effective_cookie_name(), "__Secure-id");
    domain.validate().unwrap();
    let path = d().with_path("/app");
    assert_eq!(path.effective_cookie_name(), "__Secure-id");
    path.validate().unwrap();
    let plain = d()
        .with_secure(false)
        .with_domain(Some("example.com".into()));
    assert_eq!(plain.effective_cookie_name(), "id");
    plain.validate().unwrap();
    // An explicit name is kept as given (the example site keeps `id`).
    assert_eq!(d().with_cookie_name("id").effective_cookie_name(), "id");
    assert!(format!("{:?}", d()).contains("__Host-id"));
}

fn err(c: SessionConfig) -> String {
    match c.validate() {
        Err(Error::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn defaults_are_secure_and_valid() {
    let c = SessionConfig::default();
    c.validate().unwrap();
    assert_eq!(c.effective_cookie_name(), "__Host-id");
    assert!(c.secure);
    assert_eq!(c.same_site, SameSite::Lax);
    assert_eq!(c.path, "/");
    assert!(c.domain.is_none());
    assert!(!c.persistent);
    assert_eq!(c.check_ip, IpBinding::Off);
    assert!(!c.check_user_agent);
    assert!(c.rotation_grace <= MAX_ROTATION_GRACE);
}

#[test]
fn prefixes_are_checked_in_any_case() {
    // Browsers apply the prefixes case-insensitively: so must the check.
    let host = SessionConfig::default().with_cookie_name("__host-id");
    assert!(err(host.with_domain(Some("example.com".into()))).contains("Domain"));
    let host = SessionConfig::default().with_cookie_name("__HOST-id");
    assert!(err(host.with_path("/app")).contains("Path"));
    let secure = SessionConfig::default().with_cookie_name("__SeCuRe-id");
    assert!(err(secure.with_secure(false)).contains("Secure"));
    // Not a prefix at all: no rule applies.
    SessionConfig::default()
        .with_cookie_name("__Hos-id")
        .with_secure(false)
        .validate()
        .unwrap();
}

#[test]
fn host_prefix_rules() {
    let host = SessionConfig::default().with_cookie_name("__Host-id");
    host.clone().validate().unwrap();
    assert!(err(host.clone().with_secure(false)).contains("Secure"));
    assert!(err(host.clone().with_path("/app")).contains("Path"));
    assert!(err(host.with_domain(Some("example.com".into()))).contains("Domain"));
    let secure = SessionConfig::default().with_cookie_name("__Secure-id");
    assert!(err(secure.with_secure(false)).contains("Secure"));
}

#[test]
fn same_site_none_needs_secure() {
    let c = SessionConfig::default().with_same_site(SameSite::None);
    c.clone().validate().unwrap();
    assert!(err(c.with_secure(false)).contains("SameSite"));
}

#[test]
fn huge_timeouts_are_refused_naming_the_option() {
    let d = SessionConfig::default;
    assert!(err(d().with_idle_timeout(Duration::MAX)).contains("idle_timeout"));
    assert!(err(d().with_absolute_timeout(Some(Duration::MAX))).contains("absolute_timeout"));
    assert!(err(d().with_rotate_after(Some(Duration::MAX))).contains("rotate_after"));
    let just_over = MAX_TIMEOUT + Duration::from_secs(1);
    assert!(err(d().with_idle_timeout(just_over)).contains("idle_timeout"));
    d().with_idle_timeout(MAX_TIMEOUT)
        .with_absolute_timeout(Some(MAX_TIMEOUT))
        .with_rotate_after(Some(MAX_TIMEOUT))
        .validate()
        .unwrap();
}

#[test]
fn limits_are_validated() {
    let d = SessionConfig::default;
    assert_eq!(d().limits, Limits::default());
    assert!(err(d().with_limits(Limits::default().with_max_fields(0))).contains("limits"));
    assert!(
        err(d().with_limits(
            Limits::default()
                .with_max_value_bytes(10)
                .with_max_record_bytes(9)
        ))
        .contains("max_value_bytes")
    );
}

#[test]
fn bad_values_are_refused() {
    let d = SessionConfig::default;
    for name in ["", "a b", "a;b", "a=b", "é", "a\0"] {
        err(d().with_cookie_name(name));
    }
    err(d().with_cookie_name("x".repeat(MAX_COOKIE_LEN)));
    err(d().with_path("app"));
    err(d().with_path("/a;b"));
    err(d().with_domain(Some("a;b".into())));
    err(d().with_domain(Some(String::new())));
    err(d().with_idle_timeout(Duration::ZERO));
    err(d().with_absolute_timeout(Some(Duration::ZERO)));
    err(d().with_rotate_after(Some(Duration::ZERO)));
    err(d().with_rotation_grace(MAX_ROTATION_GRACE + Duration::from_secs(1)));
    d().with_rotation_grace(MAX_ROTATION_GRACE)
        .validate()
        .unwrap();
    for f in [-0.1, 1.0, f64::NAN] {
        err(d().with_refresh_fraction(f));
    }
    for p in [-0.1, 1.1, f64::NAN] {
        err(d().with_cleanup_probability(p));
    }
    d().with_cleanup_probability(1.0).validate().unwrap();
    d().with_rotate_after(None)
        .with_absolute_timeout(None)
        .validate()
        .unwrap();
}
