//! The per-tenant indirection table.

use crate::{DivertMarks, MarkFilter};
use cowheap_heap::{ObjectIndex, PrivateKey};
use std::collections::TryReserveError;

/// Where a tenant records that it diverted an object: the base's shared marks, or under
/// [`crate::MarkPolicy::Private`] its own filter (the shared marks are then left alone).
///
/// Hidden from the docs with [`IndirectionTable::divert`]: public only because the tenants
/// crate owns the tables. Embedders divert objects by writing through a tenant.
#[doc(hidden)]
#[derive(Debug)]
pub enum MarkTarget<'a> {
    /// The base's shared marks, and the diverting tenant's lane in them
    /// ([`DivertMarks::lane`]).
    Shared(&'a DivertMarks, u64),
    /// The tenant's own filter.
    Private(&'a mut MarkFilter),
}

/// A base object diverted twice in one table: diverting is taken once per object and
/// tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("base object {0} is already diverted")]
pub struct AlreadyDiverted(pub ObjectIndex);

/// An empty bucket: base object `u32::MAX` at entry index `u32::MAX`, which no slab hands out.
const EMPTY: u64 = u64::MAX;

/// Base object -> the index of this tenant's private entry standing for it.
///
/// An entry exists exactly for the base objects this tenant has diverted: copied on first
/// write, or becomed. It is never removed while the tenant lives (the entry is a root: base
/// objects, which cannot be patched, may refer to it), so the private entry's index names it
/// for good and its generation never moves: the tenant reads the generation from its space.
///
/// **Layout**: open addressing, one 8-byte word per bucket (the base index in the high half,
/// the entry's index in the low half; all ones is an empty bucket, since no entry index is
/// `u32::MAX`), linear probing from a Fibonacci hash of the base index, at most 3/4 full:
/// 11-21 bytes of buckets per entry. Beside the buckets, in the same allocation, a
/// **filter** of 8 bits per bucket: the bit the hash's top bits pick for every entry's
/// base index, so a base object the tenant did not divert is answered by one bit test (at
/// most 3/4 of a bit in 8 set: a false "maybe" at most 9.4% of the time, which a probe then
/// settles) instead of a probe to an empty bucket, which at 3/4 full is several buckets
/// long. A hit is the bit test, two multiplies (the hash, and its scaling to the table's
/// size), two shifts and usually one load. An
/// empty table allocates nothing, and its filter answers "no".
///
/// Time: lookup and insert O(1) expected.
#[derive(Debug, Default, Clone)]
pub struct IndirectionTable {
    /// One allocation: the filter's `n / 8` words (8 bits a bucket: bit
    /// [`Self::filter_bit`] set for every entry's `x`), then the `n` buckets ([`EMPTY`], or
    /// `x << 32 | entry index`). Empty, or `n` a power of two of at least 8.
    words: Box<[u64]>,
    /// `8n - 1`, the filter's bit count less one, as a mask (`u32::MAX` once `8n` passes
    /// 2^32: the filter's first 2^32 bits then serve). 0 while empty (every index then
    /// misses the empty words).
    filter_mask: u32,
    /// Entries (at most 3/4 of `n`; base indices are `u32`, so this fits).
    len: u32,
}

/// A table's filter, borrowed: [`IndirectionTable::may_contain_wide`] from a plain slice
/// and the mask, which a caller's loop can keep in registers.
///
/// Hidden from the docs: a raw layer for the tenants crate's inlined reads.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct FilterView<'a> {
    /// The table's words: the filter's, then the buckets.
    words: &'a [u64],
    /// The table's filter mask.
    mask: u32,
}

impl std::fmt::Debug for FilterView<'_> {
    /// The table's size and mask, not its words.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterView")
            .field("words", &self.words.len())
            .field("mask", &self.mask)
            .finish()
    }
}

