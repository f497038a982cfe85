//! A slab with versioned keys: the one store behind a tenant's private space and its handles.
//!
//! A key is an index and a generation. The slab keeps, per index ever handed out, its current
//! generation and whether it is occupied; a key is live only while both match, so a key kept
//! past the removal of its value is refused, even after the index is reused.
//!
//! **The generation rule** (the only one): an index starts at generation 0; removing its value
//! advances it by one, modulo 2^[`GENERATION_BITS`](cowheap_heap::word::GENERATION_BITS) (the
//! width a private reference holds). A key would have to be kept across 2^29 reuses of one
//! index to alias.
//!
//! **Layout.** The per-index record is 8 bytes (generation with an occupied bit, and a link:
//! the value's place in a dense `slab::Slab` when occupied, the next free index when vacant).
//! Values live in the dense slab, which is as large as the most values ever alive at once. So
//! an index that is vacant costs 8 bytes, not the size of a value: a tenant restored from a
//! snapshot with a long list of retired keys and few live ones holds 8 bytes per retired key
//! (twice what the snapshot spends on it) and its live values.
//!
//! **Bounds.** Indices are below `u32::MAX` (the last is the free list's end marker); an
//! insert past that fails with [`SlabFull`] and changes nothing. No key is ever narrowed with
//! an unchecked cast.
#![warn(clippy::cast_possible_truncation)]

use cowheap_heap::word::GENERATION_MASK;
use slab::Slab;

/// The end of the free list, and the one index never handed out.
const NONE: u32 = u32::MAX;
/// The occupied bit of a record's tag; the low bits are the generation.
const OCCUPIED: u32 = 1 << 31;

/// A versioned key: an index and the generation it was handed out with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SlabKey {
    index: u32,
    generation: u32,
}

impl SlabKey {
    /// A key from its parts, as held in a private reference or a handle. The generation is
    /// reduced to the slab's width.
    pub(crate) fn new(index: u32, generation: u32) -> SlabKey {
        SlabKey {
            index,
            generation: generation & GENERATION_MASK,
        }
    }

    /// The index.
    pub(crate) fn index(self) -> u32 {
        self.index
    }

    /// The generation.
    pub(crate) fn generation(self) -> u32 {
        self.generation
    }
}

/// No index is left for another value: `u32::MAX - 1` indices are occupied or retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlabFull;

/// Per index: its generation (with [`OCCUPIED`]) and its link.
#[derive(Clone, Copy, Debug)]
struct Record {
    tag: u32,
    /// Occupied: the value's place in `values`. Vacant: the next free index, or [`NONE`].
    link: u32,
}

impl Record {
    fn is_occupied(self) -> bool {
        self.tag & OCCUPIED != 0
    }

    fn generation(self) -> u32 {
        self.tag & GENERATION_MASK
    }
}

/// Values under versioned keys. Invariants: every occupied record's link names a value of
/// `values`, and each value is named by exactly one record; vacant records form one list from
/// `free`.
#[derive(Debug)]
pub(crate) struct VersionedSlab<T> {
    records: Vec<Record>,
    values: Slab<T>,
    free: u32,
}

impl<T> Default for VersionedSlab<T> {
    fn default() -> Self {
        VersionedSlab {
            records: Vec::new(),
            values: Slab::new(),
            free: NONE,
        }
    }
}

impl<T> VersionedSlab<T> {
    /// Bytes of one index's record.
    pub(crate) const RECORD_BYTES: usize = std::mem::size_of::<Record>();
    /// Bytes of one value's place in the dense store.
    pub(crate) const VALUE_BYTES: usize = std::mem::size_of::<(usize, T)>();

