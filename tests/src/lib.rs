//! Support for sessionkit's cross-crate tests: the store conformance suite, test doubles, the
//! redis-server harness, and the example site's in-process harness.

pub mod conformance;
pub mod counting;
pub mod failing;
pub mod file_crash;
pub mod lifecycle;
pub mod pausing;
pub mod redis_server;
pub mod site;
pub mod soak;
pub mod webdriver;
