//! Diverted marks: one word per base object, shared by every tenant of the base.
//!
//! Word `x` holds the word offset of object `x`'s header in the base heap (the low 40 bits),
//! and its top bit ([`DivertMarks::DIVERTED`]) is set once any tenant diverts `x`. The read
//! path loads this word *instead of* the heap's own offset table, so the mark costs a bit test
//! on a word the read needs anyway: a tenant's read of an undiverted object is the same three
//! dependent loads as a plain read of the base. The table lives beside the heap, never inside
//! it (the heap stays read-only and may be a mapped file); it costs 8 bytes per object and is
//! filled once, in O(objects), when a `Base` is made.
//!
//! # Lanes
//!
//! Between the offset and the two top bits, 22 bits say *which* tenants diverted an object,
//! as a filter does: each tenant has a lane, one of those bits, drawn at random when it is
//! forked ([`DivertMarks::draw_lane`]), and a divert sets the diverting tenant's lane with the diverted
//! bit, in the same `fetch_or`. A tenant that finds the diverted bit set and its own lane
//! clear did not divert the object, and reads it in place with no look at its table; with
//! its lane set it asks its table (another tenant of its lane may have set it). So a read of
//! an object other tenants diverted costs one more bit test, not a probe of a filter, until
//! tenants of 22 lanes have diverted that object.
//!
//! # Memory ordering
//!
//! `DivertMarks::mark` (`fetch_or`, reached through [`crate::IndirectionTable::divert`]) and
//! every load use `Relaxed`. The argument:
//!
//! - The offsets are written when the table is made, before the `Base` holding it is shared:
//!   whatever hands the `Arc<Base>` to another thread (a spawn, a channel, a mutex) orders those
//!   writes before that thread's loads. They are never written again: `mark` only sets the top
//!   bit and a lane, `mark_committed` the two top bits.
//! - The mark publishes no data. The truth about what a tenant sees is in that tenant's own
//!   indirection table, which only the thread that owns the tenant reads or writes. The mark
//!   only says "look in your table".
//! - The tenant that sets a mark reads it back on the same thread, so program order makes it
//!   visible. A tenant moves to another thread only through something that synchronizes (a
//!   mutex, a channel, a join: safe Rust offers nothing else), and that carries the mark along.
//! - Another tenant that misses a fresh mark reads the base object, which is exactly what it
//!   must see: it has no copy. One that sees the mark looks in its table, finds nothing and
//!   reads the base. Either way it is right, so no ordering with the marker is needed.
//! - `fetch_or` is a read-modify-write and marks are never cleared, so racing marks of one
//!   object set it once and never disturb the offset.
//! - A lane is set with the diverted bit, by the same `fetch_or`. The tenant that set it
//!   reads its own write or a later one (coherence: the modification order of one word is
//!   seen in order, and bits are only ever added), so it always finds its lane set on an
//!   object it diverted and asks its table. A lane seen clear means no tenant of that lane
//!   had diverted the object as far as this thread can see, which for the tenant reading is
//!   exact: its own diverts are in its program order.
//!
//! The loom tests at the bottom of this file check the last three points.
//!
//! # Security note
//!
//! The shared marks are a side channel: a tenant can time its reads and learn that *some*
//! tenant wrote an object (a marked read takes another test), and whether a tenant of its own
//! lane did (a read past its own lane asks its table's filter, then maybe the table). It
//! cannot learn what was written; which tenant, only as far as its lane narrows it: lanes are
//! drawn at random, so a tenant cannot tell which tenants share its lane, though among few
//! tenants a lane may hold one other. A host that must not leak even that runs tenants with
//! [`MarkPolicy::Private`]: each tenant then keeps its own small [`MarkFilter`] (4,096 bits,
//! indexed by object index modulo its size) and ignores the shared bits, so only its own writes
//! make its reads slower. A false positive in the filter costs a table lookup, never a wrong
//! answer.

use crate::sync::{AtomicU64, Ordering};
use std::sync::Arc;

