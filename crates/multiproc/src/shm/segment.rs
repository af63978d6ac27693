//! [`SharedMemory`]: a memfd mapped `MAP_SHARED`, with bounds-checked byte copies and
//! typed atomic views.
//!
//! # Safety
//!
//! A `Mapping` owns a live `MAP_SHARED` mapping of `len` bytes at `ptr`, created in
//! [`Mapping::new`] and unmapped only in its `Drop`. Every reference handed out
//! borrows the `SharedMemory` that keeps the `Arc<Mapping>` alive, and every offset
//! is bounds- and alignment-checked before a pointer is formed. The memory may be written by other processes at any time, so Rust
//! references are only ever formed to atomics (or `ShmLayout` types made of them);
//! byte access goes through raw copies.
#![allow(unsafe_code)]

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;
#[cfg(not(loom))]
use std::sync::Weak;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::layout::{Pod, ShmLayout};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// A block of memory shared between processes (and threads).
///
/// The memory is an anonymous `memfd` mapped `MAP_SHARED`: it has no name in any
/// file system, so nothing can leak. The kernel frees it when the last process that
/// has it open or mapped closes it or exits, even if every process crashed. It
/// starts zeroed, is readable and writable by its owner only (mode `0600`), and its
/// size is fixed (sealed) at creation.
///
/// Give it to a child by passing it (or anything holding it) as the argument of
/// [`Process::start_with`](crate::Process::start_with): it travels as a file
/// descriptor by every start method and the child maps the same memory. A process
/// that was not handed the object can [`attach`](Self::attach) by
/// [`name`](Self::name). Attaching never destroys anything: there is no "unlink".
///
/// Clones are cheap and share one mapping.
///
/// # Concurrent access
///
/// Other processes may write the memory at any moment. [`read`](Self::read) and
/// [`write`](Self::write) copy bytes without synchronization, so a copy that races
/// with a writer may see a torn mix; protect multi-byte data with a
/// [`Lock`](crate::Lock), or use the atomic views ([`atomic_u32`](Self::atomic_u32),
/// [`atomic_u64`](Self::atomic_u64)).
///
/// # Examples
///
/// ```
/// use multiproc::{Process, SharedMemory};
///
/// fn child(shm: SharedMemory) {
///     shm.write(0, b"hello").unwrap();
/// }
///
/// let shm = SharedMemory::create(4096)?;
/// Process::start_with(child, shm.clone())?.join()?;
/// let mut buf = [0u8; 5];
/// shm.read(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedMemory {
    map: Arc<Mapping>,
    /// The `/dev/shm` name of a segment made by [`create_named`](Self::create_named)
    /// or [`open`](Self::open) (not carried to other processes).
    shm_name: Option<Arc<str>>,
}

