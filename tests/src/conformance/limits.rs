//! The conformance behaviours of [`ChangeSet::limits`]: a store that merges with
//! `Record::apply` refuses, atomically, a save that would grow a session past its
//! [`Limits`]. Run by [`limits_suite!`](crate::limits_suite) on the stores that merge that
//! way (memory, file, and tiers over them); `RedisStore` merges in a script that does not
//! check the limits (the manager's own check bounds it), so its suite leaves these out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use sessionkit::store::{ChangeSet, Error, Op, Store};
use sessionkit::{Limit, Limits};

use super::ops::race;
use super::{enc, fresh_key, record};

fn limited(limits: Limits) -> ChangeSet {
    {
        let mut change_set = ChangeSet::default();
        change_set.limits = Some(limits);
        change_set
    }
}

fn limit_of(result: Result<(), Error>) -> Limit {
    match result {
        Err(Error::LimitExceeded { limit, .. }) => limit,
        other => panic!("expected a limit error, got {other:?}"),
    }
}

/// A save that breaks a bound is refused with the bound named, and the stored record is
/// exactly as before; a save that leaves an over-limit record no larger is accepted.
pub async fn saves_past_a_limit_write_nothing<S: Store + ?Sized>(store: &S) {
    let key = fresh_key();
    let start = record(&[("a", enc("x".repeat(100))), ("b", enc(1))]);
    store.create(&key, &start).await.unwrap();
    let limits = Limits::default()
        .with_max_fields(3)
        .with_max_value_bytes(150)
        .with_max_record_bytes(200);

    let mut big_value = limited(limits);
    big_value.set.insert("c".into(), enc("y".repeat(160)));
    big_value.set.insert("b".into(), enc(2)); // would be written along with it
    assert_eq!(
        limit_of(store.apply(&key, &big_value).await),
        Limit::ValueBytes
    );

    let mut fields = limited(limits);
    fields.set.insert("c".into(), enc(3));
    fields.push_op("d", Op::Increment(1));
    assert_eq!(limit_of(store.apply(&key, &fields).await), Limit::Fields);

    let mut bytes = limited(limits);
    bytes.set.insert("c".into(), enc("z".repeat(100)));
    assert_eq!(
        limit_of(store.apply(&key, &bytes).await),
        Limit::RecordBytes
    );

    let stored = store.load(&key).await.unwrap().expect("present").record;
    assert_eq!(
        stored.fields, start.fields,
        "a refused save changed the record"
    );

    // Tighter limits than the record already breaks: it may still shrink.
    let tight = Limits::default()
        .with_max_fields(1)
        .with_max_value_bytes(10)
        .with_max_record_bytes(10);
    let mut shrink = limited(tight);
    shrink.remove.insert("b".into());
    store.apply(&key, &shrink).await.unwrap();
    let mut grow = limited(tight);
    grow.set.insert("b".into(), enc(1));
    assert_eq!(limit_of(store.apply(&key, &grow).await), Limit::Fields);
}

/// N tasks × M pushes onto one array under a value bound, racing: the stored array never
/// passes the bound, and it holds exactly the pushes the store accepted.
pub async fn racing_pushes_never_pass_the_value_limit<S: Store + 'static>(store: Arc<S>) {
    const MAX: usize = 400;
    let key = fresh_key();
    store.create(&key, &record(&[])).await.unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    race(&store, move |store, t| {
        let accepted = counter.clone();
        async move {
            for i in 0..super::ops::ROUNDS {
                let mut c = limited(Limits::default().with_max_value_bytes(MAX));
                c.push_op(
                    "log",
                    Op::Push {
                        value: enc((t, i, "pad")),
                        max_len: None,
                    },
                );
                match store.apply(&key, &c).await {
                    Ok(()) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Error::LimitExceeded {
                        limit: Limit::ValueBytes,
                        ..
                    }) => {}
                    Err(other) => panic!("unexpected error {other}"),
                }
            }
        }
    })
    .await;
    let fields = store
        .load(&key)
        .await
        .unwrap()
        .expect("present")
        .record
        .fields;
    let log: &Bytes = &fields["log"];
    assert!(log.len() <= MAX, "the array grew to {} bytes", log.len());
    let elements: Vec<(usize, usize, String)> = rmp_serde::from_slice(log).unwrap();
    assert_eq!(elements.len(), accepted.load(Ordering::Relaxed));
    assert!(
        elements.len() < super::ops::TASKS * super::ops::ROUNDS,
        "no push was refused"
    );
}

/// Declares the limit behaviours for the store made by `$factory` (see
/// [`conformance_suite!`](crate::conformance_suite)); invoked beside it for every store whose
/// merge checks the limits.
#[macro_export]
macro_rules! limits_suite {
    ($factory:path) => {
        mod limits {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn saves_past_a_limit_write_nothing() {
                let (store, _guard) = $factory().await;
                $crate::conformance::limits::saves_past_a_limit_write_nothing(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_pushes_never_pass_the_value_limit() {
                let (store, _guard) = $factory().await;
                $crate::conformance::limits::racing_pushes_never_pass_the_value_limit(
                    ::std::sync::Arc::new(store),
                )
                .await;
            }
        }
    };
}
