//! [`ShareableList`]: Python's `multiprocessing.shared_memory.ShareableList`, a
//! fixed-length list of numbers, strings and bytes in shared memory.
//!
//! # Layout (little-endian, offsets from the start of the segment)
//!
//! | offset | what |
//! |---|---|
//! | 0 | magic `b"MPSL"` |
//! | 4 | `n: u32`, the number of items |
//! | 8 + 16·i | slot `i`: `kind: u32`, `cap: u32` (payload bytes), `offset: u64` |
//! | `offset` | the payload: 8 bytes for a number; `len: u32` then up to `cap − 4` bytes for a string or bytes |
//!
//! Every word is checked when read (another process may have written anything):
//! a bad kind, a slot outside the segment or a length over its capacity is
//! [`ErrorKind::Corrupt`].

use std::fmt;

use serde::{Deserialize, Serialize};

use super::segment::SharedMemory;
use crate::error::{Error, ErrorKind, Result};

const MAGIC: &[u8; 4] = b"MPSL";
const HEADER: usize = 8;
const SLOT: usize = 16;

/// One item of a [`ShareableList`]: the types Python's `ShareableList` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Item {
    /// Python's `None`.
    None,
    /// A `bool`.
    Bool(bool),
    /// An `int` (64-bit here).
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes`.
    Bytes(Vec<u8>),
}

impl Item {
    fn kind(&self) -> u32 {
        match self {
            Item::None => 0,
            Item::Bool(_) => 1,
            Item::Int(_) => 2,
            Item::Float(_) => 3,
            Item::Str(_) => 4,
            Item::Bytes(_) => 5,
        }
    }

    /// Payload bytes this value needs.
    fn need(&self) -> usize {
        match self {
            Item::Str(s) => 4 + s.len(),
            Item::Bytes(b) => 4 + b.len(),
            _ => 8,
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Item::None => vec![0; 8],
            Item::Bool(b) => u64::from(*b).to_le_bytes().to_vec(),
            Item::Int(i) => i.to_le_bytes().to_vec(),
            Item::Float(f) => f.to_le_bytes().to_vec(),
            Item::Str(s) => framed(s.as_bytes()),
            Item::Bytes(b) => framed(b),
        }
    }
}

fn framed(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

macro_rules! from_item {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for Item {
            fn from(x: $t) -> Item {
                Item::$v(x.into())
            }
        }
    )*};
}

from_item!(bool => Bool, i64 => Int, i32 => Int, u32 => Int, f64 => Float, String => Str, &str => Str, Vec<u8> => Bytes, &[u8] => Bytes);

/// A fixed-length list of [`Item`]s (numbers, strings, bytes, `None`) in shared
/// memory, readable and writable by every process that has it (Python's
/// `ShareableList`).
///
/// Each slot's room is fixed at creation (8 bytes for a number; for a string or
/// bytes, 4 bytes of length plus the initial contents, rounded up to 8): a slot may
/// later hold any item that fits, of any type (as in Python, a string cannot grow
/// much past its initial length). Access is not
/// synchronized: a read that races with a write to the same slot may see a torn
/// value (or report [`ErrorKind::Corrupt`] for a length caught half-written), so
/// guard concurrent writers with a [`Lock`](crate::Lock).
///
/// Pass it to a child as a [`Process::start_with`](crate::Process::start_with)
/// argument, or share it by name between unrelated processes
/// ([`create_named`](Self::create_named), [`open`](Self::open)).
///
/// # Examples
///
/// ```
/// use multiproc::shm::{Item, ShareableList};
/// use multiproc::Process;
///
/// fn child(l: ShareableList) {
///     l.set(0, Item::Int(42)).unwrap();
///     l.set(1, "hey".into()).unwrap(); // fits in the room of "hello"
/// }
///
/// let l = ShareableList::new(vec![Item::Int(1), "hello".into(), Item::None])?;
/// Process::start_with(child, l.clone())?.join()?;
/// assert_eq!(l.to_vec()?, [Item::Int(42), "hey".into(), Item::None]);
/// assert!(l.set(1, "this is far too long".into()).is_err());
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "SharedMemory", into = "SharedMemory")]
pub struct ShareableList {
    shm: SharedMemory,
    len: usize,
}

impl ShareableList {
    /// A list holding `items`, in an anonymous segment.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if a string or bytes item is over 4 GiB or there
    /// are more than `u32::MAX` items; as [`SharedMemory::create`].
    pub fn new(items: impl IntoIterator<Item = Item>) -> Result<ShareableList> {
        let items: Vec<Item> = items.into_iter().collect();
        let shm = SharedMemory::create(Self::size(&items)?)?;
        Self::fill(shm, &items)
    }

