//! Which address a request came from when it passed through reverse proxies.
//!
//! A forwarding header (`X-Forwarded-For`, or RFC 7239 `Forwarded`) is written by whoever
//! sent the request, so it is only worth something when the connection came from a proxy the
//! application trusts. [`TrustedProxies`] holds those proxies (addresses and CIDR ranges) and
//! [`TrustedProxies::client_ip`] resolves the client:
//!
//! 1. If the connection's peer is not a trusted proxy, the peer is the client and every
//!    forwarding header is ignored: a client that connects directly cannot claim another
//!    address.
//! 2. Otherwise the header's addresses are walked from the right (the most recent hop first),
//!    skipping trusted proxies; the first address that is not a trusted proxy is the client.
//!    Each trusted proxy appends the address it received the request from, so every address
//!    the walk reaches was written by a trusted proxy.
//! 3. If every address is a trusted proxy, the leftmost is the client.
//! 4. If the walk reaches an entry that is not an address (garbage, an obfuscated RFC 7239
//!    identifier, `unknown`, a `Forwarded` element without `for=`), it stops and the last
//!    trusted hop it reached is the client. That hop's address was written by a trusted
//!    proxy (or is the peer), so a client can never choose the answer; nothing to the left of
//!    the bad entry is believed. (nginx's `real_ip_recursive` stops at the same place.) Bad
//!    input therefore never leaves a request without an address.
//!
//! Only one header is read, [`ForwardedHeader::XForwardedFor`] by default or
//! [`ForwardedHeader::Forwarded`]; the two are never combined. Addresses are accepted in the
//! forms proxies send: `192.0.2.1`, `192.0.2.1:5678`, `2001:db8::1`, `[2001:db8::1]:443`, and
//! in `Forwarded`, `for=192.0.2.1` and `for="[2001:db8::1]:443"` (quoted or not). An
//! IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is the IPv4 address, both as peer and in a
//! header.
//!
//! This module does not depend on any web framework: a layer hands it the peer address and
//! the raw values of the header [`TrustedProxies::header`] names.
//!
//! ```
//! use sessionkit::proxy::TrustedProxies;
//!
//! let proxies: TrustedProxies = "10.0.0.0/8, ::1".parse()?;
//! let via_proxy = "10.1.2.3".parse()?;
//! let header = [b"198.51.100.7, 10.9.9.9".as_slice()];
//! assert_eq!(proxies.client_ip(via_proxy, header), "198.51.100.7".parse::<std::net::IpAddr>()?);
//!
//! // The same header sent straight from the internet is ignored.
//! let direct = "203.0.113.5".parse()?;
//! assert_eq!(proxies.client_ip(direct, header), direct);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

use crate::error::{Error, Result};

/// Which forwarding header carries the client chain. Only this one is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default; what nginx, HAProxy, AWS and
    /// most load balancers send).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:443";proto=https`.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name, lowercase.
    ///
    /// ```
    /// use sessionkit::proxy::ForwardedHeader;
    /// assert_eq!(ForwardedHeader::default().name(), "x-forwarded-for");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

/// The reverse proxies whose forwarding header is believed, and which header that is.
///
/// The default trusts no proxy: the client is always the connection's peer. See the
/// [module docs](self) for the resolution rule.
///
/// ```
/// use sessionkit::proxy::{ForwardedHeader, TrustedProxies};
///
/// let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8, fd00::/8")?
///     .with_header(ForwardedHeader::Forwarded);
/// assert!(proxies.contains("10.20.30.40".parse()?));
/// assert!(proxies.contains("::ffff:127.0.0.1".parse()?));
/// assert!(!proxies.contains("192.0.2.1".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Trusts no proxy (the same as [`TrustedProxies::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a list of addresses and CIDR ranges separated by commas and/or whitespace,
    /// such as `"10.0.0.0/8, 192.0.2.7 ::1 fd00::/8"`. An empty list trusts no proxy.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first item that is neither an address nor a range.
    pub fn parse(list: &str) -> Result<Self> {
        let mut proxies = Self::new();
        for item in list
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|s| !s.is_empty())
        {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip.to_canonical()),
                    Err(_) => {
                        return Err(Error::Config(format!(
                            "trusted proxy {item:?} is neither an IP address nor a CIDR range"
                        )));
                    }
                },
            };
            proxies.nets.push(net);
        }
        Ok(proxies)
    }

    /// Also trusts the proxy at `ip`.
    #[must_use]
    pub fn with_addr(mut self, ip: IpAddr) -> Self {
        self.nets.push(IpNet::from(ip.to_canonical()));
        self
    }

    /// Reads `header` instead of `X-Forwarded-For`.
    #[must_use]
    pub fn with_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// The header this configuration reads.
    pub fn header(&self) -> ForwardedHeader {
        self.header
    }

    /// Whether no proxy is trusted (forwarding headers are then always ignored).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy. An IPv4-mapped IPv6 address counts as its IPv4 one.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request whose connection came from `peer` and which
    /// carries `header_values`: every value (one per header line, in order) of the header
    /// [`header`](Self::header) names. See the [module docs](self) for the rule.
    ///
    /// Values that are not UTF-8 or not well-formed are handled, never a panic: the walk
    /// stops at them.
    pub fn client_ip<'a, I>(&self, peer: IpAddr, header_values: I) -> IpAddr
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let hops = forwarded_hops(self.header, header_values);
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = hop else {
                tracing::debug!(target: "sessionkit", header = self.header.name(), "forwarding header entry is not an address; using the last trusted hop");
                return client;
            };
            client = ip.to_canonical();
            if !self.contains(client) {
                return client;
            }
        }
        client
    }
}

