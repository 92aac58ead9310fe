//! Fallible heap allocation (NT-26). In the driver the heap is pool, which can run out; a
//! failed infallible allocation there is a bug check. Every allocation fs-core makes on an
//! I/O path goes through these helpers (or `try_reserve` at the site) and becomes
//! [`Error::OutOfMemory`]. Each helper is out of line so the growth code stays out of its
//! callers' frames (the deepest kernel-stack paths run through them).

use alloc::vec::Vec;

use crate::error::{Error, Result};

/// The error for `count` items of `T` that could not be had.
fn out_of_memory<T>(count: usize) -> Error {
    let bytes = count.saturating_mul(core::mem::size_of::<T>());
    Error::OutOfMemory {
        what: "a buffer on an I/O path",
        bytes: u64::try_from(bytes).unwrap_or(u64::MAX),
    }
}

/// `len` zero bytes on the heap.
#[inline(never)]
pub fn zeroed(len: usize) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| out_of_memory::<u8>(len))?;
    v.resize(len, 0);
    Ok(v)
}

/// A copy of `items` on the heap.
#[inline(never)]
pub fn copied<T: Copy>(items: &[T]) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(items.len())
        .map_err(|_| out_of_memory::<T>(items.len()))?;
    v.extend_from_slice(items);
    Ok(v)
}

/// Room for `extra` more items in `v`.
#[inline(never)]
pub fn reserve<T>(v: &mut Vec<T>, extra: usize) -> Result<()> {
    v.try_reserve(extra).map_err(|_| out_of_memory::<T>(extra))
}

/// Pushes `item` onto `v`.
#[inline(never)]
pub fn push<T>(v: &mut Vec<T>, item: T) -> Result<()> {
    reserve(v, 1)?;
    v.push(item);
    Ok(())
}

/// Collects an iterator whose upper size bound is exact or an over-estimate (so the one
/// reservation covers every item).
#[inline(never)]
pub fn collect<T>(items: impl Iterator<Item = T>) -> Result<Vec<T>> {
    let (low, high) = items.size_hint();
    let mut v = Vec::new();
    let count = high.unwrap_or(low);
    v.try_reserve_exact(count)
        .map_err(|_| out_of_memory::<T>(count))?;
    for item in items {
        push(&mut v, item)?;
    }
    Ok(v)
}

/// A value on the heap, put there fallibly (`Box::try_new` is unstable). It is a one-element
/// boxed array underneath, which is what a `Vec` reserved with `try_reserve_exact` becomes.
pub struct Boxed<T>(alloc::boxed::Box<[T; 1]>);

impl<T> Boxed<T> {
    /// The value, out of the box.
    pub fn into_inner(self) -> T {
        let [value] = *self.0;
        value
    }
}

impl<T> core::ops::Deref for Boxed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0[0]
    }
}

impl<T> core::ops::DerefMut for Boxed<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0[0]
    }
}

/// The value `make` builds, on the heap. The room is had first and the value built straight
/// into the push, so that a large `T` is not copied through the caller's frame twice (NT-23).
#[inline(always)]
pub fn boxed_with<T>(make: impl FnOnce() -> T) -> Result<Boxed<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(1).map_err(|_| out_of_memory::<T>(1))?;
    v.push(make());
    // Capacity equals length, so neither step below allocates again.
    match alloc::boxed::Box::<[T; 1]>::try_from(v.into_boxed_slice()) {
        Ok(one) => Ok(Boxed(one)),
        Err(_) => Err(out_of_memory::<T>(1)),
    }
}

/// A copy of the items an iterator over references yields (an exact-size one: one
/// reservation covers them all).
#[inline(never)]
pub fn copied_from<'a, T: Copy + 'a>(
    items: impl ExactSizeIterator<Item = &'a T>,
) -> Result<Vec<T>> {
    collect(items.copied())
}

/// `len` zero words on the heap.
#[inline(never)]
pub fn zeroed_words(len: usize) -> Result<Vec<u32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| out_of_memory::<u32>(len))?;
    v.resize(len, 0);
    Ok(v)
}
