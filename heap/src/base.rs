//! The frozen base heap.
//!
//! All objects live in one region of 64-bit little-endian words, each object a three-word
//! header followed by its pointer slots and then its raw bytes, padded to a word, as
//! [`crate::layout`] draws and encodes them.
//!
//! A second region maps each object index to the word offset of its header. Reading slot `i`
//! of object `x` is three dependent loads (offset, size word, slot), each one bounds-checked
//! index into a region seen as words ([`crate::storage`]): the same code serves a heap built
//! in memory and one mapped from an image file ([`crate::image`]), which holds exactly these
//! regions.
//!
//! Every load is checked and lands inside its region: a heap mapped from a file that was not
//! verified can give wrong answers if the file is corrupt, but never a panic or undefined
//! behaviour.

use crate::layout;
use crate::storage::{HeapReader, Storage, Words};
use crate::{Error, Format, ObjectIndex, ObjectSize, Result, Value, Word};
use std::sync::OnceLock;

/// A named root of a base heap: an entry point for finding one's way into the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// The root's name, unique in its base.
    pub name: String,
    /// What it refers to: an immediate or a base reference.
    pub value: Word,
}

/// The root that names the width, in bits, of the identity hashes a tenant draws for the
/// objects it makes on this base ([`BaseHeap::hash_bits`]): a small integer from 1 to
/// [`MAX_HASH_BITS`]. An importer of a format whose headers hold narrower hashes sets it
/// (Squeak V3's 12 bits), so that what a tenant makes can be written back in that format
/// and answers the hashes that format's own code expects.
pub const HASH_BITS_ROOT: &str = "heap.hashBits";

/// The widest identity hash a tenant draws, and the width of those it draws on a base
/// without a [`HASH_BITS_ROOT`] (Squeak Spur's 22 bits).
pub const MAX_HASH_BITS: u32 = 22;

/// The identity hash of the `n`th object made on a base whose hashes are `bits` wide (1 to
/// [`MAX_HASH_BITS`], [`BaseHeap::hash_bits`]): a splitmix64 finaliser of `n`, never 0
/// (which Squeak Spur's headers take for a hash not yet given). It depends on `n` and
/// `bits` alone, so the same work gives the same hashes in every run and process, and on
/// every memory that makes objects (a tenant, the interpreter's flat heap).
///
/// ```
/// use cowheap_heap::draw_hash;
///
/// assert_eq!(draw_hash(7, 12), draw_hash(7, 12));
/// assert!((1..4_096).contains(&draw_hash(7, 12)));
/// ```
pub fn draw_hash(n: u64, bits: u32) -> u32 {
    let mut z = n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let mask = (1u64 << bits.clamp(1, MAX_HASH_BITS)) - 1;
    #[expect(clippy::cast_possible_truncation, reason = "masked to at most 22 bits")]
    let h = ((z ^ (z >> 31)) & mask) as u32;
    h.max(1)
}

/// What a base holds beside its objects: nil, the classes of immediates, the roots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) nil: ObjectIndex,
    pub(crate) int_class: Option<Word>,
    pub(crate) char_class: Option<Word>,
    pub(crate) float_class: Option<Word>,
    pub(crate) roots: Vec<Root>,
}

/// An immutable heap of objects, made by [`crate::Builder::freeze`] or mapped from an image
/// file by [`BaseHeap::open`].
///
/// `BaseHeap` is `Send + Sync` and never written after it is made: share it with `Arc`. Every
/// read is a bounds-checked load from flat regions; no read allocates, hashes or locks.
#[derive(Debug)]
pub struct BaseHeap {
    pub(crate) storage: Storage,
    /// The object words, read by header offset. Invariant (verified heaps): the objects tile
    /// them exactly.
    pub(crate) objects: HeapReader,
    /// The offset table: exactly `len` words, the word offset of each object's header.
    pub(crate) offsets: Words,
    pub(crate) len: usize,
    pub(crate) meta: Meta,
    pub(crate) fingerprint: OnceLock<crate::Fingerprint>,
    /// Opened with [`crate::Verification::Trust`]: what lies inside the regions was not
    /// checked ([`BaseHeap::is_trusted`]).
    pub(crate) trusted: bool,
    /// The width of the identity hashes a tenant draws ([`BaseHeap::hash_bits`]).
    hash_bits: u32,
}

