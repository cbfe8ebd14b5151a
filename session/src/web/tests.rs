//! Unit tests of what the integrations share.

use super::*;
use crate::store::MemoryStore;

#[test]
fn forwarding_headers_count_only_from_trusted_peers() {
    let values: [&[u8]; 2] = [b"6.6.6.6, 192.0.2.1", b"10.0.0.2"];
    let forwarded: [&[u8]; 1] = [b"for=198.51.100.1"];
    let ip = |s: &str| s.parse::<IpAddr>().ok();
    let mut shared = Shared::new(
        SessionManager::new(MemoryStore::new(), crate::SessionConfig::default())
            .expect("default config is valid"),
    );
    let client = |shared: &Shared, peer, header: &[&[u8]]| {
        shared
            .request_info(std::iter::empty(), header.iter().copied(), None, peer)
            .client_ip
    };
    shared.trusted_proxies = Arc::new(TrustedProxies::parse("10.0.0.0/8").expect("valid"));
    assert_eq!(client(&shared, ip("10.0.0.1"), &values), ip("192.0.2.1"));
    assert_eq!(
        client(&shared, ip("203.0.113.9"), &values),
        ip("203.0.113.9")
    );
    assert_eq!(
        client(&shared, None, &values),
        None,
        "no peer: nothing to trust"
    );
    shared.trusted_proxies = Arc::new(
        TrustedProxies::parse("10.0.0.0/8")
            .expect("valid")
            .with_header(crate::proxy::ForwardedHeader::Forwarded),
    );
    assert_eq!(
        client(&shared, ip("10.0.0.1"), &forwarded),
        ip("198.51.100.1")
    );
    shared.trusted_proxies = Arc::new(TrustedProxies::new());
    assert_eq!(client(&shared, ip("10.0.0.1"), &values), ip("10.0.0.1"));
}

#[test]
fn only_503s_say_when_to_retry() {
    assert_eq!(Failure::UNAVAILABLE.retry_after(), Some("1"));
    for f in [
        Failure::OVER_LIMIT,
        Failure::MISSING_LAYER,
        Failure::NO_CLIENT_IP,
    ] {
        assert_eq!(f.retry_after(), None, "{f:?}");
    }
    let over = Error::LimitExceeded {
        limit: crate::Limit::Fields,
        key: None,
        size: 2,
        max: 1,
    };
    assert_eq!(Failure::for_save_error(&over), Failure::OVER_LIMIT);
}
