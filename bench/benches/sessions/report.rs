//! Turns the rows into `BENCHMARKS.md` (between its markers) and `bench/throughput.svg`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Row;
use crate::extras::{Extras, RSS_SESSIONS};
use crate::subject::{Kind, Medium, Op};

pub(crate) const BEGIN: &str = "<!-- bench:begin -->";
pub(crate) const END: &str = "<!-- bench:end -->";

pub(crate) struct Meta {
    pub(crate) quick: bool,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) duration: Duration,
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "?".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} CPUs (`nproc`), {model}, {mem_gib:.1} GiB RAM, Linux {}",
        kernel.trim()
    )
}

/// Versions of the measured crates, as resolved in Cargo.lock.
fn versions() -> String {
    let lock = std::fs::read_to_string(repo_root().join("Cargo.lock")).unwrap_or_default();
    let wanted = [
        "sessionkit",
        "tower-sessions",
        "tower-sessions-core",
        "tower-sessions-memory-store",
        "tower-sessions-moka-store",
        "tower-sessions-redis-store",
        "tower-sessions-sqlx-store",
        "sqlx",
        "libsqlite3-sys",
        "fred",
        "actix-session",
        "redis",
        "moka",
        "dashmap",
        "rmp-serde",
        "tokio",
    ];
    let mut found: Vec<(String, String)> = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_owned());
        } else if let Some(v) = line.strip_prefix("version = ")
            && let Some(n) = name.take()
            && wanted.contains(&n.as_str())
        {
            found.push((n, v.trim_matches('"').to_owned()));
        }
    }
    found.sort();
    let mut out = Vec::new();
    for w in wanted {
        let vs: Vec<&str> = found
            .iter()
            .filter(|(n, _)| n == w)
            .map(|(_, v)| v.as_str())
            .collect();
        if !vs.is_empty() {
            out.push(format!("{w} {}", vs.join(" + ")));
        }
    }
    format!(
        "{}; {}; {}",
        command_line("rustc", &["--version"]),
        command_line("redis-server", &["--version"])
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        out.join(", ")
    )
}

fn fmt_ops(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn fmt_ns(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

pub(crate) struct Results<'a> {
    rows: &'a [Row],
}

impl Results<'_> {
    fn row(&self, subject: &str, op: Op, tasks: usize, population: u64) -> Option<&Row> {
        self.rows.iter().find(|r| {
            r.subject == subject && r.op == op && r.tasks == tasks && r.population == population
        })
    }

    pub(crate) fn thr(&self, subject: &str, op: Op, tasks: usize, population: u64) -> Option<f64> {
        self.row(subject, op, tasks, population)
            .map(|r| r.sample.throughput())
    }

    fn subjects(&self, medium: Medium) -> Vec<(String, Kind)> {
        let mut out: Vec<(String, Kind)> = Vec::new();
        for r in self.rows.iter().filter(|r| r.medium == medium) {
            if !out.iter().any(|(s, _)| s == &r.subject) {
                out.push((r.subject.clone(), r.kind));
            }
        }
        out
    }
}

const MEM: &str = "sessionkit MemoryStore";
const MEM_FLOOR: &str = "DashMap + rmp-serde (floor)";
const TOWER_MEM: &str = "tower-sessions MemoryStore";
const REDIS: &str = "sessionkit RedisStore";
const REDIS_FLOOR: &str = "redis-rs GET/SET EX (floor)";
const ACTIX: &str = "actix-session RedisSessionStore";
const TIER_MR: &str = "sessionkit Tiered<Memory, Redis>";
const TOWER_CACHING: &str = "tower-sessions Caching<Moka, Redis>";

struct Target {
    text: String,
    measured: String,
    met: Option<bool>,
}

