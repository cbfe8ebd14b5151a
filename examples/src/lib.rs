//! The example site behind `cargo run --example web`, as a library so the acceptance tests
//! can start it in-process. The runnable examples live beside this crate.

pub mod site;
