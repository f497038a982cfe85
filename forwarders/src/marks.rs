//! Diverted marks: one bit per base object, shared by every tenant of the base.
//!
//! # Memory ordering
//!
//! Both [`DivertMarks::mark`] (`fetch_or`) and [`DivertMarks::is_marked`] (`load`) use
//! `Relaxed`. The argument:
//!
//! - The mark publishes no data. The truth about what a tenant sees is in that tenant's own
//!   indirection table, which only the thread that owns the tenant reads or writes. The mark
//!   only says "look in your table".
//! - The tenant that sets a mark reads it back on the same thread, so program order makes it
//!   visible. A tenant moves to another thread only through something that synchronizes (a
//!   mutex, a channel, a join: safe Rust offers nothing else), and that carries the mark along.
//! - Another tenant that misses a fresh mark reads the base object, which is exactly what it
//!   must see: it has no copy. One that sees the mark looks in its table, finds nothing and
//!   reads the base. Either way it is right, so no ordering with the marker is needed.
//! - Marks are never cleared, and `fetch_or` is a read-modify-write, so two tenants marking
//!   different objects in the same 64-bit word never lose each other's bit.
//!
//! The loom tests at the bottom of this file check the last two points.
//!
//! # Security note
//!
//! The shared bitmap is a side channel: a tenant can time its reads and learn that *some*
//! tenant wrote an object (a marked read takes a table lookup). It cannot learn which tenant
//! or what was written. A host that must not leak even that runs tenants with
//! [`MarkPolicy::Private`]: each tenant then keeps its own small filter (4,096 bits, indexed by
//! object index modulo its size), so only its own writes make its reads slower. A false
//! positive in the filter costs a table lookup, never a wrong answer.

use crate::sync::{AtomicU64, Ordering};
use std::sync::Arc;

/// Which marks a tenant consults on its read path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MarkPolicy {
    /// The base's shared bitmap: one bit per base object, exact. Reads of objects no tenant
    /// has diverted never look in a table. Leaks, through timing, that some tenant diverted
    /// an object (see the module's security note).
    #[default]
    Shared,
    /// A filter of [`DivertMarks::FILTER_BITS`] bits owned by the tenant: no tenant learns
    /// anything of another, at the price of table lookups for objects that share a filter bit
    /// with one this tenant diverted. Costs 512 bytes per tenant.
    Private,
}

/// A bitmap of diverted base objects.
///
/// Cloning a `DivertMarks` shares its bits (they live behind an `Arc`): a tenant holds a clone
/// of its base's bitmap by value, so the read barrier reaches the bits in one load from the
/// tenant itself.
///
/// Invariant: `mask` is `usize::MAX` (exact: one bit per object) or `bits - 1` for a
/// power-of-two `bits` (a filter: index reduced modulo `bits`).
#[derive(Debug, Clone)]
pub struct DivertMarks {
    words: Arc<[AtomicU64]>,
    mask: usize,
}

impl DivertMarks {
    /// Size of a tenant-private filter ([`MarkPolicy::Private`]).
    pub const FILTER_BITS: usize = 4096;

    /// An exact bitmap for `objects` objects, all clear. Time and space: O(objects / 64).
    pub fn exact(objects: usize) -> DivertMarks {
        DivertMarks {
            words: (0..objects.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            mask: usize::MAX,
        }
    }

    /// A filter of [`DivertMarks::FILTER_BITS`] bits, all clear.
    pub fn filter() -> DivertMarks {
        DivertMarks {
            words: (0..Self::FILTER_BITS / 64)
                .map(|_| AtomicU64::new(0))
                .collect(),
            mask: Self::FILTER_BITS - 1,
        }
    }

    /// True if object `index` may be diverted (exact bitmaps: has been diverted by some
    /// tenant). Out-of-range indices are never marked. Time: O(1), one load.
    #[inline(always)]
    pub fn is_marked(&self, index: u32) -> bool {
        let i = index as usize & self.mask;
        match self.words.get(i >> 6) {
            // Relaxed: see the module doc; the mark guards no data.
            Some(w) => w.load(Ordering::Relaxed) & (1 << (i & 63)) != 0,
            None => false,
        }
    }

    /// Marks object `index`; returns true if this call set the bit. Out-of-range indices are
    /// ignored (and return false). Time: O(1).
    #[inline]
    pub fn mark(&self, index: u32) -> bool {
        let i = index as usize & self.mask;
        match self.words.get(i >> 6) {
            // Relaxed: see the module doc. The RMW keeps concurrent marks in one word.
            Some(w) => w.fetch_or(1 << (i & 63), Ordering::Relaxed) & (1 << (i & 63)) == 0,
            None => false,
        }
    }

    /// Number of bits set. Time: O(size / 64).
    pub fn count(&self) -> usize {
        self.words
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }

    /// True if `self` and `other` are the same bits (one is a clone of the other).
    pub fn same_bits(&self, other: &DivertMarks) -> bool {
        Arc::ptr_eq(&self.words, &other.words)
    }

    /// Bytes of memory the bitmap occupies.
    pub fn memory_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn exact_marks_are_exact_and_bounded() {
        let m = DivertMarks::exact(130);
        assert!(!m.is_marked(129));
        assert!(m.mark(129));
        assert!(!m.mark(129), "second mark reports already set");
        assert!(m.is_marked(129) && !m.is_marked(128) && !m.is_marked(1));
        assert!(!m.mark(5000) && !m.is_marked(5000));
        assert_eq!(m.count(), 1);
    }

    #[test]
    fn filters_wrap_indices() {
        let f = DivertMarks::filter();
        f.mark(3);
        assert!(f.is_marked(3 + DivertMarks::FILTER_BITS as u32));
        assert!(!f.is_marked(4));
        assert_eq!(f.memory_bytes(), 512);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Two tenants marking different objects in the same word lose neither bit.
    #[test]
    fn concurrent_marks_in_one_word_are_both_kept() {
        loom::model(|| {
            let m = Arc::new(DivertMarks::exact(64));
            let m2 = m.clone();
            let t = thread::spawn(move || m2.mark(3));
            let mine = m.mark(7);
            let theirs = t.join().unwrap();
            assert!(mine && theirs);
            assert!(m.is_marked(3) && m.is_marked(7));
            assert_eq!(m.count(), 2);
        });
    }

    /// Two tenants marking the same object: exactly one is told it set the bit.
    #[test]
    fn racing_marks_of_one_object_set_it_once() {
        loom::model(|| {
            let m = Arc::new(DivertMarks::exact(64));
            let m2 = m.clone();
            let t = thread::spawn(move || m2.mark(9));
            let a = m.mark(9);
            let b = t.join().unwrap();
            assert!(a ^ b);
            assert!(m.is_marked(9));
        });
    }

    /// A reader racing a marker sees the mark or not; the marker always sees its own.
    #[test]
    fn marker_sees_its_own_mark_and_reader_sees_either() {
        loom::model(|| {
            let m = Arc::new(DivertMarks::exact(128));
            let m2 = m.clone();
            let reader = thread::spawn(move || m2.is_marked(70));
            m.mark(70);
            assert!(m.is_marked(70));
            let _either = reader.join().unwrap();
            assert!(!m.is_marked(71));
        });
    }
}
