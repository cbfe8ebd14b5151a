//! A bounded load generator against the example site (the axum `web` site or the actix-web
//! `web-actix` one, see [`Framework`](crate::site::Framework)), started in-process on a loopback port: mixed reads,
//! writes, logins, logouts and rotations over many sessions. It stops by itself after a number
//! of requests (or a time limit) and reports throughput, latency percentiles, errors and the
//! process's resident memory over time.
//!
//! The binary `soak` (`cargo run --release -p sessionkit-tests --bin soak -- --help`) and the
//! quick test `tests/tests/test_soak.rs` both call [`run`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::site::{Site, SiteKind};

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The site: its framework and the store setup under it.
    pub site: SiteKind,
    /// Requests to send in total.
    pub requests: u64,
    /// Distinct visitors (each keeps its own cookie).
    pub sessions: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Stop early after this long, whatever the count.
    pub max_time: Duration,
    /// The site's `rotate_after` (on the wall clock: the soak runs on the system clock so
    /// that every store expires entries at the times the manager set).
    pub rotate_after: Duration,
}

impl SoakConfig {
    /// The quick form, the same on both sites: 5 000 requests over 500 sessions, 16 in flight,
    /// rotating after 1 s so that rotations happen within a run of a few seconds. A bare
    /// [`StoreKind`](sessionkit_examples::site::StoreKind) means the axum site,
    /// `Framework::Actix.on(store)` the actix-web one.
    ///
    /// The size is CI's budget: a file-backed run leaves a directory and files per session id
    /// it created, and removing them costs as much as the run on a disk with online discard
    /// ([`SoakReport::teardown`]; the earlier 20 000-request form spent over a minute there per
    /// file-backed test). The full form ([`SoakConfig::full`]) is the load figure.
    pub fn quick(site: impl Into<SiteKind>) -> Self {
        SoakConfig {
            site: site.into(),
            requests: 5_000,
            sessions: 500,
            concurrency: 16,
            max_time: Duration::from_secs(600),
            rotate_after: Duration::from_secs(1),
        }
    }

    /// The full form: 10^6 requests over 10^5 sessions.
    pub fn full(site: impl Into<SiteKind>) -> Self {
        SoakConfig {
            requests: 1_000_000,
            sessions: 100_000,
            concurrency: 32,
            max_time: Duration::from_secs(3600),
            rotate_after: Duration::from_secs(30),
            ..Self::quick(site)
        }
    }
}

/// One resident-memory sample.
#[derive(Debug, Clone, Copy)]
pub struct MemorySample {
    /// Seconds since the start.
    pub secs: f64,
    /// Requests completed by then.
    pub requests: u64,
    /// Resident set size in MiB.
    pub rss_mib: f64,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// The site: framework and store setup.
    pub site: SiteKind,
    /// Requests completed.
    pub requests: u64,
    /// Distinct visitors.
    pub sessions: usize,
    /// Requests with an unexpected status or a transport error.
    pub errors: u64,
    /// The first few errors, for the log.
    pub error_samples: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Slowest request.
    pub max: Duration,
    /// Logins, logouts and id changes (login regeneration plus rotation) seen.
    pub logins: u64,
    /// Logouts sent.
    pub logouts: u64,
    /// Responses that carried a new id for a visitor that already had one.
    pub id_changes: u64,
    /// Resident memory over time.
    pub memory: Vec<MemorySample>,
    /// Stopping the site and removing its temporary directory, after the run (not in
    /// `elapsed`). With a file tier this is most of a quick run's cost on a busy disk: the
    /// directory holds a few files per session id the run created (rotations included).
    pub teardown: Duration,
}

impl SoakReport {
    /// Requests per second.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "{:?} {:?}: {} requests over {} sessions in {:.1} s = {:.0} req/s; p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; errors {}; logins {}, logouts {}, id changes {}; RSS {}; teardown {:.1} s",
            self.site.framework,
            self.site.store,
            self.requests,
            self.sessions,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3,
            self.errors,
            self.logins,
            self.logouts,
            self.id_changes,
            self.memory
                .iter()
                .map(|m| format!("{:.0}s/{}k:{:.0}MiB", m.secs, m.requests / 1000, m.rss_mib))
                .collect::<Vec<_>>()
                .join(" "),
            self.teardown.as_secs_f64(),
        )
    }
}

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

