//! `#[derive(SessionData)]` for sessionkit. Use it through `sessionkit::SessionData`, which
//! documents the generated API; this crate is an implementation detail pinned to sessionkit.
//!
//! The passes: `attr` parses `#[session(...)]`, `ast` builds a borrowed model of the struct,
//! `valid` applies the semantic rules, `expand` writes the code. Every error is collected in
//! a `ctxt::Ctxt` and reported at once.

mod ast;
mod attr;
mod ctxt;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `sessionkit::SessionData` and a typed view over a session's field map.
/// See `sessionkit::SessionData` for the generated API and the `#[session(...)]` attributes.
#[proc_macro_derive(SessionData, attributes(session))]
pub fn derive_session_data(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
