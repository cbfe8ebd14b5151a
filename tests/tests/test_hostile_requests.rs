//! A catalogue of malformed and malicious requests against the example site.
//!
//! Every request is written byte for byte on a raw TCP connection (so NUL, CR, LF and
//! non-UTF-8 bytes reach the server as sent). Each must get a fresh session or a clear 4xx,
//! never a 5xx or a dropped connection; a cookie that is not a well-formed id must not cause a
//! single store call; and afterwards the store's directory and Redis keyspace hold only names
//! built from 64-hex hashes, never text a client sent.
//!
//! Run: `cargo nextest run -p sessionkit-tests --test test_hostile_requests`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use sessionkit::proxy::{ForwardedHeader, TrustedProxies};
use sessionkit::{IpBinding, SessionId};
use sessionkit_examples::site::{SessionJson, StoreKind};
use sessionkit_tests::site::{Framework, Site, SiteKind};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One raw response.
#[derive(Debug)]
struct Raw {
    status: u16,
    set_cookies: Vec<String>,
    body: Vec<u8>,
}

/// Sends `GET path` (or `POST` with a form body) with `headers` exactly as given.
async fn raw_request(
    site: &Site,
    method: &str,
    path: &str,
    headers: &[Vec<u8>],
    body: &[u8],
) -> Raw {
    raw_request_from(site, LOOPBACK, method, path, headers, body).await
}

const LOOPBACK: &str = "127.0.0.1";

/// [`raw_request`] from the local address `from` (any of 127.0.0.0/8 on Linux).
async fn raw_request_from(
    site: &Site,
    from: &str,
    method: &str,
    path: &str,
    headers: &[Vec<u8>],
    body: &[u8],
) -> Raw {
    let addr = site.base.trim_start_matches("http://");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    let local: IpAddr = from.parse().expect("local address");
    socket
        .bind(SocketAddr::new(local, 0))
        .expect("bind a loopback address");
    let mut stream = socket
        .connect(addr.parse().expect("site address"))
        .await
        .expect("connect");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    for h in headers {
        req.extend_from_slice(h);
        req.extend_from_slice(b"\r\n");
    }
    if method == "POST" {
        req.extend_from_slice(b"Content-Type: application/x-www-form-urlencoded\r\n");
        req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    // The server may answer (and close) before it has read an oversized request: ignore a
    // failed write and read whatever came back.
    let _ = stream.write_all(&req).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server hung on {method} {path}");
    parse(&out)
}

fn parse(bytes: &[u8]) -> Raw {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let set_cookies = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("set-cookie")
                .then(|| v.trim().to_owned())
        })
        .collect();
    Raw {
        status,
        set_cookies,
        body: body.as_bytes().to_vec(),
    }
}

fn cookie(value: impl AsRef<[u8]>) -> Vec<u8> {
    let mut h = b"Cookie: ".to_vec();
    h.extend_from_slice(value.as_ref());
    h
}

fn forged() -> String {
    SessionId::generate().expect("rng").expose()
}

