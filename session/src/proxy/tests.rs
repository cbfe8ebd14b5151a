use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn xff(proxies: &TrustedProxies, peer: &str, lines: &[&str]) -> IpAddr {
    proxies.client_ip(ip(peer), lines.iter().map(|l| l.as_bytes()))
}

fn proxies(list: &str) -> TrustedProxies {
    TrustedProxies::parse(list).unwrap()
}

#[test]
fn a_spoofed_header_from_an_untrusted_peer_is_ignored() {
    let p = proxies("10.0.0.0/8");
    assert_eq!(xff(&p, "203.0.113.5", &["192.0.2.99"]), ip("203.0.113.5"));
    assert_eq!(
        xff(&p, "203.0.113.5", &["192.0.2.99, 10.0.0.1"]),
        ip("203.0.113.5")
    );
    // Trusting nothing ignores every header.
    let none = TrustedProxies::new();
    assert_eq!(xff(&none, "10.0.0.1", &["192.0.2.99"]), ip("10.0.0.1"));
    let fwd = p.clone().with_header(ForwardedHeader::Forwarded);
    assert_eq!(
        xff(&fwd, "203.0.113.5", &["for=192.0.2.99"]),
        ip("203.0.113.5")
    );
}

#[test]
fn a_chain_of_trusted_proxies_is_walked_from_the_right() {
    let p = proxies("10.0.0.0/8, 127.0.0.1");
    // A client's own (spoofed) entries to the left of its real address are not believed.
    assert_eq!(
        xff(&p, "127.0.0.1", &["6.6.6.6, 198.51.100.7, 10.0.0.2"]),
        ip("198.51.100.7")
    );
    // Several header lines are one list, in order.
    assert_eq!(
        xff(&p, "10.0.0.3", &["6.6.6.6, 198.51.100.7", "10.0.0.2"]),
        ip("198.51.100.7")
    );
    // A trusted-looking entry to the left of the client is not skipped past it.
    assert_eq!(
        xff(&p, "10.0.0.3", &["10.9.9.9, 198.51.100.7"]),
        ip("198.51.100.7")
    );
    // All trusted: the leftmost. No header from a trusted peer: the peer.
    assert_eq!(xff(&p, "10.0.0.3", &["10.0.0.1, 10.0.0.2"]), ip("10.0.0.1"));
    assert_eq!(xff(&p, "10.0.0.3", &[]), ip("10.0.0.3"));
    assert_eq!(xff(&p, "10.0.0.3", &[""]), ip("10.0.0.3"));
}

#[test]
fn ports_brackets_and_mapped_addresses() {
    let p = proxies("10.0.0.0/8, fd00::/8");
    assert_eq!(xff(&p, "10.0.0.1", &["192.0.2.1:5678"]), ip("192.0.2.1"));
    assert_eq!(
        xff(&p, "10.0.0.1", &["[2001:db8::1]:443"]),
        ip("2001:db8::1")
    );
    assert_eq!(xff(&p, "10.0.0.1", &["[2001:db8::1]"]), ip("2001:db8::1"));
    assert_eq!(xff(&p, "10.0.0.1", &[" 2001:db8::1 "]), ip("2001:db8::1"));
    assert_eq!(
        xff(&p, "10.0.0.1", &["192.0.2.1, [fd00::5]:80"]),
        ip("192.0.2.1")
    );
    // IPv4-mapped IPv6, as peer and in the header, is the IPv4 address.
    assert_eq!(
        xff(&p, "::ffff:10.0.0.1", &["::ffff:192.0.2.1"]),
        ip("192.0.2.1")
    );
    assert_eq!(xff(&p, "::ffff:192.0.2.9", &["6.6.6.6"]), ip("192.0.2.9"));
    assert_eq!(
        xff(&p, "10.0.0.1", &["[::ffff:10.0.0.2]:1, 192.0.2.3"]),
        ip("192.0.2.3")
    );
}