/// A small xorshift generator: the mix needs no cryptographic randomness.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    errors: AtomicU64,
    logins: AtomicU64,
    logouts: AtomicU64,
    id_changes: AtomicU64,
}

/// Runs the soak and reports. Panics only on harness failures (bind, Redis start).
pub async fn run(config: SoakConfig) -> SoakReport {
    let site = Site::start(config.site, |c| {
        c.with_clock(sessionkit::manager::SystemClock)
            .with_idle_timeout(Duration::from_secs(7 * 24 * 3600))
            .with_rotate_after(Some(config.rotate_after))
            .with_rotation_grace(Duration::from_secs(2))
    })
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(config.concurrency)
        .build()
        .expect("client");
    let slots: Arc<Vec<tokio::sync::Mutex<Option<String>>>> = Arc::new(
        (0..config.sessions)
            .map(|_| tokio::sync::Mutex::new(None))
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let counters = Arc::new(Counters::default());
    let samples = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let start = Instant::now();
    let deadline = start + config.max_time;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let counters = Arc::clone(&counters);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut memory = Vec::new();
            let mut tick = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if tick.is_multiple_of(40) {
                    memory.push(MemorySample {
                        secs: start.elapsed().as_secs_f64(),
                        requests: counters.done.load(Ordering::Relaxed),
                        rss_mib: rss_mib(),
                    });
                }
                tick += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            memory
        })
    };

    let mut workers = Vec::new();
    for w in 0..config.concurrency {
        let http = http.clone();
        let base = site.base.clone();
        let slots = Arc::clone(&slots);
        let next = Arc::clone(&next);
        let counters = Arc::clone(&counters);
        let samples = Arc::clone(&samples);
        let total = config.requests;
        workers.push(tokio::spawn(async move {
            let mut rng =
                Mix(0x9e37_79b9_7f4a_7c15 ^ (w as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
            let mut latencies: Vec<u32> = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total || Instant::now() > deadline {
                    break;
                }
                let who = (rng.next() % slots.len() as u64) as usize;
                let mut slot = slots[who].lock().await;
                let roll = rng.next() % 100;
                let (method, path, form): (&str, &str, String) = match roll {
                    0..50 => ("GET", "/api/session", String::new()),
                    50..70 => ("GET", "/", String::new()),
                    70..85 => ("POST", "/cart", format!("item=i{}", rng.next() % 1000)),
                    85..90 => ("POST", "/flash", "message=hello".to_owned()),
                    90..96 => ("POST", "/login", format!("username=u{}", who % 5000)),
                    _ => ("POST", "/logout", String::new()),
                };
                let url = format!("{base}{path}");
                let mut req = if method == "POST" {
                    http.post(url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(form)
                } else {
                    http.get(url)
                };
                if let Some(c) = slot.as_ref() {
                    req = req.header("cookie", format!("id={c}"));
                }
                let began = Instant::now();
                let result = req.send().await;
                let outcome = match result {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let mut new_id = None;
                        let mut cleared = false;
                        for v in res.headers().get_all("set-cookie") {
                            let v = v.to_str().unwrap_or_default();
                            if let Some(value) =
                                v.split(';').next().and_then(|p| p.strip_prefix("id="))
                            {
                                if value.is_empty() {
                                    cleared = true;
                                } else {
                                    new_id = Some(value.to_owned());
                                }
                            }
                        }
                        let body = res.bytes().await;
                        let expected = if method == "POST" { 303 } else { 200 };
                        if status != expected || body.is_err() {
                            Err(format!("{method} {path}: {status}"))
                        } else {
                            if let Some(id) = new_id {
                                if slot.as_ref().is_some_and(|old| *old != id) {
                                    counters.id_changes.fetch_add(1, Ordering::Relaxed);
                                }
                                *slot = Some(id);
                            } else if cleared {
                                *slot = None;
                            }
                            Ok(())
                        }
                    }
                    Err(e) => Err(format!("{method} {path}: {e}")),
                };
                latencies.push(u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX));
                drop(slot);
                match path {
                    "/login" => counters.logins.fetch_add(1, Ordering::Relaxed),
                    "/logout" => counters.logouts.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
                if let Err(e) = outcome {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    let mut s = samples.lock();
                    if s.len() < 10 {
                        s.push(e);
                    }
                }
                counters.done.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.expect("worker"));
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut memory = sampler.await.unwrap_or_default();
    memory.push(MemorySample {
        secs: elapsed.as_secs_f64(),
        requests: counters.done.load(Ordering::Relaxed),
        rss_mib: rss_mib(),
    });
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        Duration::from_micros(u64::from(latencies.get(i).copied().unwrap_or(0)))
    };
    let mut report = SoakReport {
        site: config.site,
        requests: counters.done.load(Ordering::Relaxed),
        sessions: config.sessions,
        errors: counters.errors.load(Ordering::Relaxed),
        error_samples: samples.lock().clone(),
        elapsed,
        p50: pct(0.5),
        p99: pct(0.99),
        max: pct(1.0),
        logins: counters.logins.load(Ordering::Relaxed),
        logouts: counters.logouts.load(Ordering::Relaxed),
        id_changes: counters.id_changes.load(Ordering::Relaxed),
        memory,
        teardown: Duration::ZERO,
    };
    let stopping = Instant::now();
    drop(site);
    report.teardown = stopping.elapsed();
    report
}

// ---------------------------------------------------------------------------------------------
// The race stress: many tasks driving the manager on a few hot sessions, with invariant checks.
// ---------------------------------------------------------------------------------------------

use std::collections::HashMap;

use sessionkit::store::{MemoryStore, Store, TieredStore};
use sessionkit::{RequestInfo, SessionConfig, SessionManager};

/// The store setups of the race stress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaceStore {
    /// `MemoryStore::new`.
    Memory,
    /// `MemoryStore::bounded`.
    MemoryBounded,
    /// `TieredStore<MemoryStore, MemoryStore>`.
    TieredMemory,
    /// `FileStore` (unsynced) in a temporary directory.
    File,
    /// `RedisStore` on a private redis-server.
    Redis,
}

impl RaceStore {
    /// Every setup.
    pub const ALL: [RaceStore; 5] = [
        RaceStore::Memory,
        RaceStore::MemoryBounded,
        RaceStore::TieredMemory,
        RaceStore::File,
        RaceStore::Redis,
    ];

    /// Parses `memory`, `memory-bounded`, `tiered`, `file` or `redis`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "memory" => RaceStore::Memory,
            "memory-bounded" => RaceStore::MemoryBounded,
            "tiered" => RaceStore::TieredMemory,
            "file" => RaceStore::File,
            "redis" => RaceStore::Redis,
            _ => return None,
        })
    }

    async fn open(self) -> (Arc<dyn Store>, Box<dyn std::any::Any + Send>) {
        match self {
            RaceStore::Memory => (Arc::new(MemoryStore::new()), Box::new(())),
            RaceStore::MemoryBounded => (Arc::new(MemoryStore::bounded(100_000)), Box::new(())),
            RaceStore::TieredMemory => (
                Arc::new(TieredStore::new(
                    MemoryStore::bounded(10_000),
                    MemoryStore::new(),
                )),
                Box::new(()),
            ),
            RaceStore::File => {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = sessionkit_backends::file::FileConfig::new(dir.path().join("sessions"))
                    .with_durability(sessionkit_backends::file::Durability::NoSync)
                    .open()
                    .await
                    .expect("file store");
                (Arc::new(store), Box::new(dir))
            }
            RaceStore::Redis => {
                let server = crate::redis_server::RedisServer::start();
                let store = sessionkit_backends::RedisStore::open(&server.url())
                    .await
                    .expect("redis store");
                (Arc::new(store), Box::new(server))
            }
        }
    }
}