/// The `id` value a `Set-Cookie` header sets, if it sets one.
fn issued(set_cookies: &[String]) -> Option<String> {
    set_cookies.iter().find_map(|sc| {
        let value = sc.split(';').next()?.strip_prefix("id=")?;
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// One catalogue entry.
struct Case {
    name: &'static str,
    headers: Vec<Vec<u8>>,
    /// The cookie holds a well-formed id (forged or stale): a store lookup is allowed.
    well_formed: bool,
}

fn case(name: &'static str, headers: Vec<Vec<u8>>) -> Case {
    Case {
        name,
        headers,
        well_formed: false,
    }
}

fn well_formed(name: &'static str, headers: Vec<Vec<u8>>) -> Case {
    Case {
        name,
        headers,
        well_formed: true,
    }
}

fn catalogue(live: &str) -> Vec<Case> {
    let f = forged();
    let f42 = &f[..42];
    // A canonical id's last character carries 4 bits and 2 zero bits; `B` sets one of the
    // zero bits, so this is the right alphabet and length but not a canonical encoding.
    let non_canonical = format!("{}B", &SessionId::from_bytes([0; 32]).expose()[..42]);
    let live_key_hex = SessionId::parse(live).expect("live id").key().to_hex();
    let mut non_utf8 = b"id=".to_vec();
    non_utf8.extend_from_slice(&f.as_bytes()[..41]);
    non_utf8.extend_from_slice(&[0xff, 0xfe]);
    let mut latin1 = b"id=".to_vec();
    latin1.extend_from_slice(&f.as_bytes()[..42]);
    latin1.push(0xe9);
    vec![
        case("empty header", vec![cookie("")]),
        case("empty value", vec![cookie("id=")]),
        case("name only", vec![cookie("id")]),
        case("nameless pairs", vec![cookie("=;=;=x")]),
        case("only semicolons", vec![cookie(";;;; ;\t;")]),
        case("one short", vec![cookie(format!("id={f42}"))]),
        case("one long", vec![cookie(format!("id={f}A"))]),
        case(
            "10 kB id",
            vec![cookie(format!("id={}", "A".repeat(10_000)))],
        ),
        case(
            "60 kB header",
            vec![cookie(format!("pad={}; id={f}x", "b".repeat(60_000)))],
        ),
        case(
            "2000 cookies",
            vec![cookie(
                (0..2000)
                    .map(|i| format!("c{i}=v"))
                    .collect::<Vec<_>>()
                    .join("; ")
                    + "; id=x",
            )],
        ),
        case(
            "1 MB header",
            vec![cookie(format!("id={}", "A".repeat(1 << 20)))],
        ),
        case("non-UTF-8 id", vec![cookie(&non_utf8)]),
        case("latin-1 byte in id", vec![cookie(&latin1)]),
        case(
            "non-UTF-8 header",
            vec![cookie(b"\xff\xfe\xfd=\xc3\x28; id=\x80\x81")],
        ),
        case(
            "duplicated, same value",
            vec![cookie(format!("id={f}; id={f}"))],
        ),
        case(
            "duplicated, live and forged",
            vec![cookie(format!("id={f}; id={live}"))],
        ),
        case(
            "duplicated over two headers",
            vec![cookie(format!("id={live}")), cookie(format!("id={f}"))],
        ),
        case(
            "duplicated with a bare name",
            vec![cookie(format!("id={live}; id"))],
        ),
        case("upper-case name", vec![cookie(format!("ID={live}"))]),
        case("mixed-case name", vec![cookie(format!("Id={live}"))]),
        case(
            "__Host- prefixed name",
            vec![cookie(format!("__Host-id={live}"))],
        ),
        case(
            "__Secure- prefixed name",
            vec![cookie(format!("__Secure-id={live}"))],
        ),
        case(
            "case-variant prefixes",
            vec![cookie(format!(
                "__host-id={live}; __HOST-ID={live}; __secure-id={live}"
            ))],
        ),
        well_formed(
            "prefixed and plain, tossed",
            vec![cookie(format!("__Host-id={live}; id={f}; ID={live}"))],
        ),
        case(
            "duplicated, case-variant names",
            vec![cookie(format!("id={f}; Id={live}; iD={live}; id={live}"))],
        ),
        case(
            "names containing id",
            vec![cookie(format!("xid={live}; idx={live}; id_={live}"))],
        ),
        well_formed(
            "leading space before the name",
            vec![cookie(format!(" id={f}"))],
        ),
        well_formed("space before =", vec![cookie(format!("id ={f}"))]),
        well_formed("tab before the value", vec![cookie(format!("id=\t{f}"))]),
        case("slash", vec![cookie(format!("id={f42}/"))]),
        case(
            "dot-dot path",
            vec![cookie(format!("id=../../../../etc/passwd{}", &f[..20]))],
        ),
        case(
            "encoded path",
            vec![cookie(format!("id=..%2F..%2F{}", &f[..31]))],
        ),
        case(
            "backslash path",
            vec![cookie(format!("id=..\\..\\{}", &f[..37]))],
        ),
        case("NUL byte", vec![cookie(format!("id={f42}\0"))]),
        case("encoded NUL", vec![cookie(format!("id={}%00", &f[..40]))]),
        case("asterisk", vec![cookie(format!("id={f42}*"))]),
        case("glob", vec![cookie("id=*")]),
        case("open brace", vec![cookie(format!("id={f42}{{"))]),
        case("hash tag", vec![cookie(format!("id={{{}}}", &f[..41]))]),
        case(
            "bare CR",
            vec![cookie(format!("id={}\r{}", &f[..20], &f[20..42]))],
        ),
        case(
            "CRLF header injection",
            vec![cookie(format!("id={}\r\nX-Injected: 1", &f[..20]))],
        ),
        case(
            "Redis protocol text",
            vec![cookie("id=*1\r\n$4\r\nPING\r\n")],
        ),
        case(
            "encoded Redis protocol",
            vec![cookie("id=*1%0D%0A%244%0D%0APING%0D%0A")],
        ),
        case("inline Redis command", vec![cookie("id=FLUSHALL")]),
        case(
            "Redis command with spaces",
            vec![cookie("id=*3 $3 SET $1 k $1 v")],
        ),
        case("quoted id", vec![cookie(format!("id=\"{f}\""))]),
        case("standard base64 plus", vec![cookie(format!("id={f42}+"))]),
        case("padding", vec![cookie(format!("id={f42}="))]),
        case(
            "non-canonical encoding",
            vec![cookie(format!("id={non_canonical}"))],
        ),
        case(
            "Cyrillic look-alike",
            vec![cookie(format!("id={}а", &f[..42]))],
        ),
        case(
            "fullwidth letters",
            vec![cookie(format!("id={}ＡＢ", &f[..41]))],
        ),
        case(
            "store key as cookie",
            vec![cookie(format!("id={live_key_hex}"))],
        ),
        case("comma list", vec![cookie(format!("id={f},id={live}"))]),
        well_formed(
            "attributes in a request",
            vec![cookie(format!("id={f}; Path=/; HttpOnly; Max-Age=999999"))],
        ),
        well_formed(
            "all zero id",
            vec![cookie(format!(
                "id={}",
                SessionId::from_bytes([0; 32]).expose()
            ))],
        ),
        well_formed("all A", vec![cookie(format!("id={}", "A".repeat(43)))]),
        well_formed(
            "forged id of the right shape",
            vec![cookie(format!("id={f}"))],
        ),
        well_formed(
            "key hex cut to id length",
            vec![cookie(format!("id={}", &live_key_hex[..43]))],
        ),
        well_formed(
            "60 Cookie headers, one forged id",
            (0..60)
                .map(|i| cookie(format!("c{i}=v")))
                .chain([cookie(format!("id={f}"))])
                .collect(),
        ),
        case("the live id as a query parameter only", vec![]),
    ]
}

/// Every path component under `root` is a name the file store builds from hashes.
fn assert_only_hashed_names(root: &Path, forbidden: &[&str]) -> usize {
    let mut files = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let entry = entry.expect("entry");
            let name = entry.file_name().into_string().expect("UTF-8 file name");
            let hex = |n: usize| {
                name.len() == n
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            };
            assert!(
                matches!(name.as_str(), "sessions" | "owners" | ".lock") || hex(2) || hex(64),
                "unexpected name {:?} in the store directory",
                entry.path()
            );
            if entry.file_type().expect("type").is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
                let content = std::fs::read(entry.path()).expect("read");
                for bad in forbidden {
                    assert!(
                        !content.windows(bad.len()).any(|w| w == bad.as_bytes()),
                        "{bad:?} reached {:?}",
                        entry.path()
                    );
                }
            }
        }
    }
    files
}

