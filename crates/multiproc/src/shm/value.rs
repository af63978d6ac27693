//! [`Value<T>`] and [`Array<T>`]: plain-old-data in shared memory, with an optional
//! lock and atomic operations for integers.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Deserializer, Serialize};

use super::layout::Pod;
use super::segment::SharedMemory;
use crate::error::{Error, ErrorKind, Result};
use crate::sync::Lock;

mod sealed {
    pub trait Sealed {}
}

/// An integer type with a matching std atomic, so that [`Value`] and [`Array`] of it
/// offer `fetch_add` and friends. Implemented for every primitive integer up to 64
/// bits; sealed.
pub trait Integer: Pod + sealed::Sealed {
    #[doc(hidden)]
    fn atomic_op(mem: &SharedMemory, offset: usize, op: Op, a: Self, b: Self)
        -> Result<Self, Self>;
}

/// Implementation detail of [`Integer`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Load,
    Store,
    Add,
    Sub,
    And,
    Or,
    Xor,
    Swap,
    CompareExchange,
}

macro_rules! integer {
    ($($t:ty => $a:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Integer for $t {
            fn atomic_op(mem: &SharedMemory, offset: usize, op: Op, a: $t, b: $t) -> Result<$t, $t> {
                let x: &$a = mem.view(offset);
                const O: Ordering = Ordering::SeqCst;
                Ok(match op {
                    Op::Load => x.load(O),
                    Op::Store => {
                        x.store(a, O);
                        a
                    }
                    Op::Add => x.fetch_add(a, O),
                    Op::Sub => x.fetch_sub(a, O),
                    Op::And => x.fetch_and(a, O),
                    Op::Or => x.fetch_or(a, O),
                    Op::Xor => x.fetch_xor(a, O),
                    Op::Swap => x.swap(a, O),
                    Op::CompareExchange => return x.compare_exchange(a, b, O, O),
                })
            }
        }
    )*};
}
use std::sync::atomic as at;
integer!(
    u8 => at::AtomicU8, u16 => at::AtomicU16, u32 => at::AtomicU32, u64 => at::AtomicU64,
    usize => at::AtomicUsize, i8 => at::AtomicI8, i16 => at::AtomicI16,
    i32 => at::AtomicI32, i64 => at::AtomicI64, isize => at::AtomicIsize
);

fn ok<T>(r: Result<T, T>) -> T {
    match r {
        Ok(v) | Err(v) => v,
    }
}

/// One `T` in shared memory: Python's `multiprocessing.Value`.
///
/// Create it with [`new`](Self::new) (no lock: Python's `RawValue`) or
/// [`with_lock`](Self::with_lock) (Python's default `Value`, whose
/// [`get_lock`](Self::get_lock) returns a [`Lock`] for compound updates). Clones share
/// the value; pass it to [`Process::start_with`](crate::Process::start_with) to share
/// it with a child.
///
/// [`get`](Self::get) and [`set`](Self::set) copy the whole `T`. For a `T` wider than
/// a machine word, a `get` that races with a `set` in another process can see a torn
/// mix; hold the lock around such accesses. Integer values also have atomic
/// operations ([`fetch_add`](Self::fetch_add), …, all `SeqCst`) that need no lock.
///
/// # Examples
///
/// ```
/// use multiproc::{Process, Value};
///
/// fn add(v: Value<i64>) {
///     for _ in 0..1000 {
///         // A compound update under the value's lock, as in Python:
///         let _g = v.get_lock().unwrap().lock().unwrap();
///         v.set(v.get() + 1);
///     }
/// }
///
/// let v = Value::with_lock(0i64)?;
/// let kids = (0..2).map(|_| Process::start_with(add, v.clone())).collect::<Result<Vec<_>, _>>()?;
/// for k in kids {
///     k.join()?;
/// }
/// assert_eq!(v.get(), 2000);
/// v.fetch_add(5); // atomic, no lock needed
/// assert_eq!(v.get(), 2005);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Serialize)]
#[serde(bound = "")]
pub struct Value<T: Pod> {
    mem: SharedMemory,
    lock: Option<Lock>,
    #[serde(skip)]
    _t: PhantomData<T>,
}

