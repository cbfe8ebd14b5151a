//! # sessionkit
//!
//! Server-side web sessions for Rust. A visitor holds a cookie with a random session id; the
//! data lives in a [`Store`] under a hash of that id.
//!
//! - **Dictionary access** for data with no fixed shape: [`Session`] stores any
//!   `Serialize` value under a string key and decodes one key at a time.
//! - **Typed sessions** with `#[derive(SessionData)]` (feature `derive`, on by default).
//! - **Composable storage**: [`MemoryStore`] here, `FileStore` and `RedisStore` in
//!   `sessionkit-backends`, and [`TieredStore`] to put any cache in front of any durable store.
//!
//! ```
//! use sessionkit::{Session, store::{MemoryStore, TieredStore}};
//! let session = Session::new();
//! session.insert("username", "Bob")?;
//! assert_eq!(session.get::<String>("username")?.as_deref(), Some("Bob"));
//! let _store = TieredStore::new(MemoryStore::with_capacity(10_000), MemoryStore::new());
//! # Ok::<(), sessionkit::Error>(())
//! ```
//!
//! ## Feature flags
//!
//! - `derive` (default): re-exports `#[derive(SessionData)]`.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod id;
pub mod manager;
mod record;
mod session;
pub mod store;

pub use error::{BoxError, Error, Result};
pub use id::{Fingerprint, ID_BYTES, ID_LEN, SessionId, SessionKey};
pub use manager::{
    ActiveSession, Clock, EventListener, ExpiryReason, IpBinding, ManualClock, Outcome,
    RequestInfo, SameSite, SessionConfig, SessionEvent, SessionManager, SystemClock,
};
pub use record::{RECORD_VERSION, from_millis, to_millis};
pub use session::{RESERVED_PREFIX, RawValue, Session, Value};
pub use store::{MemoryStore, Store, StoreExt, TieredStore};

#[cfg(feature = "derive")]
#[cfg_attr(docsrs, doc(cfg(feature = "derive")))]
pub use sessionkit_derive::SessionData;

/// What `#[derive(SessionData)]` expansions refer to, so users need no extra dependencies.
/// Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::error::{Error, Result};
    pub use crate::session::{RESERVED_PREFIX, Session};
    pub use bytes::Bytes;
    pub use rmp_serde;
    pub use serde;
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod web;
