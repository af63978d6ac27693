//! The attribute macros of [multiproc](https://docs.rs/multiproc). Use them through
//! multiproc (`#[multiproc::remote]`, feature `cluster`), which re-exports them and
//! documents them with examples; this crate alone does nothing useful.
//!
//! What an attribute expands to is multiproc's own declarative macros, so there is one
//! registration code path: `#[multiproc::remote] fn f(..)` is the function unchanged
//! plus `multiproc::task!(f);`.

mod remote;

use proc_macro::TokenStream;

// Documented where it is used, on multiproc's re-export (`multiproc::remote`, with
// its examples and compile-fail tests): rustdoc appends these docs to that one, so
// there are none here. What it checks and why is in `remote.rs`.
#[allow(missing_docs)]
#[proc_macro_attribute]
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    remote::expand(attr.into(), item.into()).into()
}
