//! The figures that are not a throughput cell: resident memory, one getter against a whole
//! decode, what a one-key save of a big session sends, and the writes of a read-only request.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use sessionkit::Session;
use sessionkit::store::{ChangeSet, MemoryStore, Record, Store};

use crate::Harness;
use crate::ours::{Ours, TTL, key};
use crate::runner;
use crate::subject::{Medium, Op, Subject};
use crate::workload::Wide;

#[derive(Debug, Default)]
pub(crate) struct Extras {
    /// Resident bytes per 10⁵ sessions, by store.
    pub(crate) rss: Vec<(String, Option<u64>)>,
    /// Nanoseconds for one `get` of one field of a 50-field session.
    pub(crate) getter_ns: f64,
    /// How the getter was called.
    pub(crate) getter_via: &'static str,
    /// Nanoseconds to decode the whole 50-field record.
    pub(crate) whole_decode_ns: f64,
    /// Bytes a one-key save of a ~100 KiB session hands the store, and the whole record size.
    pub(crate) big_save: Vec<(String, u64, u64)>,
    /// Store writes made by read-only requests, and how many requests ran.
    pub(crate) read_only_writes: Vec<(String, u64, u64)>,
    /// Mean microseconds of one save on one session, by store: a one-key insert, an
    /// increment, a bounded push.
    pub(crate) op_costs: Vec<OpCost>,
}

/// What one save costs on one store, by kind of change (mean µs, the same run).
#[derive(Debug)]
pub(crate) struct OpCost {
    pub(crate) store: String,
    pub(crate) insert_us: f64,
    pub(crate) increment_us: f64,
    pub(crate) push_us: f64,
}

/// The mean cost of `rounds` sequential saves of each kind on one session of the ~1 KiB
/// workload: a one-key insert of an integer, an increment of it, a push onto a list capped
/// at 100 items (full after the first 100 rounds: the cost of the bound check and rewrite).
pub(crate) async fn op_cost<S: Store>(name: &str, store: S, rounds: u32) -> anyhow::Result<OpCost> {
    use sessionkit::store::Op as StoreOp;
    // A fresh key each call: subjects share one Redis server.
    let session = sessionkit::SessionId::generate()?.key();
    let mut record = Record::new(SystemTime::now() + TTL);
    for (k, v) in crate::workload::Workload::sample().fields() {
        record.fields.insert(k, v);
    }
    store.create(&session, &record).await?;
    let item = Bytes::from(rmp_serde::to_vec_named(&("sku-0001", 2u32))?);
    let time = |make: &dyn Fn(u32) -> ChangeSet| {
        let changes: Vec<ChangeSet> = (0..rounds).map(make).collect();
        let store = &store;
        let session = &session;
        async move {
            let start = Instant::now();
            for c in &changes {
                store.apply(session, black_box(c)).await?;
            }
            anyhow::Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds))
        }
    };
    let insert_us = time(&|i| {
        let mut c = ChangeSet::default();
        c.set.insert(
            "bench.n".into(),
            Bytes::from(rmp_serde::to_vec(&i64::from(i)).unwrap_or_default()),
        );
        c
    })
    .await?;
    let increment_us = time(&|_| {
        let mut c = ChangeSet::default();
        c.push_op("bench.n", StoreOp::Increment(1));
        c
    })
    .await?;
    let push_us = time(&|_| {
        let mut c = ChangeSet::default();
        c.push_op(
            "bench.cart",
            StoreOp::Push {
                value: item.clone(),
                max_len: Some(100),
            },
        );
        c
    })
    .await?;
    Ok(OpCost {
        store: name.to_owned(),
        insert_us,
        increment_us,
        push_us,
    })
}

pub(crate) const RSS_SESSIONS: u64 = 100_000;
pub(crate) const RSS_SUBJECTS: &[&str] = &[
    "sessionkit MemoryStore",
    "tower-sessions MemoryStore",
    "tower-sessions MokaStore",
    "DashMap + rmp-serde (floor)",
];

fn resident_bytes() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("short statm"))?
        .parse()?;
    // x86-64 and aarch64 Linux here use 4 KiB pages.
    Ok(pages * 4096)
}

async fn fill_and_measure<S: Subject>(subject: S) -> anyhow::Result<u64> {
    let subject = Arc::new(subject);
    let before = resident_bytes()?;
    runner::populate(&subject, RSS_SESSIONS).await?;
    let after = resident_bytes()?;
    // Keep the store alive until measured.
    drop(subject);
    Ok(after.saturating_sub(before))
}

/// Child-process side: fill one store with 10⁵ sessions and print the resident growth.
pub(crate) fn rss_child(which: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let bytes = rt.block_on(async {
        match which {
            "sessionkit MemoryStore" => {
                fill_and_measure(Ours::new(which, Medium::Memory, MemoryStore::new())).await
            }
            "tower-sessions MemoryStore" => {
                fill_and_measure(crate::peers::v15::Tower15::new(
                    which,
                    Medium::Memory,
                    tower_sessions::MemoryStore::default(),
                ))
                .await
            }
            "tower-sessions MokaStore" => {
                fill_and_measure(crate::peers::v14::Tower14::new(
                    which,
                    Medium::Memory,
                    tower_sessions_moka_store::MokaStore::new(None),
                ))
                .await
            }
            "DashMap + rmp-serde (floor)" => {
                fill_and_measure(crate::floors::MapFloor::default()).await
            }
            other => Err(anyhow::anyhow!("no RSS subject {other:?}")),
        }
    })?;
    println!("{bytes}");
    Ok(())
}

fn rss_in_child(which: &str) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .args(["--rss", which])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "rss child for {which} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn time_per_iter(iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let t0 = Instant::now();
    for _ in 0..iters {
        f();
    }
    t0.elapsed().as_nanos() as f64 / f64::from(iters)
}