impl FromStr for TrustedProxies {
    type Err = Error;

    /// As [`TrustedProxies::parse`].
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for TrustedProxies {
    /// The list in the form [`TrustedProxies::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

/// The hops a forwarding header lists, leftmost (the original client) first: `Some` address,
/// or `None` for an entry that is not one. Empty entries (`a,,b`, a blank header line) carry
/// nothing and are skipped.
///
/// Public for the fuzz target and for layers that want to inspect a chain; most code wants
/// [`TrustedProxies::client_ip`].
pub fn forwarded_hops<'a, I>(header: ForwardedHeader, header_values: I) -> Vec<Option<IpAddr>>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut hops = Vec::new();
    for value in header_values {
        match header {
            ForwardedHeader::XForwardedFor => {
                for entry in value.split(|&b| b == b',') {
                    let entry = entry.trim_ascii();
                    if !entry.is_empty() {
                        hops.push(std::str::from_utf8(entry).ok().and_then(parse_node));
                    }
                }
            }
            ForwardedHeader::Forwarded => {
                for element in split_unquoted(value, b',') {
                    if !element.trim_ascii().is_empty() {
                        hops.push(forwarded_for(element));
                    }
                }
            }
        }
    }
    hops
}

/// Splits `s` at `sep` outside of quoted strings (a backslash escapes the next byte inside
/// quotes). An unterminated quote runs to the end.
fn split_unquoted(s: &[u8], sep: u8) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in s.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The address in one `Forwarded` element's `for=` parameter. `None` when there is none,
/// when there are several, or when it is not an address (`unknown`, `_obfuscated`).
fn forwarded_for(element: &[u8]) -> Option<IpAddr> {
    let mut found = None;
    for pair in split_unquoted(element, b';') {
        let pair = pair.trim_ascii();
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            // A parameter without a value: the element is malformed.
            return None;
        };
        let (name, value) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
        if !name.eq_ignore_ascii_case(b"for") {
            continue;
        }
        if found.is_some() {
            return None;
        }
        found = Some(unquote(value)?);
    }
    let node = found?;
    parse_node(std::str::from_utf8(&node).ok()?)
}

/// A token as is, or a quoted string without its quotes and escapes. `None` for a quoted
/// string that does not end where the value does.
fn unquote(value: &[u8]) -> Option<Vec<u8>> {
    let Some(inner) = value.strip_prefix(b"\"") else {
        return (!value.contains(&b'"')).then(|| value.to_vec());
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => out.push(*bytes.next()?),
            b'"' => return bytes.as_slice().is_empty().then_some(out),
            _ => out.push(b),
        }
    }
    None
}

/// One node: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:443`. A port may be RFC 7239's obfuscated `_name`. Anything else
/// (`unknown`, `_hidden`, a host name, a zone id) is not an address.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim_ascii();
    if let Some(rest) = node.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let ip = addr.parse::<Ipv6Addr>().ok()?;
        return (after.is_empty() || after.strip_prefix(':').is_some_and(is_port))
            .then_some(IpAddr::V6(ip));
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    let (addr, port) = node.split_once(':')?;
    let ip = addr.parse::<Ipv4Addr>().ok()?;
    is_port(port).then_some(IpAddr::V4(ip))
}

fn is_port(port: &str) -> bool {
    match port.strip_prefix('_') {
        Some(obfuscated) => {
            !obfuscated.is_empty()
                && obfuscated
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        None => port.parse::<u16>().is_ok() && port.bytes().all(|b| b.is_ascii_digit()),
    }
}