/// Which marks a tenant consults on its read path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MarkPolicy {
    /// The base's shared marks: exact, and read with the offset the read loads anyway. Leaks,
    /// through timing, that some tenant diverted an object (see the module's security note).
    #[default]
    Shared,
    /// A [`MarkFilter`] owned by the tenant: no tenant learns anything of another, at the price
    /// of a second load per read and of table lookups for objects that share a filter bit with
    /// one this tenant diverted. Costs 512 bytes per tenant.
    Private,
}

// Every header offset of a base heap fits a mark's offset bits, and the largest offset the
// bits hold is past every heap (`DivertMarks::new` keeps an offset too wide for them there).
const _: () = assert!(cowheap_heap::MAX_OBJECT_WORDS <= DivertMarks::OFFSET);

/// The shared marks of a base: per object, its header offset, a diverted bit and the lanes of
/// the tenants that diverted it.
///
/// Cloning shares the table (it lives behind an `Arc`): a tenant holds a clone by value, so
/// the read path reaches it in one load from the tenant itself.
///
/// What a user may do with the shared marks is read them. Setting a mark is reserved to
/// [`crate::IndirectionTable::divert`], so that a mark always stands for a real diversion:
///
/// ```
/// let base = cowheap_forwarders::Base::new(cowheap_heap::synth::image(10, 1));
/// assert!(!base.marks().is_marked(3));
/// ```
///
/// ```compile_fail
/// let base = cowheap_forwarders::Base::new(cowheap_heap::synth::image(10, 1));
/// base.marks().mark(3, cowheap_forwarders::DivertMarks::lane_bit(1)); // private: would slow every tenant's reads of object 3 for good
/// ```
#[derive(Debug, Clone)]
pub struct DivertMarks {
    words: Arc<[AtomicU64]>,
}

impl DivertMarks {
    /// The diverted bit of a word; the other bits are the header offset.
    ///
    /// Hidden from the docs: a raw layer, public only because the tenants crate's inlined
    /// read path decodes [`DivertMarks::entry`] words itself. Use [`DivertMarks::is_marked`].
    #[doc(hidden)]
    pub const DIVERTED: u64 = 1 << 63;

    /// The committed bit of a word: some version of the base changed the object
    /// ([`crate::version`]), so a reader must look in its version's layers before the heap.
    /// It is always set with [`DivertMarks::DIVERTED`], so the diverted bit alone says
    /// whether a read leaves the fast path under the shared policy.
    /// Not a side channel between tenants: a committed version is published to all.
    ///
    /// Hidden from the docs, as [`DivertMarks::DIVERTED`] is.
    #[doc(hidden)]
    pub const COMMITTED: u64 = 1 << 62;

    /// The bits of a word that send a read off the fast path under the shared policy.
    #[doc(hidden)]
    pub const SLOW: u64 = Self::DIVERTED | Self::COMMITTED;

    /// The number of lanes: tenants are told apart by the marks in this many classes.
    pub const LANE_COUNT: u32 = 22;

    /// The lowest bit of the lanes, above the offset's bits.
    const LANE_SHIFT: u32 = 40;

    /// The bits of a word that hold lanes: bit 40 + l is set once a tenant of lane l has
    /// diverted the object ([`DivertMarks::lane`]).
    #[doc(hidden)]
    pub const LANES: u64 = ((1 << Self::LANE_COUNT) - 1) << Self::LANE_SHIFT;

    /// The bits of a word that hold the header offset: 40 bits, which bound a base heap's
    /// object words ([`cowheap_heap::MAX_OBJECT_WORDS`], checked when a heap is made).
    #[doc(hidden)]
    pub const OFFSET: u64 = (1 << Self::LANE_SHIFT) - 1;