/// Every Redis key (on the site's own server) is a prefix around a 64-hex hash.
async fn assert_only_hashed_redis_keys(site: &Site) -> usize {
    let Some(server) = site.redis() else { return 0 };
    let client = ::redis::Client::open(server.url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let keys: Vec<Vec<u8>> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let mut n = 0;
    for key in &keys {
        let key = std::str::from_utf8(key).expect("UTF-8 key");
        let inner = key
            .strip_prefix("sessionkit:owner:{")
            .or_else(|| key.strip_prefix("sessionkit:{"))
            .and_then(|k| k.strip_suffix('}'))
            .unwrap_or_else(|| panic!("unexpected Redis key {key:?}"));
        assert!(
            inner.len() == 64
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "unexpected Redis key {key:?}"
        );
        n += 1;
    }
    n
}

async fn hostile_catalogue(kind: SiteKind) {
    let site = Site::start(kind, |c| c).await;
    // A victim with a live, logged-in session whose id some cases replay in odd places.
    let mut victim = site.client();
    victim.post("/login", &[("username", "victim")]).await;
    victim.post("/cart", &[("item", "secret-cart-item")]).await;
    let live = victim.cookie.clone().expect("victim cookie");
    let cases = catalogue(&live);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut issued_ids = Vec::new();
    for case in &cases {
        let path = if case.name.contains("query parameter") {
            format!("/api/session?id={live}")
        } else {
            "/api/session".to_owned()
        };
        let before = site.store.counts();
        let r = raw_request(&site, "GET", &path, &case.headers, b"").await;
        let after = site.store.counts();
        assert!(
            r.status == 200 || matches!(r.status, 400 | 431),
            "{}: status {} {:?}",
            case.name,
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            after.writes(),
            before.writes(),
            "{}: a read wrote",
            case.name
        );
        if !case.well_formed {
            assert_eq!(
                after, before,
                "{}: a malformed cookie reached the store",
                case.name
            );
        }
        if r.status == 200 {
            let state: SessionJson = serde_json::from_slice(&r.body).expect("json");
            assert_eq!(state.visits, 0, "{}", case.name);
            assert_eq!(state.user, None, "{}: got someone's session", case.name);
            assert!(state.cart.is_empty(), "{}", case.name);
        }
        // A writing request: a fresh session with a new id, or the same clear error.
        let before = site.store.counts();
        let w = raw_request(&site, "POST", "/cart", &case.headers, b"item=tea&id=x").await;
        assert!(
            w.status == 303 || (r.status != 200 && matches!(w.status, 400 | 431)),
            "{}: status {} {:?}",
            case.name,
            w.status,
            String::from_utf8_lossy(&w.body)
        );
        if !case.well_formed {
            assert_eq!(
                site.store.counts().load,
                before.load,
                "{}: reached the store",
                case.name
            );
        }
        if w.status == 303 {
            let id = issued(&w.set_cookies)
                .unwrap_or_else(|| panic!("{}: no new session: {w:?}", case.name));
            assert!(SessionId::parse(&id).is_some(), "{}: {id:?}", case.name);
            assert_ne!(id, live, "{}", case.name);
            for h in &case.headers {
                assert!(
                    !String::from_utf8_lossy(h).contains(&id),
                    "{}: the client chose its id",
                    case.name
                );
            }
            issued_ids.push(id);
        }
    }
    assert!(
        issued_ids.len() >= 30,
        "only {} cases got a session",
        issued_ids.len()
    );
    // The victim's session is untouched by all of it.
    let state = victim.state().await;
    assert_eq!(state.user.as_deref(), Some("victim"));
    assert_eq!(state.cart, vec!["secret-cart-item".to_owned()]);

    let forbidden = ["passwd", "PING", "FLUSHALL", "X-Injected", "..", &live[..]];
    let files = if matches!(
        kind.store,
        StoreKind::MemoryFile | StoreKind::RedisFile | StoreKind::File
    ) {
        assert_only_hashed_names(site.dir(), &forbidden)
    } else {
        0
    };
    let keys = assert_only_hashed_redis_keys(&site).await;
    if matches!(
        kind.store,
        StoreKind::MemoryFile | StoreKind::File | StoreKind::RedisFile
    ) {
        assert!(
            files > issued_ids.len(),
            "{files} files for {} sessions",
            issued_ids.len()
        );
    }
    if site.redis().is_some() {
        assert!(
            keys > issued_ids.len(),
            "{keys} keys for {} sessions",
            issued_ids.len()
        );
    }
}

/// Replays of ids that were valid once: after logout, after login regeneration, after the
/// rotation grace window, after logout-everywhere and after the idle timeout. Each gets a
/// fresh, empty session and never the old one's data.
async fn replayed_ids(kind: SiteKind) {
    let site = Site::start(kind, |c| {
        c.with_idle_timeout(Duration::from_secs(600))
            .with_rotate_after(Some(Duration::from_secs(60)))
            .with_rotation_grace(Duration::from_secs(5))
    })
    .await;
    let mut stale = Vec::new();

    let mut a = site.client();
    a.get("/").await;
    let pre_login = a.cookie.clone().expect("cookie");
    a.post("/login", &[("username", "alice")]).await;
    stale.push(("after login regeneration", pre_login));
    let logged_in = a.cookie.clone().expect("cookie");
    a.post("/logout", &[]).await;
    stale.push(("after logout", logged_in));

    let mut b = site.client();
    b.post("/login", &[("username", "bob")]).await;
    let before_rotation = b.cookie.clone().expect("cookie");
    site.clock.advance(Duration::from_secs(61));
    b.get("/").await;
    assert_ne!(
        b.cookie.as_deref(),
        Some(before_rotation.as_str()),
        "rotated"
    );
    site.clock.advance(Duration::from_secs(6));
    stale.push(("after the rotation grace window", before_rotation));

    let mut c1 = site.client();
    let mut c2 = site.client();
    c1.post("/login", &[("username", "carol")]).await;
    c2.post("/login", &[("username", "carol")]).await;
    let other_device = c2.cookie.clone().expect("cookie");
    c1.post("/logout-everywhere", &[]).await;
    stale.push(("after logout everywhere", other_device));

    let mut d = site.client();
    d.post("/login", &[("username", "dave")]).await;
    let idle = d.cookie.clone().expect("cookie");
    site.clock.advance(Duration::from_secs(601));
    stale.push(("after the idle timeout", idle));

    // Bob keeps his session throughout (he was active before the idle wait).
    for (what, id) in stale {
        let mut replay = site.client();
        replay.cookie = Some(id.clone());
        let state = replay.state().await;
        assert_eq!(state.user, None, "replayed {what}");
        assert_eq!(state.visits, 0, "replayed {what}");
        let r = replay.post("/cart", &[("item", "x")]).await;
        assert_eq!(r.status, 303, "replayed {what}");
        assert_ne!(
            replay.cookie.as_deref(),
            Some(id.as_str()),
            "replayed {what} kept the id"
        );
        assert!(replay.cookie.is_some(), "replayed {what}: no fresh session");
    }
}

/// The victim's address, as the trusted proxy reports it.
const VICTIM: &str = "198.51.100.7";

/// Forwarding headers a client may send (both kinds, whichever the site reads). None of
/// them, sent through the proxy, resolves to the victim's address.
fn forwarding_catalogue() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let xff = |v: &[u8]| [b"X-Forwarded-For: ".as_slice(), v].concat();
    let fwd = |v: &[u8]| [b"Forwarded: ".as_slice(), v].concat();
    let victim_then = |tail: &str| format!("{VICTIM}, {tail}").into_bytes();
    vec![
        ("xff empty", vec![xff(b"")]),
        ("xff commas only", vec![xff(b" , ,, ")]),
        ("xff unknown", vec![xff(b"unknown")]),
        (
            "xff victim then garbage",
            vec![xff(&victim_then("not-an-ip"))],
        ),
        (
            "xff victim then port too big",
            vec![xff(&victim_then("192.0.2.1:99999"))],
        ),
        (
            "xff victim then bracketed v4",
            vec![xff(&victim_then("[192.0.2.1]"))],
        ),
        (
            "xff victim then open bracket",
            vec![xff(&victim_then("[2001:db8::1"))],
        ),
        (
            "xff victim then zone id",
            vec![xff(&victim_then("fe80::1%eth0"))],
        ),
        (
            "xff victim then integer",
            vec![xff(&victim_then("3325256711"))],
        ),
        (
            "xff victim then octal",
            vec![xff(&victim_then("0306.063.0144.07"))],
        ),
        (
            "xff victim then hex",
            vec![xff(&victim_then("0xc6.0x33.0x64.0x7"))],
        ),
        (
            "xff victim then obfuscated",
            vec![xff(&victim_then("_hidden"))],
        ),
        (
            "xff victim then tab soup",
            vec![xff(&victim_then("\t,\t1.2.3.4\t:\t5"))],
        ),
        (
            "xff non-utf8",
            vec![xff(&[VICTIM.as_bytes(), b", 192.0.2.\xff"].concat())],
        ),
        ("xff latin1", vec![xff(b"192.0.2.1\xe9")]),
        (
            "xff 4000 entries",
            vec![xff("192.0.2.1, ".repeat(4000).as_bytes())],
        ),
        (
            "xff 90 lines",
            (0..90)
                .map(|i| xff(format!("192.0.2.{i}").as_bytes()))
                .collect(),
        ),
        (
            "xff victim on an earlier line, garbage last",
            vec![xff(VICTIM.as_bytes()), xff(b"?")],
        ),
        (
            "xff v6 with port, no brackets",
            vec![xff(&victim_then("2001:db8::1:443:1"))],
        ),
        (
            "xff mapped v6 victim in brackets, garbage",
            vec![xff(format!("[::ffff:{VICTIM}]:1, ]").as_bytes())],
        ),
        ("forwarded empty", vec![fwd(b"")]),
        ("forwarded separators only", vec![fwd(b";;;,,,;")]),
        ("forwarded unknown", vec![fwd(b"for=unknown")]),
        (
            "forwarded obfuscated",
            vec![fwd(b"for=_hidden;proto=https")],
        ),
        ("forwarded no for", vec![fwd(b"proto=https;by=10.0.0.1")]),
        (
            "forwarded victim then unterminated quote",
            vec![fwd(format!("for={VICTIM}, for=\"192.0.2.1").as_bytes())],
        ),
        (
            "forwarded victim then two fors",
            vec![fwd(
                format!("for={VICTIM}, for=1.2.3.4;for=5.6.7.8").as_bytes()
            )],
        ),
        (
            "forwarded victim then escaped quotes",
            vec![fwd(format!("for={VICTIM}, for=\"\\\"\\\\\"").as_bytes())],
        ),
        (
            "forwarded victim then quote soup",
            vec![fwd(format!("for={VICTIM}, \"\"\"\"\"").as_bytes())],
        ),
        (
            "forwarded victim then bare name",
            vec![fwd(format!("for={VICTIM}, for").as_bytes())],
        ),
        (
            "forwarded victim then empty quoted",
            vec![fwd(format!("for={VICTIM}, for=\"\"").as_bytes())],
        ),
        (
            "forwarded victim then obfuscated port",
            vec![fwd(
                format!("for={VICTIM}, for=\"[2001:db8::1]:_\"").as_bytes()
            )],
        ),
        (
            "forwarded non-utf8",
            vec![fwd(
                &[b"for=", VICTIM.as_bytes(), b", for=\xff\xfe"].concat()
            )],
        ),
        (
            "forwarded 2000 elements",
            vec![fwd("for=192.0.2.1;proto=http, ".repeat(2000).as_bytes())],
        ),
        (
            "both headers, garbage in each",
            vec![
                xff(&victim_then("x")),
                fwd(format!("for={VICTIM}, for=x").as_bytes()),
            ],
        ),
    ]
}

