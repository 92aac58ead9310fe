//! Ordered maps and sets whose insert can fail (NT-26). `BTreeMap` has no fallible insert on
//! stable Rust, and a failed node allocation in the driver is a bug check; these keep their
//! entries in one sorted `Vec` grown with `try_reserve`, so an insert either reserves its room
//! or returns [`Error::OutOfMemory`] and changes nothing. Lookups are binary searches; an
//! insert or remove moves the tail (a `memmove`, cheap at the sizes fs-core keeps: the
//! metadata cache tops out at 16k blocks). Everything here is a loop over a slice: no
//! recursion and no node-rebalancing helpers, so the deepest stack paths stay flat.

use alloc::vec::Vec;
use core::borrow::Borrow;
use core::ops::{Bound, RangeBounds};

use crate::error::{Error, Result};

/// The entries of a map in order, as pairs of references (a concrete type, so that a borrow
/// ends where the iterator's last use does).
pub type Iter<'a, K, V> =
    core::iter::Map<core::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

fn pair<K, V>(entry: &(K, V)) -> (&K, &V) {
    (&entry.0, &entry.1)
}

/// An ordered map on one sorted vector.
#[derive(Debug, Clone)]
pub struct SortedMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

/// The error of a map that could not grow.
fn no_room<K, V>() -> Error {
    Error::OutOfMemory {
        what: "a map entry",
        bytes: core::mem::size_of::<(K, V)>() as u64,
    }
}

impl<K: Ord, V> SortedMap<K, V> {
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Where `key` is (`Ok`) or would go (`Err`).
    fn search<Q>(&self, key: &Q) -> core::result::Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.search(key).is_ok()
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.search(key).ok()?;
        Some(&self.entries[i].1)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.search(key).ok()?;
        Some(&mut self.entries[i].1)
    }

    /// Room for `extra` more entries, so that as many inserts of new keys cannot fail.
    pub fn reserve(&mut self, extra: usize) -> Result<()> {
        self.entries
            .try_reserve(extra)
            .map_err(|_| no_room::<K, V>())
    }

    /// Inserts or replaces; returns the value replaced. Fails (changing nothing) only when a
    /// new key finds no room.
    #[inline(never)]
    pub fn insert(&mut self, key: K, value: V) -> Result<Option<V>> {
        match self.search(&key) {
            Ok(i) => Ok(Some(core::mem::replace(&mut self.entries[i].1, value))),
            Err(i) => {
                self.reserve(1)?;
                self.entries.insert(i, (key, value));
                Ok(None)
            }
        }
    }

    /// The value at `key`, inserted from `make` first when absent.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> Result<&mut V> {
        let i = match self.search(&key) {
            Ok(i) => i,
            Err(i) => {
                self.reserve(1)?;
                self.entries.insert(i, (key, make()));
                i
            }
        };
        Ok(&mut self.entries[i].1)
    }

    #[inline(never)]
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.search(key).ok()?;
        Some(self.entries.remove(i).1)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    /// The entry with the smallest key, taken out.
    pub fn pop_first(&mut self) -> Option<(K, V)> {
        if self.entries.is_empty() {
            None
        } else {
            Some(self.entries.remove(0))
        }
    }

    pub fn iter(&self) -> Iter<'_, K, V> {
        self.entries.iter().map(pair)
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// The index range of the keys within `range`.
    fn bounds<Q, R>(&self, range: &R) -> (usize, usize)
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        let start = match range.start_bound() {
            Bound::Included(s) => self.entries.partition_point(|(k, _)| k.borrow() < s),
            Bound::Excluded(s) => self.entries.partition_point(|(k, _)| k.borrow() <= s),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => self.entries.partition_point(|(k, _)| k.borrow() <= e),
            Bound::Excluded(e) => self.entries.partition_point(|(k, _)| k.borrow() < e),
            Bound::Unbounded => self.entries.len(),
        };
        (start, end.max(start))
    }

    /// The entries whose keys are within `range`, in order.
    pub fn range<Q, R>(&self, range: R) -> Iter<'_, K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        let (start, end) = self.bounds(&range);
        self.entries[start..end].iter().map(pair)
    }

    /// Removes the entries whose keys are within `range`, handing each to `dropped`.
    pub fn remove_range<Q, R>(&mut self, range: R, mut dropped: impl FnMut(K, V))
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        let (start, end) = self.bounds(&range);
        for (k, v) in self.entries.drain(start..end) {
            dropped(k, v);
        }
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Sorts `items` in place with a heapsort: no recursion and no scratch memory, so it is fit
/// for a kernel stack (the standard sorts recurse or keep a 4 KiB array on the stack).
pub fn sort_flat<T: Ord>(items: &mut [T]) {
    let len = items.len();
    for start in (0..len / 2).rev() {
        sift_down(items, start, len);
    }
    for end in (1..len).rev() {
        items.swap(0, end);
        sift_down(items, 0, end);
    }
}

