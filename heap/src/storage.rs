//! Where a base heap's words live: owned memory, or a read-only mapping of an image file.
//!
//! The storage is checked once, when a heap is made ([`crate::BaseHeap::from_parts`]): each
//! region (the object words, the offset table) must lie inside it, start on a word boundary in
//! memory and hold a whole number of words. A region is then kept as [`Words`], which the read
//! path indexes by word: one bounds-checked load per word, no byte arithmetic and no alignment
//! test. The host is little-endian (checked at compile time in `lib.rs`), so a word in memory
//! is the word the file holds.

use crate::layout::{self, HEADER_WORDS, INFO_WORD, SIZE_WORD};
use crate::{Format, ObjectSize, Word};

/// The bytes behind a [`crate::BaseHeap`]: owned words or a read-only mapping, behind one
/// cheaply cloned handle (`bytes::Bytes`, which keeps the owner alive and holds the pointer and
/// length inline).
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    bytes: bytes::Bytes,
    mapped: bool,
}

/// Owned words seen as bytes.
struct Owned(Box<[u64]>);

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

impl Storage {
    /// Words built in memory (by [`crate::Builder::freeze`]): aligned to a word.
    pub(crate) fn owned(words: Box<[u64]>) -> Storage {
        Storage {
            bytes: bytes::Bytes::from_owner(Owned(words)),
            mapped: false,
        }
    }

    /// A read-only mapping of a whole image file: aligned to a page.
    pub(crate) fn mapped(map: memmap2::Mmap) -> Storage {
        Storage {
            bytes: bytes::Bytes::from_owner(map),
            mapped: true,
        }
    }

    /// All the bytes.
    #[inline(always)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// True for a mapping.
    pub(crate) fn is_mapped(&self) -> bool {
        self.mapped
    }

    /// Bytes `at..at + len` as words, or `None` unless they lie inside the storage, start on a
    /// word boundary in memory and are a whole number of words long. Time: O(1).
    pub(crate) fn words(&self, at: usize, len: usize) -> Option<Words> {
        let end = at.checked_add(len)?;
        self.bytes.get(at..end)?;
        Words::new(self.bytes.slice(at..end))
    }
}

/// A region of a base heap's storage, read by word.
///
/// Invariant (checked by [`Words::new`], the only constructor): the bytes start on a word
/// boundary in memory and are a whole number of words long, so [`Words::view`] loses nothing
/// and [`Words::slice`] succeeds wherever its range lies inside the region; `view` is those
/// bytes, as words, and `_owner` keeps them alive. Cloning increments a reference count.
///
/// The view is held beside its owner, pointer and length in words, so that a load through it
/// is one bounds test against a length loaded as it is. Taken from the `Bytes` on every read,
/// it cost a shift of the byte length by three besides: measured, 1 instruction of a tenant's
/// undiverted base read (33 -> 32), 2 of its `class_of` (22 -> 20) and 3 of a base heap's own
/// read (33 -> 30), and 0.3% of the interpreter's compile-and-run.
///
/// The owner is behind an `Arc` and never read: a `Bytes` holds an atomic inline, and a
/// value with interior mutability inline makes every struct that holds it (a tenant holds a
/// [`HeapReader`]) mutable behind a shared reference to the compiler, which then loads the
/// tenant's fields again after every call a loop makes (measured: docs/ARCHITECTURE.md, the
/// twenty-fourth step).
#[derive(Debug, Clone)]
pub(crate) struct Words {
    view: &'static [[u8; 8]],
    _owner: std::sync::Arc<bytes::Bytes>,
}

