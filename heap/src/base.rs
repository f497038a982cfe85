//! The frozen base heap.
//!
//! All objects live in one region of 64-bit little-endian words, each object a three-word
//! header followed by its pointer slots and then its raw bytes, padded to a word, as
//! [`crate::layout`] draws and encodes them.
//!
//! A second region maps each object index to the word offset of its header. Reading slot `i`
//! of object `x` is three dependent loads (offset, size word, slot) and bounds checks: the
//! same code serves a heap built in memory and one mapped from an image file
//! ([`crate::image`]), which holds exactly these regions.
//!
//! Every load is checked: a heap mapped from a file that was not verified can give wrong
//! answers if the file is corrupt, but never a panic or undefined behaviour.

use crate::layout::{self, HEADER_WORDS, INFO_WORD, SIZE_WORD};
use crate::storage::{HeapReader, Storage, slot_in, u64_at};
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
    /// Byte position and length of the object words in `storage`. Invariant (verified heaps):
    /// a multiple of 8, and the objects tile it exactly.
    pub(crate) objects_at: usize,
    pub(crate) objects_len: usize,
    /// Byte position of the offset table (`len` little-endian u64 word offsets).
    pub(crate) offsets_at: usize,
    pub(crate) len: usize,
    pub(crate) meta: Meta,
    pub(crate) fingerprint: OnceLock<crate::Fingerprint>,
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

const PAST_END: Error = Error::Corrupt("an object reaches past the end of the heap");