fn ratio_target(
    res: &Results<'_>,
    text: &str,
    a: (&str, Op),
    b: (&str, Op),
    at_least: f64,
) -> Target {
    let ta = res.thr(a.0, a.1, 64, 10_000);
    let tb = res.thr(b.0, b.1, 64, 10_000);
    match (ta, tb) {
        (Some(x), Some(y)) => {
            let r = x / y;
            Target {
                text: text.to_owned(),
                measured: format!("{r:.2}× ({} vs {} ops/s)", fmt_ops(x), fmt_ops(y)),
                met: Some(r >= at_least),
            }
        }
        _ => Target {
            text: text.to_owned(),
            measured: format!(
                "not measured: {} not in this run",
                if ta.is_none() { a.0 } else { b.0 }
            ),
            met: None,
        },
    }
}

fn targets(res: &Results<'_>, extras: &Extras) -> Vec<Target> {
    let mut t = vec![
        ratio_target(
            res,
            "MemoryStore load ≥ 1.0× DashMap+rmp floor",
            (MEM, Op::LoadHit),
            (MEM_FLOOR, Op::LoadHit),
            1.0,
        ),
        ratio_target(
            res,
            "MemoryStore load ≥ 3× tower-sessions MemoryStore",
            (MEM, Op::LoadHit),
            (TOWER_MEM, Op::LoadHit),
            3.0,
        ),
        ratio_target(
            res,
            "MemoryStore save (1 changed key) ≥ 0.8× floor",
            (MEM, Op::SaveChanged),
            (MEM_FLOOR, Op::SaveChanged),
            0.8,
        ),
        ratio_target(
            res,
            "MemoryStore save (new) ≥ 0.8× floor",
            (MEM, Op::SaveNew),
            (MEM_FLOOR, Op::SaveNew),
            0.8,
        ),
        ratio_target(
            res,
            "RedisStore load ≥ 1.0× redis-rs floor",
            (REDIS, Op::LoadHit),
            (REDIS_FLOOR, Op::LoadHit),
            1.0,
        ),
        ratio_target(
            res,
            "RedisStore save (1 changed key) ≥ 0.8× redis-rs floor",
            (REDIS, Op::SaveChanged),
            (REDIS_FLOOR, Op::SaveChanged),
            0.8,
        ),
        ratio_target(
            res,
            "RedisStore load ≥ 1.2× actix-session",
            (REDIS, Op::LoadHit),
            (ACTIX, Op::LoadHit),
            1.2,
        ),
        ratio_target(
            res,
            "RedisStore save (1 changed key) ≥ 1.2× actix-session",
            (REDIS, Op::SaveChanged),
            (ACTIX, Op::SaveChanged),
            1.2,
        ),
        ratio_target(
            res,
            "Tiered<Memory, Redis> cache-hit load ≥ 0.9× MemoryStore",
            (TIER_MR, Op::LoadHit),
            (MEM, Op::LoadHit),
            0.9,
        ),
        ratio_target(
            res,
            "Tiered<Memory, Redis> save ≥ 5× tower-sessions Caching<Moka, Redis>",
            (TIER_MR, Op::SaveChanged),
            (TOWER_CACHING, Op::SaveChanged),
            5.0,
        ),
    ];
    for op in [Op::LoadHit, Op::SaveChanged, Op::SaveNew] {
        let text = format!("one Redis call per {} (RedisStore)", op.label());
        match res
            .row(REDIS, op, 1, 10_000)
            .and_then(|r| r.redis.map(|c| (r, c)))
        {
            Some((r, c)) => {
                let per = c.reads as f64 / r.sample.ops.max(1) as f64;
                t.push(Target {
                    text,
                    measured: format!("{per:.2} round trips/op (1 task)"),
                    met: Some(per <= 1.01),
                });
            }
            None => t.push(Target {
                text,
                measured: format!("not measured: {REDIS} not in this run"),
                met: None,
            }),
        }
    }
    for (who, writes, requests) in &extras.read_only_writes {
        if who.starts_with("sessionkit") && who.contains("64 tasks") {
            t.push(Target {
                text: format!("zero store writes for a read-only request: {who}"),
                measured: format!("{writes} writes in {requests} requests"),
                met: Some(*writes == 0),
            });
        }
    }
    for (who, sent, whole) in &extras.big_save {
        t.push(Target {
            text: format!("one-key save of a 100 KiB session sends < 2 KiB: {who}"),
            measured: format!("{sent} B sent (whole record {whole} B)"),
            met: Some(*sent < 2048),
        });
    }
    for s in [MEM, REDIS] {
        let text = format!("{s}: load at 10⁶ sessions ≥ 0.8× load at 10⁴");
        match (
            res.thr(s, Op::LoadHit, 64, 1_000_000),
            res.thr(s, Op::LoadHit, 64, 10_000),
        ) {
            (Some(big), Some(small)) => t.push(Target {
                text,
                measured: format!(
                    "{:.2}× ({} vs {} ops/s)",
                    big / small,
                    fmt_ops(big),
                    fmt_ops(small)
                ),
                met: Some(big / small >= 0.8),
            }),
            _ => t.push(Target {
                text,
                measured: "not measured in this run".into(),
                met: None,
            }),
        }
    }
    t
}

