use proc_macro2::TokenStream;
use quote::quote;

use super::expand;

/// The expansion as text, and the `compile_error!` message in it if any.
fn run(attr: TokenStream, item: TokenStream) -> (String, Option<String>) {
    let out = expand(attr, item).to_string();
    let err = out.find("compile_error").map(|i| {
        let rest = &out[i..];
        let start = rest.find('"').expect("a message") + 1;
        let end = rest[start..].find('"').expect("its end") + start;
        rest[start..end].to_string()
    });
    (out, err)
}

fn refused(item: TokenStream) -> String {
    let (out, err) = run(TokenStream::new(), item);
    let err = err.unwrap_or_else(|| panic!("accepted: {out}"));
    assert!(!out.contains("task !"), "registered anyway: {out}");
    // The function is still there, so its callers see no second error.
    assert!(out.contains("fn f"), "the function was dropped: {out}");
    err
}

#[test]
fn a_plain_function_is_kept_and_registered_once() {
    let (out, err) = run(
        TokenStream::new(),
        quote! {
            /// Docs stay.
            pub(crate) fn square(x: u64) -> u64 { x * x }
        },
    );
    assert_eq!(err, None, "{out}");
    assert!(
        out.contains("pub (crate) fn square (x : u64) -> u64 { x * x }"),
        "{out}"
    );
    assert!(out.contains("doc"), "{out}");
    assert_eq!(
        out.matches(":: multiproc :: task ! (square) ;").count(),
        1,
        "{out}"
    );
    // A tuple pattern is one argument.
    let (out, err) = run(
        TokenStream::new(),
        quote!(
            fn add((a, b): (u32, u32)) -> u32 {
                a + b
            }
        ),
    );
    assert_eq!(err, None, "{out}");
    assert!(out.contains(":: multiproc :: task ! (add) ;"), "{out}");
}

#[test]
fn crate_names_multiproc_under_another_name() {
    let (out, err) = run(
        quote!(crate = mp),
        quote!(
            fn f(x: u8) -> u8 {
                x
            }
        ),
    );
    assert_eq!(err, None, "{out}");
    assert!(out.contains("mp :: task ! (f) ;"), "{out}");
    assert!(!out.contains(":: multiproc"), "{out}");
    let (out, err) = run(
        quote!(name = "x"),
        quote!(
            fn f(x: u8) -> u8 {
                x
            }
        ),
    );
    assert!(err.unwrap().contains("unknown argument"), "{out}");
}

#[test]
fn generic_functions_are_refused() {
    let e = refused(quote!(
        fn f<T: Copy>(x: T) -> T {
            x
        }
    ));
    assert!(e.contains("generic") && e.contains("task!(f::<T>)"), "{e}");
    let e = refused(quote!(
        fn f<const N: usize>(x: [u8; N]) -> usize {
            N
        }
    ));
    assert!(e.contains("generic"), "{e}");
    let e = refused(quote!(
        fn f(x: impl Into<u64>) -> u64 {
            x.into()
        }
    ));
    assert!(e.contains("impl Trait") && e.contains("generic"), "{e}");
    let e = refused(quote!(
        fn f<'a>(x: &'a str) -> usize {
            x.len()
        }
    ));
    assert!(e.contains("lifetime"), "{e}");
    let e = refused(quote!(
        fn f(x: u8) -> u8
        where
            u8: Copy,
        {
            x
        }
    ));
    assert!(e.contains("where clause"), "{e}");
    let e = refused(quote!(
        fn f(x: u8) -> impl Copy {
            x
        }
    ));
    assert!(e.contains("impl Trait"), "{e}");
}

#[test]
fn async_and_unsafe_functions_are_refused() {
    let e = refused(quote!(
        async fn f(x: u8) -> u8 {
            x
        }
    ));
    assert!(e.contains("async fn") && e.contains("future"), "{e}");
    let e = refused(quote!(
        unsafe fn f(x: u8) -> u8 {
            x
        }
    ));
    assert!(e.contains("unsafe fn"), "{e}");
}

#[test]
fn methods_are_refused() {
    for item in [
        quote!(
            fn f(&self, x: u8) -> u8 {
                x
            }
        ),
        quote!(
            fn f(self) -> u8 {
                0
            }
        ),
        quote!(
            fn f(self: Box<Self>) -> u8 {
                0
            }
        ),
    ] {
        let e = refused(item);
        assert!(e.contains("method") && e.contains("self"), "{e}");
    }
}

#[test]
fn exactly_one_argument() {
    let e = refused(quote!(
        fn f() -> u8 {
            0
        }
    ));
    assert!(
        e.contains("takes no argument") && e.contains("exactly one"),
        "{e}"
    );
    let e = refused(quote!(
        fn f(a: u8, b: u8) -> u8 {
            a + b
        }
    ));
    assert!(
        e.contains("takes 2 arguments") && e.contains("tuple"),
        "{e}"
    );
}

#[test]
fn what_is_not_a_function_is_refused() {
    let (out, err) = run(
        TokenStream::new(),
        quote!(
            struct S;
        ),
    );
    let e = err.unwrap_or_else(|| panic!("accepted: {out}"));
    assert!(e.contains("goes on a function"), "{e}");
}
