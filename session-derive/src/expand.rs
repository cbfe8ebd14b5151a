//! Code generation: the typed view, the key constants and the `SessionData` impl, or, for
//! invalid input, the errors next to a stub impl.

use proc_macro2::{Ident, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    DeriveInput, GenericArgument, Generics, PathArguments, Type, WherePredicate, parse_quote,
};

use crate::ast::{Field, Input, Kind, Ops};
use crate::ctxt::Ctxt;
use crate::valid;

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let parsed = Input::from_syn(&cx, input);
    valid::check(&cx, &parsed);
    let krate = parsed.krate();
    match (cx.check(), &parsed.fields) {
        (Ok(()), Some(fields)) => expand(&parsed, fields, &krate),
        (Ok(()), None) => fallback(input, &krate),
        (Err(err), _) => {
            let errors = err.to_compile_error();
            let stub = fallback(input, &krate);
            quote!(#errors #stub)
        }
    }
}

/// For invalid input: implement the trait anyway so the user sees only the derive's errors,
/// not a cascade of "`SessionData` is not implemented" wherever the type is used.
fn fallback(input: &DeriveInput, krate: &TokenStream) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::__private::SessionData for #ident #ty_generics #where_clause {
            const KEYS: &'static [&'static str] = &[];
            fn load(_: &#krate::__private::Session) -> #krate::__private::Result<Self> {
                ::core::unreachable!()
            }
            fn store(&self, _: &#krate::__private::Session) -> #krate::__private::Result<()> {
                ::core::unreachable!()
            }
        }
    }
}

fn expand(input: &Input<'_>, fields: &[Field<'_>], krate: &TokenStream) -> TokenStream {
    let private = quote!(#krate::__private);
    let ident = &input.original.ident;
    let vis = &input.original.vis;
    let view = format_ident!("{}View", ident, span = ident.span());
    let generics = &input.original.generics;
    let (_, ty_generics, _) = generics.split_for_impl();

    let bounded = with_bounds(generics, fields, &private);
    let (impl_generics, _, where_clause) = bounded.split_for_impl();
    let mut view_generics = bounded.clone();
    view_generics.params.insert(0, parse_quote!('session));
    let (view_impl_generics, view_ty_generics, view_where_clause) = view_generics.split_for_impl();

    let decl_params = &generics.params;
    let decl_where = &generics.where_clause;
    let stored: Vec<&Field<'_>> = fields.iter().filter(|f| f.kind != Kind::Skip).collect();

    let view_doc = format!(
        "Typed access to the session keys of [`{ident}`]: a getter, a setter and a remover per \
         field, each decoding or encoding only its own key. Made by [`{ident}::view`]."
    );
    let view_fn_doc = format!(
        "A typed view of `session` for [`{ident}`]. Nothing is read until a getter is called."
    );
    let consts = stored.iter().map(|f| key_const(f, vis));
    let params: Vec<&Ident> = generics.type_params().map(|p| &p.ident).collect();
    let accessors = stored.iter().map(|f| accessors(f, vis, &private, &params));
    let trait_impl = trait_impl(ident, &bounded, fields, &private);
    quote! {
        #[doc = #view_doc]
        #[must_use]
        #vis struct #view<'session, #decl_params> #decl_where {
            session: &'session #private::Session,
            marker: ::core::marker::PhantomData<fn() -> #ident #ty_generics>,
        }

        const _: () = {
            #[automatically_derived]
            impl #view_impl_generics ::core::clone::Clone for #view #view_ty_generics #view_where_clause {
                fn clone(&self) -> Self {
                    *self
                }
            }

            #[automatically_derived]
            impl #view_impl_generics ::core::marker::Copy for #view #view_ty_generics #view_where_clause {}

            #[automatically_derived]
            impl #view_impl_generics ::core::fmt::Debug for #view #view_ty_generics #view_where_clause {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct(::core::stringify!(#view)).finish_non_exhaustive()
                }
            }

            #[automatically_derived]
            impl #impl_generics #ident #ty_generics #where_clause {
                #(#consts)*

                #[doc = #view_fn_doc]
                #vis fn view<'session>(session: &'session #private::Session) -> #view #view_ty_generics {
                    #view {
                        session,
                        marker: ::core::marker::PhantomData,
                    }
                }
            }

            #[automatically_derived]
            impl #view_impl_generics #view #view_ty_generics #view_where_clause {
                #(#accessors)*
            }

            #trait_impl
        };
    }
}