impl Words {
    /// The region `bytes`, or `None` unless it starts on a word boundary in memory and is a
    /// whole number of words long. The one place the view is made, from the very handle
    /// the region then keeps.
    #[allow(
        unsafe_code,
        reason = "a view kept beside the owner of its bytes; see the SAFETY note"
    )]
    fn new(bytes: bytes::Bytes) -> Option<Words> {
        let view: &[[u8; 8]] =
            bytemuck::cast_slice(bytemuck::try_cast_slice::<u8, u64>(&bytes).ok()?);
        // SAFETY: `view` borrows the bytes behind `bytes`, the handle moved into the same
        // `Words` below (into an `Arc`, which only moves the handle again, and which is
        // never read or unwrapped); its lifetime is widened to `'static` only because that
        // borrow cannot be named in a field. The bytes behind a `Bytes` do not move when the
        // handle moves (they are the boxed words of `Storage::owned` or the pages of
        // `Storage::mapped`, shared through the handle's reference count; a `Bytes` keeps
        // no data inline), are never written (`Bytes` has no way to write them; for a
        // mapping see `image::map`'s note), and stay allocated while any handle to them
        // lives, so at least as long as the `Words` that holds this one. Neither field is
        // ever replaced or taken out; cloning a `Words` clones both together. The view is
        // read only through `Words::view`, whose result borrows `self`, so no reference to
        // the bytes outlives their owner.
        let view = unsafe { std::mem::transmute::<&[[u8; 8]], &'static [[u8; 8]]>(view) };
        Some(Words {
            view,
            _owner: std::sync::Arc::new(bytes),
        })
    }

    /// The region as words, each as its eight little-endian bytes: a load through the view
    /// is one bounds check and one (aligned) 8-byte load.
    #[inline(always)]
    fn view(&self) -> &[[u8; 8]] {
        self.view
    }

    /// Word `k`, or `None` past the end. Time: O(1); one load.
    #[inline(always)]
    pub(crate) fn get(&self, k: usize) -> Option<u64> {
        self.view().get(k).map(|w| u64::from_le_bytes(*w))
    }

    /// Number of words.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.view().len()
    }

    /// Every word, in order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.view().iter().map(|w| u64::from_le_bytes(*w))
    }

    /// The region's bytes.
    #[inline(always)]
    pub(crate) fn bytes(&self) -> &[u8] {
        self.view().as_flattened()
    }

    /// Words `at..at + n` as words, or `None` unless they lie inside the region.
    pub(crate) fn slice(&self, at: usize, n: usize) -> Option<&[Word]> {
        let start = at.checked_mul(8)?;
        let end = n.checked_mul(8).and_then(|b| start.checked_add(b))?;
        // Aligned and whole words by the invariant: the cast fails only if it were broken.
        bytemuck::try_cast_slice(self.bytes().get(start..end)?).ok()
    }
}

/// A cheap, cloneable handle for reading a base heap's objects by header offset: the word
/// offset of an object's header in the object words (see
/// [`crate::BaseHeap::header_offsets`]).
///
/// A tenant keeps one in its own record, so its read path reaches the heap's words in one
/// load from the tenant, without going through the shared `Base`. Cloning increments a
/// reference count.
///
/// Every read is total: a wrong offset (a base opened without verification may hold any)
/// reads wrong words of the object region or gives `None`, never a load outside it.
#[derive(Debug, Clone)]
pub struct HeapReader {
    objects: Words,
}

impl HeapReader {
    pub(crate) fn new(objects: Words) -> HeapReader {
        HeapReader { objects }
    }

    /// The object words.
    #[inline(always)]
    pub(crate) fn words(&self) -> &Words {
        &self.objects
    }

    /// The object words borrowed as a [`HeapView`]: the same reads, from a value the caller
    /// can keep in registers. Time: O(1).
    #[inline(always)]
    pub fn view(&self) -> HeapView<'_> {
        HeapView {
            words: self.objects.view(),
        }
    }

    /// Pointer slot `i` of the object whose header is at word offset `offset`, or `None`.
    /// Time: O(1); two loads.
    #[inline(always)]
    pub fn slot_at(&self, offset: u64, i: usize) -> Option<Word> {
        self.view().slot_at(offset, i)
    }

    /// The class of the object whose header is at `offset`, or `None`. Time: O(1); one load.
    #[inline(always)]
    pub fn class_at(&self, offset: u64) -> Option<Word> {
        self.view().class_at(offset)
    }

    /// The size of the object whose header is at `offset`, or `None`. Time: O(1); one load.
    #[inline(always)]
    pub fn size_at(&self, offset: u64) -> Option<ObjectSize> {
        self.view().size_at(offset)
    }

    /// The identity hash of the object whose header is at `offset`, or `None`. Time: O(1);
    /// one load.
    #[inline(always)]
    pub fn hash_at(&self, offset: u64) -> Option<u32> {
        self.view().hash_at(offset)
    }

    /// The format of the object whose header is at `offset`, or `None` (also for an unknown
    /// format code). Time: O(1); one load.
    #[inline(always)]
    pub fn format_at(&self, offset: u64) -> Option<Format> {
        self.view().format_at(offset)
    }

    /// The info word (hash, format, auxiliary bits) of the header at `offset`, or `None`.
    #[inline]
    pub(crate) fn info_at(&self, offset: u64) -> Option<u64> {
        self.view().header_word(offset, INFO_WORD)
    }

    /// The raw bytes of the object whose header is at `offset`, or `None` if its size word
    /// lies outside the object words or its bytes reach past them. Time: O(1); one load.
    #[inline(always)]
    pub fn bytes_at(&self, offset: u64) -> Option<&[u8]> {
        self.view().bytes_at(offset)
    }

    /// The pointer slots of the object whose header is at `offset` (`n` of them), or `None`
    /// if they reach past the object words.
    pub(crate) fn slots_at(&self, offset: u64, n: usize) -> Option<&[Word]> {
        let start = (offset as usize).checked_add(HEADER_WORDS)?;
        self.objects.slice(start, n)
    }
}

