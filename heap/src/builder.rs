//! Building a base heap.

use crate::base::{BaseHeap, Meta, Regions, Root};
use crate::layout::{self, Head};
use crate::storage::Storage;
use crate::{Decoded, Error, Format, ObjectIndex, ObjectSize, Result, Word};

/// An object under construction.
#[derive(Clone, Debug)]
struct Proto {
    class: Word,
    format: Format,
    hash: u32,
    aux: u32,
    slots: Vec<Word>,
    bytes: Vec<u8>,
}

/// Makes a [`BaseHeap`]: add objects, wire them up, then [`Builder::freeze`].
///
/// Objects may refer to objects not yet added (classes are often made after their
/// instances); `freeze` checks that every reference lands on an object.
///
/// Identity hashes default to a 22-bit mix of the object's index; set them with
/// [`Builder::set_hash`] to keep the hashes of an imported image.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    objects: Vec<Proto>,
    roots: Vec<Root>,
    /// The roots' names, for the duplicate check in O(1) (an importer may add one root per
    /// object).
    root_names: std::collections::HashSet<String>,
    nil: Option<ObjectIndex>,
    int_class: Option<Word>,
    char_class: Option<Word>,
    float_class: Option<Word>,
}

/// [`Error::OutOfMemory`] for `n` items of `T`.
fn out_of_memory<T>(n: usize) -> Error {
    Error::OutOfMemory {
        bytes: u64::try_from(n.saturating_mul(std::mem::size_of::<T>())).unwrap_or(u64::MAX),
    }
}

/// The default identity hash of the object at `index`: 22 bits, as Spur images have, and
/// never 0, which Spur reads as no hash given yet (and, for a class, as one it never
/// entered in its class table). The product's top bits are 0 for 1,024 of the 2^32
/// indices, the first one past 18 million objects; those take 1.
pub(crate) fn default_hash(index: u32) -> u32 {
    (index.wrapping_add(1).wrapping_mul(0x9E37_79B1) >> 10).max(1)
}

impl Builder {
    /// An empty builder.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Number of objects added so far.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True if no object has been added.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Adds the nil object (no slots; its class is itself until [`Builder::set_class`]) and
    /// makes it the base's nil. Every base needs one: new objects' slots start as nil.
    pub fn add_nil(&mut self) -> Word {
        let index = ObjectIndex::from_u32(self.objects.len() as u32);
        let w = Word::base(index);
        self.objects.push(Proto {
            class: w,
            format: Format::Pointers,
            hash: default_hash(index.as_u32()),
            aux: 0,
            slots: Vec::new(),
            bytes: Vec::new(),
        });
        self.nil = Some(index);
        w
    }

    /// Makes the object `obj`, already added, the base's nil (for a heap rebuilt from another,
    /// whose nil may have slots or bytes).
    ///
    /// # Errors
    /// [`Error::NoSuchObject`] if `obj` has not been added; [`Error::NotAnObject`] for an
    /// immediate, [`Error::PrivateInBase`] for a private reference, [`Error::InvalidWord`]
    /// for a word that is no word (the errors of every call that names an added object).
    pub fn set_nil(&mut self, obj: Word) -> Result<()> {
        self.proto(obj)?;
        self.nil = obj.as_base();
        Ok(())
    }