/// What the race stress runs.
#[derive(Debug, Clone)]
pub struct RaceConfig {
    /// The store setup.
    pub store: RaceStore,
    /// Requests (load + finish, or a revocation) in total.
    pub operations: u64,
    /// Hot sessions (one visitor and one owner each).
    pub sessions: usize,
    /// Tasks sending requests at once, on whatever runtime calls [`run_races`].
    pub tasks: usize,
    /// Seed of the operation mix.
    pub seed: u64,
}

impl RaceConfig {
    /// The quick form: 4 000 requests from 12 tasks on 4 sessions.
    pub fn quick(store: RaceStore) -> Self {
        RaceConfig {
            store,
            operations: 4_000,
            sessions: 4,
            tasks: 12,
            seed: 0x5eed,
        }
    }

    /// The long form: 200 000 requests from 16 tasks on 4 sessions.
    pub fn long(store: RaceStore) -> Self {
        RaceConfig {
            operations: 200_000,
            tasks: 16,
            ..Self::quick(store)
        }
    }
}

/// What the race stress saw.
#[derive(Debug, Clone, Default)]
pub struct RaceReport {
    /// Requests completed (including revocations).
    pub operations: u64,
    /// Saves (including the first save that creates a session).
    pub saves: u64,
    /// Id rotations observed (a save answered with a new id).
    pub rotations: u64,
    /// Logins (regenerations) acknowledged.
    pub regenerations: u64,
    /// Logouts acknowledged.
    pub destroys: u64,
    /// "Log out everywhere" calls acknowledged.
    pub revocations: u64,
    /// Saves that lost a race (`Outcome::gone`).
    pub gone: u64,
    /// Loads that found a session and were checked against the invariants.
    pub checked_loads: u64,
    /// Store errors returned by the manager (not invariant violations).
    pub errors: u64,
    /// Revocations that gave up ([`Error::Unavailable`](sessionkit::Error::Unavailable))
    /// because new sessions of the owner kept appearing: the documented bound of
    /// `delete_owned_by`, counted apart from errors.
    pub revocations_gave_up: u64,
    /// Invariant violations.
    pub violations: u64,
    /// The first few violations and errors.
    pub samples: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
}