impl<T: Pod> Value<T> {
    /// Places `value` in a new shared segment, without a lock.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`] if the segment cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiproc::Value::new(1.5f64)?;
    /// assert_eq!(v.get(), 1.5);
    /// assert!(v.get_lock().is_none());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(value: T) -> Result<Value<T>> {
        Self::make(value, None)
    }

    /// Places `value` in a new shared segment, with a [`Lock`] of its own.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Os`] if a segment cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiproc::Value::with_lock(0u32)?;
    /// assert!(v.get_lock().is_some());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn with_lock(value: T) -> Result<Value<T>> {
        Self::make(value, Some(Lock::new()?))
    }

    fn make(value: T, lock: Option<Lock>) -> Result<Value<T>> {
        let mem = SharedMemory::create(std::mem::size_of::<T>().max(1))?;
        mem.write_pod(0, value);
        Ok(Value {
            mem,
            lock,
            _t: PhantomData,
        })
    }

    /// A copy of the value.
    pub fn get(&self) -> T {
        self.mem.read_pod(0)
    }

    /// Replaces the value.
    pub fn set(&self, value: T) {
        self.mem.write_pod(0, value);
    }

    /// This value paired with `lock` instead of its own (Python's
    /// `Value(t, v, lock=lock)`): [`get_lock`](Self::get_lock) returns it, and
    /// clones (and copies passed to children) made from the result carry it.
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Lock, Value};
    ///
    /// let lock = Lock::new()?;
    /// let a = Value::new(1u32)?.locked_by(lock.clone());
    /// let b = Value::new(2u32)?.locked_by(lock.clone());
    /// let _g = a.get_lock().unwrap().lock().unwrap();
    /// assert!(b.get_lock().unwrap().is_locked());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[must_use]
    pub fn locked_by(mut self, lock: Lock) -> Value<T> {
        self.lock = Some(lock);
        self
    }

    /// The value's lock, if it was created [`with_lock`](Self::with_lock) or given
    /// one with [`locked_by`](Self::locked_by).
    pub fn get_lock(&self) -> Option<&Lock> {
        self.lock.as_ref()
    }
}

impl<T: Integer> Value<T> {
    fn op(&self, op: Op, a: T, b: T) -> Result<T, T> {
        T::atomic_op(&self.mem, 0, op, a, b)
    }

    /// Atomically adds `v` (wrapping) and returns the previous value.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiproc::Value::new(1u8)?;
    /// assert_eq!(v.fetch_add(255), 1);
    /// assert_eq!(v.get(), 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn fetch_add(&self, v: T) -> T {
        ok(self.op(Op::Add, v, v))
    }

    /// Atomically subtracts `v` (wrapping) and returns the previous value.
    pub fn fetch_sub(&self, v: T) -> T {
        ok(self.op(Op::Sub, v, v))
    }

    /// Atomically ANDs in `v` and returns the previous value.
    pub fn fetch_and(&self, v: T) -> T {
        ok(self.op(Op::And, v, v))
    }

    /// Atomically ORs in `v` and returns the previous value.
    pub fn fetch_or(&self, v: T) -> T {
        ok(self.op(Op::Or, v, v))
    }

    /// Atomically XORs in `v` and returns the previous value.
    pub fn fetch_xor(&self, v: T) -> T {
        ok(self.op(Op::Xor, v, v))
    }

    /// Atomically replaces the value, returning the previous one.
    pub fn swap(&self, v: T) -> T {
        ok(self.op(Op::Swap, v, v))
    }

    /// Atomically loads the value.
    pub fn load(&self) -> T {
        ok(self.op(Op::Load, self.get(), self.get()))
    }

    /// Atomically stores `v`.
    pub fn store(&self, v: T) {
        self.op(Op::Store, v, v).ok();
    }

    /// Stores `new` if the value is `current`; returns the previous value, as `Ok`
    /// if it was `current`.
    ///
    /// # Errors
    ///
    /// `Err(actual)` if the value was not `current`.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = multiproc::Value::new(5i32)?;
    /// assert_eq!(v.compare_exchange(5, 6), Ok(5));
    /// assert_eq!(v.compare_exchange(5, 7), Err(6));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        self.op(Op::CompareExchange, current, new)
    }
}

impl<T: Pod> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            mem: self.mem.clone(),
            lock: self.lock.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("value", &self.get())
            .field("lock", &self.lock.is_some())
            .finish()
    }
}

