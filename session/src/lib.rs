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
//! let _store = TieredStore::new(MemoryStore::bounded(10_000), MemoryStore::new());
//! # Ok::<(), sessionkit::Error>(())
//! ```
//!
//! ## Typed or dictionary access
//!
//! Both read and write the same field map: a `#[derive(SessionData)]` struct names its keys
//! once (each field is one entry), and [`Session`]'s dictionary methods reach every entry by
//! its string key, so typed code and untyped code can share a session.
//!
//! ```
//! # #[cfg(feature = "derive")] {
//! use sessionkit::{Session, SessionData};
//!
//! #[derive(SessionData)]
//! #[session(prefix = "shop")]
//! struct Shopper {
//!     user_id: Option<u64>,
//!     #[session(default)]
//!     visits: u32,
//! }
//!
//! let session = Session::new();
//! let shop = Shopper::view(&session);
//! shop.set_visits(shop.visits()? + 1)?;        // decodes and encodes only this field
//! assert_eq!(session.get::<u32>("shop.visits")?, Some(1)); // the same entry, untyped
//! assert_eq!(Shopper::VISITS_KEY, "shop.visits");
//! # }
//! # Ok::<(), sessionkit::Error>(())
//! ```
//!
//! ## Composing stores
//!
//! Every store implements one object-safe [`Store`] trait whose contract — create only if
//! absent, expired reads as absent, changes merged atomically, no resurrection after delete,
//! atomic moves with an optional grace alias, an owner index — is written in its docs and
//! checked by one conformance suite run against every store and combinator in the
//! repository. [`TieredStore<C, D>`](TieredStore) puts any cache in front of any durable
//! store and is itself a store, so tiers nest; its docs state its failure rules and the
//! consistency it gives with a per-process and with a shared cache. The [`Store`] docs show
//! how to implement a store of your own.
//!
//! ## Expiry
//!
//! A record carries its `expires_at`; every store treats an expired record as absent from that
//! instant, before any cleanup, and a cache tier never keeps a record longer than the record
//! lives. The manager sets `expires_at` to the earlier of the idle and absolute deadlines,
//! and checks both itself on every load with its own [`Clock`]. Timeouts over
//! [`limits::MAX_TIMEOUT`] (100 years) are refused when the manager is built, and every deadline sum
//! saturates, so no duration or clock value can make a request panic.
//!
//! ## Size limits
//!
//! [`Limits`] bound one session: keys, bytes of one value, bytes of the whole field map
//! (defaults 10⁴, 1 MiB, 4 MiB; [`SessionConfig::with_limits`]). A setter that would break one
//! returns [`Error::LimitExceeded`] and changes nothing; the manager checks the whole session
//! again before it saves, and stores that merge with [`store::Record::apply`] check the merged
//! record atomically. A save refused this way writes nothing.
//!
//! ```
//! use sessionkit::{Error, Limit, Limits, Session};
//! let session = Session::new(); // the default limits; a manager's session has its own
//! let err = session.insert("upload", vec![0u8; 2 << 20]).unwrap_err();
//! assert!(matches!(err, Error::LimitExceeded { limit: Limit::ValueBytes, .. }));
//! assert!(session.is_empty());
//! # let _ = Limits::default();
//! ```
//!
//! ## Concurrency
//!
//! A [`Session`] is a handle: clones share one map behind a short lock held only inside each
//! call. Saves send change sets, not snapshots, so two requests of one visitor that change
//! different keys both keep their change; on the same key the last save wins. A session is not
//! a transaction: two requests that read a value and write it back can both write the same
//! value.
//!
//! For the updates that collide on one key, use the operations: [`Session::increment`],
//! [`Session::push`] / [`Session::push_bounded`], [`Session::add_to_set`] and
//! [`Session::remove_from_set`] (and the derive's `incr_*`, `push_*`, `add_to_*`,
//! `remove_from_*`). The request sees their result at once, and the save sends the operation
//! itself, which every store carries out atomically against the value it holds, so
//! concurrent counters and appends lose nothing.
//!
//! ```
//! # let session = sessionkit::Session::new();
//! let visits = session.increment("visits", 1)?;   // the store adds 1 to what it holds
//! session.push_bounded("cart", "apple", 100)?;    // the store appends, keeping 100 at most
//! # let _ = visits;
//! # Ok::<(), sessionkit::Error>(())
//! ```
//!
//! ## Lifecycle
//!
//! A [`SessionManager`] turns a request's cookie into a [`Session`] and the finished session
//! into the `Set-Cookie` to send. It is framework-agnostic: the web layer hands it a
//! [`RequestInfo`] (the `Cookie` headers, the client IP, the User-Agent), calls
//! [`load`](SessionManager::load), runs the handler, calls
//! [`finish`](SessionManager::finish) and copies the [`Outcome`] onto the response. Behind
//! reverse proxies, [`proxy::TrustedProxies`] (no framework dependency) decides which client
//! IP a forwarding header may claim.
//!
//! ```
//! use sessionkit::{IpBinding, MemoryStore, SameSite, SessionConfig, SessionManager};
//! use std::time::Duration;
//! let config = SessionConfig::default();
//! // The defaults, one per option of the library sessionkit descends from, and more:
//! assert_eq!(config.effective_cookie_name(), "__Host-id");                // cookie_name
//! assert_eq!(config.idle_timeout, Duration::from_secs(30 * 60));          // session_expire_time
//! assert_eq!(config.refresh_fraction, 0.1);   // reads write nothing for 3 of those 30 min
//! assert_eq!(config.cleanup_probability, 0.01);                           // clean_check_percent
//! assert!(config.integrate_flash);                                        // integrate_flash
//! assert_eq!(config.check_ip, IpBinding::Off);                            // check_ip
//! assert!(!config.check_user_agent);                                      // check_user_agent
//! assert!(!config.persistent);                                            // set_cookie_expires
//! assert_eq!(config.rotate_after, Some(Duration::from_secs(15 * 60)));    // session_token_ttl
//! assert_eq!(config.rotation_grace, Duration::from_secs(10));             // at most 60 s
//! assert_eq!(config.absolute_timeout, Some(Duration::from_secs(12 * 3600)));
//! assert!(config.secure);                          // HttpOnly always; Secure unless switched off
//! assert_eq!((config.same_site, config.path.as_str(), config.domain.as_deref()), (SameSite::Lax, "/", None));
//! let manager = SessionManager::new(MemoryStore::new(), config)?;
//! # let _ = manager;
//! # Ok::<(), sessionkit::Error>(())
//! ```
//!
//! What the manager guarantees:
//!
//! - **Strict ids.** A malformed, duplicated or oversized cookie never reaches the store;
//!   an id the store does not know is never adopted (the visitor gets a new one).
//! - **Lazy sessions.** A new session is stored, and its cookie set, only once it holds data.
//! - **Timeouts on the server.** Idle and absolute deadlines are checked on every load by
//!   the manager's [`Clock`], and given to the store as the record's expiry. Read-only
//!   requests refresh the idle deadline only every `refresh_fraction × idle_timeout`, so
//!   reads cost no writes; a session may therefore end up to that much before
//!   `idle_timeout` after its last request.
//! - **[`Session::regenerate`]** on login moves the session to a fresh id and kills the old
//!   one at once; **[`Session::destroy`]** deletes it from every tier and clears the cookie;
//!   **[`SessionManager::revoke_owner`]** ends every session tagged with
//!   [`Session::set_owner`].
//! - **Events.** Creation, rotation, regeneration, expiry, logout, unknown and stale ids,
//!   binding mismatches and corrupt records are logged with `tracing` and passed to an
//!   optional listener ([`SessionEvent`]); a session is only ever named by its fingerprint.
//!
//! ### Id rotation and its grace window
//!
//! After `rotate_after` the next request moves the session to a fresh id and sends the new
//! cookie. Other requests of the same visitor may already be in flight with the old id
//! (parallel AJAX calls, a second tab). Killing the old id at once would log them out, so
//! the old id keeps resolving to the same session for `rotation_grace` (10 s by default,
//! never more than 60 s): such a request loads the session, its changes are saved under the
//! new id, and its response carries the new cookie too. After the window the old id is
//! dead, and presenting it is reported as a [`SessionEvent::StaleId`].
//!
//! The race this leaves: the grace window is also a window for whoever stole the old id.
//! It is short and bounded, the old id never survives a [`Session::regenerate`] (a login
//! kills every earlier id of the session, grace or not), and a stale id presented later is
//! an alert an application can answer, for example by revoking the owner's sessions.
//! Requests that start after the window with the old id — a tab that slept through the
//! rotation — lose the session; a longer `rotate_after` or no rotation (`None`) trades that
//! against how long a leaked id stays useful.
//!
//! ## Feature flags
//!
//! - `derive` (default): re-exports `#[derive(SessionData)]`.
//! - `tower`: the tower layer in `sessionkit::web` (`SessionLayer`), for any tower-based
//!   framework: generic over `http` bodies, the session reached with
//!   `Session::from_extensions`. No axum in the dependency tree.
//! - `axum`: `tower` plus axum extractors for [`Session`] and for typed sessions, and the
//!   client address from axum's `ConnectInfo`.
//! - `actix`: the actix-web middleware and extractors in `sessionkit::web::actix`.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

