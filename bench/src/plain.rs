//! The plain heap: the floor for reads and writes.
//!
//! A [`FlatHeap`] is the base laid out as the base heap lays it out (an array of words, each
//! object a three-word header then its slots and bytes, and a table of offsets), but owned and
//! writable, with no tenants, marks or tables. Reading a slot is the same three loads the base
//! heap makes; writing one is a store.
//!
//! Three comparators use it: [`PlainHeap`] is one such heap shared by every thread, written
//! in place by all tenants with no isolation at all (what a reader pays with no indirection);
//! a deep copy gives each tenant a clone of it; the fork probe has each child process inherit
//! one.
//!
//! ```
//! use cowheap_bench::plain::FlatHeap;
//!
//! let base = cowheap::synth::image(2_000, 1);
//! let smalltalk = base.root("Smalltalk").unwrap().as_base().unwrap();
//! let mut flat = FlatHeap::of(&base).unwrap();
//! assert_eq!(flat.read(smalltalk, 0).unwrap(), base.slot_word(smalltalk, 0).unwrap().bits());
//! flat.write(smalltalk, 0, 7).unwrap();
//! assert_eq!(cowheap::Word::from_bits(flat.read(smalltalk, 0).unwrap()).as_int(), Some(7));
//! assert!(flat.read(smalltalk, 1 << 20).is_err());
//! ```

use super::approach::Approach;
use super::{Error, Result};
use cowheap::heap::layout::{self, HEADER_WORDS, INFO_WORD, SIZE_WORD};
use cowheap::heap::{BaseHeap, Format, ObjectIndex, ObjectSize, ObjectView, Word};
use std::sync::atomic::{AtomicU64, Ordering};

/// Appends object `o` to `words` in the base heap's own layout ([`layout`]): header, slots,
/// bytes, the auxiliary bits included.
pub(crate) fn encode(o: &ObjectView<'_>, words: &mut Vec<u64>) -> Result<()> {
    let head = layout::Head {
        class: o.class,
        format: o.format,
        hash: o.hash,
        aux: o.aux,
    };
    Ok(layout::encode(head, o.slots, o.bytes, words)?)
}

/// A writable copy of a base in the base heap's layout; see the module doc.
#[derive(Clone, Debug)]
pub struct FlatHeap {
    words: Vec<u64>,
    /// Invariant: every offset and the object it starts lie inside `words`.
    offsets: Vec<u64>,
}

/// The error of a slot index out of range, outside the hot path.
#[cold]
fn out_of_range(object: ObjectIndex, slot: usize) -> Error {
    Error::OutOfRange {
        object: object.get() as u64,
        slot: slot as u64,
    }
}

/// The word position of slot `slot` of the object at header `o`, if in range.
#[inline]
fn slot_pos(words: &[u64], o: usize, slot: usize) -> Option<usize> {
    let n = layout::slot_count(*words.get(o + SIZE_WORD)?);
    (slot < n).then_some(o + HEADER_WORDS + slot)
}

impl FlatHeap {
    /// A copy of `base`. Time and space: O(size of the base).
    pub fn of(base: &BaseHeap) -> Result<FlatHeap> {
        let mut words = Vec::with_capacity(base.memory_bytes() / 8);
        let mut offsets = Vec::with_capacity(base.len());
        for x in base.indices() {
            offsets.push(words.len() as u64);
            encode(&base.object(x)?, &mut words)?;
        }
        Ok(FlatHeap { words, offsets })
    }