/// A borrowed view of one base object.
#[derive(Clone, Copy, Debug)]
pub struct ObjectView<'a> {
    /// The object's class.
    pub class: Word,
    /// The object's format.
    pub format: Format,
    /// The object's identity hash.
    pub hash: u32,
    /// The auxiliary bits ([`crate::Builder::set_aux`]).
    pub aux: u32,
    /// The pointer slots.
    pub slots: &'a [Word],
    /// The raw bytes.
    pub bytes: &'a [u8],
}

impl ObjectView<'_> {
    /// The object's size.
    pub fn size(&self) -> ObjectSize {
        ObjectSize {
            slots: self.slots.len(),
            bytes: self.bytes.len(),
        }
    }
}

/// Where a base heap's regions lie in its storage, in bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Regions {
    /// Byte position of the object words.
    pub(crate) objects_at: usize,
    /// Byte length of the object words.
    pub(crate) objects_len: usize,
    /// Byte position of the offset table.
    pub(crate) offsets_at: usize,
    /// Number of objects (and of offsets).
    pub(crate) len: usize,
}

/// The most object words a base heap holds: a header offset is kept in 40 bits of a
/// tenant's mark word, and the largest such offset, 2^40 - 1, is kept past every heap (it
/// stands for an offset no read can use, which a corrupt file opened trusted may hold).
pub const MAX_OBJECT_WORDS: u64 = (1 << 40) - 1;

/// Refuses an object region of more than [`MAX_OBJECT_WORDS`] words (`bytes` long): a header
/// offset is kept in 40 bits of a tenant's mark word (the forwarders crate's `DivertMarks`),
/// the bits above it being the marks'.
fn within_marks(bytes: usize) -> Result<()> {
    if bytes as u64 / 8 > MAX_OBJECT_WORDS {
        return Err(Error::TooLarge(
            "more object words than a mark can place (2^40 - 1)",
        ));
    }
    Ok(())
}

const PAST_END: Error = Error::Corrupt("an object reaches past the end of the heap");

