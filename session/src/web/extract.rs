//! axum extractors: [`Session`] for dictionary access and [`Typed`] for derived structs.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::LazySession;
use crate::session::Session;

/// Why a session could not be extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionRejection {
    /// The store failed; answered with `503 Service Unavailable`.
    Unavailable,
    /// The route is not behind a [`SessionLayer`](super::SessionLayer): a programming error,
    /// answered with `500 Internal Server Error`.
    MissingLayer,
    /// IP binding is on but the request has no client address
    /// ([`Error::NoClientIp`](crate::Error::NoClientIp)): the server is not serving with
    /// connection info. A configuration error, answered with `500 Internal Server Error`.
    NoClientIp,
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        match self {
            // The same 503 the layer sends when a save fails (`no-store`, `Retry-After`).
            SessionRejection::Unavailable => super::layer::unavailable(),
            SessionRejection::MissingLayer => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "session layer missing for this route",
            )
                .into_response(),
            SessionRejection::NoClientIp => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "session IP binding is on but the server provides no client address",
            )
                .into_response(),
        }
    }
}

impl std::fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionRejection::Unavailable => "session store unavailable",
            SessionRejection::MissingLayer => "session layer missing",
            SessionRejection::NoClientIp => "no client address for IP binding",
        })
    }
}

impl std::error::Error for SessionRejection {}

async fn extract(parts: &Parts) -> Result<Session, SessionRejection> {
    let lazy = parts
        .extensions
        .get::<LazySession>()
        .ok_or(SessionRejection::MissingLayer)?;
    lazy.get().await
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        extract(parts).await
    }
}

/// `Option<Session>`: `None` when the store is down, so a handler can still answer.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match extract(parts).await {
            Ok(session) => Ok(Some(session)),
            Err(SessionRejection::Unavailable) => Ok(None),
            Err(other) => Err(other),
        }
    }
}

/// The session as a typed struct (`#[derive(SessionData)]`): `load()` it whole, `store()` it
/// back, or reach the per-field view through [`Typed::session`]. Derefs to [`Session`].
///
/// ```no_run
/// # #[cfg(feature = "derive")] {
/// use sessionkit::{SessionData, web::Typed};
///
/// #[derive(SessionData)]
/// struct Visitor {
///     #[session(default)]
///     visits: u64,
/// }
///
/// async fn home(visitor: Typed<Visitor>) -> String {
///     let view = Visitor::view(visitor.session());
///     let visits = view.visits().unwrap_or(0) + 1;
///     let _ = view.set_visits(visits);
///     format!("{visits}")
/// }
/// # }
/// ```
pub struct Typed<T> {
    session: Session,
    _type: PhantomData<fn() -> T>,
}

impl<T> Typed<T> {
    /// The underlying session.
    pub fn session(&self) -> &Session {
        &self.session
    }
}

#[cfg(feature = "derive")]
impl<T: crate::SessionData> Typed<T> {
    /// Decodes the whole struct.
    ///
    /// # Errors
    /// As [`SessionData::load`](crate::SessionData::load).
    pub fn load(&self) -> crate::Result<T> {
        T::load(&self.session)
    }

    /// Writes the whole struct back, marking only the fields that differ.
    ///
    /// # Errors
    /// As [`SessionData::store`](crate::SessionData::store).
    pub fn store(&self, value: &T) -> crate::Result<()> {
        value.store(&self.session)
    }
}

impl<T> Deref for Typed<T> {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl<T, S: Send + Sync> FromRequestParts<S> for Typed<T> {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Typed {
            session: extract(parts).await?,
            _type: PhantomData,
        })
    }
}