fn getter_vs_decode(quick: bool) -> (f64, f64, &'static str) {
    let iters = if quick { 50_000 } else { 300_000 };
    let wide = Wide::sample();
    let blob = rmp_serde::to_vec_named(&wide).expect("encodes");
    let session = Session::from_fields(wide.fields());
    let getter = time_per_iter(iters, || {
        let v: String = Wide::view(black_box(&session)).f23().expect("decodes");
        black_box(v);
    });
    let whole = time_per_iter(iters, || {
        let w: Wide = rmp_serde::from_slice(black_box(&blob)).expect("decodes");
        black_box(w);
    });
    (
        getter,
        whole,
        "`#[derive(SessionData)]` getter `view(&session).f23()`",
    )
}

/// A session of ~100 KiB: the workload plus a 100 KiB blob field.
fn big_record() -> Record {
    let mut fields = crate::workload::Workload::sample().fields();
    let payload = "x".repeat(100 * 1024);
    fields.insert(
        "draft".to_owned(),
        Bytes::from(rmp_serde::to_vec_named(&payload).expect("encodes")),
    );
    Record::from_parts(fields, SystemTime::now() + TTL, None)
}

fn one_key_change() -> ChangeSet {
    let mut changes = ChangeSet::default();
    changes.set.insert(
        crate::workload::CHANGED_KEY.to_owned(),
        Bytes::from(rmp_serde::to_vec_named(&18u32).expect("encodes")),
    );
    changes
}

/// A ~100 KiB session and a change of one small key in it.
pub(crate) fn big_session() -> (sessionkit::SessionKey, Record, ChangeSet) {
    (key(1), big_record(), one_key_change())
}

async fn big_save_memory() -> anyhow::Result<(String, u64, u64)> {
    let (key, record, changes) = big_session();
    let whole = record.encode()?.len() as u64;
    let store = MemoryStore::new();
    store.create(&key, &record).await?;
    store.apply(&key, &changes).await?;
    let sent: usize = changes
        .set
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>()
        + changes.remove.iter().map(String::len).sum::<usize>();
    Ok((
        "sessionkit MemoryStore (change set handed over)".into(),
        sent as u64,
        whole,
    ))
}

/// The timing-sensitive figures, measured first on a quiet process.
pub(crate) async fn before(h: &Harness) -> anyhow::Result<Extras> {
    let mut extras = Extras::default();
    if h.config.filter.is_some() {
        return Ok(extras);
    }
    let (getter, whole, via) = getter_vs_decode(h.config.quick);
    extras.getter_ns = getter;
    extras.whole_decode_ns = whole;
    extras.getter_via = via;
    extras.big_save.push(big_save_memory().await?);
    Ok(extras)
}

/// The figures taken from the measured rows, and resident memory (in child processes; not
/// timing-sensitive, so it may overlap the removal of the file stores' sessions).
pub(crate) fn after(h: &Harness, extras: &mut Extras) {
    if h.config.filter.is_some() {
        return;
    }
    for which in RSS_SUBJECTS {
        extras.rss.push(((*which).to_owned(), rss_in_child(which)));
    }
    for row in h.rows.iter().filter(|r| r.op == Op::ReadOnly) {
        if let Some(w) = row.store_writes {
            extras.read_only_writes.push((
                format!(
                    "{} ({} tasks), counted at the Store trait",
                    row.subject, row.tasks
                ),
                w,
                row.sample.ops,
            ));
        }
        if let Some(c) = row.redis {
            extras.read_only_writes.push((
                format!(
                    "{} ({} tasks), Redis dataset changes",
                    row.subject, row.tasks
                ),
                c.writes,
                row.sample.ops,
            ));
        }
    }
}

/// Runs `count` operations of one kind on a `MemoryStore` holding 10⁴ sessions, on one
/// thread, so that `valgrind --tool=callgrind` sees only that.
pub(crate) fn profile(op: &str, count: u64) -> anyhow::Result<()> {
    let op = match op {
        "load-hit" => Op::LoadHit,
        "load-miss" => Op::LoadMiss,
        "read-only" => Op::ReadOnly,
        "save-new" => Op::SaveNew,
        "save-changed" => Op::SaveChanged,
        "delete" => Op::Delete,
        other => anyhow::bail!("unknown operation {other:?}"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match std::env::var("BENCH_PROFILE_SUBJECT").as_deref() {
        Ok("floor") => profile_one(&rt, crate::floors::MapFloor::default(), op, count),
        _ => profile_one(
            &rt,
            Ours::new("memory", Medium::Memory, MemoryStore::new()),
            op,
            count,
        ),
    }
}

fn profile_one<S: Subject>(
    rt: &tokio::runtime::Runtime,
    subject: S,
    op: Op,
    count: u64,
) -> anyhow::Result<()> {
    let subject = Arc::new(subject);
    rt.block_on(runner::populate(&subject, 10_000))?;
    profile_loop(rt, &subject, op, count)
}

/// The measured part, kept out of line so callgrind can collect only it
/// (`--toggle-collect='*profile_loop*'`).
#[inline(never)]
fn profile_loop<S: Subject>(
    rt: &tokio::runtime::Runtime,
    subject: &Arc<S>,
    op: Op,
    count: u64,
) -> anyhow::Result<()> {
    let mut scratch = subject.scratch();
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    for n in 0..count {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let i = match op {
            Op::LoadMiss => crate::workload::MISS_BASE + n,
            Op::SaveNew | Op::Delete => 1_000_000 + n,
            _ => rng % 10_000,
        };
        rt.block_on(subject.run(op, i, &mut scratch))?;
    }
    Ok(())
}
