//! The example site under overlapping requests of one visitor (two tabs on one session), on
//! every store setup: its counter and its cart use operations, so nothing is lost.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use sessionkit_examples::site::CART_LIMIT;
use sessionkit_tests::site::{Client, Site, SiteKind};

const PER_TAB: usize = 50;

/// Two tabs sharing one session, each sending `PER_TAB` requests made by `request` at once.
async fn two_tabs<F, Fut>(first: &Client, request: F)
where
    F: Fn(Client, usize, usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let tabs: Vec<_> = (0..2)
        .map(|tab| {
            let barrier = barrier.clone();
            let requests: Vec<Fut> = (0..PER_TAB)
                .map(|i| request(first.clone(), tab, i))
                .collect();
            tokio::spawn(async move {
                barrier.wait().await;
                for r in requests {
                    r.await;
                }
            })
        })
        .collect();
    for tab in tabs {
        tab.await.expect("tab");
    }
}

async fn concurrent_cart_posts_lose_nothing(kind: SiteKind) {
    let site = Site::start(kind, |c| c).await;
    let mut c = site.client();
    assert_eq!(c.get("/").await.status, 200);
    assert!(c.cookie.is_some());
    two_tabs(&c, |mut tab_client, tab, i| async move {
        let item = format!("t{tab}-{i:02}");
        let reply = tab_client.post("/cart", &[("item", &item)]).await;
        assert_eq!(reply.status, 303, "{reply:?}");
    })
    .await;
    let cart = c.state().await.cart;
    assert_eq!(cart.len(), 2 * PER_TAB, "{cart:?}");
    for tab in 0..2 {
        let mine: Vec<&String> = cart
            .iter()
            .filter(|s| s.starts_with(&format!("t{tab}-")))
            .collect();
        let want: Vec<String> = (0..PER_TAB).map(|i| format!("t{tab}-{i:02}")).collect();
        assert_eq!(
            mine,
            want.iter().collect::<Vec<_>>(),
            "tab {tab} keeps its order"
        );
    }
    // At the limit, later items are ignored and the first ones kept.
    assert_eq!(CART_LIMIT, 2 * PER_TAB);
    c.post("/cart", &[("item", "one too many")]).await;
    assert_eq!(c.state().await.cart, cart);
}

async fn concurrent_page_loads_count_every_visit(kind: SiteKind) {
    let site = Site::start(kind, |c| c).await;
    let mut c = site.client();
    assert_eq!(c.get("/").await.status, 200);
    two_tabs(&c, |mut tab_client, _, _| async move {
        let reply = tab_client.get("/").await;
        assert_eq!(reply.status, 200, "{reply:?}");
    })
    .await;
    assert_eq!(c.state().await.visits, 1 + 2 * PER_TAB as u64);
}

macro_rules! web_ops_tests {
    ($($module:ident => $kind:expr),* $(,)?) => {$(
        mod $module {
            web_ops_tests!(@cases $kind; concurrent_cart_posts_lose_nothing,
                concurrent_page_loads_count_every_visit);
        }
    )*};
    (@cases $kind:expr; $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            super::$case($kind).await;
        }
    )*};
}

sessionkit_tests::for_each_site!(web_ops_tests);
