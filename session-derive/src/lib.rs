//! `#[derive(SessionData)]` for sessionkit. Use it through `sessionkit::SessionData`.

use proc_macro::TokenStream;

/// Derives typed accessors over a session's field map. See `sessionkit::SessionData`.
#[proc_macro_derive(SessionData, attributes(session))]
pub fn derive_session_data(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