    /// Stores `value` and returns its key: a free index at its current generation, or a new
    /// index at generation 0. Time: O(1) amortized.
    ///
    /// # Errors
    /// [`SlabFull`] if every index below `u32::MAX` is taken; nothing changes.
    pub(crate) fn insert(&mut self, value: T) -> Result<SlabKey, SlabFull> {
        let index = if self.free != NONE {
            self.free
        } else {
            match u32::try_from(self.records.len()) {
                Ok(i) if i != NONE => i,
                _ => return Err(SlabFull),
            }
        };
        // The dense store holds at most as many values as there are indices, so its place
        // fits a u32 whenever the index does.
        let place = u32::try_from(self.values.vacant_key()).map_err(|_| SlabFull)?;
        self.values.insert(value);
        let generation = if index == self.free {
            let r = &mut self.records[index as usize];
            self.free = r.link;
            *r = Record {
                tag: r.generation() | OCCUPIED,
                link: place,
            };
            r.generation()
        } else {
            self.records.push(Record {
                tag: OCCUPIED,
                link: place,
            });
            0
        };
        Ok(SlabKey { index, generation })
    }

    /// The record of a live key.
    #[inline]
    fn live(&self, k: SlabKey) -> Option<Record> {
        self.records
            .get(k.index as usize)
            .copied()
            .filter(|r| r.tag == k.generation | OCCUPIED)
    }

    /// True if `n` more values can be inserted whatever else happens: `insert` cannot then
    /// fail with [`SlabFull`]. Conservative: it does not count the free list. Time: O(1).
    pub(crate) fn has_room(&self, n: usize) -> bool {
        self.records.len().saturating_add(n) < NONE as usize
    }

    /// The value `k` names, if it is live. Time: O(1).
    #[inline]
    pub(crate) fn get(&self, k: SlabKey) -> Option<&T> {
        let r = self.live(k)?;
        self.values.get(r.link as usize)
    }

    /// The value `k` names, mutably. Time: O(1).
    pub(crate) fn get_mut(&mut self, k: SlabKey) -> Option<&mut T> {
        let r = self.live(k)?;
        self.values.get_mut(r.link as usize)
    }

    /// Two distinct live values, mutably. Time: O(1).
    pub(crate) fn get2_mut(&mut self, a: SlabKey, b: SlabKey) -> Option<(&mut T, &mut T)> {
        let (ra, rb) = (self.live(a)?, self.live(b)?);
        // `Slab::get2_mut` panics on equal places.
        if ra.link == rb.link {
            return None;
        }
        self.values.get2_mut(ra.link as usize, rb.link as usize)
    }

    /// The live key of index `i`, if it is occupied.
    pub(crate) fn key_at(&self, i: u32) -> Option<SlabKey> {
        let r = self.records.get(i as usize)?;
        r.is_occupied().then(|| SlabKey {
            index: i,
            generation: r.generation(),
        })
    }

    /// Removes the value `k` names and retires its generation. Time: O(1).
    pub(crate) fn remove(&mut self, k: SlabKey) -> Option<T> {
        let r = self.live(k)?;
        let value = self.values.try_remove(r.link as usize)?;
        self.records[k.index as usize] = Record {
            tag: (r.generation().wrapping_add(1)) & GENERATION_MASK,
            link: self.free,
        };
        self.free = k.index;
        Some(value)
    }