    /// The bits of a word that a read in place keeps once it has found the object is not its
    /// tenant's to read elsewhere: the offset, and the committed bit, which puts the result
    /// past every heap so that an object a version changed is read out of line. (A
    /// `TenantReader`'s slot keeps the tenant's lane too, before it has looked: the result
    /// is then past every heap also where a tenant of that lane diverted the object.)
    #[doc(hidden)]
    pub const IN_PLACE: u64 = Self::OFFSET | Self::COMMITTED;

    /// Lane number `n` (below [`DivertMarks::LANE_COUNT`]) as its bit of
    /// [`DivertMarks::LANES`]. Time: O(1).
    ///
    /// # Panics
    /// If `n` is not below [`DivertMarks::LANE_COUNT`].
    pub const fn lane_bit(n: u32) -> u64 {
        assert!(n < Self::LANE_COUNT, "no such lane");
        1 << (Self::LANE_SHIFT + n)
    }

    /// A lane for a new tenant: one bit of [`DivertMarks::LANES`], drawn at random (a
    /// per-thread generator seeded from the process's random keys), so that nothing a tenant
    /// can see or guess, its id least of all, tells it which tenants share its lane. Time:
    /// O(1), a few instructions.
    ///
    /// ```
    /// use cowheap_forwarders::DivertMarks;
    /// let lane = DivertMarks::draw_lane();
    /// assert_eq!(lane.count_ones(), 1);
    /// assert_eq!(lane & !DivertMarks::LANES, 0);
    /// let lanes = (0..1000).fold(0, |acc, _| acc | DivertMarks::draw_lane());
    /// assert_eq!(lanes, DivertMarks::LANES, "a thousand draws fill every lane");
    /// ```
    pub fn draw_lane() -> u64 {
        use std::cell::Cell;
        use std::hash::BuildHasher;
        thread_local! {
            // SplitMix64's state, seeded by the keyed hash `RandomState` gives each thread.
            static STATE: Cell<u64> =
                Cell::new(std::hash::RandomState::new().hash_one(0x6c61_6e65_u64));
        }
        let z = STATE.with(|s| {
            let z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            s.set(z);
            z
        });
        let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let h = (z ^ (z >> 31)) >> 32;
        // The high half times the lane count, shifted down by 32: a number below the count,
        // evenly (and so no truncation in the cast).
        let n = ((h * u64::from(Self::LANE_COUNT)) >> 32) as u32;
        Self::lane_bit(n)
    }

    /// A table for objects whose headers are at `offsets` (word offsets), none diverted.
    /// An offset wider than [`DivertMarks::OFFSET`] (only a corrupt file opened trusted
    /// holds one: a heap has at most [`cowheap_heap::MAX_OBJECT_WORDS`] words) is kept as
    /// `OFFSET` itself, past every heap, so that a read in place refuses it as the heap's
    /// own read refuses the offset it holds, rather than reading another object.
    /// Time and space: O(objects).
    ///
    /// Crate-private: [`crate::Base::new`] makes the marks of a base from its heap; a table
    /// made apart from its heap's offsets would send reads to the wrong objects.
    pub(crate) fn new(offsets: impl Iterator<Item = u64>) -> DivertMarks {
        DivertMarks {
            words: offsets
                .map(|o| AtomicU64::new(o.min(Self::OFFSET)))
                .collect(),
        }
    }

    /// Object `index`'s word (offset | lanes | committed and diverted bits), or `None` out of
    /// range. Time: O(1), one
    /// load.
    ///
    /// Hidden from the docs: a raw layer, public only because the tenants crate's read path
    /// is inlined into its callers and reads the offset from this word. Use
    /// [`DivertMarks::is_marked`].
    #[doc(hidden)]
    #[inline(always)]
    pub fn entry(&self, index: u32) -> Option<u64> {
        // Relaxed: see the module doc; the offset was published with the table, the bit
        // guards no data.
        self.words
            .get(index as usize)
            .map(|w| w.load(Ordering::Relaxed))
    }