    /// Adds an object and returns a reference to it.
    ///
    /// # Errors
    /// [`Error::BadLayout`] if `format` cannot hold the slots and bytes given;
    /// [`Error::TooLarge`] past 2^32 objects, slots or bytes; [`Error::OutOfMemory`] if the
    /// allocator refuses the room for one more object (nothing is added).
    pub fn add(
        &mut self,
        class: Word,
        format: Format,
        slots: Vec<Word>,
        bytes: Vec<u8>,
    ) -> Result<Word> {
        format.check(ObjectSize {
            slots: slots.len(),
            bytes: bytes.len(),
        })?;
        if u32::try_from(slots.len()).is_err() || u32::try_from(bytes.len()).is_err() {
            return Err(Error::TooLarge("an object of 2^32 slots or bytes"));
        }
        let index = ObjectIndex::new(self.objects.len())
            .ok_or(Error::TooLarge("more than 2^32 objects"))?;
        // The list grows as `push` would grow it, but fallibly: a heap rebuilt whole (a
        // flatten) asks for its largest memory here and in `freeze`.
        self.objects
            .try_reserve(1)
            .map_err(|_| out_of_memory::<Proto>(self.objects.len().saturating_add(1)))?;
        self.objects.push(Proto {
            class,
            format,
            hash: default_hash(index.as_u32()),
            aux: 0,
            slots,
            bytes,
        });
        Ok(Word::base(index))
    }

    fn proto(&mut self, obj: Word) -> Result<&mut Proto> {
        let len = self.objects.len() as u64;
        match obj.decode() {
            Decoded::Base(i) => self.objects.get_mut(i.get()).ok_or(Error::NoSuchObject {
                index: i.get() as u64,
                len,
            }),
            Decoded::Private(_) => Err(Error::PrivateInBase(obj)),
            _ if !obj.is_valid() => Err(Error::InvalidWord(obj)),
            _ => Err(Error::NotAnObject(obj)),
        }
    }

    /// The format of `obj`, if it has been added.
    pub fn format_of(&self, obj: Word) -> Option<Format> {
        self.objects.get(obj.as_base()?.get()).map(|p| p.format)
    }

    /// Sets the class of `obj`.
    pub fn set_class(&mut self, obj: Word, class: Word) -> Result<()> {
        self.proto(obj)?.class = class;
        Ok(())
    }

    /// Sets pointer slot `i` of `obj`.
    pub fn set_slot(&mut self, obj: Word, i: usize, value: Word) -> Result<()> {
        let p = self.proto(obj)?;
        let len = p.slots.len();
        *p.slots
            .get_mut(i)
            .ok_or(Error::SlotOutOfRange { index: i, len })? = value;
        Ok(())
    }

    /// Sets the identity hash of `obj`.
    pub fn set_hash(&mut self, obj: Word, hash: u32) -> Result<()> {
        self.proto(obj)?.hash = hash;
        Ok(())
    }

    /// Sets the auxiliary bits of `obj`: 24 bits cowheap stores with the object and never
    /// interprets. Importers keep there what they need to export the object again exactly
    /// (a source format code, header flags).
    ///
    /// # Errors
    /// [`Error::TooLarge`] if `aux` does not fit in [`crate::AUX_BITS`] bits.
    pub fn set_aux(&mut self, obj: Word, aux: u32) -> Result<()> {
        if aux >> crate::AUX_BITS != 0 {
            return Err(Error::TooLarge("auxiliary bits wider than 24"));
        }
        self.proto(obj)?.aux = aux;
        Ok(())
    }

    /// Names the classes of small integers and characters, which have no object to hold them.
    pub fn set_immediate_classes(&mut self, int_class: Option<Word>, char_class: Option<Word>) {
        self.int_class = int_class;
        self.char_class = char_class;
    }

    /// Names the class of immediate floats (Spur's SmallFloat64), which has no object to hold
    /// it either.
    pub fn set_float_class(&mut self, float_class: Option<Word>) {
        self.float_class = float_class;
    }

    /// Adds a named root. The first root added is the base's main root.
    pub fn add_root(&mut self, name: &str, value: Word) -> Result<()> {
        if u32::try_from(name.len()).is_err() {
            return Err(Error::TooLarge("a root name of 2^32 bytes or more"));
        }
        if !self.root_names.insert(name.to_owned()) {
            return Err(Error::DuplicateRoot(name.to_owned()));
        }
        self.roots.push(Root {
            name: name.to_owned(),
            value,
        });
        Ok(())
    }

