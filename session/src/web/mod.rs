//! The web-framework layer: a tower [`Layer`](tower_layer::Layer) that runs the
//! [`SessionManager`] around every request, and axum extractors for the session.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use sessionkit::web::SessionLayer;
//! use sessionkit::{MemoryStore, Session, SessionConfig, SessionManager};
//!
//! async fn counter(session: Session) -> String {
//!     let n: u64 = session.get("n").ok().flatten().unwrap_or(0) + 1;
//!     let _ = session.insert("n", n);
//!     format!("visit number {n}")
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default())?;
//! let app = Router::new()
//!     .route("/", get(counter))
//!     .layer(SessionLayer::new(manager));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! # What the layer does
//!
//! - **Lazily**: the session is loaded the first time a handler extracts it. A handler that
//!   never asks costs no store access, and its response gets no session headers.
//! - After the handler it saves only what changed and adds `Set-Cookie` only when needed,
//!   with `Cache-Control: no-store` on any response that sets or clears the cookie and
//!   `Vary: Cookie` on any response that read the session.
//! - **Client IP** for IP binding comes from the connection
//!   ([`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo)), or from `X-Forwarded-For`
//!   (or `Forwarded`) only on connections from the reverse proxies the application trusts
//!   ([`SessionLayer::with_trusted_proxies`], rule in [`crate::proxy`]). With IP binding on
//!   and no connection info, extracting the session fails with `500` (and one logged error)
//!   rather than binding everyone to "no address".
//! - **Store failures**: extracting [`Session`] fails with `503 Service Unavailable` when the
//!   session cannot be loaded (extract `Option<Session>` to run anyway without it); a failed
//!   save turns the response into a 503. Both are logged. Responses with a 5xx status are not
//!   saved unless [`SessionLayer::with_save_on_server_error`] says so.
//! - **Size limits** ([`Limits`](crate::Limits)): a setter that would break one returns
//!   [`Error::LimitExceeded`] to the handler, which answers as it
//!   sees fit (`413`, a form error). A session found over a limit only at save (a setter that
//!   cannot fail, an array grown by concurrent requests) is not saved and the response
//!   becomes a `500` with the error logged; not a `503`, since retrying cannot help.

mod extract;
mod layer;

pub use extract::{SessionRejection, Typed};
pub use layer::{SessionLayer, SessionService};

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::error::Error;
use crate::error::Result;
use crate::manager::{ActiveSession, Outcome, RequestInfo, SessionManager};
use crate::session::Session;
use crate::store::Store;

/// The manager with its store type erased, so extractors need not name it.
#[async_trait]
trait Lifecycle: Send + Sync {
    async fn load(&self, request: &RequestInfo) -> Result<ActiveSession>;
    async fn finish(&self, active: ActiveSession) -> Result<Outcome>;
    async fn finish_failed(&self, active: ActiveSession) -> Result<Outcome>;
}

#[async_trait]
impl<S: Store + 'static> Lifecycle for SessionManager<S> {
    async fn load(&self, request: &RequestInfo) -> Result<ActiveSession> {
        SessionManager::load(self, request).await
    }
    async fn finish(&self, active: ActiveSession) -> Result<Outcome> {
        SessionManager::finish(self, active).await
    }
    async fn finish_failed(&self, active: ActiveSession) -> Result<Outcome> {
        SessionManager::finish_failed(self, active).await
    }
}

enum Slot {
    Unloaded,
    Loaded(Box<ActiveSession>),
    Failed(SessionRejection),
}

/// What the layer puts in the request's extensions: the means to load the session once.
#[derive(Clone)]
struct LazySession {
    inner: Arc<LazyInner>,
}

struct LazyInner {
    lifecycle: Arc<dyn Lifecycle>,
    request: RequestInfo,
    slot: Mutex<Slot>,
}

impl LazySession {
    fn new(lifecycle: Arc<dyn Lifecycle>, request: RequestInfo) -> Self {
        LazySession {
            inner: Arc::new(LazyInner {
                lifecycle,
                request,
                slot: Mutex::new(Slot::Unloaded),
            }),
        }
    }

    /// The session, loading it on first use; why not when it could not be loaded (logged).
    async fn get(&self) -> Result<Session, SessionRejection> {
        let mut slot = self.inner.slot.lock().await;
        match &*slot {
            Slot::Loaded(active) => return Ok(active.session().clone()),
            Slot::Failed(rejection) => return Err(*rejection),
            Slot::Unloaded => {}
        }
        match self.inner.lifecycle.load(&self.inner.request).await {
            Ok(active) => {
                let session = active.session().clone();
                *slot = Slot::Loaded(Box::new(active));
                Ok(session)
            }
            Err(Error::NoClientIp) => {
                // The manager logged the misconfiguration once; not again per request.
                tracing::debug!("session not loaded: no client address for IP binding");
                *slot = Slot::Failed(SessionRejection::NoClientIp);
                Err(SessionRejection::NoClientIp)
            }
            Err(err) => {
                tracing::error!(error = %err, "session could not be loaded");
                *slot = Slot::Failed(SessionRejection::Unavailable);
                Err(SessionRejection::Unavailable)
            }
        }
    }

    async fn take(&self) -> Option<ActiveSession> {
        let mut slot = self.inner.slot.lock().await;
        match std::mem::replace(&mut *slot, Slot::Unloaded) {
            Slot::Loaded(active) => Some(*active),
            Slot::Unloaded | Slot::Failed(_) => None,
        }
    }
}
