//! What may live in shared memory: [`ShmLayout`] types, shared by reference (atomics
//! and the synchronization primitives' states), and [`Pod`] types, copied in and out
//! by value (the elements of a [`Value`](super::Value) or [`Array`](super::Array)).
//!
//! # Safety
//!
//! Both are `unsafe` traits whose contracts are stated on them; the implementations
//! here are for the std atomics (`ShmLayout`), the primitive numbers and arrays of
//! `Pod` (`Pod`), each with the reason it meets the contract. The synchronization
//! primitives' layouts are listed in `sync/layout.rs`.
#![allow(unsafe_code)]

/// A type that can live in shared memory and be shared by reference.
///
/// # Safety
///
/// Implementors must be `#[repr(C)]`, contain only atomics (no pointers, no
/// descriptors, nothing process-local), have an alignment of at most 4096, and the
/// all-zero bit pattern must be a valid value equal to `Default::default()`:
/// a fresh segment is zeroed and handed out as `&Self` without running any
/// constructor.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) unsafe trait ShmLayout: Default + Sync {}

macro_rules! atomic_layouts {
    ($($a:ty),*) => {$(
        // SAFETY: std atomics have the size and alignment of their integer, are
        // `Sync`, and all-zero is `0`, their `Default`.
        unsafe impl ShmLayout for $a {}
    )*};
}
atomic_layouts!(
    std::sync::atomic::AtomicU8,
    std::sync::atomic::AtomicU16,
    std::sync::atomic::AtomicU32,
    std::sync::atomic::AtomicU64,
    std::sync::atomic::AtomicUsize,
    std::sync::atomic::AtomicI8,
    std::sync::atomic::AtomicI16,
    std::sync::atomic::AtomicI32,
    std::sync::atomic::AtomicI64,
    std::sync::atomic::AtomicIsize
);

/// "Plain old data": a type that can be copied bytewise into and out of shared
/// memory, as the element of a [`Value`](crate::shm::Value) or
/// [`Array`](crate::shm::Array).
///
/// Implemented for the primitive integers and floats and for arrays of `Pod`
/// types. `bool` and `char` are not `Pod` (some bit patterns are invalid), nor is
/// anything holding a pointer or reference (it would point into another process).
///
/// # Safety
///
/// Implement it only for a `Copy` type that
/// - has no padding bytes and no invalid bit patterns (every byte pattern, including
///   all zeros and a torn mix of two values, is a valid value);
/// - holds no pointers, references, descriptors or other process-local resources;
/// - is `#[repr(C)]` or `#[repr(transparent)]` if it is a struct, so its layout is
///   the same in every process.
///
/// # Examples
///
/// ```
/// use multiproc::shm::{Pod, Value};
///
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
///
/// // SAFETY: two f64s, no padding, every bit pattern valid, no pointers.
/// unsafe impl Pod for Point {}
///
/// let p = Value::new(Point { x: 1.0, y: 2.0 })?;
/// assert_eq!(p.get(), Point { x: 1.0, y: 2.0 });
/// # Ok::<(), multiproc::Error>(())
/// ```
pub unsafe trait Pod: Copy + Send + Sync + 'static {}

macro_rules! pod {
    ($($t:ty),*) => {$(
        // SAFETY: a primitive number: no padding, every bit pattern valid, no pointers.
        unsafe impl Pod for $t {}
    )*};
}
pod!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

// SAFETY: an array of `Pod` has no padding between elements and inherits their
// validity.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}
