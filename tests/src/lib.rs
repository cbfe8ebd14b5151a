//! Support for sessionkit's cross-crate tests: the store conformance suite and test doubles.

pub mod conformance;
pub mod failing;
pub mod file_crash;
pub mod lifecycle;
pub mod redis_server;
