use super::*;

fn sample() -> Record {
    let mut r = Record::new(from_millis(1_900_000_000_000));
    r.fields.insert("a".into(), Bytes::from_static(&[1, 2, 3]));
    r.fields.insert("".into(), Bytes::new());
    r.owner = Some("alice".into());
    r
}

#[test]
fn record_round_trips() {
    let r = sample();
    assert_eq!(Record::decode(&r.encode().unwrap()).unwrap(), r);
}

#[test]
fn entry_round_trips() {
    let e = Entry::Record(sample());
    assert_eq!(Entry::decode(&e.encode().unwrap()).unwrap(), e);
    let a = Entry::Alias {
        to: SessionKey::from_bytes([7; 32]),
        until: from_millis(123_456),
        token: vec![1, 2],
    };
    assert_eq!(Entry::decode(&a.encode().unwrap()).unwrap(), a);
}

/// Every kind of entry, and a delete through it, ends at the instant it expires: live one
/// millisecond before, gone at `expires_at` itself (the Store contract's expiry).
#[test]
fn liveness_ends_at_the_expiry_instant_for_every_kind() {
    let end = from_millis(1_000_000);
    let before = end - Duration::from_millis(1);
    let to = SessionKey::from_bytes([7; 32]);
    let record = Record::new(end);
    assert!(record.is_live_at(before) && !record.is_expired_at(before));
    assert!(!record.is_live_at(end) && record.is_expired_at(end));
    let entries = [
        Entry::Record(record),
        Entry::Alias {
            to,
            until: end,
            token: vec![1],
        },
        Entry::Tombstone { to, until: end },
    ];
    for e in &entries {
        assert!(e.is_live_at(before) && !e.is_live_at(end), "{e:?}");
        assert_eq!(Removed::of(Some(e), end), Removed::Nothing, "{e:?}");
        assert_ne!(Removed::of(Some(e), before), Removed::Nothing, "{e:?}");
        assert_eq!(e.left_by_delete(end), None, "{e:?}");
    }
    assert_eq!(Removed::of(Some(&entries[0]), before), Removed::Record);
    assert_eq!(
        Removed::of(Some(&entries[2]), before),
        Removed::Alias { to }
    );
    assert!(entries[1].resolves_at(before) && !entries[1].resolves_at(end));
    assert!(
        !entries[2].resolves_at(before),
        "a tombstone never resolves"
    );
}

#[test]
fn garbage_is_corrupt_not_a_panic() {
    for bad in [&b""[..], b"\xc1", b"\x92\x01", b"hello world", &[0xff; 64]] {
        assert!(matches!(Record::decode(bad), Err(Error::Corrupt { .. })));
        assert!(matches!(Entry::decode(bad), Err(Error::Corrupt { .. })));
    }
    let mut future = sample().encode().unwrap();
    // A record from a future version is refused, not misread.
    let wire = RecordWire {
        v: 99,
        expires_at_ms: 0,
        owner: None,
        fields: BTreeMap::new(),
    };
    future = rmp_serde::to_vec_named(&wire).unwrap_or(future);
    assert!(matches!(
        Record::decode(&future),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn apply_orders_clear_remove_set() {
    let mut r = sample();
    let mut c = ChangeSet {
        clear: true,
        ..ChangeSet::default()
    };
    c.set.insert("b".into(), Bytes::from_static(b"x"));
    c.owner = Some(None);
    r.apply(&c).unwrap();
    assert_eq!(r.fields.len(), 1);
    assert_eq!(r.owner, None);
}

fn int(n: i64) -> Bytes {
    Bytes::from(rmp_serde::to_vec(&n).unwrap())
}

#[test]
fn ops_apply_after_sets_and_see_clear_and_removals() {
    let mut r = sample();
    r.fields.insert("n".into(), int(5));
    r.fields.insert("m".into(), int(5));
    let mut c = ChangeSet::default();
    c.set.insert("s".into(), int(10));
    c.remove.insert("m".into());
    c.push_op("s", Op::Increment(1));
    c.push_op("m", Op::Increment(1));
    c.push_op("n", Op::Increment(1));
    c.push_op("n", Op::Increment(2));
    r.apply(&c).unwrap();
    assert_eq!(r.fields["s"], int(11), "the set comes first");
    assert_eq!(r.fields["m"], int(1), "a removed key starts from zero");
    assert_eq!(r.fields["n"], int(8), "ops on one key run in order");
    let mut cleared = ChangeSet {
        clear: true,
        ..ChangeSet::default()
    };
    cleared.push_op("n", Op::Increment(1));
    r.apply(&cleared).unwrap();
    assert_eq!(r.fields.len(), 1);
    assert_eq!(r.fields["n"], int(1));
}

#[test]
fn a_failing_op_leaves_the_record_untouched() {
    let mut r = sample();
    let before = r.clone();
    let mut c = ChangeSet {
        clear: true,
        expires_at: Some(from_millis(1)),
        owner: Some(None),
        ..ChangeSet::default()
    };
    c.set.insert("x".into(), Bytes::from_static(b"\xa3str"));
    c.push_op("b", Op::Increment(1));
    c.push_op("x", Op::Increment(1)); // "x" is set to a string by this very change set
    match r.apply(&c) {
        Err(Error::WrongType { key, .. }) => assert_eq!(key, "x"),
        other => panic!("expected a wrong-type error, got {other:?}"),
    }
    assert_eq!(r, before);
    assert!(!c.is_empty());
    assert!(
        ChangeSet {
            ops: BTreeMap::from([("k".to_owned(), Vec::new())]),
            ..ChangeSet::default()
        }
        .is_empty()
    );
}
