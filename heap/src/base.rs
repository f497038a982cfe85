//! The frozen base heap.
//!
//! All objects live in one array of 64-bit words, each object a three-word header followed
//! by its pointer slots and then its raw bytes, padded to a word:
//!
//! ```text
//! word 0   class (a Word: a base reference)
//! word 1   pointer slot count (low 32 bits) | raw byte count (high 32 bits)
//! word 2   identity hash (low 32 bits) | format code (bits 32..40) | reserved
//! word 3.. pointer slots, then raw bytes little-endian
//! ```
//!
//! A second array maps each object index to the word offset of its header. Reading slot `i`
//! of object `x` is three dependent loads (offset, size word, slot) and one bounds check: the
//! same code serves a plain read of the base and a tenant's read of an undiverted object.
//! The layout is the one an image file maps into memory unchanged.

use crate::{Error, Format, ObjectIndex, ObjectSize, Result, Value, Word};

/// Words in an object header.
pub(crate) const HEADER_WORDS: usize = 3;

/// A named root of a base heap: an entry point for finding one's way into the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// The root's name, unique in its base.
    pub name: String,
    /// What it refers to: an immediate or a base reference.
    pub value: Word,
}

/// An immutable heap of objects, made by [`crate::Builder::freeze`].
///
/// `BaseHeap` is `Send + Sync` and never written after it is made: share it with `Arc`. Every
/// read is a bounds-checked load from two flat arrays; no read allocates, hashes or locks.
#[derive(Debug)]
pub struct BaseHeap {
    /// Headers, slots and bytes of every object (see the module doc).
    words: Box<[u64]>,
    /// Word offset of each object's header in `words`. Invariant: every offset and the
    /// object it starts lies inside `words`, and its header decodes (checked by `freeze`).
    offsets: Box<[u64]>,
    roots: Vec<Root>,
    nil: ObjectIndex,
    int_class: Option<Word>,
    char_class: Option<Word>,
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

impl BaseHeap {
    pub(crate) fn from_parts(
        words: Box<[u64]>,
        offsets: Box<[u64]>,
        roots: Vec<Root>,
        nil: ObjectIndex,
        int_class: Option<Word>,
        char_class: Option<Word>,
    ) -> BaseHeap {
        BaseHeap {
            words,
            offsets,
            roots,
            nil,
            int_class,
            char_class,
        }
    }

    /// Number of objects. Time: O(1).
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True if the base holds no objects (a frozen base always holds nil, so never).
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Bytes of memory the base occupies (object words and the offset table).
    pub fn memory_bytes(&self) -> usize {
        (self.words.len() + self.offsets.len()) * 8
    }

    /// The nil object.
    pub fn nil(&self) -> Value {
        Value::base(self.nil)
    }

    /// The class of small integers, if the base names one.
    pub fn int_class(&self) -> Option<Value> {
        self.int_class.map(Value::shared)
    }

    /// The class of characters, if the base names one.
    pub fn char_class(&self) -> Option<Value> {
        self.char_class.map(Value::shared)
    }

    /// The named roots, in the order they were added; the first is the base's main root.
    pub fn roots(&self) -> &[Root] {
        &self.roots
    }

    /// The root named `name`. Time: O(roots).
    pub fn root(&self, name: &str) -> Option<Value> {
        self.roots
            .iter()
            .find(|r| r.name == name)
            .map(|r| Value::shared(r.value))
    }

    /// The base index `v` refers to, or why it does not refer to a base object.
    pub fn index_of(&self, v: Value) -> Result<ObjectIndex> {
        let w = v.word();
        match w.as_base() {
            Some(i) if i.get() < self.len() => Ok(i),
            Some(i) => Err(Error::NoSuchObject {
                index: i.get() as u64,
                len: self.len() as u64,
            }),
            None if w.is_private() => Err(Error::PrivateInBase(w)),
            None => Err(Error::NotAnObject(w)),
        }
    }

    /// Header offset of object `x`.
    #[inline]
    fn offset(&self, x: ObjectIndex) -> Result<usize> {
        match self.offsets.get(x.get()) {
            Some(&o) => Ok(o as usize),
            None => Err(Error::NoSuchObject {
                index: x.get() as u64,
                len: self.len() as u64,
            }),
        }
    }

    /// Pointer slot `i` of object `x`. Time: O(1); three loads.
    #[inline]
    pub fn slot_word(&self, x: ObjectIndex, i: usize) -> Result<Word> {
        let o = self.offset(x)?;
        let n = (self.words[o + 1] & 0xffff_ffff) as usize;
        if i < n {
            Ok(Word::from_bits(self.words[o + HEADER_WORDS + i]))
        } else {
            Err(self.slot_error(o, i, n))
        }
    }

    #[cold]
    fn slot_error(&self, o: usize, i: usize, n: usize) -> Error {
        match Format::from_code((self.words[o + 2] >> 32) as u8) {
            Some(f) => f.slot_error(i, n),
            None => Error::Corrupt("unknown format code"),
        }
    }

    /// Pointer slot `i` of the object `v` refers to. Time: O(1).
    pub fn slot(&self, v: Value, i: usize) -> Result<Value> {
        self.slot_word(self.index_of(v)?, i).map(Value::shared)
    }

    /// All of object `x`. Time: O(1).
    pub fn object(&self, x: ObjectIndex) -> Result<ObjectView<'_>> {
        let o = self.offset(x)?;
        let class = Word::from_bits(self.words[o]);
        let sizes = self.words[o + 1];
        let (slots, bytes) = ((sizes & 0xffff_ffff) as usize, (sizes >> 32) as usize);
        let h2 = self.words[o + 2];
        let format =
            Format::from_code((h2 >> 32) as u8).ok_or(Error::Corrupt("unknown format code"))?;
        let start = o + HEADER_WORDS;
        let slot_words = &self.words[start..start + slots];
        let byte_words = &self.words[start + slots..start + slots + bytes.div_ceil(8)];
        Ok(ObjectView {
            class,
            format,
            hash: h2 as u32,
            slots: bytemuck::cast_slice(slot_words),
            bytes: &bytemuck::cast_slice::<u64, u8>(byte_words)[..bytes],
        })
    }

    /// The class of object `x`. Time: O(1).
    pub fn class_word(&self, x: ObjectIndex) -> Result<Word> {
        Ok(Word::from_bits(self.words[self.offset(x)?]))
    }

    /// The identity hash of object `x`. Time: O(1).
    pub fn hash(&self, x: ObjectIndex) -> Result<u32> {
        Ok(self.words[self.offset(x)? + 2] as u32)
    }

    /// The size of object `x`. Time: O(1).
    pub fn size(&self, x: ObjectIndex) -> Result<ObjectSize> {
        let sizes = self.words[self.offset(x)? + 1];
        Ok(ObjectSize {
            slots: (sizes & 0xffff_ffff) as usize,
            bytes: (sizes >> 32) as usize,
        })
    }

    /// Every object index, in order.
    pub fn indices(&self) -> impl ExactSizeIterator<Item = ObjectIndex> + '_ {
        (0..self.len() as u32).map(ObjectIndex::from_u32)
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
