//! Typed sessions round-trip through stores: what a typed struct writes is what a store
//! keeps and gives back, readable both typed and as a dictionary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sessionkit::store::{ChangeSet, Record};
use sessionkit::{MemoryStore, Session, SessionData, SessionId, Store, TieredStore};
use sessionkit_backends::FileStore;

/// Creates a record from a typed session, loads it, changes one typed field, applies that
/// change, and loads again. Add a store with one `#[tokio::test]` calling this.
async fn typed_round_trip<S: Store + ?Sized>(store: &S) {
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Item {
        sku: String,
        qty: u32,
    }

    #[derive(SessionData, Debug, Clone, PartialEq)]
    #[session(prefix = "shop")]
    struct Shopper {
        user_id: Option<u64>,
        #[session(default)]
        visits: u32,
        #[session(rename = "items")]
        cart: Vec<Item>,
    }

    let shopper = Shopper {
        user_id: Some(42),
        visits: 1,
        cart: vec![Item {
            sku: "tea".into(),
            qty: 2,
        }],
    };
    let session = Session::new();
    shopper.store(&session).unwrap();
    session.insert("theme", "dark").unwrap();

    let key = SessionId::generate().unwrap().key();
    let record = Record::from_parts(
        fields_of(&session),
        SystemTime::now() + Duration::from_secs(600),
        None,
    );
    store.create(&key, &record).await.unwrap();

    let loaded = Session::from_fields(store.load(&key).await.unwrap().unwrap().record.fields);
    assert_eq!(Shopper::load(&loaded).unwrap(), shopper);
    assert_eq!(
        loaded.get::<String>("theme").unwrap().as_deref(),
        Some("dark")
    );
    assert_eq!(loaded.get::<u64>(Shopper::USER_ID_KEY).unwrap(), Some(42));

    // One typed change becomes one key in the change set.
    let view = Shopper::view(&loaded);
    view.set_visits(view.visits().unwrap() + 1).unwrap();
    let changes = {
        let mut change_set = ChangeSet::default();
        change_set.set = BTreeMap::from([(
            Shopper::VISITS_KEY.to_owned(),
            Bytes::copy_from_slice(loaded.get_raw(Shopper::VISITS_KEY).unwrap().as_bytes()),
        )]);
        change_set
    };
    store.apply(&key, &changes).await.unwrap();

    let again = Session::from_fields(store.load(&key).await.unwrap().unwrap().record.fields);
    assert_eq!(
        Shopper::load(&again).unwrap(),
        Shopper {
            visits: 2,
            ..shopper
        }
    );
}

fn fields_of(session: &Session) -> BTreeMap<String, Bytes> {
    session
        .iter()
        .map(|raw| (raw.key().to_owned(), Bytes::copy_from_slice(raw.as_bytes())))
        .collect()
}

#[tokio::test]
async fn memory_store() {
    typed_round_trip(&MemoryStore::new()).await;
}

#[tokio::test]
async fn tiered_memory_memory() {
    typed_round_trip(&TieredStore::new(MemoryStore::new(), MemoryStore::new())).await;
}

#[tokio::test]
async fn arc_dyn_store() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    typed_round_trip(&store).await;
}

#[tokio::test]
async fn box_dyn_store() {
    let store: Box<dyn Store> = Box::new(MemoryStore::new());
    typed_round_trip(&store).await;
}

async fn file_store() -> (FileStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path().join("sessions")).await.unwrap();
    (store, dir)
}

#[tokio::test]
async fn file() {
    let (store, _dir) = file_store().await;
    typed_round_trip(&store).await;
}

#[tokio::test]
async fn tiered_memory_file() {
    let (store, _dir) = file_store().await;
    typed_round_trip(&TieredStore::new(MemoryStore::new(), store)).await;
}
