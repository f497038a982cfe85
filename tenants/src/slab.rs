//! Versioned keys: the one home of the generation rule, behind a tenant's private space and
//! its handles.
//!
//! A key is an index and a generation. [`Keys`] keeps, per index ever handed out, its current
//! generation and whether it is occupied; a key is live only while both match, so a key kept
//! past the removal of its value is refused, even after the index is reused.
//!
//! **The generation rule** (the only one): an index starts at generation 0; removing its value
//! advances it by one, modulo 2^[`GENERATION_BITS`](cowheap_heap::word::GENERATION_BITS) (the
//! width a private reference holds). A key would have to be kept across 2^29 reuses of one
//! index to alias.
//!
//! **Layout.** The per-index record is 8 bytes: generation with a vacant bit, and a link,
//! which when occupied is the owner's (the private space keeps an object's arena offset there;
//! [`VersionedSlab`] a value's place in a dense `slab::Slab`, as large as the most values ever
//! alive at once) and when vacant the next free index. So an index that is vacant costs 8
//! bytes, not the size of a value: a tenant restored from a snapshot with a long list of
//! retired keys and few live ones holds 8 bytes per retired key (twice what the snapshot
//! spends on it) and its live objects.
//!
//! **Bounds.** Indices are below `u32::MAX` (the last is the free list's end marker); an
//! insert past that fails with [`SlabFull`] and changes nothing. No key is ever narrowed with
//! an unchecked cast.
#![warn(clippy::cast_possible_truncation)]

use cowheap_heap::word::GENERATION_MASK;
use slab::Slab;
use std::collections::TryReserveError;

/// The end of the free list, and the one index never handed out.
const NONE: u32 = u32::MAX;
/// The vacant bit of a record's tag; the low bits are the generation. Set for a vacant index
/// rather than for an occupied one, so that an occupied record's tag is its generation
/// alone and [`Keys::link`] compares it with a key's generation as that key holds it (one
/// instruction less on every private access).
const VACANT: u32 = 1 << 31;

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

/// Why [`Keys::from_parts`] refused its parts: they do not fit the index space, or the
/// records' memory (this many bytes) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PartsError {
    Full,
    OutOfMemory(usize),
}

/// Per index: its generation (with [`VACANT`] while vacant) and its link.
#[derive(Clone, Copy, Debug)]
struct Record {
    tag: u32,
    /// Occupied: the payload the owner gave ([`Keys::insert`]). Vacant: the next free index,
    /// or [`NONE`].
    link: u32,
}

impl Record {
    fn is_occupied(self) -> bool {
        self.tag & VACANT == 0
    }

    fn generation(self) -> u32 {
        self.tag & GENERATION_MASK
    }
}

/// Versioned keys, each carrying a 32-bit link chosen by the owner (where its value lives).
/// This is the one home of the generation rule: [`VersionedSlab`] links a key to its value's
/// place in a dense store, a tenant's private space to its object's offset in a word arena.
/// Invariant: vacant records form one list from `free`.
#[derive(Debug)]
pub(crate) struct Keys {
    records: Vec<Record>,
    free: u32,
    /// Live keys: at most one per index, and indices are `u32`.
    live: u32,
}

/// [`Keys`]' records borrowed by value, for a loop that keeps their address and length in
/// registers ([`crate::TenantWriter`]): the one test of a live key, [`KeysView::link`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeysView<'a> {
    records: &'a [Record],
}

impl KeysView<'_> {
    /// The link of a live key: its index's record, if its tag is the key's generation (an
    /// occupied record's tag is its generation alone). Time: O(1).
    #[inline(always)]
    pub(crate) fn link(self, k: SlabKey) -> Option<u32> {
        self.records
            .get(k.index as usize)
            .filter(|r| r.tag == k.generation)
            .map(|r| r.link)
    }

    /// The link of index `i`, if it is occupied, whatever its generation. Time: O(1).
    #[inline(always)]
    pub(crate) fn link_at(self, i: u32) -> Option<u32> {
        self.records
            .get(i as usize)
            .filter(|r| r.is_occupied())
            .map(|r| r.link)
    }
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            records: Vec::new(),
            free: NONE,
            live: 0,
        }
    }
}

impl Keys {
    /// Bytes of one index's record.
    pub(crate) const RECORD_BYTES: usize = std::mem::size_of::<Record>();

