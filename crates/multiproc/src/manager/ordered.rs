//! [`OrderedMap`]: the server's dict, which keeps insertion order as Python's does.

use std::collections::HashMap;

use super::wire::Bytes;

/// A map from encoded keys to encoded values that lists its entries in the order
/// their keys were first inserted (replacing a value keeps the key's place; removing
/// and inserting again moves it to the end), as Python's `dict` does.
///
/// Entries sit in a vector, removed ones as holes that a compaction closes once they
/// are half of it, so every operation is O(1) amortized and memory stays within
/// twice the live entries.
#[derive(Default)]
pub(crate) struct OrderedMap {
    /// Where each live key's entry is in `entries`.
    index: HashMap<Bytes, usize>,
    entries: Vec<Option<(Bytes, Bytes)>>,
}

impl OrderedMap {
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&Bytes> {
        let &at = self.index.get(key)?;
        self.entries[at].as_ref().map(|(_, v)| v)
    }

    pub(crate) fn contains_key(&self, key: &[u8]) -> bool {
        self.index.contains_key(key)
    }

    /// Inserts; returns the value that was there.
    pub(crate) fn insert(&mut self, key: Bytes, value: Bytes) -> Option<Bytes> {
        if let Some(&at) = self.index.get(&key) {
            let slot = self.entries[at].as_mut().expect("indexed entries are live");
            return Some(std::mem::replace(&mut slot.1, value));
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push(Some((key, value)));
        None
    }

    /// The value at `key`, inserting `value` first if the key is absent.
    pub(crate) fn get_or_insert(&mut self, key: Bytes, value: Bytes) -> &Bytes {
        let at = match self.index.get(&key) {
            Some(&at) => at,
            None => {
                self.insert(key, value);
                self.entries.len() - 1
            }
        };
        &self.entries[at]
            .as_ref()
            .expect("indexed entries are live")
            .1
    }

    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Bytes> {
        let at = self.index.remove(key)?;
        let (_, v) = self.entries[at].take().expect("indexed entries are live");
        if self.entries.len() >= 8 && self.index.len() * 2 < self.entries.len() {
            self.compact();
        }
        Some(v)
    }

    fn compact(&mut self) {
        self.entries.retain(Option::is_some);
        for (at, e) in self.entries.iter().enumerate() {
            let (k, _) = e.as_ref().expect("only live entries are left");
            *self.index.get_mut(k).expect("live entries are indexed") = at;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
    }

    /// The live entries, in insertion order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.entries.iter().flatten().map(|(k, v)| (k, v))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.iter().map(|(k, _)| k)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Bytes> {
        self.iter().map(|(_, v)| v)
    }
}

impl Extend<(Bytes, Bytes)> for OrderedMap {
    fn extend<I: IntoIterator<Item = (Bytes, Bytes)>>(&mut self, entries: I) {
        for (k, v) in entries {
            self.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests;