impl RaceReport {
    /// A one-line summary.
    pub fn summary(&self, store: RaceStore) -> String {
        format!(
            "races {store:?}: {} requests in {:.1} s ({} saves, {} rotations, {} logins, {} logouts, {} revocations + {} gave up, {} lost races, {} checked loads); errors {}, violations {}",
            self.operations,
            self.elapsed.as_secs_f64(),
            self.saves,
            self.rotations,
            self.regenerations,
            self.destroys,
            self.revocations,
            self.revocations_gave_up,
            self.gone,
            self.checked_loads,
            self.errors,
            self.violations,
        )
    }
}

/// What the checker knows, stamped with a global sequence: `seq` values order
/// "returned before" against "started after".
#[derive(Default)]
struct Ledger {
    /// Session generation → the stamp after its logout or revocation returned.
    ended: HashMap<u64, u64>,
    /// Session generation → (hot session index, stamp after its creation or login returned).
    created: HashMap<u64, (usize, u64)>,
    /// (generation, task) → (value, stamp after the save returned): the task's last
    /// acknowledged write to its own key in that session.
    acked: HashMap<(u64, usize), (u64, u64)>,
    report: RaceReport,
}

impl Ledger {
    fn violation(&mut self, what: String) {
        self.report.violations += 1;
        if self.report.samples.len() < 20 {
            self.report.samples.push(what);
        }
    }

    fn error(&mut self, what: String) {
        self.report.errors += 1;
        if self.report.samples.len() < 20 {
            self.report.samples.push(what);
        }
    }
}

const GEN: &str = "gen";

/// The cookie value a `Set-Cookie` header sets: `Some("")` for a removal.
fn cookie_value(set_cookie: &str) -> Option<String> {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_owned())
}

