//! A bounded load generator against the example site, started in-process on a loopback
//! port: mixed reads, writes, logins, logouts and rotations over many sessions. It stops by
//! itself after a number of requests (or a time limit) and reports throughput, latency
//! percentiles, errors and the process's resident memory over time.
//!
//! The binary `soak` (`cargo run --release -p sessionkit-tests --bin soak -- --help`) and the
//! quick test `tests/tests/test_soak.rs` both call [`run`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sessionkit_examples::site::StoreKind;

use crate::site::Site;

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The store setup under the site.
    pub store: StoreKind,
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
    /// The quick form: 20 000 requests over 2 000 sessions.
    pub fn quick(store: StoreKind) -> Self {
        SoakConfig {
            store,
            requests: 20_000,
            sessions: 2_000,
            concurrency: 16,
            max_time: Duration::from_secs(600),
            rotate_after: Duration::from_secs(3),
        }
    }

    /// The full form: 10^6 requests over 10^5 sessions.
    pub fn full(store: StoreKind) -> Self {
        SoakConfig {
            requests: 1_000_000,
            sessions: 100_000,
            concurrency: 32,
            max_time: Duration::from_secs(3600),
            rotate_after: Duration::from_secs(30),
            ..Self::quick(store)
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
    /// The setup.
    pub store: StoreKind,
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
}

impl SoakReport {
    /// Requests per second.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "{:?}: {} requests over {} sessions in {:.1} s = {:.0} req/s; p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; errors {}; logins {}, logouts {}, id changes {}; RSS {}",
            self.store,
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
    let site = Site::start(config.store, |c| {
        c.with_clock(sessionkit::SystemClock)
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
    let report = SoakReport {
        store: config.store,
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
    };
    drop(site);
    report
}