impl BaseHeap {
    /// The one constructor of a base heap, used by the builder and by image files: checks
    /// what every read relies on, that the object words and the offset table lie inside the
    /// storage, word-aligned; that there are at most 2^32 objects (what a reference can
    /// name) and at most [`MAX_OBJECT_WORDS`] object words; and that nil and the roots' and
    /// immediates' classes name objects. What lies inside the regions is the builder's or
    /// the verifier's to check. Time: O(roots).
    pub(crate) fn from_parts(
        storage: Storage,
        regions: Regions,
        meta: Meta,
        fingerprint: Option<crate::Fingerprint>,
    ) -> Result<BaseHeap> {
        let Regions {
            objects_at,
            objects_len,
            offsets_at,
            len,
        } = regions;
        // Each region inside the storage, on a word boundary in memory, whole words: what
        // every read's single bounds check relies on.
        let objects = storage
            .words(objects_at, objects_len)
            .ok_or(Error::Corrupt("the object words lie outside the storage"))?;
        let offsets = len
            .checked_mul(8)
            .and_then(|n| storage.words(offsets_at, n))
            .ok_or(Error::Corrupt("the offset table lies outside the storage"))?;
        if len as u64 > 1 << 32 {
            return Err(Error::TooLarge("more objects than references can name"));
        }
        within_marks(objects_len)?;
        let names_object = |w: Word| matches!(w.as_base(), Some(x) if x.get() < len);
        if meta.nil.get() >= len {
            return Err(Error::Corrupt("nil is not an object"));
        }
        let classes = [meta.int_class, meta.char_class, meta.float_class];
        if !classes.into_iter().flatten().all(names_object) {
            return Err(Error::Corrupt("the class of an immediate is not an object"));
        }
        if !meta
            .roots
            .iter()
            .all(|r| r.value.is_immediate() || names_object(r.value))
        {
            return Err(Error::Corrupt("a root refers outside the heap"));
        }
        let hash_bits = match meta.roots.iter().find(|r| r.name == HASH_BITS_ROOT) {
            None => MAX_HASH_BITS,
            Some(r) => r
                .value
                .as_int()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=MAX_HASH_BITS).contains(n))
                .ok_or(Error::Corrupt(
                    "the identity hash width root is not a small integer from 1 to 22",
                ))?,
        };
        let cell = OnceLock::new();
        if let Some(f) = fingerprint {
            let _ = cell.set(f);
        }
        Ok(BaseHeap {
            storage,
            objects: HeapReader::new(objects),
            offsets,
            len,
            meta,
            fingerprint: cell,
            trusted: false,
            hash_bits,
        })
    }

    /// The width, in bits, of the identity hashes a tenant draws for the objects it makes
    /// on this base: [`HASH_BITS_ROOT`]'s value if the base has that root, else
    /// [`MAX_HASH_BITS`]. Time: O(1).
    ///
    /// ```
    /// use cowheap_heap::{synth, MAX_HASH_BITS};
    ///
    /// assert_eq!(synth::image(100, 1).hash_bits(), MAX_HASH_BITS);
    /// ```
    pub fn hash_bits(&self) -> u32 {
        self.hash_bits
    }

    /// Number of objects. Time: O(1).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the base holds no objects (a valid base always holds nil, so never).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of memory (or mapping) the objects and the offset table occupy.
    pub fn memory_bytes(&self) -> usize {
        self.objects_bytes().len() + self.offsets.bytes().len()
    }

    /// True if the heap was opened with [`crate::Verification::Trust`]: its objects were not
    /// checked, so a slot or a class word may hold a reference past the end (or a private
    /// reference, or an invalid word), which a tenant refuses to copy. False for a heap
    /// built in memory or opened with full verification, whose references all name
    /// objects.
    ///
    /// ```
    /// use cowheap_heap::{BaseHeap, Verification, synth};
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("base.cowheap");
    /// synth::image(100, 1).save(&path).unwrap();
    /// assert!(!BaseHeap::open(&path).unwrap().is_trusted());
    /// assert!(BaseHeap::open_with(&path, Verification::Trust).unwrap().is_trusted());
    /// ```
    pub fn is_trusted(&self) -> bool {
        self.trusted
    }

    /// True if the heap is served from a mapped image file.
    pub fn is_mapped(&self) -> bool {
        self.storage.is_mapped()
    }

    /// The nil object.
    pub fn nil(&self) -> Value {
        Value::base(self.meta.nil)
    }

    /// The class of small integers, if the base names one.
    pub fn int_class(&self) -> Option<Value> {
        self.meta.int_class.map(Value::shared)
    }

    /// The class of characters, if the base names one.
    pub fn char_class(&self) -> Option<Value> {
        self.meta.char_class.map(Value::shared)
    }

    /// The class of immediate floats (Spur's SmallFloat64), if the base names one.
    pub fn float_class(&self) -> Option<Value> {
        self.meta.float_class.map(Value::shared)
    }

    /// The named roots, in the order they were added; the first is the base's main root.
    pub fn roots(&self) -> &[Root] {
        &self.meta.roots
    }

    /// The root named `name`. Time: O(roots).
    pub fn root(&self, name: &str) -> Option<Value> {
        self.meta
            .roots
            .iter()
            .find(|r| r.name == name)
            .map(|r| Value::shared(r.value))
    }

    /// The base index `v` refers to, or why it does not refer to a base object.
    #[inline]
    pub fn index_of(&self, v: Value) -> Result<ObjectIndex> {
        let w = v.word();
        match w.as_base() {
            Some(i) if i.get() < self.len => Ok(i),
            Some(i) => Err(Error::NoSuchObject {
                index: i.get() as u64,
                len: self.len as u64,
            }),
            None if w.is_private() => Err(Error::PrivateInBase(w)),
            None if !w.is_valid() => Err(Error::InvalidWord(w)),
            None => Err(Error::NotAnObject(w)),
        }
    }

    /// The word offset of object `x`'s header in the object words.
    #[inline]
    fn header(&self, x: ObjectIndex) -> Result<u64> {
        // The offset table holds exactly `len` words (checked by `from_parts`).
        self.offsets.get(x.get()).ok_or(Error::NoSuchObject {
            index: x.get() as u64,
            len: self.len as u64,
        })
    }

    /// Pointer slot `i` of object `x`, or `None` for any failure (see
    /// [`BaseHeap::slot_word`] for which). The read path's core: three loads, no error to
    /// build. Time: O(1).
    #[inline(always)]
    pub fn get_slot(&self, x: ObjectIndex, i: usize) -> Option<Word> {
        // One check serves: the offset table holds exactly `len` words.
        let off = self.offsets.get(x.get())?;
        self.objects.slot_at(off, i)
    }

    /// Pointer slot `i` of the object whose header is at word offset `offset` (as
    /// [`BaseHeap::header_offsets`] gives), or `None`. For tables that mirror the offsets, so a
    /// reader that already holds the offset saves a load. A wrong offset reads wrong words of
    /// the object region, never outside it. Time: O(1); two loads.
    ///
    /// Raw layer, hidden from the documentation: it serves the read barrier of
    /// `cowheap-forwarders` and `cowheap-tenants`, which live in other crates. It is not
    /// part of the API and may change.
    #[doc(hidden)]
    #[inline(always)]
    pub fn get_slot_at(&self, offset: u64, i: usize) -> Option<Word> {
        self.objects.slot_at(offset, i)
    }

    /// A handle that reads this heap's objects by header offset, for a reader to keep in its
    /// own record (see [`HeapReader`]). Time: O(1).
    ///
    /// Raw layer, hidden from the documentation: it serves the read barrier of
    /// `cowheap-forwarders` and `cowheap-tenants`, which live in other crates. It is not
    /// part of the API and may change.
    #[doc(hidden)]
    pub fn reader(&self) -> HeapReader {
        self.objects.clone()
    }

    /// The word offset of every object's header, in index order. Time: O(objects).
    ///
    /// Raw layer, hidden from the documentation: it serves the read barrier of
    /// `cowheap-forwarders` and `cowheap-tenants`, which live in other crates. It is not
    /// part of the API and may change.
    #[doc(hidden)]
    pub fn header_offsets(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.offsets.iter()
    }

    /// Pointer slot `i` of object `x`. Time: O(1); three loads.
    #[inline]
    pub fn slot_word(&self, x: ObjectIndex, i: usize) -> Result<Word> {
        match self.get_slot(x, i) {
            Some(w) => Ok(w),
            None => Err(self.slot_failure(x, i)),
        }
    }

    /// Why [`BaseHeap::get_slot`] found nothing.
    #[cold]
    #[inline(never)]
    fn slot_failure(&self, x: ObjectIndex, i: usize) -> Error {
        let off = match self.header(x) {
            Ok(off) => off,
            Err(e) => return e,
        };
        let Some(size) = self.objects.size_at(off) else {
            return PAST_END;
        };
        match self.objects.info_at(off).map(layout::format) {
            Some(Some(f)) if i >= size.slots => f.slot_error(i, size.slots),
            Some(None) => Error::Corrupt("unknown format code"),
            // In range of the size word, yet the slot lies past the object words.
            _ => PAST_END,
        }
    }

    /// Pointer slot `i` of the object `v` refers to. Time: O(1).
    #[inline]
    pub fn slot(&self, v: Value, i: usize) -> Result<Value> {
        self.slot_word(self.index_of(v)?, i).map(Value::shared)
    }

    /// All of object `x`. Time: O(1).
    pub fn object(&self, x: ObjectIndex) -> Result<ObjectView<'_>> {
        let off = self.header(x)?;
        let r = &self.objects;
        let class = r.class_at(off).ok_or(PAST_END)?;
        let size = r.size_at(off).ok_or(PAST_END)?;
        let info = r.info_at(off).ok_or(PAST_END)?;
        let format = layout::format(info).ok_or(Error::Corrupt("unknown format code"))?;
        let slots = r.slots_at(off, size.slots).ok_or(PAST_END)?;
        let bytes = r.bytes_at(off).ok_or(PAST_END)?;
        Ok(ObjectView {
            class,
            format,
            hash: layout::hash(info),
            aux: layout::aux(info),
            slots,
            bytes,
        })
    }

    /// The class of object `x`. Time: O(1); two loads.
    pub fn class_word(&self, x: ObjectIndex) -> Result<Word> {
        self.objects.class_at(self.header(x)?).ok_or(PAST_END)
    }

    /// The identity hash of object `x`. Time: O(1); two loads.
    pub fn hash(&self, x: ObjectIndex) -> Result<u32> {
        self.objects.hash_at(self.header(x)?).ok_or(PAST_END)
    }

    /// The size of object `x`. Time: O(1); two loads.
    pub fn size(&self, x: ObjectIndex) -> Result<ObjectSize> {
        self.objects.size_at(self.header(x)?).ok_or(PAST_END)
    }

    /// The format of object `x`. Time: O(1); two loads.
    pub fn format(&self, x: ObjectIndex) -> Result<Format> {
        let info = self.objects.info_at(self.header(x)?).ok_or(PAST_END)?;
        layout::format(info).ok_or(Error::Corrupt("unknown format code"))
    }

    /// The raw bytes of object `x`. Time: O(1); two loads.
    pub fn bytes(&self, x: ObjectIndex) -> Result<&[u8]> {
        self.objects.bytes_at(self.header(x)?).ok_or(PAST_END)
    }

    /// Every object index, in order.
    pub fn indices(&self) -> impl ExactSizeIterator<Item = ObjectIndex> + '_ {
        // Over `usize`: a heap may hold 2^32 objects, whose count is no `u32`; every index is.
        (0..self.len).map(|i| ObjectIndex::from_u32(i as u32))
    }

    /// The bytes of the object region (what an image file's objects section holds).
    pub(crate) fn objects_bytes(&self) -> &[u8] {
        self.objects.words().bytes()
    }

    /// The bytes of the offset table (what an image file's offsets section holds).
    pub(crate) fn offsets_bytes(&self) -> &[u8] {
        self.offsets.bytes()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_object_region_past_what_a_mark_can_place_is_refused() {
        let words = super::MAX_OBJECT_WORDS as usize;
        assert!(super::within_marks(words * 8).is_ok());
        assert!(matches!(
            super::within_marks((words + 1) * 8),
            Err(super::Error::TooLarge(_))
        ));
    }

    use crate::{Builder, Error, Format, Value, Word};

    #[test]
    fn reads_check_every_index() {
        let mut b = Builder::new();
        let nil = b.add_nil();
        let s = b
            .add(
                nil,
                Format::CompiledMethod,
                vec![Word::int(7).unwrap()],
                vec![1, 2, 3],
            )
            .unwrap();
        let base = b.freeze().unwrap();
        let sv = Value::shared(s);
        assert_eq!(base.slot(sv, 0).unwrap().as_int(), Some(7));
        assert_eq!(
            base.slot(sv, 1).unwrap_err(),
            Error::SlotOutOfRange { index: 1, len: 1 }
        );
        let x = base.index_of(sv).unwrap();
        assert_eq!(base.object(x).unwrap().bytes, &[1, 2, 3]);
        assert!(matches!(
            base.slot(Value::int(3), 0),
            Err(Error::NotAnObject(_))
        ));
        let far = Value::base(crate::ObjectIndex::from_u32(99));
        assert!(matches!(
            base.slot(far, 0),
            Err(Error::NoSuchObject { index: 99, len: 2 })
        ));
    }

    #[test]
    fn a_mapped_heap_reads_as_the_built_one_up_to_the_edges_of_its_regions() {
        let built = crate::synth::image(500, 5);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edges.cowheap");
        built.save(&path).unwrap();
        for v in [crate::Verification::Full, crate::Verification::Trust] {
            let mapped = crate::BaseHeap::open_with(&path, v).unwrap();
            assert!(mapped.is_mapped());
            assert_eq!(mapped.header_offsets().len(), built.len());
            // Every object, the first and the last (whose body ends the object words) included.
            for x in built.indices() {
                let (a, b) = (built.object(x).unwrap(), mapped.object(x).unwrap());
                assert_eq!((a.class, a.format, a.hash), (b.class, b.format, b.hash));
                assert_eq!((a.slots, a.bytes), (b.slots, b.bytes));
                assert_eq!(mapped.bytes(x).unwrap(), a.bytes);
                assert_eq!(mapped.format(x).unwrap(), a.format);
                let n = a.slots.len();
                if n > 0 {
                    assert_eq!(mapped.get_slot(x, n - 1), Some(a.slots[n - 1]));
                }
                assert_eq!(mapped.get_slot(x, n), None);
            }
            let past = crate::ObjectIndex::from_u32(built.len() as u32);
            assert_eq!(mapped.get_slot(past, 0), None);
            assert!(matches!(
                mapped.bytes(past),
                Err(Error::NoSuchObject { .. })
            ));
            // The last object's header offset, and offsets past it: nothing read beyond.
            let r = mapped.reader();
            let last = mapped.header_offsets().last().unwrap();
            assert!(r.class_at(last).is_some());
            let words = (mapped.objects_bytes().len() / 8) as u64;
            assert_eq!(r.class_at(words), None);
            assert_eq!(r.size_at(words - 1), None);
            assert_eq!(r.slot_at(words - 3, 0), None);
        }
    }

    #[test]
    fn base_heap_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::BaseHeap>();
    }
}