/// A fixed-length array of `T` in shared memory: Python's `multiprocessing.Array`.
///
/// As for [`Value`]: optionally with a [`Lock`] ([`get_lock`](Self::get_lock)),
/// element copies may tear when they race with writers in other processes, and
/// integer elements have atomic operations.
///
/// # Examples
///
/// ```
/// use multiproc::{Array, Process};
///
/// fn square_all(a: Array<u64>) {
///     for i in 0..a.len() {
///         let x = a.get(i).unwrap();
///         a.set(i, x * x);
///     }
/// }
///
/// let a = Array::from_slice(&[1u64, 2, 3])?;
/// Process::start_with(square_all, a.clone())?.join()?;
/// assert_eq!(a.to_vec(), [1, 4, 9]);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Serialize)]
#[serde(bound = "")]
pub struct Array<T: Pod> {
    mem: SharedMemory,
    len: usize,
    lock: Option<Lock>,
    #[serde(skip)]
    _t: PhantomData<T>,
}

impl<T: Pod> Array<T> {
    /// An array of `len` zeroed elements (all-zero bytes are a valid `T`, as for
    /// every [`Pod`] type), without a lock.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if the size overflows, [`ErrorKind::Os`] if the
    /// segment cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::<f32>::new(4)?;
    /// assert_eq!(a.to_vec(), [0.0; 4]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn new(len: usize) -> Result<Array<T>> {
        Self::make(len, None)
    }

    /// An array of `len` zeroed elements with a [`Lock`] of its own.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_lock(len: usize) -> Result<Array<T>> {
        Self::make(len, Some(Lock::new()?))
    }

    /// An array holding a copy of `items`, without a lock.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn from_slice(items: &[T]) -> Result<Array<T>> {
        let a = Self::make(items.len(), None)?;
        a.copy_from_slice(items);
        Ok(a)
    }

    fn make(len: usize, lock: Option<Lock>) -> Result<Array<T>> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput).with_message("array too large"))?;
        Ok(Array {
            mem: SharedMemory::create(bytes.max(1))?,
            len,
            lock,
            _t: PhantomData,
        })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn offset(&self, i: usize) -> usize {
        assert!(
            i < self.len,
            "index {i} out of range for an array of length {}",
            self.len
        );
        i * std::mem::size_of::<T>()
    }

    /// A copy of element `i`, or `None` if `i` is out of range.
    pub fn get(&self, i: usize) -> Option<T> {
        (i < self.len).then(|| self.mem.read_pod(i * std::mem::size_of::<T>()))
    }

    /// Replaces element `i`.
    ///
    /// # Panics
    ///
    /// Panics if `i >= len()`.
    pub fn set(&self, i: usize, value: T) {
        self.mem.write_pod(self.offset(i), value);
    }

    /// Copies the whole array out.
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len)
            .map(|i| self.mem.read_pod(i * std::mem::size_of::<T>()))
            .collect()
    }

    /// A copy of the elements in `range` (Python's `arr[a:b]`), or `None` if the
    /// range is out of bounds (like [`slice::get`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[10, 11, 12, 13])?;
    /// assert_eq!(a.get_range(1..3), Some(vec![11, 12]));
    /// assert_eq!(a.get_range(2..), Some(vec![12, 13]));
    /// assert_eq!(a.get_range(3..5), None);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn get_range(&self, range: impl std::ops::RangeBounds<usize>) -> Option<Vec<T>> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(&a) => a,
            Bound::Excluded(&a) => a.checked_add(1)?,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&b) => b.checked_add(1)?,
            Bound::Excluded(&b) => b,
            Bound::Unbounded => self.len,
        };
        if start > end || end > self.len {
            return None;
        }
        Some(
            (start..end)
                .map(|i| self.mem.read_pod(i * std::mem::size_of::<T>()))
                .collect(),
        )
    }

    /// Copies `items` into the array starting at element `start` (Python's
    /// `arr[start:start + len(items)] = items`).
    ///
    /// # Panics
    ///
    /// Panics if `start + items.len() > len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::<i32>::new(5)?;
    /// a.set_range(1, &[7, 8]);
    /// assert_eq!(a.to_vec(), [0, 7, 8, 0, 0]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn set_range(&self, start: usize, items: &[T]) {
        assert!(
            start
                .checked_add(items.len())
                .is_some_and(|end| end <= self.len),
            "range {start}..{start}+{} out of range for an array of length {}",
            items.len(),
            self.len
        );
        for (i, &x) in items.iter().enumerate() {
            self.mem
                .write_pod((start + i) * std::mem::size_of::<T>(), x);
        }
    }

    /// This array paired with `lock` instead of its own (Python's
    /// `Array(t, n, lock=lock)`; `Array::from_slice(&xs)?.locked_by(Lock::new()?)` is
    /// Python's default `Array(t, xs)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use multiproc::{Array, Lock};
    ///
    /// let a = Array::from_slice(&[1u8, 2])?.locked_by(Lock::new()?);
    /// assert!(a.get_lock().is_some());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    #[must_use]
    pub fn locked_by(mut self, lock: Lock) -> Array<T> {
        self.lock = Some(lock);
        self
    }

    /// Copies `items` into the array.
    ///
    /// # Panics
    ///
    /// Panics if `items.len() != len()`.
    pub fn copy_from_slice(&self, items: &[T]) {
        assert_eq!(
            items.len(),
            self.len,
            "slice length differs from the array's"
        );
        for (i, &x) in items.iter().enumerate() {
            self.mem.write_pod(i * std::mem::size_of::<T>(), x);
        }
    }

    /// The array's lock, if it was created [`with_lock`](Self::with_lock) or given
    /// one with [`locked_by`](Self::locked_by).
    pub fn get_lock(&self) -> Option<&Lock> {
        self.lock.as_ref()
    }
}