    /// A key for a new value linked by `link`: a free index at its current generation, or a
    /// new index at generation 0. Time: O(1) amortized.
    ///
    /// # Errors
    /// [`SlabFull`] if every index below `u32::MAX` is taken; nothing changes.
    pub(crate) fn insert(&mut self, link: u32) -> Result<SlabKey, SlabFull> {
        let key = if self.free != NONE {
            let index = self.free;
            let r = &mut self.records[index as usize];
            self.free = r.link;
            *r = Record {
                tag: r.generation(),
                link,
            };
            SlabKey {
                index,
                generation: r.generation(),
            }
        } else {
            let index = match u32::try_from(self.records.len()) {
                Ok(i) if i != NONE => i,
                _ => return Err(SlabFull),
            };
            // Grown by a quarter, not doubled: a record's slack stays under 2 bytes.
            if self.records.len() == self.records.capacity() {
                self.records.reserve_exact((self.records.len() / 4).max(16));
            }
            self.records.push(Record { tag: 0, link });
            SlabKey {
                index,
                generation: 0,
            }
        };
        self.live += 1;
        Ok(key)
    }

    /// The link of a live key. Time: O(1).
    #[inline(always)]
    pub(crate) fn link(&self, k: SlabKey) -> Option<u32> {
        self.view().link(k)
    }

    /// The records, borrowed by value.
    #[inline(always)]
    pub(crate) fn view(&self) -> KeysView<'_> {
        KeysView {
            records: &self.records,
        }
    }

    /// The link of index `i`, if it is occupied, whatever its generation. Time: O(1).
    #[inline(always)]
    pub(crate) fn link_at(&self, i: u32) -> Option<u32> {
        self.view().link_at(i)
    }

    /// Sets the link of occupied index `i` (its value moved). Time: O(1).
    pub(crate) fn relink(&mut self, i: u32, link: u32) {
        if let Some(r) = self.records.get_mut(i as usize)
            && r.is_occupied()
        {
            r.link = link;
        }
    }

    /// True if `n` more keys can be inserted whatever else happens: `insert` cannot then
    /// fail with [`SlabFull`]. Conservative: it does not count the free list. Time: O(1).
    pub(crate) fn has_room(&self, n: usize) -> bool {
        self.records.len().saturating_add(n) < NONE as usize
    }

    /// Memory for `n` more keys, reserved fallibly, so that the next `n` inserts allocate
    /// nothing: the free list's first `n` indices, or room for new records. Time: O(n).
    ///
    /// # Errors
    /// The allocator's refusal; nothing changes but capacity.
    #[inline]
    pub(crate) fn try_reserve(&mut self, n: usize) -> Result<(), TryReserveError> {
        // The common case: one key, and a free index or a record's room for it.
        if n <= 1 && (self.free != NONE || self.records.len() < self.records.capacity()) {
            return Ok(());
        }
        self.try_reserve_slow(n)
    }

    #[inline(never)]
    fn try_reserve_slow(&mut self, n: usize) -> Result<(), TryReserveError> {
        let mut free = 0;
        let mut i = self.free;
        while free < n && i != NONE {
            free += 1;
            i = self.records.get(i as usize).map_or(NONE, |r| r.link);
        }
        let new = n - free;
        if self.records.capacity() - self.records.len() >= new {
            return Ok(());
        }
        // Grown by a quarter, as `insert` grows.
        self.records
            .try_reserve_exact(new.max(self.records.len() / 4).max(16))
    }

    /// The live key of index `i`, if it is occupied.
    pub(crate) fn key_at(&self, i: u32) -> Option<SlabKey> {
        let r = self.records.get(i as usize)?;
        r.is_occupied().then(|| SlabKey {
            index: i,
            generation: r.generation(),
        })
    }

    /// Retires the live key `k` and answers its link. Time: O(1).
    pub(crate) fn remove(&mut self, k: SlabKey) -> Option<u32> {
        let link = self.link(k)?;
        let r = &mut self.records[k.index as usize];
        *r = Record {
            tag: (r.generation().wrapping_add(1)) & GENERATION_MASK | VACANT,
            link: self.free,
        };
        self.free = k.index;
        self.live -= 1;
        Some(link)
    }

    /// Live keys and their links, in index order. Time: O(indices ever handed out).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SlabKey, u32)> + '_ {
        (0u32..)
            .zip(&self.records)
            .filter(|(_, r)| r.is_occupied())
            .map(|(index, r)| {
                (
                    SlabKey {
                        index,
                        generation: r.generation(),
                    },
                    r.link,
                )
            })
    }

    /// The generation of every index ever handed out (live or retired), in index order.
    pub(crate) fn generations(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.records.iter().map(|r| r.generation())
    }

    /// Keys with `links` at their indices, every other index below `bound` vacant at the
    /// generation `generation_of` gives it. Vacant indices cost a record each (8 bytes).
    /// Time: O(bound + links).
    ///
    /// # Errors
    /// [`PartsError::Full`] if `bound` passes the index space, an index is not below
    /// `bound`, or two links share one; [`PartsError::OutOfMemory`] if the records'
    /// memory is refused.
    pub(crate) fn from_parts(
        bound: usize,
        generation_of: impl Fn(u32) -> u32,
        links: impl IntoIterator<Item = (u32, u32)>,
    ) -> Result<Keys, PartsError> {
        let bound = u32::try_from(bound)
            .ok()
            .filter(|&b| b < NONE)
            .ok_or(PartsError::Full)?;
        let mut records: Vec<Record> = Vec::new();
        records
            .try_reserve_exact(bound as usize)
            .map_err(|_| PartsError::OutOfMemory(bound as usize * size_of::<Record>()))?;
        records.extend((0..bound).map(|i| Record {
            tag: generation_of(i) & GENERATION_MASK | VACANT,
            link: NONE,
        }));
        let mut live = 0u32;
        for (index, link) in links {
            let r = records.get_mut(index as usize).ok_or(PartsError::Full)?;
            if r.is_occupied() {
                return Err(PartsError::Full);
            }
            *r = Record {
                tag: r.generation(),
                link,
            };
            live += 1;
        }
        // Chain the vacant indices, lowest first.
        let mut free = NONE;
        for (index, r) in (0..bound).zip(records.iter_mut()).rev() {
            if !r.is_occupied() {
                r.link = free;
                free = index;
            }
        }
        Ok(Keys {
            records,
            free,
            live,
        })
    }

    /// Number of live keys.
    pub(crate) fn len(&self) -> usize {
        self.live as usize
    }

    /// One past the largest index ever handed out.
    pub(crate) fn bound(&self) -> usize {
        self.records.len()
    }

    /// Heap bytes held by the records.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.records.capacity() * Self::RECORD_BYTES
    }
}