impl FilterView<'_> {
    /// As [`IndirectionTable::may_contain_wide`]. Time: O(1), one load.
    #[inline(always)]
    pub fn may_contain_wide(self, x: u64) -> bool {
        // The bit is below 8n, so its word is one of the filter's n / 8; in an empty table
        // every word index misses.
        let i = IndirectionTable::filter_bit(self.mask, x);
        self.words
            .get(i >> 6)
            .is_some_and(|w| w >> (i & 63) & 1 != 0)
    }
}

impl IndirectionTable {
    /// An empty table. Allocates nothing.
    pub fn new() -> IndirectionTable {
        IndirectionTable::default()
    }

    /// Fibonacci hashing: the product by 2^64 / phi, whose top bits are well mixed.
    #[inline(always)]
    fn hash(x: u32) -> u64 {
        Self::hash_wide(u64::from(x))
    }

    /// [`Self::hash`] of an index held in a `u64`.
    #[inline(always)]
    fn hash_wide(x: u64) -> u64 {
        x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The first bucket to probe for `x` in a table of `n` buckets (a power of two): the
    /// hash's top 32 bits scaled to `n`, which for `n` up to 2^32 is exactly the hash's top
    /// `log2(n)` bits, found by a multiply where a shift by `64 - log2(n)` would want its
    /// count in `cl` (the register moves that costs were measured to spill in the probe's
    /// callers).
    #[inline(always)]
    fn home(x: u32, n: usize) -> usize {
        ((Self::hash(x) >> 32).wrapping_mul(n as u64) >> 32) as usize
    }

    /// The filter bit of `x` in a filter whose mask is `mask`: the hash with its bytes in
    /// reverse order, so that the mask keeps its top bytes, high byte first (the top bits a
    /// shift by the table's size would keep when their count is a multiple of 8; otherwise
    /// the last byte kept gives its low bits). Every bit kept is bit 32 or higher of the
    /// product, the well-mixed ones of a multiplicative hash. A byte swap and an `and`,
    /// where a shift by a count that varies would want the count in `cl`. The hash, not the index's low bits: a heap built in a
    /// regular pattern (a class every 64 objects, say) would otherwise pile its objects onto
    /// a few bits (measured: the low bits alone save 3 instructions of a read and, on a
    /// synthetic image with such a period, made 8 times the lookups). Its middle bits, kept
    /// by a rotation, were tried too: as cheap, but a false "maybe" for a third of misses.
    #[inline(always)]
    fn filter_bit(mask: u32, x: u64) -> usize {
        (Self::hash_wide(x).swap_bytes() & u64::from(mask)) as usize
    }

    /// False if this tenant certainly did not divert base object `x`: its filter bit is clear
    /// (always, for an empty table). True may be a false alarm, which [`Self::get`] settles.
    /// One multiply, a byte swap, an `and`, one load and one bit test.
    #[inline(always)]
    pub fn may_contain(&self, x: ObjectIndex) -> bool {
        self.may_contain_wide(u64::from(x.as_u32()))
    }

    /// [`Self::may_contain`] for a base index held widened, as the read path's one-compare
    /// bound leaves it: the same bit (the hash of an index under 2^32 is the same product),
    /// without narrowing the index first. An index of 2^32 or more names no base object
    /// and gets some bit; the caller has bounded it by the marks, which are fewer.
    #[doc(hidden)]
    #[inline(always)]
    pub fn may_contain_wide(&self, x: u64) -> bool {
        self.filter_view().may_contain_wide(x)
    }

    /// The filter borrowed as a [`FilterView`], which a caller's loop can keep in registers.
    /// Time: O(1).
    ///
    /// Hidden from the docs, as [`IndirectionTable::may_contain_wide`] is.
    #[doc(hidden)]
    #[inline(always)]
    pub fn filter_view(&self) -> FilterView<'_> {
        FilterView {
            words: &self.words,
            mask: self.filter_mask,
        }
    }

