//! Server-side counters of the benchmark's private redis-server (started with the tests'
//! helper, `sessionkit_tests::redis_server`, never the shared one on 6379).

/// Server-side counters read with `INFO`: commands run, dataset changes, bytes received.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) calls: u64,
    pub(crate) writes: u64,
    pub(crate) net_in: u64,
    /// Socket reads the server processed: with one request in flight at a time, one per
    /// round trip (a pipeline is one).
    pub(crate) reads: u64,
}

pub(crate) async fn counters(
    conn: &mut redis::aio::MultiplexedConnection,
) -> anyhow::Result<Counters> {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let mut c = Counters::default();
    for line in stats.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, fields)) = rest.split_once(':') else {
            continue;
        };
        if name == "info" {
            continue;
        }
        let calls = fields
            .split(',')
            .find_map(|f| f.strip_prefix("calls="))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        c.calls += calls;
    }
    let stats: String = redis::cmd("INFO").arg("stats").query_async(conn).await?;
    let stat = |name: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    c.net_in = stat("total_net_input_bytes:");
    c.reads = stat("total_reads_processed:");
    // The dataset's change counter: every write, whether a plain command or a script.
    let stats: String = redis::cmd("INFO")
        .arg("persistence")
        .query_async(conn)
        .await?;
    c.writes = stats
        .lines()
        .find_map(|l| l.strip_prefix("rdb_changes_since_last_save:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(c)
}

impl std::ops::Sub for Counters {
    type Output = Counters;
    fn sub(self, o: Counters) -> Counters {
        Counters {
            calls: self.calls.saturating_sub(o.calls),
            writes: self.writes.saturating_sub(o.writes),
            net_in: self.net_in.saturating_sub(o.net_in),
            reads: self.reads.saturating_sub(o.reads),
        }
    }
}