/// `impl SessionData`: `load` goes through the view's getters, so each field's absent-value
/// rule (and its error span) lives in one place.
fn trait_impl(
    ident: &Ident,
    bounded: &Generics,
    fields: &[Field<'_>],
    private: &TokenStream,
) -> TokenStream {
    let (impl_generics, ty_generics, where_clause) = bounded.split_for_impl();
    let stored: Vec<&Field<'_>> = fields.iter().filter(|f| f.kind != Kind::Skip).collect();
    let keys: Vec<&str> = stored.iter().map(|f| f.key.as_str()).collect();
    let loads = stored.iter().map(|f| {
        let name = f.ident;
        quote!(#name: view.#name()?)
    });
    let skipped = fields.iter().filter(|f| f.kind == Kind::Skip).map(|f| {
        let name = f.ident;
        let ty = f.ty();
        let value = quote_spanned!(ty.span()=> <#ty as #private::FieldDefault>::field_default());
        quote!(#name: #value)
    });
    let view_binding = if stored.is_empty() {
        quote!(let _ = session;)
    } else {
        quote!(let view = Self::view(session);)
    };
    let encodes = stored.iter().map(|f| {
        let name = f.ident;
        let key = &f.key;
        if f.kind == Kind::Option {
            quote!((#key, #private::encode_option(#key, ::core::option::Option::as_ref(&self.#name))?))
        } else {
            quote!((#key, #private::encode_value(#key, &self.#name)?))
        }
    });

    quote! {
        #[automatically_derived]
        impl #impl_generics #private::SessionData for #ident #ty_generics #where_clause {
            const KEYS: &'static [&'static str] = &[#(#keys),*];

            fn load(session: &#private::Session) -> #private::Result<Self> {
                #view_binding
                ::core::result::Result::Ok(Self {
                    #(#loads,)*
                    #(#skipped,)*
                })
            }

            fn store(&self, session: &#private::Session) -> #private::Result<()> {
                #private::write_fields(session, [#(#encodes,)*]);
                ::core::result::Result::Ok(())
            }
        }
    }
}

fn key_const(field: &Field<'_>, vis: &syn::Visibility) -> TokenStream {
    let name = const_name(field.ident);
    let key = &field.key;
    let doc = format!("The session key of `{}`: `{key:?}`.", field.ident.unraw());
    quote! {
        #[doc = #doc]
        #vis const #name: &'static str = #key;
    }
}

fn const_name(ident: &Ident) -> Ident {
    format_ident!(
        "{}_KEY",
        ident.unraw().to_string().to_uppercase(),
        span = ident.span()
    )
}

fn accessors(
    field: &Field<'_>,
    vis: &syn::Visibility,
    private: &TokenStream,
    params: &[&Ident],
) -> TokenStream {
    let name = field.ident;
    let plain = name.unraw();
    let ty = field.ty();
    let key = &field.key;
    let setter = format_ident!("set_{}", plain, span = name.span());
    let remover = format_ident!("remove_{}", plain, span = name.span());

    let (get, get_doc, set, set_doc) = match field.kind {
        Kind::Option => (
            quote!(#private::get_option(self.session, #key)),
            format!(
                "Decodes `{plain}` from the key `{key:?}`; `None` when the key is absent.\n\n\
                 # Errors\n\n`Error::Decode` naming the key when the stored value is not of the field's type."
            ),
            quote!(#private::set_option(self.session, #key, ::core::option::Option::as_ref(&value))),
            format!(
                "Stores `value` under `{key:?}`, or removes the key for `None`. The key is marked \
                 changed only if its bytes differ.\n\n\
                 # Errors\n\n`Error::Encode` naming the key when `value` cannot be serialized; \
                 the session is then unchanged."
            ),
        ),
        Kind::Default | Kind::Required => {
            let decode = "`Error::Decode` naming the key when the stored value is not of the \
                          field's type";
            let (get, get_doc) = if field.kind == Kind::Default {
                (
                    quote_spanned!(ty.span()=> #private::get_default::<#ty>(self.session, #key)),
                    format!(
                        "Decodes `{plain}` from the key `{key:?}`; the type's `Default` when \
                         the key is absent.\n\n# Errors\n\n{decode}."
                    ),
                )
            } else {
                (
                    quote!(#private::get_required(self.session, #key)),
                    format!(
                        "Decodes `{plain}` from the key `{key:?}`.\n\n# Errors\n\n\
                         `Error::Missing` naming the key when it is absent; {decode}."
                    ),
                )
            };
            (
                get,
                get_doc,
                quote!(#private::set_value(self.session, #key, &value)),
                format!(
                    "Stores `value` under `{key:?}`. The key is marked changed only if its bytes \
                     differ.\n\n\
                     # Errors\n\n`Error::Encode` naming the key when `value` cannot be serialized; \
                     the session is then unchanged."
                ),
            )
        }
        Kind::Skip => return TokenStream::new(),
    };
    let remove_doc = format!("Removes the key `{key:?}`; returns whether it was present.");
    let ops = operations(field, vis, private, params);
    quote! {
        #ops

        #[doc = #get_doc]
        #vis fn #name(&self) -> #private::Result<#ty> {
            #get
        }

        #[doc = #set_doc]
        #vis fn #setter(&self, value: #ty) -> #private::Result<()> {
            #set
        }

        #[doc = #remove_doc]
        #vis fn #remover(&self) -> bool {
            #private::remove(self.session, #key)
        }
    }
}

/// The typed operations of a counter, list or set field (see `Ops`): each records an
/// operation that the store carries out on the value it holds, so concurrent requests lose
/// none, and returns what this request now sees.
fn operations(
    field: &Field<'_>,
    vis: &syn::Visibility,
    private: &TokenStream,
    params: &[&Ident],
) -> TokenStream {
    let name = field.ident;
    let plain = name.unraw();
    let ty = field.ty();
    let key = &field.key;
    let atomic = "When the session is saved, the store repeats the operation on the value it \
                  holds, so concurrent requests lose none of it.";
    let errors = "# Errors\n\n`Error::WrongType` naming the key when the stored value is not \
                  of the right kind; the session is then unchanged.";
    // An element type that mentions a type parameter needs its bounds on the method.
    let bound = |inner: &Type| {
        if params.iter().any(|p| mentions(inner, p)) {
            quote!(where #inner: #private::serde::Serialize)
        } else {
            TokenStream::new()
        }
    };
    match field.ops() {
        None => TokenStream::new(),
        Some(Ops::Counter) => {
            let incr = format_ident!("incr_{}", plain, span = name.span());
            let doc = format!(
                "Adds `delta` to `{plain}` (the key `{key:?}`; absent counts as 0) and returns \
                 the new value. {atomic}\n\n{errors} `Error::Overflow` when the value would \
                 leave the field's type."
            );
            quote! {
                #[doc = #doc]
                #vis fn #incr(&self, delta: i64) -> #private::Result<#ty> {
                    #private::increment::<#ty>(self.session, #key, delta)
                }
            }
        }
        Some(Ops::List(inner)) => {
            let push = format_ident!("push_{}", plain, span = name.span());
            let bounded = format_ident!("push_{}_bounded", plain, span = name.span());
            let where_clause = bound(inner);
            let doc = format!(
                "Appends `item` to `{plain}` (the key `{key:?}`; absent counts as empty). \
                 {atomic}\n\n{errors}"
            );
            let bounded_doc = format!(
                "Appends `item` to `{plain}` unless it already holds `max_len` items (the first \
                 `max_len` are kept); returns whether it grew here. {atomic}\n\n{errors}"
            );
            quote! {
                #[doc = #doc]
                #vis fn #push(&self, item: #inner) -> #private::Result<()> #where_clause {
                    #private::push(self.session, #key, &item, ::core::option::Option::None).map(|_| ())
                }

                #[doc = #bounded_doc]
                #vis fn #bounded(&self, item: #inner, max_len: usize) -> #private::Result<bool> #where_clause {
                    #private::push(self.session, #key, &item, ::core::option::Option::Some(max_len))
                }
            }
        }
        Some(Ops::Set(inner)) => {
            let add = format_ident!("add_to_{}", plain, span = name.span());
            let remove = format_ident!("remove_from_{}", plain, span = name.span());
            let where_clause = bound(inner);
            let add_doc = format!(
                "Adds `item` to the set `{plain}` (the key `{key:?}`) unless it is there; \
                 returns whether it was new here. {atomic}\n\n{errors}"
            );
            let remove_doc = format!(
                "Removes `item` from the set `{plain}` (the key `{key:?}`); returns whether it \
                 was there. {atomic}\n\n{errors}"
            );
            quote! {
                #[doc = #add_doc]
                #vis fn #add(&self, item: #inner) -> #private::Result<bool> #where_clause {
                    #private::set_op(self.session, #key, &item, true)
                }

                #[doc = #remove_doc]
                #vis fn #remove(&self, item: &#inner) -> #private::Result<bool> #where_clause {
                    #private::set_op(self.session, #key, item, false)
                }
            }
        }
    }
}

/// Adds the bounds the expansion needs for generic structs. Only field types that mention a
/// type parameter get a predicate: the rest are concrete and checked where they are used,
/// and a `where` clause on a concrete private type would trip `private_bounds`.
fn with_bounds(generics: &Generics, fields: &[Field<'_>], private: &TokenStream) -> Generics {
    let params: Vec<&Ident> = generics.type_params().map(|p| &p.ident).collect();
    let mut bounded = generics.clone();
    if params.is_empty() {
        return bounded;
    }
    let predicates: Vec<WherePredicate> = fields
        .iter()
        .filter(|f| params.iter().any(|p| mentions(f.ty(), p)))
        .map(|f| {
            let ty = f.ty();
            match f.kind {
                Kind::Skip => parse_quote!(#ty: #private::FieldDefault),
                Kind::Default => parse_quote!(
                    #ty: #private::serde::Serialize + #private::serde::de::DeserializeOwned + #private::FieldDefault
                ),
                Kind::Required => parse_quote!(
                    #ty: #private::serde::Serialize + #private::serde::de::DeserializeOwned
                ),
                Kind::Option => {
                    let inner = option_inner(ty).unwrap_or(ty);
                    parse_quote!(
                        #inner: #private::serde::Serialize + #private::serde::de::DeserializeOwned
                    )
                }
            }
        })
        .collect();
    bounded.make_where_clause().predicates.extend(predicates);
    bounded
}

/// Whether the tokens of `ty` contain the identifier `param`.
fn mentions(ty: &Type, param: &Ident) -> bool {
    fn walk(tokens: TokenStream, param: &Ident) -> bool {
        tokens.into_iter().any(|tt| match tt {
            TokenTree::Ident(ident) => ident == *param,
            TokenTree::Group(group) => walk(group.stream(), param),
            TokenTree::Punct(_) | TokenTree::Literal(_) => false,
        })
    }
    walk(quote!(#ty), param)
}

fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(inner) => Some(inner),
        _ => None,
    }
}
