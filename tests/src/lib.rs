//! Support for sessionkit's cross-crate tests: the store conformance suite and test doubles.

pub mod conformance;
pub mod counting;
pub mod failing;
pub mod site;
pub mod webdriver;
