//! A real browser clicks through the example site: headless Chromium via ChromeDriver.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

use sessionkit_examples::site::StoreKind;
use sessionkit_tests::site::{Framework, Site};
use sessionkit_tests::webdriver::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_clicks_through_the_axum_site() {
    clicks_through(Framework::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_clicks_through_the_actix_site() {
    clicks_through(Framework::Actix).await;
}

async fn clicks_through(framework: Framework) {
    let site = Site::start(framework.on(StoreKind::MemoryFile), |c| c).await;
    let browser = Browser::start().await;

    browser.goto(&format!("{}/", site.base)).await;
    assert_eq!(
        browser.text("#visits").await.as_deref(),
        Some("1"),
        "{}",
        browser.source().await
    );
    browser.goto(&format!("{}/", site.base)).await;
    assert_eq!(browser.text("#visits").await.as_deref(), Some("2"));

    let cookies = browser.cookies().await;
    let id = cookies
        .iter()
        .find(|c| c["name"] == "id")
        .unwrap_or_else(|| panic!("no session cookie in {cookies:?}"));
    assert_eq!(id["httpOnly"], true, "{id}");
    assert_eq!(id["sameSite"], "Lax", "{id}");
    assert_eq!(id["path"], "/", "{id}");
    assert!(
        id.get("expiry").is_none_or(|e| e.is_null()),
        "a browser-session cookie: {id}"
    );
    let first_id = id["value"].clone();

    browser.type_into("#username", "alice").await;
    browser.click_and_wait("#login").await;
    assert_eq!(browser.text("#user").await.as_deref(), Some("alice"));
    assert_eq!(
        browser.text("#flash").await.as_deref(),
        Some("Welcome, alice!")
    );
    let cookies = browser.cookies().await;
    let id = cookies.iter().find(|c| c["name"] == "id").expect("cookie");
    assert_ne!(id["value"], first_id, "login regenerates the id");

    browser.type_into("#item", "tea").await;
    browser.click_and_wait("#add").await;
    assert_eq!(browser.text("#cart").await.as_deref(), Some("tea"));
    assert_eq!(
        browser.text("#flash").await,
        None,
        "the flash was shown once"
    );

    browser.type_into("#message", "hello there").await;
    browser.click_and_wait("#flash-set").await;
    assert_eq!(browser.text("#flash").await.as_deref(), Some("hello there"));
    browser.goto(&format!("{}/", site.base)).await;
    assert_eq!(browser.text("#flash").await, None);

    browser.click_and_wait("#logout").await;
    assert_eq!(browser.text("#user").await, None);
    assert!(
        browser.text("#username").await.is_some(),
        "the login form is back"
    );
    // After logout, the page is a fresh session: count restarted.
    assert_eq!(browser.text("#visits").await.as_deref(), Some("1"));
    browser.quit().await;
}
