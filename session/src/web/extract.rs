//! axum extractors: [`Session`] for dictionary access and [`Typed`] for derived structs.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::{LazySession, SessionRejection, Typed, session_of};
use crate::session::Session;

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        self.into_http_response()
    }
}

async fn extract(parts: &Parts) -> Result<Session, SessionRejection> {
    session_of(parts.extensions.get::<LazySession>().cloned()).await
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

impl<T, S: Send + Sync> FromRequestParts<S> for Typed<T> {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Typed::new(extract(parts).await?))
    }
}
