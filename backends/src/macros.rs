//! Macros used across the crate (declared first in `lib.rs`, so every module sees them).

/// Builder methods of the stores' configurations that each set one field:
/// `fn with_x(arg: T) => field = value;` becomes `pub fn with_x(mut self, arg: T) -> Self`,
/// `#[must_use]`, with the docs given.
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