mod codec;
pub mod error;
pub mod id;
pub mod limits;
pub mod manager;
#[cfg(feature = "metrics")]
pub mod metrics;
mod op;
pub mod proxy;
mod record;
pub mod reserved;
mod session;
pub mod store;
mod typed;

pub use error::{Error, Result};
pub use id::{SessionId, SessionKey};
pub use limits::{Limit, Limits};
pub use manager::{
    ActiveSession, Clock, IpBinding, Outcome, RequestInfo, SameSite, SessionConfig, SessionEvent,
    SessionManager,
};
pub use session::{RawValue, Session, Value};
pub use store::{MemoryStore, Store, StoreExt, TieredStore};
pub use typed::SessionData;

#[cfg(feature = "derive")]
#[cfg_attr(docsrs, doc(cfg(feature = "derive")))]
pub use sessionkit_derive::SessionData;

/// What `#[derive(SessionData)]` expansions refer to, so users need no extra dependencies.
/// Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::error::{Error, Result};
    pub use crate::reserved::RESERVED_PREFIX;
    pub use crate::session::Session;
    pub use crate::typed::{
        FieldDefault, SessionData, encode_option, encode_value, get_default, get_option,
        get_required, increment, push, remove, set_op, set_option, set_value, write_fields,
    };
    pub use bytes::Bytes;
    pub use rmp_serde;
    pub use serde;
}

#[cfg(any(feature = "tower", feature = "actix"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "tower", feature = "actix"))))]
pub mod web;