    /// Bytes the heap occupies (words and offsets).
    pub fn memory_bytes(&self) -> usize {
        (self.words.capacity() + self.offsets.capacity()) * 8
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True if the heap holds no object.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    #[inline]
    fn pos(&self, object: ObjectIndex, slot: usize) -> Result<usize> {
        self.offsets
            .get(object.get())
            .and_then(|&o| slot_pos(&self.words, o as usize, slot))
            .ok_or_else(|| out_of_range(object, slot))
    }

    /// The raw word in pointer slot `slot` of `object`. Time: O(1), three loads.
    #[inline]
    pub fn read(&self, object: ObjectIndex, slot: usize) -> Result<u64> {
        Ok(self.words[self.pos(object, slot)?])
    }

    /// Stores the small integer `value` into pointer slot `slot` of `object`. Time: O(1).
    #[inline]
    pub fn write(&mut self, object: ObjectIndex, slot: usize, value: i64) -> Result<()> {
        let p = self.pos(object, slot)?;
        self.words[p] = int_bits(value);
        Ok(())
    }

    /// The raw class word of `object` (a base reference). Time: O(1), two loads.
    #[inline]
    pub fn class(&self, object: ObjectIndex) -> Result<u64> {
        self.offsets
            .get(object.get())
            // The class is the header's first word.
            .and_then(|&o| self.words.get(o as usize))
            .copied()
            .ok_or_else(|| out_of_range(object, 0))
    }

    /// Header word `k` of `object`. Time: O(1), two loads.
    #[inline]
    fn header_word(&self, object: ObjectIndex, k: usize) -> Result<u64> {
        self.offsets
            .get(object.get())
            .and_then(|&o| self.words.get(o as usize + k))
            .copied()
            .ok_or_else(|| out_of_range(object, 0))
    }

    /// The size of `object`: its slot and byte counts, from the header's size word. Time:
    /// O(1), two loads.
    ///
    /// ```
    /// use cowheap_bench::plain::FlatHeap;
    ///
    /// let base = cowheap::synth::image(2_000, 1);
    /// let x = base.root("Smalltalk").unwrap().as_base().unwrap();
    /// let flat = FlatHeap::of(&base).unwrap();
    /// assert_eq!(flat.size(x).unwrap(), base.size(x).unwrap());
    /// assert_eq!(flat.hash(x).unwrap(), base.hash(x).unwrap());
    /// ```
    #[inline]
    pub fn size(&self, object: ObjectIndex) -> Result<ObjectSize> {
        Ok(layout::size(self.header_word(object, SIZE_WORD)?))
    }

    /// The identity hash of `object`, from the header's third word. Time: O(1), two loads.
    #[inline]
    pub fn hash(&self, object: ObjectIndex) -> Result<u32> {
        Ok(layout::hash(self.header_word(object, INFO_WORD)?))
    }

    /// Appends a pointer object of class `class` holding `slots` (hash and auxiliary bits
    /// zero), as a program allocates one; returns its index. Time: O(slots).
    ///
    /// ```
    /// use cowheap_bench::plain::FlatHeap;
    /// use cowheap::Word;
    ///
    /// let base = cowheap::synth::image(2_000, 1);
    /// let x = base.root("Smalltalk").unwrap().as_base().unwrap();
    /// let mut flat = FlatHeap::of(&base).unwrap();
    /// let class = Word::from_bits(flat.class(x).unwrap());
    /// let h = flat.push(class, &[Word::base(x), Word::int(3).unwrap()]).unwrap();
    /// assert_eq!(h.get(), base.len());
    /// assert_eq!(flat.read(h, 0).unwrap(), Word::base(x).bits());
    /// assert_eq!(flat.class(h).unwrap(), class.bits());
    /// assert!(flat.read(h, 2).is_err());
    /// ```
    pub fn push(&mut self, class: Word, slots: &[Word]) -> Result<ObjectIndex> {
        let index = ObjectIndex::new(self.offsets.len()).ok_or(Error::OutOfRange {
            object: self.offsets.len() as u64,
            slot: 0,
        })?;
        let head = layout::Head {
            class,
            format: Format::Pointers,
            hash: 0,
            aux: 0,
        };
        let start = self.words.len();
        layout::encode(head, slots, &[], &mut self.words)?;
        self.offsets.push(start as u64);
        Ok(index)
    }

    /// The object words, for a caller that needs their address range (the fork probe).
    pub fn words(&self) -> &[u64] {
        &self.words
    }
}

/// The bits of the small integer `value`, saturated to the 63-bit range.
#[inline]
pub(crate) fn int_bits(value: i64) -> u64 {
    Word::int(value.clamp(Word::MIN_INT, Word::MAX_INT)).map_or(1, Word::bits)
}

/// One plain heap shared by every tenant and thread: no isolation and no indirection, the
/// floor of what reads and writes cost.
///
/// Its words are atomics so that threads may write it at once without `unsafe`; a relaxed
/// load or store of an aligned `u64` is a plain `mov` on x86-64 and a plain `ldr`/`str` on
/// AArch64, so the floor is not raised by it.
///
/// ```
/// use cowheap_bench::plain::PlainHeap;
///
/// let base = cowheap::synth::image(2_000, 1);
/// let heap = PlainHeap::of(&base).unwrap();
/// let x = base.root("Smalltalk").unwrap().as_base().unwrap();
/// heap.write(x, 0, 3).unwrap();
/// assert_eq!(cowheap::Word::from_bits(heap.read(x, 0).unwrap()).as_int(), Some(3));
/// ```
#[derive(Debug)]
pub struct PlainHeap {
    words: Box<[AtomicU64]>,
    /// Invariant: every offset and the object it starts lie inside `words`.
    offsets: Box<[u64]>,
}

impl PlainHeap {
    /// A shared copy of `base`. Time and space: O(size of the base).
    pub fn of(base: &BaseHeap) -> Result<PlainHeap> {
        let flat = FlatHeap::of(base)?;
        Ok(PlainHeap {
            words: flat.words.into_iter().map(AtomicU64::new).collect(),
            offsets: flat.offsets.into_boxed_slice(),
        })
    }