impl<T: Integer> Array<T> {
    /// Atomically adds `v` (wrapping) to element `i`; returns its previous value.
    ///
    /// # Panics
    ///
    /// Panics if `i >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = multiproc::Array::<u32>::new(2)?;
    /// a.fetch_add(1, 10);
    /// assert_eq!(a.to_vec(), [0, 10]);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn fetch_add(&self, i: usize, v: T) -> T {
        ok(T::atomic_op(&self.mem, self.offset(i), Op::Add, v, v))
    }

    /// Atomically subtracts `v` (wrapping) from element `i`; returns its previous value.
    ///
    /// # Panics
    ///
    /// Panics if `i >= len()`.
    pub fn fetch_sub(&self, i: usize, v: T) -> T {
        ok(T::atomic_op(&self.mem, self.offset(i), Op::Sub, v, v))
    }

    /// Atomically replaces element `i`; returns its previous value.
    ///
    /// # Panics
    ///
    /// Panics if `i >= len()`.
    pub fn swap(&self, i: usize, v: T) -> T {
        ok(T::atomic_op(&self.mem, self.offset(i), Op::Swap, v, v))
    }

    /// Atomically stores `new` in element `i` if it is `current`.
    ///
    /// # Errors
    ///
    /// `Err(actual)` if element `i` was not `current`.
    ///
    /// # Panics
    ///
    /// Panics if `i >= len()`.
    pub fn compare_exchange(&self, i: usize, current: T, new: T) -> Result<T, T> {
        T::atomic_op(&self.mem, self.offset(i), Op::CompareExchange, current, new)
    }
}

impl<T: Pod> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            mem: self.mem.clone(),
            len: self.len,
            lock: self.lock.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("items", &self.to_vec())
            .field("lock", &self.lock.is_some())
            .finish()
    }
}

/// A [`Value`] as it arrives from another process (the fields it serializes).
#[derive(Deserialize)]
struct ValueWire {
    mem: SharedMemory,
    lock: Option<Lock>,
}

/// An [`Array`] as it arrives from another process (the fields it serializes).
#[derive(Deserialize)]
struct ArrayWire {
    mem: SharedMemory,
    len: usize,
    lock: Option<Lock>,
}

fn too_small<E: serde::de::Error>(what: &str, need: Option<usize>, have: usize) -> E {
    E::custom(format!(
        "{what} needs {} bytes of shared memory, its segment has {have}",
        need.map_or_else(|| "more".to_string(), |n| n.to_string())
    ))
}

/// Maps the received segment, refusing one too small for a `T` (found by the
/// `codec` fuzz target: a forged one-byte segment panicked the first `get`).
impl<'de, T: Pod> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = ValueWire::deserialize(d)?;
        let need = std::mem::size_of::<T>();
        if w.mem.len() < need {
            return Err(too_small("a Value", Some(need), w.mem.len()));
        }
        Ok(Value {
            mem: w.mem,
            lock: w.lock,
            _t: PhantomData,
        })
    }
}

/// Maps the received segment, refusing one too small for `len` elements (found by
/// the `codec` fuzz target: a forged length panicked the first `get`).
impl<'de, T: Pod> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = ArrayWire::deserialize(d)?;
        let need = w.len.checked_mul(std::mem::size_of::<T>());
        if need.is_none_or(|n| n > w.mem.len()) {
            return Err(too_small("an Array", need, w.mem.len()));
        }
        Ok(Array {
            mem: w.mem,
            len: w.len,
            lock: w.lock,
            _t: PhantomData,
        })
    }
}
