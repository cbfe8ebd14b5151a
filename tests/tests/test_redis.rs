//! What `RedisStore` promises beyond the conformance suite, checked against real servers the
//! tests start: one round trip per operation, writes proportional to the change, prefix
//! isolation, expiry held by Redis itself, corrupt data reported as such, and fault behaviour
//! (fail fast while Redis is down or frozen, recover by itself once it is back).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use redis::AsyncCommands as _;
use redis::aio::MultiplexedConnection;
use sessionkit::store::{ChangeSet, Error, Grace, Record, Store, TieredStore};
use sessionkit::{SessionId, SessionKey, store::to_millis};
use sessionkit_backends::redis::test_support::{owner_key, redis_key};
use sessionkit_backends::{FileStore, RedisConfig, RedisStore};
use sessionkit_tests::conformance::{enc, fresh_key, in_ms, record};
use sessionkit_tests::redis_server::{RedisCluster, RedisServer, admin, command_calls};

/// A second, plain client on the test's own server, named so its commands can be told apart.
async fn info_field(conn: &mut MultiplexedConnection, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The commands clients sent (not those scripts ran inside Redis, nor the admin's own) since
/// the last call, from a slow log that records everything.
async fn sent_commands(conn: &mut MultiplexedConnection) -> Vec<String> {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(10_000)
        .query_async(conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(conn)
        .await
        .unwrap();
    let mut sent = Vec::new();
    for entry in entries {
        let redis::Value::Array(parts) = entry else {
            panic!("slowlog entry {entry:?}")
        };
        // [id, time, duration, [command, args…], client address, client name]
        let addr: String = redis::from_redis_value_ref(&parts[4]).unwrap();
        let name: String = redis::from_redis_value_ref(&parts[5]).unwrap();
        let args: Vec<Vec<u8>> = redis::from_redis_value_ref(&parts[3]).unwrap();
        // Commands run by a script are logged with the script client's address `?:0`.
        if addr != "?:0" && name != "admin" {
            sent.push(String::from_utf8_lossy(&args[0]).to_uppercase());
        }
    }
    sent
}

async fn log_every_command(conn: &mut MultiplexedConnection) {
    for (param, value) in [
        ("slowlog-log-slower-than", "0"),
        ("slowlog-max-len", "10000"),
    ] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(param)
            .arg(value)
            .query_async(conn)
            .await
            .unwrap();
    }
    sent_commands(conn).await;
}

/// Redis keeps expiry in whole milliseconds: a record reads back with its expiry truncated,
/// never later.
fn assert_same(loaded: &Record, written: &Record) {
    assert_eq!(loaded.fields, written.fields);
    assert_eq!(loaded.owner, written.owner);
    assert_eq!(to_millis(loaded.expires_at), to_millis(written.expires_at));
}

fn set_one(name: &str, value: Bytes) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.set.insert(name.to_owned(), value);
    c
}

#[tokio::test]
async fn one_round_trip_per_operation() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.unwrap();
    let mut admin = admin(&server).await;
    log_every_command(&mut admin).await;

    let key = fresh_key();
    let mut r = record(&[("a", enc(1)), ("b", enc("two"))]);
    r.owner = Some("alice".into());
    store.create(&key, &r).await.unwrap();
    assert_eq!(sent_commands(&mut admin).await, ["EVALSHA"], "create");

    let before = command_calls(&mut admin, "hgetall").await;
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_same(&loaded.record, &r);
    assert_eq!(
        command_calls(&mut admin, "hgetall").await - before,
        1,
        "load"
    );
    assert_eq!(sent_commands(&mut admin).await, ["HGETALL"], "load");

    let mut c = set_one("a", enc(10));
    c.remove.insert("b".into());
    c.expires_at = Some(in_ms(7_200_000));
    c.owner = Some(Some("bob".into()));
    store.apply(&key, &c).await.unwrap();
    assert_eq!(sent_commands(&mut admin).await, ["EVALSHA"], "save");

    let to = fresh_key();
    let grace = Grace::new(in_ms(60_000), vec![1, 2, 3]);
    store.rename(&key, &to, Some(&grace)).await.unwrap();
    assert_eq!(sent_commands(&mut admin).await, ["EVALSHA"], "move");

    // Loading through the old key (grace window only) takes a second trip for the target.
    let via_alias = store.load(&key).await.unwrap().unwrap();
    assert_eq!(via_alias.moved.unwrap().to, to);
    assert_eq!(
        sent_commands(&mut admin).await,
        ["HGETALL", "HGETALL"],
        "load through alias"
    );

    assert_eq!(store.owned_by("bob").await.unwrap(), vec![to]);
    assert_eq!(sent_commands(&mut admin).await, ["EVALSHA"], "owned_by");

    store.delete(&to).await.unwrap();
    assert_eq!(sent_commands(&mut admin).await, ["EVALSHA"], "delete");
}