/// Restores the max-heap order below `root` within `items[..end]`.
fn sift_down<T: Ord>(items: &mut [T], mut root: usize, end: usize) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && items[child] < items[child + 1] {
            child += 1;
        }
        if items[root] >= items[child] {
            return;
        }
        items.swap(root, child);
        root = child;
    }
}

/// An ordered set on one sorted vector.
#[derive(Debug, Clone)]
pub struct SortedSet<K> {
    map: SortedMap<K, ()>,
}

impl<K> Default for SortedSet<K> {
    fn default() -> Self {
        Self {
            map: SortedMap::default(),
        }
    }
}

impl<K: Ord> SortedSet<K> {
    pub const fn new() -> Self {
        Self {
            map: SortedMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.map.contains_key(key)
    }

    pub fn reserve(&mut self, extra: usize) -> Result<()> {
        self.map.reserve(extra)
    }

    /// Adds `key`; true when it was not there. Fails (changing nothing) when there is no room.
    pub fn insert(&mut self, key: K) -> Result<bool> {
        Ok(self.map.insert(key, ())?.is_none())
    }

    pub fn remove<Q>(&mut self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.map.remove(key).is_some()
    }

    pub fn pop_first(&mut self) -> Option<K> {
        self.map.pop_first().map(|(k, ())| k)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.map.keys()
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.map.retain(|k, ()| keep(k));
    }
}

impl<'a, K: Ord> IntoIterator for &'a SortedSet<K> {
    type Item = &'a K;
    type IntoIter = core::iter::Map<core::slice::Iter<'a, (K, ())>, fn(&'a (K, ())) -> &'a K>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.entries.iter().map(|(k, ())| k)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    proptest! {
        /// The sorted map answers like `BTreeMap` for every insert, remove, lookup and range.
        #[test]
        fn agrees_with_btreemap(ops in proptest::collection::vec((0u8..4, 0u16..64, any::<u32>()), 0..300)) {
            let mut ours = SortedMap::new();
            let mut model = BTreeMap::new();
            for (op, k, v) in ops {
                match op {
                    0 => prop_assert_eq!(ours.insert(k, v).unwrap(), model.insert(k, v)),
                    1 => prop_assert_eq!(ours.remove(&k), model.remove(&k)),
                    2 => prop_assert_eq!(ours.get(&k), model.get(&k)),
                    _ => {
                        let hi = k.saturating_add(v as u16 % 16);
                        prop_assert!(ours.range(k..hi).eq(model.range(k..hi)));
                        prop_assert!(ours.range(..=k).next_back().eq(&model.range(..=k).next_back()));
                    }
                }
                prop_assert!(ours.iter().eq(model.iter()));
            }
        }
    }

    proptest! {
        #[test]
        fn sort_flat_sorts(mut items in proptest::collection::vec(any::<u32>(), 0..200)) {
            let mut want = items.clone();
            want.sort_unstable();
            sort_flat(&mut items);
            prop_assert_eq!(items, want);
        }
    }

    #[test]
    fn remove_range_hands_over_what_it_removes() {
        let mut m = SortedMap::new();
        for k in 0u64..10 {
            m.insert(k, k * 10).unwrap();
        }
        let mut seen = Vec::new();
        m.remove_range(3..6, |k, v| seen.push((k, v)));
        assert_eq!(seen, [(3, 30), (4, 40), (5, 50)]);
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 6, 7, 8, 9]);
    }
}