    /// Checks every reference and packs the objects into an immutable [`BaseHeap`].
    /// Time: O(objects + slots + bytes).
    ///
    /// # Errors
    /// [`Error::MissingNil`] without [`Builder::add_nil`]; [`Error::Dangling`] for an
    /// object's reference to an object never added; [`Error::ClassNotObject`] for an
    /// object's class that is no base reference; [`Error::NoSuchObject`] for a root or an
    /// immediate's class that names an object never added, [`Error::NotAnObject`] for an
    /// immediate's class that is an immediate; [`Error::PrivateInBase`] for a private
    /// reference; [`Error::InvalidWord`] for a word that is no word (a base tag with a bit
    /// above its index); [`Error::Corrupt`] for a root [`crate::HASH_BITS_ROOT`] that is no
    /// small integer from 1 to [`crate::MAX_HASH_BITS`]. Words with tag `110` (immediate
    /// floats, [`Word::small_float_bits`]) are accepted as immediates.
    /// [`Error::OutOfMemory`] if the allocator refuses the heap's words, which are reserved
    /// whole before the first is written.
    pub fn freeze(self) -> Result<BaseHeap> {
        let nil = self.nil.ok_or(Error::MissingNil)?;
        let n = self.objects.len() as u64;
        let check = |from: ObjectIndex, w: Word| -> Result<()> {
            match w.decode() {
                Decoded::Base(i) if (i.get() as u64) < n => Ok(()),
                Decoded::Base(i) => Err(Error::Dangling {
                    from,
                    to: i.get() as u64,
                }),
                Decoded::Private(_) => Err(Error::PrivateInBase(w)),
                Decoded::Int(_) | Decoded::Char(_) | Decoded::Reserved(_) if w.is_immediate() => {
                    Ok(())
                }
                _ => Err(Error::InvalidWord(w)),
            }
        };
        let mut total = 0usize;
        for (i, p) in self.objects.iter().enumerate() {
            let from = ObjectIndex::from_u32(i as u32);
            if !p.class.is_base() {
                return Err(Error::ClassNotObject(from));
            }
            check(from, p.class)?;
            for &w in &p.slots {
                check(from, w)?;
            }
            total += layout::object_words(ObjectSize {
                slots: p.slots.len(),
                bytes: p.bytes.len(),
            });
        }
        // A root or an immediate's class is held by no object: one that names no object is
        // refused for what it is, not as a reference from some object.
        let no_such = |i: ObjectIndex| Error::NoSuchObject {
            index: i.get() as u64,
            len: n,
        };
        for r in self.roots.iter() {
            match r.value.decode() {
                Decoded::Base(i) if (i.get() as u64) >= n => return Err(no_such(i)),
                _ => check(nil, r.value)?,
            }
        }
        for w in [self.int_class, self.char_class, self.float_class]
            .into_iter()
            .flatten()
        {
            match w.decode() {
                Decoded::Base(i) if (i.get() as u64) >= n => return Err(no_such(i)),
                _ if w.is_immediate() => return Err(Error::NotAnObject(w)),
                _ => check(nil, w)?,
            }
        }
        let len = self.objects.len();
        let mut words = Vec::new();
        words
            .try_reserve_exact(total.saturating_add(len))
            .map_err(|_| out_of_memory::<u64>(total.saturating_add(len)))?;
        let mut offsets = Vec::new();
        offsets
            .try_reserve_exact(len)
            .map_err(|_| out_of_memory::<u64>(len))?;
        for p in &self.objects {
            offsets.push(words.len() as u64);
            let head = Head {
                class: p.class,
                format: p.format,
                hash: p.hash,
                aux: p.aux,
            };
            layout::encode(head, &p.slots, &p.bytes, &mut words)?;
        }
        let objects_len = words.len() * 8;
        words.extend(offsets.iter().map(|o| o.to_le()));
        let regions = Regions {
            objects_at: 0,
            objects_len,
            offsets_at: objects_len,
            len,
        };
        let meta = Meta {
            nil,
            int_class: self.int_class,
            char_class: self.char_class,
            float_class: self.float_class,
            roots: self.roots,
        };
        BaseHeap::from_parts(
            Storage::owned(words.into_boxed_slice()),
            regions,
            meta,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeze_refuses_dangling_references_and_missing_nil() {
        let mut b = Builder::new();
        let ghost = Word::base(ObjectIndex::from_u32(5));
        b.add(ghost, Format::Pointers, vec![], vec![]).unwrap();
        assert_eq!(b.clone().freeze().unwrap_err(), Error::MissingNil);
        let nil = b.add_nil();
        b.set_class(Word::base(ObjectIndex::from_u32(0)), nil)
            .unwrap();
        b.add(nil, Format::Pointers, vec![ghost], vec![]).unwrap();
        assert!(matches!(b.freeze(), Err(Error::Dangling { to: 5, .. })));
    }

    #[test]
    fn freeze_refuses_immediate_classes_and_bad_layouts() {
        let mut b = Builder::new();
        let nil = b.add_nil();
        assert!(matches!(
            b.add(nil, Format::Pointers, vec![], vec![1]),
            Err(Error::BadLayout { .. })
        ));
        b.add(Word::int(3).unwrap(), Format::Bytes, vec![], vec![1])
            .unwrap();
        assert!(matches!(b.freeze(), Err(Error::ClassNotObject(_))));
    }

    #[test]
    fn objects_round_trip_through_freeze() {
        let mut b = Builder::new();
        let nil = b.add_nil();
        let bytes: Vec<u8> = (0..19).collect();
        let s = b.add(nil, Format::Bytes, vec![], bytes.clone()).unwrap();
        b.set_hash(s, 77).unwrap();
        b.set_aux(s, 0xAB_CDEF).unwrap();
        assert!(matches!(b.set_aux(s, 1 << 24), Err(Error::TooLarge(_))));
        let arr = b
            .add(nil, Format::Pointers, vec![s, nil, Word::char('a')], vec![])
            .unwrap();
        b.add_root("arr", arr).unwrap();
        assert!(matches!(
            b.add_root("arr", nil),
            Err(Error::DuplicateRoot(_))
        ));
        let base = b.freeze().unwrap();
        let sx = s.as_base().unwrap();
        let o = base.object(sx).unwrap();
        assert_eq!((o.bytes, o.hash, o.format), (&bytes[..], 77, Format::Bytes));
        assert_eq!(o.aux, 0xAB_CDEF);
        let ax = arr.as_base().unwrap();
        assert_eq!(base.object(ax).unwrap().slots, &[s, nil, Word::char('a')]);
        assert_eq!(base.root("arr").unwrap().word(), arr);
        assert_eq!(base.len(), 3);
    }

    #[test]
    fn default_hashes_are_never_zero() {
        // The indices whose product with the multiplier has its top 22 bits clear: `k`
        // times the multiplier's inverse, less one, for each `k` under 2^10.
        let m: u32 = 0x9E37_79B1;
        let mut inverse: u32 = m;
        for _ in 0..5 {
            inverse = inverse.wrapping_mul(2u32.wrapping_sub(m.wrapping_mul(inverse)));
        }
        assert_eq!(m.wrapping_mul(inverse), 1);
        let zero_once: Vec<u32> = (1..1024u32)
            .map(|k| k.wrapping_mul(inverse).wrapping_sub(1))
            .collect();
        assert!(
            zero_once.iter().any(|&i| i < 100_000_000),
            "a base of 100M objects meets one"
        );
        for i in zero_once {
            let h = default_hash(i);
            assert!(h != 0 && h < 1 << 22, "index {i}: hash {h}");
        }
        assert!((0..100_000).all(|i| default_hash(i) < 1 << 22));
    }
}