    /// [`DivertMarks::entry`] of a widened index ([`cowheap_heap::Word::base_index_wide`]),
    /// so that a word that is no base reference, whose widened index is at least 2^32, fails
    /// the same bounds check as an index out of range. Time: O(1), one load.
    ///
    /// Hidden from the docs, as [`DivertMarks::entry`] is.
    #[doc(hidden)]
    #[inline(always)]
    pub fn entry_wide(&self, index: u64) -> Option<u64> {
        self.view().entry_wide(index)
    }

    /// The marks borrowed as a [`MarksView`], which a caller's loop can keep in registers.
    /// Time: O(1).
    ///
    /// Hidden from the docs, as [`DivertMarks::entry`] is.
    #[doc(hidden)]
    #[inline(always)]
    pub fn view(&self) -> MarksView<'_> {
        MarksView { words: &self.words }
    }

    /// True if some tenant has diverted object `index`. Out-of-range indices are never
    /// marked. Time: O(1).
    #[inline]
    pub fn is_marked(&self, index: u32) -> bool {
        self.entry(index).is_some_and(|w| w & Self::DIVERTED != 0)
    }

    /// Marks object `index` diverted by a tenant of lane `lane` ([`DivertMarks::lane`]);
    /// returns true if this call set the diverted bit. Out-of-range indices are ignored (and
    /// return false). Time: O(1).
    ///
    /// Crate-private: a mark is never cleared, and one set for no reason pushes every
    /// tenant's reads of that object off the fast path for good. Tenants mark through
    /// [`crate::IndirectionTable::divert`], which marks only what it records.
    #[inline]
    pub(crate) fn mark(&self, index: u32, lane: u64) -> bool {
        debug_assert!(
            lane.count_ones() == 1 && lane & !Self::LANES == 0,
            "one lane"
        );
        match self.words.get(index as usize) {
            // Relaxed: see the module doc. The RMW sets the bits once and keeps the offset.
            Some(w) => {
                w.fetch_or(Self::DIVERTED | (lane & Self::LANES), Ordering::Relaxed)
                    & Self::DIVERTED
                    == 0
            }
            None => false,
        }
    }

    /// True if some version of the base changed object `index`. Time: O(1).
    #[inline]
    pub fn is_committed(&self, index: u32) -> bool {
        self.entry(index).is_some_and(|w| w & Self::COMMITTED != 0)
    }

    /// Sets object `index`'s committed bit, and its diverted bit with it, so that the shared
    /// policy's fast path tests one bit, the sign (out of range: ignored). Crate-private: only
    /// [`crate::Base::next_version`] sets it, for the objects a version changes, before the
    /// version is published. Relaxed, as `mark`: a reader of an older version that sees the
    /// bit finds nothing in its own layers and reads the heap, which is what it must see;
    /// a reader of the new version got its `Arc<Base>` through whatever published it, which
    /// orders this store before its loads.
    pub(crate) fn mark_committed(&self, index: u32) {
        if let Some(w) = self.words.get(index as usize) {
            w.fetch_or(Self::COMMITTED | Self::DIVERTED, Ordering::Relaxed);
        }
    }

    /// Number of objects marked. Time: O(objects).
    pub fn count(&self) -> usize {
        self.words
            .iter()
            .filter(|w| w.load(Ordering::Relaxed) & Self::DIVERTED != 0)
            .count()
    }

    /// Bytes of memory the table occupies.
    pub fn memory_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// A tenant's own marks under [`MarkPolicy::Private`]: 4,096 bits, object index modulo 4,096.
/// Written only by its tenant, through `&mut`.
#[derive(Debug, Clone)]
pub struct MarkFilter {
    bits: Box<[u64; MarkFilter::BITS / 64]>,
}

impl Default for MarkFilter {
    fn default() -> Self {
        MarkFilter {
            bits: Box::new([0; MarkFilter::BITS / 64]),
        }
    }
}

impl MarkFilter {
    /// Size of the filter in bits.
    pub const BITS: usize = 4096;

    /// An empty filter.
    pub fn new() -> MarkFilter {
        MarkFilter::default()
    }

