//! Drives one subject: fills it, then times each operation at 1 and 64 tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::subject::{Op, Subject};
use crate::workload::MISS_BASE;

/// How long to run each measurement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
}

/// One measured cell: a subject, an operation, a concurrency and a population.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) ops: u64,
    pub(crate) elapsed: Duration,
    pub(crate) p50_ns: u64,
    pub(crate) p99_ns: u64,
    pub(crate) errors: u64,
}

impl Sample {
    pub(crate) fn throughput(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Per-subject index counters shared by the tasks of a measurement.
pub(crate) struct Indices {
    /// Population size: indices below it exist.
    pub(crate) population: u64,
    /// The next fresh index for save-new.
    pub(crate) next_new: AtomicU64,
    /// The next created index for delete.
    pub(crate) next_delete: AtomicU64,
}

impl Indices {
    pub(crate) fn new(population: u64) -> Self {
        Indices {
            population,
            next_new: AtomicU64::new(population),
            next_delete: AtomicU64::new(population),
        }
    }

    /// Stores fresh sessions for `duration` through save-new and points delete at them.
    pub(crate) async fn refill<S: Subject>(
        self: &Arc<Self>,
        subject: &Arc<S>,
        tasks: usize,
        duration: Duration,
    ) -> anyhow::Result<()> {
        let start = self.next_new.load(Ordering::Relaxed);
        run_for(subject, self, Op::SaveNew, tasks, duration).await?;
        self.next_delete.store(start, Ordering::Relaxed);
        Ok(())
    }

    /// The index for `op`, or `None` once delete has used up what save-new created.
    fn pick(&self, op: Op, rng: &mut u64) -> Option<u64> {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        match op {
            Op::LoadHit | Op::ReadOnly | Op::SaveChanged => Some(*rng % self.population),
            Op::LoadMiss => Some(MISS_BASE + (*rng >> 3)),
            Op::SaveNew => Some(self.next_new.fetch_add(1, Ordering::Relaxed)),
            Op::Delete => {
                let i = self.next_delete.fetch_add(1, Ordering::Relaxed);
                (i < self.next_new.load(Ordering::Relaxed)).then_some(i)
            }
        }
    }
}

/// Creates sessions `0..population` through the subject's own save-new, 64 at a time.
pub(crate) async fn populate<S: Subject>(subject: &Arc<S>, population: u64) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let subject = Arc::clone(subject);
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            let mut scratch = subject.scratch();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= population {
                    return anyhow::Ok(());
                }
                subject.run(Op::SaveNew, i, &mut scratch).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Runs `op` on `tasks` concurrent tasks for `duration`, returning the merged latencies.
async fn timed<S: Subject>(
    subject: &Arc<S>,
    indices: &Arc<Indices>,
    op: Op,
    tasks: usize,
    duration: Duration,
) -> anyhow::Result<(Histogram<u64>, u64, Duration)> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let subject = Arc::clone(subject);
        let indices = Arc::clone(indices);
        handles.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
            let mut scratch = subject.scratch();
            let mut rng = 0x2545_F491_4F6C_DD1D_u64 ^ ((t as u64 + 1) * 0x9E37_79B9);
            let mut errors = 0u64;
            while let Some(i) = indices.pick(op, &mut rng) {
                let t0 = Instant::now();
                let result = subject.run(op, i, &mut scratch).await;
                let t1 = Instant::now();
                match result {
                    Ok(found) => {
                        if matches!(op, Op::LoadHit | Op::ReadOnly) && !found
                            || op == Op::LoadMiss && found
                        {
                            errors += 1;
                        }
                    }
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("  {} {}: {e:#}", subject.name(), op.label());
                        }
                        errors += 1;
                    }
                }
                let ns = u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX);
                hist.saturating_record(ns.max(1));
                if t1 >= deadline {
                    break;
                }
            }
            anyhow::Ok((hist, errors))
        }));
    }
    let mut merged = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut errors = 0;
    for h in handles {
        let (hist, e) = h.await??;
        merged.add(&hist)?;
        errors += e;
    }
    Ok((merged, errors, start.elapsed()))
}

/// Runs `op` at `tasks` concurrency for `duration`.
pub(crate) async fn run_for<S: Subject>(
    subject: &Arc<S>,
    indices: &Arc<Indices>,
    op: Op,
    tasks: usize,
    duration: Duration,
) -> anyhow::Result<Sample> {
    let (hist, errors, elapsed) = timed(subject, indices, op, tasks, duration).await?;
    Ok(Sample {
        ops: hist.len(),
        elapsed,
        p50_ns: hist.value_at_quantile(0.50),
        p99_ns: hist.value_at_quantile(0.99),
        errors,
    })
}
