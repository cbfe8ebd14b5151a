//! The example sites behind `cargo run --example web` (axum) and `cargo run --example
//! web-actix` (actix-web), as a library so the acceptance tests can start them in-process.
//! The runnable examples live beside this crate.

pub mod metrics;
pub mod pages;
pub mod site;
pub mod site_actix;
pub mod tier;