/// Runs the race stress: `tasks` tasks each pick a hot session and an operation at random
/// (save, read, login with regeneration, logout, log out everywhere) and send it through the
/// manager as a request carrying that visitor's current cookie, so requests on one session
/// overlap all the time; `rotate_after` is 1 ms, so nearly every request also rotates the id.
///
/// Every session's data holds a generation number (new at creation and at each login) and
/// each task's own key. Checked on every load and after every login:
///
/// - **no resurrection**: a generation whose logout or revocation returned is never loaded
///   by a request that started afterwards;
/// - **no login on an old id**: once a login returned, the id the request presented loads
///   nothing;
/// - **no lost write**: a load of a generation that started after a task's save to it was
///   acknowledged (not `gone`) holds that task's value or a later one.
pub async fn run_races(config: RaceConfig) -> RaceReport {
    let (store, guard) = config.store.open().await;
    let manager = SessionManager::new(
        store,
        SessionConfig::default()
            .with_clock(sessionkit::manager::SystemClock)
            .with_idle_timeout(Duration::from_secs(3600))
            .with_rotate_after(Some(Duration::from_millis(1)))
            .with_rotation_grace(Duration::from_secs(30))
            .with_cleanup_probability(0.0),
    )
    .expect("config");
    let cookie_name = manager.config().effective_cookie_name().to_owned();
    let slots: Arc<Vec<parking_lot::Mutex<Option<String>>>> = Arc::new(
        (0..config.sessions)
            .map(|_| parking_lot::Mutex::new(None))
            .collect(),
    );
    let ledger = Arc::new(parking_lot::Mutex::new(Ledger::default()));
    let tick = Arc::new(AtomicU64::new(0));
    let next_gen = Arc::new(AtomicU64::new(1));
    let next_op = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(config.tasks));
    let start = Instant::now();
    let mut handles = Vec::new();
    for task in 0..config.tasks {
        let manager = manager.clone();
        let cookie_name = cookie_name.clone();
        let (slots, ledger, tick, next_gen, next_op, barrier) = (
            Arc::clone(&slots),
            Arc::clone(&ledger),
            Arc::clone(&tick),
            Arc::clone(&next_gen),
            Arc::clone(&next_op),
            Arc::clone(&barrier),
        );
        let total = config.operations;
        let seed = config.seed;
        let tasks = config.tasks;
        handles.push(tokio::spawn(async move {
            let mut rng = Mix(
                (seed ^ 0x9e37_79b9_7f4a_7c15) ^ (task as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d),
            );
            let mut value = 0u64;
            let stamp = || tick.fetch_add(1, Ordering::SeqCst);
            let mine = format!("t{task}");
            barrier.wait().await;
            while next_op.fetch_add(1, Ordering::Relaxed) < total {
                let slot = (rng.next() % slots.len() as u64) as usize;
                let owner = format!("user-{slot}");
                let roll = rng.next() % 100;
                if roll < 4 {
                    let began = stamp();
                    match manager.revoke_owner(&owner).await {
                        Ok(_) => {
                            let done = stamp();
                            let mut l = ledger.lock();
                            let gens: Vec<u64> = l
                                .created
                                .iter()
                                .filter(|(_, (s, at))| *s == slot && *at < began)
                                .map(|(g, _)| *g)
                                .collect();
                            for g in gens {
                                l.ended.entry(g).or_insert(done);
                            }
                            l.report.revocations += 1;
                            l.report.operations += 1;
                        }
                        Err(sessionkit::Error::Unavailable { .. }) => {
                            let mut l = ledger.lock();
                            l.report.revocations_gave_up += 1;
                            l.report.operations += 1;
                        }
                        Err(e) => ledger.lock().error(format!("revoke: {e}")),
                    }
                    continue;
                }
                let presented = slots[slot].lock().clone();
                let request = match &presented {
                    Some(id) => RequestInfo::new().with_cookie_header(format!("{cookie_name}={id}")),
                    None => RequestInfo::new(),
                };
                let began = stamp();
                let active = match manager.load(&request).await {
                    Ok(active) => active,
                    Err(e) => {
                        ledger.lock().error(format!("load: {e}"));
                        continue;
                    }
                };
                let session = active.session().clone();
                let loaded_gen: Option<u64> = if active.is_new() {
                    None
                } else {
                    let generation: Option<u64> = session.get(GEN).ok().flatten();
                    let mut l = ledger.lock();
                    l.report.checked_loads += 1;
                    match generation {
                        None => l.violation("a loaded session has no generation".into()),
                        Some(g) => {
                            if let Some(ended) = l.ended.get(&g).copied()
                                && ended < began
                            {
                                l.violation(format!(
                                    "resurrection: generation {g} loaded after its end returned"
                                ));
                            }
                            let mut lost = Vec::new();
                            for t in 0..tasks {
                                if let Some((v, at)) = l.acked.get(&(g, t)).copied()
                                    && at < began
                                {
                                    let seen: Option<u64> =
                                        session.get(&format!("t{t}")).ok().flatten();
                                    if seen.is_none_or(|s| s < v) {
                                        lost.push(format!(
                                            "lost write: generation {g}, task {t} acknowledged {v}, load saw {seen:?}"
                                        ));
                                    }
                                }
                            }
                            for what in lost {
                                l.violation(what);
                            }
                        }
                    }
                    generation
                };
                value += 1;
                // The operation: a new visitor always saves (that creates the session).
                let op = if loaded_gen.is_none() { 0 } else { roll };
                let mut new_gen = None;
                match op {
                    0..55 => {
                        if loaded_gen.is_none() {
                            let g = next_gen.fetch_add(1, Ordering::Relaxed);
                            session.insert(GEN, g).expect("encode");
                            session.set_owner(Some(owner.clone()));
                            new_gen = Some(g);
                        }
                        session.insert(mine.clone(), value).expect("encode");
                    }
                    55..65 => {}
                    65..82 => {
                        let g = next_gen.fetch_add(1, Ordering::Relaxed);
                        session.regenerate();
                        session.insert(GEN, g).expect("encode");
                        session.set_owner(Some(owner.clone()));
                        session.insert(mine.clone(), value).expect("encode");
                        new_gen = Some(g);
                    }
                    _ => session.destroy(),
                }
                let wrote = session.is_modified() && !session.is_destroyed();
                let regenerating = session.is_regenerating();
                let destroying = session.is_destroyed();
                let outcome = match manager.finish(active).await {
                    Ok(outcome) => outcome,
                    Err(sessionkit::Error::Gone) => {
                        ledger.lock().error(format!(
                            "finish answered Err(Gone) to a request that lost a race (regenerating: {}, destroying: {})",
                            session.is_regenerating(),
                            session.is_destroyed()
                        ));
                        continue;
                    }
                    Err(e) => {
                        ledger.lock().error(format!("finish: {e}"));
                        continue;
                    }
                };
                let done = stamp();
                let set = outcome.set_cookie.as_deref().and_then(cookie_value);
                {
                    let mut l = ledger.lock();
                    l.report.operations += 1;
                    if outcome.gone {
                        l.report.gone += 1;
                    } else if destroying {
                        if let Some(g) = loaded_gen {
                            l.ended.entry(g).or_insert(done);
                        }
                        l.report.destroys += 1;
                    } else {
                        let g = new_gen.or(loaded_gen).expect("a generation");
                        if let Some(n) = new_gen {
                            l.created.insert(n, (slot, done));
                        }
                        if wrote {
                            l.acked.insert((g, task), (value, done));
                            l.report.saves += 1;
                        }
                        if regenerating {
                            l.report.regenerations += 1;
                        } else if loaded_gen.is_some()
                            && set.as_deref().is_some_and(|s| !s.is_empty())
                        {
                            l.report.rotations += 1;
                        }
                    }
                }
                if let Some(set) = set {
                    *slots[slot].lock() = (!set.is_empty()).then_some(set);
                }
                if regenerating
                    && !outcome.gone
                    && let Some(old) = &presented
                {
                    let again = RequestInfo::new().with_cookie_header(format!("{cookie_name}={old}"));
                    match manager.load(&again).await {
                        Ok(a) if !a.is_new() => ledger.lock().violation(format!(
                            "login on an old id: the pre-login id still loads a session (generation {:?})",
                            a.session().get::<u64>(GEN).ok().flatten()
                        )),
                        Ok(_) => {}
                        Err(e) => ledger.lock().error(format!("load: {e}")),
                    }
                }
            }
        }));
    }
    for handle in handles {
        if let Err(err) = handle.await {
            std::panic::resume_unwind(err.into_panic());
        }
    }
    let mut report = std::mem::take(&mut ledger.lock().report);
    report.elapsed = start.elapsed();
    drop(manager);
    drop(guard);
    report
}
