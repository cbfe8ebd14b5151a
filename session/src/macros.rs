//! Macros used across the crate (declared first in `lib.rs`, so every module sees them).

/// Builder methods that each set one field: `fn with_x(arg: T) => field = value;` becomes
/// `pub fn with_x(mut self, arg: T) -> Self`, `#[must_use]`, with the docs given.
///
/// Exported (hidden) only so that `sessionkit-backends` builds its store configurations with
/// the same macro; not part of the public API.
#[doc(hidden)]
#[macro_export]
macro_rules! setters {
    ($($(#[$attr:meta])* fn $name:ident($arg:ident: $ty:ty) => $field:ident = $value:expr;)+) => {
        $(
            $(#[$attr])*
            #[must_use]
            pub fn $name(mut self, $arg: $ty) -> Self {
                self.$field = $value;
                self
            }
        )+
    };
}
