//! A borrowed model of the derive input: the struct, its `#[session]` attributes, and for each
//! field its key and how an absent value reads. Keeps the original syn nodes for spans.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields, GenericArgument, Ident, PathArguments, Type};

use crate::attr;
use crate::ctxt::Ctxt;

pub(crate) struct Input<'a> {
    pub(crate) original: &'a DeriveInput,
    pub(crate) attrs: attr::Container,
    /// `None` when the input is not a struct with named fields (already reported).
    pub(crate) fields: Option<Vec<Field<'a>>>,
}

pub(crate) struct Field<'a> {
    pub(crate) original: &'a syn::Field,
    pub(crate) ident: &'a Ident,
    pub(crate) attrs: attr::Field,
    /// The field map key: `prefix.name`, where name is `rename` or the field's name.
    pub(crate) key: String,
    pub(crate) kind: Kind,
}

/// Which typed operations a field gets, read from how its type is spelled: an integer
/// primitive is a counter, `Vec<T>`/`VecDeque<T>` a list of `T`, `BTreeSet<T>`/`HashSet<T>` a
/// set of `T`. A type alias is not recognised and gets none.
pub(crate) enum Ops<'a> {
    Counter,
    List(&'a Type),
    Set(&'a Type),
}

/// How a field is stored and what an absent value reads as.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Absent is `Error::Missing`.
    Required,
    /// `#[session(default)]`: absent is `Default::default()`.
    Default,
    /// `Option<T>`: absent is `None`; `None` removes the key.
    Option,
    /// `#[session(skip)]`: never stored, loads as `Default::default()`.
    Skip,
}

impl<'a> Input<'a> {
    pub(crate) fn from_syn(cx: &Ctxt, input: &'a DeriveInput) -> Self {
        let attrs = attr::container(cx, &input.attrs);
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => Some(
                    named
                        .named
                        .iter()
                        .filter_map(|f| Field::from_syn(cx, f, &attrs))
                        .collect(),
                ),
                Fields::Unnamed(unnamed) => {
                    cx.error_spanned_by(
                        unnamed,
                        "tuple structs are not supported by #[derive(SessionData)]; name the fields, each field is one session key",
                    );
                    None
                }
                Fields::Unit => {
                    cx.error_spanned_by(
                        &input.ident,
                        "unit structs are not supported by #[derive(SessionData)]; add named fields, each field is one session key",
                    );
                    None
                }
            },
            Data::Enum(data) => {
                cx.error_spanned_by(
                    data.enum_token,
                    "enums are not supported by #[derive(SessionData)]; use a struct with named fields, or store the enum as one field",
                );
                None
            }
            Data::Union(data) => {
                cx.error_spanned_by(
                    data.union_token,
                    "unions are not supported by #[derive(SessionData)]; use a struct with named fields",
                );
                None
            }
        };
        Input {
            original: input,
            attrs,
            fields,
        }
    }

    /// The path to the sessionkit crate: `crate = "..."` or `::sessionkit`.
    pub(crate) fn krate(&self) -> TokenStream {
        if let Some((_, path)) = &self.attrs.krate {
            quote!(#path)
        } else {
            quote!(::sessionkit)
        }
    }
}

impl<'a> Field<'a> {
    pub(crate) fn ty(&self) -> &'a Type {
        &self.original.ty
    }

    /// The typed operations of a stored, non-`Option` field.
    pub(crate) fn ops(&self) -> Option<Ops<'a>> {
        if !matches!(self.kind, Kind::Default | Kind::Required) {
            return None;
        }
        let Type::Path(path) = self.ty() else {
            return None;
        };
        if path.qself.is_some() {
            return None;
        }
        let last = path.path.segments.last()?;
        let name = last.ident.to_string();
        let first_arg = match &last.arguments {
            PathArguments::AngleBracketed(args) => match args.args.first() {
                Some(GenericArgument::Type(inner)) => Some(inner),
                _ => None,
            },
            PathArguments::None => None,
            PathArguments::Parenthesized(_) => return None,
        };
        match (name.as_str(), first_arg) {
            (
                "i8" | "i16" | "i32" | "i64" | "isize" | "u8" | "u16" | "u32" | "u64" | "usize",
                None,
            ) => Some(Ops::Counter),
            ("Vec" | "VecDeque", Some(inner)) => Some(Ops::List(inner)),
            ("BTreeSet" | "HashSet", Some(inner)) => Some(Ops::Set(inner)),
            _ => None,
        }
    }

    fn from_syn(cx: &Ctxt, field: &'a syn::Field, container: &attr::Container) -> Option<Self> {
        let attrs = attr::field(cx, &field.attrs);
        let ident = field.ident.as_ref()?;
        let name = match &attrs.rename {
            Some(lit) => lit.value(),
            None => ident.unraw().to_string(),
        };
        let key = match &container.prefix {
            Some(prefix) => format!("{}.{name}", prefix.value()),
            None => name,
        };
        let kind = if attrs.skip.is_some() {
            Kind::Skip
        } else if attrs.default.is_some() {
            Kind::Default
        } else if is_option(&field.ty) {
            Kind::Option
        } else {
            Kind::Required
        };
        Some(Field {
            original: field,
            ident,
            attrs,
            key,
            kind,
        })
    }
}

/// Whether `ty` is spelled as `Option<T>` (also `std::option::Option<T>`). A type alias of an
/// `Option` is not recognised and behaves as a required field.
pub(crate) fn is_option(ty: &Type) -> bool {
    let Type::Path(path) = ty else {
        return false;
    };
    if path.qself.is_some() {
        return false;
    }
    let segments: Vec<String> = path
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let well_known = matches!(
        segments[..],
        ["Option"] | ["std" | "core", "option", "Option"]
    );
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    well_known
        && matches!(
            &last.arguments,
            PathArguments::AngleBracketed(args)
                if args.args.len() == 1 && matches!(args.args[0], GenericArgument::Type(_))
        )
}
