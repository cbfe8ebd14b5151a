use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

use super::*;
use crate::error::Error;
use crate::limits::Limits;
use crate::op::Op;
use crate::reserved::{FLASH_PREFIX, PERSIST as PERSIST_KEY};

#[test]
fn dictionary_methods() {
    let s = Session::new();
    assert!(s.is_empty());
    s.insert("a", 1u32).unwrap();
    s.insert("", "empty key").unwrap();
    s.insert("ключ", vec![1, 2]).unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(s.keys(), vec!["", "a", "ключ"]);
    assert_eq!(s.replace::<_, u32>("a", 2u32).unwrap(), Some(1));
    assert_eq!(s.take::<u32>("a").unwrap(), Some(2));
    assert!(!s.contains_key("a"));
    assert_eq!(s.get_or_insert_with("n", || 7u8).unwrap(), 7);
    assert_eq!(s.get_or_insert_with("n", || 9u8).unwrap(), 7);
    s.extend([("x", 1), ("y", 2)]).unwrap();
    s.retain(|raw| raw.key() != "x");
    assert!(!s.contains_key("x") && s.contains_key("y"));
    s.clear();
    assert!(s.is_empty());
}

#[test]
fn wrong_type_is_a_typed_error_and_does_not_block_others() {
    let s = Session::new();
    s.insert("name", "bob").unwrap();
    s.insert("n", 1).unwrap();
    match s.get::<Vec<u64>>("name") {
        Err(Error::Decode { key, expected, .. }) => {
            assert_eq!(key, "name");
            assert!(expected.contains("Vec"));
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    let changes = s.take_changes();
    assert_eq!(changes.set.len(), 2);
}

#[test]
fn reserved_keys_are_refused_and_hidden() {
    let s = Session::new();
    assert!(matches!(
        s.insert("__sk.created", 1),
        Err(Error::ReservedKey { .. })
    ));
    s.insert_unchecked("__sk.created".into(), &1u64).unwrap();
    assert!(s.is_empty());
    assert!(!s.contains_key("__sk.created"));
    assert!(s.get::<u64>("__sk.created").is_err());
    s.clear();
    let changes = s.take_changes();
    assert!(changes.clear);
    assert!(changes.set.contains_key("__sk.created"));
}

#[test]
fn changes_track_only_what_changed() {
    let mut fields = BTreeMap::new();
    fields.insert("keep".to_owned(), encode_value("keep", &1).unwrap());
    fields.insert("gone".to_owned(), encode_value("gone", &2).unwrap());
    let s = Session::from_fields(fields);
    let _: Option<u32> = s.get("keep").unwrap();
    assert!(s.take_changes().is_empty());
    s.insert("keep", 1).unwrap(); // same bytes: no change
    assert!(!s.is_modified());
    s.remove("gone");
    s.insert("new", 3).unwrap();
    let c = s.take_changes();
    assert_eq!(c.remove.iter().collect::<Vec<_>>(), vec!["gone"]);
    assert_eq!(c.set.keys().collect::<Vec<_>>(), vec!["new"]);
    assert!(!s.is_modified());
}

#[test]
fn dynamic_values_print_and_copy() {
    let s = Session::new();
    s.insert("m", std::collections::BTreeMap::from([("k", 1)]))
        .unwrap();
    let v = s.get_value("m").unwrap().unwrap();
    assert_eq!(v.to_string(), "{\"k\": 1}");
    s.insert_value("copy", &v).unwrap();
    let back: std::collections::BTreeMap<String, i32> = s.get("copy").unwrap().unwrap();
    assert_eq!(back["k"], 1);
}

#[test]
fn lifecycle_intents_are_recorded_not_acted_on() {
    let s = Session::new();
    assert_eq!(s.intent(), Intent::default());
    s.regenerate();
    s.set_owner(Some("u".into()));
    assert!(s.is_regenerating());
    assert_eq!(s.owner().as_deref(), Some("u"));
    assert!(s.has_user_data(), "an owner alone is worth saving");
    s.destroy();
    assert_eq!(
        s.intent(),
        Intent {
            destroy: true,
            ..Intent::default()
        }
    );
    assert_eq!(s.owner(), None);
    assert!(!s.has_user_data());

    let loaded = Session::new();
    loaded.set_loaded_owner(Some("u".into()));
    loaded.set_owner(Some("u".into()));
    assert_eq!(
        loaded.intent().owner,
        None,
        "setting the same owner changes nothing"
    );
    loaded.set_owner(None);
    assert_eq!(loaded.intent().owner, Some(None));
}

#[test]
fn persistence_choice_is_a_reserved_field() {
    let s = Session::new();
    assert_eq!(s.persistent(), None);
    s.set_persistent(true);
    assert_eq!(s.persistent(), Some(true));
    assert!(s.is_empty() && !s.has_user_data());
    assert!(s.take_changes().set.contains_key(PERSIST_KEY));
}

#[test]
fn flash_is_hidden_from_the_dictionary_and_fresh_ones_wait() {
    let s = Session::new();
    s.flash("n", 1u8).unwrap();
    assert!(s.is_empty() && s.has_user_data());
    assert_eq!(s.take_flash::<u8>("n").unwrap(), None);
    let mut fields = BTreeMap::new();
    fields.insert(format!("{FLASH_PREFIX}n"), encode_value("n", &1u8).unwrap());
    let later = Session::from_fields(fields);
    assert!(matches!(
        later.take_flash::<String>("n"),
        Err(Error::Decode { .. })
    ));
    assert_eq!(later.take_flash::<u8>("n").unwrap(), Some(1));
    assert_eq!(later.take_flash::<u8>("n").unwrap(), None);
    assert!(
        later
            .take_changes()
            .remove
            .contains(&format!("{FLASH_PREFIX}n"))
    );
    let off = Session::new();
    off.disable_flash();
    assert!(matches!(off.flash("n", 1), Err(Error::FlashDisabled)));
}

#[test]
fn operations_show_locally_and_travel_as_operations() {
    let mut fields = BTreeMap::new();
    fields.insert("visits".to_owned(), encode_value("visits", &10).unwrap());
    let s = Session::from_fields(fields);
    assert_eq!(s.increment("visits", 1).unwrap(), 11);
    assert_eq!(s.increment("visits", 1).unwrap(), 12);
    s.push("cart", "a").unwrap();
    assert!(s.add_to_set("seen", 1).unwrap());
    assert!(!s.add_to_set("seen", 1).unwrap());
    assert_eq!(s.get::<u32>("visits").unwrap(), Some(12));
    assert!(s.is_modified());
    let c = s.take_changes();
    assert!(c.set.is_empty() && c.remove.is_empty());
    assert_eq!(c.ops["visits"], vec![Op::Increment(1), Op::Increment(1)]);
    assert_eq!(c.ops["cart"].len(), 1);
    assert_eq!(
        c.ops["seen"].len(),
        2,
        "the store decides whether it is new"
    );
    assert!(!s.is_modified());
}

#[test]
fn a_set_replaces_pending_operations_and_absorbs_later_ones() {
    let s = Session::new();
    s.increment("n", 1).unwrap();
    s.insert("n", 1).unwrap(); // the same bytes as the local view, still a set now
    let c = s.take_changes();
    assert!(c.ops.is_empty());
    assert_eq!(c.set["n"], encode_value("n", &1).unwrap());

    s.insert("m", 5).unwrap();
    s.increment("m", 1).unwrap();
    s.remove("gone");
    s.push("r", 1).unwrap();
    assert!(
        s.remove("r"),
        "removing a key with pending operations drops them"
    );
    let c = s.take_changes();
    assert!(c.ops.is_empty());
    assert_eq!(c.set["m"], encode_value("m", &6).unwrap());
    assert!(c.remove.contains("r"));

    s.increment("k", 1).unwrap();
    s.clear();
    s.increment("k", 2).unwrap();
    let c = s.take_changes();
    assert!(c.clear && c.ops.is_empty());
    assert_eq!(c.set["k"], encode_value("k", &2).unwrap());
}

fn limited(limits: Limits) -> Session {
    let s = Session::new();
    s.set_limits(limits);
    s
}

fn limit_of<T: fmt::Debug>(result: Result<T>) -> crate::Limit {
    match result {
        Err(Error::LimitExceeded { limit, .. }) => limit,
        other => panic!("expected a limit error, got {other:?}"),
    }
}

#[test]
fn setters_refuse_what_breaks_a_limit_and_change_nothing() {
    use crate::Limit;
    let s = limited(Limits::default().with_max_value_bytes(16));
    let long = "x".repeat(20);
    assert_eq!(limit_of(s.insert("a", &long)), Limit::ValueBytes);
    assert_eq!(
        limit_of(s.replace::<_, String>("a", &long)),
        Limit::ValueBytes
    );
    assert_eq!(
        limit_of(s.get_or_insert_with("a", || long.clone())),
        Limit::ValueBytes
    );
    assert_eq!(
        limit_of(s.insert_value("a", &Value::from(long.as_str()))),
        Limit::ValueBytes
    );
    assert_eq!(limit_of(s.flash("n", &long)), Limit::ValueBytes);
    assert_eq!(
        limit_of(s.extend([("ok", "y"), ("a", long.as_str())])),
        Limit::ValueBytes
    );
    s.insert("list", [1u8; 10]).unwrap();
    s.take_changes();
    assert_eq!(
        limit_of(s.push("list", 1u8).and_then(|()| s.push("list", [0u8; 8]))),
        Limit::ValueBytes
    );
    assert_eq!(s.get::<Vec<u8>>("list").unwrap().map(|l| l.len()), Some(11));
    assert_eq!(
        s.keys(),
        ["list"],
        "a refused extend sets none of its pairs"
    );

    let s = limited(Limits::default().with_max_fields(3));
    s.extend([("a", 1), ("b", 2), ("c", 3)]).unwrap();
    assert_eq!(limit_of(s.insert("d", 4)), Limit::Fields);
    assert_eq!(limit_of(s.increment("d", 1)), Limit::Fields);
    assert_eq!(limit_of(s.extend([("a", 9), ("d", 4)])), Limit::Fields);
    s.insert("a", 10).unwrap(); // a replaced key adds no field
    s.remove("c");
    s.insert("d", 4).unwrap();
    assert_eq!(s.keys(), ["a", "b", "d"]);

    // Each entry counts its key and value: "k0".."k2" with 10-byte values are 12 each.
    let s = limited(
        Limits::default()
            .with_max_value_bytes(20)
            .with_max_record_bytes(36),
    );
    let ten = Bytes::from_static(&[0xc4, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
    for k in ["k0", "k1", "k2"] {
        s.insert_raw(
            k,
            RawValue {
                key: k.into(),
                bytes: ten.clone(),
            },
        )
        .unwrap();
    }
    let eleven = RawValue {
        key: "k0".into(),
        bytes: Bytes::from_static(&[0xc4, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    };
    assert_eq!(
        limit_of(s.insert_raw("k0", eleven.clone())),
        Limit::RecordBytes
    );
    s.remove("k2");
    s.insert_raw("k0", eleven).unwrap();
    assert_eq!(s.footprints().1.bytes, 25);
    s.clear();
    assert_eq!(s.footprints().1.bytes, 0);
}

#[test]
fn failing_operations_change_nothing() {
    let s = Session::new();
    s.insert("name", "bob").unwrap();
    s.take_changes();
    assert!(matches!(
        s.increment("name", 1),
        Err(Error::WrongType { key, .. }) if key == "name"
    ));
    assert!(matches!(s.push("name", 1), Err(Error::WrongType { .. })));
    s.insert("big", i64::MAX).unwrap();
    s.take_changes();
    assert!(matches!(s.increment("big", 1), Err(Error::Overflow { .. })));
    assert!(matches!(
        s.increment("__sk.created", 1),
        Err(Error::ReservedKey { .. })
    ));
    assert!(matches!(
        s.add_to_set("__sk.x", 1),
        Err(Error::ReservedKey { .. })
    ));
    assert!(!s.is_modified());
    assert_eq!(s.get::<String>("name").unwrap().as_deref(), Some("bob"));
    assert_eq!(s.get::<i64>("big").unwrap(), Some(i64::MAX));
}

#[test]
fn bounded_pushes_and_set_removals_report_the_local_view() {
    let s = Session::new();
    assert!(s.push_bounded("xs", 1, 1).unwrap());
    assert!(!s.push_bounded("xs", 2, 1).unwrap());
    assert!(!s.remove_from_set("xs", 2).unwrap());
    assert!(s.remove_from_set("xs", 1).unwrap());
    assert_eq!(s.get::<Vec<u8>>("xs").unwrap(), Some(vec![]));
    assert_eq!(s.take_changes().ops["xs"].len(), 4);
}