    /// The number of filter words for a table of `words` words in all (`n / 8 + n`, `n` a
    /// power of two of at least 8, or 0): `words`' lowest set bit, since `9n / 8` is
    /// `n / 8` times nine. Two instructions, where a division by 9 is a multiply and shifts.
    #[inline(always)]
    fn filter_len(words: usize) -> usize {
        words & words.wrapping_neg()
    }

    /// The buckets: the words after the filter's `n / 8`.
    #[inline(always)]
    fn buckets(&self) -> &[u64] {
        let f = Self::filter_len(self.words.len());
        self.words.get(f..).unwrap_or(&[])
    }

    /// Sets `x`'s bit in `filter`, the filter of a table whose filter mask is `mask`.
    fn set_filter(filter: &mut [u64], mask: u32, x: u32) {
        let i = Self::filter_bit(mask, u64::from(x));
        if let Some(w) = filter.get_mut(i >> 6) {
            *w |= 1 << (i & 63);
        }
    }

    /// This tenant's entry index for base object `x`, if it diverted it: the filter, then a
    /// probe where the filter says maybe.
    #[inline]
    pub fn get(&self, x: ObjectIndex) -> Option<u32> {
        if !self.may_contain(x) {
            return None;
        }
        self.probe(x)
    }

    /// [`Self::get`] without the filter: the probe of the buckets alone, for a caller that
    /// has just asked [`Self::may_contain`].
    #[inline]
    pub fn probe(&self, x: ObjectIndex) -> Option<u32> {
        let buckets = self.buckets();
        let n = buckets.len();
        if n == 0 {
            return None;
        }
        let tag = u64::from(x.as_u32());
        let mut i = Self::home(x.as_u32(), n);
        loop {
            let b = buckets[i];
            if b == EMPTY {
                return None;
            }
            if b >> 32 == tag {
                return Some(b as u32);
            }
            i = (i + 1) & (n - 1);
        }
    }

    /// The bucket a new entry for `x` would take, the first empty one from its home (0 for
    /// an empty table, which has none); `None` if `x` has an entry. Time: O(1) expected.
    fn vacancy(&self, x: ObjectIndex) -> Option<usize> {
        let buckets = self.buckets();
        let n = buckets.len();
        if n == 0 {
            return Some(0);
        }
        let tag = u64::from(x.as_u32());
        let mut i = Self::home(x.as_u32(), n);
        loop {
            let b = buckets[i];
            if b == EMPTY {
                return Some(i);
            }
            if b >> 32 == tag {
                return None;
            }
            i = (i + 1) & (n - 1);
        }
    }

    /// Places `bucket` in `buckets` (which has a free bucket). Time: O(1) expected.
    fn place(buckets: &mut [u64], bucket: u64) {
        let n = buckets.len();
        let mut i = Self::home((bucket >> 32) as u32, n);
        while buckets[i] != EMPTY {
            i = (i + 1) & (n - 1);
        }
        buckets[i] = bucket;
    }

    /// Room for `n` more entries, keeping the table at most 3/4 full, its memory reserved
    /// fallibly: a caller that reserves before it diverts anything can then divert `n`
    /// objects without an allocation. Time: O(entries) when the table grows, else O(1).
    ///
    /// # Errors
    /// The allocator's refusal; nothing changes.
    #[inline]
    pub fn try_reserve(&mut self, n: usize) -> Result<(), TryReserveError> {
        if self.has_room(n) {
            return Ok(());
        }
        self.grow_to(Self::buckets_wanted(self.len, n))
    }

    /// Four times the entries the table would hold with `n` more: it has room for them
    /// while this is at most three times its buckets.
    fn buckets_wanted(len: u32, n: usize) -> usize {
        (len as usize).saturating_add(n).saturating_mul(4)
    }

    /// True if `n` more entries keep the table at most 3/4 full.
    #[inline]
    fn has_room(&self, n: usize) -> bool {
        Self::buckets_wanted(self.len, n) <= self.buckets().len() * 3
    }

