//! Unit tests of the invalidation channel: key names, cluster masters, flushes.

use super::*;

#[test]
fn only_session_keys_are_announced() {
    let hex = "ab".repeat(32);
    let key = session_key("sk:", format!("sk:{{{hex}}}").as_bytes());
    assert_eq!(key.map(|k| k.to_hex()), Some(hex.clone()));
    for other in [
        format!("sk:owner:{{{hex}}}"),
        format!("other:{{{hex}}}"),
        format!("sk:{{{hex}"),
        "sk:{abc}".to_owned(),
        format!("sk:{{{}}}", "zz".repeat(32)),
    ] {
        assert!(session_key("sk:", other.as_bytes()).is_none(), "{other}");
    }
}

#[tokio::test]
async fn a_null_invalidation_is_a_flush() {
    use sessionkit::store::Invalidation;
    let hub = InvalidationHub::new(8);
    let mut feed = hub.subscribe();
    let hex = "cd".repeat(32);
    let names = [format!("sk:owner:{{{hex}}}"), format!("sk:{{{hex}}}")];
    let keys = names
        .iter()
        .map(|n| Value::BulkString(n.as_bytes().to_vec()))
        .collect();
    announce("sk:", &hub, &[Value::Array(keys)]);
    announce("sk:", &hub, &[Value::Nil]);
    let key = SessionKey::from_hex(&hex).map(Invalidation::Key);
    assert_eq!(feed.next().await, key);
    assert_eq!(feed.next().await, Some(Invalidation::Lost));
    assert_eq!(feed.next().await, Some(Invalidation::Restored));
}

#[test]
fn masters_are_read_from_cluster_slots() {
    let node = |host: &str, port: i64| {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    };
    let reply = Value::Array(vec![
        Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            node("127.0.0.1", 7001),
            node("127.0.0.1", 7004),
        ]),
        Value::Array(vec![Value::Int(5461), Value::Int(10922), node("", 7002)]),
        Value::Array(vec![
            Value::Int(10923),
            Value::Int(16383),
            node("127.0.0.1", 7001),
        ]),
    ]);
    assert_eq!(
        master_addrs(&reply, "10.0.0.9:7002"),
        vec![
            ("10.0.0.9".to_owned(), 7002),
            ("127.0.0.1".to_owned(), 7001)
        ]
    );
    assert!(master_addrs(&Value::Nil, "x:1").is_empty());
}
