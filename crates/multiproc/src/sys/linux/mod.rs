//! Linux implementations of the `sys` contract, one file per facility.

pub(crate) mod deathsig;
pub(crate) mod eventfd;
pub(crate) mod fork;
pub(crate) mod futex;
pub(crate) mod memfd;
pub(crate) mod mm;
pub(crate) mod pidfd;
pub(crate) mod poll;
pub(crate) mod premain;
pub(crate) mod proc;
pub(crate) mod rlimit;
pub(crate) mod shm_named;
pub(crate) mod signal;
pub(crate) mod socket;
pub(crate) mod stdio;
pub(crate) mod thread;
