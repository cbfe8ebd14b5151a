//! The expansion of `#[derive(SessionData)]` compiles warning-free under strict lints in the
//! user's crate: rustc's `warnings` (dead code, unused, ...) plus common opt-in lints (missing
//! docs, unreachable pub, 2018 idioms, lifetimes, qualifications), and clippy's `all`,
//! `pedantic` and `nursery` groups. `cargo test` checks the rustc part, `cargo clippy
//! --all-targets` the clippy part.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation fails the test"
)]
#![deny(warnings, missing_docs, unreachable_pub, missing_debug_implementations)]
#![deny(
    rust_2018_idioms,
    unused_qualifications,
    unused_lifetimes,
    single_use_lifetimes
)]
#![deny(
    trivial_casts,
    trivial_numeric_casts,
    unused_results,
    let_underscore_drop
)]
#![deny(clippy::all, clippy::pedantic, clippy::nursery)]

use serde::{Deserialize, Serialize};
use sessionkit::{Session, SessionData};

/// Public, documented types: missing docs on anything generated would fail this crate.
pub mod public {
    use serde::{Deserialize, Serialize};
    use sessionkit::SessionData;

    /// A line of a cart.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
    pub struct Item {
        /// Stock keeping unit.
        pub sku: String,
        /// How many.
        pub qty: u32,
    }

    /// Every supported field shape at once.
    #[derive(SessionData, Debug, Default, PartialEq, Eq)]
    #[session(prefix = "shop")]
    pub struct Shopper {
        /// Optional.
        pub user_id: Option<u64>,
        /// Defaulted.
        #[session(default)]
        pub visits: u32,
        /// Required, renamed.
        #[session(rename = "items")]
        pub cart: Vec<Item>,
        /// Not stored.
        #[session(skip)]
        pub scratch: Vec<u8>,
        /// A raw identifier.
        pub r#type: Option<String>,
    }

    /// A generic one.
    #[derive(SessionData, Debug)]
    pub struct Wrapper<T, const N: usize>
    where
        T: Clone,
    {
        /// A value of the parameter.
        pub value: Option<T>,
        /// A list of it.
        #[session(default)]
        pub list: Vec<T>,
    }

    /// Crate-visible only.
    #[derive(SessionData)]
    pub(crate) struct Internal {
        pub(crate) flag: bool,
    }
}

#[test]
fn private_struct_with_unused_accessors() {
    #[derive(SessionData, Debug, PartialEq)]
    struct Prefs {
        theme: Option<String>,
        #[session(default)]
        font_size: u16,
        language: String,
    }

    let session = Session::new();
    let prefs = Prefs::view(&session);
    prefs.set_language("en".to_owned()).unwrap();
    assert_eq!(Prefs::load(&session).unwrap().language, "en");
}

#[test]
fn derive_used_only_through_the_trait() {
    #[derive(SessionData, Serialize, Deserialize)]
    struct Flags {
        beta: bool,
    }

    let session = Session::new();
    Flags { beta: true }.store(&session).unwrap();
    assert!(Flags::load(&session).unwrap().beta);
}

#[test]
fn public_shapes_work() {
    let session = Session::new();
    let shopper = public::Shopper {
        visits: 2,
        ..public::Shopper::default()
    };
    shopper.store(&session).unwrap();
    assert_eq!(public::Shopper::load(&session).unwrap(), shopper);
    public::Wrapper::<u8, 3> {
        value: Some(1),
        list: vec![2],
    }
    .store(&session)
    .unwrap();
    public::Internal { flag: true }.store(&session).unwrap();
    assert_eq!(session.get::<bool>("flag").unwrap(), Some(true));
}