fn medium_label(m: Medium) -> &'static str {
    match m {
        Medium::Memory => "In memory",
        Medium::Redis => "Redis (private redis-server on loopback)",
        Medium::File => "Files (on disk, under the system temp dir)",
        Medium::Postgres => "PostgreSQL (private server on loopback, fsync off)",
    }
}

fn render(rows: &[Row], extras: &Extras, meta: &Meta) -> String {
    let res = Results { rows };
    let mut s = String::new();
    let cmd = if meta.quick {
        "cargo bench -p sessionkit-bench -- --quick"
    } else {
        "cargo bench -p sessionkit-bench"
    };
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(
        s,
        "_Generated by `{cmd}` in {:.0} s; everything between the markers is rewritten by each run._\n",
        meta.duration.as_secs_f64()
    );
    let _ = writeln!(s, "- Machine: {}", machine());
    let _ = writeln!(
        s,
        "- Load average (1/5/15 min) before the run: {}; after: {}",
        meta.load_before, meta.load_after
    );
    let _ = writeln!(s, "- Versions: {}", versions());
    let _ = writeln!(
        s,
        "- Runtime: tokio multi-thread, 2 workers; 1 task = one request at a time, 64 tasks = 64 concurrent requests. Each cell: warm-up, then a fixed duration; latency is per operation (HDR histogram)."
    );
    let _ = writeln!(
        s,
        "- Session: 10 fields, ~1 KiB (strings, integers, a list of 20 small structs). Population: sessions stored before measuring.\n"
    );

    let _ = writeln!(s, "### Targets (64 tasks, 10⁴ sessions unless said)\n");
    let _ = writeln!(s, "| target | measured | met? |\n|---|---|---|");
    for t in targets(&res, extras) {
        let met = match t.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "—",
        };
        let _ = writeln!(s, "| {} | {} | {met} |", t.text, t.measured);
    }

    for medium in [
        Medium::Memory,
        Medium::Redis,
        Medium::File,
        Medium::Postgres,
    ] {
        let subjects = res.subjects(medium);
        if subjects.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "\n### {} — 10⁴ sessions\n\n| subject | operation | 1 task ops/s | p50 | p99 | 64 tasks ops/s | p50 | p99 |\n|---|---|--:|--:|--:|--:|--:|--:|",
            medium_label(medium)
        );
        for (subject, _) in &subjects {
            for op in Op::ALL {
                let one = res.row(subject, op, 1, 10_000);
                let many = res.row(subject, op, 64, 10_000);
                if one.is_none() && many.is_none() {
                    continue;
                }
                let cell = |r: Option<&Row>| match r {
                    Some(r) => {
                        let err = if r.sample.errors > 0 {
                            format!(" ({} errors)", r.sample.errors)
                        } else {
                            String::new()
                        };
                        format!(
                            "{}{err} | {} | {}",
                            fmt_ops(r.sample.throughput()),
                            fmt_ns(r.sample.p50_ns),
                            fmt_ns(r.sample.p99_ns)
                        )
                    }
                    None => "— | — | —".into(),
                };
                let _ = writeln!(
                    s,
                    "| {subject} | {} | {} | {} |",
                    op.label(),
                    cell(one),
                    cell(many)
                );
            }
        }

        // Ratios of each sessionkit subject to every other subject of the medium.
        let others: Vec<&(String, Kind)> =
            subjects.iter().filter(|(_, k)| *k != Kind::Ours).collect();
        let ours: Vec<&(String, Kind)> =
            subjects.iter().filter(|(_, k)| *k == Kind::Ours).collect();
        if !ours.is_empty() && !others.is_empty() {
            let _ = write!(
                s,
                "\nThroughput ratios, sessionkit ÷ peer or floor (64 tasks, 10⁴ sessions):\n\n| sessionkit | operation |"
            );
            for (o, _) in &others {
                let _ = write!(s, " ÷ {o} |");
            }
            let _ = write!(s, "\n|---|---|");
            for _ in &others {
                let _ = write!(s, "--:|");
            }
            let _ = writeln!(s);
            for (us, _) in &ours {
                for op in Op::ALL {
                    let Some(mine) = res.thr(us, op, 64, 10_000) else {
                        continue;
                    };
                    let _ = write!(s, "| {us} | {} |", op.label());
                    for (o, _) in &others {
                        match res.thr(o, op, 64, 10_000) {
                            Some(theirs) => {
                                let _ = write!(s, " {:.2}× |", mine / theirs);
                            }
                            None => {
                                let _ = write!(s, " — |");
                            }
                        }
                    }
                    let _ = writeln!(s);
                }
            }
        }
    }

    // Scaling with the number of stored sessions.
    let scaled: Vec<&Row> = rows.iter().filter(|r| r.population > 10_000).collect();
    if !scaled.is_empty() {
        let _ = writeln!(
            s,
            "\n### Scaling with stored sessions (64 tasks, ops/s)\n\n| subject | operation | 10⁴ | 10⁵ | 10⁶ | 10⁶ ÷ 10⁴ |\n|---|---|--:|--:|--:|--:|"
        );
        let mut seen: Vec<(String, Op)> = Vec::new();
        for r in &scaled {
            if seen.contains(&(r.subject.clone(), r.op)) {
                continue;
            }
            seen.push((r.subject.clone(), r.op));
            let at = |p| res.thr(&r.subject, r.op, 64, p);
            let f = |x: Option<f64>| x.map_or("—".into(), fmt_ops);
            let ratio = match (at(1_000_000), at(10_000)) {
                (Some(a), Some(b)) => format!("{:.2}×", a / b),
                _ => "—".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {ratio} |",
                r.subject,
                r.op.label(),
                f(at(10_000)),
                f(at(100_000)),
                f(at(1_000_000))
            );
        }
    }

    // Redis round trips and bytes.
    let redis_rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.redis.is_some() && r.tasks == 64 && r.population == 10_000)
        .collect();
    if !redis_rows.is_empty() {
        let _ = writeln!(
            s,
            "\n### Redis: round trips, commands, writes and bytes per operation (server `INFO` deltas, 10⁴ sessions)\n\nRound trips are the server's socket reads during the 1-task run (one request in flight at a time, so one read per round trip; a pipeline counts once). Commands include those a Lua script runs; dataset changes are Redis's own change counter (one per hash field written). The other columns are from the 64-task run.\n\n| subject | operation | round trips/op | commands/op | dataset changes/op | bytes sent to Redis/op |\n|---|---|--:|--:|--:|--:|"
        );
        for r in redis_rows {
            let Some(c) = r.redis else { continue };
            let n = r.sample.ops.max(1) as f64;
            let trips = res
                .row(&r.subject, r.op, 1, r.population)
                .and_then(|one| {
                    one.redis
                        .map(|c1| c1.reads as f64 / one.sample.ops.max(1) as f64)
                })
                .map_or("—".into(), |t| format!("{t:.2}"));
            let _ = writeln!(
                s,
                "| {} | {} | {trips} | {:.2} | {:.2} | {:.0} |",
                r.subject,
                r.op.label(),
                c.calls as f64 / n,
                c.writes as f64 / n,
                c.net_in as f64 / n
            );
        }
    }

    let _ = writeln!(s, "\n### Other figures\n");
    let _ = writeln!(
        s,
        "Resident memory growth for {} sessions (fresh process each, `/proc/self/statm`):\n\n| store | resident MiB per 10⁵ sessions | bytes per session |\n|---|--:|--:|",
        RSS_SESSIONS
    );
    for (who, bytes) in &extras.rss {
        match bytes {
            Some(b) => {
                let _ = writeln!(
                    s,
                    "| {who} | {:.1} | {:.0} |",
                    *b as f64 / 1024.0 / 1024.0,
                    *b as f64 / RSS_SESSIONS as f64
                );
            }
            None => {
                let _ = writeln!(s, "| {who} | failed | — |");
            }
        }
    }
    let _ = writeln!(
        s,
        "\nOne getter on a 50-field session ({}): {:.0} ns; decoding the whole 50-field record with rmp-serde: {:.0} ns ({:.1}× the getter).",
        extras.getter_via,
        extras.getter_ns,
        extras.whole_decode_ns,
        extras.whole_decode_ns / extras.getter_ns.max(1e-9)
    );
    let _ = writeln!(
        s,
        "\nOne-key save of a ~100 KiB session:\n\n| store | bytes sent | whole record |\n|---|--:|--:|"
    );
    for (who, sent, whole) in &extras.big_save {
        let _ = writeln!(s, "| {who} | {sent} | {whole} |");
    }
    let _ = writeln!(
        s,
        "\nStore writes during read-only requests:\n\n| subject | writes | requests |\n|---|--:|--:|"
    );
    for (who, writes, requests) in &extras.read_only_writes {
        let _ = writeln!(s, "| {who} | {writes} | {requests} |");
    }
    let _ = writeln!(
        s,
        "\nOne save on one session, one task, by kind of change (mean µs; the same run):\n\n| store | one-key insert | increment | push (capped at 100) |\n|---|--:|--:|--:|"
    );
    for c in &extras.op_costs {
        let _ = writeln!(
            s,
            "| sessionkit {} | {:.2} | {:.2} | {:.2} |",
            c.store, c.insert_us, c.increment_us, c.push_us
        );
    }
    let _ = writeln!(s, "\n![throughput per subject](bench/throughput.svg)\n");
    let _ = writeln!(s, "{END}");
    s
}

/// Replaces the generated section of BENCHMARKS.md (creating the file if needed) and redraws
/// the plot.
pub(crate) fn write(rows: &[Row], extras: &Extras, meta: &Meta) -> anyhow::Result<()> {
    let path = repo_root().join("BENCHMARKS.md");
    let generated = render(rows, extras, meta);
    let text = match std::fs::read_to_string(&path) {
        Ok(old) => match (old.find(BEGIN), old.find(END)) {
            (Some(a), Some(b)) if a < b => {
                format!(
                    "{}{}{}",
                    &old[..a],
                    generated.trim_end(),
                    &old[b + END.len()..]
                )
            }
            _ => format!("{}\n\n{generated}", old.trim_end()),
        },
        Err(_) => format!("# Benchmarks\n\n{generated}"),
    };
    std::fs::write(&path, text)?;
    eprintln!("wrote {}", path.display());
    let svg = repo_root().join("bench").join("throughput.svg");
    crate::plot::draw(rows, &svg)?;
    eprintln!("wrote {}", svg.display());
    Ok(())
}
