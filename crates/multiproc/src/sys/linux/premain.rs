//! The pre-`main` hook: code that runs in every program that links multiproc, before
//! `main` — before the test harness in `cargo test`, before a doctest's body, before an
//! example's `main`.
//!
//! One constructor in `.init_array` runs the hooks that higher layers register with
//! [`premain_hook!`], in the order of their [`Hook::order`]. The hooks live in a
//! [`linkme`] distributed slice ([`HOOKS`]): a linker section, complete before any code
//! runs, so `sys` names none of its users. A hook returns when it has nothing to do;
//! one that takes the process over never returns.
//!
//! A constructor and a hook are linked only if their object file is: a path that needs
//! them (one that re-executes this program) calls [`keep_linked`], and a hook's user
//! keeps its own `static` the same way.
//!
//! # Safety
//!
//! No `unsafe` block. The `unsafe_code` lint counts `#[link_section]`: [`PREMAIN`] uses
//! it to put one `extern "C" fn()` in `.init_array`, which the loader calls once, with no
//! arguments, before `main`; [`premain_hook!`] lets linkme put one [`Hook`] (plain
//! data: an order and a `fn()`) in [`HOOKS`]'s section.
//!
//! # References
//! - <https://refspecs.linuxfoundation.org/elf/gabi4+/ch5.dynamic.html#init_fini> (`DT_INIT_ARRAY`)
#![allow(unsafe_code)]

/// A function to run before `main` (see the module docs).
#[derive(Debug)]
pub(crate) struct Hook {
    /// Hooks run in increasing order.
    pub(crate) order: u8,
    /// Returns when it has nothing to do.
    pub(crate) run: fn(),
}

/// The registered hooks, in no particular order (see [`premain_hook!`]).
#[linkme::distributed_slice]
pub(crate) static HOOKS: [Hook];

/// Registers `static $name: Hook` with `order` and `run` in [`HOOKS`].
macro_rules! premain_hook {
    ($name:ident, $order:expr, $run:expr) => {
        #[linkme::distributed_slice($crate::sys::premain::HOOKS)]
        // linkme places the element with `#[link_section]`, which the `unsafe_code`
        // lint counts; the section holds only this `Hook`.
        #[allow(unsafe_code)]
        static $name: $crate::sys::premain::Hook = $crate::sys::premain::Hook {
            order: $order,
            run: $run,
        };
    };
}
pub(crate) use premain_hook;

/// Runs before `main` in every program that links multiproc.
#[used]
#[link_section = ".init_array"]
static PREMAIN: extern "C" fn() = premain;

extern "C" fn premain() {
    // In increasing order, without allocating (there are a handful of hooks): a program
    // that is no child pays a few loads and each hook's own check.
    let mut next = HOOKS.iter().map(|h| h.order).min();
    while let Some(order) = next {
        for hook in HOOKS.iter().filter(|h| h.order == order) {
            (hook.run)();
        }
        next = HOOKS.iter().map(|h| h.order).filter(|&o| o > order).min();
    }
}

/// Makes sure the linker keeps [`PREMAIN`] (see the module docs).
pub(crate) fn keep_linked() {
    std::hint::black_box(&PREMAIN);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Which hooks ran, in order: each appends its digit.
    static RAN: AtomicU32 = AtomicU32::new(0);

    fn late() {
        let _ = RAN.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| Some(v * 10 + 2));
    }

    fn early() {
        let _ = RAN.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| Some(v * 10 + 1));
    }

    // Registered late first: the order is the hooks' `order`, not the registration's.
    premain_hook!(LATE, 250, late);
    premain_hook!(EARLY, 200, early);

    #[test]
    fn hooks_ran_before_main_in_order() {
        assert_eq!(RAN.load(Ordering::SeqCst), 12);
    }
}
