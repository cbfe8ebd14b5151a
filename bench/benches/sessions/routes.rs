//! Redis commands per request of the example site's routes (issue 15): the site runs in
//! process on `RedisStore` alone (`StoreKind::Redis`, its own private redis-server), a client
//! walks through the routes, and every request's cost is the delta of `INFO commandstats`
//! (commands scripts run included, the `INFO` itself excluded).
//!
//! Runs without a filter or with `routes`; prints its table (copied into BENCHMARKS.md by
//! hand).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use sessionkit::manager::ManualClock;
use sessionkit_examples::site::StoreKind;
use sessionkit_tests::site::{Client, Site};

/// Whether this part runs for the given filter.
pub(crate) fn wanted(filter: Option<&str>) -> bool {
    filter.is_none_or(|f| "routes".contains(&f.to_lowercase()))
}

/// How many times each route is sent, in the steady state, to average over.
const REPEAT: u64 = 20;

/// Every command the server ran so far, by name, except `INFO`: its calls and the server's
/// time in it (µs; a script's time includes the commands it ran, which count their own too).
async fn commands(conn: &mut MultiplexedConnection) -> anyhow::Result<Vec<(String, u64, u64)>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    Ok(info
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let field = |key: &str| -> Option<u64> {
                rest.split(',')
                    .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))?
                    .parse()
                    .ok()
            };
            Some((name.to_owned(), field("calls")?, field("usec")?))
        })
        .filter(|(name, _, _)| name != "info")
        .collect())
}

/// The commands run between two snapshots, per request: the total, the breakdown, and the
/// server's time in what the site sent (`EVALSHA` and `HGETALL`; a script's time includes the
/// commands it ran, so those are not summed again).
fn per_request(
    before: &[(String, u64, u64)],
    after: &[(String, u64, u64)],
    requests: u64,
) -> (f64, String, f64) {
    let mut total = 0;
    let mut usec = 0;
    let mut parts = Vec::new();
    for (name, calls, time) in after {
        let (was, was_time) = before
            .iter()
            .find(|(n, _, _)| n == name)
            .map_or((0, 0), |(_, c, t)| (*c, *t));
        let delta = calls - was;
        if matches!(name.as_str(), "evalsha" | "hgetall") {
            usec += time - was_time;
        }
        if delta > 0 {
            total += delta;
            parts.push(format!(
                "{} {}",
                name.to_uppercase(),
                fmt(delta as f64 / requests as f64)
            ));
        }
    }
    (
        total as f64 / requests as f64,
        parts.join(", "),
        usec as f64 / requests as f64,
    )
}

fn fmt(v: f64) -> String {
    if (v - v.round()).abs() < 0.005 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Sends `method path` `REPEAT` times as `client`, a second apart on the site's clock, and
/// returns the commands per request.
async fn measure(
    admin: &mut MultiplexedConnection,
    clock: &ManualClock,
    client: &mut Client,
    method: &str,
    path: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<(f64, String, f64)> {
    let before = commands(admin).await?;
    for _ in 0..REPEAT {
        // A second between requests, as between a visitor's clicks: a write moves the
        // session's expiry, as it would on a real clock.
        clock.advance(Duration::from_secs(1));
        let reply = client.send(method, path, form).await;
        anyhow::ensure!(
            reply.status < 400,
            "{method} {path}: status {}",
            reply.status
        );
    }
    let after = commands(admin).await?;
    Ok(per_request(&before, &after, REPEAT))
}

pub(crate) async fn run() -> anyhow::Result<()> {
    eprintln!("== Redis commands per request of the example site (issue 15) ==");
    let site = Site::start(StoreKind::Redis, |c| c).await;
    let server = site
        .redis()
        .ok_or_else(|| anyhow::anyhow!("the site has no redis-server"))?;
    let mut admin = redis::Client::open(server.url())?
        .get_multiplexed_async_connection()
        .await?;
    let mut rows: Vec<(String, (f64, String, f64))> = Vec::new();

    // A first visit: no cookie, so the session is created.
    let before = commands(&mut admin).await?;
    for _ in 0..REPEAT {
        let mut fresh = site.client();
        fresh.send("GET", "/", &[]).await;
    }
    let after = commands(&mut admin).await?;
    rows.push((
        "GET / (first visit: creates the session)".into(),
        per_request(&before, &after, REPEAT),
    ));

    let mut visitor = site.client();
    visitor.send("GET", "/", &[]).await;
    rows.push((
        "GET /api/session (read-only)".into(),
        measure(
            &mut admin,
            &site.clock,
            &mut visitor,
            "GET",
            "/api/session",
            &[],
        )
        .await?,
    ));
    rows.push((
        "GET / (counts the visit: a write)".into(),
        measure(&mut admin, &site.clock, &mut visitor, "GET", "/", &[]).await?,
    ));
    rows.push((
        "POST /cart".into(),
        measure(
            &mut admin,
            &site.clock,
            &mut visitor,
            "POST",
            "/cart",
            &[("item", "book")],
        )
        .await?,
    ));

    // Logged in: the session has an owner, which the owner index follows.
    let mut user = site.client();
    user.send("GET", "/", &[]).await;
    let before = commands(&mut admin).await?;
    user.send("POST", "/login", &[("username", "alice")]).await;
    let after = commands(&mut admin).await?;
    rows.push((
        "POST /login (moves the session, sets the owner)".into(),
        per_request(&before, &after, 1),
    ));
    rows.push((
        "GET /api/session, logged in (read-only)".into(),
        measure(
            &mut admin,
            &site.clock,
            &mut user,
            "GET",
            "/api/session",
            &[],
        )
        .await?,
    ));
    rows.push((
        "POST /cart, logged in".into(),
        measure(
            &mut admin,
            &site.clock,
            &mut user,
            "POST",
            "/cart",
            &[("item", "pen")],
        )
        .await?,
    ));
    rows.push((
        "GET /, logged in".into(),
        measure(&mut admin, &site.clock, &mut user, "GET", "/", &[]).await?,
    ));

    eprintln!("| request | Redis commands per request | server µs per request | of which |");
    eprintln!("|---|--:|--:|---|");
    for (route, (total, parts, usec)) in rows {
        eprintln!("| {route} | {} | {usec:.1} | {parts} |", fmt(total));
    }
    Ok(())
}