    /// A filter with every bit set: every read of a base object by its tenant leaves the
    /// fast path (for a tenant that records what it reads).
    pub fn full() -> MarkFilter {
        MarkFilter {
            bits: Box::new([u64::MAX; MarkFilter::BITS / 64]),
        }
    }

    /// True if object `index` may have been diverted by this filter's tenant. Time: O(1).
    #[inline(always)]
    pub fn is_marked(&self, index: u32) -> bool {
        let i = index as usize % Self::BITS;
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// Marks object `index`. Time: O(1). Crate-private, like [`DivertMarks::mark`]: tenants
    /// mark through [`crate::IndirectionTable::divert`].
    pub(crate) fn mark(&mut self, index: u32) {
        let i = index as usize % Self::BITS;
        self.bits[i / 64] |= 1 << (i % 64);
    }

    /// Bytes of memory the filter occupies.
    pub fn memory_bytes(&self) -> usize {
        Self::BITS / 8
    }
}

/// The shared marks, borrowed: [`DivertMarks::entry_wide`] from a plain slice, which a
/// caller's loop can keep in two registers. [`MarksView::NONE`] holds no marks, so every
/// entry is `None`.
///
/// Hidden from the docs, as [`DivertMarks::entry`] is: a raw layer for the tenants crate's
/// inlined reads.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct MarksView<'a> {
    words: &'a [AtomicU64],
}

impl std::fmt::Debug for MarksView<'_> {
    /// The number of marks, not the marks.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarksView")
            .field("marks", &self.words.len())
            .finish()
    }
}

