//! The semantic rules of `#[derive(SessionData)]`, checked after parsing. Each rule records an
//! error at the token that breaks it and checking goes on, so every problem shows at once.

use std::collections::BTreeMap;

use syn::ext::IdentExt;
use syn::{GenericParam, Type};

use crate::ast::{Field, Input, Kind, Ops};
use crate::ctxt::Ctxt;

/// Keys starting with this belong to sessionkit itself: a copy of `sessionkit::reserved::RESERVED_PREFIX`
/// (defined in `session/src/reserved.rs`), since a proc-macro crate cannot depend on the crate
/// it serves. Every check below uses this one constant; `tests/tests/derive_access.rs`
/// (`derive_and_session_agree_on_the_reserved_prefix`) fails if the copy drifts.
const RESERVED_PREFIX: &str = "__sk.";

pub(crate) fn check(cx: &Ctxt, input: &Input<'_>) {
    check_generics(cx, input);
    let prefix_reserved = check_prefix(cx, input);
    if let Some(fields) = &input.fields {
        for field in fields {
            check_field(cx, field, prefix_reserved);
        }
        check_duplicate_keys(cx, fields);
        check_generated_names(cx, fields);
    }
}

/// Session values are decoded into owned data, so a struct cannot borrow.
fn check_generics(cx: &Ctxt, input: &Input<'_>) {
    for param in &input.original.generics.params {
        if let GenericParam::Lifetime(lifetime) = param {
            cx.error_spanned_by(
                lifetime,
                "lifetime parameters are not supported by #[derive(SessionData)]; session values are decoded into owned data, so use owned field types",
            );
        }
    }
}

/// The prefix is joined to each name with a `.`, so it must be non-empty, must not end with
/// a `.`, and must not put the keys under the reserved prefix. Returns whether it does the
/// latter, so the fields are not blamed for it too.
fn check_prefix(cx: &Ctxt, input: &Input<'_>) -> bool {
    let Some(prefix) = &input.attrs.prefix else {
        return false;
    };
    let value = prefix.value();
    if value.is_empty() {
        cx.error_spanned_by(
            prefix,
            "session prefix must not be empty; remove `prefix` to use the field names as keys",
        );
    } else if value.ends_with('.') {
        cx.error_spanned_by(
            prefix,
            "session prefix must not end with `.`; the prefix and the field name are joined with a `.`",
        );
    }
    if format!("{value}.").starts_with(RESERVED_PREFIX) {
        cx.error_spanned_by(
            prefix,
            format_args!(
                "session prefix `{value}` puts the keys under `{RESERVED_PREFIX}`, which is reserved for sessionkit"
            ),
        );
        return true;
    }
    false
}

fn check_field(cx: &Ctxt, field: &Field<'_>, prefix_reserved: bool) {
    let attrs = &field.attrs;
    if attrs.skip.is_some() {
        if let Some(default) = &attrs.default {
            cx.error_spanned_by(
                default,
                "`default` cannot be combined with `skip`; a skipped field always loads as its `Default`",
            );
        }
        if let Some(rename) = &attrs.rename {
            cx.error_spanned_by(
                rename,
                "`rename` cannot be combined with `skip`; a skipped field has no session key",
            );
        }
        return;
    }
    if let Some(default) = &attrs.default
        && crate::ast::is_option(field.ty())
    {
        cx.error_spanned_by(
            default,
            "`default` is not allowed on an `Option` field; an absent `Option` field already reads as `None`",
        );
    }
    if let Type::Reference(reference) = field.ty() {
        cx.error_spanned_by(
            reference,
            "borrowed field types are not supported by #[derive(SessionData)]; session values are decoded into owned data, so use an owned type such as `String` or `Vec<T>`",
        );
    }
    if let Some(rename) = &attrs.rename
        && rename.value().is_empty()
    {
        cx.error_spanned_by(rename, "session key name must not be empty");
    }
    if !prefix_reserved && field.key.starts_with(RESERVED_PREFIX) {
        cx.error_spanned_by(
            key_token(field),
            format_args!(
                "session key `{}` starts with `{RESERVED_PREFIX}`, which is reserved for sessionkit",
                field.key
            ),
        );
    }
}

/// Two stored fields may not share a key after `rename` and `prefix` are applied. The second
/// one is blamed, naming the first.
fn check_duplicate_keys(cx: &Ctxt, fields: &[Field<'_>]) {
    let mut seen: BTreeMap<&str, &Field<'_>> = BTreeMap::new();
    for field in fields.iter().filter(|f| f.kind != Kind::Skip) {
        if let Some(first) = seen.get(field.key.as_str()) {
            cx.error_spanned_by(
                key_token(field),
                format_args!(
                    "duplicate session key `{}`; field `{}` already uses it",
                    field.key, first.ident
                ),
            );
        } else {
            seen.insert(&field.key, field);
        }
    }
}

/// The token a key comes from: the `rename` literal, or else the field's name.
fn key_token(field: &Field<'_>) -> proc_macro2::TokenStream {
    if let Some(lit) = &field.attrs.rename {
        quote::quote!(#lit)
    } else {
        let ident = field.ident;
        quote::quote!(#ident)
    }
}

/// Each stored field `f` generates the view methods `f`, `set_f`, `remove_f` and the constant
/// `F_KEY`. A field whose names collide with another's (a field called `set_x` next to `x`,
/// or `user_id` next to `USER_ID`) is refused here rather than as a duplicate definition
/// inside the expansion.
fn check_generated_names(cx: &Ctxt, fields: &[Field<'_>]) {
    let mut taken: BTreeMap<String, (&Field<'_>, &str)> = BTreeMap::new();
    for field in fields.iter().filter(|f| f.kind != Kind::Skip) {
        let name = field.ident.unraw().to_string();
        let mut generated = vec![
            (name.clone(), "getter"),
            (format!("set_{name}"), "setter"),
            (format!("remove_{name}"), "remover"),
            (format!("{}_KEY", name.to_uppercase()), "key constant"),
        ];
        match field.ops() {
            Some(Ops::Counter) => generated.push((format!("incr_{name}"), "increment")),
            Some(Ops::List(_)) => {
                generated.push((format!("push_{name}"), "push"));
                generated.push((format!("push_{name}_bounded"), "bounded push"));
            }
            Some(Ops::Set(_)) => {
                generated.push((format!("add_to_{name}"), "set add"));
                generated.push((format!("remove_from_{name}"), "set remove"));
            }
            None => {}
        }
        let mut clash = None;
        for (generated_name, role) in &generated {
            if let Some((other, other_role)) = taken.get(generated_name) {
                clash = Some(format!(
                    "field `{name}` would generate the {role} `{generated_name}`, which is already the {other_role} of field `{}`; rename the field (`#[session(rename = \"...\")]` keeps the key)",
                    other.ident.unraw()
                ));
                break;
            }
        }
        match clash {
            Some(message) => cx.error_spanned_by(field.ident, message),
            None => {
                for (generated_name, role) in generated {
                    taken.insert(generated_name, (field, role));
                }
            }
        }
    }
}