/// A base heap's object words, borrowed: the reads of [`HeapReader`] from a plain slice,
/// which a caller's loop can keep in two registers (its address and its length in words)
/// where a `HeapReader` behind a reference is loaded again after every call the loop makes.
///
/// Every read is total, as a `HeapReader`'s is.
///
/// ```
/// let heap = cowheap_heap::synth::image(100, 1);
/// let reader = heap.reader();
/// let view = reader.view();
/// let x = cowheap_heap::ObjectIndex::from_u32(5);
/// let offset = heap.header_offsets().nth(5).unwrap();
/// assert_eq!(view.slot_at(offset, 0), Some(heap.slot_word(x, 0).unwrap()));
/// assert_eq!(view.slot_at(1 << 40, 0), None, "an offset past the words");
/// ```
#[derive(Clone, Copy)]
pub struct HeapView<'a> {
    words: &'a [[u8; 8]],
}

impl std::fmt::Debug for HeapView<'_> {
    /// The number of words, not the words.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapView")
            .field("words", &self.words.len())
            .finish()
    }
}

impl<'a> HeapView<'a> {
    /// Word `k` of the header at `offset`, or `None` outside the object words.
    #[inline(always)]
    fn header_word(self, offset: u64, k: usize) -> Option<u64> {
        // Lossless on a 64-bit host (the crate requires one). Wrapping: an offset near the top
        // of the address space wraps to a small index, which reads wrong words, still inside.
        self.words
            .get((offset as usize).wrapping_add(k))
            .map(|w| u64::from_le_bytes(*w))
    }

    /// Pointer slot `i` of the object whose header is at word offset `offset`, or `None`.
    /// Time: O(1); two loads.
    #[inline(always)]
    pub fn slot_at(self, offset: u64, i: usize) -> Option<Word> {
        let n = layout::slot_count(self.header_word(offset, SIZE_WORD)?);
        if i >= n {
            return None;
        }
        // No overflow: `i` is below 2^32, and the size word's load showed `offset + 1` is an
        // index of the region (or that it wrapped from the top, which `i` cannot reach).
        self.header_word(offset, HEADER_WORDS + i)
            .map(Word::from_bits)
    }

    /// The class of the object whose header is at `offset`, or `None`. Time: O(1); one load.
    #[inline(always)]
    pub fn class_at(self, offset: u64) -> Option<Word> {
        self.header_word(offset, 0).map(Word::from_bits)
    }

    /// The size of the object whose header is at `offset`, or `None`. Time: O(1); one load.
    #[inline(always)]
    pub fn size_at(self, offset: u64) -> Option<ObjectSize> {
        self.header_word(offset, SIZE_WORD).map(layout::size)
    }

    /// The identity hash of the object whose header is at `offset`, or `None`. Time: O(1);
    /// one load.
    #[inline(always)]
    pub fn hash_at(self, offset: u64) -> Option<u32> {
        self.header_word(offset, INFO_WORD).map(layout::hash)
    }

    /// The format of the object whose header is at `offset`, or `None` (also for an unknown
    /// format code). Time: O(1); one load.
    #[inline(always)]
    pub fn format_at(self, offset: u64) -> Option<Format> {
        self.header_word(offset, INFO_WORD).and_then(layout::format)
    }