    /// Live keys and values, in index order. Time: O(indices ever handed out).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SlabKey, &T)> + '_ {
        (0u32..)
            .zip(&self.records)
            .filter(|(_, r)| r.is_occupied())
            .filter_map(|(index, r)| {
                let k = SlabKey {
                    index,
                    generation: r.generation(),
                };
                self.values.get(r.link as usize).map(|v| (k, v))
            })
    }

    /// Live values, mutably, in no particular order. Time: O(live values).
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.values.iter_mut().map(|(_, v)| v)
    }

    /// The generation of every index ever handed out (live or retired), in index order.
    pub(crate) fn generations(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.records.iter().map(|r| r.generation())
    }

    /// A slab holding `values` at their keys, every other index below `bound` vacant at the
    /// generation `generation_of` gives it. Vacant indices cost a record each (8 bytes).
    /// Time: O(bound + values).
    ///
    /// # Errors
    /// [`SlabFull`] if `bound` passes the index space, a key is not below `bound`, or two
    /// values share an index.
    pub(crate) fn from_parts(
        bound: usize,
        generation_of: impl Fn(u32) -> u32,
        values: impl IntoIterator<Item = (u32, T)>,
    ) -> Result<VersionedSlab<T>, SlabFull> {
        let bound = u32::try_from(bound)
            .ok()
            .filter(|&b| b < NONE)
            .ok_or(SlabFull)?;
        let mut records: Vec<Record> = Vec::new();
        records
            .try_reserve_exact(bound as usize)
            .map_err(|_| SlabFull)?;
        records.extend((0..bound).map(|i| Record {
            tag: generation_of(i) & GENERATION_MASK,
            link: NONE,
        }));
        let mut dense = Slab::new();
        for (index, value) in values {
            let r = records.get_mut(index as usize).ok_or(SlabFull)?;
            if r.is_occupied() {
                return Err(SlabFull);
            }
            let place = u32::try_from(dense.insert(value)).map_err(|_| SlabFull)?;
            *r = Record {
                tag: r.tag | OCCUPIED,
                link: place,
            };
        }
        // Chain the vacant indices, lowest first.
        let mut free = NONE;
        for (index, r) in (0..bound).zip(records.iter_mut()).rev() {
            if !r.is_occupied() {
                r.link = free;
                free = index;
            }
        }
        Ok(VersionedSlab {
            records,
            values: dense,
            free,
        })
    }

    /// Number of live values.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// One past the largest index ever handed out.
    pub(crate) fn bound(&self) -> usize {
        self.records.len()
    }

    /// Heap bytes held: the records and the dense store.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.records.capacity() * Self::RECORD_BYTES + self.values.capacity() * Self::VALUE_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_keys_are_refused_after_reuse() {
        let mut s = VersionedSlab::default();
        let a = s.insert('a').unwrap();
        let b = s.insert('b').unwrap();
        assert_eq!((a.index(), a.generation()), (0, 0));
        assert_eq!(s.remove(a), Some('a'));
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None);
        let c = s.insert('c').unwrap();
        assert_eq!((c.index(), c.generation()), (0, 1));
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(c), Some(&'c'));
        assert_eq!(s.get(b), Some(&'b'));
        assert_eq!(s.len(), 2);
        assert_eq!(s.generations().collect::<Vec<_>>(), [1, 0]);
        let (x, y) = s.get2_mut(b, c).unwrap();
        std::mem::swap(x, y);
        assert_eq!(s.get(b), Some(&'c'));
        assert!(s.get2_mut(b, b).is_none());
    }

    #[test]
    fn generations_wrap_at_the_reference_width() {
        let mut s = VersionedSlab::from_parts(1, |_| GENERATION_MASK, [(0, 1u8)]).unwrap();
        let k = s.key_at(0).unwrap();
        assert_eq!(k.generation(), GENERATION_MASK);
        s.remove(k).unwrap();
        assert_eq!(s.insert(2).unwrap().generation(), 0);
    }

    #[test]
    fn parts_are_checked_and_vacant_indices_are_cheap() {
        assert_eq!(
            VersionedSlab::from_parts(2, |_| 0, [(2, ())]).err(),
            Some(SlabFull)
        );
        assert_eq!(
            VersionedSlab::from_parts(2, |_| 0, [(1, ()), (1, ())]).err(),
            Some(SlabFull)
        );
        assert_eq!(
            VersionedSlab::<()>::from_parts(u32::MAX as usize, |_| 0, []).err(),
            Some(SlabFull)
        );
        let mut s = VersionedSlab::from_parts(100_000, |i| i % 3, [(99_999, [0u64; 8])]).unwrap();
        assert!(s.memory_bytes() < 100_000 * 8 + 1024);
        assert_eq!(
            s.iter().map(|(k, _)| k.index()).collect::<Vec<_>>(),
            [99_999]
        );
        // Vacant indices are reused lowest first, at their generations.
        let k = s.insert([1; 8]).unwrap();
        assert_eq!((k.index(), k.generation()), (0, 0));
        let k = s.insert([1; 8]).unwrap();
        assert_eq!((k.index(), k.generation()), (1, 1));
    }
}