/// A live mapping, shared by the clones of a [`SharedMemory`] (and held weakly by
/// [`Shared`](super::Shared)'s arenas).
pub(super) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory that any thread may access; the pointer
// is only dereferenced through the bounds-checked accessors, which hand out atomics
// or copy bytes.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: `&Mapping` only allows atomic access or raw copies.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(fd: OwnedFd, len: usize) -> Result<Mapping> {
        let ptr = sys::mm::map_shared(fd.as_fd(), len).map_err(Error::os)?;
        Ok(Mapping { ptr, len, fd })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` come from `map_shared` in `Mapping::new`; this is the only
        // unmap, and no borrow of the mapping outlives the `Arc<Mapping>` being dropped.
        unsafe { sys::mm::unmap(self.ptr, self.len) };
    }
}

fn named_path(name: &str) -> Result<String> {
    sys::shm_named::path(name).ok_or_else(|| {
        invalid(format!(
            "shared memory name {name:?} must be one path component (with or without a leading /)"
        ))
    })
}

fn is_io(e: &Error, kind: std::io::ErrorKind) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == kind)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput).with_message(message)
}

impl SharedMemory {
    /// Creates a zeroed segment of `size` bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `size` is 0; [`ErrorKind::Os`] if the kernel
    /// refuses (`EMFILE`, `ENOMEM`, …).
    ///
    /// # Examples
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(100)?;
    /// assert_eq!(shm.len(), 100);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn create(size: usize) -> Result<SharedMemory> {
        if size == 0 {
            return Err(invalid("shared memory size must be positive"));
        }
        let fd = sys::memfd::create(size as u64).map_err(Error::os)?;
        Ok(SharedMemory {
            map: Arc::new(Mapping::new(fd, size)?),
            shm_name: None,
        })
    }

    /// Maps the segment another process [named](Self::name).
    ///
    /// The name is a `/proc/<pid>/fd/<n>` path followed by `#<inode>`. The kernel
    /// lets a process open the path only if it may inspect the creator (same user
    /// and a ptrace "read" check), and the file itself is owner-only, so the name
    /// need not be secret or unguessable. The inode guards against the creator having
    /// closed the segment and reused the descriptor number for another one. The name
    /// stays valid while the creating process is alive and keeps this object (or a
    /// clone) open. Attaching never destroys anything: the memory lives while any
    /// process has it open or mapped.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `name` is not (or no longer) a multiproc
    /// segment, [`ErrorKind::Os`] if it cannot be opened (the creator exited:
    /// `ENOENT`; no permission: `EACCES`) or mapped.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::SharedMemory;
    ///
    /// let shm = SharedMemory::create(64)?;
    /// let other = SharedMemory::attach(&shm.name())?;
    /// other.write(0, &[7])?;
    /// let mut b = [0];
    /// shm.read(0, &mut b)?;
    /// assert_eq!(b, [7]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn attach(name: &str) -> Result<SharedMemory> {
        let (path, inode) = match name.rsplit_once('#') {
            Some((path, ino)) => (
                path,
                Some(
                    ino.parse::<u64>()
                        .map_err(|_| invalid(format!("bad segment name {name}")))?,
                ),
            ),
            None => (name, None),
        };
        let fd = sys::memfd::reopen(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidInput {
                invalid(format!("{name} is not a multiproc shared-memory segment"))
            } else {
                Error::os(e).with_message(format!("cannot open shared-memory segment {name}"))
            }
        })?;
        if let Some(ino) = inode {
            let (_, actual) = sys::memfd::identity(fd.as_fd()).map_err(Error::os)?;
            if actual != ino {
                return Err(invalid(format!(
                    "{name}: the segment is gone (its descriptor number was reused)"
                )));
            }
        }
        Self::from_fd(fd, None)
    }

    fn from_fd(fd: OwnedFd, expected: Option<usize>) -> Result<SharedMemory> {
        // Another process's descriptor: a file it could still shrink would make our
        // next access to the mapping die of SIGBUS.
        if !sys::memfd::cannot_shrink_or_is_named(fd.as_fd()).map_err(Error::os)? {
            return Err(Error::new(ErrorKind::Decode).with_message(
                "shared memory from another process is not sealed against shrinking",
            ));
        }
        let size = sys::memfd::size(fd.as_fd()).map_err(Error::os)?;
        let size = usize::try_from(size).map_err(|_| invalid("segment too large"))?;
        if size == 0 || expected.is_some_and(|e| e != size) {
            return Err(Error::new(ErrorKind::Decode).with_message(format!(
                "shared memory has size {size}, expected {expected:?}"
            )));
        }
        Ok(SharedMemory {
            map: Arc::new(Mapping::new(fd, size)?),
            shm_name: None,
        })
    }

    /// Creates a zeroed segment of `size` bytes under `name` in `/dev/shm`, for
    /// processes that share nothing but the name (Python's
    /// `SharedMemory(name, create=True, size=n)`, POSIX `shm_open`).
    ///
    /// `name` is one path component, with or without a leading `/`. The segment is
    /// owner-only (mode `0600`) and appears under its name only once sized, so an
    /// [`open`](Self::open)er never sees it half-made.
    ///
    /// # The leak trade-off
    ///
    /// Unlike [`create`](Self::create)'s anonymous memfd, a named segment outlives
    /// every process that used it: the memory (it counts against `/dev/shm`, a RAM
    /// file system) is freed only once the name is removed with
    /// [`unlink`](Self::unlink) (or [`unlink_named`](Self::unlink_named), or `rm`)
    /// *and* the last mapping is gone. A process that crashes before unlinking leaks
    /// it until reboot. Python has the same trade-off (and a resource tracker process
    /// to clean up after crashes); use a named segment only where the processes
    /// cannot be handed a [`SharedMemory`] (started by something else), and unlink it
    /// as soon as everyone has opened it. Also unlike a memfd, its size is not
    /// sealed: a process of the same user that truncates the file makes the others'
    /// accesses past the new end fault (`SIGBUS`), so share it only with processes
    /// you trust.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `size` is 0 or `name` is not a single path
    /// component; [`ErrorKind::Os`] if a segment of that name exists
    /// (`AlreadyExists`) or the kernel refuses.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::SharedMemory;
    ///
    /// # let name = format!("multiproc-doc-{}", std::process::id());
    /// let shm = SharedMemory::create_named(&name, 4096)?;
    /// let other = SharedMemory::open(&name)?; // in any process of this user
    /// other.write(0, b"hi")?;
    /// let mut b = [0; 2];
    /// shm.read(0, &mut b)?;
    /// assert_eq!(&b, b"hi");
    /// shm.unlink()?; // the name is gone; both mappings stay valid
    /// assert!(SharedMemory::open(&name).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn create_named(name: &str, size: usize) -> Result<SharedMemory> {
        if size == 0 {
            return Err(invalid("shared memory size must be positive"));
        }
        let path = named_path(name)?;
        let fd = sys::shm_named::create(&path, size as u64)
            .map_err(|e| Error::os(e).with_message(format!("cannot create {path}")))?;
        Self::named(fd, name)
    }

    /// Opens the segment named `name` in `/dev/shm` (Python's
    /// `SharedMemory(name)`), made by [`create_named`](Self::create_named) in any
    /// process, or by Python or any POSIX `shm_open` user.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `name` is not a single path component or the
    /// segment is empty; [`ErrorKind::Os`] if there is none of that name
    /// (`NotFound`) or it cannot be opened or mapped.
    pub fn open(name: &str) -> Result<SharedMemory> {
        let path = named_path(name)?;
        let fd = sys::shm_named::open(&path)
            .map_err(|e| Error::os(e).with_message(format!("cannot open {path}")))?;
        Self::named(fd, name)
    }

    /// Opens the segment named `name`, or creates it with `size` zero bytes if there
    /// is none; returns it and whether this call created it (so that exactly one of
    /// many racing processes initializes it). An existing segment keeps its own
    /// size. See [`create_named`](Self::create_named) for the leak trade-off.
    ///
    /// # Errors
    ///
    /// As [`create_named`](Self::create_named) and [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::SharedMemory;
    ///
    /// # let name = format!("multiproc-doc-ooc-{}", std::process::id());
    /// let (a, created) = SharedMemory::open_or_create(&name, 64)?;
    /// assert!(created);
    /// let (b, created) = SharedMemory::open_or_create(&name, 64)?;
    /// assert!(!created);
    /// # drop(b);
    /// a.unlink()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn open_or_create(name: &str, size: usize) -> Result<(SharedMemory, bool)> {
        loop {
            match Self::open(name) {
                Ok(s) => return Ok((s, false)),
                Err(e) if !is_io(&e, std::io::ErrorKind::NotFound) => return Err(e),
                Err(_) => {}
            }
            match Self::create_named(name, size) {
                Ok(s) => return Ok((s, true)),
                // Another process created it in between: open that one.
                Err(e) if is_io(&e, std::io::ErrorKind::AlreadyExists) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes this segment's name from `/dev/shm` (Python's `unlink()`): nobody can
    /// [`open`](Self::open) it any more, and its memory is freed once every mapping
    /// is gone. Mappings, this one included, stay valid.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if the segment has no name here (it was made by
    /// [`create`](Self::create), or received from another process);
    /// [`ErrorKind::Os`] if the name is already gone.
    pub fn unlink(&self) -> Result<()> {
        let Some(name) = &self.shm_name else {
            return Err(invalid(
                "this segment has no /dev/shm name here (create_named or open gives one)",
            ));
        };
        Self::unlink_named(name)
    }

    /// Removes the segment named `name` from `/dev/shm`.
    ///
    /// # Errors
    ///
    /// As [`unlink`](Self::unlink).
    pub fn unlink_named(name: &str) -> Result<()> {
        let path = named_path(name)?;
        sys::shm_named::unlink(&path)
            .map_err(|e| Error::os(e).with_message(format!("cannot unlink {path}")))
    }

    /// The `/dev/shm` name given to [`create_named`](Self::create_named) or
    /// [`open`](Self::open); `None` for an anonymous segment (or one received from
    /// another process).
    pub fn shm_name(&self) -> Option<&str> {
        self.shm_name.as_deref()
    }

    fn named(fd: OwnedFd, name: &str) -> Result<SharedMemory> {
        let size = sys::memfd::size(fd.as_fd()).map_err(Error::os)?;
        if size == 0 {
            return Err(invalid(format!("shared memory {name} is empty")));
        }
        let size = usize::try_from(size).map_err(|_| invalid("segment too large"))?;
        Ok(SharedMemory {
            map: Arc::new(Mapping::new(fd, size)?),
            shm_name: Some(Arc::from(name)),
        })
    }

    /// The name under which another process can [`attach`](Self::attach).
    ///
    /// # Examples
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(64)?;
    /// assert!(shm.name().starts_with("/proc/"));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn name(&self) -> String {
        let path = sys::memfd::proc_path(&self.map.fd);
        match sys::memfd::identity(self.map.fd.as_fd()) {
            Ok((_, ino)) => format!("{path}#{ino}"),
            Err(_) => path,
        }
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        self.map.len
    }

    /// Always `false`: a segment has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.map.len == 0
    }

    /// A raw pointer to the first byte (page-aligned), valid while `self` (or a clone)
    /// lives.
    ///
    /// Other processes may write through their own mapping at any time: accessing
    /// the memory through this pointer is the caller's responsibility.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.ptr.as_ptr()
    }

    #[inline]
    fn check_range(&self, offset: usize, len: usize) -> Result<*mut u8> {
        match offset.checked_add(len) {
            Some(end) if end <= self.map.len => Ok(self.as_ptr().wrapping_add(offset)),
            _ => Err(self.out_of_range(offset, len)),
        }
    }

    /// The error of [`check_range`](Self::check_range), out of line so that the
    /// check itself is inlined into every word access.
    #[cold]
    #[inline(never)]
    fn out_of_range(&self, offset: usize, len: usize) -> Error {
        invalid(format!(
            "range {offset}..{offset}+{len} is outside the {}-byte segment",
            self.map.len
        ))
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if the range is outside the segment.
    ///
    /// # Examples
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(8)?;
    /// let mut buf = [1u8; 4];
    /// shm.read(4, &mut buf)?;
    /// assert_eq!(buf, [0; 4]);
    /// assert!(shm.read(6, &mut buf).is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[inline]
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let src = self.check_range(offset, buf.len())?;
        // SAFETY: `src..src+len` is inside the mapping (checked above), which lives while
        // `self` does; `buf` is a distinct Rust allocation, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Appends the `len` bytes starting at `offset` to `out`, copied straight into
    /// its spare capacity (no zero-filling of the new part first).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if the range is outside the segment (`out` is
    /// left as it was).
    #[inline]
    pub(crate) fn read_append(&self, offset: usize, len: usize, out: &mut Vec<u8>) -> Result<()> {
        let src = self.check_range(offset, len)?;
        out.reserve(len);
        let at = out.len();
        let dst = out.spare_capacity_mut().as_mut_ptr().cast::<u8>();
        // SAFETY: `src..src+len` is inside the mapping (checked above), which lives while
        // `self` does; `reserve` made room for `len` bytes at `dst` (the spare capacity
        // after `at`) in `out`'s own allocation, which does not overlap the mapping.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, len) };
        // SAFETY: the `len` bytes after `at` were initialized just above, within the
        // capacity `reserve` ensured.
        unsafe { out.set_len(at + len) };
        Ok(())
    }

    /// Copies `data` into the segment starting at `offset`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if the range is outside the segment.
    ///
    /// # Examples
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(8)?;
    /// shm.write(6, b"hi")?;
    /// assert!(shm.write(7, b"hi").is_err());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[inline]
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        let dst = self.check_range(offset, data.len())?;
        // SAFETY: `dst..dst+len` is inside the writable mapping (checked above), which
        // lives while `self` does; no Rust reference to these bytes exists (only atomics
        // are ever referenced, and writing bytes under them is an atomic-sized race the
        // caller accepted, see "Concurrent access").
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// Returns the 32-bit atomic word at byte `offset`.
    ///
    /// # Panics
    ///
    /// Panics if `offset` is not a multiple of 4 or the word lies outside the segment.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    ///
    /// let shm = multiproc::SharedMemory::create(8)?;
    /// shm.atomic_u32(4).fetch_add(3, Ordering::Relaxed);
    /// assert_eq!(shm.atomic_u32(4).load(Ordering::Relaxed), 3);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[inline]
    pub fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0, "atomic word must be 4-byte aligned");
        let word = self
            .check_range(offset, 4)
            .expect("atomic word out of bounds")
            .cast::<AtomicU32>();
        // SAFETY: `word` is in bounds and 4-aligned (checked above; mmap returns
        // page-aligned memory) of a mapping owned by `self.map` and unmapped only in its
        // `Drop`, so it outlives the returned borrow. `AtomicU32` has the layout of
        // `u32`, every bit pattern is valid, and it is accessed only atomically.
        unsafe { &*word }
    }

    /// Returns the 64-bit atomic word at byte `offset`.
    ///
    /// # Panics
    ///
    /// Panics if `offset` is not a multiple of 8 or the word lies outside the segment.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    ///
    /// let shm = multiproc::SharedMemory::create(16)?;
    /// shm.atomic_u64(8).store(u64::MAX, Ordering::Relaxed);
    /// assert_eq!(shm.atomic_u64(8).load(Ordering::Relaxed), u64::MAX);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[inline]
    pub fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0, "atomic word must be 8-byte aligned");
        let word = self
            .check_range(offset, 8)
            .expect("atomic word out of bounds")
            .cast::<AtomicU64>();
        // SAFETY: as in `atomic_u32`, with 8-byte alignment checked above.
        unsafe { &*word }
    }

    /// Returns the `n` 64-bit atomic words from byte `offset`: one bounds check for a
    /// run of accesses (a ring's control words, its data area).
    ///
    /// # Panics
    ///
    /// Panics if `offset` is not a multiple of 8 or the words lie outside the segment.
    #[inline]
    pub(crate) fn atomic_u64s(&self, offset: usize, n: usize) -> &[AtomicU64] {
        assert!(offset % 8 == 0, "atomic word must be 8-byte aligned");
        let words = self
            .check_range(offset, n.saturating_mul(8))
            .expect("atomic words out of bounds")
            .cast::<AtomicU64>();
        // SAFETY: as in `atomic_u64`, for the `n` words in bounds and 8-aligned
        // (checked above; an `n` whose bytes overflow fails the check).
        unsafe { std::slice::from_raw_parts(words, n) }
    }

    /// A shared reference to the `T` at byte `offset`.
    ///
    /// # Panics
    ///
    /// Panics if `offset` is misaligned for `T` or `T` does not fit.
    pub(crate) fn view<T: ShmLayout>(&self, offset: usize) -> &T {
        assert!(
            offset % std::mem::align_of::<T>() == 0,
            "misaligned shared-memory view"
        );
        let p = self
            .check_range(offset, std::mem::size_of::<T>())
            .expect("shared-memory view out of bounds")
            .cast::<T>();
        // SAFETY: `p` is in bounds and aligned (checked above; the mapping is
        // page-aligned) in the mapping owned by `self.map`, which outlives the borrow.
        // `T: ShmLayout` is atomics only with every zero/foreign bit pattern valid, so
        // sharing it by reference with other processes is sound.
        unsafe { &*p }
    }

    /// Reads the `T` at byte `offset` (a volatile read: other processes may write it).
    ///
    /// # Panics
    ///
    /// Panics if `offset` is misaligned for `T` or `T` does not fit.
    pub(crate) fn read_pod<T: Pod>(&self, offset: usize) -> T {
        let p = self.pod_ptr::<T>(offset);
        // SAFETY: `p` is in bounds and aligned for `T` (`pod_ptr`), inside a live
        // mapping; `T: Pod` makes any bytes, even torn ones, a valid `T`.
        unsafe { p.read_volatile() }
    }

    /// Writes `value` at byte `offset` (a volatile write).
    ///
    /// # Panics
    ///
    /// Panics if `offset` is misaligned for `T` or `T` does not fit.
    pub(crate) fn write_pod<T: Pod>(&self, offset: usize, value: T) {
        let p = self.pod_ptr::<T>(offset);
        // SAFETY: `p` is in bounds and aligned for `T` (`pod_ptr`) in a live, writable
        // mapping; no Rust reference to these bytes exists (they are only accessed
        // through raw volatile reads and writes, or as atomics of the same size).
        unsafe { p.write_volatile(value) }
    }

    fn pod_ptr<T: Pod>(&self, offset: usize) -> *mut T {
        assert!(
            offset % std::mem::align_of::<T>() == 0,
            "misaligned shared-memory access"
        );
        self.check_range(offset, std::mem::size_of::<T>())
            .expect("shared-memory access out of bounds")
            .cast::<T>()
    }

    /// A weak handle to this mapping, which does not keep it mapped.
    #[cfg(not(loom))]
    pub(super) fn downgrade(&self) -> Weak<Mapping> {
        Arc::downgrade(&self.map)
    }

    /// The segment behind a weak handle, if it is still mapped (without a
    /// `/dev/shm` name: the handles are for anonymous arenas).
    #[cfg(not(loom))]
    pub(super) fn upgrade(weak: &Weak<Mapping>) -> Option<SharedMemory> {
        weak.upgrade().map(|map| SharedMemory {
            map,
            shm_name: None,
        })
    }

    /// Returns `true` if `self` and `other` map the same memory in this process
    /// (they are clones of one another).
    pub fn ptr_eq(&self, other: &SharedMemory) -> bool {
        Arc::ptr_eq(&self.map, &other.map)
    }
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.map.fd.as_fd()
    }
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name())
            .field("len", &self.map.len)
            .finish()
    }
}

#[derive(Serialize)]
struct WireRef<'a> {
    #[serde(with = "crate::codec::fd")]
    fd: BorrowedFd<'a>,
    len: u64,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(with = "crate::codec::fd")]
    fd: OwnedFd,
    len: u64,
}

/// Sends a duplicate of the memfd; only through multiproc's own channels (see
/// [`codec::fd`](crate::codec::fd)).
impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        WireRef {
            fd: self.map.fd.as_fd(),
            len: self.map.len as u64,
        }
        .serialize(s)
    }
}

/// Maps the received memfd: the receiver shares the sender's memory.
impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        let len = usize::try_from(w.len).map_err(serde::de::Error::custom)?;
        SharedMemory::from_fd(w.fd, Some(len)).map_err(serde::de::Error::custom)
    }
}
