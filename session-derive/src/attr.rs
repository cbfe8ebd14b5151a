//! Parsing of `#[session(...)]` attributes, on the struct and on its fields.
//!
//! Parsing only records what was written, keeping each token for spans; whether the
//! combination makes sense is `valid`'s business.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, Expr, ExprLit, Lit, LitStr, Meta, Path};

use crate::ctxt::Ctxt;

/// The attribute name.
pub(crate) const SESSION: &str = "session";
/// Struct: namespace joined before every key with a `.`.
pub(crate) const PREFIX: &str = "prefix";
/// Struct: path to the sessionkit crate, for crates that re-export it.
pub(crate) const CRATE: &str = "crate";
/// Field: an absent value reads as the type's `Default`.
pub(crate) const DEFAULT: &str = "default";
/// Field: the key's name instead of the field's.
pub(crate) const RENAME: &str = "rename";
/// Field: not stored; loads as the type's `Default`.
pub(crate) const SKIP: &str = "skip";

const CONTAINER_KEYS: &[&str] = &[PREFIX, CRATE];
const FIELD_KEYS: &[&str] = &[DEFAULT, RENAME, SKIP];

/// `#[session(...)]` on the struct.
#[derive(Default)]
pub(crate) struct Container {
    pub(crate) prefix: Option<LitStr>,
    /// The literal as written, and the path parsed from it.
    pub(crate) krate: Option<(LitStr, Path)>,
}

/// `#[session(...)]` on a field. Flags keep their path token so errors can point at them.
#[derive(Default)]
pub(crate) struct Field {
    pub(crate) default: Option<Path>,
    pub(crate) rename: Option<LitStr>,
    pub(crate) skip: Option<Path>,
}

pub(crate) fn container(cx: &Ctxt, attrs: &[Attribute]) -> Container {
    let mut out = Container::default();
    for attr in session_lists(cx, attrs) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(PREFIX) {
                let lit = string_value(&meta, PREFIX)?;
                set_once(cx, &meta.path, &mut out.prefix, lit);
            } else if meta.path.is_ident(CRATE) {
                let lit = string_value(&meta, CRATE)?;
                let path = lit.parse::<Path>().map_err(|_| {
                    syn::Error::new_spanned(&lit, "expected a path, as in `crate = \"::sessionkit\"`")
                })?;
                set_once(cx, &meta.path, &mut out.krate, (lit, path));
            } else if is_one_of(&meta.path, FIELD_KEYS) {
                return Err(meta.error(format_args!(
                    "`{}` is not expected here; it belongs on a specific field",
                    path_name(&meta.path)
                )));
            } else {
                return Err(meta.error(format_args!(
                    "unknown session attribute `{}`; the struct takes `prefix = \"...\"` and `crate = \"...\"`",
                    path_name(&meta.path)
                )));
            }
            Ok(())
        });
        if let Err(err) = parsed {
            cx.syn_error(err);
        }
    }
    out
}

pub(crate) fn field(cx: &Ctxt, attrs: &[Attribute]) -> Field {
    let mut out = Field::default();
    for attr in session_lists(cx, attrs) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(DEFAULT) {
                flag(&meta, DEFAULT)?;
                set_once(cx, &meta.path, &mut out.default, meta.path.clone());
            } else if meta.path.is_ident(SKIP) {
                flag(&meta, SKIP)?;
                set_once(cx, &meta.path, &mut out.skip, meta.path.clone());
            } else if meta.path.is_ident(RENAME) {
                let lit = string_value(&meta, RENAME)?;
                set_once(cx, &meta.path, &mut out.rename, lit);
            } else if is_one_of(&meta.path, CONTAINER_KEYS) {
                return Err(meta.error(format_args!(
                    "`{}` is not expected here; it belongs on the struct",
                    path_name(&meta.path)
                )));
            } else {
                return Err(meta.error(format_args!(
                    "unknown session attribute `{}`; a field takes `default`, `rename = \"...\"` and `skip`",
                    path_name(&meta.path)
                )));
            }
            Ok(())
        });
        if let Err(err) = parsed {
            cx.syn_error(err);
        }
    }
    out
}

/// The `#[session(...)]` attributes among `attrs`; `#[session]` and `#[session = ...]` are
/// reported and skipped.
fn session_lists<'a>(cx: &'a Ctxt, attrs: &'a [Attribute]) -> impl Iterator<Item = &'a Attribute> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident(SESSION))
        .filter(|a| match &a.meta {
            Meta::List(_) => true,
            Meta::Path(_) | Meta::NameValue(_) => {
                cx.error_spanned_by(
                    a,
                    "expected options in parentheses, as in `#[session(rename = \"...\")]`",
                );
                false
            }
        })
}

fn set_once<T>(cx: &Ctxt, path: &Path, slot: &mut Option<T>, value: T) {
    if slot.is_some() {
        cx.error_spanned_by(
            path,
            format_args!("duplicate session attribute `{}`", path_name(path)),
        );
    } else {
        *slot = Some(value);
    }
}

/// A flag takes no value: `#[session(default)]`, not `#[session(default = ...)]`.
fn flag(meta: &ParseNestedMeta<'_>, name: &str) -> syn::Result<()> {
    if meta.input.is_empty() || meta.input.peek(syn::Token![,]) {
        Ok(())
    } else {
        Err(meta.error(format_args!(
            "`{name}` takes no value; write `#[session({name})]`"
        )))
    }
}

fn string_value(meta: &ParseNestedMeta<'_>, name: &str) -> syn::Result<LitStr> {
    if !meta.input.peek(syn::Token![=]) {
        return Err(meta.error(format_args!(
            "`{name}` takes a value; write `{name} = \"...\"`"
        )));
    }
    let expr: Expr = meta.value()?.parse()?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit),
        other => Err(syn::Error::new_spanned(
            other,
            format_args!("expected a string literal, as in `{name} = \"...\"`"),
        )),
    }
}

fn is_one_of(path: &Path, names: &[&str]) -> bool {
    names.iter().any(|name| path.is_ident(name))
}

fn path_name(path: &Path) -> String {
    quote::quote!(#path).to_string().replace(' ', "")
}