impl MarksView<'_> {
    /// No marks: every entry is `None`.
    pub const NONE: MarksView<'static> = MarksView { words: &[] };

    /// As [`DivertMarks::entry_wide`]. Time: O(1), one load.
    #[inline(always)]
    pub fn entry_wide(self, index: u64) -> Option<u64> {
        // Relaxed: as `DivertMarks::entry`.
        self.words
            .get(usize::try_from(index).ok()?)
            .map(|w| w.load(Ordering::Relaxed))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn marks_keep_offsets_and_are_bounded() {
        let m = DivertMarks::new([10u64, 20, 30].into_iter());
        assert_eq!(m.entry(1), Some(20));
        assert!(!m.is_marked(1));
        assert!(m.mark(1, DivertMarks::lane_bit(1)));
        assert!(
            !m.mark(1, DivertMarks::lane_bit(1)),
            "second mark reports already set"
        );
        assert_eq!(
            m.entry(1),
            Some(20 | DivertMarks::DIVERTED | DivertMarks::lane_bit(1))
        );
        assert!(m.is_marked(1) && !m.is_marked(0) && !m.is_marked(2));
        assert!(
            !m.mark(5000, DivertMarks::lane_bit(1)) && !m.is_marked(5000) && m.entry(3).is_none()
        );
        assert_eq!(m.count(), 1);
        assert_eq!(m.memory_bytes(), 24);
        m.mark_committed(2);
        assert!(m.is_committed(2) && m.is_marked(2) && !m.is_committed(1));
        assert_eq!(m.entry(2).unwrap() & DivertMarks::OFFSET, 30);
        assert_eq!(m.count(), 2);
    }

    #[test]
    fn an_offset_too_wide_for_a_mark_is_kept_past_every_heap() {
        let wide = [1 << 40, 1 << 62, u64::MAX, DivertMarks::OFFSET, 5];
        let m = DivertMarks::new(wide.into_iter());
        for x in 0..4 {
            assert_eq!(m.entry(x), Some(DivertMarks::OFFSET), "entry {x}");
        }
        assert_eq!(m.entry(4), Some(5));
        assert!(
            !m.is_marked(2) && !m.is_committed(2),
            "no bit set by a wide offset"
        );
    }

    #[test]
    fn each_divert_adds_its_lane_and_keeps_the_offset() {
        let m = DivertMarks::new([10u64, 20, (1 << 40) - 1].into_iter());
        let (a, b) = (DivertMarks::lane_bit(3), DivertMarks::lane_bit(4));
        assert_ne!(a, b);
        assert!(m.mark(2, a), "the first divert sets the diverted bit");
        assert!(
            !m.mark(2, b),
            "a second tenant's does not, but adds its lane"
        );
        let w = m.entry(2).unwrap();
        assert_eq!(w, DivertMarks::OFFSET | DivertMarks::DIVERTED | a | b);
        assert_eq!(
            w & DivertMarks::IN_PLACE,
            DivertMarks::OFFSET,
            "the offset, whole"
        );
        assert_eq!(w & DivertMarks::lane_bit(5), 0, "a third lane is clear");
        m.mark_committed(2);
        let w = m.entry(2).unwrap();
        assert_eq!(
            w & DivertMarks::IN_PLACE,
            DivertMarks::OFFSET | DivertMarks::COMMITTED
        );
        assert!(
            w & DivertMarks::IN_PLACE > 1 << 62,
            "a committed object's offset is past every heap"
        );
        // Every lane is one bit of the lanes, and the lanes, the offset and the two top bits
        // share no bit.
        let lanes = (0..DivertMarks::LANE_COUNT)
            .map(DivertMarks::lane_bit)
            .fold(0, |acc, l| {
                assert_eq!(l.count_ones(), 1);
                assert_eq!(acc & l, 0, "distinct lanes");
                acc | l
            });
        assert_eq!(lanes, DivertMarks::LANES);
        assert_eq!(
            DivertMarks::LANES & (DivertMarks::OFFSET | DivertMarks::SLOW),
            0
        );
        assert_eq!(DivertMarks::OFFSET & DivertMarks::SLOW, 0);
        assert_eq!(
            DivertMarks::LANES | DivertMarks::OFFSET | DivertMarks::SLOW,
            u64::MAX
        );
    }

    #[test]
    fn a_view_reads_the_marks_as_they_are_and_none_reads_nothing() {
        let m = DivertMarks::new([10u64, 20, 30].into_iter());
        let v = m.view();
        assert!(m.mark(1, DivertMarks::lane_bit(1)));
        for k in 0..4u64 {
            assert_eq!(v.entry_wide(k), m.entry_wide(k), "entry {k}");
        }
        assert_eq!(
            v.entry_wide(1),
            Some(20 | DivertMarks::DIVERTED | DivertMarks::lane_bit(1)),
            "a mark made after"
        );
        assert_eq!(v.entry_wide(1 << 32), None, "no base reference");
        assert_eq!(v.entry_wide(u64::MAX), None);
        assert!((0..4).all(|k| MarksView::NONE.entry_wide(k).is_none()));
    }

    #[test]
    fn filters_wrap_indices() {
        let mut f = MarkFilter::new();
        f.mark(3);
        assert!(f.is_marked(3 + MarkFilter::BITS as u32));
        assert!(!f.is_marked(4));
        assert_eq!(f.memory_bytes(), 512);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    fn table() -> DivertMarks {
        DivertMarks::new((0..16u64).map(|i| i * 3))
    }

    /// The word of an object at `offset` that tenants of lanes 1 and 2 diverted.
    fn diverted_by_lanes_1_and_2(offset: u64) -> u64 {
        offset | DivertMarks::DIVERTED | DivertMarks::lane_bit(1) | DivertMarks::lane_bit(2)
    }

    /// Two tenants marking different objects lose neither mark nor offset.
    #[test]
    fn concurrent_marks_are_both_kept() {
        loom::model(|| {
            let m = Arc::new(table());
            let m2 = m.clone();
            let t = thread::spawn(move || m2.mark(3, DivertMarks::lane_bit(2)));
            let mine = m.mark(7, DivertMarks::lane_bit(1));
            let theirs = t.join().unwrap();
            assert!(mine && theirs);
            assert!(m.is_marked(3) && m.is_marked(7));
            assert_eq!(
                m.entry(7),
                Some(21 | DivertMarks::DIVERTED | DivertMarks::lane_bit(1))
            );
            assert_eq!(
                m.entry(3),
                Some(9 | DivertMarks::DIVERTED | DivertMarks::lane_bit(2))
            );
            assert_eq!(m.count(), 2);
        });
    }

    /// Two tenants marking the same object: exactly one is told it set the bit, the offset
    /// survives, and both lanes are kept.
    #[test]
    fn racing_marks_of_one_object_set_it_once() {
        loom::model(|| {
            let m = Arc::new(table());
            let m2 = m.clone();
            let t = thread::spawn(move || m2.mark(9, DivertMarks::lane_bit(2)));
            let a = m.mark(9, DivertMarks::lane_bit(1));
            let b = t.join().unwrap();
            assert!(a ^ b);
            assert_eq!(m.entry(9), Some(diverted_by_lanes_1_and_2(27)));
        });
    }

    /// A version's commit marking an object while a tenant diverts it: both bits end set,
    /// the offset survives, and a reader racing them sees the offset either way.
    #[test]
    fn a_commit_and_a_divert_of_one_object_keep_both_bits() {
        loom::model(|| {
            let m = Arc::new(table());
            let (m2, m3) = (m.clone(), m.clone());
            let committer = thread::spawn(move || m2.mark_committed(4));
            let reader = thread::spawn(move || m3.entry(4));
            m.mark(4, DivertMarks::lane_bit(1));
            committer.join().unwrap();
            let seen = reader.join().unwrap().unwrap();
            assert_eq!(seen & DivertMarks::OFFSET, 12);
            let w = m.entry(4).unwrap();
            assert_eq!(
                w,
                12 | DivertMarks::DIVERTED | DivertMarks::COMMITTED | DivertMarks::lane_bit(1)
            );
            assert!(m.is_committed(4) && m.is_marked(4));
        });
    }

    /// A reader racing a marker sees the offset either way, marked or not; the marker always
    /// sees its own mark.
    #[test]
    fn readers_always_see_the_offset() {
        loom::model(|| {
            let m = Arc::new(table());
            let m2 = m.clone();
            let reader = thread::spawn(move || m2.entry(10));
            m.mark(10, DivertMarks::lane_bit(1));
            assert!(m.is_marked(10));
            let seen = reader.join().unwrap().unwrap();
            assert_eq!(seen & DivertMarks::OFFSET, 30);
            assert!(!m.is_marked(11));
        });
    }

    /// What the read path relies on: a tenant always finds its own lane on an object it
    /// marked, however another tenant's mark of the same object races its own; and a reader
    /// of a third lane sees its lane clear (it diverted nothing) and the offset whole.
    #[test]
    fn a_marker_always_sees_its_own_lane() {
        loom::model(|| {
            let m = Arc::new(table());
            let (m2, m3) = (m.clone(), m.clone());
            let other = thread::spawn(move || {
                m2.mark(5, DivertMarks::lane_bit(2));
                m2.entry(5).unwrap()
            });
            let third = thread::spawn(move || m3.entry(5).unwrap());
            m.mark(5, DivertMarks::lane_bit(1));
            let mine = m.entry(5).unwrap();
            assert_ne!(
                mine & DivertMarks::lane_bit(1),
                0,
                "the marker sees its lane"
            );
            assert_ne!(mine & DivertMarks::DIVERTED, 0);
            let theirs = other.join().unwrap();
            assert_ne!(theirs & DivertMarks::lane_bit(2), 0, "so does the other");
            let seen = third.join().unwrap();
            assert_eq!(
                seen & DivertMarks::lane_bit(3),
                0,
                "a third lane is never set"
            );
            assert_eq!(seen & DivertMarks::OFFSET, 15);
            assert_eq!(m.entry(5), Some(diverted_by_lanes_1_and_2(15)));
        });
    }
}