    /// Bytes the heap occupies.
    pub fn memory_bytes(&self) -> usize {
        (self.words.len() + self.offsets.len()) * 8
    }

    #[inline]
    fn pos(&self, object: ObjectIndex, slot: usize) -> Result<usize> {
        let o = *self
            .offsets
            .get(object.get())
            .ok_or_else(|| out_of_range(object, slot))? as usize;
        // Relaxed: the size word is never written after the heap is made.
        let n = self
            .words
            .get(o + SIZE_WORD)
            .map(|w| layout::slot_count(w.load(Ordering::Relaxed)))
            .ok_or_else(|| out_of_range(object, slot))?;
        if slot < n {
            Ok(o + HEADER_WORDS + slot)
        } else {
            Err(out_of_range(object, slot))
        }
    }

    /// The raw word in pointer slot `slot` of `object`. Time: O(1), three loads.
    #[inline]
    pub fn read(&self, object: ObjectIndex, slot: usize) -> Result<u64> {
        // Relaxed: no isolation is the point of this heap; a racing write is seen or not.
        Ok(self.words[self.pos(object, slot)?].load(Ordering::Relaxed))
    }

    /// Stores the small integer `value` into pointer slot `slot` of `object`. Time: O(1).
    #[inline]
    pub fn write(&self, object: ObjectIndex, slot: usize, value: i64) -> Result<()> {
        // Relaxed: as for `read`; the store publishes nothing else.
        self.words[self.pos(object, slot)?].store(int_bits(value), Ordering::Relaxed);
        Ok(())
    }
}

/// The plain heap as a comparator: a "tenant" is nothing, every tenant works the one heap.
impl Approach for PlainHeap {
    type Tenant = ();

    fn fork(&self) -> Result<()> {
        Ok(())
    }

    #[inline]
    fn read(&self, _: &mut (), object: ObjectIndex, slot: u32) -> Result<Word> {
        PlainHeap::read(self, object, slot as usize).map(Word::from_bits)
    }

    #[inline]
    fn write(&self, _: &mut (), object: ObjectIndex, slot: u32, value: i64) -> Result<()> {
        PlainHeap::write(self, object, slot as usize, value)
    }
}
