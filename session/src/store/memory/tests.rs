use std::time::Duration;

use super::*;
use crate::SessionId;

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(f)
}

/// The bounded form merges a save in place, where moka does not see it: nothing in moka
/// may drop the session at the expiry it had before the save.
#[test]
fn bounded_save_extending_the_expiry_keeps_the_session_past_the_old_one() {
    run(async {
        let store = MemoryStore::bounded(100);
        let key = SessionId::generate().expect("randomness").key();
        let soon = SystemTime::now() + Duration::from_millis(300);
        store
            .create(&key, &Record::new(soon))
            .await
            .expect("created");
        let mut changes = ChangeSet {
            expires_at: Some(SystemTime::now() + Duration::from_secs(60)),
            ..ChangeSet::default()
        };
        changes
            .set
            .insert("a".into(), bytes::Bytes::from_static(b"\x01"));
        store.apply(&key, &changes).await.expect("saved");
        std::thread::sleep(Duration::from_millis(600));
        let loaded = store.load(&key).await.expect("loads");
        let record = loaded.expect("still there after its first expiry").record;
        assert_eq!(record.fields["a"].as_ref(), b"\x01");
    });
}

/// A save that finds its entry replaced (a delete, a move) never lands: it reports the
/// session gone and nothing comes back.
#[test]
fn bounded_save_after_a_delete_is_gone_and_resurrects_nothing() {
    run(async {
        let store = MemoryStore::bounded(100);
        let key = SessionId::generate().expect("randomness").key();
        let later = SystemTime::now() + Duration::from_secs(60);
        store
            .create(&key, &Record::new(later))
            .await
            .expect("created");
        let Backing::Cache(cache) = &store.backing else {
            panic!("bounded is the bounded form")
        };
        // A save that fetched the entry just before the delete.
        let cell = cache.get(&key).expect("cached");
        store.delete(&key).await.expect("deleted");
        assert!(cell.state.lock().detached, "the delete detaches the entry");
        let mut changes = ChangeSet::default();
        changes
            .set
            .insert("a".into(), bytes::Bytes::from_static(b"\x01"));
        assert!(matches!(
            store.apply(&key, &changes).await,
            Err(Error::Gone)
        ));
        assert!(store.load(&key).await.expect("loads").is_none());
    });
}