    /// The raw bytes of the object whose header is at `offset`, or `None` if its size word
    /// lies outside the object words or its bytes reach past them. Time: O(1); one load.
    #[inline(always)]
    pub fn bytes_at(self, offset: u64) -> Option<&'a [u8]> {
        let sizes = self.header_word(offset, SIZE_WORD)?;
        let (slots, bytes) = (layout::slot_count(sizes), layout::byte_count(sizes));
        // Checked: an unverified offset or size may be anything.
        let start = (offset as usize)
            .checked_add(HEADER_WORDS + slots)?
            .checked_mul(8)?;
        self.words
            .as_flattened()
            .get(start..start.checked_add(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(words: &[u64]) -> Storage {
        Storage::owned(words.to_vec().into_boxed_slice())
    }

    #[test]
    fn regions_must_lie_inside_on_word_boundaries() {
        let s = storage(&[1, 2, 3, 4]);
        assert_eq!(s.words(8, 16).map(|w| w.len()), Some(2));
        assert_eq!(s.words(0, 32).map(|w| w.len()), Some(4));
        assert!(s.words(0, 0).is_some_and(|w| w.len() == 0));
        assert!(s.words(8, 32).is_none(), "past the end");
        assert!(s.words(4, 8).is_none(), "not on a word boundary");
        assert!(s.words(8, 12).is_none(), "not whole words");
        assert!(s.words(usize::MAX, 8).is_none(), "overflow");
    }

    #[test]
    fn reads_stay_inside_the_region_at_its_edges() {
        // Two objects: one with two slots and three bytes, one with no body at all.
        let mut words = vec![0xdead];
        let head = |hash| layout::Head {
            class: Word::from_bits(8),
            format: Format::CompiledMethod,
            hash,
            aux: 0,
        };
        let two = [Word::from_bits(16), Word::from_bits(24)];
        layout::encode(head(5), &two, &[7, 8, 9], &mut words).unwrap();
        let second = words.len() as u64 - 1;
        layout::encode(head(6), &[], &[], &mut words).unwrap();
        words.push(0xbeef);
        let s = storage(&words);
        // The region leaves out the first and last words of the storage.
        let r = HeapReader::new(s.words(8, (words.len() - 2) * 8).unwrap());
        assert_eq!(r.slot_at(0, 1), Some(two[1]));
        assert_eq!(r.slot_at(0, 2), None, "past the slot count");
        assert_eq!(r.bytes_at(0), Some(&[7u8, 8, 9][..]));
        assert_eq!(r.slots_at(0, 2), Some(&two[..]));
        assert_eq!(r.hash_at(second), Some(6));
        assert_eq!(r.format_at(second), Some(Format::CompiledMethod));
        assert_eq!(r.bytes_at(second), Some(&[][..]), "empty, at the very end");
        assert_eq!(r.slot_at(second, 0), None);
        // Offsets whose header runs off the region: nothing is read beyond it.
        assert_eq!(r.hash_at(second + 1), None);
        assert_eq!(r.class_at(second + 3), None);
        assert_eq!(r.slot_at(u64::MAX >> 1, 0), None);
        assert_eq!(r.bytes_at(u64::MAX), None);
        assert_eq!(r.slots_at(second, 1), None);
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_region_holds_its_owner_behind_one_pointer() {
        // The view (16 bytes) and one pointer to the owner: a `bytes::Bytes` inline (32
        // bytes, an atomic among them) would make every tenant mutable behind `&` to the
        // compiler, which then reloads a loop's fields at every read (`Words`' docs).
        assert_eq!(std::mem::size_of::<Words>(), 24);
        assert_eq!(std::mem::size_of::<HeapReader>(), 24);
    }

    #[test]
    fn a_region_reads_its_words_after_every_other_handle_is_gone() {
        // A region's view is kept beside the handle that owns its bytes (`Words::new`): it
        // reads the same words once the storage it came from is dropped, and so does a clone
        // once the region itself is, for owned words and for a mapped file alike.
        use std::io::Write;
        let words: Vec<u64> = (0..64u64)
            .map(|k| k.wrapping_mul(0x0101_0101) + 7)
            .collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytemuck::cast_slice(&words)).unwrap();
        file.flush().unwrap();
        let mapped = Storage::mapped(crate::image::map(&file).unwrap());
        drop(file);
        for s in [storage(&words), mapped] {
            let region = s.words(16, 40 * 8).unwrap();
            drop(s);
            let copy = region.clone();
            drop(region);
            assert_eq!(copy.len(), 40);
            assert_eq!(copy.iter().collect::<Vec<_>>(), words[2..42]);
            assert_eq!(copy.get(39), Some(words[41]));
            assert_eq!(copy.get(40), None, "past the region");
            assert_eq!(copy.bytes(), bytemuck::cast_slice::<u64, u8>(&words[2..42]));
        }
    }

    #[test]
    fn a_size_word_that_claims_too_much_reads_nothing_past_the_end() {
        // One header whose size word claims 2^32 - 1 slots and bytes, in a region of 4 words.
        let s = storage(&[8, u64::MAX, 0, 1]);
        let r = HeapReader::new(s.words(0, 32).unwrap());
        assert_eq!(r.slot_at(0, 0).map(Word::bits), Some(1));
        assert_eq!(r.slot_at(0, 1), None);
        assert_eq!(r.slot_at(0, u32::MAX as usize - 1), None);
        assert_eq!(r.bytes_at(0), None);
        assert_eq!(r.slots_at(0, 2), None);
    }
}