/// Every command Redis ran (scripts' inner commands included), except the admin's `INFO`.
async fn commands_run(conn: &mut MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter(|l| !l.starts_with("info:"))
        .filter_map(|l| {
            l.split_once("calls=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Redis's own work per operation (issue 15): a load is one `HGETALL`, a write of a session
/// without an owner at most four commands counting its `EVALSHA`, so a request that loads
/// and saves runs at most five; only a load through an alias takes a second `HGETALL`.
#[tokio::test]
async fn commands_per_operation_stay_few() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.unwrap();
    let mut admin = admin(&server).await;
    let mut fields: Vec<(String, Bytes)> = Vec::new();
    for i in 0..10 {
        fields.push((format!("field{i}"), enc(vec![i; 40])));
    }
    let refs: Vec<(&str, Bytes)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let key = fresh_key();

    let before = commands_run(&mut admin).await;
    store.create(&key, &record(&refs)).await.unwrap();
    let create = commands_run(&mut admin).await - before;
    assert!(create <= 4, "create ran {create} commands");

    let before = commands_run(&mut admin).await;
    let hgetall = command_calls(&mut admin, "hgetall").await;
    assert!(store.load(&key).await.unwrap().is_some());
    assert_eq!(commands_run(&mut admin).await - before, 1, "load");
    assert_eq!(
        command_calls(&mut admin, "hgetall").await - hgetall,
        1,
        "load"
    );
    assert!(store.load(&fresh_key()).await.unwrap().is_none());
    assert_eq!(
        commands_run(&mut admin).await - before,
        2,
        "load of an absent key"
    );

    // A request that changes one key: its load, then its save with the new expiry.
    let before = commands_run(&mut admin).await;
    let loaded = store.load(&key).await.unwrap().unwrap();
    let mut c = set_one("field3", enc("changed"));
    c.expires_at = Some(in_ms(7_200_000));
    c.ops
        .entry("counter".into())
        .or_default()
        .push(sessionkit::store::Op::Increment(2));
    store.apply(&key, &c).await.unwrap();
    let request = commands_run(&mut admin).await - before;
    assert!(request <= 5, "a writing request ran {request} commands");
    let after = store.load(&key).await.unwrap().unwrap();
    assert_eq!(after.record.fields["field3"], enc("changed"));
    assert_eq!(after.record.fields["counter"], enc(2));
    assert_eq!(
        after.record.fields["field1"],
        loaded.record.fields["field1"]
    );

    // The same expiry again: nothing to move, so no PEXPIREAT.
    let before = commands_run(&mut admin).await;
    let mut again = set_one("field4", enc(4));
    again.expires_at = c.expires_at;
    store.apply(&key, &again).await.unwrap();
    let same_expiry = commands_run(&mut admin).await - before;
    assert!(
        same_expiry <= 3,
        "a save keeping the expiry ran {same_expiry} commands"
    );

    // Through an alias: the alias, then the session it names.
    let to = fresh_key();
    let grace = Grace::new(in_ms(60_000), vec![7]);
    store.rename(&key, &to, Some(&grace)).await.unwrap();
    let before = commands_run(&mut admin).await;
    let hgetall = command_calls(&mut admin, "hgetall").await;
    let via = store.load(&key).await.unwrap().unwrap();
    assert_eq!(via.moved.unwrap().to, to);
    assert_eq!(via.record.fields["field3"], enc("changed"));
    assert_eq!(
        commands_run(&mut admin).await - before,
        2,
        "load through an alias"
    );
    assert_eq!(
        command_calls(&mut admin, "hgetall").await - hgetall,
        2,
        "load through an alias"
    );
}

#[tokio::test]
async fn first_use_after_a_script_flush_still_works() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.unwrap();
    let mut admin = admin(&server).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();
    let key = fresh_key();
    store.create(&key, &record(&[("a", enc(1))])).await.unwrap();
    assert!(store.load(&key).await.unwrap().is_some());
}

#[tokio::test]
async fn a_save_sends_only_the_change() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.unwrap();
    let mut admin = admin(&server).await;

    // 100 fields of 1 KiB: a 100 KiB session.
    let fields: Vec<(String, Bytes)> = (0..100)
        .map(|i| (format!("field-{i:03}"), Bytes::from(vec![b'x'; 1024])))
        .collect();
    let pairs: Vec<(&str, Bytes)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let key = fresh_key();

    let before = info_field(&mut admin, "stats", "total_net_input_bytes").await;
    store.create(&key, &record(&pairs)).await.unwrap();
    let after_create = info_field(&mut admin, "stats", "total_net_input_bytes").await;
    // The measure sees a whole session when one is sent.
    assert!(
        after_create - before > 100 * 1024,
        "create sent {}",
        after_create - before
    );

    store
        .apply(&key, &set_one("field-042", enc("changed")))
        .await
        .unwrap();
    let after_save = info_field(&mut admin, "stats", "total_net_input_bytes").await;
    let sent = after_save - after_create;
    eprintln!(
        "create sent {} bytes; saving one key sent {sent} bytes",
        after_create - before
    );
    assert!(
        sent < 2048,
        "saving one key of a 100 KiB session sent {sent} bytes"
    );

    let loaded = store.load(&key).await.unwrap().unwrap().record;
    assert_eq!(loaded.fields.len(), 100);
    assert_eq!(loaded.fields["field-042"], enc("changed"));
    assert_eq!(loaded.fields["field-041"].len(), 1024);
}

#[tokio::test]
async fn keys_are_prefixed_hashes_and_app_keys_do_not_interfere() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.unwrap();
    let mut admin = admin(&server).await;

    let id = SessionId::generate().unwrap();
    let key = id.key();
    let hex = key.to_hex();
    let mut r = record(&[("a", enc(1))]);
    r.owner = Some("alice@example.com".into());
    store.create(&key, &r).await.unwrap();

    // The application's own keys, named like the cookie value, or like ours without (or with
    // another) prefix.
    for name in [
        id.expose(),
        hex.clone(),
        format!("{{{hex}}}"),
        format!("other:{{{hex}}}"),
    ] {
        let _: () = admin.set(&name, "app data").await.unwrap();
    }
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_same(&loaded.record, &r);
    store.apply(&key, &set_one("b", enc(2))).await.unwrap();
    let app: String = admin.get(&hex).await.unwrap();
    assert_eq!(app, "app data");

    // Nothing but hashes under the prefix: no owner name, no session id.
    let mut ours: Vec<String> = admin.keys("sessionkit:*").await.unwrap();
    ours.sort();
    let owner_set = owner_key(&store, "alice@example.com");
    assert!(!owner_set.contains("alice"));
    let mut expected = vec![format!("sessionkit:{{{hex}}}"), owner_set];
    expected.sort();
    assert_eq!(ours, expected);

    // A store under another prefix in the same database sees none of it.
    let other = RedisStore::connect(RedisConfig::new(server.url()).with_prefix("tenant-b:"))
        .await
        .unwrap();
    assert!(other.load(&key).await.unwrap().is_none());
    assert!(
        other
            .owned_by("alice@example.com")
            .await
            .unwrap()
            .is_empty()
    );
    other
        .create(&key, &record(&[("b-only", enc(1))]))
        .await
        .unwrap();
    assert_eq!(
        store.load(&key).await.unwrap().unwrap().record.fields.len(),
        2
    );
}