/// Values under versioned keys: [`Keys`] linking each to its place in a dense store.
/// Invariant: every live key's link names a value of `values`, and each value is named by
/// exactly one key.
#[derive(Debug)]
pub(crate) struct VersionedSlab<T> {
    keys: Keys,
    values: Slab<T>,
}

impl<T> Default for VersionedSlab<T> {
    fn default() -> Self {
        VersionedSlab {
            keys: Keys::default(),
            values: Slab::new(),
        }
    }
}

impl<T> VersionedSlab<T> {
    /// Stores `value` and returns its key: a free index at its current generation, or a new
    /// index at generation 0. Time: O(1) amortized.
    ///
    /// # Errors
    /// [`SlabFull`] if every index below `u32::MAX` is taken; nothing changes.
    pub(crate) fn insert(&mut self, value: T) -> Result<SlabKey, SlabFull> {
        // The dense store holds at most as many values as there are indices, so its place
        // fits a u32 whenever the index does.
        let place = u32::try_from(self.values.vacant_key()).map_err(|_| SlabFull)?;
        let key = self.keys.insert(place)?;
        self.values.insert(value);
        Ok(key)
    }

    /// The value `k` names, if it is live. Time: O(1).
    #[inline]
    pub(crate) fn get(&self, k: SlabKey) -> Option<&T> {
        self.values.get(self.keys.link(k)? as usize)
    }

    /// The value `k` names, mutably. Time: O(1).
    pub(crate) fn get_mut(&mut self, k: SlabKey) -> Option<&mut T> {
        self.values.get_mut(self.keys.link(k)? as usize)
    }

    /// Removes the value `k` names and retires its generation. Time: O(1).
    pub(crate) fn remove(&mut self, k: SlabKey) -> Option<T> {
        let place = self.keys.remove(k)?;
        self.values.try_remove(place as usize)
    }

