//! The per-tenant indirection table.

use cowheap_heap::{ObjectIndex, PrivateKey};
use rustc_hash::FxHashMap;

/// Base object -> the key of this tenant's private entry standing for it.
///
/// An entry exists exactly for the base objects this tenant has diverted: copied on first
/// write, or becomed. It is never removed while the tenant lives (the entry is a root: base
/// objects, which cannot be patched, may refer to it). An empty table allocates nothing.
///
/// Time: lookup and insert O(1) expected (Fx hashing of a 32-bit index).
#[derive(Debug, Default, Clone)]
pub struct IndirectionTable {
    map: FxHashMap<u32, PrivateKey>,
}

impl IndirectionTable {
    /// An empty table. Allocates nothing.
    pub fn new() -> IndirectionTable {
        IndirectionTable::default()
    }

    /// This tenant's entry for base object `x`, if it diverted it.
    #[inline]
    pub fn get(&self, x: ObjectIndex) -> Option<PrivateKey> {
        self.map.get(&x.as_u32()).copied()
    }

    /// Records that base object `x` is now stood for by private entry `key`.
    ///
    /// # Panics
    /// If `x` already has an entry: diverting is a one-way transition, taken once per object
    /// and tenant, and a second one is a bug in the caller.
    pub fn insert(&mut self, x: ObjectIndex, key: PrivateKey) {
        let old = self.map.insert(x.as_u32(), key);
        assert!(old.is_none(), "base object {x} diverted twice");
    }

    /// Number of diverted base objects.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if this tenant has diverted nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every (base object, private key) pair, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (ObjectIndex, PrivateKey)> + '_ {
        self.map
            .iter()
            .map(|(&x, &k)| (ObjectIndex::from_u32(x), k))
    }

    /// Bytes of heap memory the table holds.
    pub fn memory_bytes(&self) -> usize {
        self.map.capacity() * (std::mem::size_of::<(u32, PrivateKey)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_and_counted() {
        let mut t = IndirectionTable::new();
        assert!(t.is_empty() && t.memory_bytes() == 0);
        let x = ObjectIndex::from_u32(42);
        t.insert(x, PrivateKey::new(3, 1));
        assert_eq!(t.get(x), Some(PrivateKey::new(3, 1)));
        assert_eq!(t.get(ObjectIndex::from_u32(41)), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    #[should_panic(expected = "diverted twice")]
    fn diverting_twice_is_a_bug() {
        let mut t = IndirectionTable::new();
        let x = ObjectIndex::from_u32(1);
        t.insert(x, PrivateKey::new(0, 0));
        t.insert(x, PrivateKey::new(1, 0));
    }
}