#[tokio::test]
async fn bad_configuration_is_refused_before_connecting() {
    for prefix in ["", "has space", "brace{", "ctl\u{1}", &"p".repeat(65)] {
        let err = RedisStore::connect(RedisConfig::new("redis://127.0.0.1:1/").with_prefix(prefix))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{prefix:?}: {err:?}");
    }
    let err = RedisStore::open("http://127.0.0.1:1/").await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

/// Issue 15: a logged-in save that moves the expiry stays within the per-request command
/// budget. The owner set is extended to twice the session's remaining life at most once in
/// that span (recorded in the session as `m:ox`), so the following saves run no owner-index
/// commands at all — while the set never expires before a session it lists, and every save's
/// session stays listed.
#[tokio::test]
async fn a_logged_in_save_skips_the_owner_index_while_the_set_outlives_it() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.unwrap();
    let mut admin = admin(&server).await;
    let key = fresh_key();
    store.create(&key, &record(&[("a", enc(1))])).await.unwrap();
    // Login: the owner is set (the index is written and `m:ox` recorded).
    let login = {
        let mut change_set = ChangeSet::default();
        change_set.owner = Some(Some("alice".into()));
        change_set.expires_at = Some(in_ms(1_800_000));
        change_set
    };
    store.apply(&key, &login).await.unwrap();
    let mut extended = 0;
    for step in 1..=20u64 {
        // An active visitor: every save moves the expiry a little further.
        let mut c = set_one("n", enc(step));
        c.expires_at = Some(in_ms(1_800_000 + step * 120_000));
        let sadd = command_calls(&mut admin, "sadd").await;
        let before = commands_run(&mut admin).await;
        store.apply(&key, &c).await.unwrap();
        let ran = commands_run(&mut admin).await - before;
        if command_calls(&mut admin, "sadd").await > sadd {
            extended += 1;
        } else {
            // EVALSHA, HMGET, HSET, PEXPIREAT: with the request's HGETALL, 5.
            assert!(ran <= 4, "step {step}: a logged-in save ran {ran} commands");
        }
        let session: i64 = redis::cmd("PEXPIRETIME")
            .arg(redis_key(&store, &key))
            .query_async(&mut admin)
            .await
            .unwrap();
        let set: i64 = redis::cmd("PEXPIRETIME")
            .arg(owner_key(&store, "alice"))
            .query_async(&mut admin)
            .await
            .unwrap();
        assert!(set >= session, "step {step}: the owner set expires first");
        assert_eq!(store.owned_by("alice").await.unwrap(), vec![key]);
    }
    // 40 min of extensions on a 30 min session: the set was extended again at most once.
    assert!(extended <= 1, "the owner set was extended {extended} times");
    // Dropping the owner drops the record of the set's life: a new owner is indexed at once.
    let logout_owner = {
        let mut change_set = ChangeSet::default();
        change_set.owner = Some(None);
        change_set
    };
    store.apply(&key, &logout_owner).await.unwrap();
    assert!(store.owned_by("alice").await.unwrap().is_empty());
    let relogin = {
        let mut change_set = ChangeSet::default();
        change_set.owner = Some(Some("bob".into()));
        change_set
    };
    store.apply(&key, &relogin).await.unwrap();
    assert_eq!(store.owned_by("bob").await.unwrap(), vec![key]);
}

