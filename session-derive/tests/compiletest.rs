//! UI tests for `#[derive(SessionData)]`: every diagnostic the derive owns, one case each,
//! grouped by topic under `tests/ui/<topic>/`, plus the supported shapes in `tests/ui/pass/`
//! (compiled and run). Regenerate the `.stderr` files with `TRYBUILD=overwrite` on the pinned
//! toolchain (`rust-toolchain.toml`) and review the diff.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    let mut topics: Vec<_> = std::fs::read_dir("tests/ui")
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir() && !path.ends_with("pass"))
        .collect();
    topics.sort();
    assert!(!topics.is_empty(), "no UI test topics found");
    for topic in topics {
        t.compile_fail(topic.join("*.rs"));
    }
}
