//! [`Typed`]: a session seen through a `#[derive(SessionData)]` struct, for the axum and
//! actix-web extractors.

use std::marker::PhantomData;
use std::ops::Deref;

use crate::session::Session;

/// The session as a typed struct (`#[derive(SessionData)]`), as an extractor: `load()` it
/// whole, `store()` it back, or reach the per-field view through [`Typed::session`]. Derefs
/// to [`Session`]. Extracted like [`Session`] by axum and actix-web handlers.
///
/// ```no_run
/// # #[cfg(all(feature = "derive", feature = "axum"))] {
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
#[cfg_attr(docsrs, doc(cfg(any(feature = "axum", feature = "actix"))))]
pub struct Typed<T> {
    session: Session,
    _type: PhantomData<fn() -> T>,
}

impl<T> Typed<T> {
    /// The underlying session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    pub(super) fn new(session: Session) -> Self {
        Typed {
            session,
            _type: PhantomData,
        }
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

impl<T> std::fmt::Debug for Typed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Typed").field(&self.session).finish()
    }
}