impl BaseHeap {
    /// The one constructor of a base heap, used by the builder and by image files: checks
    /// what every read relies on, that the object words and the offset table lie inside the
    /// storage, word-aligned; that there are at most 2^32 objects (what a reference can
    /// name); and that nil and the roots' and immediates' classes name objects. What lies
    /// inside the regions is the builder's or the verifier's to check. Time: O(roots).
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
        let total = storage.bytes().len();
        let inside = |at: usize, n: Option<usize>| {
            at.is_multiple_of(8)
                && n.and_then(|n| at.checked_add(n))
                    .is_some_and(|end| end <= total)
        };
        if !inside(objects_at, Some(objects_len)) || objects_len % 8 != 0 {
            return Err(Error::Corrupt("the object words lie outside the storage"));
        }
        if !inside(offsets_at, len.checked_mul(8)) {
            return Err(Error::Corrupt("the offset table lies outside the storage"));
        }
        if len as u64 > 1 << 32 {
            return Err(Error::TooLarge("more objects than references can name"));
        }
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
        let cell = OnceLock::new();
        if let Some(f) = fingerprint {
            let _ = cell.set(f);
        }
        Ok(BaseHeap {
            storage,
            objects_at,
            objects_len,
            offsets_at,
            len,
            meta,
            fingerprint: cell,
        })
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
        self.objects_len + self.len * 8
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
            None => Err(Error::NotAnObject(w)),
        }
    }

    /// Byte position of object `x`'s header in the storage.
    #[inline]
    fn header_at(&self, b: &[u8], x: ObjectIndex) -> Result<usize> {
        if x.get() >= self.len {
            return Err(Error::NoSuchObject {
                index: x.get() as u64,
                len: self.len as u64,
            });
        }
        let off = u64_at(b, self.offsets_at + x.get() * 8).ok_or(PAST_END)?;
        // Wrapping: an unverified file may hold any offset; a wrong one reads wrong bytes
        // through the checked loads below, never out of bounds.
        Ok(self.objects_at.wrapping_add((off as usize).wrapping_mul(8)))
    }

    /// Pointer slot `i` of object `x`, or `None` for any failure (see
    /// [`BaseHeap::slot_word`] for which). The read path's core: three loads, no error to
    /// build. Time: O(1).
    #[inline(always)]
    pub fn get_slot(&self, x: ObjectIndex, i: usize) -> Option<Word> {
        if x.get() >= self.len {
            return None;
        }
        let off = u64_at(self.storage.bytes(), self.offsets_at + x.get() * 8)?;
        self.get_slot_at(off, i)
    }

    /// Pointer slot `i` of the object whose header is at word offset `offset` (as
    /// [`BaseHeap::header_offsets`] gives), or `None`. For tables that mirror the offsets, so a
    /// reader that already holds the offset saves a load. A wrong offset reads wrong bytes
    /// through checked loads, never out of bounds. Time: O(1); two loads.
    ///
    /// Raw layer, hidden from the documentation: it serves the read barrier of
    /// `cowheap-forwarders` and `cowheap-tenants`, which live in other crates. It is not
    /// part of the API and may change.
    #[doc(hidden)]
    #[inline(always)]
    pub fn get_slot_at(&self, offset: u64, i: usize) -> Option<Word> {
        slot_in(self.storage.bytes(), self.objects_at, offset, i)
    }

    /// A handle that reads this heap's slots by header offset, for a reader to keep in its own
    /// record (see [`HeapReader`]). Time: O(1).
    ///
    /// Raw layer, hidden from the documentation: it serves the read barrier of
    /// `cowheap-forwarders` and `cowheap-tenants`, which live in other crates. It is not
    /// part of the API and may change.
    #[doc(hidden)]
    pub fn reader(&self) -> HeapReader {
        HeapReader::new(self.storage.clone(), self.objects_at)
    }

    /// The word offset of every object's header, in index order. Time: O(objects).
    ///
    /// Raw layer, hidden from the documentation: it serves the read barrier of
    /// `cowheap-forwarders` and `cowheap-tenants`, which live in other crates. It is not
    /// part of the API and may change.
    #[doc(hidden)]
    pub fn header_offsets(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        let b = self.storage.bytes();
        (0..self.len).map(move |x| u64_at(b, self.offsets_at + x * 8).unwrap_or(u64::MAX >> 1))
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
        let b = self.storage.bytes();
        let h = match self.header_at(b, x) {
            Ok(h) => h,
            Err(e) => return e,
        };
        match u64_at(b, h.wrapping_add(SIZE_WORD * 8)) {
            Some(sizes) => self.slot_error(b, h, i, layout::slot_count(sizes)),
            None => PAST_END,
        }
    }

    #[cold]
    fn slot_error(&self, b: &[u8], h: usize, i: usize, n: usize) -> Error {
        match u64_at(b, h.wrapping_add(INFO_WORD * 8)).and_then(layout::format) {
            Some(f) => f.slot_error(i, n),
            None => Error::Corrupt("unknown format code"),
        }
    }

    /// Pointer slot `i` of the object `v` refers to. Time: O(1).
    #[inline]
    pub fn slot(&self, v: Value, i: usize) -> Result<Value> {
        self.slot_word(self.index_of(v)?, i).map(Value::shared)
    }

    /// All of object `x`. Time: O(1).
    pub fn object(&self, x: ObjectIndex) -> Result<ObjectView<'_>> {
        let b = self.storage.bytes();
        let h = self.header_at(b, x)?;
        let class = Word::from_bits(u64_at(b, h).ok_or(PAST_END)?);
        let sizes = u64_at(b, h.wrapping_add(SIZE_WORD * 8)).ok_or(PAST_END)?;
        let (slots, bytes) = (layout::slot_count(sizes), layout::byte_count(sizes));
        let info = u64_at(b, h.wrapping_add(INFO_WORD * 8)).ok_or(PAST_END)?;
        let format = layout::format(info).ok_or(Error::Corrupt("unknown format code"))?;
        let start = h.wrapping_add(HEADER_WORDS * 8);
        let slot_bytes = b
            .get(start..start.wrapping_add(slots * 8))
            .ok_or(PAST_END)?;
        let slots = bytemuck::try_cast_slice(slot_bytes)
            .map_err(|_| Error::Corrupt("an object is not aligned to a word"))?;
        let bytes_at = start + slot_bytes.len();
        let bytes = b
            .get(bytes_at..bytes_at.wrapping_add(bytes))
            .ok_or(PAST_END)?;
        Ok(ObjectView {
            class,
            format,
            hash: layout::hash(info),
            aux: layout::aux(info),
            slots,
            bytes,
        })
    }

    /// The class of object `x`. Time: O(1).
    pub fn class_word(&self, x: ObjectIndex) -> Result<Word> {
        let b = self.storage.bytes();
        let h = self.header_at(b, x)?;
        Ok(Word::from_bits(u64_at(b, h).ok_or(PAST_END)?))
    }

    /// The identity hash of object `x`. Time: O(1).
    pub fn hash(&self, x: ObjectIndex) -> Result<u32> {
        let b = self.storage.bytes();
        let h = self.header_at(b, x)?;
        Ok(layout::hash(
            u64_at(b, h.wrapping_add(INFO_WORD * 8)).ok_or(PAST_END)?,
        ))
    }

    /// The size of object `x`. Time: O(1).
    pub fn size(&self, x: ObjectIndex) -> Result<ObjectSize> {
        let b = self.storage.bytes();
        let h = self.header_at(b, x)?;
        Ok(layout::size(
            u64_at(b, h.wrapping_add(SIZE_WORD * 8)).ok_or(PAST_END)?,
        ))
    }

    /// Every object index, in order.
    pub fn indices(&self) -> impl ExactSizeIterator<Item = ObjectIndex> + '_ {
        (0..self.len as u32).map(ObjectIndex::from_u32)
    }

    /// The bytes of the object region (what an image file's objects section holds).
    pub(crate) fn objects_bytes(&self) -> &[u8] {
        &self.storage.bytes()[self.objects_at..self.objects_at + self.objects_len]
    }

    /// The bytes of the offset table (what an image file's offsets section holds).
    pub(crate) fn offsets_bytes(&self) -> &[u8] {
        &self.storage.bytes()[self.offsets_at..self.offsets_at + self.len * 8]
    }
}

#[cfg(test)]
mod tests {
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
    fn base_heap_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::BaseHeap>();
    }
}
