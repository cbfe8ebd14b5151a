//! Forwarding headers (`X-Forwarded-For` and RFC 7239 `Forwarded`): arbitrary bytes, split
//! into up to four header values on `\n`, go through `TrustedProxies::client_ip` for both
//! header kinds. It must not panic, and the answer must follow the trust rule: from an
//! untrusted peer it is the peer; from a trusted one it is the peer or an address the
//! header lists, and an untrusted answer is never one a walk from the right would skip.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use sessionkit::proxy::{ForwardedHeader, TrustedProxies, forwarded_hops};

fuzz_target!(|data: &[u8]| {
    let proxies = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1, fd00::/8, ::1").expect("list");
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').take(4).collect();
    let trusted: IpAddr = "10.0.0.1".parse().expect("ip");
    let untrusted: IpAddr = "203.0.113.5".parse().expect("ip");
    for header in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
        let p = proxies.clone().with_header(header);
        assert_eq!(p.client_ip(untrusted, values.iter().copied()), untrusted);
        let client = p.client_ip(trusted, values.iter().copied());
        let hops = forwarded_hops(header, values.iter().copied());
        // The walk: from the right, past trusted addresses, stopping at a non-address.
        let mut expected = trusted;
        for hop in hops.iter().rev() {
            let Some(ip) = hop else { break };
            expected = ip.to_canonical();
            if !p.contains(expected) {
                break;
            }
        }
        assert_eq!(client, expected);
        assert!(
            client == trusted || hops.iter().flatten().any(|h| h.to_canonical() == client),
            "an address the header does not list"
        );
    }
});