/// Redis holds each key exactly until the record's expiry (never longer), also after a save
/// moves it, and an alias until the end of its window or the record's expiry.
#[tokio::test]
async fn redis_expires_keys_at_the_record_expiry() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.unwrap();
    let admin = admin(&server).await;
    let expire_time = |key: String| {
        let mut admin = admin.clone();
        async move {
            let ms: i64 = redis::cmd("PEXPIRETIME")
                .arg(key)
                .query_async(&mut admin)
                .await
                .unwrap();
            ms
        }
    };
    let ms = |t: SystemTime| i64::try_from(to_millis(t)).unwrap();

    let key = fresh_key();
    let mut r = record(&[("a", enc(1))]);
    r.owner = Some("alice".into());
    store.create(&key, &r).await.unwrap();
    assert_eq!(expire_time(redis_key(&store, &key)).await, ms(r.expires_at));
    assert_eq!(
        expire_time(owner_key(&store, "alice")).await,
        ms(r.expires_at)
    );

    let later = in_ms(7_200_000);
    let c = {
        let mut change_set = ChangeSet::default();
        change_set.expires_at = Some(later);
        change_set
    };
    let saved_at = ms(SystemTime::now());
    store.apply(&key, &c).await.unwrap();
    assert_eq!(expire_time(redis_key(&store, &key)).await, ms(later));
    // The owner index lives at least as long as the sessions it lists (a save that extends it
    // gives it twice the session's remaining life, so the next saves need not).
    let set_expiry = expire_time(owner_key(&store, "alice")).await;
    assert!(set_expiry >= ms(later), "{set_expiry} < {}", ms(later));
    assert!(set_expiry <= saved_at + 2 * (ms(later) - saved_at) + 60_000);

    let to = fresh_key();
    let long_grace = Grace::new(in_ms(99_999_999), vec![]);
    store.rename(&key, &to, Some(&long_grace)).await.unwrap();
    assert_eq!(expire_time(redis_key(&store, &to)).await, ms(later));
    assert_eq!(expire_time(redis_key(&store, &key)).await, ms(later));

    let short_until = in_ms(30_000);
    let again = fresh_key();
    let grace = Grace::new(short_until, vec![]);
    store.rename(&to, &again, Some(&grace)).await.unwrap();
    assert_eq!(expire_time(redis_key(&store, &to)).await, ms(short_until));
}

#[tokio::test]
async fn corrupt_data_under_a_session_key_is_reported_not_rewritten() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.unwrap();
    let mut admin = admin(&server).await;

    let garbled = fresh_key();
    let _: () = admin
        .hset_multiple(
            redis_key(&store, &garbled),
            &[("m:v", "1"), ("m:exp", "tomorrow"), ("f:a", "x")],
        )
        .await
        .unwrap();
    let err = store.load(&garbled).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");

    let future_layout = fresh_key();
    let _: () = admin
        .hset_multiple(
            redis_key(&store, &future_layout),
            &[("m:v", "9"), ("m:exp", "99999999999999")],
        )
        .await
        .unwrap();
    let err = store.load(&future_layout).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");

    let not_a_hash = fresh_key();
    let _: () = admin
        .set(redis_key(&store, &not_a_hash), "junk")
        .await
        .unwrap();
    let err = store.load(&not_a_hash).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    // A save does not overwrite what it cannot read.
    let err = store
        .apply(&not_a_hash, &set_one("a", enc(1)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err:?}");
    let still: String = admin.get(redis_key(&store, &not_a_hash)).await.unwrap();
    assert_eq!(still, "junk");
}

/// Everything a request can do, on a store whose server is gone.
async fn every_operation_fails_with_unavailable(store: &RedisStore, key: &SessionKey) {
    let results: Vec<(&str, Result<(), Error>)> = vec![
        ("load", store.load(key).await.map(drop)),
        ("create", store.create(&fresh_key(), &record(&[])).await),
        ("apply", store.apply(key, &set_one("a", enc(1))).await),
        ("delete", store.delete(key).await.map(drop)),
        ("rename", store.rename(key, &fresh_key(), None).await),
        ("owned_by", store.owned_by("alice").await.map(drop)),
    ];
    for (op, result) in results {
        match result {
            Err(err @ Error::Unavailable { .. }) => assert!(err.is_transient()),
            other => panic!("{op} while Redis is down: {other:?}"),
        }
    }
}

/// Retries `op` (a fresh create and load) until the store answers again, for at most ~30 s.
async fn wait_until_recovered(store: &RedisStore) -> SessionKey {
    for _ in 0..300 {
        let key = fresh_key();
        match store.create(&key, &record(&[("back", enc(true))])).await {
            Ok(()) => return key,
            Err(Error::Unavailable { .. }) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(other) => panic!("unexpected error while Redis comes back: {other:?}"),
        }
    }
    panic!("the store did not recover after Redis came back");
}