    /// Live keys and values, in index order. Time: O(indices ever handed out).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SlabKey, &T)> + '_ {
        self.keys
            .iter()
            .filter_map(|(k, place)| self.values.get(place as usize).map(|v| (k, v)))
    }

    /// Live values, mutably, in no particular order. Time: O(live values).
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.values.iter_mut().map(|(_, v)| v)
    }

    /// The generation of every index ever handed out (live or retired), in index order.
    #[cfg(test)]
    pub(crate) fn generations(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.keys.generations()
    }

    /// The live key of index `i`, if it is occupied.
    #[cfg(test)]
    pub(crate) fn key_at(&self, i: u32) -> Option<SlabKey> {
        self.keys.key_at(i)
    }

    /// Number of live values.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// Heap bytes held: the records and the dense store.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.keys.memory_bytes() + self.values.capacity() * std::mem::size_of::<(usize, T)>()
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
        *s.get_mut(b).unwrap() = 'd';
        assert_eq!(s.get(b), Some(&'d'));
        assert_eq!(s.key_at(1), Some(b));
    }

    #[test]
    fn keys_carry_their_links_and_relink() {
        let mut k = Keys::default();
        let a = k.insert(70).unwrap();
        let b = k.insert(80).unwrap();
        assert_eq!((k.link(a), k.link(b)), (Some(70), Some(80)));
        k.relink(a.index(), 71);
        assert_eq!(k.link(a), Some(71));
        assert_eq!(k.remove(a), Some(71));
        assert_eq!((k.link(a), k.link_at(a.index())), (None, None));
        // A vacant index is not relinked.
        k.relink(a.index(), 5);
        let c = k.insert(90).unwrap();
        assert_eq!((c.index(), c.generation(), k.link(c)), (0, 1, Some(90)));
        assert_eq!(k.len(), 2);
        assert_eq!(k.iter().collect::<Vec<_>>(), [(c, 90), (b, 80)]);
    }

    #[test]
    fn a_vacant_index_refuses_every_generation() {
        // A vacant record keeps the generation its index will be reused at; a key of that
        // generation, made before the reuse (a forged or restored reference), is refused
        // until the index is handed out again, and so is every other generation.
        let mut k = Keys::default();
        let a = k.insert(70).unwrap();
        k.remove(a).unwrap();
        for generation in [0, 1, 2, GENERATION_MASK] {
            let key = SlabKey::new(a.index(), generation);
            assert_eq!(k.link(key), None, "generation {generation}");
        }
        assert_eq!(k.link_at(a.index()), None);
        assert_eq!(k.key_at(a.index()), None);
        let c = k.insert(90).unwrap();
        assert_eq!(k.link(SlabKey::new(a.index(), 1)), Some(90));
        assert_eq!(k.key_at(a.index()), Some(c));
        // So are the vacant indices of a restored set, at the generation each was given.
        let k = Keys::from_parts(3, |i| i + 5, [(1, 4)]).unwrap();
        for (index, generation) in [(0, 5), (2, 7), (0, 0), (2, 0)] {
            assert_eq!(k.link(SlabKey::new(index, generation)), None);
        }
        assert_eq!(k.link(SlabKey::new(1, 6)), Some(4));
        assert_eq!(k.generations().collect::<Vec<_>>(), [5, 6, 7]);
    }

    #[test]
    fn generations_wrap_at_the_reference_width() {
        let mut k = Keys::from_parts(1, |_| GENERATION_MASK, [(0, 1)]).unwrap();
        let key = k.key_at(0).unwrap();
        assert_eq!(key.generation(), GENERATION_MASK);
        k.remove(key).unwrap();
        assert_eq!(k.insert(2).unwrap().generation(), 0);
    }

    #[test]
    fn parts_are_checked_and_vacant_indices_are_cheap() {
        assert_eq!(
            Keys::from_parts(2, |_| 0, [(2, 0)]).err(),
            Some(PartsError::Full)
        );
        assert_eq!(
            Keys::from_parts(2, |_| 0, [(1, 0), (1, 0)]).err(),
            Some(PartsError::Full)
        );
        assert_eq!(
            Keys::from_parts(u32::MAX as usize, |_| 0, []).err(),
            Some(PartsError::Full)
        );
        let mut k = Keys::from_parts(100_000, |i| i % 3, [(99_999, 7)]).unwrap();
        assert!(k.memory_bytes() < 100_000 * 8 + 1024);
        assert_eq!(
            k.iter().map(|(k, _)| k.index()).collect::<Vec<_>>(),
            [99_999]
        );
        assert_eq!(k.len(), 1);
        // Vacant indices are reused lowest first, at their generations.
        let key = k.insert(1).unwrap();
        assert_eq!((key.index(), key.generation()), (0, 0));
        let key = k.insert(1).unwrap();
        assert_eq!((key.index(), key.generation()), (1, 1));
        assert!(k.has_room(1));
    }
}
