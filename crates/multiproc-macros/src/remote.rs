//! `#[remote]`: the function unchanged, plus `<multiproc>::task!(name);` after it.
//!
//! Checks first what multiproc's `TaskDef::of` cannot take, so that a user reads why
//! instead of a trait-bound error from inside `task!`: `TaskDef::of` wants a
//! zero-sized `Fn(A) -> R + Copy + 'static` with serde `A` and `R`, that is a plain
//! `fn` item of one argument, not generic (each instantiation would be a task of its
//! own, which `task!(f::<T>)` registers), not `async` (its result is a future), not
//! `unsafe` (an `unsafe fn` item implements no `Fn` trait), and not a method (a path
//! `Type::f` cannot be named from inside its `impl`). Closures cannot carry an
//! attribute at all. On a refusal the function is still emitted, unchanged, so the
//! only error is the refusal.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{FnArg, ItemFn, Path, Type};

/// The expansion of `#[remote(attr)] item`, or the item and a `compile_error!`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(attr, item.clone()) {
        Ok(out) => out,
        Err(e) => {
            let mut out = e.to_compile_error();
            out.extend(item);
            out
        }
    }
}

fn try_expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let krate = crate_path(attr)?;
    let f: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[remote] goes on a function (`fn name(arg: A) -> R`); a closure cannot be a \
             cluster task: only a named function can be found on another machine",
        )
    })?;
    check(&f)?;
    let name = &f.sig.ident;
    Ok(quote! {
        #f
        #krate::task!(#name);
    })
}

/// `crate = path` if given, else `::multiproc`.
fn crate_path(attr: TokenStream) -> syn::Result<Path> {
    let mut krate: Option<Path> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            krate = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error(
                "unknown argument: #[remote] takes none, or `crate = path` for multiproc \
                 under another name",
            ))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(krate.unwrap_or_else(|| syn::parse_quote!(::multiproc)))
}

/// Refuses what `TaskDef::of` cannot take, pointing at the reason.
fn check(f: &ItemFn) -> syn::Result<()> {
    let sig = &f.sig;
    let name = &sig.ident;
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new_spanned(
            a,
            format!(
                "an `async fn` cannot be a cluster task: a task returns its value, not a \
                 future; make `{name}` a plain `fn` (which may block on a future inside)"
            ),
        ));
    }
    if let Some(u) = &sig.unsafety {
        return Err(syn::Error::new_spanned(
            u,
            format!(
                "an `unsafe fn` cannot be a cluster task: a host calls it with whatever \
                 argument a client sent; make `{name}` safe, with the unsafe block inside"
            ),
        ));
    }
    let g = &sig.generics;
    if g.type_params().next().is_some() || g.const_params().next().is_some() {
        return Err(syn::Error::new_spanned(
            g,
            format!(
                "a generic function cannot be a cluster task: each instantiation is a task \
                 of its own; register the ones you use with `multiproc::task!({name}::<T>)` \
                 instead of #[remote]"
            ),
        ));
    }
    if g.lifetimes().next().is_some() || g.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            g,
            "a cluster task cannot have lifetime parameters or a where clause: its argument \
             and result cross machines, so they are owned values (`String`, not `&str`)",
        ));
    }
    if let Some(FnArg::Receiver(r)) = sig.inputs.first() {
        return Err(syn::Error::new_spanned(
            r,
            "a method (`self`) cannot be a cluster task: a host has no `self` to call it \
             on; use a free function that takes the value as its argument",
        ));
    }
    match sig.inputs.len() {
        1 => {}
        0 => {
            return Err(syn::Error::new_spanned(
                &sig.ident,
                format!(
                    "`{name}` takes no argument, and a cluster task takes exactly one: \
                     `fn {name}(_: ()) -> R` for none"
                ),
            ))
        }
        n => {
            return Err(syn::Error::new_spanned(
                &sig.inputs,
                format!(
                    "`{name}` takes {n} arguments, and a cluster task takes exactly one: pass \
                     them as one tuple, `fn {name}((a, b): (A, B)) -> R`, and map over tuples"
                ),
            ))
        }
    }
    if let Some(FnArg::Typed(arg)) = sig.inputs.first() {
        if let Type::ImplTrait(t) = &*arg.ty {
            return Err(syn::Error::new_spanned(
                t,
                format!(
                    "an `impl Trait` argument makes `{name}` generic, and a generic function \
                     cannot be a cluster task: name the argument's type"
                ),
            ));
        }
    }
    if let syn::ReturnType::Type(_, ty) = &sig.output {
        if let Type::ImplTrait(t) = &**ty {
            return Err(syn::Error::new_spanned(
                t,
                format!(
                    "`{name}` returns an `impl Trait`, and a cluster task's result type is \
                     part of its key: name the result's type"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