    /// A list holding `items`, in a segment named `name` in `/dev/shm` (see
    /// [`SharedMemory::create_named`], and its leak trade-off: call
    /// `list.shm().unlink()` when done).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new) and [`SharedMemory::create_named`].
    pub fn create_named(
        name: &str,
        items: impl IntoIterator<Item = Item>,
    ) -> Result<ShareableList> {
        let items: Vec<Item> = items.into_iter().collect();
        let shm = SharedMemory::create_named(name, Self::size(&items)?)?;
        Self::fill(shm, &items)
    }

    /// Opens the list named `name` (Python's `ShareableList(name=…)`).
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::open`]; [`ErrorKind::Corrupt`] if the segment does not hold
    /// a list.
    pub fn open(name: &str) -> Result<ShareableList> {
        Self::from_shm(SharedMemory::open(name)?)
    }

    fn size(items: &[Item]) -> Result<usize> {
        if u32::try_from(items.len()).is_err() {
            return Err(Error::new(ErrorKind::InvalidInput).with_message("too many items"));
        }
        let mut total = HEADER + SLOT * items.len();
        for it in items {
            if u32::try_from(it.need()).is_err() {
                return Err(Error::new(ErrorKind::InvalidInput).with_message("item over 4 GiB"));
            }
            total += it.need().next_multiple_of(8);
        }
        Ok(total)
    }

    fn fill(shm: SharedMemory, items: &[Item]) -> Result<ShareableList> {
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&(items.len() as u32).to_le_bytes());
        shm.write(0, &head)?;
        let mut offset = HEADER + SLOT * items.len();
        for (i, it) in items.iter().enumerate() {
            let cap = it.need().next_multiple_of(8);
            let mut slot = it.kind().to_le_bytes().to_vec();
            slot.extend_from_slice(&(cap as u32).to_le_bytes());
            slot.extend_from_slice(&(offset as u64).to_le_bytes());
            shm.write(HEADER + SLOT * i, &slot)?;
            shm.write(offset, &it.encode())?;
            offset += cap;
        }
        Ok(ShareableList {
            shm,
            len: items.len(),
        })
    }

    fn from_shm(shm: SharedMemory) -> Result<ShareableList> {
        let mut head = [0u8; HEADER];
        shm.read(0, &mut head).map_err(|_| corrupt("too small"))?;
        if &head[..4] != MAGIC {
            return Err(corrupt("not a ShareableList"));
        }
        let n = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
        if n.checked_mul(SLOT)
            .and_then(|t| t.checked_add(HEADER))
            .is_none_or(|t| t > shm.len())
        {
            return Err(corrupt("item count past the end of the segment"));
        }
        Ok(ShareableList { shm, len: n })
    }

    /// The number of items (fixed).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns `true` for a list of no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segment the list lives in (for [`SharedMemory::unlink`] of a named list).
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    /// Slot `i`: (kind, capacity, offset), checked.
    fn slot(&self, i: usize) -> Result<(u32, usize, usize)> {
        if i >= self.len {
            return Err(Error::new(ErrorKind::InvalidInput)
                .with_message(format!("index {i} out of range for a list of {}", self.len)));
        }
        let mut s = [0u8; SLOT];
        self.shm.read(HEADER + SLOT * i, &mut s)?;
        let kind = u32::from_le_bytes(s[0..4].try_into().expect("4 bytes"));
        let cap = u32::from_le_bytes(s[4..8].try_into().expect("4 bytes")) as usize;
        let off = u64::from_le_bytes(s[8..16].try_into().expect("8 bytes"));
        let off = usize::try_from(off).map_err(|_| corrupt("slot offset"))?;
        if kind > 5 || cap < 8 || off.checked_add(cap).is_none_or(|e| e > self.shm.len()) {
            return Err(corrupt(&format!("slot {i}")));
        }
        Ok((kind, cap, off))
    }

    /// Item `i`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `i` is out of range; [`ErrorKind::Corrupt`] if
    /// the slot holds something no list writes (or was caught half-written).
    pub fn get(&self, i: usize) -> Result<Item> {
        let (kind, cap, off) = self.slot(i)?;
        let mut w = [0u8; 8];
        self.shm.read(off, &mut w)?;
        let word = u64::from_le_bytes(w);
        Ok(match kind {
            0 => Item::None,
            1 => Item::Bool(word != 0),
            2 => Item::Int(word as i64),
            3 => Item::Float(f64::from_bits(word)),
            _ => {
                let len = u32::from_le_bytes(w[..4].try_into().expect("4 bytes")) as usize;
                if len > cap - 4 {
                    return Err(corrupt(&format!("slot {i}: length {len} over its room")));
                }
                let mut b = vec![0u8; len];
                self.shm.read(off + 4, &mut b)?;
                if kind == 4 {
                    Item::Str(String::from_utf8(b).map_err(|_| corrupt("string not UTF-8"))?)
                } else {
                    Item::Bytes(b)
                }
            }
        })
    }

    /// Replaces item `i` with `value`, of any type, if it fits in the slot's room.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `i` is out of range or `value` does not fit
    /// (Python's `ValueError`); [`ErrorKind::Corrupt`] as [`get`](Self::get).
    pub fn set(&self, i: usize, value: Item) -> Result<()> {
        let (_, cap, off) = self.slot(i)?;
        if value.need() > cap {
            return Err(Error::new(ErrorKind::InvalidInput).with_message(format!(
                "item {i} has room for {} bytes, the new value needs {}",
                cap - 4,
                value.need() - 4
            )));
        }
        // Payload first, then the kind: a reader sees the old kind with the new
        // payload only while both are being written (see the type's docs).
        self.shm.write(off, &value.encode())?;
        self.shm
            .write(HEADER + SLOT * i, &value.kind().to_le_bytes())
    }

    /// Every item, in order.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn to_vec(&self) -> Result<Vec<Item>> {
        (0..self.len).map(|i| self.get(i)).collect()
    }

    /// How many items equal `value` (Python's `count`).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn count(&self, value: &Item) -> Result<usize> {
        Ok(self.to_vec()?.iter().filter(|v| *v == value).count())
    }

    /// The index of the first item equal to `value` (Python's `index`).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn index(&self, value: &Item) -> Result<Option<usize>> {
        Ok(self.to_vec()?.iter().position(|v| v == value))
    }
}

fn corrupt(what: &str) -> Error {
    Error::new(ErrorKind::Corrupt).with_message(format!("shareable list: {what}"))
}

impl TryFrom<SharedMemory> for ShareableList {
    type Error = Error;
    fn try_from(shm: SharedMemory) -> Result<ShareableList> {
        ShareableList::from_shm(shm)
    }
}

impl From<ShareableList> for SharedMemory {
    fn from(l: ShareableList) -> SharedMemory {
        l.shm
    }
}

impl fmt::Debug for ShareableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_vec() {
            Ok(v) => f.debug_tuple("ShareableList").field(&v).finish(),
            Err(e) => f.debug_tuple("ShareableList").field(&e).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_room() {
        let items = vec![
            Item::None,
            Item::Bool(true),
            Item::Int(-7),
            Item::Float(2.5),
            Item::Str("héllo".into()),
            Item::Bytes(vec![1, 2, 3]),
        ];
        let l = ShareableList::new(items.clone()).unwrap();
        assert_eq!(l.len(), 6);
        assert_eq!(l.to_vec().unwrap(), items);
        // A number slot takes any 8-byte item, or a string of up to 4 bytes.
        l.set(2, "abcd".into()).unwrap();
        assert_eq!(l.get(2).unwrap(), "abcd".into());
        assert_eq!(
            l.set(2, "abcde".into()).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(l.get(9).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(l.count(&Item::None).unwrap(), 1);
        assert_eq!(l.index(&Item::Float(2.5)).unwrap(), Some(3));
        let e = ShareableList::new(Vec::new()).unwrap();
        assert!(e.is_empty());
    }

    #[test]
    fn scribbled_words_are_corrupt_not_a_panic() {
        let l = ShareableList::new(vec![Item::Str("abc".into()), Item::Int(1)]).unwrap();
        let shm = l.shm().clone();
        // A length over the room.
        shm.write(HEADER + 2 * SLOT, &u32::MAX.to_le_bytes())
            .unwrap();
        assert_eq!(l.get(0).unwrap_err().kind(), ErrorKind::Corrupt);
        // A kind no list writes, and an offset past the end.
        shm.write(HEADER + SLOT, &9u32.to_le_bytes()).unwrap();
        assert_eq!(l.get(1).unwrap_err().kind(), ErrorKind::Corrupt);
        shm.write(HEADER + SLOT, &2u32.to_le_bytes()).unwrap();
        shm.write(HEADER + SLOT + 8, &u64::MAX.to_le_bytes())
            .unwrap();
        assert_eq!(l.get(1).unwrap_err().kind(), ErrorKind::Corrupt);
        // A count past the end of the segment.
        shm.write(4, &u32::MAX.to_le_bytes()).unwrap();
        assert_eq!(
            ShareableList::try_from(shm).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
    }
}