    /// Grows the table to hold `wanted / 4` entries at most 3/4 full; its memory reserved
    /// fallibly. A size past the address space (`wanted` near `usize::MAX`, from a
    /// reservation no machine holds) is the allocator's refusal too: the bucket count stops
    /// doubling where three times it saturates, and the words asked for saturate with it.
    #[inline(never)]
    fn grow_to(&mut self, wanted: usize) -> Result<(), TryReserveError> {
        let old = self.buckets();
        let mut n = old.len().max(8);
        while wanted > n.saturating_mul(3) {
            n = n.saturating_mul(2);
        }
        // 8 bits a bucket: n / 8 words of 64 bits, 8n bits.
        let len = (n / 8).saturating_add(n);
        let mut words = Vec::new();
        words.try_reserve_exact(len)?;
        words.resize(len, 0u64);
        let mut words = words.into_boxed_slice();
        let mask = u32::try_from(n.saturating_mul(8) - 1).unwrap_or(u32::MAX);
        let (filter, buckets) = words.split_at_mut(n / 8);
        buckets.fill(EMPTY);
        for &b in old.iter().filter(|&&b| b != EMPTY) {
            Self::place(buckets, b);
            Self::set_filter(filter, mask, (b >> 32) as u32);
        }
        self.words = words;
        self.filter_mask = mask;
        Ok(())
    }

    /// Diverts base object `x` to private entry `key`: sets its mark in `marks`, then records
    /// the entry's index. The mark comes first, so the tenant's next read of `x` (on this
    /// thread) sees it and finds the entry ([`crate::marks`]). This is the only way to set a
    /// mark: a mark always stands for an entry of some tenant's table. Time: O(1) expected.
    ///
    /// Hidden from the docs: public only because the tenants crate owns the tables. A shared
    /// mark is never cleared, so embedders divert objects by writing through a tenant, which
    /// records the copy this mark stands for.
    ///
    /// # Errors
    /// [`AlreadyDiverted`] if `x` already has an entry, or `key`'s index is `u32::MAX` (no
    /// slab hands that index out); nothing changes.
    #[doc(hidden)]
    pub fn divert(
        &mut self,
        marks: MarkTarget<'_>,
        x: ObjectIndex,
        key: PrivateKey,
    ) -> Result<(), AlreadyDiverted> {
        if key.key() == u32::MAX {
            return Err(AlreadyDiverted(x));
        }
        // One walk from `x`'s home both refuses a second entry and finds the bucket the new
        // one takes (the first empty one: entries are never removed), unless the table
        // must grow first, which places it anew.
        let Some(vacancy) = self.vacancy(x) else {
            return Err(AlreadyDiverted(x));
        };
        let fits = self.has_room(1);
        // Infallible here: a caller that must not fail part-way reserved first.
        if !fits && self.try_reserve(1).is_err() {
            let words = (self.buckets().len() * 2).max(8) / 8 * 9;
            std::alloc::handle_alloc_error(
                std::alloc::Layout::array::<u64>(words).unwrap_or(std::alloc::Layout::new::<u64>()),
            );
        }
        match marks {
            MarkTarget::Shared(m, lane) => {
                m.mark(x.as_u32(), lane);
            }
            MarkTarget::Private(f) => f.mark(x.as_u32()),
        }
        let f = Self::filter_len(self.words.len());
        let (filter, buckets) = self.words.split_at_mut(f);
        let bucket = u64::from(x.as_u32()) << 32 | u64::from(key.key());
        match buckets.get_mut(vacancy) {
            Some(b) if fits => *b = bucket,
            _ => Self::place(buckets, bucket),
        }
        Self::set_filter(filter, self.filter_mask, x.as_u32());
        self.len += 1;
        Ok(())
    }

