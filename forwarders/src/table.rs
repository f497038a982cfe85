//! The per-tenant indirection table.

use crate::{DivertMarks, MarkFilter};
use cowheap_heap::{ObjectIndex, PrivateKey};
use rustc_hash::FxHashMap;

/// Where a tenant records that it diverted an object: the base's shared marks, or under
/// [`crate::MarkPolicy::Private`] its own filter (the shared marks are then left alone).
///
/// Hidden from the docs with [`IndirectionTable::divert`]: public only because the tenants
/// crate owns the tables. Embedders divert objects by writing through a tenant.
#[doc(hidden)]
#[derive(Debug)]
pub enum MarkTarget<'a> {
    /// The base's shared marks.
    Shared(&'a DivertMarks),
    /// The tenant's own filter.
    Private(&'a mut MarkFilter),
}

/// A base object diverted twice in one table: diverting is taken once per object and
/// tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("base object {0} is already diverted")]
pub struct AlreadyDiverted(pub ObjectIndex);

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

    /// Diverts base object `x` to private entry `key`: sets its mark in `marks`, then records
    /// the entry. The mark comes first, so the tenant's next read of `x` (on this thread) sees
    /// it and finds the entry ([`crate::marks`]). This is the only way to set a mark: a mark
    /// always stands for an entry of some tenant's table. Time: O(1) expected.
    ///
    /// Hidden from the docs: public only because the tenants crate owns the tables. A shared
    /// mark is never cleared, so embedders divert objects by writing through a tenant, which
    /// records the copy this mark stands for.
    ///
    /// # Errors
    /// [`AlreadyDiverted`] if `x` already has an entry; nothing changes.
    #[doc(hidden)]
    pub fn divert(
        &mut self,
        marks: MarkTarget<'_>,
        x: ObjectIndex,
        key: PrivateKey,
    ) -> Result<(), AlreadyDiverted> {
        use std::collections::hash_map::Entry;
        match self.map.entry(x.as_u32()) {
            Entry::Occupied(_) => Err(AlreadyDiverted(x)),
            Entry::Vacant(v) => {
                match marks {
                    MarkTarget::Shared(m) => {
                        m.mark(x.as_u32());
                    }
                    MarkTarget::Private(f) => f.mark(x.as_u32()),
                }
                v.insert(key);
                Ok(())
            }
        }
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_counted_and_marked() {
        let marks = DivertMarks::new((0..100u64).map(|i| i * 4));
        let mut t = IndirectionTable::new();
        assert!(t.is_empty() && t.memory_bytes() == 0);
        let x = ObjectIndex::from_u32(42);
        t.divert(MarkTarget::Shared(&marks), x, PrivateKey::new(3, 1))
            .unwrap();
        assert!(marks.is_marked(42));
        assert_eq!(t.get(x), Some(PrivateKey::new(3, 1)));
        assert_eq!(t.get(ObjectIndex::from_u32(41)), None);
        assert_eq!(t.len(), 1);
        let mut f = MarkFilter::new();
        let y = ObjectIndex::from_u32(7);
        t.divert(MarkTarget::Private(&mut f), y, PrivateKey::new(4, 0))
            .unwrap();
        assert!(f.is_marked(7) && !marks.is_marked(7));
    }

    #[test]
    fn diverting_twice_is_refused_and_changes_nothing() {
        let marks = DivertMarks::new((0..4u64).map(|i| i * 4));
        let mut t = IndirectionTable::new();
        let x = ObjectIndex::from_u32(1);
        t.divert(MarkTarget::Shared(&marks), x, PrivateKey::new(0, 0))
            .unwrap();
        assert_eq!(
            t.divert(MarkTarget::Shared(&marks), x, PrivateKey::new(1, 0)),
            Err(AlreadyDiverted(x))
        );
        assert_eq!(t.get(x), Some(PrivateKey::new(0, 0)));
    }
}