/// Forwarding-header parsing under hostile input, on a site that binds sessions to the IP and
/// believes the proxy at 127.0.0.1, once for each header kind. Through the proxy, no malformed
/// chain yields the victim's address, a 5xx, a panic or a dropped connection; sent directly
/// from 127.0.0.3, even the victim's address in a well-formed header is ignored.
async fn forwarding_headers(kind: SiteKind) {
    for header in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
        let proxies = TrustedProxies::parse(LOOPBACK)
            .expect("list")
            .with_header(header);
        let site =
            Site::start_behind_proxies(kind, proxies, |c| c.with_ip_binding(IpBinding::Exact))
                .await;
        let mut victim = site.client();
        let via_proxy = match header {
            ForwardedHeader::Forwarded => ("forwarded".to_owned(), format!("for={VICTIM}")),
            _ => ("x-forwarded-for".to_owned(), VICTIM.to_owned()),
        };
        victim.headers.push(via_proxy.clone());
        victim.post("/login", &[("username", "victim")]).await;
        let live = victim.cookie.clone().expect("victim cookie");
        let spoof = format!("{}: {}", via_proxy.0, via_proxy.1).into_bytes();
        let mut cases: Vec<(&str, &str, Vec<Vec<u8>>)> = forwarding_catalogue()
            .into_iter()
            .map(|(name, headers)| (LOOPBACK, name, headers))
            .collect();
        cases.push((
            "127.0.0.3",
            "direct, the victim's address",
            vec![spoof.clone()],
        ));
        cases.push((
            "127.0.0.3",
            "direct, victim twice",
            vec![spoof.clone(), spoof],
        ));
        for (from, name, mut headers) in cases {
            headers.push(cookie(format!("id={live}")));
            // Every case is within the HTTP parser's limits, so each reaches the layer.
            let r = raw_request_from(&site, from, "GET", "/api/session", &headers, b"").await;
            assert_eq!(
                r.status,
                200,
                "{header:?} {name}: {:?}",
                String::from_utf8_lossy(&r.body)
            );
            let state: SessionJson = serde_json::from_slice(&r.body).expect("json");
            assert_eq!(
                state.user, None,
                "{header:?} {name}: got the victim's session"
            );
            let w = raw_request_from(&site, from, "POST", "/cart", &headers, b"item=x").await;
            assert_eq!(w.status, 303, "{header:?} {name}: {w:?}");
            let id = issued(&w.set_cookies)
                .unwrap_or_else(|| panic!("{header:?} {name}: no fresh session: {w:?}"));
            assert_ne!(id, live, "{header:?} {name}");
        }
        let state = victim.state().await;
        assert_eq!(state.user.as_deref(), Some("victim"), "{header:?}");
        assert!(state.cart.is_empty(), "{header:?}");
    }
}

macro_rules! hostile_tests {
    ($($module:ident => $kind:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn hostile_catalogue() {
                super::hostile_catalogue($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn replayed_ids() {
                super::replayed_ids($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn forwarding_headers() {
                super::forwarding_headers($kind).await;
            }
        }
    )*};
}

hostile_tests! {
    axum_memory => Framework::Axum.on(StoreKind::Memory),
    axum_memory_file => Framework::Axum.on(StoreKind::MemoryFile),
    axum_redis => Framework::Axum.on(StoreKind::Redis),
    axum_redis_file => Framework::Axum.on(StoreKind::RedisFile),
    axum_memory_sqlite => Framework::Axum.on(StoreKind::MemorySqlite),
    actix_memory => Framework::Actix.on(StoreKind::Memory),
    actix_memory_file => Framework::Actix.on(StoreKind::MemoryFile),
    actix_redis => Framework::Actix.on(StoreKind::Redis),
    actix_redis_file => Framework::Actix.on(StoreKind::RedisFile),
    actix_memory_sqlite => Framework::Actix.on(StoreKind::MemorySqlite),
}