    /// Number of diverted base objects.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True if this tenant has diverted nothing.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every (base object, entry index) pair, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (ObjectIndex, u32)> + '_ {
        self.buckets()
            .iter()
            .filter(|&&b| b != EMPTY)
            .map(|&b| (ObjectIndex::from_u32((b >> 32) as u32), b as u32))
    }

    /// Bytes of heap memory the table holds: 8 per bucket and 1 of filter.
    pub fn memory_bytes(&self) -> usize {
        self.words.len() * 8
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
        t.divert(
            MarkTarget::Shared(&marks, DivertMarks::lane_bit(1)),
            x,
            PrivateKey::new(3, 1),
        )
        .unwrap();
        assert!(marks.is_marked(42));
        assert_eq!(t.get(x), Some(3));
        assert_eq!(t.get(ObjectIndex::from_u32(41)), None);
        assert_eq!(t.len(), 1);
        let mut f = MarkFilter::new();
        let y = ObjectIndex::from_u32(7);
        t.divert(MarkTarget::Private(&mut f), y, PrivateKey::new(4, 0))
            .unwrap();
        assert!(f.is_marked(7) && !marks.is_marked(7));
    }

    #[test]
    fn the_geometry_is_the_hash_top_bits_and_the_filter_an_eighth() {
        // The home bucket is the hash's top log2(n) bits for every table size up to 2^32
        // buckets; the filter is n / 8 words of the 9n / 8.
        for log in 3..=32u32 {
            let n = 1usize << log;
            for x in [0u32, 1, 7, 1 << 20, 0xDEAD_BEEF, u32::MAX] {
                let top = (IndirectionTable::hash(x) >> (64 - log)) as usize;
                assert_eq!(IndirectionTable::home(x, n), top, "x {x}, n 2^{log}");
            }
            assert_eq!(IndirectionTable::filter_len(n / 8 + n), n / 8);
        }
        assert_eq!(IndirectionTable::filter_len(0), 0);
    }

    #[test]
    fn many_entries_survive_growth_and_agree_with_a_map() {
        let marks = DivertMarks::new((0..100_000u64).map(|i| i * 4));
        let mut t = IndirectionTable::new();
        let mut model = std::collections::HashMap::new();
        // Indices that collide in the hash's top bits as well as scattered ones.
        for (n, x) in (0..5_000u32)
            .map(|i| i.wrapping_mul(2_654_435_761) % 100_000)
            .chain((0..64).map(|i| i << 10))
            .chain([u32::MAX, 0])
            .enumerate()
        {
            let n = n as u32;
            let got = t.divert(
                MarkTarget::Shared(&marks, DivertMarks::lane_bit(1)),
                ObjectIndex::from_u32(x),
                PrivateKey::new(n, 0),
            );
            let fresh = !model.contains_key(&x);
            assert_eq!(got.is_ok(), fresh, "{x}");
            if fresh {
                model.insert(x, n);
            }
        }
        assert_eq!(t.len(), model.len());
        assert_eq!(
            t.get(ObjectIndex::from_u32(u32::MAX)),
            model.get(&u32::MAX).copied()
        );
        for x in 0..100_000u32 {
            assert_eq!(
                t.get(ObjectIndex::from_u32(x)),
                model.get(&x).copied(),
                "{x}"
            );
        }
        let mut pairs: Vec<_> = t.iter().map(|(x, k)| (x.as_u32(), k)).collect();
        pairs.sort_unstable();
        let mut want: Vec<_> = model.into_iter().collect();
        want.sort_unstable();
        assert_eq!(pairs, want);
        assert!(t.memory_bytes() <= 9 * 4 * t.len().next_power_of_two());
        // No false "no": every entry's filter bit is set; and most misses are told by the
        // filter alone (at most 3/4 of the buckets full, 8 filter bits a bucket).
        assert!(t.iter().all(|(x, _)| t.may_contain(x)));
        let alarms = (0..100_000u32)
            .map(ObjectIndex::from_u32)
            .filter(|&x| t.may_contain(x) && t.probe(x).is_none())
            .count();
        let misses = 100_000 - t.len();
        assert!(alarms * 10 < misses, "{alarms} false alarms of {misses}");
    }

    #[test]
    fn a_regular_pattern_of_entries_is_spread_over_the_filter() {
        // A heap built in a regular pattern: every 128th object diverted (a class and its
        // instances laid out in turn, say). The filter must still tell most misses apart,
        // among the multiples of 64 (every other one diverted) as among every index.
        let marks = DivertMarks::new((0..1_000_000u64).map(|i| i * 4));
        let mut t = IndirectionTable::new();
        for j in 0..3_000u32 {
            let x = ObjectIndex::from_u32(j * 128);
            t.divert(
                MarkTarget::Shared(&marks, DivertMarks::lane_bit(1)),
                x,
                PrivateKey::new(j, 0),
            )
            .unwrap();
        }
        assert!((0..3_000u32).all(|j| t.may_contain(ObjectIndex::from_u32(j * 128))));
        let alarms = |xs: &mut dyn Iterator<Item = u32>| {
            let (mut alarms, mut misses) = (0, 0);
            for x in xs.map(ObjectIndex::from_u32) {
                if t.probe(x).is_none() {
                    misses += 1;
                    alarms += usize::from(t.may_contain(x));
                }
            }
            assert!(alarms * 10 < misses, "{alarms} false alarms of {misses}");
        };
        alarms(&mut (0..6_000u32).map(|j| j * 64));
        alarms(&mut (0..400_000u32));
    }

    #[test]
    fn an_empty_table_says_no_without_a_filter() {
        let t = IndirectionTable::new();
        assert!((0..1_000u32).all(|x| !t.may_contain(ObjectIndex::from_u32(x))));
        assert!(!t.may_contain(ObjectIndex::from_u32(u32::MAX)));
        assert_eq!(t.memory_bytes(), 0);
    }

    #[test]
    fn diverting_twice_is_refused_and_changes_nothing() {
        let marks = DivertMarks::new((0..4u64).map(|i| i * 4));
        let mut t = IndirectionTable::new();
        let x = ObjectIndex::from_u32(1);
        t.divert(
            MarkTarget::Shared(&marks, DivertMarks::lane_bit(1)),
            x,
            PrivateKey::new(0, 0),
        )
        .unwrap();
        assert_eq!(
            t.divert(
                MarkTarget::Shared(&marks, DivertMarks::lane_bit(1)),
                x,
                PrivateKey::new(1, 0)
            ),
            Err(AlreadyDiverted(x))
        );
        assert_eq!(t.get(x), Some(0));

        // At its growth boundary (8 buckets, 6 entries: the next entry grows the table), a
        // second entry for an object is refused before the table grows, and a new one then
        // takes the grown table.
        let marks = DivertMarks::new((0..16u64).map(|i| i * 4));
        let mut t = IndirectionTable::new();
        let lane = || MarkTarget::Shared(&marks, DivertMarks::lane_bit(1));
        for i in 0..6u32 {
            t.divert(lane(), ObjectIndex::from_u32(i), PrivateKey::new(i, 0))
                .unwrap();
        }
        let bytes = t.memory_bytes();
        assert_eq!(bytes, 9 * 8);
        for i in 0..6u32 {
            let x = ObjectIndex::from_u32(i);
            assert_eq!(
                t.divert(lane(), x, PrivateKey::new(9, 0)),
                Err(AlreadyDiverted(x))
            );
            assert_eq!((t.memory_bytes(), t.len(), t.get(x)), (bytes, 6, Some(i)));
        }
        t.divert(lane(), ObjectIndex::from_u32(6), PrivateKey::new(6, 0))
            .unwrap();
        assert!(t.memory_bytes() > bytes);
        for i in 0..7u32 {
            assert_eq!(t.get(ObjectIndex::from_u32(i)), Some(i));
        }
    }
}
