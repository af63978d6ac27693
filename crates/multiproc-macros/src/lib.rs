//! The attribute macros of [multiproc](https://docs.rs/multiproc). Use them through
//! multiproc (`#[multiproc::remote]`, feature `cluster`), which re-exports them and
//! documents them with examples; this crate alone does nothing useful.
//!
//! What an attribute expands to is multiproc's own declarative macros, so there is one
//! registration code path: `#[multiproc::remote] fn f(..)` is the function unchanged
//! plus `multiproc::task!(f);`.

mod remote;

use proc_macro::TokenStream;

/// Registers a function as a cluster task, as `multiproc::task!(f)` does next to it.
///
/// The function is unchanged (calling it runs it here, as before). What it adds is the
/// registration that lets a cluster pool run the function on other machines. A
/// function that cannot be a task is refused at compile time with a message saying
/// why: a generic or `async` function, an `unsafe fn`, a method (`self`), and a
/// function that does not take exactly one argument (pass several values as one
/// tuple). The argument `crate = path` names multiproc when it is a dependency under
/// another name: `#[mp::remote(crate = mp)]`.
///
/// The examples, and the refusals as compile-fail tests, are in multiproc's docs of
/// `multiproc::remote`.
#[proc_macro_attribute]
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    remote::expand(attr.into(), item.into()).into()
}