#[tokio::test]
async fn killed_server_fails_fast_and_the_store_recovers_after_restart() {
    let mut server = RedisServer::start();
    let store = RedisStore::connect(
        RedisConfig::new(server.url())
            .with_connect_timeout(Duration::from_millis(500))
            .with_response_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let key = fresh_key();
    store.create(&key, &record(&[("a", enc(1))])).await.unwrap();

    server.stop();
    every_operation_fails_with_unavailable(&store, &key).await;
    // Still failing, still cleanly, on a second round.
    every_operation_fails_with_unavailable(&store, &key).await;

    server.restart();
    let key = wait_until_recovered(&store).await;
    let loaded = store.load(&key).await.unwrap().unwrap();
    assert_eq!(loaded.record.fields["back"], enc(true));
    // Scripts were lost with the restart; every kind of operation reloads what it needs.
    store.apply(&key, &set_one("b", enc(2))).await.unwrap();
    store.rename(&key, &fresh_key(), None).await.unwrap();
    assert!(store.owned_by("alice").await.unwrap().is_empty());
}

#[tokio::test]
async fn frozen_server_times_out_as_unavailable() {
    let server = RedisServer::start();
    let store = RedisStore::connect(
        RedisConfig::new(server.url())
            .with_connect_timeout(Duration::from_millis(300))
            .with_response_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let key = fresh_key();
    store.create(&key, &record(&[("a", enc(1))])).await.unwrap();

    server.pause();
    let err = store.load(&key).await.unwrap_err();
    server.resume();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");

    for _ in 0..300 {
        match store.load(&key).await {
            Ok(loaded) => {
                assert!(loaded.is_some());
                return;
            }
            Err(Error::Unavailable { .. }) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(other) => panic!("unexpected error after resume: {other:?}"),
        }
    }
    panic!("the store did not recover after the server resumed");
}

#[tokio::test]
async fn connecting_to_nothing_is_unavailable() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = RedisStore::open(&format!("redis://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
}

/// With Redis as the cache tier over files, a dead Redis costs speed, never a failed request,
/// and the store uses Redis again once it is back.
#[tokio::test]
async fn dead_redis_cache_tier_is_invisible_to_requests() {
    let mut server = RedisServer::start();
    let redis = RedisStore::connect(
        RedisConfig::new(server.url())
            .with_connect_timeout(Duration::from_millis(200))
            .with_response_timeout(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = FileStore::open(dir.path().join("sessions")).await.unwrap();
    let store = TieredStore::new(redis, files);
    let key = fresh_key();
    let mut r = record(&[("a", enc(1))]);
    r.owner = Some("alice".into());
    store.create(&key, &r).await.unwrap();
    assert!(store.load(&key).await.unwrap().is_some());

    server.stop();
    assert_same(&store.load(&key).await.unwrap().unwrap().record, &r);
    store.apply(&key, &set_one("b", enc(2))).await.unwrap();
    let other = fresh_key();
    store.create(&other, &record(&[])).await.unwrap();
    let moved = fresh_key();
    store.rename(&key, &moved, None).await.unwrap();
    assert_eq!(store.owned_by("alice").await.unwrap(), vec![moved]);
    store.delete(&other).await.unwrap();
    assert!(store.load(&other).await.unwrap().is_none());
    assert!(store.stats().cache_errors > 0);

    server.restart();
    let loaded = store.load(&moved).await.unwrap().unwrap();
    assert_eq!(loaded.record.fields.len(), 2);
    // Back in use: new sessions are written through to Redis again.
    let mut cached = false;
    for _ in 0..300 {
        let fresh = fresh_key();
        store.create(&fresh, &record(&[])).await.unwrap();
        if matches!(store.cache().load(&fresh).await, Ok(Some(_))) {
            cached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cached,
        "the cache tier was not used again after Redis came back"
    );
}

/// In a cluster the owner set and the sessions it lists live in different slots (and nodes);
/// the index still lists exactly the live sessions, and a stale member is pruned on read.
#[tokio::test]
async fn cluster_owner_index_spans_slots() {
    let cluster = RedisCluster::start();
    let store = RedisStore::connect(RedisConfig::cluster(cluster.urls()))
        .await
        .unwrap();
    let mut keys: Vec<SessionKey> = (0..12).map(|_| fresh_key()).collect();
    for k in &keys {
        let mut r = record(&[("x", enc(1))]);
        r.owner = Some("carol".into());
        store.create(k, &r).await.unwrap();
    }
    keys.sort();
    assert_eq!(store.owned_by("carol").await.unwrap(), keys);

    // Untag one, let one expire, delete one: all three leave the list.
    store
        .apply(&keys[0], &{
            let mut change_set = ChangeSet::default();
            change_set.owner = Some(None);
            change_set
        })
        .await
        .unwrap();
    store
        .apply(&keys[1], &{
            let mut change_set = ChangeSet::default();
            change_set.expires_at = Some(in_ms(200));
            change_set
        })
        .await
        .unwrap();
    store.delete(&keys[2]).await.unwrap();
    // And a member whose key now holds something that is not a session.
    let node = &cluster.nodes()[0];
    let client = redis::cluster::ClusterClient::new(vec![node.url()]).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    let _: () = conn.set(redis_key(&store, &keys[3]), "junk").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.owned_by("carol").await.unwrap(), keys[4..].to_vec());

    // The index outlives nothing it lists: extending a session extends the set.
    let later = in_ms(9_000_000);
    store
        .apply(&keys[4], &{
            let mut change_set = ChangeSet::default();
            change_set.expires_at = Some(later);
            change_set
        })
        .await
        .unwrap();
    let expire: i64 = redis::cmd("PEXPIRETIME")
        .arg(owner_key(&store, "carol"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(expire, i64::try_from(to_millis(later)).unwrap());
}

/// A fresh record with an owner, used by the cluster move test.
fn owned(owner: &str) -> Record {
    let mut r = record(&[("a", enc(1))]);
    r.owner = Some(owner.into());
    r
}

/// In a cluster the two keys of a move are in different slots: the move still carries the
/// record, the alias, and the owner index over.
#[tokio::test]
async fn cluster_move_crosses_slots() {
    let cluster = RedisCluster::start();
    let store = RedisStore::connect(RedisConfig::cluster(cluster.urls()))
        .await
        .unwrap();
    let (from, to) = (fresh_key(), fresh_key());
    store.create(&from, &owned("dave")).await.unwrap();
    let grace = Grace::new(in_ms(60_000), vec![4, 2]);
    store.rename(&from, &to, Some(&grace)).await.unwrap();
    let via_old = store.load(&from).await.unwrap().unwrap();
    assert_same(&via_old.record, &owned_fields_of(&store, &to).await);
    let moved = via_old.moved.unwrap();
    assert_eq!((moved.to, moved.token), (to, vec![4, 2]));
    assert_eq!(store.owned_by("dave").await.unwrap(), vec![to]);
    let err = store.apply(&from, &set_one("b", enc(2))).await.unwrap_err();
    assert!(matches!(err, Error::Gone), "{err:?}");
}

async fn owned_fields_of(store: &RedisStore, key: &SessionKey) -> Record {
    store.load(key).await.unwrap().unwrap().record
}

/// A cluster master going away fails requests with `Unavailable`, never anything else; once it
/// is back (same port, same node id) the store serves every slot again without a restart.
#[tokio::test]
async fn cluster_node_loss_is_unavailable_and_recovers() {
    let mut cluster = RedisCluster::start();
    let store = RedisStore::connect(
        RedisConfig::cluster(cluster.urls())
            .with_connect_timeout(Duration::from_millis(500))
            .with_response_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let keys: Vec<SessionKey> = (0..30).map(|_| fresh_key()).collect();
    for k in &keys {
        store.create(k, &record(&[("a", enc(1))])).await.unwrap();
    }

    cluster.node_mut(0).stop();
    let mut unavailable = 0;
    for k in &keys {
        match store.load(k).await {
            Ok(loaded) => assert!(loaded.is_some()),
            Err(err @ Error::Unavailable { .. }) => {
                assert!(err.is_transient());
                unavailable += 1;
            }
            Err(other) => panic!("load with a master down: {other:?}"),
        }
    }
    // 30 random keys over three masters: the lost master served some of them.
    assert!(unavailable > 0);

    cluster.node_mut(0).restart();
    cluster.wait_ok();
    'recovered: {
        for _ in 0..300 {
            let mut failed = false;
            for _ in 0..20 {
                let key = fresh_key();
                let ok = match store.create(&key, &record(&[("b", enc(2))])).await {
                    Ok(()) => store.load(&key).await.is_ok_and(|l| l.is_some()),
                    Err(Error::Unavailable { .. }) => false,
                    Err(other) => panic!("unexpected error while the node comes back: {other:?}"),
                };
                failed |= !ok;
            }
            if !failed {
                break 'recovered;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the store did not recover after the cluster node came back");
    }
}

#[tokio::test]
async fn lazy_store_starts_while_redis_is_down() {
    let mut server = RedisServer::start();
    server.stop();
    let store = RedisStore::connect(
        RedisConfig::new(server.url())
            .with_lazy_connect(true)
            .with_connect_timeout(Duration::from_millis(300))
            .with_response_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let err = store.load(&fresh_key()).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");

    server.restart();
    let key = wait_until_recovered(&store).await;
    assert!(store.load(&key).await.unwrap().is_some());
}

#[tokio::test]
async fn lazy_cluster_store_starts_while_the_cluster_is_down() {
    let mut cluster = RedisCluster::start();
    for i in 0..cluster.nodes().len() {
        cluster.node_mut(i).stop();
    }
    let store = RedisStore::connect(
        RedisConfig::cluster(cluster.urls())
            .with_lazy_connect(true)
            .with_connect_timeout(Duration::from_millis(300))
            .with_response_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let err = store.load(&fresh_key()).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");

    for i in 0..cluster.nodes().len() {
        cluster.node_mut(i).restart();
    }
    cluster.wait_ok();
    let key = wait_until_recovered(&store).await;
    assert!(store.load(&key).await.unwrap().is_some());
}

/// `rediss://` works (rustls), with a private CA given in the configuration, and a server
/// whose certificate the client cannot verify is refused, not trusted.
#[tokio::test]
async fn tls_with_a_private_ca() {
    let server = RedisServer::start_tls();
    assert!(server.url().starts_with("rediss://"));
    let store = RedisStore::connect(
        RedisConfig::new(server.url()).with_tls_root_cert(server.ca_cert_pem()),
    )
    .await
    .unwrap();
    let key = fresh_key();
    store.create(&key, &record(&[("a", enc(1))])).await.unwrap();
    assert!(store.load(&key).await.unwrap().is_some());

    // Without the CA, the system roots do not vouch for the test certificate: a failure that
    // retrying does not fix.
    let err = RedisStore::open(&server.url()).await.unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err:?}");
    let err = RedisStore::connect(
        RedisConfig::new("redis://127.0.0.1:1/").with_tls_root_cert(server.ca_cert_pem()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

/// Every task and every clone of the store shares one connection: requests open none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_shared_by_all_tasks() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.unwrap();
    let mut admin = admin(&server).await;
    let connections_before = info_field(&mut admin, "stats", "total_connections_received").await;

    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = fresh_key();
                store.create(&key, &record(&[("i", enc(i))])).await.unwrap();
                for round in 0..10 {
                    store
                        .apply(&key, &set_one("round", enc(round)))
                        .await
                        .unwrap();
                    assert!(store.load(&key).await.unwrap().is_some());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let connections_after = info_field(&mut admin, "stats", "total_connections_received").await;
    assert_eq!(connections_after, connections_before);
    // The store's connection and the admin's.
    assert_eq!(
        info_field(&mut admin, "clients", "connected_clients").await,
        2
    );
}

/// A wrong password is a failure retrying does not fix, and the password never shows in
/// errors or in the configuration's `Debug`.
#[tokio::test]
async fn passwords_are_used_and_never_shown() {
    let server = RedisServer::start_with_args(&["--requirepass", "s3cret-pw"]);
    let url = |password: &str| format!("redis://:{password}@127.0.0.1:{}/", server.port());

    let err = RedisStore::open(&url("wrong-pw")).await.unwrap_err();
    assert!(matches!(err, Error::Storage { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(!format!("{err:?} {err}").contains("wrong-pw"));

    let config = RedisConfig::new(url("s3cret-pw"));
    assert!(!format!("{config:?}").contains("s3cret-pw"));
    let store = RedisStore::connect(config).await.unwrap();
    let key = fresh_key();
    store.create(&key, &record(&[("a", enc(1))])).await.unwrap();
    assert!(store.load(&key).await.unwrap().is_some());
}

/// In a cluster the common operations stay at one round trip; the documented exceptions take
/// exactly the extra trips the module docs give.
#[tokio::test]
async fn cluster_round_trips() {
    let cluster = RedisCluster::start();
    let store = RedisStore::connect(RedisConfig::cluster(cluster.urls()))
        .await
        .unwrap();
    let mut admins = Vec::new();
    for node in cluster.nodes() {
        let mut conn = admin(node).await;
        log_every_command(&mut conn).await;
        admins.push(conn);
    }
    let mut sent = async || {
        let mut all = Vec::new();
        for conn in &mut admins {
            all.extend(sent_commands(conn).await);
        }
        // The cluster client's own housekeeping (topology refreshes) is not the store's doing.
        all.retain(|c| {
            !matches!(
                c.as_str(),
                "CLUSTER" | "PING" | "READONLY" | "CLIENT" | "HELLO"
            )
        });
        all.len()
    };

    let (key, to) = (fresh_key(), fresh_key());
    store.create(&key, &record(&[("a", enc(1))])).await.unwrap();
    assert_eq!(sent().await, 1, "create");
    store.load(&key).await.unwrap().unwrap();
    assert_eq!(sent().await, 1, "load");
    store.apply(&key, &set_one("b", enc(2))).await.unwrap();
    assert_eq!(sent().await, 1, "save");
    let grace = Grace::new(in_ms(60_000), vec![]);
    store.rename(&key, &to, Some(&grace)).await.unwrap();
    // Read, copy, swap.
    assert_eq!(sent().await, 3, "move");
    store.load(&key).await.unwrap().unwrap();
    // The alias, then its target in another slot.
    assert_eq!(sent().await, 2, "load through an alias");

    let owned = fresh_key();
    let mut r = record(&[]);
    r.owner = Some("erin".into());
    store.create(&owned, &r).await.unwrap();
    // The owner index first, then the session.
    assert_eq!(sent().await, 2, "create with an owner");
    store.apply(&owned, &set_one("c", enc(3))).await.unwrap();
    assert_eq!(sent().await, 1, "save without expiry change");
    let c = {
        let mut change_set = ChangeSet::default();
        change_set.expires_at = Some(in_ms(7_200_000));
        change_set
    };
    store.apply(&owned, &c).await.unwrap();
    // The save, then the owner index's expiry.
    assert_eq!(
        sent().await,
        2,
        "save moving the expiry of an owned session"
    );
}

/// The values and operations of `operations_match_record_apply_byte_for_byte`: integers at
/// every width boundary, floats, strings, binary, maps, arrays with 15, 16 and 65 536
/// elements, and malformed bytes.
fn op_cases() -> (Vec<Option<Bytes>>, Vec<sessionkit::store::Op>) {
    use sessionkit::store::Op;
    let ints: [i64; 22] = [
        0,
        1,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        4_294_967_295,
        4_294_967_296,
        (1 << 53) + 1,
        i64::MAX,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32_768,
        -32_769,
        -2_147_483_648,
        -2_147_483_649,
        i64::MIN,
    ];
    let mut values: Vec<Option<Bytes>> = vec![None];
    values.extend(ints.iter().map(|v| Some(enc(v))));
    let mut map = BTreeMap::new();
    map.insert("k", (1.5f32, "v"));
    let bin = Bytes::from(rmp_serde::to_vec(&serde_bytes_like(3)).unwrap());
    values.extend([
        Some(enc(u64::MAX)),
        Some(enc(0.1f64)),
        Some(enc(2.5f32)),
        Some(enc("s")),
        Some(bin.clone()),
        Some(enc(&map)),
        Some(enc(Vec::<u8>::new())),
        Some(enc(vec!["a", "b"])),
        Some(enc((
            1u8,
            -2i64,
            0.25f64,
            "x",
            &map,
            vec![Some(1)],
            None::<u8>,
        ))),
        Some(enc(vec![7u32; 15])),
        Some(enc(vec![7u32; 16])),
        Some(enc(vec![1u8; 65_536])),
        Some(Bytes::from_static(&[0x92, 0x01])),
        Some(Bytes::from_static(&[0xcd, 0x01])),
        Some(Bytes::from_static(&[0xc1])),
    ]);
    let mut ops: Vec<Op> = [
        0,
        1,
        -1,
        127,
        -160,
        1 << 31,
        -(1 << 31),
        (1 << 32) - 1,
        1 << 32,
        -(1 << 32),
        (1 << 53) + 3,
        i64::MAX,
        i64::MIN,
        i64::MIN + 1,
    ]
    .into_iter()
    .map(Op::Increment)
    .collect();
    ops.extend([
        Op::Push {
            value: enc("a"),
            max_len: None,
        },
        Op::Push {
            value: enc(&map),
            max_len: Some(16),
        },
        Op::Push {
            value: bin.clone(),
            max_len: Some(0),
        },
        Op::Add(enc("a")),
        Op::Add(enc("c")),
        Op::Add(enc(7u32)),
        Op::Remove(enc("a")),
        Op::Remove(enc(7u32)),
        Op::Remove(bin),
    ]);
    (values, ops)
}

fn serde_bytes_like(n: usize) -> sessionkit::Value {
    sessionkit::Value::Binary(vec![9; n])
}

/// The Lua scripts carry out every operation exactly as `Record::apply` does: the same bytes
/// on success, the same error naming the same key on failure, and nothing written then.
#[tokio::test]
async fn operations_match_record_apply_byte_for_byte() {
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.unwrap();
    let (values, ops) = op_cases();
    let mut checked = 0;
    for value in &values {
        for op in &ops {
            let key = fresh_key();
            let mut model = record(&[("other", enc(1))]);
            if let Some(v) = value {
                model.fields.insert("v".into(), v.clone());
            }
            store.create(&key, &model).await.unwrap();
            let mut c = set_one("other", enc(2));
            c.push_op("v", op.clone());
            let want = model.apply(&c).map(|()| model.fields.clone());
            let got = store.apply(&key, &c).await;
            let stored = store.load(&key).await.unwrap().unwrap().record.fields;
            match (&want, &got) {
                (Ok(fields), Ok(())) => assert_eq!(&stored, fields, "{value:?} {op:?}"),
                (Err(w), Err(g)) => {
                    assert_eq!(w.to_string(), g.to_string(), "{value:?} {op:?}");
                    assert!(
                        matches!(g, Error::WrongType { key, .. } | Error::Overflow { key } if key == "v"),
                        "{g:?}"
                    );
                    assert_eq!(stored, model.fields, "a failed save wrote nothing");
                }
                _ => panic!("{value:?} {op:?}: model {want:?}, redis {got:?}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, values.len() * ops.len());
}

/// Several operations on one key run in order, after the sets of the same save, in one
/// round trip, on a cluster too.
#[tokio::test]
async fn operations_run_in_order_in_one_round_trip() {
    use sessionkit::store::Op;
    let server = RedisServer::start();
    let store = RedisStore::open(&server.url()).await.unwrap();
    let mut admin = admin(&server).await;
    let key = fresh_key();
    store
        .create(&key, &record(&[("n", enc(40)), ("l", enc(vec![1]))]))
        .await
        .unwrap();
    log_every_command(&mut admin).await;
    let mut c = set_one("l", enc(vec![0]));
    c.push_op("n", Op::Increment(1));
    c.push_op("n", Op::Increment(1));
    c.push_op(
        "l",
        Op::Push {
            value: enc(1),
            max_len: None,
        },
    );
    c.push_op("l", Op::Add(enc(0)));
    c.push_op("fresh", Op::Remove(enc(0)));
    store.apply(&key, &c).await.unwrap();
    assert_eq!(sent_commands(&mut admin).await, ["EVALSHA"]);
    let fields = store.load(&key).await.unwrap().unwrap().record.fields;
    assert_eq!(fields["n"], enc(42));
    assert_eq!(fields["l"], enc(vec![0, 1]));
    assert_eq!(fields["fresh"], enc(Vec::<u8>::new()));

    let cluster = RedisCluster::start();
    let store = RedisStore::connect(RedisConfig::cluster(cluster.urls()))
        .await
        .unwrap();
    let key = fresh_key();
    store
        .create(&key, &record(&[("n", enc(40))]))
        .await
        .unwrap();
    store.apply(&key, &c).await.unwrap();
    let fields = store.load(&key).await.unwrap().unwrap().record.fields;
    assert_eq!(
        (fields["n"].clone(), fields["l"].clone()),
        (enc(42), enc(vec![0, 1]))
    );
}
