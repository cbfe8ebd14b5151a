//! The `sessionkit` binary against stores filled by the example site over real HTTP, and the site
//! afterwards: `count`, `inspect --owner` / `--key`, `purge --owner` (the site then shows those
//! visitors logged out), `purge --expired`, `purge --all --yes`, `migrate` from files to a
//! private redis-server and to a private Redis Cluster (a site started on the target keeps every
//! visitor logged in with their cart), and `migrate` while the site runs on a `MigratingStore`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::collections::HashSet;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use sessionkit::store::{Listing, MigratingStore, Store};
use sessionkit::{SessionConfig, SessionId};
use sessionkit_backends::{FileStore, RedisConfig, RedisStore};
use sessionkit_examples::site::{SessionJson, StoreKind};
use sessionkit_tests::redis_server::{RedisCluster, RedisServer};
use sessionkit_tests::site::{Client, Site};

/// Runs the binary (on the blocking pool: the site answers on the runtime meanwhile).
async fn sessionkit(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sessionkit"))
            .args(&args)
            .output()
            .expect("run sessionkit")
    })
    .await
    .unwrap()
}

/// The binary's stdout, after checking it succeeded.
async fn ok(args: &[&str]) -> String {
    let out = sessionkit(args).await;
    assert!(
        out.status.success(),
        "sessionkit {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(visits: u64, user: Option<&str>, cart: &[&str]) -> SessionJson {
    SessionJson {
        visits,
        user: user.map(str::to_owned),
        cart: cart.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// The store key of a visitor's current cookie, as `inspect` prints it.
fn key_hex(c: &Client) -> String {
    SessionId::parse(c.cookie.as_deref().expect("a cookie"))
        .expect("a well-formed id")
        .key()
        .to_hex()
}

/// What a site's visitors did, to check against any site later: each visitor and the
/// `/api/session` it must see.
struct Crowd {
    visitors: Vec<(Client, SessionJson)>,
}

impl Crowd {
    /// Five visitors: two anonymous (one with a cart), alice in two browsers, bob with a cart.
    async fn browse(site: &Site) -> Crowd {
        let mut visitors = Vec::new();
        let mut anon = site.client();
        anon.get("/").await;
        anon.post("/cart", &[("item", "tea")]).await;
        visitors.push((anon, json(1, None, &["tea"])));
        let mut idle = site.client();
        idle.get("/").await;
        idle.get("/").await;
        visitors.push((idle, json(2, None, &[])));
        for _ in 0..2 {
            let mut alice = site.client();
            alice.get("/").await;
            alice.post("/login", &[("username", "alice")]).await;
            visitors.push((alice, json(1, Some("alice"), &[])));
        }
        let mut bob = site.client();
        bob.post("/login", &[("username", "bob")]).await;
        bob.post("/cart", &[("item", "cake")]).await;
        visitors.push((bob, json(0, Some("bob"), &["cake"])));
        let crowd = Crowd { visitors };
        for (c, want) in &crowd.visitors {
            assert_eq!(&c.clone().state().await, want, "as browsed");
        }
        crowd
    }

    fn of(&self, user: &str) -> Vec<&Client> {
        self.visitors
            .iter()
            .filter(|(_, want)| want.user.as_deref() == Some(user))
            .map(|(c, _)| c)
            .collect()
    }

    /// Every visitor, with their cookie, on `site`: `logged_out` users see a fresh session,
    /// everyone else what they left.
    async fn check_on(&self, site: &Site, logged_out: &[&str]) {
        for (c, want) in &self.visitors {
            let mut there = site.client();
            there.cookie.clone_from(&c.cookie);
            let seen = there.state().await;
            if want
                .user
                .as_deref()
                .is_some_and(|u| logged_out.contains(&u))
            {
                assert_eq!(seen, json(0, None, &[]), "{:?} is logged out", want.user);
            } else {
                assert_eq!(&seen, want, "kept");
            }
        }
    }
}

fn file_url(site: &Site) -> String {
    format!("file:{}", site.dir().display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_inspect_and_purge_an_owner_of_a_file_site() {
    let site = Site::start(StoreKind::File, |c| c).await;
    let crowd = Crowd::browse(&site).await;
    let url = file_url(&site);

    assert_eq!(ok(&["--store", &url, "count"]).await, "5\n");

    let listing = ok(&["--store", &url, "inspect", "--owner", "alice"]).await;
    assert_eq!(listing.matches("session ").count(), 2, "{listing}");
    for c in crowd.of("alice") {
        assert!(listing.contains(&key_hex(c)), "{listing}");
    }
    assert!(listing.contains("owner: alice"), "{listing}");
    assert!(!listing.contains("owner: bob"), "{listing}");

    assert_eq!(
        ok(&["--store", &url, "purge", "--owner", "alice"]).await,
        "2\n"
    );
    crowd.check_on(&site, &["alice"]).await;
    assert_eq!(ok(&["--store", &url, "count"]).await, "3\n");
    assert_eq!(
        ok(&["--store", &url, "inspect", "--owner", "alice"]).await,
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_a_key_prints_dates_and_values() {
    let site = Site::start(StoreKind::File, |c| c).await;
    let crowd = Crowd::browse(&site).await;
    let url = file_url(&site);
    let bob = crowd.of("bob")[0];
    let hex = key_hex(bob);

    let shown = ok(&["--store", &url, "inspect", "--key", &hex, "--values"]).await;
    assert_eq!(shown.matches("session ").count(), 1, "{shown}");
    assert!(shown.contains(&format!("key: {hex}")), "{shown}");
    assert!(shown.contains("owner: bob"), "{shown}");
    assert!(shown.contains("\"site.cart\":[\"cake\"]"), "{shown}");
    // created / last seen / expires as RFC 3339 UTC dates, never as raw milliseconds.
    for field in ["created", "last seen", "expires"] {
        let line = shown
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{field}: ")))
            .unwrap_or_else(|| panic!("no {field} line: {shown}"));
        let date = line.split_once(": ").unwrap().1;
        assert!(is_rfc3339_utc(date), "{field}: {date:?}");
    }
    assert!(!shown.contains("ms since the epoch"), "{shown}");

    // A key no session has lists nothing; a malformed one is a usage error.
    let unknown = SessionId::generate().unwrap().key().to_hex();
    assert_eq!(
        ok(&["--store", &url, "inspect", "--key", &unknown]).await,
        ""
    );
    let bad = sessionkit(&["--store", &url, "inspect", "--key", "xyz"]).await;
    assert_eq!(bad.status.code(), Some(2));
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && s.ends_with('Z')
        && (b.len() == 20 || (b[19] == b'.' && digits(20..b.len() - 1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_expired_removes_only_sessions_past_their_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let files: Arc<dyn Store> = Arc::new(FileStore::open(dir.path()).await.unwrap());
    // Two sites on one directory: one with a 1 s idle timeout, one with the default.
    let short = Site::start_on_store(Arc::clone(&files), |c| {
        c.with_idle_timeout(Duration::from_secs(1))
    })
    .await;
    let long = Site::start_on_store(files, |c| c).await;
    let mut leaving = Vec::new();
    for _ in 0..2 {
        let mut c = short.client();
        c.get("/").await;
        leaving.push(c);
    }
    let mut staying = Vec::new();
    for _ in 0..3 {
        let mut c = long.client();
        c.get("/").await;
        c.post("/cart", &[("item", "tea")]).await;
        staying.push(c);
    }
    let url = format!("file:{}", dir.path().display());
    assert_eq!(ok(&["--store", &url, "count"]).await, "5\n");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    assert_eq!(ok(&["--store", &url, "count"]).await, "3\n");
    assert_eq!(ok(&["--store", &url, "purge", "--expired"]).await, "2\n");
    assert_eq!(
        ok(&["--store", &url, "purge", "--expired"]).await,
        "0\n",
        "the expired sessions were removed, not just hidden"
    );
    for c in &mut staying {
        assert_eq!(c.state().await, json(1, None, &["tea"]));
    }
    assert_eq!(ok(&["--store", &url, "count"]).await, "3\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_all_needs_yes_then_ends_every_session() {
    let site = Site::start(StoreKind::File, |c| c).await;
    let crowd = Crowd::browse(&site).await;
    let url = file_url(&site);

    let refused = sessionkit(&["--store", &url, "purge", "--all"]).await;
    assert_eq!(refused.status.code(), Some(2), "usage error");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--yes"),
        "{refused:?}"
    );
    assert!(refused.stdout.is_empty());
    assert_eq!(
        ok(&["--store", &url, "count"]).await,
        "5\n",
        "nothing ended"
    );
    crowd.check_on(&site, &[]).await;

    assert_eq!(
        ok(&["--store", &url, "purge", "--all", "--yes"]).await,
        "5\n"
    );
    assert_eq!(ok(&["--store", &url, "count"]).await, "0\n");
    for (c, _) in &crowd.visitors {
        let mut there = c.clone();
        assert_eq!(there.state().await, json(0, None, &[]), "ended");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_files_to_redis_keeps_every_visitor_logged_in() {
    let files = Site::start(StoreKind::File, |c| c).await;
    let crowd = Crowd::browse(&files).await;
    let redis = RedisServer::start();
    let from = file_url(&files);
    let to = redis.url();

    let out = ok(&["--store", &from, "migrate", "--to", &to]).await;
    assert!(out.starts_with("copied 5, skipped 0"), "{out}");
    assert_eq!(ok(&["--store", &to, "count"]).await, "5\n");
    drop(files);

    // The site's settings are the defaults (no secret: a cookie is an id whose hash is the
    // key), so the same cookies are valid on a site started on Redis.
    let site = Site::start_on_redis(StoreKind::Redis, &to, |c| c).await;
    crowd.check_on(&site, &[]).await;
    // And the site carries on from there: bob's cart grows, in Redis.
    let mut bob = site.client();
    bob.cookie.clone_from(&crowd.of("bob")[0].cookie);
    bob.post("/cart", &[("item", "jam")]).await;
    assert_eq!(bob.state().await, json(0, Some("bob"), &["cake", "jam"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_migrate_count_inspect_and_purge() {
    let files = Site::start(StoreKind::File, |c| c).await;
    let crowd = Crowd::browse(&files).await;
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let nodes: Vec<String> = cluster
        .urls()
        .iter()
        .map(|u| u.trim_start_matches("redis://").to_owned())
        .collect();
    let to = format!("redis+cluster://{}", nodes.join(","));

    let out = ok(&["--store", &file_url(&files), "migrate", "--to", &to]).await;
    assert!(out.starts_with("copied 5, skipped 0"), "{out}");
    drop(files);
    let store: Arc<dyn Store> = Arc::new(
        RedisStore::connect(RedisConfig::cluster(cluster.urls()))
            .await
            .unwrap(),
    );
    let site = Site::start_on_store(store, |c| c).await;
    crowd.check_on(&site, &[]).await;

    assert_eq!(ok(&["--store", &to, "count"]).await, "5\n");
    let listing = ok(&["--store", &to, "inspect", "--owner", "alice"]).await;
    assert_eq!(listing.matches("session ").count(), 2, "{listing}");
    for c in crowd.of("alice") {
        assert!(listing.contains(&key_hex(c)), "{listing}");
    }
    assert_eq!(
        ok(&["--store", &to, "purge", "--owner", "alice"]).await,
        "2\n"
    );
    crowd.check_on(&site, &["alice"]).await;
    assert_eq!(ok(&["--store", &to, "count"]).await, "3\n");
}

/// The site runs on `MigratingStore<Redis, files>` while visitors keep adding to their carts,
/// some log in and some log out, and `sessionkit migrate` copies the files into Redis meanwhile.
/// Afterwards a site on Redis alone shows every visitor everything they wrote, and the
/// sessions that ended during the copy stay ended (a copy of a session scanned before its
/// logout is dropped again).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_while_the_site_runs_on_a_migrating_store() {
    const VISITORS: usize = 16;
    const ITEMS: usize = 6;
    let files = Site::start(StoreKind::File, |c| c).await;
    let mut visitors = Vec::new();
    for _ in 0..VISITORS {
        let mut c = files.client();
        c.get("/").await;
        visitors.push(c);
    }
    let from = file_url(&files);
    let old = FileStore::open(files.dir()).await.unwrap();
    let redis = RedisServer::start();
    let new = RedisStore::open(&redis.url()).await.unwrap();
    let migrating: Arc<dyn Store> = Arc::new(MigratingStore::new(new.clone(), old.clone()));
    let site = Site::start_on_store(migrating, |c: SessionConfig| c).await;
    for c in &mut visitors {
        let cookie = c.cookie.take();
        *c = site.client();
        c.cookie = cookie;
    }

    let barrier = Arc::new(tokio::sync::Barrier::new(VISITORS + 1));
    let mut tasks = Vec::new();
    for (i, mut c) in visitors.into_iter().enumerate() {
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let before = c.cookie.clone();
            for j in 0..ITEMS {
                if i % 4 == 1 && j == ITEMS / 2 {
                    c.post("/login", &[("username", &format!("user{i}"))]).await;
                }
                let r = c.post("/cart", &[("item", &format!("v{i}-{j}"))]).await;
                assert_eq!(r.status, 303, "{r:?}");
            }
            let last = c.cookie.clone();
            let ended = i % 4 == 3;
            if ended {
                c.post("/logout", &[]).await;
            }
            (i, before, last, ended)
        }));
    }
    let drain = {
        let (from, to, barrier) = (from.clone(), redis.url(), Arc::clone(&barrier));
        tokio::spawn(async move {
            barrier.wait().await;
            let mut runs = Vec::new();
            for _ in 0..3 {
                runs.push(ok(&["--store", &from, "migrate", "--to", &to]).await);
            }
            runs
        })
    };
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    let runs = drain.await.unwrap();
    // A last pass once the traffic stopped: everything Old still holds is in New.
    let last = ok(&["--store", &from, "migrate", "--to", &redis.url()]).await;
    assert!(last.starts_with("copied 0,"), "{runs:?} then {last}");
    let new_keys: HashSet<String> = scan(&new).await;
    for key in scan(&old).await {
        assert!(new_keys.contains(&key), "{key} left behind in Old");
    }
    drop(site);

    // Deploy step two: Redis alone.
    let site = Site::start_on_redis(StoreKind::Redis, &redis.url(), |c| c).await;
    let mut live = HashSet::new();
    for (i, before, last, ended) in done {
        let mut there = site.client();
        there.cookie.clone_from(&last);
        let seen = there.state().await;
        if ended {
            assert_eq!(seen, json(0, None, &[]), "visitor {i} logged out");
            let mut first = site.client();
            first.cookie = before;
            assert_eq!(first.state().await, json(0, None, &[]), "visitor {i}");
            continue;
        }
        let cart: Vec<String> = (0..ITEMS).map(|j| format!("v{i}-{j}")).collect();
        let user = (i % 4 == 1).then(|| format!("user{i}"));
        assert_eq!(
            seen,
            SessionJson {
                visits: 1,
                user: user.clone(),
                cart,
            },
            "visitor {i}: every write kept"
        );
        if user.is_some() {
            let mut pre_login = site.client();
            pre_login.cookie = before;
            assert_eq!(
                pre_login.state().await,
                json(0, None, &[]),
                "visitor {i}'s pre-login id stays dead"
            );
        }
        live.insert(key_hex(&there));
    }
    assert_eq!(
        new_keys, live,
        "New holds each live visitor once, and nothing else"
    );
}

/// The hex keys of every live session `store` lists.
async fn scan(store: &impl Listing) -> HashSet<String> {
    let mut keys = HashSet::new();
    let mut cursor = None;
    loop {
        let page = store.scan(cursor.as_ref(), 100).await.unwrap();
        keys.extend(page.sessions.iter().map(|(k, _)| k.to_hex()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return keys,
        }
    }
}