#[test]
fn forwarded_forms() {
    let p = proxies("10.0.0.0/8").with_header(ForwardedHeader::Forwarded);
    let f = |lines: &[&str]| xff(&p, "10.0.0.1", lines);
    assert_eq!(
        f(&["for=192.0.2.60;proto=http;by=203.0.113.43"]),
        ip("192.0.2.60")
    );
    assert_eq!(
        f(&["For=\"[2001:db8:cafe::17]:4711\""]),
        ip("2001:db8:cafe::17")
    );
    assert_eq!(f(&["for=\"192.0.2.60:8080\""]), ip("192.0.2.60"));
    assert_eq!(
        f(&["for=6.6.6.6, for=198.51.100.7;proto=https", "for=10.0.0.9"]),
        ip("198.51.100.7")
    );
    // A quoted comma or semicolon does not split.
    assert_eq!(
        f(&["for=198.51.100.7;ext=\"a,b;c\", for=10.0.0.9"]),
        ip("198.51.100.7")
    );
    // X-Forwarded-For is not read when Forwarded is configured, and vice versa.
    assert_eq!(f(&[]), ip("10.0.0.1"));
    let x = proxies("10.0.0.0/8");
    assert_eq!(xff(&x, "10.0.0.1", &["for=192.0.2.60"]), ip("10.0.0.1"));
}

#[test]
fn an_entry_that_is_not_an_address_stops_the_walk_at_the_last_trusted_hop() {
    let p = proxies("10.0.0.0/8");
    for garbage in [
        "not-an-ip",
        "unknown",
        "_hidden",
        "192.0.2.1:99999",
        "192.0.2.1:",
        "[2001:db8::1",
        "[2001:db8::1]x",
        "2001:db8::1:443x",
        "fe80::1%eth0",
        "1.2.3.4.5",
        "example.com",
    ] {
        assert_eq!(
            xff(&p, "10.0.0.1", &[&format!("6.6.6.6, {garbage}")]),
            ip("10.0.0.1"),
            "{garbage:?}"
        );
        assert_eq!(
            xff(&p, "10.0.0.1", &[&format!("6.6.6.6, {garbage}, 10.0.0.7")]),
            ip("10.0.0.7"),
            "{garbage:?}"
        );
    }
    // Garbage left of the client does not matter.
    assert_eq!(xff(&p, "10.0.0.1", &["junk, 192.0.2.1"]), ip("192.0.2.1"));
    // Not UTF-8.
    let bad: &[u8] = b"6.6.6.6, 192.0.2.\xff";
    assert_eq!(p.client_ip(ip("10.0.0.1"), [bad]), ip("10.0.0.1"));

    let f = p.with_header(ForwardedHeader::Forwarded);
    for garbage in [
        "for=unknown",
        "for=_hidden",
        "for=\"_hidden:80\"",
        "proto=https",
        "for=192.0.2.1;for=192.0.2.2",
        "for=\"192.0.2.1",
        "for=\"192.0.2.1\"x",
        "for",
        "for=2001:db8::1:80x",
    ] {
        assert_eq!(
            xff(&f, "10.0.0.1", &[&format!("for=6.6.6.6, {garbage}")]),
            ip("10.0.0.1"),
            "{garbage:?}"
        );
    }
}

#[test]
fn the_trusted_list_parses_addresses_and_ranges() {
    let p = proxies("10.0.0.0/8,::1  fd00::/8\t192.0.2.7, ::ffff:198.51.100.1");
    for yes in ["10.255.0.1", "::1", "fd12::3", "192.0.2.7", "198.51.100.1"] {
        assert!(p.contains(ip(yes)), "{yes}");
    }
    for no in ["11.0.0.1", "::2", "fe00::1", "192.0.2.8"] {
        assert!(!p.contains(ip(no)), "{no}");
    }
    assert!(proxies("").is_empty());
    assert_eq!(p.to_string().parse::<TrustedProxies>().unwrap(), p);
    for bad in ["10.0.0.0/33", "localhost", "10.0.0.0/8/8", "*"] {
        let err = TrustedProxies::parse(bad).unwrap_err();
        assert!(
            matches!(err, Error::Config(ref m) if m.contains(bad)),
            "{bad}: {err}"
        );
    }
    assert!(
        TrustedProxies::new()
            .with_addr(ip("::ffff:10.0.0.1"))
            .contains(ip("10.0.0.1"))
    );
}
