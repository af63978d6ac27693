//! The synchronization primitives' shared-memory layouts, audited together: the
//! types each primitive keeps in a [`Shared`](crate::shm::Shared) (its futex words).
//!
//! # Safety
//!
//! [`ShmLayout`] lets `shm` hand out a `&T` to memory that another process may have
//! written and that no constructor ran on. Each type listed here is `#[repr(C)]`, made
//! of atomics only (no pointers, nothing process-local), with an alignment far below a
//! page, and all-zero is its derived `Default` state, as the trait requires. Its size
//! is pinned next to its definition (`const _: () = assert!(size_of::<…>() == N)`).
#![allow(unsafe_code)]

use super::barrier::RawBarrier;
use super::condition::RawCondition;
use super::event::RawEvent;
use super::rlock::RawRLock;
use super::robust::RawLock;
use super::semaphore::RawSemaphore;
use crate::shm::ShmLayout;

// SAFETY: `RawLock` is `#[repr(C)]` with three atomic fields, alignment 8, and
// all-zero is "unlocked, no owner" (its derived `Default`).
unsafe impl ShmLayout for RawLock {}
// SAFETY: `RawRLock` is `#[repr(C)]`: a `RawLock` and two atomics; all-zero is
// "unlocked, count 0".
unsafe impl ShmLayout for RawRLock {}
// SAFETY: `#[repr(C)]`, four atomics; all-zero is "value 0, no waiters, unbounded",
// and constructors store the initial value before sharing it.
unsafe impl ShmLayout for RawSemaphore {}
// SAFETY: `#[repr(C)]`, two atomics; all-zero is "not set, no waiters".
unsafe impl ShmLayout for RawEvent {}
// SAFETY: `#[repr(C)]`, two atomics; all-zero is "sequence 0, no waiters".
unsafe impl ShmLayout for RawCondition {}
// SAFETY: `#[repr(C)]`, a `RawLock` and atomics; all-zero is "generation 0, empty,
// not broken" (the party count is stored before the barrier is shared).
unsafe impl ShmLayout for RawBarrier {}
